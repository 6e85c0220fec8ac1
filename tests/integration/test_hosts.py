"""Many Docker hosts, one service: two dockerd daemons on this machine (a private one as host ``a``,
the machine's as host ``b``), two `containerizer up` on one Redis, driven by task name through the
shared queues by a client that has only Celery.

Placement uses both hosts and prefers the one with the image; operations reach the owner in one
hop; names are unique across hosts; prewarm pulls once on each host; a host whose service stops
is not alive at once, new containers go elsewhere, operations on its containers fail with
HostUnavailable after bounded retries, and it comes back with its records.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import psutil
import pytest
import redis

from tests.integration.daemons import PrivateDockerd, private_dockerd
from tests.integration.support import (
    OPEN_REGISTRY,
    REGISTRY_BUSYBOX,
    SLEEPER,
    TEST_IMAGE,
    TaskClient,
    delete_keys,
    deployment,
    wait_for,
)
from workers.keys import Keys

pytestmark = pytest.mark.integration

DATABASES = (3, 4, 5)
SETTINGS = {
    "heartbeat_seconds": "1",
    "host_dead_seconds": "6",
    "retry_max": "2",
    "retry_backoff_seconds": "0.5",
    "retry_backoff_max_seconds": "1",
    "stats_interval_seconds": "2",
}


@dataclass
class Cluster:
    """Two hosts of one deployment and what the tests need of them."""

    tasks: TaskClient
    prefix: str
    state: redis.Redis
    dockers: dict[str, docker.DockerClient]
    daemon_a: PrivateDockerd
    root: Path
    redis_server: str

    def alive(self) -> dict[str, bool]:
        return {h["host"]: h["alive"] for h in self.tasks.call("containerizer.maintenance.hosts")}


def up(cluster_root: Path, redis_server: str, prefix: str, host: str, **env: str) -> Any:
    return deployment(
        redis_server,
        cluster_root / host,
        DATABASES,
        prefix=prefix,
        env={"CONTAINERIZER_HOST_NAME": host, **env},
        flush=host == "b",
        # Flower once per deployment (host b's); every host serves /metrics on a port of its own.
        **({"flower_port": "0"} if host != "b" else {}),
        **SETTINGS,
    )


@pytest.fixture(scope="module")
def cluster(
    docker_client: docker.DockerClient,
    redis_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    prefix = f"containerizer-hosts-{uuid.uuid4().hex[:8]}:"
    root = tmp_path_factory.mktemp("hosts")
    state = redis.Redis.from_url(f"{redis_server}/{DATABASES[2]}", decode_responses=True)
    with (
        private_dockerd(
            docker_client, TEST_IMAGE, bridge="ctztest2", address="198.18.252.1/24"
        ) as daemon_a,
        up(root, redis_server, prefix, "b") as (tasks, _),
        # One beat per deployment (host b's): it schedules host a's periodic work too.
        up(
            root,
            redis_server,
            prefix,
            "a",
            DOCKER_HOST=daemon_a.url,
            CONTAINERIZER_RUN_BEAT="false",
        ),
    ):
        docker_a = daemon_a.client()
        made = Cluster(
            tasks,
            prefix,
            state,
            {"a": docker_a, "b": docker_client},
            daemon_a,
            root,
            redis_server,
        )
        wait_for(lambda: made.alive() == {"a": True, "b": True}, 30, "both hosts alive")
        try:
            yield made
        finally:
            for client in made.dockers.values():
                for container in client.containers.list(
                    all=True, filters={"label": "containerizer.managed=true"}
                ):
                    if container.labels.get("ctz-hosts") == prefix:
                        container.remove(force=True)
            docker_a.close()
            delete_keys(state, prefix)
            state.close()


def spec(cluster: Cluster, **fields: Any) -> dict[str, Any]:
    return {
        "image": TEST_IMAGE,
        "command": SLEEPER,
        "network_mode": "none",
        "labels": {"ctz-hosts": cluster.prefix},
        **fields,
    }


def test_runs_without_a_host_use_both_hosts(cluster: Cluster) -> None:
    results = [
        cluster.tasks.send("containerizer.containers.run", spec=spec(cluster)) for _ in range(20)
    ]
    ran = [result.get(timeout=120) for result in results]
    hosts = Counter(r["host"] for r in ran)
    assert set(hosts) == {"a", "b"} and min(hosts.values()) >= 5, hosts
    for started in ran:  # Each is where its result says.
        container = cluster.dockers[started["host"]].containers.get(started["id"])
        assert container.status == "running"
    for started in ran:
        cluster.tasks.call("containerizer.containers.remove", container=started["id"], force=True)


def test_an_image_only_on_b_places_the_run_on_b(cluster: Cluster) -> None:
    only_b = f"ctz-only-b/{uuid.uuid4().hex[:8]}:1"
    cluster.dockers["b"].images.get(TEST_IMAGE).tag(only_b)
    keys = Keys(cluster.prefix, "b")
    canonical = f"docker.io/{only_b}"
    wait_for(lambda: cluster.state.sismember(keys.image_references(), canonical), 10, "b's image")
    try:
        for _ in range(3):
            ran = cluster.tasks.call(
                "containerizer.containers.run", spec=spec(cluster, image=only_b)
            )
            assert ran["host"] == "b" and ran["pulled"] is False, ran
            cluster.tasks.call("containerizer.containers.remove", container=ran["id"], force=True)
    finally:
        cluster.dockers["b"].images.remove(only_b)


def test_one_beat_schedules_every_hosts_periodic_work(cluster: Cluster) -> None:
    """Host a runs no beat: its stats are swept all the same (beat's task fans out)."""
    ran = cluster.tasks.call("containerizer.containers.run", spec=spec(cluster), host="a")
    key = Keys(cluster.prefix, "a").container(ran["id"])
    try:
        wait_for(lambda: cluster.state.hget(key, "stats_at"), 15, "host a's stats, swept")
        assert not any(
            "beat" in " ".join(p.cmdline()) and p.environ().get("CONTAINERIZER_HOST_NAME") == "a"
            for p in psutil.process_iter()
            if _readable(p)
        )
    finally:
        cluster.tasks.call("containerizer.containers.remove", container=ran["id"], force=True)


def _readable(process: psutil.Process) -> bool:
    try:
        process.environ()
    except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    return True


def test_operations_by_name_on_the_shared_queue_reach_the_owner(cluster: Cluster) -> None:
    name = f"ctz-owned-{uuid.uuid4().hex[:8]}"
    command = ["sh", "-c", "echo hello from b; trap 'exit 0' TERM; sleep 100000 & wait"]
    ran = cluster.tasks.call(
        "containerizer.containers.run", spec=spec(cluster, name=name, command=command), host="b"
    )
    assert ran["host"] == "b"
    logs = wait_for(
        lambda: (
            "hello"
            in (r := cluster.tasks.call("containerizer.containers.logs", container=name))["logs"]
            and r
        ),
        10,
        "b's logs",
    )
    assert logs["host"] == "b" and logs["logs"] == "hello from b\n"
    stopped = cluster.tasks.call("containerizer.containers.stop", container=name, timeout=5)
    assert stopped["host"] == "b" and stopped["status"] == "exited"
    assert cluster.dockers["b"].containers.get(ran["id"]).status == "exited"
    listed = cluster.tasks.call("containerizer.containers.list", all=True)
    assert {row["name"]: row["host"] for row in listed}[name] == "b"
    # The same name on the other host is Conflict: names are unique across hosts.
    error, _ = cluster.tasks.failure(
        "containerizer.containers.run", spec=spec(cluster, name=name, command=command), host="a"
    )
    assert type(error).__name__ == "Conflict" and "taken on host 'b'" in str(error)
    removed = cluster.tasks.call("containerizer.containers.remove", container=name)
    assert removed == {"id": ran["id"], "removed": True, "host": "b"}
    with pytest.raises(docker.errors.NotFound):
        cluster.dockers["b"].containers.get(ran["id"])


def test_prewarm_pulls_once_on_each_host(cluster: Cluster) -> None:
    reference = f"{OPEN_REGISTRY}/{REGISTRY_BUSYBOX}"
    for client in cluster.dockers.values():
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(reference, force=True)
    try:
        first = cluster.tasks.call("containerizer.images.prewarm", reference=reference)
        assert set(first["hosts"]) == {"a", "b"}, first
        for host, pulled in first["hosts"].items():
            assert pulled["cached"] is False and pulled["id"].startswith("sha256:"), (host, first)
            cluster.dockers[host].images.get(reference)
        again = cluster.tasks.call("containerizer.images.prewarm", reference=reference)
        assert {h: p["cached"] for h, p in again["hosts"].items()} == {"a": True, "b": True}
        named = cluster.tasks.call(
            "containerizer.images.prewarm", reference=reference, hosts=["b", "gone"]
        )
        assert named["hosts"]["gone"] == "HostUnavailable" and named["hosts"]["b"]["cached"]
        listed = cluster.tasks.call("containerizer.images.list")
        holders = {row["host"] for row in listed if reference in row["tags"]}
        assert holders == {"a", "b"}
    finally:
        for client in cluster.dockers.values():
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(reference, force=True)


def test_a_stopped_host_is_not_alive_at_once_and_comes_back_with_its_records(
    cluster: Cluster,
) -> None:
    on_a = cluster.tasks.call("containerizer.containers.run", spec=spec(cluster), host="a")
    summary = cluster.tasks.call("containerizer.maintenance.summary")
    assert summary["hosts"]["a"]["containers"]["running"] >= 1
    # Host a's service stops cleanly (SIGTERM to its `up`): it says so, and is not alive at once.
    _stop_service(cluster, "a")
    assert cluster.alive() == {"a": False, "b": True}
    for _ in range(5):  # New containers go to b.
        ran = cluster.tasks.call("containerizer.containers.run", spec=spec(cluster))
        assert ran["host"] == "b"
        cluster.tasks.call("containerizer.containers.remove", container=ran["id"], force=True)
    # What this deployment documents: a task on the shared queue for a host that is not alive
    # fails with HostUnavailable after its bounded retries (here 2).
    error, result = cluster.tasks.failure(
        "containerizer.containers.stop", container=on_a["id"], timeout=1
    )
    assert type(error).__name__ == "HostUnavailable" and result.retries == 2
    error, _ = cluster.tasks.failure("containerizer.containers.run", spec=spec(cluster), host="a")
    assert type(error).__name__ == "HostUnavailable"
    again = up(
        cluster.root, cluster.redis_server, cluster.prefix, "a", DOCKER_HOST=cluster.daemon_a.url
    )
    with again:  # a's service again: alive, and its container and record are where they were.
        wait_for(lambda: cluster.alive()["a"], 20, "a alive again")
        listed = cluster.tasks.call("containerizer.containers.list", host="a")
        assert [row["id"] for row in listed] == [on_a["id"]]
        stopped = cluster.tasks.call("containerizer.containers.stop", container=on_a["id"])
        assert stopped["host"] == "a" and stopped["status"] == "exited"
        cluster.tasks.call("containerizer.containers.remove", container=on_a["id"])


def _stop_service(cluster: Cluster, host: str) -> None:
    for process in psutil.process_iter(["cmdline", "environ"]):
        try:
            environ = process.environ()
            cmdline = process.cmdline()
        except psutil.Error:
            continue
        if (
            cmdline[-1:] == ["up"]
            and environ.get("CONTAINERIZER_HOST_NAME") == host
            and environ.get("CONTAINERIZER_REDIS_PREFIX") == cluster.prefix
        ):
            process.terminate()
            process.wait(timeout=90)
            return
    raise AssertionError(f"no `up` of host {host}")

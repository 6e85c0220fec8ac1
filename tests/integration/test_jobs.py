"""Containers that run to completion, through real workers and the real host agent: wait, on_exit
(once per exit, across a restart of the events watcher), live logs, auto_remove, health, exit
reasons, and the volumes and networks the service creates."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from typing import Any

import docker
import docker.errors
import psutil
import pytest
import redis
from kombu import Connection, Queue

from tests.integration.support import (
    SLEEPER,
    TEST_IMAGE,
    RunningService,
    TaskClient,
    service_role,
    wait_for,
)
from workers.logs import read_stream

pytestmark = pytest.mark.integration


def job(labels: dict[str, str], script: str, **fields: Any) -> dict[str, Any]:
    return {
        "image": TEST_IMAGE,
        "command": ["sh", "-c", script],
        "labels": labels,
        "network_mode": "none",
        **fields,
    }


def state_client(service: RunningService) -> redis.Redis:
    return redis.Redis.from_url(service.env["CONTAINERIZER_REDIS_URL"], decode_responses=True)


def test_a_job_by_a_client_with_only_celery_wait_on_exit_and_live_logs(
    service: RunningService,
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
) -> None:
    """The issue's acceptance: prints, exits 3; wait says 3; one container_exit on the caller's
    queue; its lines read from the follow stream while it runs."""
    queue = f"ctz-exits-{uuid.uuid4().hex[:8]}"
    script = "echo first line; echo to stderr >&2; sleep 4; echo last line; exit 3"
    ran = tasks.call(
        "containerizer.containers.run",
        spec=job(labels, script),
        on_exit={"task": "caller.job_done", "queue": queue, "kwargs": {"ticket": 42}},
    )
    followed = tasks.call("containerizer.containers.logs", container=ran["id"], follow=True)
    assert set(followed) == {"id", "stream", "host"} and followed["id"] == ran["id"]
    state = state_client(service)
    seen: list[dict[str, str]] = []
    last = "0"

    def first_line() -> bool:
        nonlocal last
        for entry_id, fields in read_stream(state, followed["stream"], last_id=last):
            seen.append(fields)
            last = entry_id
        return any(f.get("line") == "first line" for f in seen)

    wait_for(first_line, 10, "the first line in the stream")
    assert docker_client.containers.get(ran["id"]).status == "running"  # Before its exit.
    waited = tasks.call("containerizer.containers.wait", container=ran["id"], timeout=60)
    assert waited["exit_code"] == 3 and waited["status"] == "exited", waited
    assert waited["timed_out"] is False and waited["reason"] == "failed"

    def ended() -> bool:
        nonlocal last
        for entry_id, fields in read_stream(state, followed["stream"], last_id=last):
            seen.append(fields)
            last = entry_id
        return any(f.get("eof") == "1" for f in seen)

    wait_for(ended, 15, "the stream's eof")
    # Docker copies each stream on its own: the order holds within a stream, not across them.
    by_stream = {
        name: [f["line"] for f in seen if f.get("stream") == name] for name in ("stdout", "stderr")
    }
    assert by_stream == {"stdout": ["first line", "last line"], "stderr": ["to stderr"]}

    with Connection(service.env["CONTAINERIZER_BROKER_URL"]) as connection:
        inbox = connection.SimpleQueue(Queue(queue, routing_key=queue))
        message = inbox.get(timeout=20)
        body = message.decode()
        message.ack()
        with pytest.raises(inbox.Empty):
            inbox.get(timeout=3)  # Exactly one.
        inbox.close()
    headers = message.headers
    assert headers["task"] == "caller.job_done"
    kwargs = body[1] if isinstance(body, list) else body["kwargs"]
    exit_info = kwargs["container_exit"]
    assert kwargs["ticket"] == 42
    assert exit_info["id"] == ran["id"] and exit_info["exit_code"] == 3
    assert exit_info["host"] == service.host and exit_info["oom_killed"] is False
    assert "last line" in exit_info["logs_tail"] and exit_info["finished_at"]
    state.close()


def test_on_exit_is_sent_once_across_a_restart_of_the_events_watcher(
    service: RunningService, tasks: TaskClient, labels: dict[str, str]
) -> None:
    queue = f"ctz-exits-{uuid.uuid4().hex[:8]}"
    ran = tasks.call(
        "containerizer.containers.run",
        spec=job(labels, "sleep 2; exit 5"),
        on_exit={"task": "caller.job_done", "queue": queue, "kwargs": {}},
    )
    _kill_events_watcher(service)  # It dies before the exit; `up` starts it again.
    waited = tasks.call("containerizer.containers.wait", container=ran["id"], timeout=60)
    assert waited["exit_code"] == 5
    following = service.log().count("following Docker events")
    _kill_events_watcher(service)  # Again, after: its replay must not send the exit twice.
    wait_for(
        lambda: service.log().count("following Docker events") > following, 30, "the watcher back"
    )
    broker = redis.Redis.from_url(service.env["CONTAINERIZER_BROKER_URL"])
    try:
        wait_for(lambda: broker.llen(queue) >= 1, 20, "the on_exit message")
        time.sleep(2)  # Absence takes time to show: time for a duplicate, were one sent.
        assert broker.llen(queue) == 1
    finally:
        broker.delete(queue)
        broker.close()


def _kill_events_watcher(service: RunningService) -> None:
    up = psutil.Process(service.process.pid)
    (watcher,) = [child for child in up.children() if service_role(child) == "events"]
    watcher.kill()
    watcher.wait(timeout=10)
    wait_for(
        lambda: any(service_role(c) == "events" and c.pid != watcher.pid for c in up.children()),
        20,
        "up restarting the events watcher",
    )


def test_auto_remove_leaves_no_container_and_keeps_the_record(
    service: RunningService,
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
) -> None:
    ran = tasks.call(
        "containerizer.containers.run", spec=job(labels, "echo bye; exit 2", auto_remove=True)
    )
    waited = tasks.call("containerizer.containers.wait", container=ran["id"], timeout=60)
    assert waited["exit_code"] == 2
    state = state_client(service)
    key = service.keys.container(ran["id"])
    wait_for(lambda: state.hget(key, "status") == "removed", 20, "the auto-removal")
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(ran["id"])
    assert state.hget(key, "exit_code") == "2" and "bye" in json.loads(state.hget(key, "logs_tail"))
    assert 0 < state.ttl(key) <= 86_400  # Kept for the record's retention.
    state.close()


def test_a_hundred_waits_hold_no_worker(
    service: RunningService, tasks: TaskClient, labels: dict[str, str]
) -> None:
    # Each runs until told (SIGTERM), then exits 7.
    script = "trap 'exit 7' TERM; sleep 1000 & wait"
    runs = [
        tasks.send("containerizer.containers.run", spec=job(labels, script)) for _ in range(100)
    ]
    ids = [run.get(timeout=180)["id"] for run in runs]
    began = time.monotonic()
    waits = [tasks.send("containerizer.containers.wait", container=cid, timeout=120) for cid in ids]
    state = state_client(service)
    deadlines = service.keys.wait_deadlines()
    wait_for(lambda: state.zcard(deadlines) >= 100, 20, "the waits registered")
    state.close()
    # With 100 waits registered, the containers queue still answers at once.
    for _ in range(5):
        asked = time.monotonic()
        listed = tasks.call(
            "containerizer.containers.list", labels=[f"ctz-test={labels['ctz-test']}"]
        )
        assert len(listed) == 100
        tasks.call("containerizer.containers.inspect", container=ids[0])
        assert time.monotonic() - asked < 5
    registered = time.monotonic() - began
    for cid in ids:
        tasks.send("containerizer.containers.kill", container=cid, signal="SIGTERM")
    results = [w.get(timeout=180) for w in waits]
    assert {r["exit_code"] for r in results} == {7} and not any(r["timed_out"] for r in results)
    print(f"100 waits registered and other tasks answered within {registered:.1f} s")


def test_a_wait_times_out_without_holding_a_worker(
    tasks: TaskClient, labels: dict[str, str]
) -> None:
    ran = tasks.call("containerizer.containers.run", spec=job(labels, "sleep 60"))
    began = time.monotonic()
    waited = tasks.call("containerizer.containers.wait", container=ran["id"], timeout=2)
    assert waited["timed_out"] is True and waited["status"] == "running"
    assert 1.5 <= time.monotonic() - began < 10
    error, _ = tasks.failure("containerizer.containers.wait", container=ran["id"], timeout=3601)
    assert type(error).__name__ == "InvalidSpec"
    tasks.call("containerizer.containers.remove", container=ran["id"], force=True)


def test_wait_for_healthy(tasks: TaskClient, labels: dict[str, str]) -> None:
    healthcheck = {"test": ["CMD", "true"], "interval": 500_000_000, "retries": 1}
    ran = tasks.call(
        "containerizer.containers.run",
        spec={**job(labels, SLEEPER[2]), "healthcheck": healthcheck},
    )
    waited = tasks.call(
        "containerizer.containers.wait", container=ran["id"], condition="healthy", timeout=60
    )
    assert waited["health"] == "healthy" and waited["timed_out"] is False
    assert waited["status"] == "running"


def test_managed_volumes_and_networks(
    tasks: TaskClient, docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    suffix = uuid.uuid4().hex[:8]
    volume, network, outside = f"ctz-vol-{suffix}", f"ctz-net-{suffix}", f"ctz-outside-{suffix}"
    docker_client.volumes.create(outside)
    try:
        made = tasks.call("containerizer.volumes.create", name=volume, labels={"team": "a"})
        assert made["name"] == volume and made["driver"] == "local"
        net = tasks.call("containerizer.networks.create", name=network, internal=True)
        assert net["internal"] is True and net["id"]
        ran = tasks.call(
            "containerizer.containers.run",
            spec={
                **job(labels, "echo data > /d/f; " + SLEEPER[2]),
                "network_mode": network,
                "volumes": [f"{volume}:/d"],
            },
        )
        attached = docker_client.api.inspect_container(ran["id"])["NetworkSettings"]["Networks"]
        assert network in attached
        for task, kwargs in (
            ("containerizer.volumes.remove", {"name": volume}),
            ("containerizer.networks.remove", {"name": network}),
        ):
            error, _ = tasks.failure(task, **kwargs)
            assert type(error).__name__ == "Conflict", (task, error)
        error, _ = tasks.failure(
            "containerizer.containers.create", spec=job(labels, "true", volumes=[f"{outside}:/d"])
        )
        assert type(error).__name__ == "PolicyViolation"
        error, _ = tasks.failure("containerizer.volumes.remove", name=outside)
        assert type(error).__name__ == "PolicyViolation"
        assert {v["name"] for v in tasks.call("containerizer.volumes.list")} >= {volume}
        assert outside not in {v["name"] for v in tasks.call("containerizer.volumes.list")}
        tasks.call("containerizer.containers.remove", container=ran["id"], force=True)
        assert tasks.call("containerizer.networks.remove", name=network)["removed"] is True
        assert tasks.call("containerizer.volumes.remove", name=volume)["removed"] is True
        # Removed behind the service's back: reconcile drops the record.
        again = tasks.call("containerizer.volumes.create", name=volume)
        assert again["name"] == volume
        docker_client.volumes.get(volume).remove()
        tasks.call("containerizer.maintenance.reconcile")
        assert volume not in {v["name"] for v in tasks.call("containerizer.volumes.list")}
    finally:
        for container in docker_client.containers.list(
            all=True, filters={"label": f"ctz-test={labels['ctz-test']}"}
        ):
            container.remove(force=True)
        for name in (volume, outside):
            with contextlib.suppress(docker.errors.NotFound):
                docker_client.volumes.get(name).remove(force=True)
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.networks.get(network).remove()


def test_exit_reasons_in_stop_and_inspect(tasks: TaskClient, labels: dict[str, str]) -> None:
    ran = tasks.call("containerizer.containers.run", spec=job(labels, "sleep 100"))
    stopped = tasks.call("containerizer.containers.stop", container=ran["id"], timeout=1)
    # sh ignores SIGTERM as PID 1 without a trap: killed after the timeout.
    assert stopped["exit_code"] == 137 and stopped["signal"] == "SIGKILL", stopped
    assert stopped["reason"] == "signaled" and stopped["oom_killed"] is False
    inspected = tasks.call("containerizer.containers.inspect", container=ran["id"])
    assert inspected["Containerizer"]["exit"]["reason"] == "signaled"
    summary = tasks.call("containerizer.maintenance.summary")
    assert "oom_killed" in summary["containers"]

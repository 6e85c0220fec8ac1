"""Live state without polling: Docker events reach Redis, beat sweeps stats, reconcile repairs."""

from __future__ import annotations

import json
import time
from typing import Any

import docker
import pytest
import redis

from tests.integration.support import (
    SLEEPER,
    TEST_IMAGE,
    RunningService,
    TaskClient,
    delete_keys,
    deployment,
    wait_for,
)
from workers.keys import Keys
from workers.maintenance import exclusive

pytestmark = pytest.mark.integration


def record_of(state_redis: redis.Redis, service: RunningService, cid: str) -> dict[str, str]:
    return state_redis.hgetall(f"{service.prefix}container:{cid}")


def wait_for_status(
    state_redis: redis.Redis, service: RunningService, cid: str, status: str, timeout: float
) -> dict[str, str]:
    """The container's record once it has ``status`` (within ``timeout`` seconds)."""
    return dict(
        wait_for(
            lambda: (r := record_of(state_redis, service, cid))["status"] == status and r,
            timeout,
            f"{status} status in Redis",
        )
    )


def exited_at(docker_client: docker.DockerClient, cid: str) -> float | None:
    container = docker_client.containers.get(cid)
    return time.monotonic() if container.status == "exited" else None


def test_a_container_that_exits_by_itself_is_recorded_within_2_s(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    state_redis: redis.Redis,
    service: RunningService,
    labels: dict[str, str],
) -> None:
    spec = {"image": TEST_IMAGE, "command": ["sh", "-c", "sleep 1; exit 3"], "labels": labels}
    cid = tasks.call("containerizer.containers.run", spec=spec)["id"]
    assert record_of(state_redis, service, cid)["status"] == "running"
    # From here on no task is called: only the events watcher can update the record.
    exited = wait_for(lambda: exited_at(docker_client, cid), 10, "container exit", 0.01)
    record = wait_for_status(state_redis, service, cid, "exited", 2.0)
    assert record["exit_code"] == "3"
    assert time.monotonic() - exited < 2.0


def test_an_oom_kill_is_recorded(
    tasks: TaskClient, state_redis: redis.Redis, service: RunningService, labels: dict[str, str]
) -> None:
    grow = 'a=xxxxxxxxxxxxxxxx; while true; do a="$a$a"; done'
    spec = {
        "image": TEST_IMAGE,
        "command": ["sh", "-c", grow],
        "labels": labels,
        "mem_limit": "8m",
        "memswap_limit": "8m",
    }
    cid = tasks.call("containerizer.containers.run", spec=spec)["id"]
    record = wait_for_status(state_redis, service, cid, "exited", 30)
    assert record["oom_killed"] == "true"
    assert record["exit_code"] == "137"


def test_an_out_of_band_removal_is_recorded_within_2_s(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    state_redis: redis.Redis,
    service: RunningService,
    labels: dict[str, str],
) -> None:
    spec = {"image": TEST_IMAGE, "command": SLEEPER, "labels": labels}
    cid = tasks.call("containerizer.containers.run", spec=spec)["id"]
    docker_client.containers.get(cid).remove(force=True)
    removed_at = time.monotonic()
    wait_for(lambda: record_of(state_redis, service, cid)["status"] == "removed", 2.0, "removal")
    assert time.monotonic() - removed_at < 2.0
    assert cid not in state_redis.smembers(service.keys.containers())


def test_beat_fills_stats_on_its_own(
    redis_server: str, tmp_path_factory: pytest.TempPathFactory, labels: dict[str, str]
) -> None:
    prefix = f"containerizer-beat-{labels['ctz-test']}:"
    state = redis.Redis.from_url(f"{redis_server}/5", decode_responses=True)
    try:
        with deployment(
            redis_server,
            tmp_path_factory.mktemp("beat"),
            (3, 4, 5),
            stats_interval_seconds="2",
            redis_prefix=prefix,
        ) as (tasks, _):
            spec = {"image": TEST_IMAGE, "command": SLEEPER, "labels": labels}
            cid = tasks.call("containerizer.containers.run", spec=spec)["id"]
            # Beat sweeps every 2 s in this deployment; no task is called from here on.
            history_key = f"{prefix}stats-history:{cid}"
            wait_for(lambda: state.xlen(history_key) >= 2, 12, "two sweeps from beat", 0.2)
            assert '"memory_usage"' in (state.hget(f"{prefix}container:{cid}", "stats") or "")
            history = state.xrange(history_key)
            assert "cpu_percent" in history[-1][1]
            interval = float(history[-1][1]["at"]) - float(history[-2][1]["at"])
            assert 1.0 <= interval <= 4.0
    finally:
        delete_keys(state, prefix)
        state.close()


def _collect(tasks: TaskClient) -> dict[str, Any]:
    """collect_stats, retried while a beat-started sweep holds its lock."""
    return wait_for(
        lambda: (
            (r := tasks.call("containerizer.maintenance.collect_stats")).get("locked") is None and r
        ),
        20,
        "an unlocked collect_stats",
        0.2,
    )


def test_cpu_of_a_spinning_container_capped_at_half_a_cpu(
    tasks: TaskClient, state_redis: redis.Redis, service: RunningService, labels: dict[str, str]
) -> None:
    spec = {
        "image": TEST_IMAGE,
        "command": ["sh", "-c", "while :; do :; done"],
        "labels": labels,
        "nano_cpus": 500_000_000,
    }
    cid = tasks.call("containerizer.containers.run", spec=spec)["id"]
    time.sleep(1.0)
    swept = _collect(tasks)
    assert swept["containers"] >= 1 and swept["seconds"] < 5
    time.sleep(1.5)
    _collect(tasks)  # Against the previous sample, kept in Redis.
    record = record_of(state_redis, service, cid)
    usage = json.loads(record["stats"])
    assert 30 <= usage["cpu_percent"] <= 70, usage


def test_a_restart_of_a_container_that_exits_at_once_is_recorded_exited(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    state_redis: redis.Redis,
    service: RunningService,
    labels: dict[str, str],
) -> None:
    # The record follows the restart's die, start and die. (Docker may log "restart" after that
    # last die, which must not win; that order is rare here, so tests/unit/test_events.py pins it.)
    spec = {"image": TEST_IMAGE, "command": ["sh", "-c", "exit 4"], "labels": labels}
    cid = tasks.call("containerizer.containers.run", spec=spec)["id"]
    first = wait_for_status(state_redis, service, cid, "exited", 5)["finished_at"]

    tasks.call("containerizer.containers.restart", container=cid, timeout=1)

    container = docker_client.containers.get(cid)
    wait_for(
        lambda: container.reload() or container.attrs["State"]["FinishedAt"] != first,
        10,
        "the exit after the restart",
    )
    assert container.status == "exited"
    # The die event's time, which the watcher records, is a little after Docker's FinishedAt.
    wait_for(
        lambda: record_of(state_redis, service, cid).get("finished_at", first) > first,
        5,
        "that exit in Redis",
    )
    time.sleep(1.0)  # Whatever the watcher has still to apply of this restart, it has by now.
    record = record_of(state_redis, service, cid)
    assert record["status"] == "exited" and record["exit_code"] == "4", record


def test_reconcile_repairs_what_events_missed(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    state_redis: redis.Redis,
    service: RunningService,
    labels: dict[str, str],
) -> None:
    cid = tasks.call(
        "containerizer.containers.run",
        spec={"image": TEST_IMAGE, "command": ["true"], "labels": labels},
    )["id"]
    wait_for(lambda: docker_client.containers.get(cid).status == "exited", 10, "exit")
    key = f"{service.prefix}container:{cid}"
    wait_for(lambda: state_redis.hget(key, "status") == "exited", 5, "exit recorded")
    # A record that says the wrong thing, and one of a container that never existed.
    state_redis.hset(key, "status", "running")
    ghost = "f" * 64
    state_redis.hset(
        f"{service.prefix}container:{ghost}", mapping={"id": ghost, "status": "running"}
    )
    state_redis.sadd(service.keys.containers(), ghost)
    outcome = wait_for(
        lambda: (
            (r := tasks.call("containerizer.maintenance.reconcile")).get("locked") is None and r
        ),
        20,
        "an unlocked reconcile",
        0.2,
    )
    assert outcome["updated"] >= 1 and outcome["removed"] >= 1
    assert state_redis.hget(key, "status") == "exited"
    assert state_redis.hget(f"{service.prefix}container:{ghost}", "status") == "removed"
    assert ghost not in state_redis.smembers(service.keys.containers())


def test_summary_counts_containers_and_the_image_cache(
    tasks: TaskClient, labels: dict[str, str]
) -> None:
    tasks.call(
        "containerizer.containers.run",
        spec={"image": TEST_IMAGE, "command": SLEEPER, "labels": labels},
    )
    summary = tasks.call("containerizer.maintenance.summary")
    containers, images = summary["containers"], summary["images"]
    assert containers["running"] >= 1
    assert containers["total"] == sum(
        v for k, v in containers.items() if k not in ("total", "stopped")
    )
    assert images["budget_bytes"] == 10 * 1024**3
    assert set(images) >= {"cached", "cache_bytes", "budget_bytes", "hit_rate"}


def test_periodic_task_lock_lets_one_run_at_a_time(redis_server: str) -> None:
    client = redis.Redis.from_url(f"{redis_server}/12", decode_responses=True)
    keys = Keys("containerizer-lock-test:")
    try:
        with (
            exclusive(client, keys, "collect_stats", 30) as first,
            exclusive(client, keys, "collect_stats", 30) as second,
        ):
            assert first is True and second is False
        with exclusive(client, keys, "collect_stats", 30) as again:
            assert again is True
    finally:
        client.delete(keys.maintenance_lock("collect_stats"))
        client.close()

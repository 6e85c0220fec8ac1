"""Every container task on a real daemon through real workers, sent by name.

The container's Redis record is checked after each step.
"""

from __future__ import annotations

import time
from typing import Any

import docker
import docker.errors
import pytest
import redis

from tests.integration.support import SLEEPER, TEST_IMAGE, RunningService, TaskClient

pytestmark = pytest.mark.integration


def record(state_redis: redis.Redis, service: RunningService, container_id: str) -> dict[str, Any]:
    return state_redis.hgetall(f"{service.prefix}container:{container_id}")


def test_full_lifecycle_by_task_name(
    tasks: TaskClient,
    state_redis: redis.Redis,
    service: RunningService,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
) -> None:
    name = f"ctz-life-{labels['ctz-test']}"
    command = ["sh", "-c", "echo to-stdout; echo to-stderr >&2; " + SLEEPER[2]]
    spec = {
        "image": TEST_IMAGE,
        "name": name,
        "command": command,
        "labels": labels,
        "mem_limit": "64m",
    }

    created = tasks.call("containerizer.containers.create", spec=spec)
    cid = created["id"]
    assert created == {
        "id": cid,
        "name": name,
        "image": TEST_IMAGE,
        "status": "created",
        "host": service.host,
    }
    assert record(state_redis, service, cid)["status"] == "created"
    assert docker_client.containers.get(cid).attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024

    started = tasks.call("containerizer.containers.start", container=name)
    assert started["id"] == cid and started["status"] == "running"
    assert started["startup_ms"] > 0
    rec = record(state_redis, service, cid)
    assert rec["status"] == "running" and float(rec["startup_ms"]) == started["startup_ms"]

    usage = tasks.call("containerizer.containers.stats", container=cid)
    assert set(usage) == {
        "cpu_percent",
        "memory_usage",
        "memory_limit",
        "network_rx_bytes",
        "network_tx_bytes",
        "block_read",
        "block_write",
        "pids",
    }
    assert usage["memory_limit"] == 64 * 1024 * 1024
    assert 0 < usage["memory_usage"] < usage["memory_limit"]
    assert usage["pids"] >= 2  # sh and sleep
    assert '"pids"' in record(state_redis, service, cid)["stats"]

    deadline = time.monotonic() + 10
    while (
        "to-stderr"
        not in (out := tasks.call("containerizer.containers.logs", container=cid))["logs"]
    ):
        assert time.monotonic() < deadline, out
        time.sleep(0.2)
    assert "to-stdout" in out["logs"] and out["id"] == cid

    by_id = tasks.call("containerizer.containers.inspect", container=cid)
    by_name = tasks.call("containerizer.containers.inspect", container=name)
    assert by_id["Id"] == by_name["Id"] == cid
    assert by_id["State"]["Running"] is True

    listed = tasks.call("containerizer.containers.list", labels={"ctz-test": labels["ctz-test"]})
    assert [(c["id"], c["name"], c["status"]) for c in listed] == [(cid, name, "running")]
    assert listed[0]["labels"]["containerizer.managed"] == "true"

    stopped = tasks.call("containerizer.containers.stop", container=cid, timeout=5)
    assert stopped == {
        "id": cid,
        "status": "exited",
        "exit_code": 0,
        "host": service.host,
        # Why it stopped (additive): the stop's SIGTERM ended it with code 0.
        "oom_killed": False,
        "signal": None,
        "error": None,
        "reason": "completed",
        "finished_at": stopped.get("finished_at") or "missing",
    }
    assert record(state_redis, service, cid)["status"] == "exited"
    assert (
        tasks.call("containerizer.containers.list", labels=[f"ctz-test={labels['ctz-test']}"]) == []
    )
    assert (
        len(
            tasks.call(
                "containerizer.containers.list", all=True, labels={"ctz-test": labels["ctz-test"]}
            )
        )
        == 1
    )

    restarted = tasks.call("containerizer.containers.restart", container=name, timeout=5)
    assert restarted["status"] == "running" and restarted["restart_ms"] > 0
    assert record(state_redis, service, cid)["status"] == "running"

    killed = tasks.call("containerizer.containers.kill", container=name, signal="SIGKILL")
    assert killed == {"id": cid, "status": "exited", "host": service.host}
    rec = record(state_redis, service, cid)
    assert rec["status"] == "exited" and rec["exit_code"] == "137"

    removed = tasks.call("containerizer.containers.remove", container=name)
    assert removed == {"id": cid, "removed": True, "host": service.host}
    assert record(state_redis, service, cid)["status"] == "removed"
    assert cid not in state_redis.smembers(service.keys.containers())
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(cid)
    # A redelivered remove answers the same way.
    assert tasks.call("containerizer.containers.remove", container=cid) == removed


def test_run_starts_a_present_image(
    tasks: TaskClient, labels: dict[str, str], state_redis: redis.Redis, service: RunningService
) -> None:
    result = tasks.call(
        "containerizer.containers.run",
        spec={"image": TEST_IMAGE, "command": SLEEPER, "labels": labels},
    )
    assert result["status"] == "running" and result["pulled"] is False
    assert result["startup_ms"] > 0
    assert result["name"].startswith("containerizer-")
    assert record(state_redis, service, result["id"])["status"] == "running"


def test_remove_running_needs_force(tasks: TaskClient, labels: dict[str, str]) -> None:
    cid = tasks.call(
        "containerizer.containers.run",
        spec={"image": TEST_IMAGE, "command": SLEEPER, "labels": labels},
    )["id"]
    error, _ = tasks.failure("containerizer.containers.remove", container=cid)
    assert type(error).__name__ == "Conflict"
    assert tasks.call("containerizer.containers.remove", container=cid, force=True)["removed"]


def test_stop_of_a_stopped_container_succeeds(tasks: TaskClient, labels: dict[str, str]) -> None:
    cid = tasks.call(
        "containerizer.containers.run",
        spec={"image": TEST_IMAGE, "command": ["sh", "-c", "exit 3"], "labels": labels},
    )["id"]
    deadline = time.monotonic() + 10
    while tasks.call("containerizer.containers.inspect", container=cid)["State"]["Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    first = tasks.call("containerizer.containers.stop", container=cid)
    again = tasks.call("containerizer.containers.stop", container=cid)
    assert first == again
    assert {k: first[k] for k in ("id", "status", "exit_code", "host", "reason")} == {
        "id": cid,
        "status": "exited",
        "exit_code": 3,
        "host": "ctz-test",
        "reason": "failed",
    }


def test_stop_escalates_to_sigkill_after_the_timeout(
    tasks: TaskClient, labels: dict[str, str]
) -> None:
    # `sleep` as PID 1 ignores SIGTERM: only the SIGKILL after the timeout stops it.
    cid = tasks.call(
        "containerizer.containers.run",
        spec={"image": TEST_IMAGE, "command": ["sleep", "1000"], "labels": labels},
    )["id"]
    began = time.monotonic()
    stopped = tasks.call("containerizer.containers.stop", container=cid, timeout=1)
    assert stopped["exit_code"] == 137
    assert 1.0 <= time.monotonic() - began < 10


def test_one_stats_call_is_one_shot(tasks: TaskClient, labels: dict[str, str]) -> None:
    cid = tasks.call(
        "containerizer.containers.run",
        spec={"image": TEST_IMAGE, "command": SLEEPER, "labels": labels},
    )["id"]
    time.sleep(1.5)  # Let dockerd's stats collector go idle, as it is between real calls.
    began = time.monotonic()
    tasks.call("containerizer.containers.stats", container=cid)
    # A two-sample stats call waits 1-2 s for its second sample.
    assert time.monotonic() - began < 0.5


def test_containers_not_managed_are_out_of_reach(
    tasks: TaskClient, docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    foreign = docker_client.containers.create(TEST_IMAGE, SLEEPER, labels=labels)
    for name, kwargs in [
        ("containerizer.containers.stop", {}),
        ("containerizer.containers.inspect", {}),
        ("containerizer.containers.logs", {}),
        ("containerizer.containers.remove", {"force": True}),
    ]:
        error, _ = tasks.failure(name, container=foreign.id, **kwargs)
        assert type(error).__name__ == "ContainerNotFound", name
    foreign.reload()  # still there
    assert (
        tasks.call(
            "containerizer.containers.list", all=True, labels={"ctz-test": labels["ctz-test"]}
        )
        == []
    )


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("containerizer.containers.start", {}),
        ("containerizer.containers.stop", {}),
        ("containerizer.containers.kill", {}),
        ("containerizer.containers.restart", {}),
        ("containerizer.containers.remove", {}),
        ("containerizer.containers.inspect", {}),
        ("containerizer.containers.logs", {}),
        ("containerizer.containers.stats", {}),
    ],
)
def test_unknown_container_is_container_not_found(
    tasks: TaskClient, name: str, kwargs: dict[str, Any]
) -> None:
    error, result = tasks.failure(name, container="ctz-no-such-container", **kwargs)
    assert type(error).__name__ == "ContainerNotFound"
    assert "ctz-no-such-container" in str(error)
    assert result.retries == 0

"""With the state store (Redis) unreachable, tasks fail with StateUnavailable after bounded retries,
leave no container behind, the worker stays up, and tasks succeed again once Redis is back.

The state store here is a private redis-server that the test stops and starts; the broker and the
result backend stay on the shared Redis, so the task's failure can still be reported. The worker is
started with the command line `containerizer up` uses.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import redis

from tests.integration.daemons import PrivateRedis
from tests.integration.support import (
    SLEEPER,
    TEST_IMAGE,
    TaskClient,
    containers_worker,
    require,
)
from workers.keys import Keys

pytestmark = pytest.mark.integration
PREFIX = "containerizer-state-outage:"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    require("redis-server", bool(shutil.which("redis-server")))
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def outage_worker(
    private_redis: PrivateRedis, redis_server: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], TaskClient]]:
    """A containers worker of a deployment of its own, its state in the private Redis."""
    with containers_worker(
        redis_server,
        "state-outage-containers",
        tmp_path / "worker.log",
        CONTAINERIZER_REDIS_URL=f"{private_redis.url}/0",
        CONTAINERIZER_REDIS_PREFIX=PREFIX,
        CONTAINERIZER_RETRY_MAX="2",
        CONTAINERIZER_RETRY_BACKOFF_SECONDS="1",
        CONTAINERIZER_RETRY_BACKOFF_MAX_SECONDS="2",
    ) as running:
        yield running


def test_state_outage_fails_after_bounded_retries_without_leftovers_and_recovers(
    private_redis: PrivateRedis,
    outage_worker: tuple[subprocess.Popen[bytes], TaskClient],
    docker_client: docker.DockerClient,
    labels: dict[str, str],
) -> None:
    worker, tasks = outage_worker
    name = f"ctz-state-outage-{labels['ctz-test']}"
    spec = {
        "image": TEST_IMAGE,
        "name": name,
        "command": SLEEPER,
        "labels": labels,
        "network_mode": "none",
    }
    keys = Keys(PREFIX, "state-outage-containers")

    private_redis.stop()
    began = time.monotonic()
    error, result = tasks.failure("containerizer.containers.create", spec=spec)
    assert type(error).__name__ == "StateUnavailable", repr(error)
    assert result.retries == 2  # CONTAINERIZER_RETRY_MAX: bounded
    assert time.monotonic() - began < 60
    # Each attempt's container was removed again when its record could not be written.
    assert docker_client.containers.list(all=True, filters={"name": name}) == []
    assert worker.poll() is None, "the worker must survive the outage"

    private_redis.start()
    created = tasks.call("containerizer.containers.create", spec=spec)
    state = redis.Redis.from_url(f"{private_redis.url}/0", decode_responses=True)
    try:
        assert state.hget(keys.container(created["id"]), "status") == "created"
        started = tasks.call("containerizer.containers.start", container=name)
        assert started["status"] == "running"
        removed = tasks.call("containerizer.containers.remove", container=name, force=True)
        assert removed == {"id": created["id"], "removed": True, "host": created["host"]}
        assert state.hget(keys.container(created["id"]), "status") == "removed"
    finally:
        state.close()
    assert docker_client.containers.list(all=True, filters={"name": name}) == []

"""One Redis prefix holds the state of one Docker daemon: a worker pointed at another daemon
refuses to act instead of corrupting that daemon's records."""

from __future__ import annotations

import uuid
from pathlib import Path

import docker
import pytest
import redis

from tests.integration.support import SLEEPER, TEST_IMAGE, containers_worker, delete_keys
from workers.keys import Keys

pytestmark = pytest.mark.integration
STATE_DB = 9  # Shared with other store-level tests; each uses a prefix of its own.


def test_a_prefix_that_belongs_to_another_daemon_is_refused_until_released(
    redis_server: str,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
    tmp_path: Path,
) -> None:
    prefix = f"containerizer-claim-{uuid.uuid4().hex[:8]}:"
    key = Keys(prefix).docker_host()
    state = redis.Redis.from_url(f"{redis_server}/{STATE_DB}", decode_responses=True)
    state.set(key, "ANOTHER:DOCKER:HOST")
    name = f"ctz-claim-{labels['ctz-test']}"
    spec = {"image": TEST_IMAGE, "name": name, "command": SLEEPER, "labels": labels}
    try:
        with containers_worker(
            redis_server,
            "claim-containers",
            tmp_path / "worker.log",
            CONTAINERIZER_REDIS_URL=f"{redis_server}/{STATE_DB}",
            CONTAINERIZER_REDIS_PREFIX=prefix,
        ) as (worker, tasks):
            error, result = tasks.failure("containerizer.containers.create", spec=spec)
            assert type(error).__name__ == "ConfigurationError", repr(error)
            assert "ANOTHER:DOCKER:HOST" in str(error) and key in str(error)
            assert result.retries == 0
            assert docker_client.containers.list(all=True, filters={"name": name}) == []
            assert worker.poll() is None

            state.delete(key)  # What the message tells an operator to do.
            created = tasks.call("containerizer.containers.create", spec=spec)
            assert state.get(key) == docker_client.info()["ID"]
            assert tasks.call("containerizer.containers.remove", container=created["id"])
    finally:
        delete_keys(state, prefix)
        state.close()

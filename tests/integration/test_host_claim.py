"""A host name serves one Docker daemon, and a daemon one host name: a worker whose daemon is not
the one its host name is bound to refuses to act instead of corrupting that host's records. State a
single-host deployment wrote (before hosts) is adopted by the host whose daemon wrote it."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import docker
import pytest
import redis

from tests.integration.support import SLEEPER, TEST_IMAGE, containers_worker, delete_keys
from workers.keys import Keys
from workers.spec import MANAGED_LABEL

pytestmark = pytest.mark.integration
STATE_DB = 9  # Shared with other store-level tests; each uses a prefix of its own.


def test_a_host_name_bound_to_another_daemon_is_refused_until_released(
    redis_server: str,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
    tmp_path: Path,
) -> None:
    prefix = f"containerizer-claim-{uuid.uuid4().hex[:8]}:"
    keys = Keys(prefix, "claimer")
    state = redis.Redis.from_url(f"{redis_server}/{STATE_DB}", decode_responses=True)
    state.set(keys.daemon_id(), "ANOTHER:DOCKER:DAEMON")
    name = f"ctz-claim-{labels['ctz-test']}"
    spec = {"image": TEST_IMAGE, "name": name, "command": SLEEPER, "labels": labels}
    try:
        with containers_worker(
            redis_server,
            "claim-containers",
            tmp_path / "worker.log",
            CONTAINERIZER_REDIS_URL=f"{redis_server}/{STATE_DB}",
            CONTAINERIZER_REDIS_PREFIX=prefix,
            CONTAINERIZER_HOST_NAME="claimer",
        ) as (worker, tasks):
            error, result = tasks.failure("containerizer.containers.create", spec=spec)
            assert type(error).__name__ == "ConfigurationError", repr(error)
            assert "ANOTHER:DOCKER:DAEMON" in str(error) and keys.daemon_id() in str(error)
            assert result.retries == 0
            assert docker_client.containers.list(all=True, filters={"name": name}) == []
            assert worker.poll() is None

            state.delete(keys.daemon_id())  # What the message tells an operator to do.
            created = tasks.call("containerizer.containers.create", spec=spec)
            daemon_id = docker_client.info()["ID"]
            assert state.get(keys.daemon_id()) == daemon_id
            assert state.get(keys.daemon_host(daemon_id)) == "claimer"
            assert tasks.call("containerizer.containers.remove", container=created["id"])
    finally:
        delete_keys(state, prefix)
        state.close()


def test_single_host_state_is_adopted_by_the_host_whose_daemon_wrote_it(
    redis_server: str,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
    tmp_path: Path,
) -> None:
    prefix = f"containerizer-legacy-{uuid.uuid4().hex[:8]}:"
    state = redis.Redis.from_url(f"{redis_server}/{STATE_DB}", decode_responses=True)
    name = f"ctz-legacy-{labels['ctz-test']}"
    container = docker_client.containers.run(
        TEST_IMAGE, SLEEPER, name=name, labels={**labels, MANAGED_LABEL: "true"}, detach=True
    )
    daemon_id = docker_client.info()["ID"]
    # What the single-host version wrote: its record, live set, name index, image cache, daemon.
    state.hset(
        f"{prefix}container:{container.id}",
        mapping={
            "id": container.id,
            "name": name,
            "image": TEST_IMAGE,
            "status": "running",
            "status_at_us": "0",
            "labels": json.dumps(labels),
            "updated_at": json.dumps(time.time()),
        },
    )
    state.sadd(f"{prefix}containers", container.id)
    state.set(f"{prefix}container-name:{name}", container.id)
    state.hset(f"{prefix}image:sha256:abc", mapping={"id": "sha256:abc", "references": "[]"})
    state.zadd(f"{prefix}images", {"sha256:abc": 1.0})
    state.sadd(f"{prefix}images:owned", "docker.io/library/x:1")
    state.set(f"{prefix}docker-host", daemon_id)
    keys = Keys(prefix, "legacy")
    try:
        with containers_worker(
            redis_server,
            "legacy-containers",
            tmp_path / "worker.log",
            CONTAINERIZER_REDIS_URL=f"{redis_server}/{STATE_DB}",
            CONTAINERIZER_REDIS_PREFIX=prefix,
            CONTAINERIZER_HOST_NAME="legacy",
        ) as (_, tasks):
            stopped = tasks.call("containerizer.containers.stop", container=name, timeout=5)
            assert stopped["id"] == container.id and stopped["status"] == "exited"
            assert state.smembers(keys.containers()) == {container.id}
            assert state.hget(keys.container(container.id), "host") == "legacy"
            assert state.zrange(keys.images(), 0, -1) == ["sha256:abc"]
            assert state.sismember(keys.owned_references(), "docker.io/library/x:1")
            assert not state.exists(f"{prefix}containers", f"{prefix}docker-host")
            assert not state.exists(f"{prefix}image:sha256:abc", f"{prefix}images")
            removed = tasks.call("containerizer.containers.remove", container=name)
            assert removed == {"id": container.id, "removed": True, "host": "legacy"}
    finally:
        delete_keys(state, prefix)
        state.close()

"""With the Docker daemon stopped, tasks fail with DockerUnavailable after bounded retries, the
worker stays up, and tasks succeed again once the daemon is back; the events watcher follows the
daemon across its restart.

This test runs a second, private dockerd (its own socket, data root, exec root and bridge, as
DESIGN.md describes) so that stopping it does not disturb the daemon the other tests use, and a
containers worker started with the same command line `containerizer up` uses.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import redis

from tests.integration.daemons import PrivateDockerd
from tests.integration.daemons import private_dockerd as private_dockerd_of
from tests.integration.support import (
    TEST_IMAGE,
    WATCHER_HOST,
    TaskClient,
    containers_worker,
    delete_keys,
    start_watcher,
    stop_process,
    wait_for,
)
from workers.keys import Keys
from workers.models import ContainerInfo
from workers.spec import MANAGED_LABEL
from workers.state import StateStore

pytestmark = pytest.mark.integration

WATCHER_STATE_DB = 9  # Shared with other store-level tests; each uses a prefix of its own.
BRIDGE = "ctztest0"
BRIDGE_ADDRESS = "198.18.250.1/24"  # Benchmarking range: never routed anywhere.


@pytest.fixture
def private_dockerd(docker_client: docker.DockerClient) -> Iterator[PrivateDockerd]:
    with private_dockerd_of(
        docker_client, TEST_IMAGE, bridge=BRIDGE, address=BRIDGE_ADDRESS
    ) as daemon:
        yield daemon


@pytest.fixture
def outage_worker(
    private_dockerd: PrivateDockerd, redis_server: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], TaskClient]]:
    """A containers worker of a deployment of its own, talking to the private dockerd."""
    state_url = f"{redis_server}/15"
    state = redis.Redis.from_url(state_url)
    state.flushdb()  # Nothing of an earlier run's private daemon.
    state.close()
    with containers_worker(
        redis_server,
        "outage-containers",
        tmp_path / "worker.log",
        DOCKER_HOST=private_dockerd.url,
        CONTAINERIZER_REDIS_URL=state_url,
        CONTAINERIZER_RETRY_MAX="3",
        CONTAINERIZER_RETRY_BACKOFF_SECONDS="0.5",
        CONTAINERIZER_RETRY_BACKOFF_MAX_SECONDS="2",
    ) as running:
        yield running


def test_daemon_outage_fails_after_bounded_retries_and_recovers(
    private_dockerd: PrivateDockerd, outage_worker: tuple[subprocess.Popen[bytes], TaskClient]
) -> None:
    worker, tasks = outage_worker
    spec = {"image": TEST_IMAGE, "command": ["true"], "network_mode": "none"}
    assert tasks.call("containerizer.containers.list", all=True) == []

    private_dockerd.stop()
    for name, kwargs in [
        ("containerizer.containers.create", {"spec": spec}),
        ("containerizer.containers.run", {"spec": {**spec, "name": "outage-run"}}),
    ]:
        began = time.monotonic()
        error, result = tasks.failure(name, **kwargs)
        assert type(error).__name__ == "DockerUnavailable", f"{name}: {error!r}"
        assert result.retries == 3, name  # CONTAINERIZER_RETRY_MAX: bounded
        assert time.monotonic() - began < 30
    assert worker.poll() is None, "the worker must survive the outage"

    private_dockerd.start()
    created = tasks.call("containerizer.containers.create", spec=spec)
    listed = tasks.call("containerizer.containers.list", all=True)
    assert [c["id"] for c in listed] == [created["id"]]
    assert tasks.call("containerizer.containers.remove", container=created["id"])["removed"]


def test_the_events_watcher_follows_the_daemon_across_a_restart(
    private_dockerd: PrivateDockerd, redis_server: str, tmp_path: Path
) -> None:
    prefix = f"containerizer-reconnect-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(f"{redis_server}/{WATCHER_STATE_DB}", decode_responses=True)
    state = StateStore(client, Keys(prefix, WATCHER_HOST))
    daemon = docker.DockerClient(base_url=private_dockerd.url, timeout=60)
    log = tmp_path / "events.log"

    def managed(command: list[str]) -> Any:
        container = daemon.containers.create(
            TEST_IMAGE, command, labels={MANAGED_LABEL: "true"}, network_mode="none"
        )
        state.record(ContainerInfo.from_attrs(container.attrs))  # as a create task would
        return container

    def wait_for_record(container_id: str, **fields: Any) -> None:
        def matches() -> bool:
            assert watcher.poll() is None, log.read_text(errors="replace")
            record = state.get(container_id) or {}
            return all(record.get(k) == v for k, v in fields.items())

        wait_for(matches, 60, f"record of {container_id[:12]} with {fields}", 0.1)

    watcher = start_watcher(
        log,
        DOCKER_HOST=private_dockerd.url,
        CONTAINERIZER_REDIS_URL=f"{redis_server}/{WATCHER_STATE_DB}",
        CONTAINERIZER_REDIS_PREFIX=prefix,
    )
    try:
        first = managed(["sh", "-c", "exit 3"])
        first.start()
        wait_for_record(first.id, status="exited", exit_code=3)

        private_dockerd.stop()
        private_dockerd.start()

        # Only a stream opened after the restart can carry this container's events.
        second = managed(["sh", "-c", "exit 7"])
        second.start()
        wait_for_record(second.id, status="exited", exit_code=7)
        assert "event stream" in log.read_text(errors="replace")  # it did lose the stream
    finally:
        assert stop_process(watcher) == 0, log.read_text(errors="replace")
        delete_keys(client, prefix)
        client.close()
        daemon.close()

"""The events watcher resumes from the last event it applied: nothing is missed while it is down."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import redis

from tests.integration.support import (
    TEST_IMAGE,
    WATCHER_HOST,
    delete_keys,
    start_watcher,
    stop_process,
)
from workers.keys import Keys
from workers.models import ContainerInfo
from workers.spec import MANAGED_LABEL
from workers.state import StateStore

pytestmark = pytest.mark.integration
STATE_DB = 9  # Nobody else's: this test runs a watcher of its own and no workers.


@pytest.fixture
def store(redis_server: str) -> Iterator[tuple[StateStore, str]]:
    prefix = f"containerizer-events-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(f"{redis_server}/{STATE_DB}", decode_responses=True)
    yield StateStore(client, Keys(prefix, WATCHER_HOST)), prefix
    delete_keys(client, prefix)
    client.close()


def test_events_that_happen_while_the_watcher_is_down_are_applied_when_it_is_back(
    docker_client: docker.DockerClient,
    redis_server: str,
    store: tuple[StateStore, str],
    labels: dict[str, str],
    tmp_path: Path,
) -> None:
    state, prefix = store
    log = tmp_path / "events.log"
    container = docker_client.containers.create(
        TEST_IMAGE,
        ["sh", "-c", "sleep 0.5; exit 4"],
        labels={**labels, MANAGED_LABEL: "true"},
    )
    state.record(ContainerInfo.from_attrs(container.attrs))  # as a create task would

    env = {
        "CONTAINERIZER_REDIS_URL": f"{redis_server}/{STATE_DB}",
        "CONTAINERIZER_REDIS_PREFIX": prefix,
    }
    watcher = start_watcher(log, **env)
    try:
        container.start()
        deadline = time.monotonic() + 10
        while (state.get(container.id) or {}).get("status") != "running":
            assert time.monotonic() < deadline, state.get(container.id)
            time.sleep(0.05)
    finally:
        assert stop_process(watcher) == 0, log.read_text()

    # The container exits while no watcher runs.
    container.wait(timeout=30)
    assert state.get(container.id)["status"] == "running"

    watcher = start_watcher(log, **env)
    try:
        deadline = time.monotonic() + 20
        while (record := state.get(container.id) or {}).get("status") != "exited":
            assert time.monotonic() < deadline, (record, log.read_text())
            time.sleep(0.1)
        assert record["exit_code"] == 4
    finally:
        stop_process(watcher)

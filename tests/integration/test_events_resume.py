"""The events watcher resumes from the last event it applied: nothing is missed while it is down."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import redis

from tests.integration.support import TEST_IMAGE, stop_process
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
    yield StateStore(client, Keys(prefix)), prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def start_watcher(redis_server: str, prefix: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CONTAINERIZER_REDIS_URL": f"{redis_server}/{STATE_DB}",
        "CONTAINERIZER_REDIS_PREFIX": prefix,
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tasks.cli", "events"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


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

    watcher = start_watcher(redis_server, prefix, log)
    try:
        deadline = time.monotonic() + 20
        while b"following Docker events" not in log.read_bytes():
            assert time.monotonic() < deadline and watcher.poll() is None, log.read_text()
            time.sleep(0.1)
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

    watcher = start_watcher(redis_server, prefix, log)
    try:
        deadline = time.monotonic() + 20
        while (record := state.get(container.id) or {}).get("status") != "exited":
            assert time.monotonic() < deadline, (record, log.read_text())
            time.sleep(0.1)
        assert record["exit_code"] == 4
    finally:
        stop_process(watcher)

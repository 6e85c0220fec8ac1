"""The engine's streams against the real dockerd: a followed log stream ends at its bound even
when the container prints nothing (the live-log follower's limit rests on it)."""

from __future__ import annotations

import time

import docker
import pytest

from config.settings import Settings
from tests.integration.support import SLEEPER, TEST_IMAGE
from workers.engine import Engine

pytestmark = pytest.mark.integration


def test_following_a_silent_container_ends_at_the_bound(
    docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    container = docker_client.containers.run(
        TEST_IMAGE, SLEEPER, detach=True, labels=labels, network_mode="none"
    )
    engine = Engine.connect(Settings())
    try:
        began = time.monotonic()
        frames = list(engine.follow_logs(str(container.id), seconds=1.0))
        took = time.monotonic() - began
        assert frames == []  # It said nothing...
        assert 0.9 < took < 5.0  # ...and the follow ended at its bound, not with the container.
        container.reload()
        assert container.status == "running"
    finally:
        engine.close()

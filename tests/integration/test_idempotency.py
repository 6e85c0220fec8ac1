"""Redelivery is safe: repeated creates find their container; names clash only across specs."""

from __future__ import annotations

import uuid

import docker
import pytest

from tests.integration.support import SLEEPER, TEST_IMAGE, TaskClient

pytestmark = pytest.mark.integration


def test_same_name_same_spec_returns_the_existing_container(
    tasks: TaskClient, labels: dict[str, str]
) -> None:
    spec = {
        "image": TEST_IMAGE,
        "name": f"ctz-idem-{labels['ctz-test']}",
        "command": SLEEPER,
        "labels": labels,
    }
    first = tasks.call("containerizer.containers.create", spec=spec)
    second = tasks.call("containerizer.containers.create", spec=dict(reversed(list(spec.items()))))
    assert first == second


def test_same_name_other_spec_is_a_conflict(
    tasks: TaskClient, docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    spec = {
        "image": TEST_IMAGE,
        "name": f"ctz-clash-{labels['ctz-test']}",
        "command": SLEEPER,
        "labels": labels,
    }
    tasks.call("containerizer.containers.create", spec=spec)
    error, result = tasks.failure(
        "containerizer.containers.create", spec={**spec, "user": "nobody"}
    )
    assert type(error).__name__ == "Conflict"
    assert result.retries == 0
    found = docker_client.containers.list(
        all=True, filters={"label": f"ctz-test={labels['ctz-test']}"}
    )
    assert len(found) == 1


def test_redelivered_create_without_a_name_makes_one_container(
    tasks: TaskClient, docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    task_id = str(uuid.uuid4())
    spec = {"image": TEST_IMAGE, "command": SLEEPER, "labels": labels}
    first = tasks.send("containerizer.containers.create", spec=spec, task_id=task_id).get(
        timeout=60
    )
    # The broker redelivers the same message (same task id) after a lost worker.
    second = tasks.send("containerizer.containers.create", spec=spec, task_id=task_id).get(
        timeout=60
    )
    assert first["id"] == second["id"]
    assert first["name"] == f"containerizer-{task_id}"
    found = docker_client.containers.list(
        all=True, filters={"label": f"ctz-test={labels['ctz-test']}"}
    )
    assert [c.id for c in found] == [first["id"]]

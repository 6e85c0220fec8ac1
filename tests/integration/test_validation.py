"""Bad input fails at once with its documented error, creates nothing in Docker, never retries."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import docker
import pytest

from tests.integration.support import TEST_IMAGE, TaskClient

pytestmark = pytest.mark.integration


def _spec(labels: dict[str, str], **fields: Any) -> dict[str, Any]:
    return {"image": TEST_IMAGE, "command": ["true"], "labels": labels, **fields}


INVALID: list[tuple[str, Any]] = [
    ("image UPPER/Case", {"image": "UPPER/Case"}),
    ("mem_limit -1", {"mem_limit": -1}),
    ("mem_limit 4m", {"mem_limit": "4m"}),
    ("unknown field", {"not_a_field": 1}),
    ("name a", {"name": "a"}),
]
DENIED: list[tuple[str, Any]] = [
    ("privileged", {"privileged": True}),
    ("docker socket bind", {"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]}),
    ("root bind", {"volumes": {"/": {"bind": "/host", "mode": "ro"}}}),
    ("host network", {"network_mode": "host"}),
    ("cap_add SYS_ADMIN", {"cap_add": ["SYS_ADMIN"]}),
]


def _assert_fails_fast(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
    task: str,
    error_name: str,
    /,
    **kwargs: Any,
) -> BaseException:
    since = datetime.now(UTC)
    began = time.monotonic()
    error, result = tasks.failure(task, **kwargs)
    elapsed = time.monotonic() - began
    assert type(error).__name__ == error_name, f"{type(error).__name__}: {error}"
    assert result.retries == 0
    assert elapsed < 5, f"took {elapsed:.1f} s: retried?"
    created = docker_client.events(
        since=since,
        until=datetime.now(UTC),
        decode=True,
        filters={"type": "container", "event": "create", "label": f"ctz-test={labels['ctz-test']}"},
    )
    assert list(created) == []
    assert (
        docker_client.containers.list(all=True, filters={"label": f"ctz-test={labels['ctz-test']}"})
        == []
    )
    return error


@pytest.mark.parametrize(
    "task", ["containerizer.containers.create", "containerizer.containers.run"]
)
@pytest.mark.parametrize("case, fields", INVALID, ids=[case for case, _ in INVALID])
def test_invalid_spec(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
    task: str,
    case: str,
    fields: dict[str, Any],
) -> None:
    error = _assert_fails_fast(
        tasks, docker_client, labels, task, "InvalidSpec", spec=_spec(labels, **fields)
    )
    field = next(iter(fields))
    assert field in str(error)


@pytest.mark.parametrize("spec", [["not", "an", "object"], "busybox", 42, None])
def test_spec_that_is_not_an_object(
    tasks: TaskClient, docker_client: docker.DockerClient, labels: dict[str, str], spec: Any
) -> None:
    _assert_fails_fast(
        tasks, docker_client, labels, "containerizer.containers.create", "InvalidSpec", spec=spec
    )


@pytest.mark.parametrize("case, fields", DENIED, ids=[case for case, _ in DENIED])
def test_policy_violation(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
    case: str,
    fields: dict[str, Any],
) -> None:
    error = _assert_fails_fast(
        tasks,
        docker_client,
        labels,
        "containerizer.containers.create",
        "PolicyViolation",
        spec=_spec(labels, **fields),
    )
    field = next(iter(fields))
    assert str(error).startswith(f"{field}:")


@pytest.mark.parametrize(
    "task, kwargs",
    [
        ("containerizer.containers.stop", {"container": "x1", "timeout": "soon"}),
        ("containerizer.containers.stop", {"container": "x1", "unexpected": True}),
        ("containerizer.containers.kill", {"container": "x1", "signal": "SIGNOPE"}),
        ("containerizer.containers.remove", {"container": "x1", "force": "false"}),
        ("containerizer.containers.logs", {"container": "x1", "tail": -1}),
        ("containerizer.containers.list", {"labels": 5}),
        ("containerizer.containers.start", {"container": "../etc"}),
        ("containerizer.containers.start", {}),
    ],
)
def test_invalid_arguments(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
    task: str,
    kwargs: dict[str, Any],
) -> None:
    _assert_fails_fast(tasks, docker_client, labels, task, "InvalidSpec", **kwargs)

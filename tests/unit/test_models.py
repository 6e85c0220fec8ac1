"""ContainerInfo, ContainerStatus and Docker's timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from workers.models import ContainerInfo, ContainerStatus, parse_docker_time

NEVER = "0001-01-01T00:00:00Z"


def inspect_doc(status: str = "running", **state: Any) -> dict[str, Any]:
    """An inspect document trimmed to what matters, with Docker's own spellings."""
    return {
        "Id": "4f66ad9a0b2e" + "0" * 52,
        "Created": "2024-05-01T12:00:00.123456789Z",
        "Path": "sleep",
        "Args": ["60"],
        "State": {
            "Status": status,
            "Running": status == "running",
            "Paused": False,
            "Restarting": False,
            "OOMKilled": False,
            "Dead": False,
            "Pid": 4242 if status == "running" else 0,
            "ExitCode": 0,
            "Error": "",
            "StartedAt": "2024-05-01T12:00:01.5Z",
            "FinishedAt": NEVER,
            **state,
        },
        "Image": "sha256:" + "a" * 64,
        "Name": "/web",
        "Config": {
            "Image": "busybox:1.36",
            "Labels": {"containerizer.managed": "true", "team": "a"},
        },
    }


def test_from_attrs_running() -> None:
    info = ContainerInfo.from_attrs(inspect_doc())
    assert info == ContainerInfo(
        id="4f66ad9a0b2e" + "0" * 52,
        name="web",
        image="busybox:1.36",
        status=ContainerStatus.RUNNING,
        image_id=inspect_doc()["Image"],
        labels={"containerizer.managed": "true", "team": "a"},
        created_at="2024-05-01T12:00:00.123456789Z",
        started_at="2024-05-01T12:00:01.5Z",
        finished_at=None,
        exit_code=None,
        oom_killed=False,
    )


def test_from_attrs_exited_has_exit_code_and_finish() -> None:
    info = ContainerInfo.from_attrs(
        inspect_doc(
            "exited", ExitCode=137, OOMKilled=True, FinishedAt="2024-05-01T12:05:00.000000001Z"
        )
    )
    assert info.status is ContainerStatus.EXITED
    assert info.exit_code == 137
    assert info.oom_killed is True
    assert info.finished_at == "2024-05-01T12:05:00.000000001Z"


def test_from_attrs_dead_has_exit_code() -> None:
    assert ContainerInfo.from_attrs(inspect_doc("dead", ExitCode=1)).exit_code == 1


@pytest.mark.parametrize("status", ["created", "running", "paused", "restarting", "removing"])
def test_exit_code_only_when_stopped(status: str) -> None:
    assert ContainerInfo.from_attrs(inspect_doc(status, ExitCode=3)).exit_code is None


def test_created_container_has_no_times_but_creation() -> None:
    info = ContainerInfo.from_attrs(inspect_doc("created", StartedAt=NEVER, FinishedAt=NEVER))
    assert info.status is ContainerStatus.CREATED
    assert info.started_at is None
    assert info.finished_at is None
    assert info.created_at == "2024-05-01T12:00:00.123456789Z"


def test_from_attrs_of_a_sparse_document() -> None:
    info = ContainerInfo.from_attrs({"Id": "abc"})
    assert info == ContainerInfo(id="abc", name="", image="", status=ContainerStatus.DEAD)
    info = ContainerInfo.from_attrs({"Id": "abc", "Config": {"Labels": None}, "State": None})
    assert info.labels == {}


def test_from_attrs_labels_are_a_copy() -> None:
    doc = inspect_doc()
    info = ContainerInfo.from_attrs(doc)
    doc["Config"]["Labels"]["team"] = "b"
    assert info.labels["team"] == "a"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(s.value, s) for s in ContainerStatus]
    + [("", ContainerStatus.DEAD), ("Running", ContainerStatus.DEAD), ("up", ContainerStatus.DEAD)],
)
def test_status_from_docker(value: str, expected: ContainerStatus) -> None:
    assert ContainerStatus.from_docker(value) is expected


def test_status_values_are_strings() -> None:
    assert ContainerStatus.RUNNING == "running"
    assert ContainerStatus.REMOVED.value == "removed"


def test_parse_docker_time_whole_seconds() -> None:
    assert parse_docker_time("2024-05-01T12:34:56Z") == datetime(2024, 5, 1, 12, 34, 56, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "microseconds"),
    [
        ("2024-05-01T12:34:56.123456789Z", 123456),
        ("2024-05-01T12:34:56.5Z", 500000),
        ("2024-05-01T12:34:56.000000001Z", 0),
        ("2024-05-01T12:34:56.1234567Z", 123456),
    ],
)
def test_parse_docker_time_fractions_keep_utc(value: str, microseconds: int) -> None:
    parsed = parse_docker_time(value)
    assert parsed.microsecond == microseconds
    assert parsed.utcoffset() == timedelta(0)
    assert parsed == datetime(2024, 5, 1, 12, 34, 56, microseconds, tzinfo=UTC)


def test_parse_docker_time_with_offset_and_nanoseconds() -> None:
    parsed = parse_docker_time("2024-05-01T12:34:56.123456789-07:00")
    assert parsed == datetime(2024, 5, 1, 12, 34, 56, 123456, tzinfo=timezone(timedelta(hours=-7)))
    assert parsed == datetime(2024, 5, 1, 19, 34, 56, 123456, tzinfo=UTC)


def test_parse_docker_time_of_inspect_values() -> None:
    doc = inspect_doc()
    started = parse_docker_time(doc["State"]["StartedAt"])
    created = parse_docker_time(doc["Created"])
    assert started - created == timedelta(seconds=1, microseconds=376544)

"""Plain data of the domain layer: container states and what Docker says of a container."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any


class ContainerStatus(str, Enum):
    """A managed container's state: Docker's own states, plus ``removed`` once it is gone."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"
    REMOVED = "removed"

    @classmethod
    def from_docker(cls, value: str) -> ContainerStatus:
        """Docker's ``State.Status``; anything unexpected is reported as ``dead``."""
        try:
            return cls(value)
        except ValueError:
            return cls.DEAD


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """The facts of one container, from ``docker inspect``."""

    id: str
    name: str
    image: str
    status: ContainerStatus
    image_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    oom_killed: bool = False

    @property
    def status_at_us(self) -> int:
        """When the status this snapshot shows began, in microseconds on Docker's clock: its
        latest create, start or finish. Orders snapshots against events (see StateStore)."""
        times = (self.created_at, self.started_at, self.finished_at)
        return max((docker_time_us(value) for value in times if value), default=0)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> ContainerInfo:
        """Build from an inspect document."""
        state = attrs.get("State") or {}
        config = attrs.get("Config") or {}
        status = ContainerStatus.from_docker(str(state.get("Status", "dead")))
        stopped = status in (ContainerStatus.EXITED, ContainerStatus.DEAD)
        return cls(
            id=attrs["Id"],
            name=str(attrs.get("Name", "")).lstrip("/"),
            image=str(config.get("Image", "")),
            status=status,
            image_id=attrs.get("Image") or None,
            labels=dict(config.get("Labels") or {}),
            created_at=_timestamp(attrs.get("Created")),
            started_at=_timestamp(state.get("StartedAt")),
            finished_at=_timestamp(state.get("FinishedAt")),
            exit_code=int(state["ExitCode"]) if stopped and "ExitCode" in state else None,
            oom_killed=bool(state.get("OOMKilled", False)),
        )


def _timestamp(value: object) -> str | None:
    """Docker reports never-set times as ``0001-01-01T00:00:00Z``; those are None here."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    return value


_DOCKER_TIME_RE = re.compile(
    r"(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d\d:\d\d)?"
)


def parse_docker_time(value: str) -> datetime:
    """Parse Docker's RFC 3339 timestamps, whose fractions have up to 9 digits.

    Raises:
        ValueError: when ``value`` is not such a timestamp.
    """
    match = _DOCKER_TIME_RE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not a Docker timestamp: {value!r}")
    fraction = (match["fraction"] or "").ljust(6, "0")[:6]
    zone = match["zone"] or "Z"
    return datetime.fromisoformat(f"{match['base']}.{fraction}{'+00:00' if zone == 'Z' else zone}")


def docker_time_us(value: str) -> int:
    """A Docker timestamp as microseconds since the epoch (see :func:`parse_docker_time`)."""
    return (parse_docker_time(value) - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

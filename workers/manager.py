"""ContainerManager: one method per container task. Validates, acts through Docker, records state.

This is what the Celery tasks call; it has no Celery in it and can be driven from a plain script.
"""

from __future__ import annotations

import logging
from typing import Any

from config.settings import Settings
from workers.docker_service import DockerService
from workers.errors import ContainerNotFound
from workers.models import ContainerInfo, ContainerStatus, parse_docker_time
from workers.policy import Policy
from workers.spec import ContainerSpec, parse_spec
from workers.state import StateStore
from workers.stats import cpu_sample, resource_usage

log = logging.getLogger(__name__)


class ContainerManager:
    """The container side of containerizer. Takes its collaborators in."""

    def __init__(
        self, docker: DockerService, state: StateStore, policy: Policy, settings: Settings
    ) -> None:
        self.docker = docker
        self.state = state
        self.policy = policy
        self.settings = settings

    def validate(self, spec: object, *, default_name: str | None = None) -> ContainerSpec:
        """Parse and policy-check a caller's spec; nothing reaches Docker.

        ``default_name`` names a container whose spec has none (the task id, so that a
        redelivered create finds the container it made the first time).

        Raises:
            InvalidSpec, PolicyViolation.
        """
        parsed = parse_spec(spec)
        self.policy.check(parsed)
        if parsed.name is None and default_name is not None:
            parsed = parsed.with_name(default_name)
        return parsed

    def create(self, spec: ContainerSpec) -> dict[str, Any]:
        """Create (or find the identical earlier) container and record it."""
        created = self.docker.create(spec)
        info = created.info
        self.state.record(info)
        log.info(
            "created container %s (%s) from %s%s",
            info.name,
            info.id[:12],
            info.image,
            " (already existed)" if created.existed else "",
        )
        return _summary(info)

    def start(self, reference: str) -> dict[str, Any]:
        """Start a container, recording startup_ms; a slow start logs a warning."""
        timed = self.docker.start(reference)
        info = timed.info
        self.state.record(info, startup_ms=timed.milliseconds)
        if timed.milliseconds > self.settings.startup_warning_seconds * 1000:
            log.warning(
                "container %s took %.0f ms to start (threshold %.0f ms)",
                info.name,
                timed.milliseconds,
                self.settings.startup_warning_seconds * 1000,
            )
        return {"id": info.id, "status": info.status.value, "startup_ms": timed.milliseconds}

    def run(self, spec: ContainerSpec) -> dict[str, Any]:
        """Create then start (the image must be present)."""
        created = self.create(spec)
        started = self.start(created["id"])
        return {**created, "status": started["status"], "startup_ms": started["startup_ms"]}

    def stop(self, reference: str, timeout: int) -> dict[str, Any]:
        """Stop gracefully; a stopped container stays stopped and the call succeeds."""
        info = self.docker.stop(reference, timeout)
        self.state.record(info)
        return {"id": info.id, "status": info.status.value, "exit_code": info.exit_code}

    def kill(self, reference: str, signal: str) -> dict[str, Any]:
        """Send a signal."""
        info = self.docker.kill(reference, signal)
        self.state.record(info)
        return {"id": info.id, "status": info.status.value}

    def restart(self, reference: str, timeout: int) -> dict[str, Any]:
        """Restart, recording restart_ms."""
        timed = self.docker.restart(reference, timeout)
        self.state.record(timed.info, restart_ms=timed.milliseconds)
        return {
            "id": timed.info.id,
            "status": timed.info.status.value,
            "restart_ms": timed.milliseconds,
        }

    def remove(self, reference: str, *, force: bool, volumes: bool) -> dict[str, Any]:
        """Remove a container. Removing one this service already removed succeeds again.

        Raises:
            ContainerNotFound: Docker has no such managed container and the store no record of
                removing it.
        """
        try:
            info = self.docker.remove(reference, force=force, volumes=volumes)
        except ContainerNotFound:
            record = self.state.find(reference)
            if record is None or record.get("status") != ContainerStatus.REMOVED.value:
                raise
            return {"id": record["id"], "removed": True}
        self.state.record_removed(info.id)
        log.info("removed container %s (%s)", info.name, info.id[:12])
        return {"id": info.id, "removed": True}

    def inspect(self, reference: str) -> dict[str, Any]:
        """The engine's inspect document (and a refreshed record)."""
        attrs = self.docker.inspect(reference)
        self.state.record(ContainerInfo.from_attrs(attrs))
        return attrs

    def logs(self, reference: str, *, tail: int, timestamps: bool) -> dict[str, Any]:
        """Recent stdout and stderr."""
        info = self.docker.info(reference)
        return {"id": info.id, "logs": self.docker.logs(info.id, tail=tail, timestamps=timestamps)}

    def list(self, *, all: bool, labels: list[str]) -> list[dict[str, Any]]:
        """Managed containers."""
        return self.docker.list(all=all, labels=labels)

    def stats(self, reference: str) -> dict[str, Any]:
        """ResourceUsage from one one-shot sample, CPU % against the previous kept sample."""
        info = self.docker.info(reference)
        return self.sample(info)

    def sample(self, info: ContainerInfo) -> dict[str, Any]:
        """Take, compute and record one stats sample of a known container."""
        raw = self.docker.stats(info.id)
        started = parse_docker_time(info.started_at) if info.started_at else None
        usage = resource_usage(raw, self.state.previous_sample(info.id), started)
        self.state.record_stats(info.id, usage, cpu_sample(raw))
        return usage.as_dict()


def _summary(info: ContainerInfo) -> dict[str, Any]:
    return {"id": info.id, "name": info.name, "image": info.image, "status": info.status.value}

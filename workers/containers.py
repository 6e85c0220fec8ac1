"""The container service: one method per container task. Validates, acts through the engine,
records state.

This is what the Celery tasks call; it has no Celery in it and can be driven from a plain script.
Containers are found by reference only among those that carry the ``containerizer.managed``
label: anything else is reported as :class:`~workers.errors.ContainerNotFound`, so a job cannot
stop or read the operator's own containers through this service.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from config.settings import Settings
from workers.container_config import MANAGED_FILTER, create_kwargs
from workers.engine import Engine
from workers.errors import Conflict, ContainerizerError, ContainerNotFound
from workers.image_cache import ImageCache
from workers.metrics import Metrics
from workers.models import ContainerInfo, ContainerStatus, parse_docker_time
from workers.policy import Policy
from workers.spec import MANAGED_LABEL, SPEC_HASH_LABEL, ContainerSpec, parse_spec
from workers.state import STATE_ERRORS, StateStore
from workers.stats import cpu_sample, resource_usage, usage_alerts

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Created:
    """The outcome of a create: the container, and whether it existed (a repeated create)."""

    info: ContainerInfo
    existed: bool


class ContainerService:
    """The container side of containerizer. Takes its collaborators in."""

    def __init__(
        self,
        engine: Engine,
        state: StateStore,
        policy: Policy,
        settings: Settings,
        image_cache: ImageCache,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.state = state
        self.policy = policy
        self.settings = settings
        self.image_cache = image_cache
        self.metrics = metrics

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
        return _summary(self._create(spec).info)

    def _create(self, spec: ContainerSpec) -> Created:
        created = self._create_in_docker(spec)
        info = created.info
        try:
            self.state.record(info)
        except STATE_ERRORS:
            if not created.existed:
                # No container the store does not know of: the retry creates it again.
                self._discard(info.id)
            raise
        if not created.existed and info.image_id:
            self.image_cache.touch(info.image_id)
        log.info(
            "created container %s (%s) from %s%s",
            info.name,
            info.id[:12],
            info.image,
            " (already existed)" if created.existed else "",
        )
        return created

    def _create_in_docker(self, spec: ContainerSpec) -> Created:
        """Create a container from a validated, policy-checked spec.

        A create that repeats an earlier one (same name, same spec) returns the existing container,
        so a redelivered task does no harm.

        Raises:
            ImageNotFound: the image is not present on the host.
            Conflict: the name is taken by a container with another spec.
            DockerUnavailable: the daemon does not answer.
        """
        subject = f"container {spec.name or spec.image}"
        try:
            container_id = self.engine.create_container(
                create_kwargs(spec, self.settings), subject=subject
            )
        except Conflict:
            if spec.name is None:
                raise
            try:
                existing = self.info(spec.name)
            except ContainerNotFound:
                raise Conflict(
                    f"container {spec.name}: the name is taken by a container that containerizer"
                    " does not manage"
                ) from None
            if existing.labels.get(SPEC_HASH_LABEL) != spec.spec_hash():
                raise Conflict(
                    f"container {spec.name}: the name is taken by a container with another spec"
                ) from None
            return Created(existing, existed=True)
        return Created(self.engine_info(container_id), existed=False)

    def _discard(self, container_id: str) -> None:
        try:
            self.engine.remove_container(container_id, force=True, volumes=True)
        except ContainerizerError as exc:
            log.warning(
                "could not remove container %s after a failed create: %s", container_id, exc
            )

    def start(self, reference: str) -> dict[str, Any]:
        """Start a container, recording startup_ms; a slow start logs a warning.

        A container the store knows is not inspected after its start: its record turns
        ``running`` unless the events watcher has recorded something newer meanwhile (this start,
        or an exit right after it; the result then reports what the record shows), and the
        watcher then fills in Docker's exact start time.
        """
        record = self._live_record(reference)
        if record is not None:
            container_id = str(record["id"])
            seen_us = int(record.get("status_at_us") or 0)
            # Gone from Docker: removed behind our back; Docker may know the name for another.
            with contextlib.suppress(ContainerNotFound):
                milliseconds = self.engine.start(container_id)
                status = ContainerStatus.RUNNING
                if not self.state.record_started(
                    container_id,
                    seen_us=seen_us,
                    started_at=_utc_now(),
                    startup_ms=milliseconds,
                ):
                    # Running already, or the watcher has recorded this start or what followed.
                    now = self.state.get(container_id) or {}
                    status = ContainerStatus(now.get("status") or ContainerStatus.RUNNING.value)
                name = str(record.get("name") or container_id)
                return self._started(container_id, name, status, milliseconds)
        container_id = self.info(reference).id
        milliseconds = self.engine.start(container_id)
        info = self.engine_info(container_id)
        self.state.record(info, startup_ms=milliseconds)
        return self._started(container_id, info.name, info.status, milliseconds)

    def _started(
        self, container_id: str, name: str, status: ContainerStatus, milliseconds: float
    ) -> dict[str, Any]:
        if self.metrics is not None:
            self.metrics.observe("container_startup_seconds", milliseconds / 1000)
        if milliseconds > self.settings.startup_warning_seconds * 1000:
            log.warning(
                "container %s took %.0f ms to start (threshold %.0f ms)",
                name,
                milliseconds,
                self.settings.startup_warning_seconds * 1000,
            )
        return {"id": container_id, "status": status.value, "startup_ms": milliseconds}

    def run(self, spec: ContainerSpec) -> dict[str, Any]:
        """Create then start (the image must be present).

        A repeated run (a redelivered task) of a container that has already started is not
        started again: a batch job that ran must not run twice.
        """
        created = self._create(spec)
        info = created.info
        if created.existed and info.started_at is not None:
            record = self.state.get(info.id) or {}
            return {**_summary(info), "startup_ms": record.get("startup_ms")}
        started = self.start(info.id)
        return {**_summary(info), "status": started["status"], "startup_ms": started["startup_ms"]}

    def stop(self, reference: str, timeout: int) -> dict[str, Any]:
        """Stop gracefully; a stopped container stays stopped and the call succeeds."""
        _, info = self._on_container(reference, lambda cid: self._stopped(cid, timeout))
        self.state.record(info)
        return {"id": info.id, "status": info.status.value, "exit_code": info.exit_code}

    def kill(self, reference: str, signal: str) -> dict[str, Any]:
        """Send a signal, once: see :meth:`_record_done`."""
        _, info = self._on_container(reference, lambda cid: self._killed(cid, signal))
        self._record_done("kill", info)
        return {"id": info.id, "status": info.status.value}

    def restart(self, reference: str, timeout: int) -> dict[str, Any]:
        """Restart, once, recording restart_ms: see :meth:`_record_done`."""
        _, (info, milliseconds) = self._on_container(
            reference, lambda cid: self._restarted(cid, timeout)
        )
        self._record_done("restart", info, restart_ms=milliseconds)
        return {"id": info.id, "status": info.status.value, "restart_ms": milliseconds}

    def _stopped(self, container_id: str, timeout: int) -> ContainerInfo:
        self.engine.stop(container_id, timeout)
        return self.engine_info(container_id)

    def _killed(self, container_id: str, signal: str) -> ContainerInfo:
        self.engine.kill(container_id, signal)
        return self.engine_info(container_id)

    def _restarted(self, container_id: str, timeout: int) -> tuple[ContainerInfo, float]:
        milliseconds = self.engine.restart(container_id, timeout)
        return self.engine_info(container_id), milliseconds

    def _record_done(self, operation: str, info: ContainerInfo, **extra: Any) -> None:
        """Record the outcome of an operation that must not be repeated (a signal, a restart).

        Raising the state store's failure would retry the task, and the retry would signal or
        restart the container a second time. The failure is logged instead: the events watcher,
        which resumes where it stopped, and ``reconcile`` bring the record up to date once the
        store answers (a restart's ``restart_ms`` is then not recorded).
        """
        try:
            self.state.record(info, **extra)
        except STATE_ERRORS as exc:
            log.warning(
                "%s of container %s done, but its record could not be written (%s); the events"
                " watcher and reconcile will bring it up to date",
                operation,
                info.name or info.id[:12],
                exc,
            )

    def remove(self, reference: str, *, force: bool, volumes: bool) -> dict[str, Any]:
        """Remove a container. Removing one this service already removed succeeds again, and so
        does removing one it knows of that is already gone from Docker (a retried remove whose
        first attempt reached Docker but not the store, or a container removed behind its back).

        Raises:
            ContainerNotFound: neither Docker nor the store knows of such a managed container.
            Conflict: it is running and ``force`` is false.
        """
        record = self.state.find(reference)
        known: str | None = None
        if record is not None:
            known = str(record["id"])
            if record.get("status") == ContainerStatus.REMOVED.value:
                return {"id": known, "removed": True}
            try:
                self.engine.remove_container(known, force=force, volumes=volumes)
                return self._removed(known)
            except ContainerNotFound:
                # Gone already: a retried remove whose first attempt reached Docker but not the
                # store, or a container removed behind the service's back.
                self.state.record_removed(known)
                if reference == known:
                    return {"id": known, "removed": True}
                # A name, which may belong to another managed container by now.
        try:
            container_id = self.info(reference).id
        except ContainerNotFound:
            if known is None:
                raise
            return {"id": known, "removed": True}
        self.engine.remove_container(container_id, force=force, volumes=volumes)
        return self._removed(container_id)

    def _removed(self, container_id: str) -> dict[str, Any]:
        self.state.record_removed(container_id)
        log.info("removed container %s", container_id[:12])
        return {"id": container_id, "removed": True}

    def inspect(self, reference: str) -> dict[str, Any]:
        """The engine's inspect document (and a refreshed record)."""
        attrs = self.managed_attrs(reference)
        self.state.record(ContainerInfo.from_attrs(attrs))
        return attrs

    def managed_attrs(self, reference: str) -> dict[str, Any]:
        """The engine's inspect document of a managed container.

        Raises:
            ContainerNotFound: no container, or one containerizer does not manage.
        """
        attrs = self.engine.inspect_container(reference)
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        if labels.get(MANAGED_LABEL) != "true":
            raise ContainerNotFound(
                f"container {reference}: not managed by containerizer"
                f" (no {MANAGED_LABEL}=true label)"
            )
        return attrs

    def info(self, reference: str) -> ContainerInfo:
        """What Docker says of a managed container now (see :meth:`managed_attrs`)."""
        return ContainerInfo.from_attrs(self.managed_attrs(reference))

    def engine_info(self, container_id: str) -> ContainerInfo:
        """What Docker says of a container the caller already resolved to a managed id."""
        return ContainerInfo.from_attrs(self.engine.inspect_container(container_id))

    def logs(self, reference: str, *, tail: int, timestamps: bool) -> dict[str, Any]:
        """Recent stdout and stderr."""
        container_id, output = self._on_container(
            reference,
            lambda cid: self.engine.logs(
                cid, tail=tail, timestamps=timestamps, max_bytes=self.settings.logs_max_bytes
            ),
        )
        return {"id": container_id, "logs": output}

    def list(self, *, all: bool, labels: list[str]) -> list[dict[str, Any]]:
        """Managed containers."""
        rows = self.engine.containers(all=all, labels=[MANAGED_FILTER, *labels])
        return [
            {
                "id": row["Id"],
                "name": (row.get("Names") or ["/"])[0].lstrip("/"),
                "image": row.get("Image", ""),
                "status": ContainerStatus.from_docker(str(row.get("State", ""))).value,
                "labels": row.get("Labels") or {},
            }
            for row in rows
        ]

    def stats(self, reference: str) -> dict[str, Any]:
        """ResourceUsage from one one-shot sample, CPU % against the previous kept sample."""
        record = self._live_record(reference)
        if record is not None:
            return self.sample(record["id"], record.get("started_at"))
        info = self.info(reference)
        return self.sample(info.id, info.started_at)

    def sample(self, container_id: str, started_at: str | None) -> dict[str, Any]:
        """Take, compute and record one stats sample of a managed container.

        CPU above ``cpu_alert_percent`` or memory above ``memory_alert_percent`` of the limit
        is logged as a warning and flagged in the record's ``alerts``.
        """
        raw = self.engine.stats(container_id)
        started = parse_docker_time(started_at) if started_at else None
        usage = resource_usage(raw, self.state.previous_sample(container_id), started)
        alerts = usage_alerts(
            usage,
            cpu_percent=self.settings.cpu_alert_percent,
            memory_percent=self.settings.memory_alert_percent,
        )
        if alerts:
            log.warning(
                "container %s over its thresholds (%s): cpu %.1f %%, memory %d of %d bytes",
                container_id[:12],
                ", ".join(alerts),
                usage.cpu_percent,
                usage.memory_usage,
                usage.memory_limit,
            )
        self.state.record_stats(
            container_id,
            usage,
            cpu_sample(raw),
            alerts=alerts,
            history_length=self.settings.stats_history_length,
        )
        return usage.as_dict()

    # --- resolution ---------------------------------------------------------------------------
    def _live_record(self, reference: str) -> dict[str, Any] | None:
        record = self.state.find(reference)
        if record is None or record.get("status") == ContainerStatus.REMOVED.value:
            return None
        return record

    def _on_container(self, reference: str, operation: Callable[[str], T]) -> tuple[str, T]:
        """Run ``operation`` on the id of the managed container ``reference`` names.

        The id comes from the state store when it knows the reference (no inspect round trip;
        the store only holds containers this service created), else from Docker, which also
        checks the managed label. A stale store entry falls back to Docker.
        """
        record = self._live_record(reference)
        if record is not None:
            try:
                return record["id"], operation(record["id"])
            except ContainerNotFound:
                pass  # Removed behind our back; Docker may know the name for another container.
        container_id = self.info(reference).id
        return container_id, operation(container_id)


def _utc_now() -> str:
    """Now, written as Docker writes times (RFC 3339, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _summary(info: ContainerInfo) -> dict[str, Any]:
    return {"id": info.id, "name": info.name, "image": info.image, "status": info.status.value}

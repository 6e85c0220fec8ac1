"""The container service: one method per container task. Validates, acts through the engine,
records state.

This is what the Celery tasks call; it has no Celery in it and can be driven from a plain script.

A container is the service's only if it carries the ``containerizer.managed`` label AND the state
store has its record (the service created it): a label alone, which an image or the operator can
set, puts nothing in a caller's reach. Anything else is ContainerNotFound.

Creates are safe to repeat and to race: a create first claims the container's name in the state
store (names are unique across the cluster). Of any number of identical creates at once (same
name, same spec: a redelivery racing the original), one creates and the others wait for it and
return the same container; a different spec under a taken name is Conflict. Before asking Docker,
a create notes its marker (a create token, also a label of the container): a container whose
create was lost between Docker and the record is found by it (:mod:`workers.maintenance`).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from config.settings import Settings
from workers.container_config import CREATE_TOKEN_LABEL, create_kwargs
from workers.credentials import Redactor
from workers.engine import Engine
from workers.errors import Conflict, ContainerizerError, ContainerNotFound, TransientError
from workers.image_cache import ImageCache
from workers.jobs import ExitReport, exit_report
from workers.metrics import Metrics
from workers.models import ContainerInfo, ContainerStatus, parse_docker_time
from workers.policy import HostFacts, Policy
from workers.resources import ResourceService
from workers.spec import MANAGED_LABEL, SPEC_HASH_LABEL, ContainerSpec, parse_spec
from workers.state import STATE_ERRORS, StateStore, StatsWrite
from workers.stats import CpuSample, cpu_sample, resource_usage, usage_alerts
from workers.stats_source import StatsSource

log = logging.getLogger(__name__)
#: Sweep threads when stats come from the cgroup files (no I/O wait to overlap).
FILE_STATS_THREADS = 4

T = TypeVar("T")
#: How long an identical create waits for the one under way before it is Conflict.
CLAIM_WAIT_SECONDS = 120.0
_HEX_PREFIX = frozenset("0123456789abcdef")


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
        resources: ResourceService | None = None,
        redactor: Redactor | None = None,
        stats_source: StatsSource | None = None,
    ) -> None:
        self.engine = engine
        self.stats_source = stats_source or StatsSource(engine, "api")
        self.state = state
        self.policy = policy
        self.settings = settings
        self.image_cache = image_cache
        self.metrics = metrics
        self.resources = resources
        self.redact = redactor or Redactor(settings.secret_env_patterns)

    @property
    def host(self) -> str:
        """The name of the Docker host this service acts on."""
        return self.state.keys.host

    # --- validation ---------------------------------------------------------------------------
    def validate(self, spec: object, *, default_name: str | None = None) -> ContainerSpec:
        """Parse and policy-check a caller's spec; nothing reaches Docker but its (cached) info.

        ``default_name`` names a container whose spec has none (the task id, so that a
        redelivered create finds the container it made the first time).

        Raises:
            InvalidSpec, PolicyViolation.
        """
        parsed = parse_spec(spec)
        self.policy.check(parsed, HostFacts.from_info(self.engine.daemon()))
        if self.resources is not None:
            self.resources.check_networks(parsed)
        if parsed.name is None and default_name is not None:
            parsed = parsed.with_name(default_name)
        return parsed

    # --- resolution ---------------------------------------------------------------------------
    def resolve(self, reference: str) -> dict[str, Any]:
        """The record of the managed container ``reference`` names (id, id prefix or name).

        Raises:
            ContainerNotFound: no container the service created has that id or name.
        """
        record = self.state.find(reference)
        if record is None and 4 <= len(reference) < 64 and set(reference) <= _HEX_PREFIX:
            # An id prefix shorter than the store's index: Docker resolves it, the store decides.
            with contextlib.suppress(ContainerNotFound):
                record = self.state.get(str(self.engine.inspect_container(reference)["Id"]))
        if record is None or record.get("status") == ContainerStatus.REMOVED.value:
            raise ContainerNotFound(
                f"container {reference}: no container managed by containerizer has this id or name"
            )
        return record

    # --- create and run -----------------------------------------------------------------------
    def create(self, spec: ContainerSpec) -> dict[str, Any]:
        """Create (or find the identical earlier) container and record it."""
        with self._claim(spec) as existing:
            created = existing or self._create(spec)
        return _summary(created.info, self.host)

    def run(self, spec: ContainerSpec, *, on_exit: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create then start (the image must be present).

        A repeated run (a redelivered task) of a container that has already started is not
        started again: a batch job that ran must not run twice. The name's claim covers the create
        and the start, so identical runs at once start it once. ``on_exit`` (a task to send when
        it exits, see workers/jobs.py) is kept in its record.
        """
        with self._claim(spec) as existing:
            if existing is not None and existing.info.started_at is not None:
                record = self.state.get(existing.info.id) or {}
                return {
                    **_summary(existing.info, self.host),
                    "startup_ms": record.get("startup_ms"),
                }
            created = existing or self._create(spec, on_exit=on_exit)
            try:
                started = self.start(self.state.get(created.info.id) or {"id": created.info.id})
            except ContainerizerError as exc:
                if existing is None and not isinstance(exc, TransientError):
                    # Docker refused to start what it created (a network gone since, a port
                    # taken): the run failed, and leaves no container behind it.
                    self._discard(created.info.id)
                    with contextlib.suppress(*STATE_ERRORS):
                        self.state.record_removed(created.info.id)
                raise
        return {
            **_summary(created.info, self.host),
            "status": started["status"],
            "startup_ms": started["startup_ms"],
        }

    @contextlib.contextmanager
    def _claim(self, spec: ContainerSpec) -> Iterator[Created | None]:
        """Hold the claim of the spec's name while creating; yields the existing container
        (an identical earlier create) or None (this one creates it).

        Raises:
            Conflict: the name is taken by a container with another spec, or on another host, or
                an identical create has held it for longer than it may.
        """
        if spec.name is None:
            yield None
            return
        token = uuid.uuid4().hex
        ttl = self.settings.docker_timeout_seconds * 2 + 30
        deadline = time.monotonic() + CLAIM_WAIT_SECONDS
        spec_hash = spec.spec_hash()
        while True:
            claim = self.state.claim_name(
                spec.name, spec_hash=spec_hash, token=token, ttl_seconds=ttl
            )
            if claim.kind == "claimed":
                break
            if claim.spec_hash != spec_hash:
                raise Conflict(
                    f"container {spec.name}: the name is taken by a container with another spec"
                )
            if claim.host != self.host:
                raise Conflict(
                    f"container {spec.name}: the name is taken on host {claim.host!r}"
                    " (names are unique across hosts)"
                )
            if claim.kind == "exists":
                yield Created(self.engine_info(claim.container_id), existed=True)
                return
            if time.monotonic() > deadline:
                raise Conflict(
                    f"container {spec.name}: an identical create has been under way for more"
                    f" than {CLAIM_WAIT_SECONDS:.0f} s"
                )
            time.sleep(0.05)  # An identical create holds it: wait for its container.
        try:
            yield None
        finally:
            with contextlib.suppress(*STATE_ERRORS):
                self.state.release_name(spec.name, token)

    def _create(self, spec: ContainerSpec, *, on_exit: dict[str, Any] | None = None) -> Created:
        """Create the container in Docker and record it; a failure leaves nothing behind.

        Raises:
            ImageNotFound, Conflict, PolicyViolation (volumes), DockerUnavailable, redis errors.
        """
        token = uuid.uuid4().hex
        if self.resources is not None:
            self.resources.require_networks(spec)
        volumes = self.resources.resolve_mounts(spec) if self.resources is not None else []
        name = spec.name or ""
        try:
            self.state.add_intent(token, name)
            created = self._create_in_docker(spec, token)
        except BaseException as exc:
            if isinstance(exc, ContainerizerError) and not isinstance(exc, TransientError):
                # Docker refused it. Any other failure may have come after Docker made the
                # container (its reply lost on the way): the marker stays, for the retry (same
                # name and spec) or reconcile's orphan sweep to find the container by.
                with contextlib.suppress(*STATE_ERRORS):
                    self.state.drop_intent(token)
            if self.resources is not None:
                self.resources.discard_volumes(volumes)
            raise
        info = created.info
        jobs: dict[str, Any] = {}
        if spec.auto_remove:
            jobs["auto_remove"] = True
        if on_exit is not None:
            jobs["on_exit"] = on_exit
        try:
            self.state.record(info, created_at=_utc_now(), **jobs)
        except STATE_ERRORS:
            if not created.existed:
                # No container the store does not know of: the retry creates it again.
                self._discard(info.id)
                if self.resources is not None:
                    self.resources.discard_volumes(volumes)
            raise
        with contextlib.suppress(*STATE_ERRORS):
            self.state.drop_intent(token)
        if not created.existed:
            self.image_cache.touch_reference(spec.reference.canonical)
        log.info(
            "created container %s (%s) from %s%s",
            info.name,
            info.id[:12],
            info.image,
            " (already existed)" if created.existed else "",
        )
        return created

    def _create_in_docker(self, spec: ContainerSpec, token: str) -> Created:
        """Ask Docker for the container; a name Docker already has is this create's only if it
        is a managed container of the same spec whose create the service lost (an orphan of an
        earlier attempt, carrying a marker the store knows).

        Raises:
            ImageNotFound: the image is not present on the host.
            Conflict: the name is taken by a container the service did not create, or with
                another spec.
        """
        subject = f"container {spec.name or spec.image}"
        kwargs = create_kwargs(spec, self.settings, labels={CREATE_TOKEN_LABEL: token})
        try:
            container_id = self.engine.create_container(kwargs, subject=subject)
        except Conflict:
            if spec.name is None:
                raise
            existing = self._orphan_named(spec)
            if existing is None:
                raise Conflict(
                    f"container {spec.name}: the name is taken by a container that containerizer"
                    " does not manage"
                ) from None
            return Created(existing, existed=True)
        labels = dict(kwargs["labels"])
        info = ContainerInfo(
            id=container_id,
            name=spec.name or "",
            image=spec.image,
            status=ContainerStatus.CREATED,
            labels=labels,
        )
        return Created(info, existed=False)

    def _orphan_named(self, spec: ContainerSpec) -> ContainerInfo | None:
        """The managed container of this spec that an earlier, lost create made under the name."""
        try:
            info = ContainerInfo.from_attrs(self.engine.inspect_container(str(spec.name)))
        except ContainerNotFound:
            return None
        token = info.labels.get(CREATE_TOKEN_LABEL)
        if (
            info.labels.get(MANAGED_LABEL) == "true"
            and info.labels.get(SPEC_HASH_LABEL) == spec.spec_hash()
            and token is not None
            and token in self.state.intents()
        ):
            self.state.drop_intent(token)
            return info
        return None

    def _discard(self, container_id: str) -> None:
        try:
            self.engine.remove_container(container_id, force=True, volumes=True)
        except ContainerizerError as exc:
            log.warning(
                "could not remove container %s after a failed create: %s", container_id, exc
            )

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, record: dict[str, Any]) -> dict[str, Any]:
        """Start a container, recording startup_ms; a slow start logs a warning.

        The container is not inspected after its start: its record turns ``running`` unless the
        events watcher has recorded something newer meanwhile (this start, or an exit right after
        it; the result then reports what the record shows), and the watcher then fills in
        Docker's exact start time.
        """
        container_id = str(record["id"])
        seen_us = int(record.get("status_at_us") or 0)
        milliseconds = self._on(container_id, lambda: self.engine.start(container_id))
        status = ContainerStatus.RUNNING
        if not self.state.record_started(
            container_id, seen_us=seen_us, started_at=_utc_now(), startup_ms=milliseconds
        ):
            # Running already, or the watcher has recorded this start or what followed.
            now = self.state.get(container_id) or {}
            status = ContainerStatus(now.get("status") or ContainerStatus.RUNNING.value)
        if self.metrics is not None:
            self.metrics.observe("container_startup_seconds", milliseconds / 1000)
        if milliseconds > self.settings.startup_warning_seconds * 1000:
            log.warning(
                "container %s took %.0f ms to start (threshold %.0f ms)",
                record.get("name") or container_id[:12],
                milliseconds,
                self.settings.startup_warning_seconds * 1000,
            )
        return {
            "id": container_id,
            "status": status.value,
            "startup_ms": milliseconds,
            "host": self.host,
        }

    def stop(self, record: dict[str, Any], timeout: int) -> dict[str, Any]:
        """Stop gracefully; a stopped container stays stopped and the call succeeds. The result
        says why it stopped (exit code, oom_killed, signal, error, reason)."""
        container_id = str(record["id"])
        self._on(container_id, lambda: self.engine.stop(container_id, timeout))
        attrs = self.engine.inspect_container(container_id)
        info = ContainerInfo.from_attrs(attrs)
        report = exit_report(attrs.get("State") or {})
        self.state.record(info, **_exit_fields(report))
        return {
            **report.as_dict(),
            "id": info.id,
            "status": info.status.value,
            "exit_code": info.exit_code,
            "host": self.host,
        }

    def kill(self, record: dict[str, Any], signal: str) -> dict[str, Any]:
        """Send a signal, once: see :meth:`_record_done`."""
        container_id = str(record["id"])
        self._on(container_id, lambda: self.engine.kill(container_id, signal))
        info = self.engine_info(container_id)
        self._record_done("kill", info)
        return {"id": info.id, "status": info.status.value, "host": self.host}

    def restart(
        self, record: dict[str, Any], timeout: int, *, task_id: str | None = None
    ) -> dict[str, Any]:
        """Restart, once, recording restart_ms: see :meth:`_record_done`.

        Once per ``task_id`` too: a message delivered again while (or after) its first delivery
        restarts the container (the Redis broker does so past its visibility timeout, which a
        restart with a long ``timeout`` can outlast) reports the container's state without
        restarting it again (``restart_ms`` null). A restart Docker refused or never got may
        be retried.
        """
        container_id = str(record["id"])
        once = self.state.keys.once("restart", task_id) if task_id else None
        hold = timeout + self.settings.task_time_limit_seconds + 60
        if once is not None and not self.state.redis.set(once, container_id, nx=True, ex=int(hold)):
            log.warning(
                "restart of %s delivered again (task %s): not restarted a second time",
                container_id[:12],
                task_id,
            )
            info = self.engine_info(container_id)
            return {
                "id": info.id,
                "status": info.status.value,
                "restart_ms": None,
                "host": self.host,
            }
        try:
            milliseconds = self._on(
                container_id, lambda: self.engine.restart(container_id, timeout)
            )
        except BaseException:
            if once is not None:
                with contextlib.suppress(*STATE_ERRORS):
                    self.state.redis.delete(once)  # Not restarted: a retry may.
            raise
        info = self.engine_info(container_id)
        self._record_done("restart", info, restart_ms=milliseconds)
        return {
            "id": info.id,
            "status": info.status.value,
            "restart_ms": milliseconds,
            "host": self.host,
        }

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

    def remove(self, record: dict[str, Any], *, force: bool, volumes: bool) -> dict[str, Any]:
        """Remove a container. Removing one already gone from Docker (a retried remove whose first
        attempt reached Docker but not the store, a container removed behind the service's back,
        an identical remove at the same moment) succeeds.

        Raises:
            Conflict: it is running and ``force`` is false.
        """
        container_id = str(record["id"])
        if force and record.get("status") == ContainerStatus.RUNNING.value:
            # Its exit (SIGKILL, 137) is this removal's: the events watcher need not ask dockerd
            # whether the OOM killer did it (workers/events.py).
            with contextlib.suppress(*STATE_ERRORS):
                self.state.update(container_id, removing=True)
        try:
            self.engine.remove_container(container_id, force=force, volumes=volumes)
        except ContainerNotFound:
            pass
        except Conflict as exc:
            if "in progress" not in str(exc):
                self._not_removing(container_id)
                raise
            self._await_removal(container_id)  # Another remove of it is under way.
        except BaseException:
            self._not_removing(container_id)
            raise
        self.state.record_removed(container_id)
        log.info("removed container %s", container_id[:12])
        return {"id": container_id, "removed": True, "host": self.host}

    def _not_removing(self, container_id: str) -> None:
        with contextlib.suppress(*STATE_ERRORS):
            self.state.update(container_id, removing=False)

    def _await_removal(self, container_id: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.engine.inspect_container(container_id)
            except ContainerNotFound:
                return
            time.sleep(0.1)
        raise Conflict(f"container {container_id}: another removal has not ended in {timeout} s")

    # --- inspection ---------------------------------------------------------------------------
    def inspect(self, record: dict[str, Any]) -> dict[str, Any]:
        """The engine's inspect document, secrets redacted (and a refreshed record), with the
        service's summary under ``Containerizer``: its host, and why it stopped if it did."""
        container_id = str(record["id"])
        attrs = self._on(container_id, lambda: self.engine.inspect_container(container_id))
        info = ContainerInfo.from_attrs(attrs)
        state = attrs.get("State") or {}
        report = (
            None
            if state.get("Running") or info.status is ContainerStatus.CREATED
            else (exit_report(state))
        )
        self.state.record(info, **(_exit_fields(report) if report else {}))
        redacted: dict[str, Any] = self.redact(attrs)
        redacted["Containerizer"] = {
            "host": self.host,
            "exit": report.as_dict() if report else None,
            "on_exit": bool(record.get("on_exit")),
            "auto_remove": bool(record.get("auto_remove")),
        }
        return redacted

    def logs(self, record: dict[str, Any], *, tail: int, timestamps: bool) -> dict[str, Any]:
        """Recent stdout and stderr: the last ``tail`` lines, at most ``logs_max_bytes``."""
        container_id = str(record["id"])
        output = self._on(
            container_id,
            lambda: self.engine.logs(
                container_id,
                tail=tail,
                timestamps=timestamps,
                max_bytes=self.settings.logs_max_bytes,
            ),
        )
        return {"id": container_id, "logs": output, "host": self.host}

    def list(
        self, *, all: bool, labels: list[str], hosts: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """The managed containers of ``hosts`` (this one by default), from their records
        (running ones unless ``all``)."""
        ids: set[str] = set()
        for host in hosts or [self.host]:
            ids |= self.state.live_ids(host)
        records = self.state.get_many(sorted(ids))
        rows = []
        for record in records.values():
            status = str(record.get("status") or "")
            if not all and status != ContainerStatus.RUNNING.value:
                continue
            record_labels = record.get("labels") or {}
            if not _labels_match(record_labels, labels):
                continue
            rows.append(
                {
                    "id": record["id"],
                    "name": record.get("name") or "",
                    "image": record.get("image") or "",
                    "status": status,
                    "labels": record_labels,
                    "host": record.get("host") or self.host,
                    "exit_code": record.get("exit_code"),
                    "created_at": record.get("created_at"),
                    "started_at": record.get("started_at"),
                    "finished_at": record.get("finished_at"),
                }
            )
        return sorted(rows, key=lambda row: (row["host"], row["name"], row["id"]))

    def stats(self, record: dict[str, Any]) -> dict[str, Any]:
        """ResourceUsage from one one-shot sample, CPU % against the previous kept sample."""
        return self.sample(str(record["id"]), record.get("started_at"))

    def sample(self, container_id: str, started_at: str | None) -> dict[str, Any]:
        """Take, compute and record one stats sample of a managed container.

        CPU above ``cpu_alert_percent`` or memory above ``memory_alert_percent`` of the limit
        is logged as a warning and flagged in the record's ``alerts``.
        """
        raw = self._on(container_id, lambda: self.stats_source.raw(container_id))
        write = self._usage(container_id, raw, self.state.previous_sample(container_id), started_at)
        self.state.record_stats_many([write], self.settings.stats_history_length)
        return write.usage.as_dict()

    def sample_many(self, targets: Sequence[tuple[str, str | None]]) -> tuple[int, int]:
        """:meth:`sample` of many containers ({id: started_at}): the previous samples read in one
        round trip, the documents taken ``stats_concurrency`` at once (a few threads when they
        come from the cgroup files: there is no wait to overlap, only the GIL to share), the
        writes in a few pipelines. A container gone mid-sweep, or whose stats fail, is skipped.
        Returns (sampled, skipped)."""
        if not targets:
            return 0, 0
        previous = self.state.previous_samples([container_id for container_id, _ in targets])
        concurrency = (
            FILE_STATS_THREADS
            if self.stats_source.kind == "cgroup"
            else self.settings.stats_concurrency
        )
        with ThreadPoolExecutor(
            max_workers=min(concurrency, len(targets)), thread_name_prefix="stats"
        ) as pool:
            documents = list(pool.map(self._document, [cid for cid, _ in targets]))
        writes = [
            self._usage(container_id, raw, previous.get(container_id), started_at)
            for (container_id, started_at), raw in zip(targets, documents, strict=True)
            if raw is not None
        ]
        self.state.record_stats_many(writes, self.settings.stats_history_length)
        return len(writes), len(targets) - len(writes)

    def _document(self, container_id: str) -> dict[str, Any] | None:
        try:
            return self._on(container_id, lambda: self.stats_source.raw(container_id))
        except ContainerNotFound:
            return None  # Gone mid-sweep.
        except ContainerizerError as exc:
            log.warning("stats of %s skipped: %s", container_id[:12], exc)
            return None

    def _usage(
        self,
        container_id: str,
        raw: dict[str, Any],
        previous: CpuSample | None,
        started_at: str | None,
    ) -> StatsWrite:
        started = parse_docker_time(started_at) if started_at else None
        usage = resource_usage(raw, previous, started)
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
        return StatsWrite(container_id, usage, cpu_sample(raw), alerts)

    def engine_info(self, container_id: str) -> ContainerInfo:
        """What Docker says of a container the caller already resolved to a managed id."""
        return ContainerInfo.from_attrs(self.engine.inspect_container(container_id))

    def _on(self, container_id: str, operation: Callable[[], T]) -> T:
        """Run one Docker operation on a managed container; one gone from Docker (removed behind
        the service's back) is recorded removed, and ContainerNotFound raised."""
        try:
            return operation()
        except ContainerNotFound:
            with contextlib.suppress(*STATE_ERRORS):
                self.state.record_removed(container_id)
            raise


def _exit_fields(report: ExitReport) -> dict[str, Any]:
    """What a record keeps of an exit besides its code and time (written by record())."""
    return {"signal": report.signal, "reason": report.reason, "error": report.error}


def _labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _utc_now() -> str:
    """Now, written as Docker writes times (RFC 3339, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _summary(info: ContainerInfo, host: str) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "image": info.image,
        "status": info.status.value,
        "host": host,
    }

"""The Docker events watcher: keeps container records current without polling.

It follows the engine's event stream for managed containers and, for each event about a container
the state store knows, records what the event says: start, die (exit code), oom (``oom_killed``),
pause, unpause; destroy takes the record out of the live set (a restart is its die and start). The
time of the last applied event is kept in Redis, so after a lost connection or a restart of the
watcher it resumes with ``since`` and replays what it missed. dockerd keeps only its last 256
events, in memory: what happened before a daemon restart (or further back than that) is repaired
by ``reconcile`` instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis

from workers.container_config import MANAGED_FILTER
from workers.engine import Engine
from workers.errors import ContainerizerError
from workers.jobs import Exits, exit_report
from workers.keys import Keys
from workers.models import ContainerStatus
from workers.state import StateStore

log = logging.getLogger(__name__)

# Only the events that change a record: create, stop and kill are followed by start and die.
# Docker's filter matches "health_status" against "health_status: healthy" and the others.
WATCHED_ACTIONS = ("start", "die", "oom", "pause", "unpause", "destroy", "health_status")
MAX_BACKOFF_SECONDS = 10.0
KILLED = 128 + 9  # The exit code of a process ended by SIGKILL.


class EventWatcher:
    """Applies Docker events to the state store. Takes its clients in."""

    def __init__(
        self,
        engine: Engine,
        state: StateStore,
        redis_client: redis.Redis,
        keys: Keys,
        exits: Exits | None = None,
    ) -> None:
        self.engine = engine
        self.state = state
        self.redis = redis_client
        self.keys = keys
        self.exits = exits

    def run(self, stop: threading.Event) -> None:
        """Follow events until ``stop`` is set, reconnecting with backoff."""
        backoff = 0.5
        since: str | None = None
        while not stop.is_set():
            try:
                # Inside: Redis may be what was lost, and the watcher waits for it as for Docker.
                # Until an event is stored, it resumes where its first stream began.
                since = self.since(since)
                for event in self._stream(since):
                    self.apply(event)
                    backoff = 0.5
                    if stop.is_set():
                        return
                # The stream ended: the daemon went away (or restarted).
                log.warning("Docker event stream ended; reconnecting")
            except (ContainerizerError, redis.RedisError) as exc:
                log.warning("Docker event stream lost (%s); retrying in %.1f s", exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _stream(self, since: str) -> Iterator[dict[str, Any]]:
        return self.engine.events(
            since=since,
            filters={
                "type": "container",
                "label": [MANAGED_FILTER],
                "event": list(WATCHED_ACTIONS),
            },
        )

    def since(self, unstored: str | None = None) -> str:
        """Where to resume: just after the last applied event, else ``unstored`` (where this
        watcher began), else now."""
        stored = self.redis.get(self.keys.events_since())
        if not stored and unstored is not None:
            return unstored
        nanos = int(stored) if stored else time.time_ns()
        return f"{nanos // 1_000_000_000}.{nanos % 1_000_000_000:09d}"

    def apply(self, event: dict[str, Any]) -> None:
        """Record what one event changed, for a container this deployment knows.

        Everything comes from the event itself (its time, the exit code of a ``die``), so the
        watcher adds no inspect calls to dockerd's load however busy the host is.
        """
        action = str(event.get("Action") or event.get("status") or "")
        actor = event.get("Actor") or {}
        container_id = str(actor.get("ID") or event.get("id") or "")
        record = self.state.get(container_id) if container_id else None
        if record is not None:
            self._apply(action, container_id, actor.get("Attributes") or {}, event, record)
        nanos = event.get("timeNano")
        if nanos:
            self.redis.set(self.keys.events_since(), int(nanos))

    def _apply(
        self,
        action: str,
        container_id: str,
        attributes: dict[str, Any],
        event: dict[str, Any],
        record: dict[str, Any],
    ) -> None:
        # A status change is recorded unless the record already shows a newer one (a task's
        # inspect after this event, say): events and inspects carry times on Docker's clock.
        at, at_us = _event_time(event), _event_us(event)
        if action == "destroy":
            self.state.record_removed(container_id)
            log.info("container %s destroyed", container_id[:12])
            if self.exits is not None:
                self.exits.settle(container_id)
        elif action == "oom":
            self.state.update(container_id, oom_killed=True)
        elif action == "die":
            exit_code = _int(attributes.get("exitCode"))
            log.info("container %s exited with code %s", container_id[:12], exit_code)
            if self.exits is None:
                self.state.transition(
                    container_id,
                    at_us,
                    status=ContainerStatus.EXITED.value,
                    exit_code=exit_code,
                    finished_at=at,
                )
                return
            # The exit's reasons, its waiters, its on_exit, its removal. A failure of these
            # leaves the event position where it is: the event is applied again.
            oom = bool(record.get("oom_killed"))
            removing = bool(record.get("removing"))  # A forced removal's kill.
            if exit_code is None or (exit_code == KILLED and not oom and not removing):
                # Killed, and no "oom" event yet: it usually comes first, but the kernel's
                # notice and the exit race, so dockerd's inspect says whether it was the OOM
                # killer. Every other exit is recorded from the event alone, at no cost to
                # dockerd however many end at once.
                self.exits.exited(container_id)
                return
            report = exit_report({"ExitCode": exit_code, "OOMKilled": oom, "FinishedAt": at})
            self.exits.exited(container_id, report, at_us)
        elif action == "start":
            self.state.transition(
                container_id,
                at_us,
                status=ContainerStatus.RUNNING.value,
                started_at=at,
                exit_code=None,
                oom_killed=False,
            )
        elif action == "unpause":
            self.state.transition(container_id, at_us, status=ContainerStatus.RUNNING.value)
        elif action == "pause":
            self.state.transition(container_id, at_us, status=ContainerStatus.PAUSED.value)
        elif action.startswith("health_status:"):
            self.state.update(container_id, health=action.split(":", 1)[1].strip())
            if self.exits is not None:
                self.exits.settle(container_id)
        # Anything else changes nothing. Not watched, "restart" in particular: Docker logs it
        # after the start inside the restart (its own event) and after an exit that may follow.


def _event_time(event: dict[str, Any]) -> str | None:
    """The event's time as Docker writes timestamps (RFC 3339, nanoseconds, UTC)."""
    nanos = event.get("timeNano")
    if not nanos:
        return None
    seconds, fraction = divmod(int(nanos), 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{fraction:09d}Z"


def _event_us(event: dict[str, Any]) -> int:
    """The event's time in microseconds since the epoch (now, for an event without one)."""
    nanos = event.get("timeNano")
    if nanos:
        return int(nanos) // 1000
    seconds = event.get("time")
    return int(seconds) * 1_000_000 if seconds else time.time_ns() // 1000


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

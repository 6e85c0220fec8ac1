"""The Docker events watcher: keeps container records current without polling.

It follows the engine's event stream for managed containers and, for each event about a container
the state store knows, records what Docker says of it now: start, die (exit code), oom
(``oom_killed``), stop, kill, pause, restart; destroy takes the record out of the live set. The
time of the last applied event is kept in Redis, so after a lost connection or a restart of the
watcher it resumes with ``since`` and replays what it missed. dockerd keeps only its last 256
events, in memory: what happened before a daemon restart (or further back than that) is repaired
by ``reconcile`` instead.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import docker
import docker.errors
import redis
import requests.exceptions
import urllib3.exceptions

from workers.docker_service import MANAGED_FILTER, DockerService
from workers.errors import ContainerizerError, ContainerNotFound
from workers.keys import Keys
from workers.state import StateStore

log = logging.getLogger(__name__)

WATCHED_ACTIONS = (
    "create",
    "start",
    "restart",
    "die",
    "oom",
    "stop",
    "kill",
    "pause",
    "unpause",
    "destroy",
)
MAX_BACKOFF_SECONDS = 10.0


class EventWatcher:
    """Applies Docker events to the state store. Takes its clients in."""

    def __init__(
        self,
        docker_service: DockerService,
        state: StateStore,
        redis_client: redis.Redis,
        keys: Keys,
    ) -> None:
        self.docker = docker_service
        self.state = state
        self.redis = redis_client
        self.keys = keys

    def run(self, stop: threading.Event) -> None:
        """Follow events until ``stop`` is set, reconnecting with backoff."""
        backoff = 0.5
        while not stop.is_set():
            since = self.since()
            try:
                for event in self._stream(since):
                    self.apply(event)
                    backoff = 0.5
                    if stop.is_set():
                        return
                # The stream ended: the daemon went away (or restarted).
                log.warning("Docker event stream ended; reconnecting")
            except (
                requests.exceptions.RequestException,
                urllib3.exceptions.HTTPError,
                docker.errors.DockerException,
                redis.RedisError,
                ContainerizerError,
                OSError,
            ) as exc:
                log.warning("Docker event stream lost (%s); retrying in %.1f s", exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _stream(self, since: str) -> Any:
        return self.docker.client.api.events(
            since=since,
            decode=True,
            filters={
                "type": "container",
                "label": [MANAGED_FILTER],
                "event": list(WATCHED_ACTIONS),
            },
        )

    def since(self) -> str:
        """Where to resume: just after the last applied event, or now on a first start."""
        stored = self.redis.get(self.keys.events_since())
        nanos = int(stored) if stored else time.time_ns()
        return f"{nanos // 1_000_000_000}.{nanos % 1_000_000_000:09d}"

    def apply(self, event: dict[str, Any]) -> None:
        """Record what one event changed, for a container this deployment knows."""
        action = str(event.get("Action") or event.get("status") or "")
        container_id = str((event.get("Actor") or {}).get("ID") or event.get("id") or "")
        if container_id and self.state.get(container_id) is not None:
            self._apply(action, container_id)
        nanos = event.get("timeNano")
        if nanos:
            self.redis.set(self.keys.events_since(), int(nanos))

    def _apply(self, action: str, container_id: str) -> None:
        if action == "destroy":
            self.state.record_removed(container_id)
            log.info("container %s destroyed", container_id[:12])
            return
        if action == "oom":
            self.state.update(container_id, oom_killed=True)
        try:
            info = self.docker.info(container_id)
        except ContainerNotFound:
            self.state.record_removed(container_id)
            return
        self.state.record(info)
        if action == "die":
            log.info(
                "container %s exited with code %s%s",
                info.name,
                info.exit_code,
                " (OOM killed)" if info.oom_killed else "",
            )

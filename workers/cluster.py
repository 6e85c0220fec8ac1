"""The cluster as one host's worker sees it: where a new container goes, and which host owns one.

Every host's workers take the shared queues too. A task there that belongs to another host (an
operation on its container, a container placed on it) is forwarded to that host's own queue, one
hop; a task for a host that is not alive fails with HostUnavailable (retried with backoff, so a
host that comes back in time still gets it).
"""

from __future__ import annotations

import logging
from typing import Any

from config.settings import HOST_NAME_RE, Settings
from workers.engine import Engine
from workers.errors import InvalidSpec
from workers.hosts import Candidate, HostRegistry, HostStatus, Placed, Placement
from workers.spec import ContainerSpec

log = logging.getLogger(__name__)


def host_argument(value: object) -> str | None:
    """A task's ``host``: null (the service chooses) or a host name.

    Raises:
        InvalidSpec: anything else.
    """
    if value is None:
        return None
    if isinstance(value, str) and HOST_NAME_RE.fullmatch(value):
        return value
    raise InvalidSpec("host: expected null or a host name (lowercase letters, digits and '-')")


class Cluster:
    """Placement and ownership, from one host. Takes its collaborators in."""

    def __init__(
        self, engine: Engine, registry: HostRegistry, placement: Placement, settings: Settings
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.placement = placement
        self.settings = settings

    @property
    def here(self) -> str:
        """This host's name."""
        return self.settings.host_name

    def owner(self, record: dict[str, Any]) -> str:
        """The host of a container record (records written before hosts: this one)."""
        return str(record.get("host") or self.here)

    def require_alive(self, host: str) -> None:
        """This host is alive while it runs this; another is alive while it heartbeats.

        Raises:
            HostUnavailable: ``host`` has not been heard from.
        """
        if host != self.here:
            self.registry.require_alive(host)

    def place(self, spec: ContainerSpec, host: str | None) -> Placed:
        """Where ``spec``'s container goes: ``host`` when pinned (it must be alive), else the
        best of the live hosts (this one always among them).

        Raises:
            HostUnavailable: a pinned host that is not alive.
        """
        name = spec.name or ""
        memory = spec.mem_limit if spec.mem_limit is not None else self.settings.default_mem_limit
        reference = spec.reference.canonical
        if host is not None:
            [(status, has_image)] = self.registry.candidates([host], reference)
            if host != self.here and not status.alive:
                self.registry.require_alive(host)  # Raises, saying when it was last heard from.
            candidate = self._candidate(status, has_image, reference)
            placed = self.placement.place(name, memory, [candidate])
            return Placed(placed.host, "pinned by the caller")
        rows = self.registry.candidates(None, reference)
        if self.here not in {status.host for status, _ in rows}:
            rows += self.registry.candidates([self.here], reference)
        placed = self.placement.place(
            name,
            memory,
            [
                self._candidate(status, has_image, reference)
                for status, has_image in rows
                if status.alive or status.host == self.here
            ],
        )
        log.info("placed %s on %s: %s", name, placed.host, placed.reason)
        return placed

    def forget(self, placed: Placed, spec: ContainerSpec) -> None:
        """A placement whose create failed."""
        self.placement.forget(placed.host, spec.name or "")

    def _candidate(self, status: HostStatus, has_image: bool | None, reference: str) -> Candidate:
        memory = int(status.facts.get("memory_bytes") or 0)
        if status.host == self.here:
            memory = memory or int(self.engine.daemon().get("MemTotal") or 0)
            if has_image is None:  # No agent has published this host's images yet: ask Docker.
                has_image = bool(self.engine.inspect_image(reference))
        return Candidate(status.host, memory, bool(has_image))

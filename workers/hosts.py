"""The hosts of a deployment: who they are, whether they are alive, and where a container goes.

Each Docker host's service runs under a host name (``CONTAINERIZER_HOST_NAME``). A host name is
bound to one Docker daemon and a daemon to one host name, on first use (:meth:`HostRegistry.claim`):
two daemons under one name, or one daemon under two names, would overwrite each other's records.
Each host's agent heartbeats into its host hash; a host is alive while its heartbeat is younger than
``CONTAINERIZER_HOST_DEAD_SECONDS``, and not at all once its service has said it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from workers.errors import ConfigurationError, HostUnavailable
from workers.keys import Keys
from workers.reference import canonical_name

# KEYS: the host's bound daemon, the daemon's bound host, the set of hosts.
# ARGV: the daemon id, the host name.
# Returns {"ok", ""}, or {"host", <the daemon the name is bound to>} or {"daemon", <the host the
# daemon serves as>} when one of the two is bound otherwise.
_CLAIM = """
local bound = redis.call('GET', KEYS[1])
if bound and bound ~= ARGV[1] then
  return {'host', bound}
end
local served = redis.call('GET', KEYS[2])
if served and served ~= ARGV[2] then
  return {'daemon', served}
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[2])
return {'ok', ''}
"""


@dataclass(frozen=True, slots=True)
class HostStatus:
    """One host as the registry sees it."""

    host: str
    alive: bool
    last_seen: float | None
    facts: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The ``maintenance.hosts`` entry."""
        return {
            "host": self.host,
            "docker_version": self.facts.get("docker_version"),
            "cpus": self.facts.get("cpus"),
            "memory_bytes": self.facts.get("memory_bytes"),
            "running": self.facts.get("running", 0),
            "images_cached": self.facts.get("images_cached", 0),
            "cache_bytes": self.facts.get("cache_bytes", 0),
            "last_seen": self.last_seen,
            "alive": self.alive,
        }


class HostRegistry:
    """Host identity and liveness in Redis. The client is passed in (``decode_responses=True``)."""

    def __init__(self, client: redis.Redis, keys: Keys, *, dead_seconds: float) -> None:
        self.redis = client
        self.keys = keys
        self.dead_seconds = dead_seconds
        self._claim = client.register_script(_CLAIM)

    def claim(self, daemon_id: str) -> None:
        """Bind this host name to the Docker daemon ``daemon_id``, and the daemon to this name.

        Raises:
            ConfigurationError: the name is bound to another daemon, or the daemon to another name.
        """
        host = self.keys.host
        kind, holder = self._claim(
            keys=[self.keys.daemon_id(), self.keys.daemon_host(daemon_id), self.keys.hosts()],
            args=[daemon_id, host],
        )
        if kind == "host":
            raise ConfigurationError(
                f"host name {host!r} is bound to Docker daemon {holder}, and this process talks"
                f" to daemon {daemon_id}: give each Docker host its own CONTAINERIZER_HOST_NAME"
                f" (if this host's daemon was reinstalled, delete the keys"
                f" {self.keys.daemon_id()!r} and {self.keys.daemon_host(str(holder))!r})"
            )
        if kind == "daemon":
            raise ConfigurationError(
                f"Docker daemon {daemon_id} already serves as host {holder!r}; this process"
                f" calls it {host!r}: one daemon, one CONTAINERIZER_HOST_NAME (to rename the"
                f" host, delete the key {self.keys.daemon_host(daemon_id)!r} first)"
            )

    # --- heartbeats ---------------------------------------------------------------------------
    def beat(self, facts: Mapping[str, Any], *, now: float | None = None) -> None:
        """Record that this host is alive, with its facts (docker version, CPUs, load, ...)."""
        fields: dict[Any, Any] = {name: json.dumps(value) for name, value in facts.items()}
        fields["last_seen"] = json.dumps(time.time() if now is None else now)
        fields["stopped"] = "false"
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.host_info(), mapping=fields)
        pipe.sadd(self.keys.hosts(), self.keys.host)
        pipe.execute()

    def stopped(self) -> None:
        """This host's service stopped cleanly: it is not alive from now on."""
        self.redis.hset(self.keys.host_info(), "stopped", "true")

    def status(self, host: str, *, now: float | None = None) -> HostStatus:
        """What is known of one host."""
        raw = self.redis.hgetall(self.keys.on(host).host_info())
        return self._status(host, raw, time.time() if now is None else now)

    def all(self, *, now: float | None = None) -> list[HostStatus]:
        """Every host that ever served this deployment, by name."""
        names = sorted(str(name) for name in self.redis.smembers(self.keys.hosts()))
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.on(name).host_info())
        current = time.time() if now is None else now
        return [
            self._status(name, raw, current)
            for name, raw in zip(names, pipe.execute(), strict=True)
        ]

    def names(self) -> list[str]:
        """Every host that ever served this deployment."""
        return sorted(str(name) for name in self.redis.smembers(self.keys.hosts()))

    def alive(self, *, now: float | None = None) -> list[str]:
        """The names of the live hosts."""
        return [status.host for status in self.all(now=now) if status.alive]

    def require_alive(self, host: str) -> None:
        """Raises HostUnavailable unless ``host`` is alive."""
        status = self.status(host)
        if not status.alive:
            seen = (
                "never heard from"
                if status.last_seen is None
                else f"last heard from {time.time() - status.last_seen:.0f} s ago"
            )
            raise HostUnavailable(f"host {host!r} is not alive ({seen})")

    def candidates(
        self, hosts: Sequence[str] | None, reference: str, *, now: float | None = None
    ) -> list[tuple[HostStatus, bool | None]]:
        """For placing a container of image ``reference``: each of ``hosts`` (None: every host
        that ever served) with whether its agent lists that image (None: it lists no image
        yet), in two round trips at most, whatever the number of hosts."""
        names = sorted(hosts) if hosts is not None else self.names()
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            keys = self.keys.on(name)
            pipe.hgetall(keys.host_info())
            pipe.sismember(keys.image_references(), reference)
            pipe.scard(keys.image_references())
        replies = pipe.execute()
        current = time.time() if now is None else now
        found = []
        for index, name in enumerate(names):
            info, has, listed = replies[3 * index : 3 * index + 3]
            found.append((self._status(name, info, current), bool(has) if listed else None))
        return found

    def image_references(self, host: str) -> set[str]:
        """The canonical references of the images ``host`` has (its agent keeps them)."""
        return {str(ref) for ref in self.redis.smembers(self.keys.on(host).image_references())}

    def inventory(self, host: str) -> dict[str, dict[str, Any]]:
        """image id -> {tags, size} of every image ``host`` has (its agent keeps it)."""
        raw = self.redis.hgetall(self.keys.on(host).image_inventory())
        return {str(image_id): json.loads(value) for image_id, value in raw.items()}

    def publish_inventory(self, rows: list[dict[str, Any]]) -> None:
        """This host's images now (the rows of ``docker images``), for placement and listing."""
        inventory = {
            str(row["Id"]): json.dumps(
                {
                    "tags": [t for t in row.get("RepoTags") or [] if t != "<none>:<none>"],
                    "size": int(row.get("Size") or 0),
                }
            )
            for row in rows
        }
        references = {
            canonical_name(tag)
            for row in rows
            for tag in row.get("RepoTags") or []
            if tag != "<none>:<none>"
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.keys.image_inventory(), self.keys.image_references())
        if inventory:
            pipe.hset(self.keys.image_inventory(), mapping=inventory)  # type: ignore[arg-type]
        if references:
            pipe.sadd(self.keys.image_references(), *references)
        pipe.execute()

    def _status(self, host: str, raw: Mapping[Any, Any], now: float) -> HostStatus:
        facts: dict[str, Any] = {}
        for name, value in raw.items():
            try:
                facts[str(name)] = json.loads(value)
            except (TypeError, ValueError):
                facts[str(name)] = value
        last_seen = facts.pop("last_seen", None)
        stopped = bool(facts.pop("stopped", False))
        alive = (
            isinstance(last_seen, int | float)
            and not stopped
            and now - float(last_seen) < self.dead_seconds
        )
        return HostStatus(
            host, alive, float(last_seen) if isinstance(last_seen, int | float) else None, facts
        )


# KEYS: the placements hash of each candidate host, in order.
# ARGV: the container's name, its memory (bytes), then per candidate: the host's memory (bytes) and
# 1 when it has the image (0 when not).
# A name placed already stays where it is (a redelivered create); otherwise the best candidate is
# the first with the image, then the one whose memory would be least used, then the one with the
# fewest containers, then the first. The name is placed there. Returns the chosen index (1-based).
_PLACE = """
local name = ARGV[1]
local memory = tonumber(ARGV[2])
for i = 1, #KEYS do
  if redis.call('HEXISTS', KEYS[i], name) == 1 then
    return {i, 1}
  end
end
local best, best_has, best_load, best_count = nil, -1, nil, nil
for i = 1, #KEYS do
  local total = math.max(tonumber(ARGV[1 + 2 * i]), 1)
  local has = tonumber(ARGV[2 + 2 * i])
  local used = 0
  for _, value in ipairs(redis.call('HVALS', KEYS[i])) do
    used = used + (tonumber(value) or 0)
  end
  local load = (used + memory) / total
  local count = redis.call('HLEN', KEYS[i])
  if best == nil or has > best_has or (has == best_has and (load < best_load or
      (load == best_load and count < best_count))) then
    best, best_has, best_load, best_count = i, has, load, count
  end
end
redis.call('HSET', KEYS[best], name, memory)
return {best, 0}
"""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A host a container may go to: its memory, and whether it has the container's image."""

    host: str
    memory_bytes: int
    has_image: bool


@dataclass(frozen=True, slots=True)
class Placed:
    """Where a container went, and why (logged, and returned as ``host``)."""

    host: str
    reason: str


class Placement:
    """Chooses the host of a new container, atomically (one script), among live candidates:
    those that have its image first (Kubernetes' ImageLocality), then the least loaded (the
    memory limits of the containers placed there, against the host's memory; then their number).
    A container counts from its placement until its removal."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._place = client.register_script(_PLACE)

    def place(self, name: str, memory_bytes: int, candidates: list[Candidate]) -> Placed:
        """Place the container ``name`` on one of ``candidates`` (one: pinned there).

        Raises:
            HostUnavailable: there is no candidate.
        """
        if not candidates:
            raise HostUnavailable(f"container {name}: no live host to place it on")
        index, already = self._place(
            keys=[self.keys.on(c.host).placements() for c in candidates],
            args=[
                name,
                memory_bytes,
                *(item for c in candidates for item in (c.memory_bytes, int(c.has_image))),
            ],
        )
        chosen = candidates[int(index) - 1]
        if int(already):
            reason = "placed there before (the same name)"
        elif len(candidates) == 1:
            reason = "the only candidate"
        elif chosen.has_image:
            reason = "has the image; least loaded of those that do"
        else:
            reason = "least loaded (no live host has the image)"
        return Placed(chosen.host, reason)

    def forget(self, host: str, name: str) -> None:
        """A placement that led to no container (its create failed)."""
        self.redis.hdel(self.keys.on(host).placements(), name)

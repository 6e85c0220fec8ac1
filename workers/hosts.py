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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from workers.errors import ConfigurationError, HostUnavailable
from workers.keys import Keys

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

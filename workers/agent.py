"""The host agent: what each Docker host's service tells the cluster about itself.

Every ``CONTAINERIZER_HEARTBEAT_SECONDS`` it records the host's facts (Docker's version, CPUs,
memory, the managed containers running, the image cache) as its heartbeat, and the images the host
has (for placement by image, and for ``images.list`` across hosts). When the service stops cleanly
it says so, and the host is not alive from that moment. It runs beside the events watcher
(``containerizer events``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from typing import Any

import redis

from workers.engine import Engine
from workers.errors import ContainerizerError
from workers.hosts import HostRegistry
from workers.image_cache import ImageCache
from workers.models import ContainerStatus
from workers.state import StateStore

log = logging.getLogger(__name__)


class HostAgent:
    """Heartbeats of one host. Takes its collaborators in."""

    def __init__(
        self,
        engine: Engine,
        registry: HostRegistry,
        state: StateStore,
        cache: ImageCache,
        *,
        interval_seconds: float,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.state = state
        self.cache = cache
        self.interval = interval_seconds
        self._version: str | None = None
        self._inventory_digest: str | None = None

    def facts(self) -> dict[str, Any]:
        """What the heartbeat says of this host now."""
        info = self.engine.info()
        if self._version is None:
            self._version = str(self.engine.version().get("Version") or "")
        records = self.state.get_many(sorted(self.state.live_ids()))
        running = sum(
            1 for r in records.values() if r.get("status") == ContainerStatus.RUNNING.value
        )
        entries = self.cache.entries()
        return {
            "docker_version": self._version,
            "cpus": int(info.get("NCPU") or 0),
            "memory_bytes": int(info.get("MemTotal") or 0),
            "running": running,
            "images_cached": len(entries),
            "cache_bytes": self.cache.total_bytes(),
        }

    def beat(self) -> None:
        """One heartbeat: the host's facts, and its images when they changed."""
        self.registry.beat(self.facts())
        self.publish_images()

    def publish_images(self, *, force: bool = False) -> None:
        """Publish the host's images (only when they changed since the last time, unless forced)."""
        rows = self.engine.images()
        digest = hashlib.sha256(
            json.dumps(
                sorted((str(r["Id"]), sorted(r.get("RepoTags") or [])) for r in rows)
            ).encode()
        ).hexdigest()
        if force or digest != self._inventory_digest:
            self.registry.publish_inventory(rows)
            self._inventory_digest = digest

    def run(self, stop: threading.Event) -> None:
        """Heartbeat until ``stop`` is set, then say this host stopped."""
        while not stop.is_set():
            try:
                self.beat()
            except (ContainerizerError, redis.RedisError) as exc:
                log.warning("heartbeat failed (%s); trying again in %.0f s", exc, self.interval)
            stop.wait(self.interval)
        try:
            self.registry.stopped()
            log.info("host %s: stopped", self.registry.keys.host)
        except redis.RedisError as exc:
            log.warning("could not record that this host stopped: %s", exc)

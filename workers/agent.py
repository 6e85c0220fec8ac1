"""The host agent: what each Docker host's service tells the cluster about itself.

Every ``CONTAINERIZER_HEARTBEAT_SECONDS`` it records the host's facts (Docker's version, CPUs,
memory, the managed containers running, the image cache) as its heartbeat, and the images the host
has (for placement by image, and for ``images.list`` across hosts). When the service stops cleanly
it says so, and the host is not alive from that moment. It runs beside the events watcher
(``containerizer events``).

A heartbeat costs Redis, not dockerd: `docker info` (which walks every container and execs runc and
docker-init for their versions) is read every INFO_SECONDS for CPUs and memory. The image list is
published when it changes: the images worker publishes it after every change it makes, the agent
after every image event (an image tagged, pulled or removed behind the service's back), and
every INVENTORY_SECONDS besides, should an event have been missed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from typing import Any

import redis

from workers.engine import Engine
from workers.errors import ContainerizerError
from workers.hosts import HostRegistry
from workers.image_cache import ImageCache
from workers.models import ContainerStatus
from workers.state import StateStore

log = logging.getLogger(__name__)

INFO_SECONDS = 300.0
INVENTORY_SECONDS = 60.0
IMAGE_EVENTS_WINDOW_SECONDS = 30.0  # An image event stream ends this often, to notice a stop.


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
        self._info: dict[str, Any] | None = None
        self._info_at = self._inventory_at = -math.inf

    def facts(self) -> dict[str, Any]:
        """What the heartbeat says of this host now."""
        now = time.monotonic()
        if self._info is None or now - self._info_at >= INFO_SECONDS:
            self._info, self._info_at = self.engine.info(), now
        info = self._info
        if self._version is None:
            self._version = str(self.engine.version().get("Version") or "")
        records = self.state.fields_many(sorted(self.state.live_ids()), ("status",))
        running = sum(1 for r in records.values() if r["status"] == ContainerStatus.RUNNING.value)
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
        """One heartbeat: the host's facts, and (every INVENTORY_SECONDS) its images when they
        changed."""
        self.registry.beat(self.facts())
        if time.monotonic() - self._inventory_at >= INVENTORY_SECONDS:
            self.publish_images()

    def publish_images(self, *, force: bool = False) -> None:
        """Publish the host's images (only when they changed since the last time, unless forced)."""
        rows = self.engine.images()
        self._inventory_at = time.monotonic()
        digest = hashlib.sha256(
            json.dumps(
                sorted((str(r["Id"]), sorted(r.get("RepoTags") or [])) for r in rows)
            ).encode()
        ).hexdigest()
        if force or digest != self._inventory_digest:
            self.registry.publish_inventory(rows)
            self._inventory_digest = digest

    def follow_images(self, stop: threading.Event) -> None:
        """Publish the host's images after each image event, until ``stop`` is set."""
        since, backoff = time.time(), 0.5
        while not stop.is_set():
            until = time.time() + IMAGE_EVENTS_WINDOW_SECONDS
            try:
                for event in self.engine.events(
                    since=f"{since:.9f}", until=f"{until:.9f}", filters={"type": "image"}
                ):
                    since = max(since, int(event.get("timeNano") or 0) / 1e9)
                    self.publish_images()
                    if stop.is_set():
                        return
                since, backoff = until, 0.5
            except (ContainerizerError, redis.RedisError) as exc:
                log.warning("image events lost (%s); again in %.1f s", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

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

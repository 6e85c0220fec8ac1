"""The periodic work beat schedules: stats sweeps, reconciliation, the summary; and the lock that
keeps two overlapping runs (or two beats started by mistake) from doing the same work twice."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import redis

from config.settings import Settings
from workers.container_config import MANAGED_FILTER
from workers.containers import ContainerService
from workers.errors import ContainerizerError, ContainerNotFound
from workers.image_cache import ImageCache, cached_bytes
from workers.keys import Keys
from workers.metrics import Metrics
from workers.models import ContainerStatus
from workers.state import StateStore

log = logging.getLogger(__name__)


@contextmanager
def exclusive(client: redis.Redis, keys: Keys, task: str, ttl_seconds: float) -> Iterator[bool]:
    """Hold the lock of one periodic task if nobody does; yields whether it is held.

    The lock expires after ``ttl_seconds`` (a crashed holder cannot block forever) and is released
    only by its holder.
    """
    lock = client.lock(keys.maintenance_lock(task), timeout=ttl_seconds, thread_local=False)
    acquired = bool(lock.acquire(blocking=False))
    try:
        yield acquired
    finally:
        if acquired:
            try:
                lock.release()
            except redis.exceptions.LockError:
                log.warning("%s ran longer than its lock (%.0f s)", task, ttl_seconds)


class StatsCollector:
    """One concurrent sweep of one-shot stats over every running managed container."""

    def __init__(
        self, containers: ContainerService, settings: Settings, metrics: Metrics | None = None
    ) -> None:
        self.containers = containers
        self.settings = settings
        self.metrics = metrics

    def collect(self) -> dict[str, Any]:
        """Sample every running managed container; returns {containers, seconds, skipped}.

        A container that vanishes mid-sweep is skipped, not an error. The pool is bounded by
        ``stats_concurrency``: Docker answers one-shot calls on its 1 s collection tick, so calls
        in flight together share a tick and the sweep costs about one tick, not one per container.
        """
        began = time.monotonic()
        running = self.containers.list(all=False, labels=[])
        records = self.containers.state.get_many([row["id"] for row in running])
        targets = [(cid, record.get("started_at")) for cid, record in records.items()]
        sampled = skipped = 0
        if targets:
            workers = min(self.settings.stats_concurrency, len(targets))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stats") as pool:
                for outcome in pool.map(self._sample, targets):
                    if outcome:
                        sampled += 1
                    else:
                        skipped += 1
        seconds = round(time.monotonic() - began, 3)
        if self.metrics is not None:
            self.metrics.observe("stats_sweep_seconds", seconds)
        log.info("stats sweep: %d containers in %.3f s (%d skipped)", sampled, seconds, skipped)
        return {"containers": sampled, "seconds": seconds, "skipped": skipped}

    def _sample(self, target: tuple[str, str | None]) -> bool:
        container_id, started_at = target
        try:
            self.containers.sample(container_id, started_at)
        except ContainerNotFound:
            return False  # Gone mid-sweep.
        except ContainerizerError as exc:
            log.warning("stats of %s skipped: %s", container_id[:12], exc)
            return False
        return True


class Reconciler:
    """Brings the state store in line with Docker for whatever events may have missed."""

    def __init__(self, containers: ContainerService, state: StateStore) -> None:
        self.containers = containers
        self.state = state

    def reconcile(self) -> dict[str, int]:
        """Returns {updated, removed}: records changed to Docker's state, records of gone
        containers marked removed."""
        # The live set first: a container created between the two reads is then in Docker's
        # list and not (yet) in ours, which is harmless, rather than the other way round.
        live = self.state.live_ids()
        actual = {
            row["Id"]: ContainerStatus.from_docker(str(row.get("State", ""))).value
            for row in self.containers.engine.containers(all=True, labels=[MANAGED_FILTER])
        }
        removed = 0
        for container_id in live - actual.keys():
            self.state.record_removed(container_id)
            removed += 1
        updated = 0
        records = self.state.get_many(sorted(live & actual.keys()))
        for container_id, record in records.items():
            if record.get("status") == actual[container_id]:
                continue
            try:
                info = self.containers.engine_info(container_id)
            except ContainerNotFound:
                self.state.record_removed(container_id)
                removed += 1
                continue
            # Unless an event has changed the record since it was read: the next run looks again.
            seen = int(record.get("status_at_us") or 0)
            if self.state.record(info, replacing_us=seen):
                updated += 1
        if updated or removed:
            log.info("reconcile: %d records updated, %d removed", updated, removed)
        return {"updated": updated, "removed": removed}


def summary(state: StateStore, cache: ImageCache, settings: Settings) -> dict[str, Any]:
    """Containers by status, and the image cache's figures."""
    records = state.get_many(sorted(state.live_ids()))
    by_status: Counter[str] = Counter(str(r.get("status")) for r in records.values())
    containers: dict[str, int] = {"total": sum(by_status.values())}
    for status in ContainerStatus:
        if status is not ContainerStatus.REMOVED:
            containers[status.value] = by_status.get(status.value, 0)
    containers["stopped"] = containers["exited"] + containers["created"] + containers["dead"]
    entries = cache.entries()
    counters = cache.counters()
    return {
        "containers": containers,
        "images": {
            "cached": len(entries),
            "cache_bytes": cached_bytes(entries),
            "budget_bytes": settings.image_cache_bytes,
            "hit_rate": counters["hit_rate"],
            "hits": counters["hits"],
            "misses": counters["misses"],
        },
    }

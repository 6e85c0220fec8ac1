"""The periodic work beat schedules: stats sweeps, reconciliation, the summary; and the lock that
keeps two overlapping runs (or two beats started by mistake) from doing the same work twice."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from config.settings import Settings
from workers.container_config import CREATE_TOKEN_LABEL, MANAGED_FILTER
from workers.containers import ContainerService
from workers.errors import ContainerNotFound
from workers.image_cache import ImageCache, cached_bytes
from workers.keys import Keys
from workers.metrics import Metrics
from workers.models import ContainerStatus
from workers.resources import ResourceService
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


# KEYS: the task's tick key. ARGV: its interval in seconds. The slot is the interval the Redis
# server's clock is in: the first run of a slot takes it, later ones of that slot find it taken.
_TICK = """
local now = redis.call('TIME')
local slot = math.floor((tonumber(now[1]) + tonumber(now[2]) / 1e6) / tonumber(ARGV[1]))
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
if slot <= last then
  return 0
end
redis.call('SET', KEYS[1], slot, 'EX', math.ceil(tonumber(ARGV[1]) * 3))
return 1
"""


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    """One periodic task of a host: its name, interval, lock time and idle result."""

    name: str
    interval_seconds: float
    lock_seconds: float
    idle: dict[str, Any]


class Periodic:
    """Runs a host's periodic work once per interval, however many beats ask: a scheduled run
    takes its interval's slot first (one script), and every run takes the task's lock, so that a
    second run finds the slot or the lock taken and returns at once (``locked`` or
    ``skipped``)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._tick = client.register_script(_TICK)

    def run(
        self, job: PeriodicJob, work: Callable[[], dict[str, Any]], *, scheduled: bool
    ) -> dict[str, Any]:
        """``work()``, unless this interval's run happened (``scheduled``) or one is under way."""
        if scheduled and not self._tick(
            keys=[self.keys.tick(job.name)], args=[job.interval_seconds]
        ):
            return {**job.idle, "skipped": True, "reason": f"{job.name} ran in this interval"}
        with exclusive(self.redis, self.keys, job.name, job.lock_seconds) as held:
            if not held:
                return {
                    **job.idle,
                    "locked": True,
                    "reason": f"another {job.name} run holds the lock",
                }
            return work()


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
        state = self.containers.state
        records = state.fields_many(sorted(state.live_ids()), ("status", "started_at"))
        targets = [
            (container_id, record["started_at"])
            for container_id, record in records.items()
            if record["status"] == ContainerStatus.RUNNING.value
        ]
        sampled, skipped = self.containers.sample_many(targets)
        seconds = round(time.monotonic() - began, 3)
        if self.metrics is not None:
            self.metrics.observe("stats_sweep_seconds", seconds)
        source = self.containers.stats_source.kind
        log.info(
            "stats sweep: %d containers in %.3f s (%d skipped, from the %s)",
            sampled,
            seconds,
            skipped,
            "cgroup files" if source == "cgroup" else "Docker API",
        )
        return {"containers": sampled, "seconds": seconds, "skipped": skipped, "source": source}


class Reconciler:
    """Brings the state store in line with Docker for whatever events may have missed, and deals
    with the containers whose create was lost between Docker and the store (orphans)."""

    def __init__(
        self,
        containers: ContainerService,
        state: StateStore,
        settings: Settings,
        resources: ResourceService | None = None,
    ) -> None:
        self.containers = containers
        self.state = state
        self.settings = settings
        self.resources = resources

    def reconcile(self) -> dict[str, int]:
        """Returns {updated, removed, adopted, reaped}: records changed to Docker's state,
        records of gone containers marked removed, orphans recorded or removed."""
        # The live set first: a container created between the two reads is then in Docker's
        # list and not (yet) in ours, which is harmless, rather than the other way round.
        live = self.state.live_ids()
        rows = self.containers.engine.containers(all=True, labels=[MANAGED_FILTER])
        actual = {
            row["Id"]: ContainerStatus.from_docker(str(row.get("State", ""))).value for row in rows
        }
        removed = 0
        for container_id in live - actual.keys():
            self.state.record_removed(container_id)
            removed += 1
        updated, gone = self._refresh(live & actual.keys(), actual)
        adopted, reaped = self._orphans([row for row in rows if row["Id"] not in live])
        if self.resources is not None:
            self.resources.reconcile()
        outcome = {
            "updated": updated,
            "removed": removed + gone,
            "adopted": adopted,
            "reaped": reaped,
        }
        if any(outcome.values()):
            log.info("reconcile: %s", outcome)
        return outcome

    def _refresh(self, ids: set[str], actual: dict[str, str]) -> tuple[int, int]:
        """Records that disagree with Docker, rewritten; (updated, removed)."""
        updated = removed = 0
        for container_id, record in self.state.get_many(sorted(ids)).items():
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
        return updated, removed

    def _orphans(self, unrecorded: list[dict[str, Any]]) -> tuple[int, int]:
        """Managed containers without a record whose marker (a create token of this host) says
        the service made them: once older than the grace period, recorded (``adopt``) or removed
        (``remove``), as the orphan policy says. Containers without the marker are never touched.
        Markers of creates that left no container are dropped after the grace period."""
        intents = self.state.intents()
        now = time.time()
        grace = self.settings.orphan_grace_seconds
        adopted = reaped = 0
        claimed: set[str] = set()
        for row in unrecorded:
            token = (row.get("Labels") or {}).get(CREATE_TOKEN_LABEL)
            intent = intents.get(token or "")
            if token is None or intent is None:
                continue
            claimed.add(token)
            if now - float(intent.get("at") or 0) < grace:
                continue  # Its create may still be under way.
            if self.settings.orphan_policy == "adopt":
                with contextlib.suppress(ContainerNotFound):
                    self.state.record(self.containers.engine_info(str(row["Id"])))
                    adopted += 1
            else:
                with contextlib.suppress(ContainerNotFound):
                    self.containers.engine.remove_container(
                        str(row["Id"]), force=True, volumes=True
                    )
                    reaped += 1
            self.state.drop_intent(token)
            log.warning(
                "orphan container %s (%s) %s: its create was lost before it was recorded",
                row["Id"][:12],
                intent.get("name"),
                "adopted" if self.settings.orphan_policy == "adopt" else "removed",
            )
        for token, intent in intents.items():
            if token not in claimed and now - float(intent.get("at") or 0) >= grace:
                self.state.drop_intent(token)  # A create that left nothing behind.
        return adopted, reaped


def summary(
    state: StateStore, cache: ImageCache, settings: Settings, hosts: list[str]
) -> dict[str, Any]:
    """Containers by status, and the image cache's figures, over ``hosts`` (with each host's)."""
    per_host = {
        host: _host_summary(state, ImageCache(cache.redis, cache.keys.on(host)), host, settings)
        for host in hosts
    }
    containers: Counter[str] = Counter()
    images: Counter[str] = Counter()
    for part in per_host.values():
        containers.update(part["containers"])
        images.update({k: v for k, v in part["images"].items() if k not in _RATIOS})
    total = images["hits"] + images["misses"]
    return {
        "containers": dict(containers),
        "images": {
            **dict(images),
            "budget_bytes": settings.image_cache_bytes,
            "hit_rate": round(images["hits"] / total, 4) if total else None,
        },
        "hosts": per_host,
    }


_RATIOS = frozenset({"hit_rate", "budget_bytes"})


def _host_summary(
    state: StateStore, cache: ImageCache, host: str, settings: Settings
) -> dict[str, Any]:
    records = state.get_many(sorted(state.live_ids(host)))
    by_status: Counter[str] = Counter(str(r.get("status")) for r in records.values())
    containers: dict[str, int] = {"total": sum(by_status.values())}
    for status in ContainerStatus:
        if status is not ContainerStatus.REMOVED:
            containers[status.value] = by_status.get(status.value, 0)
    containers["stopped"] = containers["exited"] + containers["created"] + containers["dead"]
    containers["oom_killed"] = sum(1 for r in records.values() if r.get("oom_killed") is True)
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

"""containerizer.maintenance.*: what beat runs (queue ``maintenance``), plus the summary.

Each periodic task first takes a Redis lock of its own, so that two overlapping runs (a slow sweep,
or two beats started by mistake) do no double work: the second returns at once with
``"locked": true``. Periodic tasks are not retried; the next beat is the retry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task

from tasks.base import ContainerizerTask, check_arguments
from tasks.celery_app import app
from tasks.runtime import runtime
from workers.maintenance import exclusive
from workers.maintenance import summary as cache_summary


class MaintenanceTask(ContainerizerTask):
    """A periodic task: no retries (the schedule runs it again soon)."""

    abstract = True
    autoretry_for = ()
    max_retries = 0


def _exclusively(
    task: str, ttl_seconds: float, job: Callable[[], dict[str, Any]], idle: dict[str, Any]
) -> dict[str, Any]:
    """Run ``job`` under the task's lock; if another run holds it, return ``idle`` at once."""
    rt = runtime()
    with exclusive(rt.redis, rt.keys, task, ttl_seconds) as held:
        if not held:
            return {**idle, "locked": True, "reason": f"another {task} run holds the lock"}
        return job()


@app.task(name="containerizer.maintenance.collect_stats", bind=True, base=MaintenanceTask)
def collect_stats(self: Task, *extra: Any, **unknown: Any) -> dict[str, Any]:
    """One-shot stats of every running managed container: {containers, seconds, skipped}."""
    check_arguments(self, extra, unknown)
    rt = runtime()
    ttl = max(rt.settings.stats_interval_seconds * 3, 60.0)
    idle = {"containers": 0, "seconds": 0.0, "skipped": 0}
    return _exclusively("collect_stats", ttl, rt.collector.collect, idle)


@app.task(name="containerizer.maintenance.evict_images", bind=True, base=MaintenanceTask)
def evict_images(self: Task, *extra: Any, **unknown: Any) -> dict[str, Any]:
    """LRU eviction under the byte budget: {evicted, freed_bytes, cache_bytes, budget_bytes}."""
    check_arguments(self, extra, unknown)
    rt = runtime()
    idle = {
        "evicted": [],
        "freed_bytes": 0,
        "cache_bytes": rt.image_cache.total_bytes(),
        "budget_bytes": rt.settings.image_cache_bytes,
    }
    return _exclusively("evict_images", 900.0, rt.evictor.evict, idle)


@app.task(name="containerizer.maintenance.reconcile", bind=True, base=MaintenanceTask)
def reconcile(self: Task, *extra: Any, **unknown: Any) -> dict[str, Any]:
    """Bring Redis in line with Docker: {updated, removed}."""
    check_arguments(self, extra, unknown)
    rt = runtime()
    return _exclusively("reconcile", 300.0, rt.reconciler.reconcile, {"updated": 0, "removed": 0})


@app.task(name="containerizer.maintenance.summary", bind=True, base=MaintenanceTask)
def summary(self: Task, *extra: Any, **unknown: Any) -> dict[str, Any]:
    """Containers by status and the image cache: {containers: {...}, images: {...}}."""
    check_arguments(self, extra, unknown)
    rt = runtime()
    return cache_summary(rt.state, rt.image_cache, rt.settings)

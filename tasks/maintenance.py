"""containerizer.maintenance.*: each host's periodic work, the cluster's views (``hosts``,
``summary``) on the shared queue.

One beat serves the deployment: it sends each periodic task, ``scheduled``, to the shared
``maintenance`` queue; the worker that takes it runs this host's share and sends the task to the
own queue (``maintenance.<host>``) of every other live host. A periodic run happens once per
interval per host, however many beats send it, and never two at once (workers/maintenance.py:
Periodic): a second returns at once with ``"skipped": true`` or ``"locked": true``. Periodic tasks
are not retried; the next beat is the retry. Sent by hand (without ``scheduled``), one runs
whenever asked, on ``host`` (null: the host that takes it), still never beside another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task

from config.celery_config import MAINTENANCE_QUEUE, host_queue
from tasks.base import ContainerizerTask, check_arguments
from tasks.celery_app import app
from tasks.routing import forward
from tasks.runtime import runtime
from workers import arguments
from workers.cluster import host_argument
from workers.maintenance import PeriodicJob
from workers.maintenance import summary as cluster_summary


class MaintenanceTask(ContainerizerTask):
    """A periodic task: no retries (the schedule runs it again soon)."""

    abstract = True
    autoretry_for = ()
    max_retries = 0


def _periodic(
    task: Task, job: PeriodicJob, work: Callable[[], dict[str, Any]], host: Any, scheduled: Any
) -> dict[str, Any]:
    """Run ``work`` as ``job`` on ``host`` (null: this one; another: forwarded there); a
    scheduled run for no host in particular (beat's) is every live host's."""
    rt = runtime()
    pinned = host_argument(host)
    target = pinned or rt.cluster.here
    on_schedule = arguments.boolean("scheduled", scheduled)
    if target != rt.cluster.here:
        rt.cluster.require_alive(target)
        forward(task, host_queue(MAINTENANCE_QUEUE, target), host=target)
    if on_schedule and pinned is None:
        for other in sorted(set(rt.hosts.alive()) - {rt.cluster.here}):
            task.apply_async(
                kwargs={"scheduled": True, "host": other},
                queue=host_queue(MAINTENANCE_QUEUE, other),
                expires=job.interval_seconds,
            )
    return {**rt.periodic.run(job, work, scheduled=on_schedule), "host": target}


@app.task(name="containerizer.maintenance.collect_stats", bind=True, base=MaintenanceTask)
def collect_stats(
    self: Task, host: Any = None, scheduled: Any = False, *extra: Any, **unknown: Any
) -> dict[str, Any]:
    """One-shot stats of every running managed container: {containers, seconds, skipped}."""
    check_arguments(self, extra, unknown)
    rt = runtime()
    interval = rt.settings.stats_interval_seconds
    job = PeriodicJob(
        "collect_stats", interval, max(interval * 3, 60.0), {"containers": 0, "seconds": 0.0}
    )
    return _periodic(self, job, rt.collector.collect, host, scheduled)


@app.task(name="containerizer.maintenance.evict_images", bind=True, base=MaintenanceTask)
def evict_images(
    self: Task, host: Any = None, scheduled: Any = False, *extra: Any, **unknown: Any
) -> dict[str, Any]:
    """LRU eviction under the byte budget: {evicted, freed_bytes, cache_bytes, budget_bytes}."""
    check_arguments(self, extra, unknown)
    rt = runtime()
    idle = {
        "evicted": [],
        "freed_bytes": 0,
        "cache_bytes": rt.image_cache.total_bytes(),
        "budget_bytes": rt.settings.image_cache_bytes,
    }
    job = PeriodicJob("evict_images", rt.settings.evict_interval_seconds, 900.0, idle)
    return _periodic(self, job, rt.evictor.evict, host, scheduled)


@app.task(name="containerizer.maintenance.reconcile", bind=True, base=MaintenanceTask)
def reconcile(
    self: Task, host: Any = None, scheduled: Any = False, *extra: Any, **unknown: Any
) -> dict[str, Any]:
    """Bring Redis in line with Docker: {updated, removed, adopted, reaped}."""
    check_arguments(self, extra, unknown)
    rt = runtime()
    job = PeriodicJob(
        "reconcile", rt.settings.reconcile_interval_seconds, 300.0, {"updated": 0, "removed": 0}
    )
    return _periodic(self, job, rt.reconciler.reconcile, host, scheduled)


@app.task(name="containerizer.maintenance.summary", bind=True, base=MaintenanceTask)
def summary(self: Task, host: Any = None, *extra: Any, **unknown: Any) -> dict[str, Any]:
    """Containers by status and the image caches, over every host (or ``host``):
    {containers: {...}, images: {...}, hosts: {<host>: {containers, images}}}."""
    check_arguments(self, extra, unknown)
    rt = runtime()
    pinned = host_argument(host)
    hosts = [pinned] if pinned is not None else rt.hosts.names() or [rt.cluster.here]
    return cluster_summary(rt.state, rt.image_cache, rt.settings, hosts)


@app.task(name="containerizer.maintenance.hosts", bind=True, base=MaintenanceTask)
def hosts(self: Task, *extra: Any, **unknown: Any) -> list[dict[str, Any]]:
    """Every host with its last heartbeat: [{host, docker_version, cpus, memory_bytes, running,
    images_cached, cache_bytes, last_seen, alive}]."""
    check_arguments(self, extra, unknown)
    return [status.as_dict() for status in runtime().hosts.all()]

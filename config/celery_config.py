"""The Celery configuration, derived from :class:`config.settings.Settings`."""

from __future__ import annotations

from typing import Any

from config.settings import Settings

# The shared queues: any host's workers take from them (and forward what belongs to another host).
CONTAINERS_QUEUE = "containers"
IMAGES_QUEUE = "images"
MAINTENANCE_QUEUE = "maintenance"
QUEUES = (CONTAINERS_QUEUE, IMAGES_QUEUE, MAINTENANCE_QUEUE)


def host_queue(queue: str, host: str) -> str:
    """A host's own queue of a kind: ``containers.<host>``, ``images.<host>``, ..."""
    return f"{queue}.{host}"


TASK_ROUTES = {
    "containerizer.containers.*": {"queue": CONTAINERS_QUEUE},
    "containerizer.images.*": {"queue": IMAGES_QUEUE},
    "containerizer.maintenance.*": {"queue": MAINTENANCE_QUEUE},
    "containerizer.volumes.*": {"queue": CONTAINERS_QUEUE},
    "containerizer.networks.*": {"queue": CONTAINERS_QUEUE},
}


def celery_config(settings: Settings) -> dict[str, Any]:
    """Return Celery settings (lowercase names) for ``app.conf.update``."""
    return {
        "broker_url": settings.broker_url,
        # Stored with task arguments redacted, whatever the backend (tasks/celery_app.py).
        "result_backend": settings.result_backend,
        # JSON only: pickle would let anyone who can write to the broker run code on the workers.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        # Tasks with side effects are idempotent, so redelivery after a lost worker is safe; one
        # message per process keeps a slow container start from holding others back.
        "task_acks_late": True,
        # A message that fails before its task runs is failed, acknowledged and never requeued,
        # and never ends the worker (tasks/consumer.py).
        "worker_consumer": "tasks.consumer:PoisonSafeConsumer",
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout(settings),
            # kombu looks for unacknowledged messages past the timeout every interval x throttle
            # seconds (10 x 10 by default): a dead worker's task came back up to 100 s late.
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 1,
        },
        "broker_connection_retry_on_startup": True,
        "task_routes": TASK_ROUTES,
        "task_default_queue": CONTAINERS_QUEUE,
        "task_create_missing_queues": True,
        "result_expires": settings.result_expires_seconds,
        # A result that cannot be stored while the backend is down is stored once it is back (a
        # done task's result is not lost, nor turned into a failure), within about a minute.
        "result_backend_always_retry": True,
        "result_backend_max_retries": 30,
        "result_backend_max_sleep_between_retries_ms": 2000,
        "result_extended": True,
        # No STARTED result write before each task: it measurably slows short tasks, and Flower
        # sees task-started events anyway. Long pulls report PROGRESS instead.
        "task_track_started": False,
        # Events for Flower: task-sent from clients, everything else from workers.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": True,
        "worker_redirect_stdouts": False,
        "enable_utc": True,
        "beat_schedule": beat_schedule(settings),
    }


def visibility_timeout(settings: Settings) -> int:
    """How long the Redis broker waits before it delivers an unacknowledged task again.

    Above the longest a task may run (a pull's hard time limit), so that a task still running is
    not delivered a second time; no longer, so that the task of a worker that died comes back as
    soon as that allows. The one exception, a ``stop`` or ``restart`` asked to wait longer than
    that for the container, is safe to deliver twice: a stop of a stopping container waits with
    it, and a restart runs once per message (workers/containers.py). RabbitMQ needs none of this:
    it delivers again when the connection of the worker that held the task closes.
    """
    if settings.visibility_timeout_seconds is not None:
        return settings.visibility_timeout_seconds
    longest = (
        settings.task_time_limit_seconds
        + settings.pull_timeout_seconds
        + settings.pull_stall_seconds
    )
    return int(longest) + 60


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """The deployment's periodic tasks, sent to the shared maintenance queue: the worker that
    takes one runs it for every live host (tasks/maintenance.py). A run not started within its
    interval expires instead of piling up."""
    queue = MAINTENANCE_QUEUE

    def every(seconds: float, task: str) -> dict[str, Any]:
        return {
            "task": task,
            "schedule": seconds,
            "kwargs": {"scheduled": True},
            "options": {"expires": seconds, "queue": queue},
        }

    return {
        "collect-stats": every(
            settings.stats_interval_seconds, "containerizer.maintenance.collect_stats"
        ),
        "evict-images": every(
            settings.evict_interval_seconds, "containerizer.maintenance.evict_images"
        ),
        "reconcile": every(
            settings.reconcile_interval_seconds, "containerizer.maintenance.reconcile"
        ),
    }

"""The beat schedule: three periodic tasks at the configured intervals, on the maintenance queue."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from celery import Celery
from celery.beat import ScheduleEntry

from config.celery_config import MAINTENANCE_QUEUE, beat_schedule, celery_config
from config.settings import Settings

PERIODIC = {
    "collect-stats": "containerizer.maintenance.collect_stats",
    "evict-images": "containerizer.maintenance.evict_images",
    "reconcile": "containerizer.maintenance.reconcile",
}


@pytest.fixture
def configured() -> Iterator[Celery]:
    """An app configured as the service's, with intervals that differ from each other."""
    app = Celery("beat-test", set_as_current=False)
    app.conf.update(
        celery_config(
            Settings(
                stats_interval_seconds=7.0,
                evict_interval_seconds=45.5,
                reconcile_interval_seconds=300.0,
                host_name="h1",
            )
        )
    )
    yield app
    app.close()


def test_the_three_periodic_tasks_with_their_default_intervals() -> None:
    schedule = beat_schedule(Settings(host_name="h1"))

    assert schedule == {
        "collect-stats": {
            "task": "containerizer.maintenance.collect_stats",
            "schedule": 10.0,
            "kwargs": {"scheduled": True},
            "options": {"expires": 10.0, "queue": "maintenance"},
        },
        "evict-images": {
            "task": "containerizer.maintenance.evict_images",
            "schedule": 60.0,
            "kwargs": {"scheduled": True},
            "options": {"expires": 60.0, "queue": "maintenance"},
        },
        "reconcile": {
            "task": "containerizer.maintenance.reconcile",
            "schedule": 60.0,
            "kwargs": {"scheduled": True},
            "options": {"expires": 60.0, "queue": "maintenance"},
        },
    }


def test_intervals_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTAINERIZER_STATS_INTERVAL_SECONDS", "3")
    monkeypatch.setenv("CONTAINERIZER_EVICT_INTERVAL_SECONDS", "120")
    monkeypatch.setenv("CONTAINERIZER_RECONCILE_INTERVAL_SECONDS", "900.5")

    schedule = beat_schedule(Settings(host_name="h1"))

    assert {name: entry["schedule"] for name, entry in schedule.items()} == {
        "collect-stats": 3.0,
        "evict-images": 120.0,
        "reconcile": 900.5,
    }
    assert {name: entry["options"]["expires"] for name, entry in schedule.items()} == {
        "collect-stats": 3.0,
        "evict-images": 120.0,
        "reconcile": 900.5,
    }


def test_celery_config_carries_the_schedule() -> None:
    settings = Settings(stats_interval_seconds=5.0)

    config = celery_config(settings)

    assert config["beat_schedule"] == beat_schedule(settings)
    assert config["beat_schedule"]["collect-stats"]["schedule"] == 5.0


def test_beat_reads_each_entry_as_a_schedule_that_expires_with_its_interval(
    configured: Celery,
) -> None:
    expected = {"collect-stats": 7.0, "evict-images": 45.5, "reconcile": 300.0}
    schedule = configured.conf.beat_schedule

    assert set(schedule) == set(PERIODIC)
    for name, seconds in expected.items():
        entry = ScheduleEntry(name=name, app=configured, **schedule[name])
        assert entry.task == PERIODIC[name]
        assert entry.schedule.run_every == timedelta(seconds=seconds)
        # Each host's beat sends its periodic tasks to that host's own queue.
        assert entry.options == {"expires": seconds, "queue": "maintenance"}
        assert entry.args == ()
        assert entry.kwargs == {"scheduled": True}  # Once per interval, however many beats.


@pytest.mark.parametrize("task", sorted(PERIODIC.values()))
def test_each_periodic_task_is_routed_to_the_maintenance_queue(
    configured: Celery, task: str
) -> None:
    route = configured.amqp.router.route({}, task)

    assert route["queue"].name == MAINTENANCE_QUEUE


def test_the_routes_keep_other_tasks_off_the_maintenance_queue(configured: Celery) -> None:
    router = configured.amqp.router

    assert router.route({}, "containerizer.images.pull")["queue"].name == "images"
    assert router.route({}, "containerizer.containers.run")["queue"].name == "containers"


def test_every_scheduled_task_is_a_registered_task() -> None:
    import tasks.maintenance  # noqa: F401  (registers the maintenance tasks)
    from tasks.celery_app import app

    for task in PERIODIC.values():
        assert task in app.tasks

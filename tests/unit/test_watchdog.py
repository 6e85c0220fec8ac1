"""The watchdog that enforces time limits in a threads pool: real threads, a patched exit."""

from __future__ import annotations

import threading
import time

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from tasks import watchdog as watchdog_module
from tasks.watchdog import HARD_LIMIT_EXIT_CODE, Watchdog


@pytest.fixture
def dog() -> Watchdog:
    watchdog = Watchdog(check_seconds=0.02)
    watchdog.enable()
    yield watchdog  # type: ignore[misc]
    watchdog.stop()


def busy_task(dog: Watchdog, soft: float | None, hard: float | None, seconds: float) -> list[str]:
    """Run a Python loop of ``seconds`` in a thread under the watchdog; what happened to it."""
    outcome: list[str] = []

    def task() -> None:
        dog.started("t", "id-1", soft, hard)
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                pass
            outcome.append("finished")
        except SoftTimeLimitExceeded:
            outcome.append("soft limit")
        finally:
            dog.ended()

    thread = threading.Thread(target=task)
    thread.start()
    thread.join(timeout=10)
    return outcome


def test_past_the_soft_limit_the_task_thread_gets_soft_time_limit_exceeded(dog: Watchdog) -> None:
    began = time.monotonic()
    assert busy_task(dog, 0.1, 5.0, 3.0) == ["soft limit"]
    assert time.monotonic() - began < 1.0


def test_a_task_within_its_limits_is_left_alone(dog: Watchdog) -> None:
    assert busy_task(dog, 1.0, 2.0, 0.1) == ["finished"]


def test_no_limit_means_none(dog: Watchdog) -> None:
    assert busy_task(dog, None, None, 0.2) == ["finished"]


def test_an_ended_task_is_not_interrupted_later(dog: Watchdog) -> None:
    assert busy_task(dog, 0.2, 5.0, 0.05) == ["finished"]
    time.sleep(0.3)  # Past its soft limit: nothing is raised in this thread (it ended).


def test_past_the_hard_limit_the_process_exits(
    dog: Watchdog, monkeypatch: pytest.MonkeyPatch
) -> None:
    exits: list[int] = []
    done = threading.Event()

    def fake_exit(code: int) -> None:
        exits.append(code)
        done.set()
        dog.stop()

    monkeypatch.setattr(watchdog_module.os, "_exit", fake_exit)
    monkeypatch.setattr(watchdog_module.logging, "shutdown", lambda: None)
    blocked = threading.Event()

    def stuck_task() -> None:
        dog.started("t", "id-2", None, 0.1)  # Only a hard limit: nothing interrupts the wait.
        blocked.wait(5)  # A thread blocked outside Python: the soft limit could not stop it.

    thread = threading.Thread(target=stuck_task, daemon=True)
    thread.start()
    assert done.wait(3)
    assert exits == [HARD_LIMIT_EXIT_CODE]
    blocked.set()

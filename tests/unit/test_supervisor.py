"""`up`'s supervisor gives up on a child that keeps dying, whatever each of its short runs lasts.

tasks/up.py promises that a child which keeps dying (5 exits within 60 s) stops the service. Its
restart delay doubles (1, 2, 4, 8 s), so five exits fit in 60 s only if the child dies within
about 11 s of each start; one that lives a little longer is restarted forever, every 30 s.

Real processes (``sh``), with the supervisor's times scaled by 1/10: a crash window of 6 s and a
first delay of 0.1 s, doubling up to 3 s. A child that dies 0.3 s after each start must end
the service, and so must one that dies 1.3 s after each start (13 s at full scale): neither
ever runs for a whole crash window.
"""

from __future__ import annotations

import signal
import threading

import pytest

import tasks.up as up_module
from tasks.up import Service, Supervisor

WINDOW_SECONDS = up_module.CRASH_WINDOW_SECONDS / 10
FIRST_DELAY_SECONDS = up_module.RESTART_BACKOFF_SECONDS / 10
LONGEST_DELAY_SECONDS = up_module.RESTART_BACKOFF_MAX_SECONDS / 10


@pytest.fixture
def scaled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(up_module, "RESTART_BACKOFF_SECONDS", FIRST_DELAY_SECONDS)
    monkeypatch.setattr(up_module, "RESTART_BACKOFF_MAX_SECONDS", LONGEST_DELAY_SECONDS)
    monkeypatch.setattr(up_module, "WATCH_INTERVAL_SECONDS", 0.05)


def supervise(seconds_alive: float, deadline: float) -> int | None:
    """Supervise a child that exits 1 ``seconds_alive`` after each start: the supervisor's exit
    code, or None if it still restarts the child after ``deadline`` seconds."""
    supervisor = Supervisor(
        grace_seconds=2.0,
        crash_limit=up_module.CRASH_LIMIT,
        crash_window_seconds=WINDOW_SECONDS,
    )
    supervisor.start(Service("crasher", ["sh", "-c", f"sleep {seconds_alive}; exit 1"]))
    # A child's first delay is the dataclass default, read when tasks.up was imported.
    supervisor.children[0].backoff = FIRST_DELAY_SECONDS
    codes: list[int] = []
    watcher = threading.Thread(target=lambda: codes.append(supervisor.watch()), daemon=True)
    watcher.start()
    watcher.join(deadline)
    if watcher.is_alive():
        supervisor.request_stop(signal.SIGTERM)
        watcher.join(10)
        return None
    return codes[0]


@pytest.mark.usefixtures("scaled")
@pytest.mark.parametrize("seconds_alive", [0.3, 1.3])
def test_a_child_that_keeps_dying_stops_the_service(seconds_alive: float) -> None:
    # Five runs and the delays between them (at most the longest each), and a margin.
    deadline = up_module.CRASH_LIMIT * (seconds_alive + LONGEST_DELAY_SECONDS) + 2.0
    code = supervise(seconds_alive, deadline)
    assert code == 1, (
        f"a child that dies {seconds_alive} s after each start (a crash window is"
        f" {WINDOW_SECONDS} s) was still being restarted after {deadline:.1f} s"
    )

"""Time limits where Celery's pool does not enforce them (the threads pool).

Celery's prefork pool ends a child that runs past a task's hard time limit and interrupts one past
its soft limit; its threads pool does neither. Here a watchdog thread of the worker does both for
the tasks running in it: past the soft limit it raises SoftTimeLimitExceeded in the task's thread
(at its next Python instruction: every Docker and Redis call containerizer makes has a timeout of
its own, so a blocked call returns in bounded time), which the task base turns into
TimeLimitExceeded; past the hard limit, a task that did not stop means a thread that will not, and
the worker process exits (code 75), as a prefork child would be ended. `up` (or compose) starts it
again, and the brokers deliver its unacknowledged tasks again (they are late-acked and safe to
repeat).
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import threading
import time
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded

log = logging.getLogger(__name__)

HARD_LIMIT_EXIT_CODE = 75
CHECK_SECONDS = 0.5


@dataclass
class _Running:
    task: str
    task_id: str
    soft_at: float
    hard_at: float
    interrupted: bool = False


class Watchdog:
    """Enforces the soft and hard time limits of the tasks running in this process's threads."""

    def __init__(self, check_seconds: float = CHECK_SECONDS) -> None:
        self.check_seconds = check_seconds
        self._running: dict[int, _Running] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def enabled(self) -> bool:
        return self._thread is not None

    def enable(self) -> None:
        """Start watching (once): for a worker whose pool does not enforce time limits."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)
                self._thread.start()

    def started(self, task: str, task_id: str, soft: float | None, hard: float | None) -> None:
        """A task began in the calling thread, with these limits (seconds; None: none)."""
        now = time.monotonic()
        soft_at = math.inf if soft is None else now + soft
        hard_at = math.inf if hard is None else now + hard
        with self._lock:
            self._running[threading.get_ident()] = _Running(task, task_id, soft_at, hard_at)

    def ended(self) -> None:
        """The calling thread's task ended."""
        with self._lock:
            self._running.pop(threading.get_ident(), None)

    def stop(self) -> None:
        """Stop watching (for tests: a worker's watchdog runs as long as the worker)."""
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.check_seconds):
            now = time.monotonic()
            with self._lock:
                running = list(self._running.items())
            for ident, task in running:
                if now > task.hard_at:
                    log.critical(
                        "%s[%s] ran past its hard time limit; ending this worker process so that"
                        " it is started again (its tasks are delivered again)",
                        task.task,
                        task.task_id,
                    )
                    logging.shutdown()
                    os._exit(HARD_LIMIT_EXIT_CODE)
                if now > task.soft_at and not task.interrupted:
                    task.interrupted = True
                    log.warning("%s[%s] ran past its soft time limit", task.task, task.task_id)
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(ident), ctypes.py_object(SoftTimeLimitExceeded)
                    )


watchdog = Watchdog()

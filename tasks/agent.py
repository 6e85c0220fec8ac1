"""``containerizer events``: the host agent process. `up` runs one per Docker host.

In threads of its own, until SIGTERM or Ctrl-C:

* it follows Docker's events into the container records, and acts on exits: their reasons, the
  ``wait`` tasks waiting for them, ``on_exit``, ``auto_remove`` (workers/events.py, jobs.py);
* it ends the waits that time out;
* it copies followed containers' output into their log streams (workers/logs.py);
* it heartbeats the host into the cluster, and says this host stopped when it stops, so that no new
  container is placed on it; it publishes the host's images when they change (workers/agent.py).
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from config.settings import Settings
from tasks.runtime import Runtime
from workers.agent import HostAgent
from workers.engine import Engine
from workers.errors import ConfigurationError, DockerUnavailable
from workers.events import EventWatcher
from workers.state import STATE_ERRORS

log = logging.getLogger("containerizer.events")
WAIT_SWEEP_SECONDS = 0.5


def run(settings: Settings) -> int:
    """Run the agent until interrupted; returns the exit code (2: misconfigured)."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupt)
    runtime = Runtime(settings)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        engine = _engine(runtime)
        if engine is None:
            return 2
        agent = HostAgent(
            engine,
            runtime.hosts,
            runtime.state,
            runtime.image_cache,
            interval_seconds=settings.heartbeat_seconds,
        )
        threads.append(threading.Thread(target=agent.run, args=(stop,), name="heartbeat"))
        # Daemonic: its event stream may block until its window ends; it holds nothing to save.
        threads.append(
            threading.Thread(
                target=agent.follow_images, args=(stop,), name="image-events", daemon=True
            )
        )
        threads.append(
            threading.Thread(target=runtime.followers.serve, args=(stop,), name="followers")
        )
        threads.append(
            threading.Thread(target=_expire_waits, args=(runtime, stop), name="wait-deadlines")
        )
        for thread in threads:
            thread.start()
        watcher = EventWatcher(
            engine, runtime.state, runtime.redis, runtime.keys, exits=runtime.exits
        )
        log.info("following Docker events from %s as host %s", watcher.since(), settings.host_name)
        watcher.run(stop)
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        runtime.close()
    log.info("stopped")
    return 0


def _expire_waits(runtime: Runtime, stop: threading.Event) -> None:
    """Give every wait past its deadline its ``timed_out`` result, twice a second."""
    while not stop.wait(WAIT_SWEEP_SECONDS):
        try:
            runtime.exits.expire()
        except STATE_ERRORS as exc:
            log.warning("wait deadlines unreadable (%s); trying again", exc)


def _engine(runtime: Runtime) -> Engine | None:
    """The host's engine, waiting (with backoff) for Docker and Redis to answer."""
    delay = 0.5
    transient: tuple[type[Exception], ...] = (DockerUnavailable, *STATE_ERRORS)
    while True:
        try:
            return runtime.engine
        except transient as exc:
            log.warning("%s; retrying in %.1f s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
        except ConfigurationError as exc:
            log.error("%s", exc)
            return None

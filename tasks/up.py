"""``containerizer up``: the whole service in the foreground, stopped cleanly by Ctrl-C or SIGTERM.

It starts a worker for each queue (``images`` with concurrency 1), beat, Flower, the events watcher
and the metrics endpoint as child processes, each in its own process group so that a terminal's
Ctrl-C reaches only this supervisor, which then asks every child once to shut down warmly
(SIGTERM).

``up`` supervises: a child that exits is started again after a delay that doubles with each exit
(1 s, 2 s, 4 s, ... at most 30 s; back to 1 s once it has run for a minute), while the others keep
running. A child that keeps dying (5 exits within 60 s) means something a restart will not mend:
``up`` then stops everything cleanly and exits non-zero, saying which child and why, for systemd
or compose to decide. Every restart is logged and counted (``containerizer_service_restarts_total``
on /metrics).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Protocol
from urllib.parse import urlparse

import redis
import setproctitle

from config.celery_config import CONTAINERS_QUEUE, IMAGES_QUEUE, MAINTENANCE_QUEUE, host_queue
from config.settings import Settings
from workers.keys import Keys

log = logging.getLogger("containerizer.up")

SHUTDOWN_GRACE_SECONDS = 60.0
THREADS_CONCURRENCY = 16
RESTART_BACKOFF_SECONDS = 1.0
RESTART_BACKOFF_MAX_SECONDS = 30.0
CRASH_LIMIT = 5
CRASH_WINDOW_SECONDS = 60.0
WATCH_INTERVAL_SECONDS = 0.5
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Service:
    """One process ``up`` runs."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def celery_command(*args: str) -> list[str]:
    """``celery -A tasks ...`` with this interpreter, so that the same environment is used."""
    return [sys.executable, "-m", "celery", "-A", "tasks", *args]


def worker_services(settings: Settings) -> list[Service]:
    """The three workers, one per kind of queue: each takes this host's own queue first, then
    the shared one (named ``<kind>@<host>``)."""
    level = settings.log_level
    host = settings.host_name

    def worker(queue: str, *options: str) -> Service:
        return Service(
            f"worker-{queue}",
            celery_command(
                "worker",
                "-Q",
                f"{host_queue(queue, host)},{queue}",
                "-n",
                f"{queue}@{host}",
                "-l",
                level,
                *options,
            ),
        )

    threads = settings.worker_pool == "threads"
    containers = settings.containers_concurrency or (
        THREADS_CONCURRENCY if threads else (os.cpu_count() or 1)
    )
    pool = ["-P", settings.worker_pool, "--without-gossip"]
    return [
        # Its calls wait on dockerd: threads serve them at a fraction of a process each.
        worker(CONTAINERS_QUEUE, *pool, "-c", str(containers)),
        # One at a time: pulls share one image cache and one registry connection budget.
        worker(IMAGES_QUEUE, *pool, "-c", "1"),
        worker(MAINTENANCE_QUEUE, *pool, "-c", str(settings.maintenance_concurrency)),
    ]


def services(settings: Settings) -> list[Service]:
    """Everything ``up`` runs, in start order."""
    state_dir = settings.state_dir.resolve()
    result = worker_services(settings)
    result.append(Service("events", [sys.executable, "-m", "tasks.cli", "events"]))
    if settings.metrics_port:
        result.append(Service("metrics", [sys.executable, "-m", "tasks.cli", "metrics"]))
    if settings.run_beat:
        result.append(_beat(settings, state_dir))
    if settings.flower_port:
        result.append(
            Service(
                "flower",
                celery_command(
                    "flower",
                    f"--address={settings.flower_address}",
                    f"--port={settings.flower_port}",
                    f"--db={state_dir / 'flower.db'}",
                    "--persistent=False",
                ),
                # Through the environment, not argv: `ps` would show a command-line password.
                env={"FLOWER_BASIC_AUTH": flower_credentials(settings)},
            )
        )
    return result


def _beat(settings: Settings, state_dir: Path) -> Service:
    return Service(
        "beat",
        celery_command(
            "beat",
            "-l",
            settings.log_level,
            "--schedule",
            str(state_dir / "celerybeat-schedule"),
        ),
    )


def flower_credentials(settings: Settings) -> str:
    """Flower's ``user:password``: configured, or made once and kept in the state directory.

    Flower is never served without authentication: its API can revoke tasks and shut workers down.
    """
    if settings.flower_basic_auth is not None:
        return settings.flower_basic_auth.get_secret_value()
    path = settings.state_dir.resolve() / "flower-auth"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(f"admin:{secrets.token_urlsafe(18)}\n")
    return path.read_text().strip()


def redis_answers(url: str) -> bool:
    """True when a Redis server answers PING at ``url``."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def local_redis_service(settings: Settings) -> Service | None:
    """A ``redis-server`` for the configured URLs when none answers and one can be started here."""
    urls = {settings.broker_url, settings.result_backend, settings.redis_url}
    redis_urls = [u for u in urls if urlparse(u).scheme in ("redis", "rediss")]
    if not redis_urls or all(redis_answers(url) for url in redis_urls):
        return None
    parsed = {(urlparse(u).hostname or "127.0.0.1", urlparse(u).port or 6379) for u in redis_urls}
    if len(parsed) != 1:
        return None
    host, port = parsed.pop()
    server = shutil.which("redis-server")
    if host not in _LOCAL_HOSTS or server is None:
        return None
    data_dir = settings.state_dir.resolve() / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    return Service(
        "redis",
        [
            server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--protected-mode",
            "yes",
        ],
    )


#: What the forked services import, beyond what ``up`` has: what each worker and beat load while
#: they start (listed from ``sys.modules`` in a started worker and beat), which every child would
#: otherwise hold a copy of.
PRELOADED_MODULES = (
    "billiard.pool",
    "celery.__main__",
    "celery.app.control",
    "celery.app.events",
    "celery.app.log",
    "celery.apps.beat",
    "celery.apps.worker",
    "celery.bin.celery",  # Every subcommand, and click-repl's prompt_toolkit.
    "celery.concurrency.thread",
    "celery.worker.autoscale",
    "celery.worker.components",
    "celery.worker.consumer",
    "celery.worker.consumer.delayed_delivery",
    "celery.worker.strategy",
    "dbm.dumb",  # Beat's schedule.
    "kombu.transport.redis",
    "xml.dom.minidom",
    "tasks.agent",
    "tasks.cli",
    "tasks.consumer",
    "tasks.metrics_server",
)


def preload(settings: Settings) -> None:
    """Import, once and here, the code of every Python service ``up`` runs, so that the children
    forked from this process share its pages instead of each importing its own copy.

    ``gc.freeze`` moves what is loaded out of the collector's sight: a collection in a child
    would otherwise write to every object's header and copy the page it is on. This process
    opens no connection and starts no thread, before or after: a child inherits neither.
    """
    for module in PRELOADED_MODULES:
        importlib.import_module(module)
    from tasks.celery_app import app

    app.loader.import_default_modules()  # The task modules a worker imports...
    app.finalize(auto=True)  # ...and the task registry each child would build.
    if settings.flower_port:
        importlib.import_module("flower.command")
    gc.collect()
    gc.freeze()


def forkable(service: Service) -> bool:
    """A service run as ``<this python> -m celery|tasks.cli ...``, which a fork can run."""
    argv = service.argv
    return len(argv) > 2 and argv[0] == sys.executable and argv[1] == "-m" and argv[2] in _ENTRIES


def fork_service(service: Service) -> ForkedProcess:
    """Fork a child that runs ``service`` as ``python -m`` would, in a session of its own."""
    pid = os.fork()
    if pid:
        return ForkedProcess(pid)
    code = 1
    try:
        # Titles in the space of up's own command line, leaving /proc/<pid>/environ readable.
        os.environ.setdefault("SPT_NOENV", "1")
        os.setsid()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        os.environ.update(service.env)
        logging.root.handlers.clear()  # The child's own logging, not up's.
        module, *args = service.argv[2:]
        sys.argv = [module, *args]
        # Its command line as `ps` shows it (a fork keeps up's): Celery's workers and beat
        # change it again to their own titles.
        setproctitle.setproctitle(f"containerizer {service.name}: {' '.join(service.argv[1:])}")
        _ENTRIES[module]()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            # What an interpreter does on its way out (metrics still buffered are written),
            # then no return into up's own code.
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _celery_main() -> None:
    from celery.__main__ import main

    main()


def _containerizer_main() -> None:
    from tasks.cli import main

    main()


_ENTRIES: dict[str, Callable[[], None]] = {"celery": _celery_main, "tasks.cli": _containerizer_main}


class Process(Protocol):
    """What the supervisor needs of a child process: a Popen, or a :class:`ForkedProcess`."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...


class ForkedProcess:
    """A child forked from this process (see :func:`preload`), handled as a Popen is."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1  # Reaped elsewhere: gone, with no status to tell.
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
            time.sleep(0.05)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)


@dataclass
class Child:
    """One supervised service: its process, and its recent exits."""

    service: Service
    process: Process | None = None
    started_at: float = 0.0
    exits: list[float] = field(default_factory=list)
    restart_at: float | None = None
    backoff: float = RESTART_BACKOFF_SECONDS


class Supervisor:
    """Starts services, restarts the ones that exit, and stops them all on a signal or when one
    keeps dying."""

    def __init__(
        self,
        grace_seconds: float = SHUTDOWN_GRACE_SECONDS,
        *,
        crash_limit: int = CRASH_LIMIT,
        crash_window_seconds: float = CRASH_WINDOW_SECONDS,
        on_restart: Callable[[str], None] | None = None,
        fork: bool = False,
    ) -> None:
        """``fork``: Python services (``python -m module ...``) are forked from this process,
        which has imported their code (:func:`preload`), instead of started as new
        interpreters."""
        self.fork = fork
        self.grace_seconds = grace_seconds
        self.crash_limit = crash_limit
        self.crash_window_seconds = crash_window_seconds
        self.on_restart = on_restart
        self.children: list[Child] = []
        self._stop_requested = False

    @property
    def running(self) -> list[tuple[Service, Process]]:
        """The services whose process is running now."""
        return [
            (child.service, child.process)
            for child in self.children
            if child.process is not None and child.process.poll() is None
        ]

    def start(self, service: Service) -> None:
        """Start one service in its own process group, and supervise it."""
        child = Child(service)
        self.children.append(child)
        self._spawn(child)

    def _spawn(self, child: Child) -> None:
        if self.fork and forkable(child.service):
            child.process = fork_service(child.service)
        else:
            env = {**os.environ, **child.service.env}
            child.process = subprocess.Popen(child.service.argv, env=env, start_new_session=True)
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("started %s (pid %d)", child.service.name, child.process.pid)

    def request_stop(self, signum: int, _frame: FrameType | None = None) -> None:
        """Signal handler: stop at the next turn of the watch loop."""
        log.info("received %s, stopping", signal.Signals(signum).name)
        self._stop_requested = True

    def watch(self) -> int:
        """Block until a stop is requested (exit 0) or a child keeps dying (exit 1)."""
        while not self._stop_requested:
            now = time.monotonic()
            for child in self.children:
                if child.process is not None and child.restart_at is None:
                    code = child.process.poll()
                    if code is not None and not self._exited(child, code, now):
                        self.stop_all()
                        return 1
                if child.restart_at is not None and now >= child.restart_at:
                    self._spawn(child)
                    if self.on_restart is not None:
                        self.on_restart(child.service.name)
            time.sleep(WATCH_INTERVAL_SECONDS)
        self.stop_all()
        return 0

    def _exited(self, child: Child, code: int, now: float) -> bool:
        """Schedule the restart of a child that exited; False when it keeps dying."""
        if now - child.started_at >= self.crash_window_seconds:
            # It ran for a while: a fresh failure.
            child.backoff = RESTART_BACKOFF_SECONDS
            child.exits = []
        # Exits in a row without a whole window of running between them: counted within one
        # window, delays that double would let a child living ~11 s each time run forever.
        child.exits.append(now)
        if len(child.exits) >= self.crash_limit:
            log.error(
                "%s exited %d times in a row, each within %.0f s of its start (last exit code"
                " %s); stopping the service:"
                " a restart will not mend it (see its log above)",
                child.service.name,
                len(child.exits),
                self.crash_window_seconds,
                code,
            )
            return False
        child.restart_at = now + child.backoff
        log.warning(
            "%s exited with code %s; restarting it in %.0f s",
            child.service.name,
            code,
            child.backoff,
        )
        child.backoff = min(child.backoff * 2, RESTART_BACKOFF_MAX_SECONDS)
        return True

    def stop_all(self) -> None:
        """Warm shutdown of every child, SIGKILL for any past the grace period.

        Redis (when ``up`` started it) goes last: workers finishing their tasks still need the
        broker, the result backend and the state store.
        """
        newest_first = list(reversed(self.running))
        self._stop([pair for pair in newest_first if pair[0].name != "redis"])
        self._stop([pair for pair in newest_first if pair[0].name == "redis"])

    def _stop(self, group: list[tuple[Service, Process]]) -> None:
        for service, process in group:
            if process.poll() is None:
                log.info("stopping %s", service.name)
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        for service, process in group:
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", service.name)
                # Its whole process group: a prefork pool's children too.
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


class RestartCounter:
    """Counts restarts in Redis for /metrics; a count Redis cannot take now is kept for later."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.pending: dict[str, int] = {}

    def __call__(self, service: str) -> None:
        self.pending[service] = self.pending.get(service, 0) + 1
        self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)
        try:
            pipe = client.pipeline(transaction=False)
            for service, count in self.pending.items():
                pipe.hincrby(self.key, service, count)
            pipe.execute()
            self.pending.clear()
        except redis.RedisError as exc:
            log.info("restart counts kept for later (Redis: %s)", exc)
        finally:
            client.close()


def up(settings: Settings, *, extra: list[Service] | None = None) -> int:
    """Run the service until interrupted. Returns the exit code."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    counter = RestartCounter(
        settings.redis_url, Keys(settings.redis_prefix, settings.host_name).restarts()
    )
    supervisor = Supervisor(on_restart=counter, fork=settings.fork_services)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    signal.signal(signal.SIGTERM, supervisor.request_stop)

    redis_service = local_redis_service(settings)
    if redis_service is not None:
        log.info(
            "nothing answers at %s; starting redis-server with its data in %s",
            settings.redis_url,
            settings.state_dir.resolve() / "redis",
        )
        supervisor.start(redis_service)
        if not _wait_for_redis(settings.redis_url, supervisor):
            supervisor.stop_all()
            return 1
    if settings.fork_services:
        preload(settings)
    for service in [*services(settings), *(extra or [])]:
        supervisor.start(service)
    if settings.flower_port:
        if settings.flower_basic_auth is None:
            log.info(
                "Flower on http://%s:%d (basic auth: user and password in %s; set"
                " CONTAINERIZER_FLOWER_BASIC_AUTH=user:password to choose them)",
                settings.flower_address,
                settings.flower_port,
                settings.state_dir.resolve() / "flower-auth",
            )
        else:
            log.info(
                "Flower on http://%s:%d (basic auth from CONTAINERIZER_FLOWER_BASIC_AUTH)",
                settings.flower_address,
                settings.flower_port,
            )
    if settings.metrics_port:
        log.info("metrics on http://%s:%d/metrics", settings.metrics_address, settings.metrics_port)
    return supervisor.watch()


def _wait_for_redis(url: str, supervisor: Supervisor, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if redis_answers(url):
            return True
        time.sleep(0.2)
    log.error("redis-server did not answer at %s within %.0f s", url, timeout)
    return False

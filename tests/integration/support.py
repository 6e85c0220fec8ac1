"""Helpers for integration tests: the test deployment's settings and a by-name task client."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kombu.exceptions
import psutil
import pytest
import redis
from celery import Celery
from celery.result import AsyncResult

from config.celery_config import QUEUES
from workers.keys import Keys

IN_CI = bool(os.environ.get("CI"))
TEST_IMAGE = os.environ.get("CONTAINERIZER_TEST_IMAGE", "containerizer-test/busybox:latest")
# Exits at once on SIGTERM (sh runs traps while `wait`ing), so stops take milliseconds, not 10 s.
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
TASK_TIMEOUT = 120.0

# The registries scripts/registry.sh runs, and what scripts/test-images.sh pushed into them.
CI_STATE = Path(os.environ.get("CONTAINERIZER_CI_STATE", "/var/tmp/containerizer-ci"))
OPEN_REGISTRY = "127.0.0.1:5000"
AUTH_REGISTRY = "127.0.0.1:5001"
AUTH_REGISTRY_ALIAS = "localhost:5001"  # The same registry under another name.
REGISTRY_USER = os.environ.get("CONTAINERIZER_TEST_REGISTRY_USER", "containerizer")
REGISTRY_PASSWORD = os.environ.get("CONTAINERIZER_TEST_REGISTRY_PASSWORD", "s3cret-test-pass")
REGISTRY_BUSYBOX = "containerizer-test/busybox:latest"
FLOWER_USER, FLOWER_PASSWORD = "tester", "flower-test-pass"
REGISTRY_BIG = "containerizer-test/big:latest"


def require(what: str, ok: bool, why: str = "") -> None:
    """Skip when a service is missing locally; fail in CI, where .ci/run must have started it."""
    if ok:
        return
    message = f"{what} is not available{': ' + why if why else ''}"
    if IN_CI:
        pytest.fail(f"{message} (CI must provide it: see .ci/run)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def rabbitmq_broker(prefix: str) -> Iterator[str]:
    """A vhost of its own on the machine's rabbitmq-server (deleted afterwards); its broker URL.
    Skips, or fails in CI, when there is no rabbitmq-server on 127.0.0.1:5672."""
    require("rabbitmqctl", shutil.which("rabbitmqctl") is not None)
    with socket.socket() as sock:
        require("rabbitmq-server on 127.0.0.1:5672", sock.connect_ex(("127.0.0.1", 5672)) == 0)
    vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"

    def rabbitmqctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)

    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


def service_role(process: psutil.Process) -> str:
    """Which of `up`'s services a child process is: worker:containers, worker:images,
    worker:maintenance, beat, flower, events, metrics or redis ("" if none).

    By its title as well as its command line: `up` forks its services, and they (and Celery)
    name themselves with setproctitle ("containerizer events: -m tasks.cli events",
    "[celeryd: containers@host:MainProcess] ..."), where an exec'd child shows its argv.
    """
    try:
        text = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return ""
    if "redis-server" in text:
        return "redis"
    for kind in ("containers", "images", "maintenance"):
        if f" {kind}@" in f" {text}" or f"[celeryd: {kind}@" in text:
            return f"worker:{kind}"
    if "tasks.cli events" in text:
        return "events"
    if "tasks.cli metrics" in text:
        return "metrics"
    for role in ("beat", "flower"):
        if f"celery {role}" in text or f" {role} " in f" {text} ":
            return role
    return ""


def containerizer_executable() -> str:
    """The console script installed beside this interpreter, as production runs it."""
    candidate = Path(sys.executable).with_name("containerizer")
    return str(candidate) if candidate.exists() else "containerizer"


QUEUE_OF = {
    "containers": "containers",
    "images": "images",
    "maintenance": "maintenance",
    "volumes": "containers",
    "networks": "containers",
}


@dataclass
class TaskClient:
    """Sends tasks by name, as another service that only has Celery installed would."""

    app: Celery

    def send(
        self, task: str, /, *args: Any, task_id: str | None = None, **kwargs: Any
    ) -> AsyncResult:
        queue = QUEUE_OF[task.split(".")[1]]
        return self.app.send_task(task, args=args, kwargs=kwargs, queue=queue, task_id=task_id)

    def call(self, task: str, /, *args: Any, **kwargs: Any) -> Any:
        """Send and wait; a failed task re-raises its error (class name as the worker raised it)."""
        return self.send(task, *args, **kwargs).get(
            timeout=TASK_TIMEOUT, disable_sync_subtasks=False
        )

    def failure(self, task: str, /, *args: Any, **kwargs: Any) -> tuple[BaseException, AsyncResult]:
        """Send, wait for a failure and return it with its result."""
        result = self.send(task, *args, **kwargs)
        try:
            value = result.get(timeout=TASK_TIMEOUT)
        except Exception as exc:
            return exc, result
        raise AssertionError(f"{task} succeeded with {value!r}; expected a failure")


@dataclass
class RunningService:
    """A `containerizer up` started for the tests."""

    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path
    prefix: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.env["CONTAINERIZER_HOST_NAME"]

    @property
    def keys(self) -> Keys:
        """The Redis keys of the service's host."""
        return Keys(self.prefix, self.host)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def remember_processes(self) -> None:
        """Note every process below `up` now, so that teardown kills any that outlive it (the
        pool children of a worker a test kills are no longer below `up`)."""
        known: dict[int, psutil.Process] = self.extra.setdefault("descendants", {})
        for child in descendants(self.process):
            known.setdefault(child.pid, child)


def flower_get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    """GET ``url`` (with basic auth): its status and body, also for an error status."""
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def delete_keys(client: redis.Redis, prefix: str) -> None:
    """Delete every key a test made under its own ``prefix``."""
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


#: The host name of the watchers tests start on their own (start_watcher).
WATCHER_HOST = "ctz-watcher"


def start_watcher(log: Path, **env: str) -> subprocess.Popen[bytes]:
    """`containerizer events` with ``env`` added (host WATCHER_HOST unless it names one), once it
    follows Docker's events (from now)."""
    env.setdefault("CONTAINERIZER_HOST_NAME", WATCHER_HOST)
    logged = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        watcher = subprocess.Popen(
            [sys.executable, "-m", "tasks.cli", "events"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def following() -> bool:
        assert watcher.poll() is None, log.read_text(errors="replace")
        return b"following Docker events" in log.read_bytes()[logged:]

    wait_for(following, 30, "the events watcher following Docker events", 0.1)
    return watcher


def wait_for_workers(
    app: Celery, names: set[str], timeout: float = 60.0, *, nodes: bool = False
) -> None:
    """Block until every worker in ``names`` answers: kinds like ``containers``, or with
    ``nodes`` whole node names like ``containers@a``.

    A broker connection lost meanwhile (a broker that restarted) is retried until the deadline.
    """
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        try:
            replies = app.control.ping(timeout=1.0) or []
        except (kombu.exceptions.OperationalError, redis.ConnectionError, OSError):
            time.sleep(0.5)
            continue
        seen = {node if nodes else node.split("@")[0] for reply in replies for node in reply}
        if names <= seen:
            return
        time.sleep(0.5)
    raise TimeoutError(f"workers {sorted(names - seen)} did not answer within {timeout} s")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


class RegistryLog:
    """The access log of one local registry, read from a mark on (only this test's requests)."""

    _REQUEST = re.compile(r'"(GET|HEAD|PUT|POST|PATCH) (/v2/\S*) HTTP')

    def __init__(self, name: str) -> None:
        self.path = CI_STATE / f"registry-{name}.log"
        self.offset = 0
        self.mark()

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request since the mark."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            log.seek(self.offset)
            text = log.read().decode(errors="replace")
        return [(m.group(1), m.group(2)) for m in self._REQUEST.finditer(text)]

    def count(self, kind: str, method: str = "GET") -> int:
        """Requests for ``manifests`` or ``blobs`` since the mark."""
        return sum(1 for verb, path in self.requests() if verb == method and f"/{kind}/" in path)


@contextlib.contextmanager
def deployment(
    redis_server: str,
    state_dir: Path,
    databases: tuple[int, int, int],
    *,
    prefix: str | None = None,
    env: dict[str, str] | None = None,
    flush: bool = True,
    **settings: str,
) -> Iterator[tuple[TaskClient, Path]]:
    """Another `containerizer up` with Redis databases and a key prefix of its own.

    ``settings`` are extra CONTAINERIZER_* variables (names without the prefix, any case); ``env``
    other variables (DOCKER_HOST, ...). Hosts of one cluster share ``databases`` and ``prefix``:
    the first flushes the broker, the others pass ``flush=False``. Yields a by-name client and the
    path of the deployment's log; its workers are those of its host (CONTAINERIZER_HOST_NAME).
    """
    broker, results, state = databases
    variables = {
        **os.environ,
        "CONTAINERIZER_BROKER_URL": f"{redis_server}/{broker}",
        "CONTAINERIZER_RESULT_BACKEND": f"{redis_server}/{results}",
        "CONTAINERIZER_REDIS_URL": f"{redis_server}/{state}",
        "CONTAINERIZER_REDIS_PREFIX": prefix or f"containerizer-{uuid.uuid4().hex[:8]}:",
        "CONTAINERIZER_STATE_DIR": str(state_dir),
        "CONTAINERIZER_FLOWER_PORT": str(free_port()),
        "CONTAINERIZER_METRICS_PORT": str(free_port()),
        **(env or {}),
        **{f"CONTAINERIZER_{name.upper()}": value for name, value in settings.items()},
    }
    host = variables.setdefault("CONTAINERIZER_HOST_NAME", "ctz-deployment")
    app = Celery(
        broker=variables["CONTAINERIZER_BROKER_URL"],
        backend=variables["CONTAINERIZER_RESULT_BACKEND"],
    )
    app.conf.update(accept_content=["json"], result_extended=True)
    if flush and variables["CONTAINERIZER_BROKER_URL"].startswith("redis"):
        app.connection().default_channel.client.flushdb()
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [containerizer_executable(), "up"], env=variables, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for_workers(app, {f"{kind}@{host}" for kind in QUEUES}, nodes=True)
        yield TaskClient(app), log
    finally:
        stop_process(process)
        app.close()


def client_app(broker_url: str, result_backend: str) -> Celery:
    """A caller's Celery app (JSON only) for a deployment's broker and result backend."""
    app = Celery(broker=broker_url, backend=result_backend)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_extended=True,
    )
    return app


@contextlib.contextmanager
def private_up(
    state_dir: Path,
    *,
    broker_url: str,
    result_backend: str,
    redis_url: str,
    host_name: str = "ctz-private",
    environment: dict[str, str] | None = None,
    wait: bool = True,
    **settings: str,
) -> Iterator[tuple[RunningService, TaskClient]]:
    """A `containerizer up` of a test's own, on the broker, result backend and state store the
    test names (services of its own it may fault: a private redis-server, a RabbitMQ vhost),
    with a key prefix of its own and free Flower and metrics ports.

    ``settings`` are extra CONTAINERIZER_* variables (names without the prefix, any case);
    ``environment`` other variables (DOCKER_HOST, ...). A Redis broker's database is emptied
    first. With ``wait`` it yields once the host's three workers answer. On leaving, `up` is
    stopped (SIGTERM) and whatever it started that outlived it (a pool child of a worker a test
    killed, say) is killed, one process at a time.
    """
    env = {
        **os.environ,
        "CONTAINERIZER_BROKER_URL": broker_url,
        "CONTAINERIZER_RESULT_BACKEND": result_backend,
        "CONTAINERIZER_REDIS_URL": redis_url,
        "CONTAINERIZER_REDIS_PREFIX": f"containerizer-{uuid.uuid4().hex[:8]}:",
        "CONTAINERIZER_HOST_NAME": host_name,
        "CONTAINERIZER_STATE_DIR": str(state_dir),
        "CONTAINERIZER_FLOWER_PORT": str(free_port()),
        "CONTAINERIZER_METRICS_PORT": str(free_port()),
        **(environment or {}),
        **{f"CONTAINERIZER_{name.upper()}": value for name, value in settings.items()},
    }
    app = client_app(broker_url, result_backend)
    if broker_url.startswith("redis"):
        app.connection().default_channel.client.flushdb()
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [containerizer_executable(), "up"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    running = RunningService(process, env, log, env["CONTAINERIZER_REDIS_PREFIX"])
    try:
        if wait:
            try:
                wait_for_workers(app, {f"{kind}@{host_name}" for kind in QUEUES}, nodes=True)
            except TimeoutError:
                pytest.fail(f"containerizer up did not come up:\n{running.log()[-4000:]}")
        yield running, TaskClient(app)
    finally:
        _stop_tree(running)
        app.close()


def descendants(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """psutil handles of every process below ``process`` now."""
    try:
        return list(psutil.Process(process.pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def _stop_tree(running: RunningService) -> None:
    """Stop `up`, then kill whatever it started that is still alive (by pid, one by one)."""
    running.remember_processes()
    known: dict[int, psutil.Process] = running.extra["descendants"]
    stop_process(running.process)
    _, alive = psutil.wait_procs(list(known.values()), timeout=10)
    for leftover in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.kill()


@contextlib.contextmanager
def containers_worker(
    redis_server: str, node: str, log: Path, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], TaskClient]]:
    """A containers worker of a deployment of its own, started with the command line `up` uses.

    Its broker and results are Redis databases 13 and 14 (emptied first); ``env`` adds or
    overrides variables (CONTAINERIZER_REDIS_URL, DOCKER_HOST, ...). Its node is ``node@host``.
    """
    from config.settings import Settings
    from tasks.up import worker_services

    variables = {
        **os.environ,
        "CONTAINERIZER_BROKER_URL": f"{redis_server}/13",
        "CONTAINERIZER_RESULT_BACKEND": f"{redis_server}/14",
        "CONTAINERIZER_CONTAINERS_CONCURRENCY": "1",
        **env,
    }
    settings = Settings(_env_file=None, host_name=env.get("CONTAINERIZER_HOST_NAME", node))
    variables.setdefault("CONTAINERIZER_HOST_NAME", settings.host_name)
    command = worker_services(settings)[0].argv
    command[command.index(f"containers@{settings.host_name}")] = f"{node}@{settings.host_name}"
    app = Celery(
        broker=variables["CONTAINERIZER_BROKER_URL"],
        backend=variables["CONTAINERIZER_RESULT_BACKEND"],
    )
    app.conf.update(accept_content=["json"], result_extended=True)
    app.connection().default_channel.client.flushdb()
    with log.open("wb") as out:
        worker = subprocess.Popen(command, env=variables, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_workers(app, {node})
        yield worker, TaskClient(app)
    finally:
        stop_process(worker)
        app.close()

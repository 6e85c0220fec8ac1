"""Faults caused for real against `containerizer up` (issue 11): the broker killed and started
again, a worker's main process or a pool child SIGKILLed mid-task (Redis and RabbitMQ), the Docker
daemon restarted under load, a registry killed mid-pull, duplicate deliveries, lost creates
(orphans), and children of `up` that die once or keep dying.

Every test runs its services of its own (tests/integration/daemons.py): a private redis-server
(results and state, and the broker unless it is a RabbitMQ vhost of the test's), a private
`containerizer up` on it, and where Docker or a registry is faulted a private dockerd (bridge
ctztest1) or a private registry behind a throttling proxy. None uses the session's service: its
broker is a database of the machine's Redis that every test run here shares (see
isolated_service).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import kombu.exceptions
import psutil
import pytest
import redis
from celery.result import AsyncResult
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.daemons import (
    PrivateDockerd,
    PrivateRedis,
    PrivateRegistry,
    ReplyCutter,
    SlowProxy,
    copy_image,
)
from tests.integration.daemons import private_dockerd as private_dockerd_of
from tests.integration.support import (
    OPEN_REGISTRY,
    REGISTRY_BIG,
    SLEEPER,
    TASK_TIMEOUT,
    TEST_IMAGE,
    WATCHER_HOST,
    RunningService,
    TaskClient,
    descendants,
    private_up,
    rabbitmq_broker,
    require,
    service_role,
    start_watcher,
    stop_process,
    wait_for,
    wait_for_workers,
)
from workers.container_config import CREATE_TOKEN_LABEL, MANAGED_FILTER
from workers.keys import Keys
from workers.models import ContainerInfo
from workers.spec import MANAGED_LABEL, SPEC_HASH_LABEL
from workers.state import StateStore

pytestmark = [pytest.mark.integration, pytest.mark.faults]

RUN = "containerizer.containers.run"
CREATE = "containerizer.containers.create"
STOP = "containerizer.containers.stop"
REMOVE = "containerizer.containers.remove"
LIST = "containerizer.containers.list"
PULL = "containerizer.images.pull"
RECONCILE = "containerizer.maintenance.reconcile"
ALL_WORKERS = {"containers", "images", "maintenance"}

BRIDGE = "ctztest1"
BRIDGE_ADDRESS = "198.18.251.1/24"  # Benchmarking range: never routed anywhere.
# PID 1 ignores SIGTERM: a stop with a timeout takes that long, so a kill lands mid-stop.
STUBBORN = ["sh", "-c", 'trap "" TERM; sleep 1000']
STOP_TIMEOUT = 8
# Periodic work only when a test asks for it: what a test sees is what its fault did.
QUIET = {
    "stats_interval_seconds": "3600",
    "evict_interval_seconds": "3600",
    "reconcile_interval_seconds": "3600",
    "containers_concurrency": "2",
    "retry_max": "3",
    "retry_backoff_seconds": "0.5",
    "retry_backoff_max_seconds": "2",
}
README = Path(__file__).resolve().parents[2] / "README.md"


def documented_errors() -> set[str]:
    """The error names of the README's Errors table."""
    section = README.read_text().split("### Errors", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE))
    assert "DockerUnavailable" in names, "the README's Errors table moved"
    return names


# --- private services ----------------------------------------------------------------------------
@contextlib.contextmanager
def private_redis(root: Path, *, aof: bool = False) -> Iterator[PrivateRedis]:
    require("redis-server", shutil.which("redis-server") is not None)
    root.mkdir(parents=True, exist_ok=True)
    server = PrivateRedis(root, aof=aof)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def up_on(
    server: PrivateRedis,
    root: Path,
    host: str,
    *,
    broker_url: str | None = None,
    environment: dict[str, str] | None = None,
    wait: bool = True,
    **settings: str,
) -> Iterator[tuple[RunningService, TaskClient]]:
    """A private `up` whose results (db 1) and state (db 2) are in ``server``, and its broker
    too (db 0) unless ``broker_url`` names another."""
    root.mkdir(parents=True, exist_ok=True)
    with private_up(
        root,
        broker_url=broker_url or f"{server.url}/0",
        result_backend=f"{server.url}/1",
        redis_url=f"{server.url}/2",
        host_name=host,
        environment=environment,
        wait=wait,
        **{**QUIET, **settings},
    ) as deployment:
        yield deployment


def state_client(server: PrivateRedis) -> redis.Redis:
    return redis.Redis.from_url(f"{server.url}/2", decode_responses=True)


@pytest.fixture(scope="module")
def private_dockerd(docker_client: docker.DockerClient) -> Iterator[PrivateDockerd]:
    with private_dockerd_of(
        docker_client, TEST_IMAGE, bridge=BRIDGE, address=BRIDGE_ADDRESS
    ) as daemon:
        yield daemon


@pytest.fixture
def running_dockerd(private_dockerd: PrivateDockerd) -> Iterator[PrivateDockerd]:
    """The private dockerd, started again if an earlier test left it stopped; the containers a
    test made in it are removed afterwards (they would keep running until the module ends)."""
    private_dockerd.ensure_running()
    yield private_dockerd
    with (
        contextlib.suppress(docker.errors.DockerException),
        contextlib.closing(private_dockerd.client()) as client,
    ):
        for container in client.containers.list(all=True):
            container.remove(force=True)


@pytest.fixture
def rabbitmq_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of this test's own on the machine's rabbitmq-server; its broker URL."""
    with rabbitmq_broker("ctz-faults") as url:
        yield url


# --- processes of `up` ---------------------------------------------------------------------------
def service_child(up: RunningService, role: str) -> psutil.Process | None:
    """The process `up` runs for one of its services (support.service_role: ``events``,
    ``metrics``, ``worker:containers``: a worker's main process, the parent of its pool)."""
    for child in psutil.Process(up.process.pid).children():
        if service_role(child) == role:
            return child
    return None


def worker_main(up: RunningService, kind: str = "containers") -> psutil.Process | None:
    return service_child(up, f"worker:{kind}")


def restarted(up: RunningService, find: Any, old_pid: int, what: str) -> psutil.Process:
    """The new process `up` started in place of ``old_pid``."""

    def new() -> psutil.Process | None:
        assert up.process.poll() is None, f"up exited:\n{up.log()[-4000:]}"
        process: psutil.Process | None = find()
        return process if process is not None and process.pid != old_pid else None

    found: psutil.Process = wait_for(new, 30, f"{what} started again", 0.1)
    return found


def kill_containers_worker(up: RunningService, tasks: TaskClient) -> psutil.Process:
    """SIGKILL the containers worker's main process; the one `up` starts in its place, once it
    answers a ping."""
    main = wait_for(lambda: worker_main(up), 5, "the containers worker")
    up.remember_processes()
    main.kill()
    main.wait(timeout=10)
    new_main = restarted(up, lambda: worker_main(up), main.pid, "the containers worker")
    wait_for_workers(tasks.app, {"containers"}, timeout=30)
    return new_main


def active_request(tasks: TaskClient, node: str, task_id: str) -> dict[str, Any] | None:
    """The request of ``task_id`` if ``node`` is running it now (with its pool process id)."""
    replies = tasks.app.control.inspect(destination=[node], timeout=1.0).active() or {}
    for requests in replies.values():
        for request in requests:
            if request.get("id") == task_id:
                return dict(request)
    return None


def receipts(up: RunningService, task_name: str, task_id: str) -> int:
    """How often a worker of ``up`` received the task (a redelivery is a second receipt)."""
    return up.log().count(f"{task_name}[{task_id}] received")


def excerpt(log: str, marker: str, tail: int = 8) -> str:
    """Each line of ``log`` with ``marker``, and the end of the traceback that follows it (up to
    its last exception line, before the next log record), for a failure message."""
    lines = log.splitlines()
    parts = []
    for i, line in enumerate(lines):
        if marker not in line:
            continue
        record = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("[")), len(lines))
        raised = [j for j in range(i + 1, record) if _EXCEPTION_LINE.match(lines[j])]
        last = raised[-1] if raised else i
        parts.append("\n".join([line, "  ...", *lines[max(i + 1, last - tail) : last + 1]]))
    return "\n---\n".join(parts[:3])


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_.]+(Error|Exception)\b")


def part(result: dict[str, Any], *names: str) -> dict[str, Any]:
    """The named fields of a result (the contract grows additively: compare what it promises)."""
    return {name: result.get(name) for name in names}


STOPPED_FIELDS = ("id", "status", "exit_code", "host")


def stubborn_spec(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "image": TEST_IMAGE,
        "name": name,
        "command": STUBBORN,
        "labels": labels,
        "network_mode": "none",
    }


# --- 1. the broker restarts --------------------------------------------------------------------
@dataclass
class Sent:
    """What became of one task sent during an outage."""

    seconds: float
    result: AsyncResult | None = None
    error: BaseException | None = None


def clear_refusal(error: BaseException) -> bool:
    """An error that tells a caller its task was not taken: the broker (kombu) or the result
    store it must subscribe to first (redis-py, or Celery's own message after its retries)."""
    if isinstance(error, kombu.exceptions.OperationalError | redis.ConnectionError):
        return True
    if isinstance(error, ConnectionError):  # ConnectionRefusedError and the like
        return True
    return isinstance(error, RuntimeError) and "result store" in str(error)


def send_during_outage(tasks: TaskClient, spec: dict[str, Any], sent: dict[str, Sent]) -> None:
    began = time.monotonic()
    try:
        result = tasks.send(RUN, spec=spec)
    except Exception as exc:
        sent[spec["name"]] = Sent(time.monotonic() - began, error=exc)
    else:
        sent[spec["name"]] = Sent(time.monotonic() - began, result=result)


def test_broker_restart_loses_no_task_and_the_service_works_again(
    tmp_path: Path, labels: dict[str, str], docker_client: docker.DockerClient
) -> None:
    outage_seconds = 5.0
    refusal_bound = 30.0  # Celery's own result-store reconnects give up after about 20 s.
    base = f"ctz-broker-{labels['ctz-test']}"

    def spec(suffix: str) -> dict[str, Any]:
        return {
            "image": TEST_IMAGE,
            "name": f"{base}-{suffix}",
            "command": ["true"],
            "labels": labels,
            "network_mode": "none",
        }

    with (
        private_redis(tmp_path / "redis", aof=True) as server,
        up_on(server, tmp_path / "up", "ctz-faults-broker") as (up, tasks),
    ):
        assert tasks.call(RUN, spec=spec("before"))["name"] == f"{base}-before"

        server.kill()
        killed = time.monotonic()
        sent: dict[str, Sent] = {}
        senders = [
            threading.Thread(target=send_during_outage, args=(tasks, spec(f"outage-{i}"), sent))
            for i in range(3)
        ]
        for sender in senders:
            sender.start()
            # Sends spread over the outage: that is the fault being tested.
            time.sleep(outage_seconds / (len(senders) + 1))
        time.sleep(max(0.0, killed + outage_seconds - time.monotonic()))  # the outage itself
        server.start()
        answering = time.monotonic()

        def works() -> bool:
            try:
                ran = tasks.send(RUN, spec=spec(f"after-{uuid.uuid4().hex[:6]}")).get(timeout=10)
                listed = tasks.send(LIST, all=True).get(timeout=10)
            except Exception:
                return False
            return any(row["id"] == ran["id"] for row in listed)

        wait_for(works, 30, "a run and a list after Redis answers again", 0.5)
        recovered = time.monotonic() - answering
        assert recovered < 30, f"tasks worked again {recovered:.1f} s after Redis answered"
        assert up.process.poll() is None, f"up exited:\n{up.log()[-4000:]}"
        wait_for_workers(
            tasks.app, ALL_WORKERS, timeout=max(1.0, answering + 30 - time.monotonic())
        )

        for sender in senders:
            sender.join(timeout=60)
        assert set(sent) == {f"{base}-outage-{i}" for i in range(3)}, sent
        for name, outcome in sent.items():
            if outcome.error is not None:
                assert clear_refusal(outcome.error), f"{name}: {outcome.error!r}"
                assert outcome.seconds < refusal_bound, f"{name}: refused after {outcome.seconds}"
            else:
                assert outcome.result is not None
                delivered = outcome.result.get(timeout=60)  # sent, so delivered afterwards
                assert delivered["name"] == name
        for name, outcome in sorted(sent.items()):
            what = "delivered" if outcome.error is None else f"refused: {outcome.error!r}"
            print(f"{name}: {what} (send returned after {outcome.seconds:.1f} s)")
        print(f"tasks worked again {recovered:.1f} s after Redis answered")
        refused = {name for name, outcome in sent.items() if outcome.error is not None}
        made = {
            container.name
            for container in docker_client.containers.list(
                all=True, filters={"label": f"ctz-test={labels['ctz-test']}"}
            )
        }
        assert not refused & made, f"refused at the caller, yet run: {refused & made}"
        log = up.log()
        died = [line for line in log.splitlines() if "Unrecoverable error" in line]
        assert died == [], (
            "a worker died on the broker's restart (up restarted it):\n"
            + excerpt(log, "Unrecoverable error")
            + "\n"
            + "\n".join(line for line in log.splitlines() if "restarting it" in line)
        )


def test_events_watcher_rides_out_a_redis_restart(
    tmp_path: Path, docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    """The watcher reconnects with backoff (workers/events.py), also when Redis is what it lost:
    it must not exit and wait for `up` to start it again."""
    prefix = f"ctz-events-{labels['ctz-test']}:"
    log = tmp_path / "events.log"
    with private_redis(tmp_path / "redis", aof=True) as server:
        client = redis.Redis.from_url(f"{server.url}/0", decode_responses=True)
        state = StateStore(client, Keys(prefix, WATCHER_HOST))

        def managed(code: int) -> Any:
            container = docker_client.containers.create(
                TEST_IMAGE,
                ["sh", "-c", f"exit {code}"],
                network_mode="none",
                labels={**labels, MANAGED_LABEL: "true"},
            )
            state.record(ContainerInfo.from_attrs(container.attrs))  # as a create task would
            return container

        watcher = start_watcher(
            log, CONTAINERIZER_REDIS_URL=f"{server.url}/0", CONTAINERIZER_REDIS_PREFIX=prefix
        )
        try:
            during, after = managed(3), managed(5)
            server.kill()
            during.start()  # Its events reach the watcher while Redis is down.
            wait_for(lambda: during.reload() or during.status == "exited", 10, "the exit", 0.1)
            # The watcher's backoff (0.5 s, doubling) runs while Redis stays down: the fault
            # needs that time to show.
            time.sleep(4)
            server.start()
            after.start()

            def settled() -> bool:
                record = state.get(after.id) or {}
                return watcher.poll() is not None or record.get("status") == "exited"

            wait_for(settled, 20, "the exit recorded after Redis is back", 0.2)
            text = log.read_text(errors="replace")
            assert watcher.poll() is None, "the events watcher exited when Redis went away:\n" + (
                "\n".join(
                    line
                    for line in text.splitlines()
                    if "workers/events.py" in line or _EXCEPTION_LINE.match(line)
                )
            )
            assert (state.get(after.id) or {}).get("exit_code") == 5
            # What happened during the outage is replayed from where the watcher stopped.
            wait_for(lambda: (state.get(during.id) or {}).get("exit_code") == 3, 20, "replay")
        finally:
            stop_process(watcher)
            client.close()


# --- 2. RabbitMQ: duplicate deliveries, as on Redis (6) ---------------------------------------
def test_rabbitmq_identical_tasks_sent_at_once_act_once(
    tmp_path: Path, rabbitmq_vhost: str, docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    with (
        private_redis(tmp_path / "redis") as server,
        up_on(server, tmp_path / "up", "ctz-faults-amqp", broker_url=rabbitmq_vhost) as (
            up,
            tasks,
        ),
    ):
        identical_tasks_act_once(tasks, up.host, docker_client, labels)


# --- 2. RabbitMQ: a worker's main process killed mid-stop ---------------------------------------
def test_rabbitmq_worker_killed_mid_stop_completes_after_its_restart(
    tmp_path: Path, rabbitmq_vhost: str, labels: dict[str, str]
) -> None:
    with (
        private_redis(tmp_path / "redis") as server,
        up_on(server, tmp_path / "up", "ctz-faults-amqp", broker_url=rabbitmq_vhost) as (
            up,
            tasks,
        ),
    ):
        # A short lifecycle by name on this broker.
        name = f"ctz-amqp-{labels['ctz-test']}"
        spec = {"image": TEST_IMAGE, "name": name, "command": SLEEPER, "labels": labels}
        created = tasks.call(CREATE, spec=spec)
        assert created["status"] == "created"
        assert tasks.call("containerizer.containers.start", container=name)["status"] == "running"
        stopped = part(tasks.call(STOP, container=name, timeout=5), *STOPPED_FIELDS)
        assert stopped == {"id": created["id"], "status": "exited", "exit_code": 0, "host": up.host}
        assert tasks.call(REMOVE, container=name)["removed"] is True
        assert tasks.call(LIST, all=True, labels={"ctz-test": labels["ctz-test"]}) == []

        stubborn = f"ctz-amqp-stubborn-{labels['ctz-test']}"
        cid = tasks.call(RUN, spec=stubborn_spec(stubborn, labels))["id"]
        result = tasks.send(STOP, container=stubborn, timeout=STOP_TIMEOUT)
        node = f"containers@{up.host}"
        wait_for(lambda: active_request(tasks, node, result.id), 15, "the stop under way", 0.2)
        kill_containers_worker(up, tasks)
        back = time.monotonic()

        outcome = result.get(timeout=30)
        took = time.monotonic() - back
        assert part(outcome, *STOPPED_FIELDS) == {
            "id": cid,
            "status": "exited",
            "exit_code": 137,
            "host": up.host,
        }
        assert took < 15, f"the stop completed {took:.1f} s after the worker was back"
        assert receipts(up, STOP, result.id) == 2, "RabbitMQ delivers it again at once"
        assert "worker-containers exited with code -9; restarting it" in up.log()
        tasks.call(REMOVE, container=stubborn, force=True)


# --- 3. Redis broker: the main process (visibility timeout) and a pool child ---------------------
def test_redis_broker_redelivers_the_tasks_of_a_killed_worker(
    tmp_path: Path, labels: dict[str, str]
) -> None:
    # The issue asks for 20 s; the settings refuse a visibility timeout under 60 s.
    visibility = 60
    # kombu sweeps unacknowledged messages every unacked_restore_interval (10 s) times
    # unacked_restore_throttle (10) in a worker's event loop: the redelivery comes at the first
    # sweep of any of the three workers after the visibility timeout.
    sweep = 100
    with (
        private_redis(tmp_path / "redis") as server,
        up_on(
            server,
            tmp_path / "up",
            "ctz-faults-redis",
            visibility_timeout_seconds=str(visibility),
            # Only a prefork pool has children to kill (the default pool is threads).
            worker_pool="prefork",
        ) as (up, tasks),
    ):
        node = f"containers@{up.host}"
        first = f"ctz-vis-main-{labels['ctz-test']}"
        second = f"ctz-vis-child-{labels['ctz-test']}"
        first_id = tasks.call(RUN, spec=stubborn_spec(first, labels))["id"]
        second_id = tasks.call(RUN, spec=stubborn_spec(second, labels))["id"]

        # The main process: its message stays unacknowledged until the visibility timeout.
        lost = tasks.send(STOP, container=first, timeout=STOP_TIMEOUT)
        sent = time.monotonic()
        wait_for(lambda: active_request(tasks, node, lost.id), 15, "the first stop", 0.2)
        new_main = kill_containers_worker(up, tasks)

        # A pool child, while the first stop waits: rejected and requeued at once.
        orphaned = tasks.send(STOP, container=second, timeout=STOP_TIMEOUT)
        request = wait_for(
            lambda: active_request(tasks, node, orphaned.id), 15, "the second stop", 0.2
        )
        up.remember_processes()
        child = psutil.Process(request["worker_pid"])
        assert child.ppid() == new_main.pid, "a pool child of the containers worker"
        child.kill()
        killed_child = time.monotonic()
        outcome = orphaned.get(timeout=30)
        took_child = time.monotonic() - killed_child
        assert part(outcome, *STOPPED_FIELDS) == {
            "id": second_id,
            "status": "exited",
            "exit_code": 137,
            "host": up.host,
        }
        assert took_child < 15, f"the stop completed {took_child:.1f} s after its child died"
        assert receipts(up, STOP, orphaned.id) == 2, "redelivered after the child's death"

        outcome = lost.get(timeout=visibility + sweep + 30)
        took = time.monotonic() - sent
        print(f"stop of a killed worker's main completed {took:.1f} s after it was sent")
        assert part(outcome, *STOPPED_FIELDS) == {
            "id": first_id,
            "status": "exited",
            "exit_code": 137,
            "host": up.host,
        }
        assert receipts(up, STOP, lost.id) == 2, "redelivered after the visibility timeout"
        assert visibility <= took < visibility + sweep + 30, f"redelivered {took:.1f} s on"


# --- 4. Docker restarts under load ---------------------------------------------------------------
def test_docker_restart_under_load_leaves_the_store_in_line_with_docker(
    running_dockerd: PrivateDockerd, tmp_path: Path
) -> None:
    documented = documented_errors()
    with (
        contextlib.closing(running_dockerd.client()) as daemon,
        private_redis(tmp_path / "redis") as server,
        up_on(
            server,
            tmp_path / "up",
            "ctz-faults-docker",
            environment={"DOCKER_HOST": running_dockerd.url},
            docker_timeout_seconds="5",
            orphan_grace_seconds="0",
        ) as (up, tasks),
    ):
        state = state_client(server)
        results = {
            f"load-{i}": tasks.send(
                RUN,
                spec={
                    "image": TEST_IMAGE,
                    "name": f"load-{i}",
                    "command": SLEEPER,
                    "network_mode": "none",
                },
            )
            for i in range(20)
        }
        wait_for(lambda: len(daemon.containers.list(all=True)) >= 3, 60, "runs reaching Docker")
        pending = sum(1 for result in results.values() if not result.ready())
        running_dockerd.stop()
        running_dockerd.start()
        assert pending > 0, "every run ended before the restart: nothing was in flight"

        outcomes: dict[str, str] = {}
        for name, result in results.items():
            try:
                result.get(timeout=TASK_TIMEOUT)
                outcomes[name] = "SUCCESS"
            except Exception as exc:
                outcomes[name] = type(exc).__name__
        assert set(outcomes.values()) <= {"SUCCESS", *documented}, outcomes
        print(
            f"{pending} of 20 runs in flight at the restart; outcomes: {Counter(outcomes.values())}"
        )

        for _ in range(2):
            repaired = tasks.call(RECONCILE)
            print(f"reconcile: {repaired}")
            assert not repaired.get("locked")
        keys = up.keys
        live = {str(cid) for cid in state.smembers(keys.containers())}
        managed = {
            c.id: c for c in daemon.containers.list(all=True, filters={"label": MANAGED_FILTER})
        }
        unknown = [
            c.name
            for cid, c in managed.items()
            if cid not in live or not state.exists(keys.container(cid))
        ]
        assert unknown == [], f"containers the store does not know: {unknown} ({outcomes})"
        mismatched = {
            cid[:12]: (
                state.hget(keys.container(cid), "status"),
                getattr(managed.get(cid), "status", None),
            )
            for cid in live
            if cid not in managed
            or state.hget(keys.container(cid), "status") != managed[cid].status
        }
        assert mismatched == {}, f"records (store, Docker) that disagree: {mismatched}"

        # The events watcher follows the restarted daemon: no reconcile runs from here on.
        exit7 = tasks.call(
            RUN,
            spec={
                "image": TEST_IMAGE,
                "name": "exit-7",
                "command": ["sh", "-c", "sleep 1; exit 7"],
                "network_mode": "none",
            },
        )

        def exited_with_7() -> bool:
            rows = tasks.call(LIST, all=True)
            return any(
                row["id"] == exit7["id"] and row["status"] == "exited" and row["exit_code"] == 7
                for row in rows
            )

        wait_for(exited_with_7, 20, "the exit code 7 recorded from Docker's events", 0.3)
        state.close()


def test_a_create_whose_reply_is_lost_is_found_by_its_retry(
    running_dockerd: PrivateDockerd, tmp_path: Path
) -> None:
    """Docker makes the container, and the connection drops before its reply: the task sees
    DockerUnavailable and retries. Redelivery and retries are safe (README), and a create's
    marker is there for exactly this loss (workers/containers.py): the retry must find the
    container it made, and the store must know it."""
    name = "lost-reply"
    with (
        contextlib.closing(running_dockerd.client()) as daemon,
        ReplyCutter(running_dockerd.socket, b"/containers/create") as cutter,
        private_redis(tmp_path / "redis") as server,
        up_on(
            server, tmp_path / "up", "ctz-faults-reply", environment={"DOCKER_HOST": cutter.url}
        ) as (up, tasks),
    ):
        state = state_client(server)
        spec = {"image": TEST_IMAGE, "name": name, "command": SLEEPER, "network_mode": "none"}
        result = tasks.send(RUN, spec=spec)
        try:
            outcome, error = result.get(timeout=TASK_TIMEOUT), None
        except Exception as exc:
            outcome, error = None, exc
        assert cutter.cut == 1, "the create's reply was not cut: no fault happened"
        made = daemon.containers.list(all=True, filters={"name": name})
        assert [c.name for c in made] == [name], "the cut reply's container"
        known = state.exists(up.keys.container(made[0].id))
        assert error is None, (
            f"the retry failed with {error!r}; the container ({made[0].status}) is"
            f" {'known' if known else 'unknown'} to the store, its create marker"
            f" {'kept' if state.hlen(up.keys.create_intents()) else 'dropped'}"
        )
        assert outcome is not None and outcome["id"] == made[0].id
        assert outcome["status"] == "running" and known
        state.close()


# --- 5. a registry that dies mid-pull ------------------------------------------------------------
def test_registry_killed_mid_pull_fails_the_pull_frees_the_lock_and_a_later_pull_works(
    running_dockerd: PrivateDockerd, tmp_path: Path
) -> None:
    stall, retries = 4.0, 1
    repository, tag = REGISTRY_BIG.split(":")
    registry = PrivateRegistry(tmp_path / "registry")
    registry.start()
    daemon = running_dockerd.client()
    pulled: list[str] = []
    try:
        copy_image(OPEN_REGISTRY, registry.address, repository, tag)
        with (
            SlowProxy(registry.port, 15 * 1024 * 1024) as proxy,
            private_redis(tmp_path / "redis") as server,
            up_on(
                server,
                tmp_path / "up",
                "ctz-faults-pull",
                environment={"DOCKER_HOST": running_dockerd.url},
                pull_stall_seconds=str(stall),
                retry_max=str(retries),
            ) as (up, tasks),
        ):
            reference = f"{proxy.address}/{REGISTRY_BIG}"
            pulled.append(reference)
            state = state_client(server)
            result = tasks.send(PULL, reference=reference)

            def downloading() -> int:
                meta = result.backend.get_task_meta(result.id)
                assert meta["status"] in ("PENDING", "PROGRESS"), meta
                done = meta["result"]["bytes_done"] if meta["status"] == "PROGRESS" else 0
                return int(done)

            done = wait_for(downloading, 60, "the pull's first bytes", 0.1)
            registry.kill()
            killed = time.monotonic()
            with pytest.raises(Exception) as failure:
                result.get(timeout=120)
            took = time.monotonic() - killed
            lock_left = state.exists(up.keys.pull_lock())
            assert type(failure.value).__name__ in {"RegistryUnavailable", "PullTimeout"}, repr(
                failure.value
            )
            bound = (retries + 1) * (stall + 10) + 5
            assert took < bound, f"the pull failed {took:.1f} s after the kill (bound {bound} s)"
            assert not lock_left, "the pull lock outlived the failed pull"
            print(f"{failure.value!r} {took:.1f} s after the kill, {done} bytes in")

            registry.start()
            proxy.rate = None  # The fault is over: the next pull at full speed.
            again = tasks.call(PULL, reference=reference)
            assert again["cached"] is False and again["id"].startswith("sha256:")
            assert daemon.images.get(reference).id == again["id"]
            assert tasks.call("containerizer.images.remove", reference=reference)["removed"]
            state.close()
    finally:
        for reference in pulled:
            with contextlib.suppress(docker.errors.NotFound):
                daemon.images.remove(reference, force=True)
        daemon.close()
        registry.stop()


# --- 6 and 7: deployments of their own, shared by a class's tests ------------------------------
@dataclass
class Private:
    """A private deployment: its `up`, a by-name client, and the redis-server it uses."""

    up: RunningService
    tasks: TaskClient
    server: PrivateRedis


@contextlib.contextmanager
def private_deployment(root: Path, host: str, **settings: str) -> Iterator[Private]:
    with (
        private_redis(root / "redis") as server,
        up_on(
            server, root / "up", host, broker_url=None, environment=None, wait=True, **settings
        ) as (up, tasks),
    ):
        yield Private(up, tasks, server)


@pytest.fixture(scope="class")
def isolated_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    """A private `up` with the README's defaults for orphans (remove, after 300 s), for tests
    that fault no service. Not the session's service: its broker is database 10 of the
    machine's Redis, which every test run here shares, so another run's workers (of another
    checkout) would take these tasks, and its start flushes that database under them."""
    with private_deployment(tmp_path_factory.mktemp("isolated"), "ctz-faults") as deployment:
        yield deployment


@pytest.fixture(scope="class")
def adopting_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    """A private `up` that adopts orphans (after 1 s)."""
    with private_deployment(
        tmp_path_factory.mktemp("adopting"),
        "ctz-faults-adopt",
        orphan_policy="adopt",
        orphan_grace_seconds="1",
    ) as deployment:
        yield deployment


def all_of(tasks: TaskClient, name: str, count: int, **kwargs: Any) -> list[Any]:
    """``count`` identical tasks sent at once; their results in sending order."""
    results = [tasks.send(name, **kwargs) for _ in range(count)]
    return [result.get(timeout=TASK_TIMEOUT) for result in results]


def lost_create(
    docker_client: docker.DockerClient,
    state: redis.Redis,
    keys_intents: str,
    labels: dict[str, str],
) -> tuple[Any, str]:
    """A container as a create leaves it when its record was never written: managed, carrying
    its create token, the token among the host's intents (10 minutes old), no record."""
    token = uuid.uuid4().hex
    name = f"ctz-orphan-{labels['ctz-test']}"
    container = docker_client.containers.create(
        TEST_IMAGE,
        SLEEPER,
        name=name,
        network_mode="none",
        labels={
            **labels,
            MANAGED_LABEL: "true",
            SPEC_HASH_LABEL: "0" * 64,
            CREATE_TOKEN_LABEL: token,
        },
    )
    state.hset(keys_intents, token, json.dumps({"name": name, "at": time.time() - 600}))
    return container, token


def operators_container(docker_client: docker.DockerClient, labels: dict[str, str]) -> Any:
    """Managed by its label only, without a create token: the operator's, never touched."""
    return docker_client.containers.create(
        TEST_IMAGE, SLEEPER, network_mode="none", labels={**labels, MANAGED_LABEL: "true"}
    )


def reconcile(tasks: TaskClient) -> dict[str, Any]:
    """One reconcile run of this call's own (a beat run holding the lock is waited out)."""

    def run() -> dict[str, Any] | None:
        outcome: dict[str, Any] = tasks.call(RECONCILE)
        return None if outcome.get("locked") else outcome

    found: dict[str, Any] = wait_for(run, 30, "a reconcile run", 0.5)
    return found


def identical_tasks_act_once(
    tasks: TaskClient, host: str, docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    """10 identical creates, runs, stops and removes sent at once (as redeliveries racing their
    originals would be): all succeed, one container, started once; another spec is Conflict."""
    label = f"ctz-test={labels['ctz-test']}"
    created_name = f"ctz-dup-create-{labels['ctz-test']}"
    spec = {"image": TEST_IMAGE, "name": created_name, "command": SLEEPER, "labels": labels}
    created = all_of(tasks, CREATE, 10, spec=spec)
    assert len({c["id"] for c in created}) == 1, created
    assert [c.id for c in docker_client.containers.list(all=True, filters={"label": label})] == [
        created[0]["id"]
    ]
    error, _ = tasks.failure(CREATE, spec={**spec, "command": ["sleep", "1"]})
    assert type(error).__name__ == "Conflict"

    run_name = f"ctz-dup-run-{labels['ctz-test']}"
    results = [tasks.send(RUN, spec={**spec, "name": run_name}) for _ in range(10)]
    started: set[str] = set()
    ran = []
    for result in results:
        ran.append(result.get(timeout=TASK_TIMEOUT))
        started.add(docker_client.api.inspect_container(run_name)["State"]["StartedAt"])
    assert len({r["id"] for r in ran}) == 1, ran
    assert {r["status"] for r in ran} == {"running"}, ran
    assert len(started) == 1, f"started more than once: {started}"
    assert docker_client.api.inspect_container(run_name)["RestartCount"] == 0
    assert len(docker_client.containers.list(all=True, filters={"label": label})) == 2

    stops = all_of(tasks, STOP, 10, container=run_name, timeout=5)
    stopped = {"id": ran[0]["id"], "status": "exited", "exit_code": 0, "host": host}
    assert all(part(s, *STOPPED_FIELDS) == stopped for s in stops), stops
    removes = all_of(tasks, REMOVE, 10, container=run_name)
    removed = {"id": ran[0]["id"], "removed": True, "host": host}
    assert all(part(r, "id", "removed", "host") == removed for r in removes), removes
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(run_name)


class TestDuplicatesAndALostCreate:
    """Duplicate deliveries (6) and a lost create's orphan removed (7), on isolated_service."""

    def test_identical_tasks_sent_at_once_act_once(
        self, isolated_service: Private, docker_client: docker.DockerClient, labels: dict[str, str]
    ) -> None:
        identical_tasks_act_once(
            isolated_service.tasks, isolated_service.up.host, docker_client, labels
        )

    def test_reconcile_removes_the_container_of_a_lost_create_and_spares_the_operators(
        self, isolated_service: Private, docker_client: docker.DockerClient, labels: dict[str, str]
    ) -> None:
        up, tasks = isolated_service.up, isolated_service.tasks
        state = state_client(isolated_service.server)
        intents = up.keys.create_intents()
        orphan, token = lost_create(docker_client, state, intents, labels)
        foreign = operators_container(docker_client, labels)

        outcome = reconcile(tasks)
        assert outcome["reaped"] == 1, outcome
        with pytest.raises(docker.errors.NotFound):
            orphan.reload()
        assert not state.hexists(intents, token), "the orphan's intent was kept"
        foreign.reload()
        assert foreign.status == "created"
        assert not state.exists(up.keys.container(foreign.id))
        state.close()


# --- 8. the supervisor ---------------------------------------------------------------------------
def scrape(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def restarts_counted(text: str, host: str) -> dict[str, float]:
    """containerizer_service_restarts_total by service, of ``host`` (when samples name one)."""
    return {
        sample.labels["service"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "containerizer_service_restarts_total"
        and sample.labels.get("host", host) == host
    }


class TestAdoptionAndRestarts:
    """An orphan adopted (7) and children of `up` killed once (8), on adopting_service."""

    def test_reconcile_adopts_an_orphan_when_the_policy_says_so(
        self, adopting_service: Private, docker_client: docker.DockerClient, labels: dict[str, str]
    ) -> None:
        up, tasks = adopting_service.up, adopting_service.tasks
        state = state_client(adopting_service.server)
        intents = up.keys.create_intents()
        orphan, token = lost_create(docker_client, state, intents, labels)
        foreign = operators_container(docker_client, labels)

        outcome = reconcile(tasks)
        assert outcome["adopted"] == 1, outcome
        assert not state.hexists(intents, token), "the orphan's intent was kept"
        listed = tasks.call(LIST, all=True, labels={"ctz-test": labels["ctz-test"]})
        assert [(row["id"], row["name"], row["status"]) for row in listed] == [
            (orphan.id, orphan.name, "created")
        ]
        assert state.hget(up.keys.container(orphan.id), "status") == "created"
        orphan.reload()
        foreign.reload()  # untouched, and not listed
        assert not state.exists(up.keys.container(foreign.id))
        state.close()

    def test_up_restarts_a_killed_child_and_counts_the_restart(
        self, adopting_service: Private
    ) -> None:
        up, tasks = adopting_service.up, adopting_service.tasks
        url = f"http://127.0.0.1:{up.env['CONTAINERIZER_METRICS_PORT']}/metrics"
        wait_for(lambda: scrape(url), 30, "/metrics", 0.2)
        for name in ("metrics", "events"):
            find = functools.partial(service_child, up, name)
            old = wait_for(find, 10, name)
            old.kill()
            old.wait(timeout=10)
            new = restarted(up, find, old.pid, name)
            log = up.log()
            assert f"{name} exited with code -9; restarting it" in log
            assert f"started {name} (pid {new.pid})" in log

        def counted() -> dict[str, float] | None:
            counts = restarts_counted(scrape(url) or "", up.host)
            return counts if counts == {"metrics": 1.0, "events": 1.0} else None

        try:
            wait_for(counted, 30, "/metrics counting both restarts", 0.3)
        except AssertionError:
            counts = restarts_counted(scrape(url) or "", up.host)
            raise AssertionError(f"containerizer_service_restarts_total: {counts}") from None
        assert up.process.poll() is None
        wait_for_workers(tasks.app, ALL_WORKERS, timeout=10)  # the others ran on undisturbed


def test_up_exits_when_a_child_keeps_dying(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            private_redis(tmp_path / "redis") as server,
            up_on(
                server, tmp_path / "up", "ctz-faults-crash", metrics_port=str(port), wait=False
            ) as (up, _),
        ):
            began = time.monotonic()
            wait_for(lambda: len(descendants(up.process)) >= 6, 30, "up's children", 0.1)
            up.remember_processes()
            try:
                code = up.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                pytest.fail(f"up still runs after 90 s:\n{up.log()[-4000:]}")
            took = time.monotonic() - began
            log = up.log()
            assert code != 0
            gave_up = re.compile(
                r"ERROR/containerizer-up\] metrics exited 5 times .*stopping the service"
            )
            assert gave_up.search(log), log[-4000:]
            assert "Address already in use" in log, "the child's own reason is in the log"
            print(f"up gave up on metrics after {took:.1f} s")
            assert [p.pid for p in up.extra["descendants"].values() if alive(p)] == []


def alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False

"""containerizer.containers.*: one thin task per container operation (queue ``containers``).

Each task validates its JSON arguments, calls one ContainerService method and returns JSON.
"""

from __future__ import annotations

import re
from typing import Any

from celery import Signature, Task, chain
from celery.exceptions import Ignore

from config.celery_config import CONTAINERS_QUEUE, IMAGES_QUEUE, host_queue
from tasks.base import ContainerizerTask, check_arguments, time_limits
from tasks.celery_app import app
from tasks.redaction import redacted_reprs
from tasks.routing import forward, on_owner
from tasks.runtime import runtime
from workers import arguments
from workers.cluster import host_argument as cluster_host
from workers.credentials import parse_auth
from workers.errors import ImageNotFound
from workers.hosts import Placed
from workers.jobs import condition_holds, parse_on_exit, wait_arguments, wait_result
from workers.spec import NAME_PATTERN, ContainerSpec

_NAME_RE = re.compile(NAME_PATTERN)


def _default_name(task: Task) -> str | None:
    """A container created without a name is named after its task, so redelivery finds it."""
    task_id = task.request.id
    name = f"containerizer-{task_id}" if task_id else None
    return name if name and _NAME_RE.fullmatch(name) and len(name) <= 128 else None


@app.task(name="containerizer.containers.create", bind=True, base=ContainerizerTask)
def create(
    self: Task, spec: Any = None, host: Any = None, *extra: Any, **unknown: Any
) -> dict[str, Any]:
    """Create a container from ``spec`` on ``host`` (null: placed): {id, name, image, status,
    host}."""
    check_arguments(self, extra, unknown)
    rt = runtime()
    parsed = rt.containers.validate(spec, default_name=_default_name(self))
    placed = _placed(self, parsed, cluster_host(host))
    try:
        return rt.containers.create(parsed)
    except BaseException:
        rt.cluster.forget(placed, parsed)
        raise


@app.task(name="containerizer.containers.run", bind=True, base=ContainerizerTask)
def run(
    self: Task,
    spec: Any = None,
    auth: Any = None,
    pulled: Any = False,
    host: Any = None,
    on_exit: Any = None,
    follow: Any = False,
    *extra: Any,
    **unknown: Any,
) -> dict[str, Any]:
    """Create and start a container on ``host`` (null: placed): {id, name, image, status,
    startup_ms, pulled, host}. ``on_exit`` ({task, queue, kwargs}) is sent when it exits. With
    ``follow``, the result also names the live-log stream of the container (``stream``, as
    ``logs(follow=true)`` does), asked for the moment it has started, so that no line of even the
    shortest job is missed.

    A missing image is pulled through the host's images queue first: this task replaces itself
    with ``images.pull`` then ``containers.run(pulled=true)``, so its result is that chain's.
    ``auth`` (registry credentials for the pull) is optional; ``pulled`` is set by that chain.
    """
    check_arguments(self, extra, unknown)
    rt = runtime()
    parsed = rt.containers.validate(spec, default_name=_default_name(self))
    parse_auth(auth)  # Bad credentials fail here, before anything is sent.
    notify = parse_on_exit(on_exit)
    after_pull = arguments.boolean("pulled", pulled)
    live = arguments.boolean("follow", follow)
    placed = _placed(self, parsed, cluster_host(host))
    try:
        started = rt.containers.run(parsed, on_exit=notify)
    except ImageNotFound:
        if after_pull:
            rt.cluster.forget(placed, parsed)
            raise
        # Missing here (or evicted a moment ago): pulled through this host's images queue.
        raise self.replace(_pull_then_run(parsed, auth, placed.host, notify, live)) from None
    except BaseException:
        rt.cluster.forget(placed, parsed)
        raise
    if not after_pull:
        rt.image_cache.count(hit=True)
    if live:
        started["stream"] = rt.followers.request(str(started["id"]))
    return {**started, "pulled": after_pull}


def _owned(task: Task, reference: str) -> dict[str, Any]:
    """The record of the container ``reference`` names, on its owner (forwarded there if it is
    another host).

    Raises:
        ContainerNotFound: no managed container has that id or name.
        HostUnavailable: its host is not alive.
    """
    record = runtime().containers.resolve(reference)
    on_owner(task, record)
    return record


def _placed(task: Task, spec: ContainerSpec, host: str | None) -> Placed:
    """The host a new container goes to; the task is forwarded there unless it is this one."""
    cluster = runtime().cluster
    placed = cluster.place(spec, host)
    if placed.host != cluster.here:
        forward(task, host_queue(CONTAINERS_QUEUE, placed.host), host=placed.host)
    return placed


def _pull_then_run(
    spec: ContainerSpec, auth: Any, host: str, on_exit: dict[str, Any] | None, follow: bool
) -> Signature:
    """images.pull on the host's images queue, then this run again on its containers queue."""
    pull_kwargs = {"reference": spec.image, "auth": auth, "host": host}
    pull = app.signature(
        "containerizer.images.pull",
        kwargs=pull_kwargs,
        queue=host_queue(IMAGES_QUEUE, host),
        immutable=True,
        **redacted_reprs(kwargs=pull_kwargs),
    )
    run_kwargs = {
        "spec": spec.model_dump(mode="json", exclude_none=True),
        "pulled": True,
        "host": host,
        "on_exit": on_exit,
        "follow": follow,
    }
    run_again = app.signature(
        "containerizer.containers.run",
        kwargs=run_kwargs,
        queue=host_queue(CONTAINERS_QUEUE, host),
        immutable=True,
        **redacted_reprs(kwargs=run_kwargs),
    )
    return chain(pull, run_again)


@app.task(name="containerizer.containers.start", bind=True, base=ContainerizerTask)
def start(self: Task, container: Any = None, *extra: Any, **unknown: Any) -> dict[str, Any]:
    """Start a container: {id, status, startup_ms}."""
    check_arguments(self, extra, unknown)
    return runtime().containers.start(_owned(self, arguments.container_ref(container)))


@app.task(
    name="containerizer.containers.stop",
    bind=True,
    base=ContainerizerTask,
    **time_limits(arguments.MAX_STOP_TIMEOUT),
)
def stop(
    self: Task, container: Any = None, timeout: Any = 10, *extra: Any, **unknown: Any
) -> dict[str, Any]:
    """Stop gracefully, SIGKILL after ``timeout`` seconds: {id, status, exit_code}."""
    check_arguments(self, extra, unknown)
    reference, seconds = arguments.container_ref(container), arguments.stop_timeout(timeout)
    return runtime().containers.stop(_owned(self, reference), seconds)


@app.task(name="containerizer.containers.kill", bind=True, base=ContainerizerTask)
def kill(
    self: Task, container: Any = None, signal: Any = "SIGKILL", *extra: Any, **unknown: Any
) -> dict[str, Any]:
    """Send a signal: {id, status}."""
    check_arguments(self, extra, unknown)
    reference, name = arguments.container_ref(container), arguments.signal_name(signal)
    return runtime().containers.kill(_owned(self, reference), name)


@app.task(
    name="containerizer.containers.restart",
    bind=True,
    base=ContainerizerTask,
    **time_limits(arguments.MAX_STOP_TIMEOUT),
)
def restart(
    self: Task, container: Any = None, timeout: Any = 10, *extra: Any, **unknown: Any
) -> dict[str, Any]:
    """Restart: {id, status, restart_ms}."""
    check_arguments(self, extra, unknown)
    reference, seconds = arguments.container_ref(container), arguments.stop_timeout(timeout)
    return runtime().containers.restart(_owned(self, reference), seconds, task_id=self.request.id)


@app.task(name="containerizer.containers.remove", bind=True, base=ContainerizerTask)
def remove(
    self: Task,
    container: Any = None,
    force: Any = False,
    volumes: Any = False,
    *extra: Any,
    **unknown: Any,
) -> dict[str, Any]:
    """Remove a container: {id, removed: true}."""
    check_arguments(self, extra, unknown)
    containers = runtime().containers
    reference = arguments.container_ref(container)
    forced, with_volumes = arguments.boolean("force", force), arguments.boolean("volumes", volumes)
    record = containers.state.find(reference)
    if record is not None and record.get("status") == "removed":
        return {"id": record["id"], "removed": True, "host": record.get("host")}
    return containers.remove(_owned(self, reference), force=forced, volumes=with_volumes)


@app.task(name="containerizer.containers.inspect", bind=True, base=ContainerizerTask)
def inspect(self: Task, container: Any = None, *extra: Any, **unknown: Any) -> dict[str, Any]:
    """The engine's inspect document."""
    check_arguments(self, extra, unknown)
    return runtime().containers.inspect(_owned(self, arguments.container_ref(container)))


@app.task(name="containerizer.containers.logs", bind=True, base=ContainerizerTask)
def logs(
    self: Task,
    container: Any = None,
    tail: Any = 100,
    timestamps: Any = False,
    follow: Any = False,
    *extra: Any,
    **unknown: Any,
) -> dict[str, Any]:
    """Recent stdout and stderr: {id, logs, host}; with ``follow``, at once {id, stream, host}:
    a Redis stream (in the state Redis) the host's agent copies the container's lines into as
    they come, from the first, and ends with an ``eof`` entry."""
    check_arguments(self, extra, unknown)
    rt = runtime()
    reference = arguments.container_ref(container)
    lines = arguments.integer("tail", tail, minimum=0, maximum=rt.settings.logs_max_tail)
    with_times = arguments.boolean("timestamps", timestamps)
    live = arguments.boolean("follow", follow)
    record = _owned(self, reference)
    if live:
        stream = rt.followers.request(str(record["id"]))
        return {"id": record["id"], "stream": stream, "host": rt.cluster.here}
    return rt.containers.logs(record, tail=lines, timestamps=with_times)


@app.task(name="containerizer.containers.wait", bind=True, base=ContainerizerTask)
def wait(
    self: Task,
    container: Any = None,
    timeout: Any = 300,
    condition: Any = "not-running",
    *extra: Any,
    **unknown: Any,
) -> dict[str, Any]:
    """Wait until the container is not running (or healthy, or it exits), at most ``timeout``
    seconds (3600): {id, status, exit_code, oom_killed, finished_at, health, timed_out, host}.

    It holds no worker and no Docker connection while it waits: when the condition does not hold
    yet, the wait is registered with the container's host and this task ends without a result;
    the host's agent stores the result when an event makes the condition hold, or at the
    timeout. The caller's result arrives as for any task.
    """
    check_arguments(self, extra, unknown)
    reference = arguments.container_ref(container)
    seconds, wanted = wait_arguments(timeout, condition)
    rt = runtime()
    gone = rt.containers.state.find(reference)
    if gone is not None and gone.get("status") == "removed":
        # Removed already (auto_remove may be quicker than its caller's wait): its record keeps
        # how it ended, for the record's retention.
        return wait_result(gone, timed_out=False)
    record = _owned(self, reference)
    task_id = self.request.id
    if task_id and seconds and rt.waiters.register(str(record["id"]), task_id, wanted, seconds):
        raise Ignore()  # The agent stores the result.
    now = rt.containers.state.get(str(record["id"])) or record
    return wait_result(now, timed_out=not condition_holds(now, wanted))


@app.task(name="containerizer.containers.list", bind=True, base=ContainerizerTask)
def list_(
    self: Task,
    all: Any = False,
    labels: Any = None,
    host: Any = None,
    *extra: Any,
    **unknown: Any,
) -> list[dict[str, Any]]:
    """Managed containers of every host (or of ``host``), from their records:
    [{id, name, image, status, labels, host, exit_code, created_at, ...}]."""
    check_arguments(self, extra, unknown)
    rt = runtime()
    every, wanted = arguments.boolean("all", all), arguments.label_filter(labels)
    pinned = cluster_host(host)
    hosts = [pinned] if pinned is not None else rt.hosts.names() or [rt.cluster.here]
    return rt.containers.list(all=every, labels=wanted, hosts=hosts)


@app.task(name="containerizer.containers.stats", bind=True, base=ContainerizerTask)
def stats(self: Task, container: Any = None, *extra: Any, **unknown: Any) -> dict[str, Any]:
    """ResourceUsage from one one-shot sample."""
    check_arguments(self, extra, unknown)
    return runtime().containers.stats(_owned(self, arguments.container_ref(container)))

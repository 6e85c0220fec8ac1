"""containerizer.containers.*: one thin task per container operation (queue ``containers``).

Each task validates its JSON arguments, calls one ContainerService method and returns JSON.
"""

from __future__ import annotations

import re
from typing import Any

from celery import Signature, Task, chain

from config.celery_config import CONTAINERS_QUEUE, IMAGES_QUEUE
from tasks.base import ContainerizerTask, check_arguments, time_limits
from tasks.celery_app import app
from tasks.redaction import redacted_reprs
from tasks.runtime import runtime
from workers import arguments
from workers.credentials import parse_auth
from workers.errors import ImageNotFound
from workers.spec import NAME_PATTERN, ContainerSpec

_NAME_RE = re.compile(NAME_PATTERN)


def _default_name(task: Task) -> str | None:
    """A container created without a name is named after its task, so redelivery finds it."""
    task_id = task.request.id
    name = f"containerizer-{task_id}" if task_id else None
    return name if name and _NAME_RE.fullmatch(name) and len(name) <= 128 else None


@app.task(name="containerizer.containers.create", bind=True, base=ContainerizerTask)
def create(self: Task, spec: Any = None, *extra: Any, **unknown: Any) -> dict[str, Any]:
    """Create a container from ``spec``: {id, name, image, status}."""
    check_arguments(self, extra, unknown)
    manager = runtime().containers
    return manager.create(manager.validate(spec, default_name=_default_name(self)))


@app.task(name="containerizer.containers.run", bind=True, base=ContainerizerTask)
def run(
    self: Task,
    spec: Any = None,
    auth: Any = None,
    pulled: Any = False,
    *extra: Any,
    **unknown: Any,
) -> dict[str, Any]:
    """Create and start a container: {id, name, image, status, startup_ms, pulled}.

    A missing image is pulled through the ``images`` queue first: this task replaces itself
    with ``images.pull`` then ``containers.run(pulled=true)``, so its result is that chain's.
    ``auth`` (registry credentials for the pull) is optional; ``pulled`` is set by that chain.
    """
    check_arguments(self, extra, unknown)
    rt = runtime()
    parsed = rt.containers.validate(spec, default_name=_default_name(self))
    parse_auth(auth)  # Bad credentials fail here, before anything is sent.
    after_pull = arguments.boolean("pulled", pulled)
    if not after_pull:
        if rt.images.present(parsed.reference) is None:
            raise self.replace(_pull_then_run(parsed, auth))
        rt.image_cache.count(hit=True)
    try:
        return {**rt.containers.run(parsed), "pulled": after_pull}
    except ImageNotFound:
        if after_pull:
            raise
        # Evicted between the check and the create: pull it again, as if it had been missing.
        raise self.replace(_pull_then_run(parsed, auth)) from None


def _pull_then_run(spec: ContainerSpec, auth: Any) -> Signature:
    """images.pull on the images queue, then this run again on the containers queue."""
    pull_kwargs = {"reference": spec.image, "auth": auth}
    pull = app.signature(
        "containerizer.images.pull",
        kwargs=pull_kwargs,
        queue=IMAGES_QUEUE,
        immutable=True,
        **redacted_reprs(kwargs=pull_kwargs),
    )
    run_again = app.signature(
        "containerizer.containers.run",
        kwargs={"spec": spec.model_dump(mode="json", exclude_none=True), "pulled": True},
        queue=CONTAINERS_QUEUE,
        immutable=True,
    )
    return chain(pull, run_again)


@app.task(name="containerizer.containers.start", bind=True, base=ContainerizerTask)
def start(self: Task, container: Any = None, *extra: Any, **unknown: Any) -> dict[str, Any]:
    """Start a container: {id, status, startup_ms}."""
    check_arguments(self, extra, unknown)
    containers = runtime().containers
    return containers.start(containers.resolve(arguments.container_ref(container)))


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
    containers = runtime().containers
    reference, seconds = arguments.container_ref(container), arguments.stop_timeout(timeout)
    return containers.stop(containers.resolve(reference), seconds)


@app.task(name="containerizer.containers.kill", bind=True, base=ContainerizerTask)
def kill(
    self: Task, container: Any = None, signal: Any = "SIGKILL", *extra: Any, **unknown: Any
) -> dict[str, Any]:
    """Send a signal: {id, status}."""
    check_arguments(self, extra, unknown)
    containers = runtime().containers
    reference, name = arguments.container_ref(container), arguments.signal_name(signal)
    return containers.kill(containers.resolve(reference), name)


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
    containers = runtime().containers
    reference, seconds = arguments.container_ref(container), arguments.stop_timeout(timeout)
    return containers.restart(containers.resolve(reference), seconds)


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
    return containers.remove(containers.resolve(reference), force=forced, volumes=with_volumes)


@app.task(name="containerizer.containers.inspect", bind=True, base=ContainerizerTask)
def inspect(self: Task, container: Any = None, *extra: Any, **unknown: Any) -> dict[str, Any]:
    """The engine's inspect document."""
    check_arguments(self, extra, unknown)
    containers = runtime().containers
    return containers.inspect(containers.resolve(arguments.container_ref(container)))


@app.task(name="containerizer.containers.logs", bind=True, base=ContainerizerTask)
def logs(
    self: Task,
    container: Any = None,
    tail: Any = 100,
    timestamps: Any = False,
    *extra: Any,
    **unknown: Any,
) -> dict[str, Any]:
    """Recent stdout and stderr: {id, logs}."""
    check_arguments(self, extra, unknown)
    rt = runtime()
    reference = arguments.container_ref(container)
    lines = arguments.integer("tail", tail, minimum=0, maximum=rt.settings.logs_max_tail)
    with_times = arguments.boolean("timestamps", timestamps)
    return rt.containers.logs(rt.containers.resolve(reference), tail=lines, timestamps=with_times)


@app.task(name="containerizer.containers.list", bind=True, base=ContainerizerTask)
def list_(
    self: Task, all: Any = False, labels: Any = None, *extra: Any, **unknown: Any
) -> list[dict[str, Any]]:
    """Managed containers: [{id, name, image, status, labels}]."""
    check_arguments(self, extra, unknown)
    return runtime().containers.list(
        all=arguments.boolean("all", all), labels=arguments.label_filter(labels)
    )


@app.task(name="containerizer.containers.stats", bind=True, base=ContainerizerTask)
def stats(self: Task, container: Any = None, *extra: Any, **unknown: Any) -> dict[str, Any]:
    """ResourceUsage from one one-shot sample."""
    check_arguments(self, extra, unknown)
    containers = runtime().containers
    return containers.stats(containers.resolve(arguments.container_ref(container)))

"""containerizer.images.*: image tasks, on each host's ``images.<host>`` queue (concurrency 1:
pulls serialized per host) and the shared ``images`` queue.

``host`` null means the host whose worker takes the task: on a host's own queue, that host; on the
shared queue, any host (a pull there makes the image present somewhere; a remove there needs
``host`` unless one host is live). ``list`` covers every host from what their agents publish.
``prewarm`` pulls on every named (or live) host through each host's own queue.
"""

from __future__ import annotations

from typing import Any

from celery import Task, chord, group

from config.celery_config import IMAGES_QUEUE, host_queue
from config.settings import get_settings
from tasks.base import ContainerizerTask, check_arguments, time_limits
from tasks.celery_app import app
from tasks.redaction import redacted_reprs
from tasks.routing import forward
from tasks.runtime import runtime
from workers import arguments
from workers.cluster import host_argument
from workers.credentials import parse_auth
from workers.errors import ContainerizerError, InvalidSpec
from workers.reference import parse_reference

_settings = get_settings()
_PULL_LIMITS = time_limits(_settings.pull_timeout_seconds + _settings.pull_stall_seconds)


def _on_host(task: Task, host: Any) -> str:
    """The host this image task acts on; the task is forwarded there unless it is this one.

    Raises:
        InvalidSpec: a malformed host. HostUnavailable: a named host that is not alive.
    """
    cluster = runtime().cluster
    target = host_argument(host) or cluster.here
    if target != cluster.here:
        cluster.require_alive(target)
        forward(task, host_queue(IMAGES_QUEUE, target), host=target)
    return target


@app.task(name="containerizer.images.pull", bind=True, base=ContainerizerTask, **_PULL_LIMITS)
def pull(
    self: Task,
    reference: Any = None,
    auth: Any = None,
    always_pull: Any = False,
    host: Any = None,
    *extra: Any,
    **unknown: Any,
) -> dict[str, Any]:
    """Make an image present on ``host``: {reference, id, size, cached, pull_seconds, host}.

    While it downloads, the task's state is PROGRESS with {reference, bytes_done, bytes_total,
    layers_done, layers_total}.
    """
    check_arguments(self, extra, unknown)
    parsed = parse_reference(reference, field="reference")
    credentials = parse_auth(auth)
    always = arguments.boolean("always_pull", always_pull)
    target = _on_host(self, host)

    def report(progress: dict[str, Any]) -> None:
        if self.request.id:
            self.update_state(state="PROGRESS", meta={**progress, "host": target})

    rt = runtime()
    result = rt.images.pull(parsed, auth=credentials, always_pull=always, progress=report)
    return {**result, "host": target}


@app.task(name="containerizer.images.tag", bind=True, base=ContainerizerTask)
def tag(
    self: Task,
    source: Any = None,
    target: Any = None,
    host: Any = None,
    *extra: Any,
    **unknown: Any,
) -> dict[str, Any]:
    """Tag an image on ``host``: {source, target, host}."""
    check_arguments(self, extra, unknown)
    old, new = parse_reference(source, field="source"), parse_reference(target, field="target")
    here = _on_host(self, host)
    return {**runtime().images.tag(old, new), "host": here}


@app.task(name="containerizer.images.push", bind=True, base=ContainerizerTask, **_PULL_LIMITS)
def push(
    self: Task,
    reference: Any = None,
    auth: Any = None,
    host: Any = None,
    *extra: Any,
    **unknown: Any,
) -> dict[str, Any]:
    """Push an image from ``host`` to its registry: {reference, digest, host}."""
    check_arguments(self, extra, unknown)
    parsed, credentials = parse_reference(reference, field="reference"), parse_auth(auth)
    here = _on_host(self, host)
    return {**runtime().images.push(parsed, auth=credentials), "host": here}


@app.task(name="containerizer.images.remove", bind=True, base=ContainerizerTask)
def remove(
    self: Task,
    reference: Any = None,
    force: Any = False,
    host: Any = None,
    *extra: Any,
    **unknown: Any,
) -> dict[str, Any]:
    """Remove an image from ``host``: {reference, removed: true, host}.

    Raises:
        InvalidSpec: ``host`` is null and several hosts are live (which one's?).
    """
    check_arguments(self, extra, unknown)
    parsed, forced = (
        parse_reference(reference, field="reference"),
        arguments.boolean("force", force),
    )
    rt = runtime()
    if host is None and len(set(rt.hosts.alive()) | {rt.cluster.here}) > 1:
        raise InvalidSpec("host: several hosts are live; name the one to remove the image from")
    here = _on_host(self, host)
    return {**rt.images.remove(parsed, force=forced), "host": here}


@app.task(name="containerizer.images.list", bind=True, base=ContainerizerTask)
def list_(self: Task, host: Any = None, *extra: Any, **unknown: Any) -> list[dict[str, Any]]:
    """Images on every host (or ``host``), as their agents last published them, the ones the
    service pulled with their cache figures: [{id, tags, size, ..., host}]."""
    check_arguments(self, extra, unknown)
    rt = runtime()
    pinned = host_argument(host)
    hosts = [pinned] if pinned is not None else rt.hosts.names() or [rt.cluster.here]
    return [row for each in hosts for row in rt.images.list(each)]


@app.task(name="containerizer.images.prewarm", bind=True, base=ContainerizerTask)
def prewarm(
    self: Task,
    reference: Any = None,
    hosts: Any = None,
    auth: Any = None,
    *extra: Any,
    **unknown: Any,
) -> dict[str, Any]:
    """Pull on every named host (null: every live host), each through its own images queue:
    {reference, hosts: {<host>: <pull result or error name>}}."""
    check_arguments(self, extra, unknown)
    parsed = parse_reference(reference, field="reference")
    parse_auth(auth)
    rt = runtime()
    alive = set(rt.hosts.alive()) | {rt.cluster.here}
    if hosts is None:
        named = alive
    elif isinstance(hosts, list) and hosts and len(hosts) <= 1024:
        named = {str(host_argument(h)) for h in hosts if h is not None}
    else:
        raise InvalidSpec("hosts: expected null or a non-empty list of host names")
    # A host that is not alive would never take its part: it is reported as such at once.
    unavailable = sorted(named - alive)
    header = []
    for target in sorted(named & alive):
        kwargs = {"reference": parsed.familiar, "auth": auth, "host": target}
        header.append(
            app.signature(
                "containerizer.images.prewarm_host",
                kwargs=kwargs,
                queue=host_queue(IMAGES_QUEUE, target),
                **redacted_reprs(kwargs=kwargs),
            )
        )
    report = {"reference": parsed.familiar, "unavailable": unavailable}
    if not header:
        return _report([], **report)
    body = app.signature("containerizer.images.prewarm_report", kwargs=report, queue=IMAGES_QUEUE)
    raise self.replace(chord(group(header), body))


@app.task(
    name="containerizer.images.prewarm_host", bind=True, base=ContainerizerTask, **_PULL_LIMITS
)
def prewarm_host(
    self: Task, reference: Any = None, auth: Any = None, host: Any = None, **unknown: Any
) -> dict[str, Any]:
    """One host's part of a prewarm (internal): its pull result, or its error's name."""
    check_arguments(self, (), unknown)
    target = host_argument(host) or runtime().cluster.here
    try:
        if target != runtime().cluster.here:
            runtime().cluster.require_alive(target)
        parsed, credentials = parse_reference(reference, field="reference"), parse_auth(auth)
        result: dict[str, Any] | str = runtime().images.pull(parsed, auth=credentials)
    except ContainerizerError as exc:
        result = type(exc).__name__
    return {"host": target, "result": result}


@app.task(name="containerizer.images.prewarm_report", base=ContainerizerTask)
def prewarm_report(
    results: Any = None, reference: Any = None, unavailable: Any = None, **unknown: Any
) -> dict[str, Any]:
    """A prewarm's result (internal): every host's part, by host."""
    if unknown:
        raise InvalidSpec("containerizer.images.prewarm_report: unknown arguments")
    return _report(results, reference, unavailable)


def _report(results: Any, reference: Any, unavailable: Any) -> dict[str, Any]:
    parts = results if isinstance(results, list) else []
    by_host: dict[str, Any] = {str(host): "HostUnavailable" for host in unavailable or []}
    by_host.update({part["host"]: part["result"] for part in parts if isinstance(part, dict)})
    return {"reference": reference, "hosts": dict(sorted(by_host.items()))}

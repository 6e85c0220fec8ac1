"""containerizer.images.*: image tasks (queue ``images``, consumed with concurrency 1)."""

from __future__ import annotations

from typing import Any

from celery import Task

from config.settings import get_settings
from tasks.base import ContainerizerTask, check_arguments, time_limits
from tasks.celery_app import app
from tasks.runtime import runtime
from workers import arguments
from workers.credentials import parse_auth
from workers.reference import parse_reference

_settings = get_settings()


_PULL_LIMITS = time_limits(_settings.pull_timeout_seconds + _settings.pull_stall_seconds)


@app.task(name="containerizer.images.pull", bind=True, base=ContainerizerTask, **_PULL_LIMITS)
def pull(
    self: Task,
    reference: Any = None,
    auth: Any = None,
    always_pull: Any = False,
    *extra: Any,
    **unknown: Any,
) -> dict[str, Any]:
    """Make an image present: {reference, id, size, cached, pull_seconds}.

    While it downloads, the task's state is PROGRESS with {reference, bytes_done, bytes_total,
    layers_done, layers_total}.
    """
    check_arguments(self, extra, unknown)
    parsed = parse_reference(reference, field="reference")
    credentials = parse_auth(auth)
    always = arguments.boolean("always_pull", always_pull)

    def report(progress: dict[str, Any]) -> None:
        if self.request.id:
            self.update_state(state="PROGRESS", meta=progress)

    return runtime().images.pull(parsed, auth=credentials, always_pull=always, progress=report)


@app.task(name="containerizer.images.tag", bind=True, base=ContainerizerTask)
def tag(
    self: Task, source: Any = None, target: Any = None, *extra: Any, **unknown: Any
) -> dict[str, Any]:
    """Tag an image: {source, target}."""
    check_arguments(self, extra, unknown)
    return runtime().images.tag(
        parse_reference(source, field="source"), parse_reference(target, field="target")
    )


@app.task(name="containerizer.images.push", bind=True, base=ContainerizerTask, **_PULL_LIMITS)
def push(
    self: Task, reference: Any = None, auth: Any = None, *extra: Any, **unknown: Any
) -> dict[str, Any]:
    """Push an image to its registry: {reference, digest}."""
    check_arguments(self, extra, unknown)
    return runtime().images.push(
        parse_reference(reference, field="reference"), auth=parse_auth(auth)
    )


@app.task(name="containerizer.images.remove", bind=True, base=ContainerizerTask)
def remove(
    self: Task, reference: Any = None, force: Any = False, *extra: Any, **unknown: Any
) -> dict[str, Any]:
    """Remove an image: {reference, removed: true}."""
    check_arguments(self, extra, unknown)
    return runtime().images.remove(
        parse_reference(reference, field="reference"), force=arguments.boolean("force", force)
    )


@app.task(name="containerizer.images.list", bind=True, base=ContainerizerTask)
def list_(self: Task, *extra: Any, **unknown: Any) -> list[dict[str, Any]]:
    """Images on the host: [{id, tags, size, last_used, use_count, pinned, cached, ...}]."""
    check_arguments(self, extra, unknown)
    return runtime().images.list()

"""Forwarding a task to the host it belongs to: one hop, the caller's task id kept.

A task replaced by a copy of itself on another queue (Celery's ``Task.replace``) hands its id to the
copy, so the caller's result is the copy's. Secrets stay redacted in what the copy shows.
"""

from __future__ import annotations

from typing import Any, NoReturn

from celery import Task

from config.celery_config import CONTAINERS_QUEUE, host_queue
from tasks.redaction import redacted_reprs
from tasks.runtime import runtime


def forward(task: Task, queue: str, **changes: Any) -> NoReturn:
    """Replace ``task`` by the same task on ``queue``, with ``changes`` to its keyword arguments."""
    args = list(task.request.args or ())
    kwargs = {**(task.request.kwargs or {}), **changes}
    copy = task.app.signature(
        task.name, args=args, kwargs=kwargs, queue=queue, **redacted_reprs(args, kwargs)
    )
    raise task.replace(copy)


def on_owner(task: Task, record: dict[str, Any]) -> None:
    """Return if this host owns the container ``record`` describes; forward the task otherwise.

    Raises:
        HostUnavailable: the owner is not alive (the task is retried with backoff).
    """
    cluster = runtime().cluster
    owner = cluster.owner(record)
    if owner != cluster.here:
        cluster.require_alive(owner)
        forward(task, host_queue(CONTAINERS_QUEUE, owner))

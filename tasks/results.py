"""What the host agent sends through Celery on a container's behalf (it is not itself a task):
``on_exit`` tasks by name, and the results of ``wait`` tasks, which end without one."""

from __future__ import annotations

from typing import Any

from celery import states
from celery.app.task import Context

from tasks.celery_app import app
from tasks.redaction import redacted_reprs

WAIT_TASK = "containerizer.containers.wait"


def send_by_name(task: str, queue: str, kwargs: dict[str, Any], task_id: str) -> None:
    """Send ``task`` by name to ``queue``, JSON only, with ``task_id``."""
    app.send_task(
        task, kwargs=kwargs, queue=queue, task_id=task_id, **redacted_reprs(kwargs=kwargs)
    )


def store_wait_result(task_id: str, result: dict[str, Any]) -> None:
    """Store a wait's result under its task's id (its caller is waiting on it), and tell Flower."""
    request = Context(id=task_id, task=WAIT_TASK, name=WAIT_TASK, args=None, kwargs=None)
    app.backend.store_result(task_id, result, states.SUCCESS, request=request)
    with app.events.default_dispatcher() as dispatcher:
        dispatcher.send("task-succeeded", uuid=task_id, result=repr(result), runtime=0.0)

"""The worker's consumer: no message, however built, can end a worker process.

Celery turns a message into a task request in the worker's main process, before any pool runs it.
An exception there (a body that cannot be decoded, an envelope of the wrong shape, arguments past
their bounds, a bug in building or redacting the request) would otherwise escape into the
consumer's event loop and end the worker with "Unrecoverable error"; the message would go back to
the queue, and the next worker to take it would end the same way: a crash loop from one message.

Here every such failure fails that one task instead: the message is rejected without requeueing
(acknowledged on Redis, dropped or dead-lettered on RabbitMQ), and, when the message says which
task it is, its result is stored as InvalidSpec (a task-failed event goes to Flower), so the caller
learns at once what was wrong.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from celery.utils.objects import Bunch
from celery.worker.consumer import Consumer

from workers.errors import InvalidSpec

log = logging.getLogger(__name__)

_TASK_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class PoisonSafeConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, failing a message it cannot turn into a task instead of dying."""

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        handle = super().create_task_handler(*args, **kwargs)

        def on_task_received(message: Any) -> None:
            try:
                handle(message)
            except Exception as exc:
                self.on_poisoned_message(message, exc)

        return on_task_received

    def on_poisoned_message(self, message: Any, exc: Exception) -> None:
        """Fail the task a message carries (InvalidSpec), and drop the message."""
        reason = exc if isinstance(exc, InvalidSpec) else InvalidSpec(_describe(exc))
        task_id, name = _identity(message)
        log.error(
            "refused message for %s[%s]: %s", name or "an unknown task", task_id or "?", reason
        )
        self._drop(message)
        self._fail(task_id, name, message, reason)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        """A body that cannot be decoded: acknowledged (as Celery does) and its task failed."""
        task_id, name = _identity(message)
        super().on_decode_error(message, exc)
        self._fail(task_id, name, message, InvalidSpec(f"message: cannot be decoded ({exc})"))

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        """An envelope Celery refuses: rejected (as Celery does) and its task failed."""
        task_id, name = _identity(message)
        super().on_invalid_task(body, message, exc)
        self._fail(task_id, name, message, InvalidSpec(f"message: {exc}"))

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        """A task name no worker here knows: rejected and failed with InvalidSpec."""
        task_id, name = _identity(message)
        log.error("refused message for unknown task %r[%s]", name, task_id or "?")
        self._drop(message)
        self._fail(task_id, name, message, InvalidSpec(f"task: no task named {name!r}"))

    def _drop(self, message: Any) -> None:
        if getattr(message, "acknowledged", False):
            return
        try:
            message.reject_log_error(log, self.connection_errors, requeue=False)
        except Exception:
            log.exception("could not reject a refused message")

    def _fail(self, task_id: str | None, name: str | None, message: Any, error: Exception) -> None:
        if task_id is None:
            return
        request = Bunch(
            id=task_id,
            name=name,
            task=name,
            chord=None,
            root_id=_header(message, "root_id"),
            correlation_id=_property(message, "correlation_id"),
            reply_to=_property(message, "reply_to"),
            errbacks=None,
            args=None,
            kwargs=None,
        )
        try:
            self.app.backend.mark_as_failure(task_id, error, request=request)
        except Exception:
            log.exception("could not record the failure of refused task %s", task_id)
        if self.event_dispatcher is not None:
            try:
                self.event_dispatcher.send(
                    "task-failed", uuid=task_id, exception=f"InvalidSpec({str(error)[:500]!r})"
                )
            except Exception:
                log.warning("could not send task-failed for refused task %s", task_id)


def _identity(message: Any) -> tuple[str | None, str | None]:
    """The task id and name a message's headers give, when they look like ones."""
    task_id = _header(message, "id")
    name = _header(message, "task")
    return (
        task_id if task_id and _TASK_ID_RE.fullmatch(task_id) else None,
        name[:200] if name else None,
    )


def _header(message: Any, key: str) -> str | None:
    headers = getattr(message, "headers", None)
    value = headers.get(key) if isinstance(headers, dict) else None
    return value if isinstance(value, str) else None


def _property(message: Any, key: str) -> str | None:
    properties = getattr(message, "properties", None)
    value = properties.get(key) if isinstance(properties, dict) else None
    return value if isinstance(value, str) else None


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"message: cannot be turned into a task ({type(exc).__name__}: {text[:300]})"

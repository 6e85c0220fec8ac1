"""The base class of every containerizer task: retries for transient failures only."""

from __future__ import annotations

import functools
import inspect
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval

from config.settings import get_settings
from tasks.redaction import redacted_reprs
from tasks.watchdog import watchdog
from workers.arguments import reject_unknown
from workers.errors import (
    ConfigurationError,
    ContainerizerError,
    InvalidSpec,
    StateUnavailable,
    TimeLimitExceeded,
    TransientError,
)
from workers.state import STATE_ERRORS, STATE_REFUSALS

_settings = get_settings()


class ContainerizerTask(Task):  # type: ignore[misc]
    """Retries DockerUnavailable/RegistryUnavailable/StateUnavailable with exponential backoff
    and a bound.

    Every other containerizer error is final: bad input never retries. These errors are
    ``throws``: expected, recorded as the task's failure, logged without a traceback.
    """

    abstract = True
    autoretry_for: tuple[type[Exception], ...] = (TransientError,)
    max_retries = _settings.retry_max
    retry_backoff = _settings.retry_backoff_seconds
    retry_backoff_max = int(_settings.retry_backoff_max_seconds)
    retry_jitter = True
    acks_late = True
    reject_on_worker_lost = True
    throws = (ContainerizerError,)
    Request = "tasks.redaction:RedactingRequest"
    # Every task is bounded: past the soft limit it fails with TimeLimitExceeded, past the hard
    # limit its process is ended (prefork) and the task fails with Celery's TimeLimitExceeded.
    soft_time_limit = _settings.task_soft_time_limit_seconds
    time_limit = _settings.task_time_limit_seconds

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task; a Redis that cannot be reached is StateUnavailable, retried here.

        redis-py's errors are not TransientError, so the autoretry wrapper around ``run`` lets
        them through; this retries them with the same backoff and bound. Redis refusing the
        worker's credentials is ConfigurationError: no retry mends that.
        """
        try:
            _signature(self.run).bind(*args, **kwargs)
        except TypeError as exc:
            # A positional argument and a keyword for the same parameter, say.
            raise InvalidSpec(f"{self.name}: {exc}") from None
        if watchdog.enabled:
            # A limit the sender set on the message comes first, as Celery's pools have it.
            hard, soft = self.request.timelimit or (None, None)
            watchdog.started(
                self.name,
                self.request.id or "",
                soft or self.soft_time_limit,
                hard or self.time_limit,
            )
        try:
            return super().__call__(*args, **kwargs)
        except SoftTimeLimitExceeded:
            raise TimeLimitExceeded(
                f"{self.name}: still running after its time limit of {self.soft_time_limit:.0f} s"
            ) from None
        except STATE_REFUSALS as exc:
            raise ConfigurationError(f"Redis refused this worker: {exc}") from exc
        except STATE_ERRORS as exc:
            error = StateUnavailable(f"Redis unreachable: {exc}")
            countdown = get_exponential_backoff_interval(
                factor=int(max(1.0, self.retry_backoff)),
                retries=self.request.retries,
                maximum=self.retry_backoff_max,
                full_jitter=self.retry_jitter,
            )
            # Past max_retries, retry() raises ``error`` itself: the task fails with it.
            raise self.retry(exc=error, countdown=countdown) from exc
        finally:
            if watchdog.enabled:
                watchdog.ended()

    def signature_from_request(self, *args: Any, **kwargs: Any) -> Any:
        """The retry's message, whose argsrepr/kwargsrepr Celery would rebuild from the raw
        arguments (credentials included): redacted here."""
        signature = super().signature_from_request(*args, **kwargs)
        return signature.set(**redacted_reprs(signature.args, signature.kwargs))


@functools.cache
def _signature(run: Any) -> inspect.Signature:
    return inspect.signature(run)


def time_limits(extra_seconds: float) -> dict[str, float]:
    """The time limits of a task that may take ``extra_seconds`` longer than most (a pull up to
    the pull timeout, a stop up to its own timeout)."""
    return {
        "soft_time_limit": _settings.task_soft_time_limit_seconds + extra_seconds,
        "time_limit": _settings.task_time_limit_seconds + extra_seconds,
    }


def check_arguments(task: Task, extra: tuple[Any, ...], unknown: dict[str, Any]) -> None:
    """Refuse surplus positional and unknown keyword arguments with InvalidSpec."""
    if extra:
        raise InvalidSpec(f"{task.name}: too many positional arguments ({len(extra)} extra)")
    reject_unknown(task.name, unknown)

"""Keep registry credentials out of everything Celery shows or stores.

A job may carry ``auth`` (a registry password). Celery would otherwise show it in task events (and
so Flower), in ``inspect active`` replies and in the result backend's extended metadata. The
worker's requests are re-described with the secrets redacted, and the result backend stores only
redacted arguments.
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend
from celery.utils.saferepr import saferepr
from celery.worker.request import Request

from workers.credentials import redact


class RedactingRequest(Request):  # type: ignore[misc]
    """A worker request whose argsrepr/kwargsrepr (events, logs, Flower) carry no secrets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._argsrepr = saferepr(redact(list(self._args or ())))
        self._kwargsrepr = saferepr(redact(dict(self._kwargs or {})))
        self._request_dict["argsrepr"] = self._argsrepr
        self._request_dict["kwargsrepr"] = self._kwargsrepr

    def info(self, safe: bool = False) -> dict[str, Any]:
        """What ``inspect active/reserved`` replies: redacted even when not asked to be safe."""
        data: dict[str, Any] = super().info(safe=safe)
        data["args"] = redact(data["args"]) if not safe else data["args"]
        data["kwargs"] = redact(data["kwargs"]) if not safe else data["kwargs"]
        return data


class RedactingRedisBackend(RedisBackend):  # type: ignore[misc]
    """Celery's Redis result backend, storing extended task arguments with secrets redacted."""

    def _get_result_meta(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        meta: dict[str, Any] = super()._get_result_meta(*args, **kwargs)
        for field in ("args", "kwargs"):
            if meta.get(field) is not None:
                meta[field] = redact(meta[field])
        return meta


def redacted_reprs(args: Any = (), kwargs: Any = None) -> dict[str, str]:
    """``argsrepr``/``kwargsrepr`` options for sending a task whose arguments hold secrets."""
    return {
        "argsrepr": saferepr(redact(list(args))),
        "kwargsrepr": saferepr(redact(dict(kwargs or {}))),
    }

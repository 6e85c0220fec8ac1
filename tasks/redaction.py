"""What a worker does with a message before its task runs, and what Celery stores after.

* Bounds first: a message whose body is over ``CONTAINERIZER_MAX_MESSAGE_BYTES`` is refused before
  it is decoded, and decoded arguments past the depth, string and list bounds
  (:mod:`workers.limits`) before anything recursive (redaction, ``saferepr``, validation) sees
  them. Such a message fails its task with InvalidSpec (see :mod:`tasks.consumer`).
* Secrets never leave: a job may carry ``auth`` (a registry password) and environment values
  whose names look secret. Celery would otherwise show them in task events (and so Flower), in
  ``inspect active`` replies and in the result backend's extended metadata. The worker's requests
  are re-described with the secrets redacted, and every result backend stores only redacted
  arguments: :func:`redacting_backend` wraps whichever backend class the URL names (Redis, its
  socket and Sentinel forms, the cache, database, file system, RPC, ...).
* Results stored in one round trip on Redis (:class:`RedactingRedisBackend`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from celery import states
from celery.app.task import Context
from celery.backends.base import Backend
from celery.backends.redis import RedisBackend
from celery.exceptions import BackendStoreError
from celery.utils.saferepr import saferepr
from celery.worker.request import Request

from config.settings import get_settings
from workers.credentials import Redactor
from workers.limits import ArgumentLimits, check_bounds, check_size


@cache
def redactor() -> Redactor:
    """The redactor of the configured secret patterns."""
    return Redactor(get_settings().secret_env_patterns)


@cache
def argument_limits() -> ArgumentLimits:
    """The configured bounds of a task message."""
    settings = get_settings()
    return ArgumentLimits(
        max_bytes=settings.max_message_bytes,
        max_depth=settings.max_argument_depth,
        max_string=settings.max_string_length,
        max_items=settings.max_list_length,
    )


class RedactingRequest(Request):  # type: ignore[misc]
    """A worker request that is bounded, and whose argsrepr/kwargsrepr (events, logs, Flower)
    carry no secrets.

    Raises (from the constructor, in the worker's main process; :mod:`tasks.consumer` fails the
    task with it): InvalidSpec for a message past its bounds.
    """

    def __init__(self, message: Any, *args: Any, **kwargs: Any) -> None:
        body = kwargs.get("body")
        raw = message.body if body is None or not isinstance(body, bytes | str) else body
        if isinstance(raw, bytes | str):
            check_size(len(raw), argument_limits())
        super().__init__(message, *args, **kwargs)
        check_bounds(self._args, self._kwargs, argument_limits())
        redact = redactor()
        self._argsrepr = saferepr(redact(list(self._args or ())))
        self._kwargsrepr = saferepr(redact(dict(self._kwargs or {})))
        self._request_dict["argsrepr"] = self._argsrepr
        self._request_dict["kwargsrepr"] = self._kwargsrepr

    def info(self, safe: bool = False) -> dict[str, Any]:
        """What ``inspect active/reserved`` replies: redacted even when not asked to be safe."""
        data: dict[str, Any] = super().info(safe=safe)
        if not safe:
            data["args"] = redactor()(data["args"])
            data["kwargs"] = redactor()(data["kwargs"])
        return data


class RedactingResults:
    """Stores a task's extended metadata with its arguments redacted, whatever the backend.

    Every backend writes results through ``store_result`` (the RPC backend overrides it; the
    others implement ``_store_result`` beneath it), so the request it is given, which carries the
    arguments ``result_extended`` stores, is replaced by a redacted copy there.
    """

    def store_result(
        self,
        task_id: Any,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        return super().store_result(  # type: ignore[misc]
            task_id, result, state, traceback, _redacted_request(request), **kwargs
        )


def _redacted_request(request: Any) -> Any:
    if request is None:
        return None
    redacted = Context(vars(request)) if hasattr(request, "__dict__") else Context(dict(request))
    redact = redactor()
    for field in ("args", "kwargs"):
        if getattr(redacted, field, None) is not None:
            setattr(redacted, field, redact(getattr(redacted, field)))
    return redacted


class RedactingRedisBackend(RedactingResults, RedisBackend):  # type: ignore[misc]
    """Celery's Redis result backend, redacting, storing a result in one round trip.

    Celery's own backend reads the stored result first (so as not to overwrite a SUCCESS with a
    late duplicate's state), then writes and publishes it in a second. Here one script does the
    three, which also leaves no gap between check and write. Results stored other than as plain
    JSON (another serializer, compression) take Celery's way.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._store_script: Any = None

    def _store_result(
        self,
        task_id: Any,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        if self.serializer != "json" or self.compression:
            # The script recognises an earlier SUCCESS only in plain JSON.
            return super()._store_result(task_id, result, state, traceback, request, **kwargs)
        meta = self._get_result_meta(
            result=result, state=state, traceback=traceback, request=request
        )
        meta["task_id"] = task_id.decode() if isinstance(task_id, bytes) else task_id
        value = self.encode(meta)
        if isinstance(value, str | bytes) and len(value) > self._MAX_STR_VALUE_SIZE:
            raise BackendStoreError(
                "value too large for Redis backend", state=state, task_id=task_id
            )
        expires = self.failure_expires if state == states.FAILURE else self.expires
        self.store_unless_succeeded(self.get_key_for_task(task_id), value, expires)
        return result

    def store_unless_succeeded(self, key: Any, value: Any, expires: int | None) -> bool:
        """Write ``value`` at ``key`` and publish it to the key's subscribers, unless the key
        already holds a SUCCESS. Returns whether it wrote."""
        return bool(self.ensure(self._run_store_script, (key, value, expires or 0)))

    def _run_store_script(self, key: Any, value: Any, expires: int) -> Any:
        if self._store_script is None:
            self._store_script = self.client.register_script(_STORE_UNLESS_SUCCEEDED)
        return self._store_script(keys=[key], args=[value, int(expires)])


@cache
def redacting_backend(backend: type[Backend]) -> type[Backend]:
    """The redacting form of a result backend class (plain Redis: the one-trip one too)."""
    if backend is RedisBackend:
        return RedactingRedisBackend
    if issubclass(backend, RedactingResults):
        return backend
    return type(f"Redacting{backend.__name__}", (RedactingResults, backend), {})


def redacted_reprs(args: Any = (), kwargs: Any = None) -> dict[str, str]:
    """``argsrepr``/``kwargsrepr`` options for sending a task whose arguments hold secrets."""
    redact = redactor()
    return {
        "argsrepr": saferepr(redact(list(args))),
        "kwargsrepr": saferepr(redact(dict(kwargs or {}))),
    }


# KEYS: the result's key (also the channel its waiters subscribe to).
# ARGV: the encoded result meta (JSON), its time to live in seconds (0: none).
_STORE_UNLESS_SUCCEEDED = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' and meta['status'] == 'SUCCESS' then
    return 0
  end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""

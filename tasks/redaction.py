"""Keep registry credentials out of everything Celery shows or stores; store results in one trip.

A job may carry ``auth`` (a registry password). Celery would otherwise show it in task events (and
so Flower), in ``inspect active`` replies and in the result backend's extended metadata. The
worker's requests are re-described with the secrets redacted, and the result backend stores only
redacted arguments.
"""

from __future__ import annotations

from typing import Any

from celery import states
from celery.backends.redis import RedisBackend
from celery.exceptions import BackendStoreError
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
    """Celery's Redis result backend, storing extended task arguments with secrets redacted.

    A result is stored in one round trip: Celery's own backend reads the stored result first (so
    as not to overwrite a SUCCESS with a late duplicate's state), then writes and publishes it in
    a second. Here one script does the three, which also leaves no gap between check and write.
    Results stored other than as plain JSON (another serializer, compression) take Celery's way.
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

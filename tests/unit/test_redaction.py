"""What Celery shows or stores of a task's arguments carries no registry password.

The result backend is built without a Redis server: redis-py connects lazily, and the one test
that stores a result replaces the backend's store with a dict (the store script itself is tested
against a real Redis in tests/integration/test_result_backend.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.app.task import Context

from config.celery_config import celery_config
from config.settings import Settings
from tasks.celery_app import ContainerizerCelery
from tasks.redaction import (
    RedactingRedisBackend,
    RedactingResults,
    _redacted_request,
    redacted_reprs,
    redacting_backend,
)
from workers.credentials import REDACTED

SECRET = "hunter2-xyzzy"
AUTH = {"username": "alice", "password": SECRET}
REFERENCE = "127.0.0.1:5001/app:1"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("redaction-test", set_as_current=False)
    app.conf.result_extended = True
    yield app
    app.close()


def pull_request(**overrides: Any) -> Context:
    fields: dict[str, Any] = {
        "id": "task-1",
        "task": "containerizer.images.pull",
        "args": [REFERENCE, AUTH],
        "kwargs": {"reference": REFERENCE, "auth": AUTH, "always_pull": True},
        "hostname": "images@host",
        "retries": 2,
        "delivery_info": {"routing_key": "images", "exchange": ""},
        **overrides,
    }
    return Context(**fields)


# --- redacted_reprs -------------------------------------------------------------------------------


def test_redacted_reprs_hide_the_password_and_keep_the_reference() -> None:
    reprs = redacted_reprs(args=[REFERENCE, AUTH], kwargs={"reference": REFERENCE, "auth": AUTH})

    assert set(reprs) == {"argsrepr", "kwargsrepr"}
    for text in reprs.values():
        assert SECRET not in text
        assert REFERENCE in text
        assert REDACTED in text
    assert "alice" in reprs["argsrepr"]  # Only secret-named fields are hidden.


def test_redacted_reprs_of_no_arguments() -> None:
    assert redacted_reprs() == {"argsrepr": "[]", "kwargsrepr": "{}"}


def test_redacted_reprs_keep_a_null_auth_visible() -> None:
    reprs = redacted_reprs(kwargs={"reference": "busybox", "auth": None})

    assert reprs["kwargsrepr"] == "{'reference': 'busybox', 'auth': None}"


def test_redacted_reprs_do_not_touch_the_arguments_sent() -> None:
    kwargs = {"reference": REFERENCE, "auth": dict(AUTH)}

    redacted_reprs(kwargs=kwargs)

    assert kwargs == {"reference": REFERENCE, "auth": AUTH}


# --- RedactingRedisBackend ------------------------------------------------------------------------


def test_the_backend_is_built_without_connecting(app: Celery) -> None:
    # Port 1 has nothing listening: construction must not try it.
    backend = RedactingRedisBackend(app=app, url=UNREACHABLE_REDIS)

    assert backend.connparams["port"] == 1


def test_extended_result_meta_of_a_redacted_request_holds_no_secret(app: Celery) -> None:
    backend = RedactingRedisBackend(app=app, url=UNREACHABLE_REDIS)
    request = pull_request()

    meta = backend._get_result_meta(
        result=None, state="SUCCESS", traceback=None, request=_redacted_request(request)
    )

    assert meta["kwargs"] == {"reference": REFERENCE, "auth": REDACTED, "always_pull": True}
    assert meta["args"] == [REFERENCE, {"username": "alice", "password": REDACTED}]
    assert meta["name"] == "containerizer.images.pull"
    assert meta["worker"] == "images@host"
    assert meta["retries"] == 2
    assert meta["queue"] == "images"
    assert meta["status"] == "SUCCESS"
    assert SECRET not in repr(meta)
    # The task itself still sees its real arguments.
    assert request.kwargs["auth"] == AUTH
    assert request.args[1] == AUTH


def test_result_meta_of_a_request_without_arguments(app: Celery) -> None:
    backend = RedactingRedisBackend(app=app, url=UNREACHABLE_REDIS)

    meta = backend._get_result_meta(
        result={"id": "x"},
        state="STARTED",
        traceback=None,
        request=pull_request(args=None, kwargs=None),
    )

    assert meta["args"] is None
    assert meta["kwargs"] is None
    assert meta["result"] == {"id": "x"}
    assert meta["date_done"] is None


def test_result_meta_without_extended_results_has_no_arguments_to_redact() -> None:
    app = Celery("plain", set_as_current=False)
    try:
        backend = RedactingRedisBackend(app=app, url=UNREACHABLE_REDIS)
        meta = backend._get_result_meta(
            result=None, state="SUCCESS", traceback=None, request=pull_request()
        )
    finally:
        app.close()

    assert "args" not in meta
    assert "kwargs" not in meta


class DictBackend(RedactingRedisBackend):
    """The redacting backend with its Redis store replaced by a dict."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored: dict[str, Any] = {}

    def store_unless_succeeded(self, key: Any, value: Any, expires: int | None) -> bool:
        self.stored[key if isinstance(key, str) else key.decode()] = value
        return True


def test_a_stored_result_holds_no_password(app: Celery) -> None:
    backend = DictBackend(app=app, url=UNREACHABLE_REDIS)

    backend.store_result(
        "task-1", {"reference": REFERENCE, "cached": False}, "SUCCESS", request=pull_request()
    )

    (key, raw), *rest = backend.stored.items()
    assert rest == []
    assert "task-1" in key
    text = raw.decode() if isinstance(raw, bytes) else raw
    assert SECRET not in text
    stored = json.loads(text)
    assert stored["kwargs"]["auth"] == REDACTED
    assert stored["kwargs"]["reference"] == REFERENCE
    assert stored["result"] == {"reference": REFERENCE, "cached": False}
    assert stored["status"] == "SUCCESS"


def test_the_configured_result_backend_is_the_redacting_one() -> None:
    app = ContainerizerCelery("configured", set_as_current=False)
    try:
        app.conf.update(celery_config(Settings(result_backend=UNREACHABLE_REDIS)))

        assert isinstance(app.backend, RedactingRedisBackend)
        assert app.backend.connparams["port"] == 1
        assert app.conf.result_extended is True
    finally:
        app.close()


@pytest.mark.parametrize("url", ["cache+memory://", "file://{tmp}"])
def test_every_result_backend_stores_redacted_arguments(url: str, tmp_path: Path) -> None:
    app = ContainerizerCelery("configured", set_as_current=False)
    try:
        app.conf.update(celery_config(Settings(result_backend=url.format(tmp=tmp_path))))
        backend = app.backend
        assert isinstance(backend, RedactingResults), type(backend)
        request = pull_request()
        request.kwargs["spec"] = {"environment": {"DB_PASSWORD": SECRET, "MODE": "fast"}}

        backend.store_result("task-2", {"ok": True}, "SUCCESS", request=request)

        raw = backend.get(backend.get_key_for_task("task-2"))
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        assert SECRET not in text and "fast" in text and REFERENCE in text
        assert backend.get_task_meta("task-2")["kwargs"]["auth"] == REDACTED
    finally:
        app.close()


def test_a_backend_class_is_wrapped_once() -> None:
    from celery.backends.cache import CacheBackend

    wrapped = redacting_backend(CacheBackend)
    assert issubclass(wrapped, RedactingResults) and issubclass(wrapped, CacheBackend)
    assert redacting_backend(wrapped) is wrapped
    assert redacting_backend(CacheBackend) is wrapped

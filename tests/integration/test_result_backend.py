"""The result backend's one-trip store (check, write, publish in one script) on a real Redis."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis
from celery import Celery, states

from config.celery_config import celery_config
from config.settings import Settings
from tasks.redaction import RedactingRedisBackend

pytestmark = pytest.mark.integration
RESULT_DB = 9  # Shared with other store-level tests; every key here is a fresh task id.


@pytest.fixture
def backend(redis_server: str) -> Iterator[RedactingRedisBackend]:
    app = Celery("result-backend-test", set_as_current=False)
    app.conf.update(
        celery_config(
            Settings(
                result_backend=f"{redis_server}/{RESULT_DB}",
                result_expires_seconds=600,
            )
        )
    )
    yield app.backend
    app.close()


@pytest.fixture
def raw(redis_server: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(f"{redis_server}/{RESULT_DB}", decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def task_id(raw: redis.Redis, backend: RedactingRedisBackend) -> Iterator[str]:
    task_id = f"result-backend-test-{uuid.uuid4()}"
    yield task_id
    raw.delete(backend.get_key_for_task(task_id).decode())


def stored(raw: redis.Redis, backend: RedactingRedisBackend, task_id: str) -> dict[str, object]:
    text = raw.get(backend.get_key_for_task(task_id).decode())
    assert text is not None
    meta: dict[str, object] = json.loads(text)
    return meta


def test_a_result_is_stored_with_its_ttl_and_published(
    backend: RedactingRedisBackend, raw: redis.Redis, task_id: str
) -> None:
    key = backend.get_key_for_task(task_id).decode()
    pubsub = raw.pubsub()
    pubsub.subscribe(key)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]

    backend.store_result(task_id, {"id": "abc"}, states.SUCCESS)

    message = pubsub.get_message(timeout=2)
    pubsub.close()
    assert message is not None and message["type"] == "message"
    assert json.loads(message["data"])["result"] == {"id": "abc"}
    assert stored(raw, backend, task_id)["status"] == states.SUCCESS
    assert 590 <= raw.ttl(key) <= 600
    # What a caller's AsyncResult reads back.
    assert backend.get_task_meta(task_id)["result"] == {"id": "abc"}


def test_progress_is_overwritten_by_success(
    backend: RedactingRedisBackend, raw: redis.Redis, task_id: str
) -> None:
    backend.store_result(task_id, {"bytes_done": 1}, "PROGRESS")
    assert stored(raw, backend, task_id)["status"] == "PROGRESS"

    backend.store_result(task_id, {"id": "abc"}, states.SUCCESS)

    assert stored(raw, backend, task_id)["status"] == states.SUCCESS


def test_a_success_is_never_overwritten(
    backend: RedactingRedisBackend, raw: redis.Redis, task_id: str
) -> None:
    backend.store_result(task_id, {"id": "first"}, states.SUCCESS)

    # A late duplicate of the task (redelivered after a lost worker) reports again.
    backend.store_result(task_id, ValueError("late"), states.FAILURE)
    backend.store_result(task_id, {"bytes_done": 2}, "PROGRESS")

    meta = stored(raw, backend, task_id)
    assert meta["status"] == states.SUCCESS
    assert meta["result"] == {"id": "first"}


def test_a_failure_uses_the_failure_expiry(
    backend: RedactingRedisBackend, raw: redis.Redis, task_id: str
) -> None:
    backend.failure_expires = 30

    backend.store_result(task_id, ValueError("boom"), states.FAILURE)

    assert stored(raw, backend, task_id)["status"] == states.FAILURE
    assert 0 < raw.ttl(backend.get_key_for_task(task_id).decode()) <= 30

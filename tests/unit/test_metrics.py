"""Metrics: histogram fields, counters, and the per-process buffer, over a fake Redis pipeline."""

from __future__ import annotations

import time
from typing import Any

import redis

from workers.keys import Keys
from workers.metrics import SECONDS_BUCKETS, Metrics

KEYS = Keys("t:", "h1")


class FakePipeline:
    def __init__(self, store: FakeRedis) -> None:
        self.store = store
        self.commands: list[tuple[str, str, str, float]] = []

    def hincrby(self, key: str, field: str, amount: int) -> None:
        assert isinstance(amount, int)
        self.commands.append(("hincrby", key, field, amount))

    def hincrbyfloat(self, key: str, field: str, amount: float) -> None:
        self.commands.append(("hincrbyfloat", key, field, amount))

    def execute(self) -> list[Any]:
        if self.store.down:
            raise redis.ConnectionError("down")
        self.store.pipelines.append(self.commands)
        for _, key, field, amount in self.commands:
            hash_ = self.store.hashes.setdefault(key, {})
            hash_[field] = hash_.get(field, 0) + amount
        return []


class FakeRedis:
    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, float]] = {}
        self.pipelines: list[list[Any]] = []
        self.down = False

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)

    def hgetall(self, key: str) -> dict[str, str]:
        return {field: str(value) for field, value in self.hashes.get(key, {}).items()}


def metrics(flush_seconds: float | None = None) -> tuple[Metrics, FakeRedis]:
    store = FakeRedis()
    return Metrics(store, KEYS, flush_seconds=flush_seconds), store  # type: ignore[arg-type]


def test_an_observation_lands_in_every_bucket_it_fits_and_in_sum_and_count() -> None:
    recorder, _ = metrics()
    recorder.observe("task_duration_seconds", 0.3, "containerizer.containers.run")
    data = recorder.histogram("task_duration_seconds")["containerizer.containers.run"]
    assert data.count == 1 and data.total == 0.3
    assert [count for bound, count in data.buckets if bound < 0.3] == [0] * 6
    assert all(count == 1 for bound, count in data.buckets if bound >= 0.3)
    assert len(data.buckets) == len(SECONDS_BUCKETS) + 1


def test_without_a_buffer_each_observation_is_one_pipeline() -> None:
    recorder, store = metrics()
    recorder.observe("x", 1.0)
    recorder.increment("exits:oom")
    assert len(store.pipelines) == 2
    assert recorder.counters() == {"exits:oom": 1.0}


def test_buffered_observations_are_added_up_and_written_in_one_pipeline() -> None:
    recorder, store = metrics(flush_seconds=3600)
    for _ in range(100):
        recorder.observe("x", 0.02, "a")
        recorder.increment("c", 2)
    assert store.pipelines == []  # Nothing written before the flush.
    recorder.flush()
    [pipeline] = store.pipelines
    assert len(pipeline) == len({(key, field) for _, key, field, _ in pipeline})  # Summed.
    assert recorder.histogram("x")["a"].count == 100
    assert recorder.counters() == {"c": 200.0}


def test_what_redis_cannot_take_is_written_with_the_next_flush() -> None:
    recorder, store = metrics(flush_seconds=3600)
    recorder.observe("x", 1.0)
    store.down = True
    recorder.flush()  # Logged, kept.
    recorder.observe("x", 2.0)
    store.down = False
    recorder.flush()
    data = recorder.histogram("x")[""]
    assert (data.count, data.total) == (2, 3.0)


def test_the_flusher_thread_writes_on_its_own() -> None:
    recorder, store = metrics(flush_seconds=0.05)
    recorder.increment("c")
    deadline = time.monotonic() + 5
    while not store.pipelines and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.counters() == {"c": 1.0}

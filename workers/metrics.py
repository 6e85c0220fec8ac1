"""Metrics recorded in Redis, so that every process of every worker adds to the same figures.

Workers observe durations into Redis-backed histograms (cumulative buckets, as Prometheus wants
them) and bump counters; the metrics endpoint (:mod:`tasks.metrics_server`) reads them, and the
gauges it derives from the state store, at scrape time.

A worker's observations are added up in its memory and written once a second (``flush_seconds``)
in one pipeline, not one pipeline of ~20 commands per task: a tenth of a task's Redis work. A
process that exits writes what it holds; one killed with SIGKILL loses at most its last second of
observations. What Redis cannot take now is kept and written with the next flush.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from workers.keys import Keys

log = logging.getLogger(__name__)

SECONDS_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)


@dataclass(frozen=True)
class HistogramData:
    """One label value's histogram: cumulative counts per upper bound, sum and count."""

    buckets: list[tuple[float, int]]
    total: float
    count: int


class Metrics:
    """Records observations in Redis. Never raises: metrics must not fail the work they measure.

    With ``flush_seconds``, observations are buffered and written by a thread of this process
    that every interval (and once at exit) sends them in one pipeline; without, each is written
    at once.
    """

    def __init__(
        self, client: redis.Redis, keys: Keys, *, flush_seconds: float | None = None
    ) -> None:
        self.redis = client
        self.keys = keys
        self.flush_seconds = flush_seconds
        # (hash key, field) -> amount still to add; ints for bucket counts, floats for the rest.
        self._pending: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._flusher: threading.Thread | None = None

    def on(self, host: str) -> Metrics:
        """The metrics of another host (for the endpoint, which serves every host)."""
        return Metrics(self.redis, self.keys.on(host))

    def observe(
        self, name: str, value: float, label: str = "", buckets: Sequence[float] = SECONDS_BUCKETS
    ) -> None:
        """Add one observation to histogram ``name`` (for one label value)."""
        key = self.keys.metrics_histogram(name)
        adds = [(key, f"{label}|{_bound(b)}", 1.0) for b in (*buckets, math.inf) if value <= b]
        adds += [(key, f"{label}|sum", float(value)), (key, f"{label}|count", 1.0)]
        self._add(adds, name)

    def increment(self, name: str, amount: float = 1) -> None:
        """Add to counter ``name``."""
        self._add([(self.keys.metrics_counters(), name, float(amount))], name)

    def flush(self) -> None:
        """Write what is buffered now (one pipeline); kept for the next flush if Redis fails."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            self._write(pending, "buffered metrics")

    def _add(self, adds: list[tuple[str, str, float]], name: str) -> None:
        if self.flush_seconds is None:
            self._write({(key, field): amount for key, field, amount in adds}, name)
            return
        with self._lock:
            for key, field, amount in adds:
                self._pending[key, field] = self._pending.get((key, field), 0.0) + amount
            if self._flusher is None:
                self._start_flusher()

    def _write(self, pending: dict[tuple[str, str], float], what: str) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            for (key, field), amount in pending.items():
                if field.endswith("|sum") or key == self.keys.metrics_counters():
                    pipe.hincrbyfloat(key, field, amount)
                else:
                    pipe.hincrby(key, field, int(amount))
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("metric %s not recorded yet: %s", what, exc)
            if self.flush_seconds is not None:
                with self._lock:  # Kept for the next flush.
                    for entry, amount in pending.items():
                        self._pending[entry] = self._pending.get(entry, 0.0) + amount

    def _start_flusher(self) -> None:
        """Called with the lock held, on the first buffered observation of this process (after
        a fork, in the child: a thread does not survive a fork)."""
        interval = self.flush_seconds or 1.0

        def flush_forever() -> None:
            while True:
                time.sleep(interval)
                self.flush()

        self._flusher = threading.Thread(target=flush_forever, name="metrics", daemon=True)
        self._flusher.start()
        atexit.register(self.flush)

    def restarts(self) -> dict[str, float]:
        """How often ``up`` restarted each of this host's processes."""
        raw = self.redis.hgetall(self.keys.restarts())
        return {str(name): float(value) for name, value in raw.items()}

    def counters(self) -> dict[str, float]:
        raw = self.redis.hgetall(self.keys.metrics_counters())
        return {str(name): float(value) for name, value in raw.items()}

    def histogram(
        self, name: str, buckets: Sequence[float] = SECONDS_BUCKETS
    ) -> dict[str, HistogramData]:
        """Every label value's histogram of ``name``."""
        raw = {str(k): v for k, v in self.redis.hgetall(self.keys.metrics_histogram(name)).items()}
        labels = {field.rsplit("|", 1)[0] for field in raw}
        result = {}
        for label in labels:
            counts = [
                (bound, int(raw.get(f"{label}|{_bound(bound)}", 0)))
                for bound in (*buckets, math.inf)
            ]
            result[label] = HistogramData(
                buckets=counts,
                total=float(raw.get(f"{label}|sum", 0.0)),
                count=int(raw.get(f"{label}|count", 0)),
            )
        return result


def _bound(value: float) -> str:
    return "+Inf" if math.isinf(value) else repr(float(value))

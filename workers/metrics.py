"""Metrics recorded in Redis, so that every process of every worker adds to the same figures.

Workers observe durations into Redis-backed histograms (cumulative buckets, as Prometheus wants
them) and bump counters; the metrics endpoint (:mod:`tasks.metrics_server`) reads them, and the
gauges it derives from the state store, at scrape time. Nothing is kept in process memory, so a
prefork pool or a restart loses nothing.
"""

from __future__ import annotations

import logging
import math
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
    """Records observations in Redis. Never raises: metrics must not fail the work they measure."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def on(self, host: str) -> Metrics:
        """The metrics of another host (for the endpoint, which serves every host)."""
        return Metrics(self.redis, self.keys.on(host))

    def observe(
        self, name: str, value: float, label: str = "", buckets: Sequence[float] = SECONDS_BUCKETS
    ) -> None:
        """Add one observation to histogram ``name`` (for one label value)."""
        key = self.keys.metrics_histogram(name)
        try:
            pipe = self.redis.pipeline(transaction=False)
            for bound in (*buckets, math.inf):
                if value <= bound:
                    pipe.hincrby(key, f"{label}|{_bound(bound)}", 1)
            pipe.hincrbyfloat(key, f"{label}|sum", value)
            pipe.hincrby(key, f"{label}|count", 1)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("metric %s not recorded: %s", name, exc)

    def increment(self, name: str, amount: float = 1) -> None:
        """Add to counter ``name``."""
        try:
            self.redis.hincrbyfloat(self.keys.metrics_counters(), name, amount)
        except redis.RedisError as exc:
            log.warning("metric %s not recorded: %s", name, exc)

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

"""The Prometheus endpoint (``containerizer metrics``; `up` runs it on 127.0.0.1:9808).

Everything is read from Redis at scrape time: gauges from the state store and the image cache,
histograms and counters that every worker process records there (:mod:`workers.metrics`). The
figures therefore add up across processes and survive restarts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from config.settings import Settings
from workers.image_cache import ImageCache
from workers.maintenance import summary
from workers.metrics import Metrics
from workers.state import StateStore

HISTOGRAMS = {
    "container_startup_seconds": ("Time to start a container (the start API call).", None),
    "task_duration_seconds": ("Duration of containerizer tasks, by task.", "task"),
    "image_pull_seconds": ("Duration of image pulls that reached a registry.", None),
    "stats_sweep_seconds": ("Duration of a collect_stats sweep.", None),
}


class ContainerizerCollector(Collector):
    """Reads every figure from Redis when Prometheus scrapes."""

    def __init__(
        self, state: StateStore, cache: ImageCache, metrics: Metrics, settings: Settings
    ) -> None:
        self.state = state
        self.cache = cache
        self.metrics = metrics
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        current = summary(self.state, self.cache, self.settings)
        containers = GaugeMetricFamily(
            "containerizer_containers", "Managed containers by status.", labels=["status"]
        )
        for status, count in current["containers"].items():
            if status not in ("total", "stopped"):
                containers.add_metric([status], count)
        yield containers
        images = current["images"]
        yield GaugeMetricFamily(
            "containerizer_image_cache_bytes",
            "Bytes of the images the service pulled, each layer counted once.",
            value=images["cache_bytes"],
        )
        yield GaugeMetricFamily(
            "containerizer_image_cache_budget_bytes",
            "Byte budget of the image cache.",
            value=images["budget_bytes"],
        )
        yield GaugeMetricFamily(
            "containerizer_image_cache_images", "Images in the cache.", value=images["cached"]
        )
        yield CounterMetricFamily(
            "containerizer_image_cache_hits",
            "Pull requests answered by the host's images.",
            value=images["hits"],
        )
        yield CounterMetricFamily(
            "containerizer_image_cache_misses",
            "Pull requests that reached a registry.",
            value=images["misses"],
        )
        restarts = CounterMetricFamily(
            "containerizer_service_restarts",
            "Restarts of the service's processes by `containerizer up`.",
            labels=["service"],
        )
        for service, count in sorted(self.metrics.restarts().items()):
            restarts.add_metric([service], count)
        yield restarts
        counters = self.metrics.counters()
        yield CounterMetricFamily(
            "containerizer_evicted_images",
            "Images evicted from the cache.",
            value=counters.get("evicted_images_total", 0.0),
        )
        yield CounterMetricFamily(
            "containerizer_evicted_bytes",
            "Bytes freed by eviction.",
            value=counters.get("evicted_bytes_total", 0.0),
        )
        for name, (documentation, label) in HISTOGRAMS.items():
            family = HistogramMetricFamily(
                f"containerizer_{name}", documentation, labels=[label] if label else None
            )
            for value, data in sorted(self.metrics.histogram(name).items()):
                family.add_metric(
                    [value] if label else [],
                    [(_bound(bound), count) for bound, count in data.buckets],
                    data.total,
                )
            yield family


def _bound(value: float) -> str:
    return "+Inf" if math.isinf(value) else repr(value)

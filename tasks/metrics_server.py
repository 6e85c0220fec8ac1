"""The Prometheus endpoint (``containerizer metrics``; `up` runs it on 127.0.0.1:9808).

Everything is read from Redis at scrape time: gauges from the state store and the image caches,
histograms and counters that every worker process of every host records there
(:mod:`workers.metrics`). The figures therefore add up across processes, survive restarts, and
cover every host of the deployment: each carries a ``host`` label, so one endpoint serves the
cluster.
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
from workers.hosts import HostRegistry
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
_CACHE_GAUGES = (
    (
        "image_cache_bytes",
        "cache_bytes",
        "Bytes of the images the service pulled, each layer once.",
    ),
    ("image_cache_budget_bytes", "budget_bytes", "Byte budget of the image cache."),
    ("image_cache_images", "cached", "Images in the cache."),
)
_COUNTERS = (
    ("image_cache_hits", "Pull requests answered by the host's images."),
    ("image_cache_misses", "Pull requests that reached a registry."),
)
_METRIC_COUNTERS = (
    ("evicted_images", "evicted_images_total", "Images evicted from the cache."),
    ("evicted_bytes", "evicted_bytes_total", "Bytes freed by eviction."),
)


class ContainerizerCollector(Collector):
    """Reads every figure of every host from Redis when Prometheus scrapes."""

    def __init__(
        self,
        state: StateStore,
        cache: ImageCache,
        metrics: Metrics,
        settings: Settings,
        hosts: HostRegistry,
    ) -> None:
        self.state = state
        self.cache = cache
        self.metrics = metrics
        self.settings = settings
        self.hosts = hosts

    def collect(self) -> Iterator[Metric]:
        names = self.hosts.names() or [self.settings.host_name]
        current = summary(self.state, self.cache, self.settings, names)["hosts"]
        containers = GaugeMetricFamily(
            "containerizer_containers", "Managed containers by status.", labels=["host", "status"]
        )
        for host, part in current.items():
            for status, count in part["containers"].items():
                if status not in ("total", "stopped", "oom_killed"):
                    containers.add_metric([host, status], count)
        yield containers
        for name, field, documentation in _CACHE_GAUGES:
            gauge = GaugeMetricFamily(f"containerizer_{name}", documentation, labels=["host"])
            for host, part in current.items():
                gauge.add_metric([host], part["images"][field])
            yield gauge
        for name, documentation in _COUNTERS:
            counter = CounterMetricFamily(f"containerizer_{name}", documentation, labels=["host"])
            for host, part in current.items():
                counter.add_metric([host], part["images"][name.rsplit("_", 1)[1]])
            yield counter
        per_host = {host: self.metrics.on(host) for host in names}
        yield from self._counters(per_host)
        yield from self._histograms(per_host)

    def _counters(self, per_host: dict[str, Metrics]) -> Iterator[Metric]:
        values = {host: metrics.counters() for host, metrics in per_host.items()}
        for name, key, documentation in _METRIC_COUNTERS:
            counter = CounterMetricFamily(f"containerizer_{name}", documentation, labels=["host"])
            for host, counters in values.items():
                counter.add_metric([host], counters.get(key, 0.0))
            yield counter
        exits = CounterMetricFamily(
            "containerizer_container_exits",
            "Exits of managed containers, by reason (completed, failed, signaled, oom).",
            labels=["host", "reason"],
        )
        for host, counters in values.items():
            for key, value in sorted(counters.items()):
                if key.startswith("container_exits_total:"):
                    exits.add_metric([host, key.split(":", 1)[1]], value)
        yield exits
        restarts = CounterMetricFamily(
            "containerizer_service_restarts",
            "Restarts of the service's processes by `containerizer up`.",
            labels=["host", "service"],
        )
        for host, metrics in per_host.items():
            for service, count in sorted(metrics.restarts().items()):
                restarts.add_metric([host, service], count)
        yield restarts

    def _histograms(self, per_host: dict[str, Metrics]) -> Iterator[Metric]:
        for name, (documentation, label) in HISTOGRAMS.items():
            family = HistogramMetricFamily(
                f"containerizer_{name}",
                documentation,
                labels=["host", label] if label else ["host"],
            )
            for host, metrics in per_host.items():
                for value, data in sorted(metrics.histogram(name).items()):
                    family.add_metric(
                        [host, value] if label else [host],
                        [(_bound(bound), count) for bound, count in data.buckets],
                        data.total,
                    )
            yield family


def _bound(value: float) -> str:
    return "+Inf" if math.isinf(value) else repr(value)

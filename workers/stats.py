"""ResourceUsage from one-shot Docker stats.

A one-shot sample (``one_shot=True``) answers at once but carries no previous CPU reading, so CPU %
is computed against the previous sample the service kept (Redis). Without one, CPU % is the average
since the container started, which needs no second sample either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from workers.models import parse_docker_time

LIFETIME_MIN_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class CpuSample:
    """The CPU counters of one stats sample."""

    container_ns: int
    system_ns: int
    online_cpus: int
    read_at: float  # seconds since the epoch

    def as_mapping(self) -> dict[Any, str]:
        """For a Redis hash."""
        return {key: str(value) for key, value in asdict(self).items()}

    @classmethod
    def from_mapping(cls, data: Mapping[Any, Any]) -> CpuSample | None:
        """From a Redis hash; None when absent or unreadable."""
        try:
            return cls(
                container_ns=int(data["container_ns"]),
                system_ns=int(data["system_ns"]),
                online_cpus=int(data["online_cpus"]),
                read_at=float(data["read_at"]),
            )
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class ResourceUsage:
    """The public stats result (DESIGN.md). Bytes are bytes; cpu_percent is 100 per busy CPU."""

    cpu_percent: float
    memory_usage: int
    memory_limit: int
    network_rx_bytes: int
    network_tx_bytes: int
    block_read: int
    block_write: int
    pids: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def cpu_sample(raw: dict[str, Any]) -> CpuSample:
    """The CPU counters of a raw stats document."""
    cpu = raw.get("cpu_stats") or {}
    usage = cpu.get("cpu_usage") or {}
    online = cpu.get("online_cpus") or len(usage.get("percpu_usage") or []) or 1
    return CpuSample(
        container_ns=int(usage.get("total_usage") or 0),
        system_ns=int(cpu.get("system_cpu_usage") or 0),
        online_cpus=int(online),
        read_at=_read_at(raw),
    )


def cpu_percent(
    current: CpuSample, previous: CpuSample | None, started_at: datetime | None = None
) -> float:
    """CPU use between two samples, as Docker's CLI computes it (100 % = one busy CPU).

    Without a usable previous sample, the average since ``started_at`` (0.0 if that is unknown,
    or if the container has run for less than ``LIFETIME_MIN_SECONDS``).
    """
    if previous is not None:
        container_delta = current.container_ns - previous.container_ns
        system_delta = current.system_ns - previous.system_ns
        if container_delta >= 0 and system_delta > 0:
            return round(container_delta / system_delta * current.online_cpus * 100.0, 2)
    if started_at is not None:
        elapsed_ns = (current.read_at - started_at.timestamp()) * 1e9
        # In its first second a container's average is mostly the runtime's start-up CPU.
        if elapsed_ns >= LIFETIME_MIN_SECONDS * 1e9:
            # The runtime's own start-up CPU is charged before StartedAt: clamp to the machine.
            average = current.container_ns / elapsed_ns * 100.0
            return round(min(average, current.online_cpus * 100.0), 2)
    return 0.0


def memory_usage(raw: dict[str, Any]) -> tuple[int, int]:
    """(usage net of page cache, limit). cgroup v1 reports ``cache``, v2 ``inactive_file``."""
    memory = raw.get("memory_stats") or {}
    usage = int(memory.get("usage") or 0)
    detail = memory.get("stats") or {}
    if "total_inactive_file" in detail:
        cache = int(detail["total_inactive_file"])
    elif "inactive_file" in detail:
        cache = int(detail["inactive_file"])
    else:
        cache = int(detail.get("cache") or 0)
    return max(usage - cache, 0), int(memory.get("limit") or 0)


def resource_usage(
    raw: dict[str, Any], previous: CpuSample | None, started_at: datetime | None = None
) -> ResourceUsage:
    """Compute ResourceUsage from a raw one-shot stats document."""
    used, limit = memory_usage(raw)
    networks = raw.get("networks") or {}
    block_read = block_write = 0
    for entry in (raw.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            block_read += int(entry.get("value") or 0)
        elif op == "write":
            block_write += int(entry.get("value") or 0)
    return ResourceUsage(
        cpu_percent=cpu_percent(cpu_sample(raw), previous, started_at),
        memory_usage=used,
        memory_limit=limit,
        network_rx_bytes=sum(int(n.get("rx_bytes") or 0) for n in networks.values()),
        network_tx_bytes=sum(int(n.get("tx_bytes") or 0) for n in networks.values()),
        block_read=block_read,
        block_write=block_write,
        pids=int((raw.get("pids_stats") or {}).get("current") or 0),
    )


def _read_at(raw: dict[str, Any]) -> float:
    read = raw.get("read")
    if isinstance(read, str) and not read.startswith("0001-01-01"):
        return parse_docker_time(read).timestamp()
    return 0.0


def usage_alerts(usage: ResourceUsage, *, cpu_percent: float, memory_percent: float) -> list[str]:
    """Which thresholds a sample is above: ``cpu`` and/or ``memory`` (of the memory limit)."""
    alerts = []
    if usage.cpu_percent > cpu_percent:
        alerts.append("cpu")
    if usage.memory_limit and usage.memory_usage / usage.memory_limit * 100.0 > memory_percent:
        alerts.append("memory")
    return alerts

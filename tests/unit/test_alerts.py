"""usage_alerts: which thresholds one stats sample is above."""

from __future__ import annotations

import pytest

from workers.stats import ResourceUsage, usage_alerts

MiB = 1024 * 1024


def usage(cpu: float = 0.0, memory: int = 0, limit: int = 0) -> ResourceUsage:
    return ResourceUsage(
        cpu_percent=cpu,
        memory_usage=memory,
        memory_limit=limit,
        network_rx_bytes=0,
        network_tx_bytes=0,
        block_read=0,
        block_write=0,
        pids=1,
    )


def alerts(sample: ResourceUsage, cpu: float = 80.0, memory: float = 90.0) -> list[str]:
    return usage_alerts(sample, cpu_percent=cpu, memory_percent=memory)


@pytest.mark.parametrize(
    ("cpu", "expected"),
    [
        (0.0, []),
        (79.99, []),
        (80.0, []),  # At the threshold is not above it.
        (80.01, ["cpu"]),
        (350.0, ["cpu"]),  # 100 per busy CPU: several CPUs can exceed 100.
    ],
)
def test_cpu_above_below_and_at_the_threshold(cpu: float, expected: list[str]) -> None:
    assert alerts(usage(cpu=cpu, memory=MiB, limit=1024 * MiB)) == expected


def test_the_cpu_threshold_is_the_one_given() -> None:
    sample = usage(cpu=150.0)

    assert alerts(sample, cpu=200.0) == []
    assert alerts(sample, cpu=100.0) == ["cpu"]


@pytest.mark.parametrize(
    ("memory", "limit", "expected"),
    [
        (0, 1000 * MiB, []),
        (899 * MiB, 1000 * MiB, []),
        (900 * MiB, 1000 * MiB, []),  # Exactly 90 %: not above.
        (901 * MiB, 1000 * MiB, ["memory"]),
        (1000 * MiB, 1000 * MiB, ["memory"]),
        (950, 1000, ["memory"]),
    ],
)
def test_memory_is_a_percent_of_the_limit(memory: int, limit: int, expected: list[str]) -> None:
    assert alerts(usage(memory=memory, limit=limit)) == expected


def test_memory_is_judged_against_the_limit_not_in_absolute_bytes() -> None:
    # The same usage alerts under a small limit and not under a large one.
    assert alerts(usage(memory=60 * MiB, limit=64 * MiB)) == ["memory"]
    assert alerts(usage(memory=60 * MiB, limit=8192 * MiB)) == []


def test_the_memory_threshold_is_the_one_given() -> None:
    sample = usage(memory=500, limit=1000)

    assert alerts(sample, memory=50.0) == []
    assert alerts(sample, memory=49.9) == ["memory"]


@pytest.mark.parametrize("memory", [0, 1, 10**12])
def test_a_zero_limit_never_alerts_on_memory(memory: int) -> None:
    assert alerts(usage(memory=memory, limit=0), memory=1.0) == []


def test_both_alerts_cpu_first() -> None:
    assert alerts(usage(cpu=99.0, memory=999, limit=1000)) == ["cpu", "memory"]


def test_neither_alert() -> None:
    assert alerts(usage(cpu=10.0, memory=100, limit=1000)) == []

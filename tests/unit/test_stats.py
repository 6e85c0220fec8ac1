"""CPU %, memory and I/O from Docker's one-shot stats documents."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workers.stats import (
    CpuSample,
    ResourceUsage,
    cpu_percent,
    cpu_sample,
    memory_usage,
    resource_usage,
)

READ = "2024-05-01T12:00:10.123456789Z"
READ_EPOCH = datetime(2024, 5, 1, 12, 0, 10, 123456, tzinfo=UTC).timestamp()


def cgroup_v1_stats() -> dict[str, Any]:
    """A one-shot sample as dockerd on cgroup v1 sends it (precpu_stats empty with one_shot)."""
    return {
        "read": READ,
        "preread": "0001-01-01T00:00:00Z",
        "pids_stats": {"current": 7, "limit": 4096},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 4096},
                {"major": 8, "minor": 0, "op": "Write", "value": 8192},
                {"major": 8, "minor": 0, "op": "Sync", "value": 12288},
                {"major": 8, "minor": 0, "op": "Async", "value": 0},
                {"major": 8, "minor": 0, "op": "Discard", "value": 0},
                {"major": 8, "minor": 0, "op": "Total", "value": 12288},
                {"major": 8, "minor": 16, "op": "Read", "value": 1000},
                {"major": 8, "minor": 16, "op": "Write", "value": 24},
            ],
            "io_serviced_recursive": [],
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": {
            "cpu_usage": {
                "total_usage": 2_500_000_000,
                "percpu_usage": [1_500_000_000, 1_000_000_000],
                "usage_in_kernelmode": 100_000_000,
                "usage_in_usermode": 2_400_000_000,
            },
            "system_cpu_usage": 100_000_000_000,
            "online_cpus": 2,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        },
        "precpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
        "memory_stats": {
            "usage": 50_000_000,
            "max_usage": 60_000_000,
            "stats": {
                "active_anon": 10_000_000,
                "cache": 20_000_000,
                "rss": 28_000_000,
                "inactive_file": 5_000_000,
                "total_inactive_file": 15_000_000,
                "total_cache": 20_000_000,
            },
            "limit": 536_870_912,
        },
        "name": "/web",
        "id": "f" * 64,
        "networks": {
            "eth0": {"rx_bytes": 1000, "rx_packets": 10, "tx_bytes": 300, "tx_packets": 3},
            "eth1": {"rx_bytes": 24, "rx_packets": 1, "tx_bytes": 76, "tx_packets": 1},
        },
    }


def cgroup_v2_stats() -> dict[str, Any]:
    """The same container on cgroup v2: lowercase blkio ops, inactive_file, no percpu_usage."""
    return {
        "read": READ,
        "preread": "0001-01-01T00:00:00Z",
        "pids_stats": {"current": 3, "limit": 4915},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 259, "minor": 0, "op": "read", "value": 500},
                {"major": 259, "minor": 0, "op": "write", "value": 700},
                {"major": 259, "minor": 1, "op": "read", "value": 5},
            ]
        },
        "cpu_stats": {
            "cpu_usage": {
                "total_usage": 1_000_000_000,
                "usage_in_kernelmode": 0,
                "usage_in_usermode": 1_000_000_000,
            },
            "system_cpu_usage": 200_000_000_000,
            "online_cpus": 4,
        },
        "memory_stats": {
            "usage": 30_000_000,
            "stats": {"anon": 20_000_000, "file": 9_000_000, "inactive_file": 4_000_000},
            "limit": 1_073_741_824,
        },
        "networks": {"eth0": {"rx_bytes": 10, "tx_bytes": 20}},
    }


def sample(container_ns: float, system_ns: float, cpus: int = 2, read_at: float = 0.0) -> CpuSample:
    return CpuSample(int(container_ns), int(system_ns), cpus, read_at)


# --- cpu_percent ----------------------------------------------------------------------------


def test_cpu_percent_against_the_previous_sample() -> None:
    previous = sample(1e9, 10e9)
    current = sample(1.5e9, 12e9)
    assert cpu_percent(current, previous) == 50.0


def test_cpu_percent_scales_with_online_cpus_of_the_current_sample() -> None:
    assert cpu_percent(sample(2e9, 4e9, cpus=4), sample(1e9, 2e9, cpus=4)) == 200.0
    assert cpu_percent(sample(1e9, 3e9, cpus=1), sample(0, 0, cpus=1)) == 33.33


def test_cpu_percent_previous_sample_wins_over_started_at() -> None:
    started = datetime.fromtimestamp(1000.0, UTC)
    current = sample(1.5e9, 12e9, read_at=1010.0)
    assert cpu_percent(current, sample(1e9, 10e9), started) == 50.0


def test_cpu_percent_idle_is_zero() -> None:
    assert cpu_percent(sample(1e9, 12e9), sample(1e9, 10e9)) == 0.0


def test_cpu_percent_without_previous_is_lifetime_average() -> None:
    started = datetime.fromtimestamp(1000.0, UTC)
    # 2.5 s of CPU over 10 s of life: 25 %.
    assert cpu_percent(sample(2.5e9, 0, read_at=1010.0), None, started) == 25.0


def test_lifetime_average_is_clamped_to_the_machine() -> None:
    started = datetime.fromtimestamp(1000.0, UTC)
    # 30 s of CPU in 10 s on 2 CPUs is impossible (start-up CPU charged before StartedAt).
    assert cpu_percent(sample(30e9, 0, cpus=2, read_at=1010.0), None, started) == 200.0


def test_lifetime_average_needs_a_second_of_life() -> None:
    started = datetime.fromtimestamp(1000.0, UTC)
    # 5 ms of start-up CPU in 10 ms of life is 50 %, but says nothing about the workload.
    assert cpu_percent(sample(5e6, 0, read_at=1000.01), None, started) == 0.0
    assert cpu_percent(sample(1e9, 0, read_at=1001.0), None, started) == 100.0


def test_cpu_percent_is_zero_with_neither() -> None:
    assert cpu_percent(sample(5e9, 10e9), None) == 0.0
    assert cpu_percent(sample(5e9, 10e9), None, None) == 0.0


def test_started_after_the_read_gives_zero() -> None:
    started = datetime.fromtimestamp(2000.0, UTC)
    assert cpu_percent(sample(5e9, 10e9, read_at=1000.0), None, started) == 0.0


def test_negative_container_delta_falls_back_to_lifetime_average() -> None:
    # The container restarted: its counter went back to (nearly) zero.
    started = datetime.fromtimestamp(1000.0, UTC)
    current = sample(1e9, 20e9, read_at=1004.0)
    previous = sample(50e9, 10e9)
    assert cpu_percent(current, previous, started) == 25.0
    assert cpu_percent(current, previous) == 0.0


def test_non_positive_system_delta_falls_back() -> None:
    started = datetime.fromtimestamp(1000.0, UTC)
    current = sample(2e9, 10e9, read_at=1010.0)
    assert cpu_percent(current, sample(1e9, 10e9), started) == 20.0
    assert cpu_percent(current, sample(1e9, 11e9), started) == 20.0
    assert cpu_percent(current, sample(1e9, 11e9)) == 0.0


# --- samples --------------------------------------------------------------------------------


def test_cpu_sample_of_a_raw_document() -> None:
    assert cpu_sample(cgroup_v1_stats()) == CpuSample(
        container_ns=2_500_000_000,
        system_ns=100_000_000_000,
        online_cpus=2,
        read_at=pytest.approx(READ_EPOCH, abs=1e-3),
    )


def test_cpu_sample_online_cpus_falls_back_to_percpu_then_one() -> None:
    raw = cgroup_v1_stats()
    del raw["cpu_stats"]["online_cpus"]
    assert cpu_sample(raw).online_cpus == 2
    raw = cgroup_v2_stats()
    del raw["cpu_stats"]["online_cpus"]
    assert cpu_sample(raw).online_cpus == 1


def test_cpu_sample_of_an_empty_document() -> None:
    assert cpu_sample({}) == CpuSample(0, 0, 1, 0.0)
    assert cpu_sample({"read": "0001-01-01T00:00:00Z"}).read_at == 0.0


def test_cpu_sample_round_trips_through_a_mapping() -> None:
    original = CpuSample(container_ns=123, system_ns=456_000_000_000, online_cpus=8, read_at=1.25)
    mapping = original.as_mapping()
    assert mapping == {
        "container_ns": "123",
        "system_ns": "456000000000",
        "online_cpus": "8",
        "read_at": "1.25",
    }
    assert CpuSample.from_mapping(mapping) == original


@pytest.mark.parametrize(
    "mapping",
    [
        {},
        {"container_ns": "1", "system_ns": "2", "online_cpus": "3"},
        {"container_ns": "x", "system_ns": "2", "online_cpus": "3", "read_at": "4"},
        {"container_ns": "1.5", "system_ns": "2", "online_cpus": "3", "read_at": "4"},
    ],
)
def test_cpu_sample_from_unreadable_mapping_is_none(mapping: dict[str, str]) -> None:
    assert CpuSample.from_mapping(mapping) is None


# --- memory ---------------------------------------------------------------------------------


def test_memory_usage_prefers_total_inactive_file() -> None:
    assert memory_usage(cgroup_v1_stats()) == (50_000_000 - 15_000_000, 536_870_912)


def test_memory_usage_cgroup_v2_subtracts_inactive_file() -> None:
    assert memory_usage(cgroup_v2_stats()) == (26_000_000, 1_073_741_824)


def test_memory_usage_old_cgroup_v1_subtracts_cache() -> None:
    raw = {"memory_stats": {"usage": 40_000_000, "stats": {"cache": 15_000_000}, "limit": 100}}
    assert memory_usage(raw) == (25_000_000, 100)


def test_memory_usage_never_negative_and_empty() -> None:
    raw = {"memory_stats": {"usage": 10, "stats": {"inactive_file": 20}, "limit": 5}}
    assert memory_usage(raw) == (0, 5)
    assert memory_usage({}) == (0, 0)
    assert memory_usage({"memory_stats": {}}) == (0, 0)


# --- resource_usage -------------------------------------------------------------------------


def test_resource_usage_cgroup_v1() -> None:
    previous = CpuSample(1_500_000_000, 96_000_000_000, 2, READ_EPOCH - 2)
    usage = resource_usage(cgroup_v1_stats(), previous)
    assert usage == ResourceUsage(
        cpu_percent=50.0,
        memory_usage=35_000_000,
        memory_limit=536_870_912,
        network_rx_bytes=1024,
        network_tx_bytes=376,
        block_read=5096,
        block_write=8216,
        pids=7,
    )
    assert usage.as_dict() == {
        "cpu_percent": 50.0,
        "memory_usage": 35_000_000,
        "memory_limit": 536_870_912,
        "network_rx_bytes": 1024,
        "network_tx_bytes": 376,
        "block_read": 5096,
        "block_write": 8216,
        "pids": 7,
    }


def test_resource_usage_cgroup_v2_lowercase_ops_and_lifetime_cpu() -> None:
    started = datetime.fromtimestamp(READ_EPOCH, UTC) - timedelta(seconds=10)
    usage = resource_usage(cgroup_v2_stats(), None, started)
    assert usage.cpu_percent == 10.0
    assert (usage.block_read, usage.block_write) == (505, 700)
    assert (usage.network_rx_bytes, usage.network_tx_bytes) == (10, 20)
    assert (usage.memory_usage, usage.memory_limit) == (26_000_000, 1_073_741_824)
    assert usage.pids == 3


def test_resource_usage_of_a_container_without_network_or_io() -> None:
    raw = cgroup_v2_stats()
    raw["networks"] = None
    raw["blkio_stats"] = {"io_service_bytes_recursive": None}
    del raw["pids_stats"]
    usage = resource_usage(raw, None)
    assert (usage.network_rx_bytes, usage.network_tx_bytes) == (0, 0)
    assert (usage.block_read, usage.block_write, usage.pids) == (0, 0, 0)
    assert usage.cpu_percent == 0.0


@pytest.fixture
def new_york_time() -> Iterator[None]:
    """Run with a local time zone that is not UTC."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "America/New_York")
        time.tzset()
        yield
    time.tzset()


@pytest.mark.usefixtures("new_york_time")
def test_read_at_is_epoch_seconds_whatever_the_local_time_zone() -> None:
    # CpuSample.read_at is "seconds since the epoch": Docker's "read" is UTC ("Z").
    assert cpu_sample(cgroup_v1_stats()).read_at == pytest.approx(READ_EPOCH, abs=1e-3)

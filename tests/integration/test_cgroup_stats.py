"""CgroupStats against dockerd's own one-shot stats: the same counters, within 1 %.

Each comparison reads Docker, then the files, then Docker again (a one-shot call answers on
dockerd's next collection tick, so the two Docker samples are up to a second apart). Counters only
grow, so the files' figure must lie between the two Docker samples, widened by 1 % (and must
equal them where both are equal); memory usage is judged the same way. The containers are idle
when they are compared (the busy one has finished its writes and pings), so in practice the
figures are equal; the 1 % is what the issue allows, and what a broadcast packet or a page of
memory moving between the reads needs.

Block counters: on cgroup v1, Linux (seen on 6.x) counts a cgroup's block I/O in
``blkio.throttle.io_service_bytes`` only on a disk where some cgroup has a throttle rule, so the
writer gets a rule (1 TB/s, which never throttles) on the disk under Docker's root directory; the
kernel then keeps counting on that disk for every cgroup until it reboots, which costs nothing
that matters.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from tests.integration.support import SLEEPER, TEST_IMAGE, require, wait_for
from workers.cgroup_stats import CgroupStats
from workers.stats import ResourceUsage, memory_usage, resource_usage

pytestmark = pytest.mark.integration

TOLERANCE = 0.01
# Writes 8 MiB through the page cache (then fsync) and 4 MiB direct, reads the 4 MiB back direct,
# pings the bridge's gateway three times, says so and idles.
WRITER = (
    "dd if=/dev/zero of=/cached bs=1M count=8 conv=fsync 2>/dev/null;"
    " dd if=/dev/zero of=/direct bs=1M count=4 oflag=direct 2>/dev/null;"
    " dd if=/direct of=/dev/null bs=1M iflag=direct 2>/dev/null;"
    " ping -c 3 -W 1 \"$(ip route | awk '/default/ {print $3}')\" >/dev/null;"
    " echo done; trap 'exit 0' TERM; sleep 100000 & wait"
)

Figures = dict[str, float]


def figures(raw: dict[str, Any]) -> Figures:
    """The counters compared, from a stats document of either source."""
    cpu = raw["cpu_stats"]
    memory = raw.get("memory_stats") or {}
    usage = resource_usage(raw, None)
    networks = raw.get("networks") or {}
    return {
        "cpu total_usage": cpu["cpu_usage"]["total_usage"],
        "system_cpu_usage": cpu["system_cpu_usage"],
        "online_cpus": cpu["online_cpus"],
        "memory usage": memory.get("usage", 0),
        "memory usage net of cache": memory_usage(raw)[0],
        "memory limit": memory.get("limit", 0),
        "pids": usage.pids,
        "network rx": usage.network_rx_bytes,
        "network tx": usage.network_tx_bytes,
        "block read": usage.block_read,
        "block write": usage.block_write,
        **{f"{name} rx_bytes": n["rx_bytes"] for name, n in networks.items()},
        **{f"{name} tx_bytes": n["tx_bytes"] for name, n in networks.items()},
    }


def disagreements(before: Figures, ours: Figures, after: Figures) -> dict[str, Any]:
    """The figures of ours outside Docker's two samples widened by TOLERANCE."""
    wrong = {}
    for key in before.keys() | ours.keys() | after.keys():
        low = min(before.get(key, 0), after.get(key, 0)) * (1 - TOLERANCE)
        high = max(before.get(key, 0), after.get(key, 0)) * (1 + TOLERANCE)
        if not low <= ours.get(key, 0) <= high:
            wrong[key] = (before.get(key), ours.get(key), after.get(key))
    return wrong


def usage_agrees(docker_usage: ResourceUsage, ours: ResourceUsage) -> bool:
    """Whether two ResourceUsage agree within TOLERANCE, field by field."""
    mine = ours.as_dict()
    return all(
        abs(mine[key] - value) <= TOLERANCE * abs(value)
        for key, value in docker_usage.as_dict().items()
    )


def sample(
    docker_client: docker.DockerClient, stats: CgroupStats, cid: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Docker's one-shot stats, the files' document right after, and Docker's again."""
    before = docker_client.api.stats(cid, stream=False, one_shot=True)
    ours = stats.raw_stats(cid)
    after = docker_client.api.stats(cid, stream=False, one_shot=True)
    assert ours is not None, f"no cgroup for running container {cid[:12]}"
    return before, ours, after


def rootfs_disk(docker_client: docker.DockerClient) -> str | None:
    """The /dev path of the whole disk holding Docker's root directory, if there is one."""
    try:
        device = os.stat(docker_client.info()["DockerRootDir"]).st_dev
    except OSError:
        return None  # Not this machine's (detect then says so).
    sysfs = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}")
    if not sysfs.exists():
        return None  # Not a block device (btrfs subvolume, a VM's shared folder, ...).
    disk = sysfs.resolve().parent if (sysfs / "partition").exists() else sysfs.resolve()
    for line in (disk / "uevent").read_text().splitlines():
        if line.startswith("DEVNAME="):
            return "/dev/" + line.removeprefix("DEVNAME=")
    return None


def blkio(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """io_service_bytes_recursive of a stats document ([] for none)."""
    return (raw.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []


def detect(docker_client: docker.DockerClient) -> CgroupStats:
    """CgroupStats for this Docker host (a container must run); skips, or fails in CI, if the
    tests do not run on that host."""
    stats = CgroupStats.detect(docker_client.info())
    require("the Docker host's cgroup files", stats is not None, "the tests run elsewhere")
    assert stats is not None
    return stats


@pytest.fixture
def run(docker_client: docker.DockerClient, labels: dict[str, str]) -> Callable[..., Container]:
    """Starts a container of the test image with the test's labels (removed after it)."""

    def start(command: list[str], **kwargs: Any) -> Container:
        return docker_client.containers.run(
            TEST_IMAGE, command, detach=True, labels=labels, **kwargs
        )

    return start


def test_counters_agree_with_dockers_within_1_percent(
    docker_client: docker.DockerClient, run: Callable[..., Container]
) -> None:
    disk = rootfs_disk(docker_client)
    rule = [{"Path": disk, "Rate": 10**12}] if disk else None
    containers = {
        "idle": run(SLEEPER, network_mode="none"),
        "busy": run(
            ["sh", "-c", WRITER], network_mode="bridge", device_write_bps=rule, device_read_bps=rule
        ),
        "host network": run(SLEEPER, network_mode="host"),
        "limited": run(SLEEPER, network_mode="none", mem_limit="64m"),
    }
    wait_for(lambda: b"done" in containers["busy"].logs(), 60, "the busy container's work")
    stats = detect(docker_client)
    info = docker_client.info()
    assert (stats.driver, stats.version) == (info["CgroupDriver"], int(info["CgroupVersion"]))
    documents = {}
    for name, container in containers.items():
        assert container.id is not None
        before, ours, after = documents[name] = sample(docker_client, stats, container.id)
        wrong = disagreements(figures(before), figures(ours), figures(after))
        assert not wrong, f"{name}: (docker before, files, docker after) {wrong}"
        assert (ours.get("networks") or {}).keys() == (before.get("networks") or {}).keys()
        assert [(e["major"], e["minor"], e["op"]) for e in blkio(ours)] == [
            (e["major"], e["minor"], e["op"]) for e in blkio(before)
        ]
        assert ours["memory_stats"]["stats"].keys() == before["memory_stats"]["stats"].keys()
        usage = resource_usage(ours, None)
        assert any(usage_agrees(resource_usage(raw, None), usage) for raw in (before, after))

    _, busy, _ = documents["busy"]
    usage = resource_usage(busy, None)
    assert usage.network_rx_bytes > 0 and usage.network_tx_bytes > 0
    assert memory_usage(busy)[0] < busy["memory_stats"]["usage"] - 4 * 2**20  # page cache
    if disk is not None:
        # The 4 MiB written and read with O_DIRECT are always the container's; the page cache's
        # writeback of the other 8 MiB is charged to it or not, as the kernel's flusher runs.
        assert usage.block_write >= 4 * 2**20 and usage.block_read >= 4 * 2**20
    assert documents["limited"][1]["memory_stats"]["limit"] == 64 * 2**20
    assert "networks" not in documents["host network"][1]  # none from Docker either
    assert "networks" not in documents["idle"][1]


def test_a_stopped_container_has_no_stats(
    docker_client: docker.DockerClient, run: Callable[..., Container]
) -> None:
    idle = run(SLEEPER, network_mode="none")
    assert idle.id is not None
    stats = detect(docker_client)
    assert stats.raw_stats(idle.id) is not None
    idle.stop(timeout=5)
    assert stats.raw_stats(idle.id) is None

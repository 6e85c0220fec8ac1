"""Docker's one-shot stats from cgroup and /proc files, on fake file trees (v1 and v2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from workers.cgroup_stats import (
    MEMORY_STAT_KEYS_V1,
    MEMORY_STAT_KEYS_V2,
    CgroupStats,
    CgroupStatsError,
    docker_time,
    expand_slice,
    parse_blkio_v1,
    parse_io_stat,
    parse_net_dev,
    parse_proc_stat,
    parse_uint,
)
from workers.stats import ResourceUsage, resource_usage

CID = "c0ffee" + "0" * 57 + "1"
OTHER = "d" * 64
PID = 4242
MEM_TOTAL_KB = 1_000_000  # the fake machine: 1 024 000 000 bytes
UNLIMITED_V1 = 9223372036854771712
# user nice system idle iowait irq softirq (steal guest guest_nice): Docker sums the first seven.
PROC_STAT = (
    "cpu  1000 20 300 50000 40 0 60 700 0 0\n"
    "cpu0 500 10 150 25000 20 0 30 350 0 0\n"
    "intr 123 4 5\nctxt 99\n"
)
SYSTEM_NS = (1000 + 20 + 300 + 50000 + 40 + 0 + 60) * 10_000_000
NET_DEV = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n"
    "    lo:     500       5    0    0    0     0          0         0      500       5    0 "
    "   0    0     0       0          0\n"
    "  eth0:    1000      10    2    1    0     0          0         3      300       3    4 "
    "   5    0     0       0          0\n"
    " tunl0:       0       0    0    0    0     0          0         0        0       0    0 "
    "   0    0     0       0          0\n"
    "  eth1:      24       1    0    0    0     0          0         0       76       1    0 "
    "   0    0     0       0          0\n"
)
NETWORKS = {
    "eth0": {
        "rx_bytes": 1000,
        "rx_packets": 10,
        "rx_errors": 0,
        "rx_dropped": 1,
        "tx_bytes": 300,
        "tx_packets": 3,
        "tx_errors": 0,
        "tx_dropped": 5,
    },
    "eth1": {
        "rx_bytes": 24,
        "rx_packets": 1,
        "rx_errors": 0,
        "rx_dropped": 0,
        "tx_bytes": 76,
        "tx_packets": 1,
        "tx_errors": 0,
        "tx_dropped": 0,
    },
}
MEMORY_STAT_V1 = (
    "cache 20000000\nrss 28000000\nshmem 0\nmapped_file 100\ninactive_file 5000000\n"
    "active_anon 10000000\nhierarchical_memory_limit 9223372036854771712\n"
    "total_cache 20000000\ntotal_inactive_file 15000000\ntotal_rss 28000000\n"
    "workingset_refault_file 7\n"
)
BLKIO_V1 = (
    "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 12288\n8:0 Async 0\n8:0 Discard 0\n"
    "8:0 Total 12288\n8:16 Read 1000\n8:16 Write 24\nTotal 17408\n"
)
MEMORY_STAT_V2 = (
    "anon 20000000\nfile 9000000\ninactive_file 4000000\nactive_file 5000000\n"
    "workingset_refault_anon 3\npgfault 42\n"
)
IO_STAT_V2 = (
    "259:0 rbytes=500 wbytes=700 rios=5 wios=7 dbytes=0 dios=0\n"
    "259:1 rbytes=5 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"
)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_proc(tmp_path: Path, *, netns: str = "net:[4026532999]") -> Path:
    """/proc with the host's stat and meminfo and a container process (PID) in ``netns``."""
    proc = tmp_path / "proc"
    write(proc / "stat", PROC_STAT)
    write(proc / "meminfo", f"MemTotal:       {MEM_TOTAL_KB} kB\nMemFree:          1000 kB\n")
    (proc / "1" / "ns").mkdir(parents=True)
    os.symlink("net:[4026531840]", proc / "1" / "ns" / "net")
    (proc / str(PID) / "ns").mkdir(parents=True)
    os.symlink(netns, proc / str(PID) / "ns" / "net")
    write(proc / str(PID) / "net" / "dev", NET_DEV)
    write(proc / str(PID) / "cgroup", f"4:memory:/docker/{CID}\n2:cpuacct:/docker/{CID}\n")
    return proc


def fake_v1(tmp_path: Path, relative: str = f"docker/{CID}") -> tuple[Path, Path]:
    """A cgroup v1 tree with one container's cgroup at ``relative`` in each controller."""
    root = tmp_path / "cgroup"
    cpuacct = root / "cpuacct" / relative
    write(cpuacct / "cpuacct.usage", "2500000000\n")
    write(cpuacct / "cgroup.procs", f"{PID}\n4243\n")
    memory = root / "memory" / relative
    write(memory / "memory.stat", MEMORY_STAT_V1)
    write(memory / "memory.usage_in_bytes", "50000000\n")
    write(memory / "memory.limit_in_bytes", f"{UNLIMITED_V1}\n")
    write(root / "pids" / relative / "pids.current", "7\n")
    write(root / "blkio" / relative / "blkio.throttle.io_service_bytes", BLKIO_V1)
    return root, fake_proc(tmp_path)


def fake_v2(tmp_path: Path, relative: str = f"docker/{CID}") -> tuple[Path, Path]:
    """A cgroup v2 tree with one container's cgroup at ``relative``."""
    root = tmp_path / "cgroup"
    write(root / "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
    base = root / relative
    write(base / "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
    write(base / "cgroup.procs", f"{PID}\n")
    write(base / "cpu.stat", "usage_usec 1000000\nuser_usec 900000\nsystem_usec 100000\n")
    write(base / "memory.stat", MEMORY_STAT_V2)
    write(base / "memory.current", "30000000\n")
    write(base / "memory.max", "max\n")
    write(base / "pids.current", "3\n")
    write(base / "pids.max", "max\n")
    write(base / "io.stat", IO_STAT_V2)
    return root, fake_proc(tmp_path)


def reader(root: Path, proc: Path, **kwargs: Any) -> CgroupStats:
    return CgroupStats(cgroup_root=str(root), proc_root=str(proc), **kwargs)


def v1_memory_stats() -> dict[str, int]:
    stats = dict.fromkeys(MEMORY_STAT_KEYS_V1, 0)
    stats.update(
        cache=20000000,
        rss=28000000,
        mapped_file=100,
        inactive_file=5000000,
        active_anon=10000000,
        hierarchical_memory_limit=UNLIMITED_V1,
        total_cache=20000000,
        total_inactive_file=15000000,
        total_rss=28000000,
    )
    return stats


# --- cgroup v1 --------------------------------------------------------------------------------


def test_v1_cgroupfs_document_is_dockers(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path)
    raw = reader(root, proc).raw_stats(CID)
    assert raw is not None
    read = raw.pop("read")
    assert read.endswith("Z") and read[:2] == "20"
    assert raw == {
        "preread": "0001-01-01T00:00:00Z",
        "id": CID,
        "pids_stats": {"current": 7},
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
            ]
        },
        "cpu_stats": {
            "cpu_usage": {"total_usage": 2500000000},
            "system_cpu_usage": SYSTEM_NS,
            "online_cpus": len(os.sched_getaffinity(0)),
        },
        "precpu_stats": {"cpu_usage": {"total_usage": 0}},
        "memory_stats": {
            "usage": 50000000,
            # An unlimited cgroup shows the machine's memory, as dockerd caps it.
            "limit": MEM_TOTAL_KB * 1024,
            "stats": v1_memory_stats(),
        },
        "networks": NETWORKS,
    }


def test_v1_resource_usage_from_the_files(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path)
    raw = reader(root, proc).raw_stats(CID)
    assert raw is not None
    assert resource_usage(raw, None) == ResourceUsage(
        cpu_percent=0.0,
        memory_usage=50000000 - 15000000,  # net of total_inactive_file
        memory_limit=MEM_TOTAL_KB * 1024,
        network_rx_bytes=1024,
        network_tx_bytes=376,
        block_read=5096,
        block_write=8216,
        pids=7,
    )


def test_v1_a_limit_below_the_machine_is_kept(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path)
    write(root / "memory" / "docker" / CID / "memory.limit_in_bytes", "536870912\n")
    raw = reader(root, proc).raw_stats(CID)
    assert raw is not None
    assert raw["memory_stats"]["limit"] == 536870912


def test_v1_systemd_scope_under_system_slice(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path, f"system.slice/docker-{CID}.scope")
    raw = reader(root, proc, driver="systemd").raw_stats(CID)
    assert raw is not None
    assert raw["cpu_stats"]["cpu_usage"]["total_usage"] == 2500000000
    assert raw["pids_stats"] == {"current": 7}


def test_v1_systemd_nested_parent_slice_is_expanded(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path, f"my.slice/my-app.slice/docker-{CID}.scope")
    raw = reader(root, proc, driver="systemd", parent="my-app.slice").raw_stats(CID)
    assert raw is not None
    assert raw["memory_stats"]["usage"] == 50000000


def test_v1_cgroupfs_parent(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path, f"ci/docker/{CID}")
    assert reader(root, proc, parent="/ci/docker").raw_stats(CID) is not None
    assert reader(root, proc).raw_stats(CID) is None  # Not where the default parent puts it.


def test_v1_cfq_files_come_first_when_they_list_devices(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path)
    blkio = root / "blkio" / "docker" / CID
    write(blkio / "blkio.io_serviced_recursive", "8:0 Read 1\nTotal 1\n")
    write(blkio / "blkio.io_service_bytes_recursive", "Total 0\n")
    raw = reader(root, proc).raw_stats(CID)
    assert raw is not None
    assert len(raw["blkio_stats"]["io_service_bytes_recursive"]) == 8  # empty CFQ: throttle
    write(blkio / "blkio.io_service_bytes_recursive", "8:0 Read 5\n8:0 Write 6\nTotal 11\n")
    raw = reader(root, proc).raw_stats(CID)
    assert raw is not None
    assert [e["value"] for e in raw["blkio_stats"]["io_service_bytes_recursive"]] == [5, 6]


def test_v1_missing_controllers_read_as_docker_reads_them(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path)
    for controller in ("memory", "pids", "blkio"):
        for path in sorted((root / controller).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    raw = reader(root, proc).raw_stats(CID)
    assert raw is not None
    assert raw["memory_stats"] == {}
    assert raw["pids_stats"] == {}
    assert raw["blkio_stats"] == {"io_service_bytes_recursive": []}
    assert raw["cpu_stats"]["cpu_usage"]["total_usage"] == 2500000000


# --- cgroup v2 --------------------------------------------------------------------------------


def test_v2_cgroupfs_document_is_dockers(tmp_path: Path) -> None:
    root, proc = fake_v2(tmp_path)
    raw = reader(root, proc, version=2).raw_stats(CID)
    assert raw is not None
    raw.pop("read")
    stats = dict.fromkeys(MEMORY_STAT_KEYS_V2, 0)
    stats.update(anon=20000000, file=9000000, inactive_file=4000000, active_file=5000000)
    stats.update(pgfault=42)
    assert raw == {
        "preread": "0001-01-01T00:00:00Z",
        "id": CID,
        "pids_stats": {"current": 3},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 259, "minor": 0, "op": "read", "value": 500},
                {"major": 259, "minor": 0, "op": "write", "value": 700},
                {"major": 259, "minor": 1, "op": "read", "value": 5},
                {"major": 259, "minor": 1, "op": "write", "value": 0},
            ]
        },
        "cpu_stats": {
            "cpu_usage": {"total_usage": 1_000_000_000},  # usage_usec * 1000
            "system_cpu_usage": SYSTEM_NS,
            "online_cpus": len(os.sched_getaffinity(0)),
        },
        "precpu_stats": {"cpu_usage": {"total_usage": 0}},
        "memory_stats": {"usage": 30000000, "limit": MEM_TOTAL_KB * 1024, "stats": stats},
        "networks": NETWORKS,
    }
    usage = resource_usage(raw, None)
    assert usage.memory_usage == 30000000 - 4000000  # net of inactive_file
    assert (usage.block_read, usage.block_write, usage.pids) == (505, 700, 3)


def test_v2_systemd_scope(tmp_path: Path) -> None:
    root, proc = fake_v2(tmp_path, f"system.slice/docker-{CID}.scope")
    raw = reader(root, proc, driver="systemd", version=2).raw_stats(CID)
    assert raw is not None
    assert raw["cpu_stats"]["cpu_usage"]["total_usage"] == 1_000_000_000


def test_v2_counters_of_controllers_the_cgroup_lacks_are_zero(tmp_path: Path) -> None:
    root, proc = fake_v2(tmp_path)
    base = root / "docker" / CID
    write(base / "cgroup.controllers", "pids\n")  # containerd then skips cpu.stat, memory.stat
    for name in ("io.stat", "memory.current", "memory.max"):
        (base / name).unlink()
    raw = reader(root, proc, version=2).raw_stats(CID)
    assert raw is not None
    assert raw["cpu_stats"]["cpu_usage"] == {"total_usage": 0}
    assert raw["memory_stats"] == {"stats": dict.fromkeys(MEMORY_STAT_KEYS_V2, 0)}
    assert raw["blkio_stats"] == {"io_service_bytes_recursive": None}
    assert raw["pids_stats"] == {"current": 3}


def test_v2_unreadable_single_values_read_as_zero(tmp_path: Path) -> None:
    root, proc = fake_v2(tmp_path)
    write(root / "docker" / CID / "memory.current", "lots\n")  # containerd logs it, reads 0
    write(root / "docker" / CID / "memory.max", "536870912\n")
    raw = reader(root, proc, version=2).raw_stats(CID)
    assert raw is not None
    assert raw["memory_stats"]["limit"] == 536870912
    assert "usage" not in raw["memory_stats"]


# --- gone, malformed, unreadable --------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_a_missing_cgroup_is_none(tmp_path: Path, version: int) -> None:
    root, proc = fake_v1(tmp_path) if version == 1 else fake_v2(tmp_path)
    assert reader(root, proc, version=version).raw_stats(OTHER) is None


@pytest.mark.parametrize("version", [1, 2])
def test_a_cgroup_without_processes_is_none(tmp_path: Path, version: int) -> None:
    root, proc = fake_v1(tmp_path) if version == 1 else fake_v2(tmp_path)
    for procs in root.rglob("cgroup.procs"):
        procs.write_text("")
    assert reader(root, proc, version=version).raw_stats(CID) is None


def test_exited_processes_are_skipped_and_none_left_is_none(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path)
    write(root / "cpuacct" / "docker" / CID / "cgroup.procs", f"9999\n{PID}\n")
    raw = reader(root, proc).raw_stats(CID)
    assert raw is not None
    assert raw["networks"] == NETWORKS  # 9999 exited: PID's namespace
    write(root / "cpuacct" / "docker" / CID / "cgroup.procs", "9999\n")
    assert reader(root, proc).raw_stats(CID) is None


def test_a_cgroup_removed_mid_read_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, proc = fake_v1(tmp_path)
    stats = reader(root, proc)
    real = CgroupStats._memory_v1

    def memory_then_gone(self: CgroupStats, container_id: str) -> dict[str, Any]:
        result = real(self, container_id)
        for path in sorted((root / "cpuacct" / "docker" / CID).rglob("*"), reverse=True):
            path.unlink()
        (root / "cpuacct" / "docker" / CID).rmdir()
        (root / "pids" / "docker" / CID / "pids.current").unlink()
        return result

    monkeypatch.setattr(CgroupStats, "_memory_v1", memory_then_gone)
    assert stats.raw_stats(CID) is None


@pytest.mark.parametrize(
    ("relative", "content"),
    [
        ("cpuacct/docker/{cid}/cpuacct.usage", "lots\n"),
        ("cpuacct/docker/{cid}/cgroup.procs", "4242\nabc\n"),
        ("memory/docker/{cid}/memory.stat", "cache 1\nrss\n"),
        ("memory/docker/{cid}/memory.stat", "cache -\n"),
        ("memory/docker/{cid}/memory.usage_in_bytes", "99999999999999999999999\n"),
        ("pids/docker/{cid}/pids.current", "\n"),
        ("blkio/docker/{cid}/blkio.throttle.io_service_bytes", "8:0 Read x\n"),
        ("blkio/docker/{cid}/blkio.throttle.io_service_bytes", "garbage\n"),
    ],
)
def test_a_malformed_cgroup_file_raises_cgroup_stats_error(
    tmp_path: Path, relative: str, content: str
) -> None:
    root, proc = fake_v1(tmp_path)
    write(root / relative.format(cid=CID), content)
    with pytest.raises(CgroupStatsError, match=relative.format(cid=CID).rsplit("/", 1)[1]):
        reader(root, proc).raw_stats(CID)


@pytest.mark.parametrize(
    ("relative", "content"),
    [
        (f"{PID}/net/dev", "h1\nh2\n  eth0: 1 2 3\n"),
        ("stat", "intr 1 2\n"),
        ("stat", "cpu  1 2 3\n"),
        ("stat", "cpu  1 2 3 4 5 6 x 8\n"),
    ],
)
def test_a_malformed_proc_file_raises_cgroup_stats_error(
    tmp_path: Path, relative: str, content: str
) -> None:
    root, proc = fake_v1(tmp_path)
    write(proc / relative, content)
    with pytest.raises(CgroupStatsError):
        reader(root, proc).raw_stats(CID)


def test_v2_a_malformed_stat_line_raises(tmp_path: Path) -> None:
    root, proc = fake_v2(tmp_path)
    write(root / "docker" / CID / "cpu.stat", "usage_usec 1 2\n")
    with pytest.raises(CgroupStatsError, match=r"cpu\.stat"):
        reader(root, proc, version=2).raw_stats(CID)


def test_a_file_that_cannot_be_read_raises_cgroup_stats_error(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path)
    memory_stat = root / "memory" / "docker" / CID / "memory.stat"
    memory_stat.unlink()
    memory_stat.mkdir()  # EISDIR: there, but unreadable (as EACCES would be for a non-root)
    with pytest.raises(CgroupStatsError, match="cannot read"):
        reader(root, proc).raw_stats(CID)


def test_negative_counters_read_as_zero() -> None:
    assert parse_uint("-1\n", "memory.limit_in_bytes") == 0
    assert parse_uint("-99999999999999999999999", "x") == 0
    assert parse_uint("18446744073709551615", "x") == 2**64 - 1


@pytest.mark.parametrize("container_id", ["c0ffee", "../../etc", CID.upper(), CID + "0"])
def test_only_full_container_ids(tmp_path: Path, container_id: str) -> None:
    root, proc = fake_v1(tmp_path)
    with pytest.raises(ValueError, match="full container id"):
        reader(root, proc).raw_stats(container_id)


# --- networks ---------------------------------------------------------------------------------


def test_host_network_reports_no_interfaces(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path)
    (proc / str(PID) / "ns" / "net").unlink()
    os.symlink("net:[4026531840]", proc / str(PID) / "ns" / "net")  # PID 1's
    raw = reader(root, proc).raw_stats(CID)
    assert raw is not None
    assert "networks" not in raw  # as Docker: the host namespace has no sandbox interface


def test_host_namespace_is_this_process_where_pid_1_is_unreadable(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path)
    (proc / "1" / "ns" / "net").unlink()
    (proc / "self" / "ns").mkdir(parents=True)
    os.symlink("net:[4026532999]", proc / "self" / "ns" / "net")  # the container's
    raw = reader(root, proc).raw_stats(CID)
    assert raw is not None
    assert "networks" not in raw


def test_network_none_reports_no_interfaces() -> None:
    lines = NET_DEV.splitlines()
    assert parse_net_dev("\n".join(lines[:3]), "dev") == {}  # headers and lo only


# --- parsers ----------------------------------------------------------------------------------


def test_system_cpu_usage_is_seven_fields_in_ticks_of_a_hundredth() -> None:
    assert parse_proc_stat(PROC_STAT, "stat") == SYSTEM_NS  # steal (700) left out


def test_blkio_lines() -> None:
    assert parse_blkio_v1("Total 0\n", "f") == []
    assert parse_blkio_v1("8:0 100\n", "f") == [{"major": 8, "minor": 0, "op": "", "value": 100}]


def test_io_stat_skips_what_it_cannot_read() -> None:
    text = "junk\n8:0 rbytes=1 wbytes=x rios\n8:1 wbytes=2\nx:y rbytes=9\n8:2 rbytes=3\n"
    assert parse_io_stat(text) == [
        {"major": 8, "minor": 0, "op": "read", "value": 1},
        {"major": 8, "minor": 0, "op": "write", "value": 0},
        {"major": 8, "minor": 1, "op": "read", "value": 0},
        {"major": 8, "minor": 1, "op": "write", "value": 2},
    ]


def test_docker_time_is_rfc3339_nano() -> None:
    assert docker_time(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert docker_time(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert docker_time(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


def test_expand_slice() -> None:
    assert expand_slice("system.slice") == "system.slice"
    assert expand_slice("a-b-c.slice") == "a.slice/a-b.slice/a-b-c.slice"
    assert expand_slice("-.slice") == ""
    for bad in ("docker", ".slice", "a--b.slice", "-a.slice", "a/b.slice"):
        with pytest.raises(ValueError, match="slice"):
            expand_slice(bad)


@pytest.mark.parametrize(
    "kwargs",
    [{"driver": "none"}, {"version": 3}, {"driver": "systemd", "parent": "/docker"}],
)
def test_bad_settings_raise_value_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CgroupStats(**kwargs)


# --- detect -----------------------------------------------------------------------------------


def docker_info(**overrides: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "1",
        "KernelVersion": os.uname().release,
        "MemTotal": MEM_TOTAL_KB * 1024,
        "SecurityOptions": ["name=seccomp,profile=default"],
    }
    info.update(overrides)
    return {key: value for key, value in info.items() if value is not None}


def detect(root: Path, proc: Path, **overrides: Any) -> CgroupStats | None:
    return CgroupStats.detect(docker_info(**overrides), cgroup_root=str(root), proc_root=str(proc))


def test_detect_on_the_docker_host(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path)
    stats = detect(root, proc)
    assert stats is not None
    assert (stats.driver, stats.version, stats.parent) == ("cgroupfs", 1, "/docker")


def test_detect_v2_systemd(tmp_path: Path) -> None:
    root, proc = fake_v2(tmp_path, f"system.slice/docker-{CID}.scope")
    write(proc / str(PID) / "cgroup", f"0::/system.slice/docker-{CID}.scope\n")
    stats = detect(root, proc, CgroupDriver="systemd", CgroupVersion="2")
    assert stats is not None
    assert (stats.driver, stats.version) == ("systemd", 2)


@pytest.mark.parametrize(
    "overrides",
    [
        {"CgroupDriver": "none"},
        {"CgroupDriver": None},
        {"CgroupVersion": "2"},  # the files are v1
        {"KernelVersion": "4.19.0-remote"},
        {"MemTotal": 64 * 2**30},
        {"SecurityOptions": ["name=seccomp,profile=default", "name=rootless"]},
    ],
)
def test_detect_says_none_for_another_host(tmp_path: Path, overrides: dict[str, Any]) -> None:
    root, proc = fake_v1(tmp_path)
    assert detect(root, proc, **overrides) is None


def test_detect_without_a_running_container_is_none(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path)
    (root / "cpuacct" / "docker" / CID / "cgroup.procs").write_text("")
    assert detect(root, proc) is None
    assert detect(tmp_path / "nothing", proc) is None


def test_detect_needs_the_same_pid_namespace(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path)
    write(proc / str(PID) / "cgroup", "4:memory:/\n2:cpuacct:/\n")  # another PID 4242
    assert detect(root, proc) is None


def test_detect_needs_readable_files(tmp_path: Path) -> None:
    root, proc = fake_v1(tmp_path)
    write(root / "memory" / "docker" / CID / "memory.stat", "broken\n")
    assert detect(root, proc) is None

"""Docker's one-shot stats read straight from the host's cgroup and /proc files.

dockerd 20.10 answers a one-shot stats call on its next collection tick (every second), after about
2.7 ms of collection per container; this module computes the same document from the files that
tick reads, in a few small reads per container and no call to Docker, as cAdvisor and the kubelet
do. It applies only when the worker runs on the Docker host (:meth:`CgroupStats.detect`); elsewhere
callers keep the API's one-shot stats.

Every figure is computed as dockerd computes it. dockerd 20.10 gets a container's cgroup figures
from containerd's shim (``containerd/cgroups`` v1.0.4, which containerd 1.6 vendors: ``cpuacct.go``,
``memory.go``, ``pids.go``, ``blkio.go`` for cgroup v1, ``v2/manager.go`` ``Stat`` for v2), turns
them into the API's document in moby's ``daemon/daemon_unix.go`` (``statsV1``, ``statsV2``) and
adds the host's CPU time and CPU count in ``daemon/stats/collector{,_unix}.go`` and the network
counters in ``daemon/stats_unix.go`` (libnetwork's ``sandbox.Statistics``). Where a file is
unusable, this module does what that code does: where containerd would fail the whole call it
raises :class:`CgroupStatsError`, where it reads a zero it reads a zero.
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

#: Clock ticks per second: moby and containerd hard-code 100 (Linux's USER_HZ) instead of sysconf.
CLOCK_TICKS = 100
NANOSECONDS = 1_000_000_000
UINT64_MAX = 2**64 - 1
#: The zero time Go's encoding/json writes for an unset time.Time (``preread`` of a one-shot).
ZERO_TIME = "0001-01-01T00:00:00Z"

#: v1 ``memory.stat`` keys dockerd reports (containerd's parseStats, moby's statsV1), 0 if absent.
MEMORY_STAT_KEYS_V1 = (
    "cache",
    "rss",
    "rss_huge",
    "mapped_file",
    "dirty",
    "writeback",
    "pgpgin",
    "pgpgout",
    "pgfault",
    "pgmajfault",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "hierarchical_memory_limit",
    "hierarchical_memsw_limit",
    "total_cache",
    "total_rss",
    "total_rss_huge",
    "total_mapped_file",
    "total_dirty",
    "total_writeback",
    "total_pgpgin",
    "total_pgpgout",
    "total_pgfault",
    "total_pgmajfault",
    "total_inactive_anon",
    "total_active_anon",
    "total_inactive_file",
    "total_active_file",
    "total_unevictable",
)
#: v2 ``memory.stat`` keys dockerd reports (containerd's v2 Manager.Stat, moby's statsV2).
MEMORY_STAT_KEYS_V2 = (
    "anon",
    "file",
    "kernel_stack",
    "slab",
    "sock",
    "shmem",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "anon_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "pgfault",
    "pgmajfault",
    "workingset_refault",
    "workingset_activate",
    "workingset_nodereclaim",
    "pgrefill",
    "pgscan",
    "pgsteal",
    "pgactivate",
    "pgdeactivate",
    "pglazyfree",
    "pglazyfreed",
    "thp_fault_alloc",
    "thp_collapse_alloc",
)

#: Interfaces of a container's network namespace that Docker does not report. Docker lists only
#: the interfaces libnetwork put in the sandbox (eth0, ...), never ``lo``, nor the fallback
#: tunnel devices the kernel creates in every namespace when their module is loaded.
NOT_DOCKER_INTERFACES = frozenset(
    (
        "lo",
        "tunl0",
        "gre0",
        "gretap0",
        "erspan0",
        "ip_vti0",
        "ip6_vti0",
        "sit0",
        "ip6tnl0",
        "ip6gre0",
    )
)

DRIVERS = ("cgroupfs", "systemd")
DEFAULT_PARENTS = {"cgroupfs": "/docker", "systemd": "system.slice"}

_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
# errno values of a file that is not there: never created, or its cgroup or process is gone
# (reading a removed cgroup's open file gives ENODEV, an exited process's files ESRCH).
_GONE = frozenset({errno.ENOENT, errno.ENODEV, errno.ESRCH})


class CgroupStatsError(Exception):
    """Raised when a cgroup or /proc file that exists cannot be used: its content is not what the
    kernel writes (where containerd or moby would fail the stats call too), or reading it fails
    for another reason than its absence (permission denied, ...). Callers use the API instead."""


class _Missing(Exception):
    """Raised (inside this module) when a file is absent or vanished while it was read."""


class CgroupStats:
    """Reads a container's resource counters from the host's cgroup and /proc files."""

    def __init__(
        self,
        *,
        cgroup_root: str = "/sys/fs/cgroup",
        proc_root: str = "/proc",
        driver: str = "cgroupfs",
        version: int = 1,
        parent: str | None = None,
    ) -> None:
        """Files of Docker's ``driver`` (cgroupfs or systemd) on cgroup ``version`` 1 or 2;
        ``parent`` is dockerd's ``--cgroup-parent`` (default ``/docker``, or ``system.slice``).

        Raises:
            ValueError: for another driver or version, or a systemd parent that is no slice name.
        """
        if driver not in DRIVERS:
            raise ValueError(f"cgroup driver {driver!r} is not one of {DRIVERS}")
        if version not in (1, 2):
            raise ValueError(f"cgroup version {version!r} is neither 1 nor 2")
        self.cgroup_root = cgroup_root
        self.proc_root = proc_root
        self.driver = driver
        self.version = version
        self.parent = DEFAULT_PARENTS[driver] if parent is None else parent
        # runc's systemd driver: "a-b.slice" is the cgroup a.slice/a-b.slice (ExpandSlice).
        self._parent_path = (
            expand_slice(self.parent) if driver == "systemd" else self.parent.strip("/")
        )
        # The directory of Docker's containers in each controller (v2: under "").
        self._roots = {
            controller: os.path.join(cgroup_root, controller, self._parent_path).rstrip("/")
            for controller in ("", "cpuacct", "memory", "pids", "blkio")
        }
        self._machine_memory: int | None = None
        self._host_netns: str | None = None

    # --- the public interface -------------------------------------------------------------
    @classmethod
    def detect(
        cls,
        docker_info: Mapping[str, Any],
        *,
        cgroup_root: str = "/sys/fs/cgroup",
        proc_root: str = "/proc",
    ) -> CgroupStats | None:
        """From `docker info` (CgroupDriver, CgroupVersion) when this process can read this
        Docker host's cgroups (it runs on that host, e.g. the files of some container it can
        find exist); None otherwise (a remote DOCKER_HOST, a worker in a container without the
        host's /sys/fs/cgroup): callers then use the API.

        The evidence: the kernel and memory size `docker info` reports are this machine's, and
        among the containers under Docker's cgroup parent one has a process whose
        ``/proc/<pid>/cgroup`` names it (so /proc and the cgroup files are one host's, in one PID
        namespace) and whose stats this process can read. With no container running there is
        no evidence and the answer is None: ask again once one runs. A daemon run rootless, or
        with a ``--cgroup-parent`` of its own, also gets None. Raises nothing.
        """
        stats = cls._from_info(docker_info, cgroup_root=cgroup_root, proc_root=proc_root)
        if stats is None:
            return None
        for container_id in stats._container_ids():
            try:
                if stats._owns(container_id) and stats.raw_stats(container_id) is not None:
                    return stats
            except CgroupStatsError:
                return None
        return None

    def raw_stats(self, container_id: str) -> dict[str, Any] | None:
        """A one-shot stats document in the Docker Engine API's shape (the keys
        workers/stats.py reads: read, cpu_stats{cpu_usage{total_usage}, system_cpu_usage,
        online_cpus}, memory_stats{usage, limit, stats{...}}, networks{<if>: {rx_bytes,
        tx_bytes}}, blkio_stats{io_service_bytes_recursive: [...]}, pids_stats{current}),
        computed exactly as dockerd computes it, or None when the container's cgroup is gone
        (it stopped or was removed).

        Also ``id``, and ``preread`` and ``precpu_stats`` as a one-shot call leaves them (zero);
        no ``name`` (Docker's, not the kernel's), and none of the other counters (per-CPU and
        user/kernel CPU time, throttling, max_usage, failcnt, pids limit, the other blkio
        lists). None also when no process is left in the cgroup, and when the cgroup is not
        where Docker's default layout puts it (a container run with ``--cgroup-parent``): a
        caller that believes the container runs asks the API, which tells which it is. A
        counter whose controller is not there reads as Docker reads it (zero or absent).

        Raises:
            ValueError: when ``container_id`` is not a full (64 hex digits) container id.
            CgroupStatsError: when a file is malformed or cannot be read (see the class).
        """
        if not _CONTAINER_ID.fullmatch(container_id):
            raise ValueError(f"not a full container id: {container_id!r}")
        if self.version == 1:
            return self._raw_v1(container_id)
        return self._raw_v2(container_id)

    # --- paths ----------------------------------------------------------------------------
    def _cgroup_path(self, container_id: str, controller: str = "") -> str:
        """The container's cgroup directory: ``<root>/<controller>/<parent>/<id>`` (v1
        cgroupfs, runc's fs ``subsysPath``), ``.../<slice path>/docker-<id>.scope`` (systemd,
        runc's ``getUnitName``); v2 has no controller level (runc's fs2 ``_defaultDirPath``)."""
        leaf = f"docker-{container_id}.scope" if self.driver == "systemd" else container_id
        return f"{self._roots[controller if self.version == 1 else '']}/{leaf}"

    def _parent_dir(self) -> str:
        """The directory holding the containers' cgroups (v1: that of cpuacct)."""
        return self._roots["cpuacct" if self.version == 1 else ""]

    # --- cgroup v1 --------------------------------------------------------------------------
    def _raw_v1(self, container_id: str) -> dict[str, Any] | None:
        """The document from the v1 controllers; None if the cgroup is gone or empty.

        Raises:
            CgroupStatsError: when a file is malformed or cannot be read.
        """
        cpuacct = self._cgroup_path(container_id, "cpuacct")
        read_at = docker_time(time.time_ns())
        try:
            total = parse_uint(*_read(f"{cpuacct}/cpuacct.usage"))
            pids = parse_pids(*_read(f"{cpuacct}/cgroup.procs"))
        except _Missing:
            return None
        system = self._system_cpu_ns()
        missing: list[str] = []
        memory: dict[str, Any] = _section(lambda: self._memory_v1(container_id), {}, missing)
        pids_stats: dict[str, Any] = _section(lambda: self._pids_v1(container_id), {}, missing)
        blkio: list[dict[str, Any]] = _section(lambda: self._blkio_v1(container_id), [], missing)
        networks = self._networks(pids)
        if networks is None or (missing and not os.path.isdir(cpuacct)):
            return None  # Its processes exited, or its cgroup went, while it was read.
        return self._document(
            container_id, read_at, total, system, memory, pids_stats, blkio, networks
        )

    def _memory_v1(self, container_id: str) -> dict[str, Any]:
        """memory_stats: memory.usage_in_bytes, memory.limit_in_bytes (at most the machine's
        memory, as moby caps it), memory.stat (containerd's keys).

        Raises:
            _Missing: when the memory controller has no such cgroup.
            CgroupStatsError: when a file is malformed or cannot be read.
        """
        base = self._cgroup_path(container_id, "memory")
        detail = parse_kv_v1(*_read(f"{base}/memory.stat"))
        usage = parse_uint(*_read(f"{base}/memory.usage_in_bytes"))
        limit = parse_uint(*_read(f"{base}/memory.limit_in_bytes"))
        return self._memory_stats(usage, limit, detail, MEMORY_STAT_KEYS_V1)

    def _pids_v1(self, container_id: str) -> dict[str, Any]:
        """pids_stats: pids.current.

        Raises:
            _Missing: when the pids controller has no such cgroup.
            CgroupStatsError: when the file is malformed or cannot be read.
        """
        base = self._cgroup_path(container_id, "pids")
        return _omit_zero({"current": parse_uint(*_read(f"{base}/pids.current"))})

    def _blkio_v1(self, container_id: str) -> list[dict[str, Any]]:
        """io_service_bytes_recursive as containerd reads it: the CFQ file
        ``blkio.io_service_bytes_recursive`` where the kernel has CFQ and it lists devices,
        otherwise ``blkio.throttle.io_service_bytes`` (not the ``_recursive`` one).

        Raises:
            _Missing: when the blkio controller has no such cgroup.
            CgroupStatsError: when a file is malformed or cannot be read.
        """
        base = self._cgroup_path(container_id, "blkio")
        if os.path.lexists(f"{base}/blkio.io_serviced_recursive"):
            entries = parse_blkio_v1(*_read(f"{base}/blkio.io_service_bytes_recursive"))
            if entries:
                return entries
        return parse_blkio_v1(*_read(f"{base}/blkio.throttle.io_service_bytes"))

    # --- cgroup v2 --------------------------------------------------------------------------
    def _raw_v2(self, container_id: str) -> dict[str, Any] | None:
        """The document from the unified hierarchy; None if the cgroup is gone or empty.

        Raises:
            CgroupStatsError: when a file is malformed or cannot be read.
        """
        base = self._cgroup_path(container_id)
        read_at = docker_time(time.time_ns())
        try:
            controllers = _read(f"{base}/cgroup.controllers")[0].split()
            pids = parse_pids(*_read(f"{base}/cgroup.procs"))
        except _Missing:
            return None
        # containerd reads cpu.stat and memory.stat only for the controllers the cgroup has.
        cpu = _optional(lambda: _kv_file_v2(base, "cpu.stat")) if "cpu" in controllers else {}
        system = self._system_cpu_ns()
        detail = (
            _optional(lambda: _kv_file_v2(base, "memory.stat")) if "memory" in controllers else {}
        )
        usage = _optional(lambda: parse_uint_v2(*_read(f"{base}/memory.current")))
        limit = _optional(lambda: parse_uint_v2(*_read(f"{base}/memory.max")))
        current = _optional(lambda: parse_uint_v2(*_read(f"{base}/pids.current")))
        blkio = _optional(lambda: parse_io_stat(_read(f"{base}/io.stat")[0])) or None
        networks = self._networks(pids)
        if networks is None or not os.path.isdir(base):
            return None  # Its processes exited, or its cgroup went, while it was read.
        counters = {key: _as_uint(value) for key, value in (detail or {}).items()}
        memory = self._memory_stats(usage or 0, limit or 0, counters, MEMORY_STAT_KEYS_V2)
        pids_stats = _omit_zero({"current": current or 0})
        total = _as_uint(cpu.get("usage_usec") if cpu else None) * 1000
        return self._document(
            container_id, read_at, total, system, memory, pids_stats, blkio, networks
        )

    # --- shared -----------------------------------------------------------------------------
    def _document(
        self,
        container_id: str,
        read_at: str,
        total_usage: int,
        system_usage: int,
        memory: dict[str, Any],
        pids: dict[str, Any],
        blkio: list[dict[str, Any]] | None,
        networks: dict[str, dict[str, int]],
    ) -> dict[str, Any]:
        """The API's document (Go's omitempty: no zero for usage, limit, current, ...)."""
        document: dict[str, Any] = {
            "read": read_at,
            "preread": ZERO_TIME,
            "id": container_id,
            "pids_stats": pids,
            "blkio_stats": {"io_service_bytes_recursive": blkio},
            "cpu_stats": {
                "cpu_usage": {"total_usage": total_usage},
                **_omit_zero({"system_cpu_usage": system_usage, "online_cpus": online_cpus()}),
            },
            "precpu_stats": {"cpu_usage": {"total_usage": 0}},
            "memory_stats": memory,
        }
        if networks:
            document["networks"] = networks
        return document

    def _memory_stats(
        self, usage: int, limit: int, detail: Mapping[str, int], keys: Iterable[str]
    ) -> dict[str, Any]:
        """memory_stats from the usage, the limit (capped at the machine's memory as moby
        does, an unlimited cgroup showing the machine) and the memory.stat keys dockerd keeps."""
        machine = self._machine_memory_bytes()
        if machine and limit > machine:
            limit = machine
        stats = {key: detail.get(key, 0) for key in keys}
        return _omit_zero({"usage": usage, "stats": stats, "limit": limit})

    def _machine_memory_bytes(self) -> int:
        """MemTotal of <proc>/meminfo in bytes, read once (as dockerd reads it once at start);
        0 when unreadable, and then moby caps no limit. Raises nothing."""
        if self._machine_memory is None:
            try:
                self._machine_memory = parse_meminfo_total(
                    _read(os.path.join(self.proc_root, "meminfo"))[0]
                )
            except (_Missing, CgroupStatsError):
                self._machine_memory = 0
        return self._machine_memory

    def _system_cpu_ns(self) -> int:
        """system_cpu_usage: the host's CPU time from <proc>/stat, as moby reads it.

        Raises:
            CgroupStatsError: when /proc/stat is missing, unreadable or malformed.
        """
        try:
            return parse_proc_stat(*_read(f"{self.proc_root}/stat"))
        except _Missing as exc:
            raise CgroupStatsError(f"{self.proc_root}/stat is missing") from exc

    def _networks(self, pids: list[int]) -> dict[str, dict[str, int]] | None:
        """The counters of the container's interfaces, from /proc/<pid>/net/dev of its first
        process still alive; {} when it shares the host's network namespace (Docker reports no
        interface for ``--network host``); None when none of its processes is left.

        Raises:
            CgroupStatsError: when net/dev is malformed or a namespace cannot be read.
        """
        for pid in pids:
            proc = f"{self.proc_root}/{pid}"
            try:
                namespace = _readlink(f"{proc}/ns/net")
                if namespace == self._host_namespace():
                    return {}
                return parse_net_dev(*_read(f"{proc}/net/dev"))
            except _Missing:
                continue  # That process exited: try the next one.
        return None

    def _host_namespace(self) -> str:
        """The host's network namespace, read once: that of PID 1, or where PID 1's may not be
        read (an init that is not dumpable), that of this process, which runs on the host.

        Raises:
            CgroupStatsError: when neither can be read.
        """
        if self._host_netns is None:
            error: Exception = CgroupStatsError(f"{self.proc_root}/1/ns/net is missing")
            for pid in ("1", "self"):
                try:
                    self._host_netns = _readlink(os.path.join(self.proc_root, pid, "ns", "net"))
                    break
                except (_Missing, CgroupStatsError) as exc:
                    error = exc
            else:
                raise CgroupStatsError(f"no host network namespace in {self.proc_root}: {error}")
        return self._host_netns

    # --- detect's helpers -------------------------------------------------------------------
    @classmethod
    def _from_info(
        cls, docker_info: Mapping[str, Any], *, cgroup_root: str, proc_root: str
    ) -> CgroupStats | None:
        """An instance for the driver and version `docker info` names, if this machine's
        kernel, memory and cgroup layout are those it reports; None otherwise. Raises nothing."""
        driver = docker_info.get("CgroupDriver")
        version = str(docker_info.get("CgroupVersion") or "1")
        if driver not in DRIVERS or version not in ("1", "2"):
            return None
        if any("rootless" in str(option) for option in docker_info.get("SecurityOptions") or []):
            return None  # Its cgroups live under the user's systemd instance.
        kernel = docker_info.get("KernelVersion")
        if kernel is not None and kernel != os.uname().release:
            return None
        stats = cls(
            cgroup_root=cgroup_root, proc_root=proc_root, driver=driver, version=int(version)
        )
        memory = docker_info.get("MemTotal")
        if memory is not None and memory != stats._machine_memory_bytes():
            return None
        unified = os.path.exists(os.path.join(cgroup_root, "cgroup.controllers"))
        if unified != (stats.version == 2):
            return None
        return stats

    def _container_ids(self) -> list[str]:
        """Ids of the container cgroups under Docker's parent, newest first. Raises nothing."""
        try:
            entries = list(os.scandir(self._parent_dir()))
        except OSError:
            return []
        prefix, suffix = ("docker-", ".scope") if self.driver == "systemd" else ("", "")
        found = []
        for entry in entries:
            name = entry.name.removeprefix(prefix).removesuffix(suffix)
            if entry.name == f"{prefix}{name}{suffix}" and _CONTAINER_ID.fullmatch(name):
                try:
                    found.append((entry.stat().st_mtime, name))
                except OSError:
                    continue
        return [name for _, name in sorted(found, reverse=True)]

    def _owns(self, container_id: str) -> bool:
        """Whether a process of the container's cgroup is, in <proc>, in that cgroup: /proc and
        the cgroup files then describe one host, in one PID namespace. Raises nothing."""
        controller = "cpuacct" if self.version == 1 else ""
        try:
            text, path = _read(
                os.path.join(self._cgroup_path(container_id, controller), "cgroup.procs")
            )
            pids = parse_pids(text, path)
        except (_Missing, CgroupStatsError):
            return False
        for pid in pids[:3]:
            try:
                membership = _read(os.path.join(self.proc_root, str(pid), "cgroup"))[0]
            except (_Missing, CgroupStatsError):
                continue
            return container_id in membership
        return False


# --- reading --------------------------------------------------------------------------------
def _read(path: str) -> tuple[str, str]:
    """(the file's whole content, its path): the path travels along for error messages.

    Raises:
        _Missing: when the file is not there, or its cgroup or process went while it was read.
        CgroupStatsError: when it is there but cannot be read (permission denied, ...).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _classify(path, exc) from exc
    return b"".join(chunks).decode("utf-8", "surrogateescape"), path


def _readlink(path: str) -> str:
    """The target of a symbolic link (``net:[4026531840]`` for a namespace).

    Raises:
        _Missing: when the link is not there (its process exited).
        CgroupStatsError: when it cannot be read (permission denied, ...).
    """
    try:
        return os.readlink(path)
    except OSError as exc:
        raise _classify(path, exc) from exc


def _classify(path: str, exc: OSError) -> Exception:
    """_Missing for the errors of an absent or vanished file, CgroupStatsError for others."""
    if exc.errno in _GONE:
        return _Missing(path)
    return CgroupStatsError(f"cannot read {path}: {exc.strerror or exc}")


def _section(read: Callable[[], T], default: T, missing: list[str]) -> T:
    """``read()``, or ``default`` if its controller has no such cgroup (containerd's
    IgnoreNotExist), noting that in ``missing``.

    Raises:
        CgroupStatsError: as ``read`` does.
    """
    try:
        return read()
    except _Missing as exc:
        missing.append(str(exc))
        return default


def _optional(read: Callable[[], T]) -> T | None:
    """``read()``, or None if a file is not there (containerd's v2 Stat skips those).

    Raises:
        CgroupStatsError: as ``read`` does.
    """
    try:
        return read()
    except _Missing:
        return None


def _kv_file_v2(base: str, name: str) -> dict[str, int | str]:
    """A v2 flat-keyed file (cpu.stat, memory.stat) of ``base``.

    Raises:
        _Missing: when it is not there.
        CgroupStatsError: when a line is not ``key value`` or it cannot be read.
    """
    return parse_kv_v2(*_read(f"{base}/{name}"))


# --- parsing (each as containerd or moby parses the file) -------------------------------------
def parse_uint(text: str, path: str) -> int:
    """An unsigned counter, as containerd's parseUint reads it: a negative number reads as 0
    (``memory.limit_in_bytes`` can be -1 on some kernels).

    Raises:
        CgroupStatsError: when ``text`` is not a number that fits 64 bits.
    """
    value = text.strip()
    if value.isdigit() and value.isascii():
        number = int(value)
        if number <= UINT64_MAX:
            return number
    elif value[:1] == "-" and _is_uint(value[1:]):
        return 0
    raise CgroupStatsError(f"{path}: not an unsigned integer: {value[:40]!r}")


def parse_uint_v2(text: str, path: str) -> int:
    """A v2 single-value file as containerd's v2 code reads it: ``max`` is 2**64-1, a number as
    :func:`parse_uint`, anything else 0 (containerd logs it and goes on). Raises nothing."""
    value = text.strip()
    if value == "max":
        return UINT64_MAX
    try:
        return parse_uint(value, path)
    except CgroupStatsError:
        return 0


def parse_pids(text: str, path: str) -> list[int]:
    """The process ids of cgroup.procs, in its order.

    Raises:
        CgroupStatsError: when a line is not a process id.
    """
    try:
        return [int(line) for line in text.split()]
    except ValueError:
        raise CgroupStatsError(f"{path}: not a list of process ids") from None


def parse_kv_v1(text: str, path: str) -> dict[str, int]:
    """A v1 flat-keyed file (memory.stat) as containerd's parseKV reads it.

    Raises:
        CgroupStatsError: when a line is not ``key value`` with an unsigned integer value.
    """
    values: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 2:
            raise CgroupStatsError(f"{path}: not a 'key value' line: {line[:60]!r}")
        key, value = fields
        # The common case inline (memory.stat has some fifty lines); parse_uint for the rest.
        values[key] = (
            int(value)
            if len(value) < 20 and value.isdigit() and value.isascii()
            else parse_uint(value, path)
        )
    return values


def parse_kv_v2(text: str, path: str) -> dict[str, int | str]:
    """A v2 flat-keyed file as containerd's v2 parseKV reads it: a value that is not a number
    is kept as text (and reads as 0 where a number is wanted).

    Raises:
        CgroupStatsError: when a line is not ``key value``.
    """
    values: dict[str, int | str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 2:
            raise CgroupStatsError(f"{path}: not a 'key value' line: {line[:60]!r}")
        try:
            values[fields[0]] = parse_uint(fields[1], path)
        except CgroupStatsError:
            values[fields[0]] = fields[1]
    return values


def parse_blkio_v1(text: str, path: str) -> list[dict[str, Any]]:
    """A v1 blkio file (``major:minor Op value`` lines) as containerd's readEntry reads it: the
    closing ``Total value`` line is skipped, a ``major:minor value`` line has an empty op.

    Raises:
        CgroupStatsError: for any other line, or a field that is not a number.
    """
    entries: list[dict[str, Any]] = []
    for line in text.splitlines():
        fields = line.replace(":", " ").split()
        if len(fields) == 2 and fields[0] == "Total":
            continue
        if len(fields) not in (3, 4):
            raise CgroupStatsError(f"{path}: not a blkio line: {line[:60]!r}")
        numbers = [fields[0], fields[1], fields[-1]]
        if not _is_uint("".join(numbers)):
            raise CgroupStatsError(f"{path}: not a blkio line: {line[:60]!r}")
        op = fields[2] if len(fields) == 4 else ""
        major, minor, value = (int(number) for number in numbers)
        entries.append({"major": major, "minor": minor, "op": op, "value": value})
    return entries


def parse_io_stat(text: str) -> list[dict[str, Any]]:
    """v2 io.stat as containerd's readIoStats reads it and moby's statsV2 reports it: a
    ``read`` (rbytes) and a ``write`` (wbytes) entry per device. Lines or pairs it cannot read
    are skipped, and a device number that is not one ends the list. Raises nothing."""
    entries: list[dict[str, Any]] = []
    for line in text.split("\n"):
        parts = line.split(" ")
        device = parts[0].split(":")
        if len(parts) < 2 or len(device) != 2:
            continue
        if not (_is_uint(device[0]) and _is_uint(device[1])):
            break
        counters = {}
        for pair in parts[1:]:
            key, sep, value = pair.partition("=")
            if sep and "=" not in value and _is_uint(value):
                counters[key] = int(value)
        major, minor = int(device[0]), int(device[1])
        for op, key in (("read", "rbytes"), ("write", "wbytes")):
            entries.append(
                {"major": major, "minor": minor, "op": op, "value": counters.get(key, 0)}
            )
    return entries


def parse_proc_stat(text: str, path: str) -> int:
    """system_cpu_usage as moby's getSystemCPUUsage computes it: the sum of the first seven
    fields of the ``cpu`` line (user nice system idle iowait irq softirq; not steal) in clock
    ticks, times 1e9 / 100.

    Raises:
        CgroupStatsError: when there is no such line, or it is malformed.
    """
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            if len(fields) < 8 or not _is_uint("".join(fields[1:8])):
                raise CgroupStatsError(f"{path}: malformed cpu line: {line[:80]!r}")
            return sum(int(field) for field in fields[1:8]) * NANOSECONDS // CLOCK_TICKS
    raise CgroupStatsError(f"{path}: no cpu line")


def parse_net_dev(text: str, path: str) -> dict[str, dict[str, int]]:
    """The counters of /proc/<pid>/net/dev as Docker reports them, per interface but those of
    NOT_DOCKER_INTERFACES. rx_errors and tx_errors are 0, as libnetwork leaves them.

    Raises:
        CgroupStatsError: when a line after the two headers is not ``name: 16 counters``.
    """
    networks = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        counters = rest.split()
        if not sep or len(counters) != 16 or not _is_uint("".join(counters)):
            raise CgroupStatsError(f"{path}: not an interface line: {line[:80]!r}")
        if name.strip() in NOT_DOCKER_INTERFACES:
            continue
        rx_bytes, rx_packets, _, rx_dropped = (int(c) for c in counters[0:4])
        tx_bytes, tx_packets, _, tx_dropped = (int(c) for c in counters[8:12])
        networks[name.strip()] = {
            "rx_bytes": rx_bytes,
            "rx_packets": rx_packets,
            "rx_errors": 0,
            "rx_dropped": rx_dropped,
            "tx_bytes": tx_bytes,
            "tx_packets": tx_packets,
            "tx_errors": 0,
            "tx_dropped": tx_dropped,
        }
    return networks


def parse_meminfo_total(text: str) -> int:
    """MemTotal of /proc/meminfo in bytes (moby's system.ReadMemInfo); 0 if absent or
    unreadable. Raises nothing."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "MemTotal:" and _is_uint(fields[1]):
            unit = 1024 if len(fields) > 2 and fields[2].lower() == "kb" else 1
            return int(fields[1]) * unit
    return 0


def expand_slice(slice_name: str) -> str:
    """A systemd slice's cgroup path, as runc's ExpandSlice: ``a-b.slice`` is
    ``a.slice/a-b.slice``, ``-.slice`` the root.

    Raises:
        ValueError: when ``slice_name`` is not a slice name (``*.slice``, no ``/``, no empty
            component).
    """
    name = slice_name.removesuffix(".slice")
    if name == slice_name or not name or "/" in slice_name:
        raise ValueError(f"invalid slice name: {slice_name!r}")
    if name == "-":
        return ""
    components = name.split("-")
    if "" in components:
        raise ValueError(f"invalid slice name: {slice_name!r}")
    return "/".join("-".join(components[: i + 1]) + ".slice" for i in range(len(components)))


# --- small helpers --------------------------------------------------------------------------
def online_cpus() -> int:
    """online_cpus as moby counts them: the CPUs this process may run on (sched_getaffinity);
    dockerd counts its own, which on a host are the same unless one of the two is pinned."""
    return len(os.sched_getaffinity(0))


def docker_time(ns: int) -> str:
    """A time in nanoseconds since the epoch as Go's RFC3339Nano (trailing zeros trimmed)."""
    seconds, fraction = divmod(ns, NANOSECONDS)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{fraction:09d}".rstrip("0").rstrip(".") + "Z"


def _is_uint(text: str) -> bool:
    """Whether ``text`` is decimal digits only (what Go's ParseUint takes, sign excluded)."""
    return text.isdigit() and text.isascii()


def _as_uint(value: Any) -> int:
    """A parsed counter, or 0 for one that is absent or was text (containerd's getUint64Value)."""
    return value if isinstance(value, int) else 0


def _omit_zero(mapping: dict[str, Any]) -> dict[str, Any]:
    """Without zero and empty values, as Go's ``omitempty`` writes them."""
    return {key: value for key, value in mapping.items() if value}

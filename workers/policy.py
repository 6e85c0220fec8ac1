"""The operator's policy: what a valid spec may ask for. Checked before anything reaches Docker.

The Docker socket is root on the host, so everything that would let a container escape or reach
what the service does not own is refused unless the operator's settings allow it: privileged mode,
the host's (or another container's) namespaces, bind mounts of host paths outside an allowlist,
extra capabilities, devices, ports on addresses other than the allowed ones (or ports the service
itself listens on), unbounded pids, memory beyond the host's, swap, executable tmpfs, reserved
labels. The Docker socket itself can never be mounted, whatever the allowlist says.

Everything here is static: the spec and the operator's settings (and the host's size, when the
caller knows it) go in. Named volumes need Docker to tell what they are; the volume service
(:mod:`workers.resources`) resolves them and applies :meth:`Policy.check_bind` to any that is a
host path by another name.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlparse

from config.settings import Settings, normalize_capability
from workers.errors import InvalidSpec, PolicyViolation
from workers.spec import LABEL_NAMESPACE, ContainerSpec, port_bindings

_SOCKET_PATHS: tuple[str, ...] = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/docker/containerd/containerd.sock",
)
_DOCKER_HOST = os.environ.get("DOCKER_HOST", "")
if _DOCKER_HOST.startswith("unix://"):
    _SOCKET_PATHS = (*_SOCKET_PATHS, _DOCKER_HOST.removeprefix("unix://"))
# Both as written and as resolved here (/var/run is usually a symlink to /run).
DOCKER_SOCKETS = frozenset(_SOCKET_PATHS) | {os.path.realpath(p) for p in _SOCKET_PATHS}
# Mount propagation back to the host, and SELinux relabelling of host directories.
_REFUSED_BIND_MODES = frozenset({"shared", "rshared", "z", "Z"})
_ALWAYS_ALLOWED_NETWORKS = frozenset({"bridge", "none", "default"})
# ``network`` too: docker-py makes it the network mode when no network_mode is given, so
# {"network": "host"} is the host's network namespace.
_NAMESPACE_FIELDS = (
    "network_mode",
    "network",
    "pid_mode",
    "ipc_mode",
    "uts_mode",
    "userns_mode",
)
# Docker picks a published port it is not given from the kernel's ephemeral range.
_EPHEMERAL_PORTS = (32768, 60999)
_LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1", ""})


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What the policy needs to know of the Docker host a container goes to."""

    cpus: int
    memory_bytes: int

    @classmethod
    def from_info(cls, info: dict[str, object]) -> HostFacts:
        """From ``docker info``."""
        return cls(cpus=_int(info.get("NCPU"), 1), memory_bytes=_int(info.get("MemTotal"), 0))


@dataclass(frozen=True, slots=True)
class Policy:
    """What the operator allows beyond a plain, unprivileged, bounded container."""

    allow_privileged: bool = False
    allow_host_namespaces: bool = False
    allow_devices: bool = False
    allowed_bind_paths: tuple[str, ...] = ()
    allowed_rw_bind_paths: tuple[str, ...] = ()
    allowed_networks: frozenset[str] = field(default_factory=frozenset)
    allowed_capabilities: frozenset[str] = field(default_factory=frozenset)
    port_addresses: tuple[str, ...] = ("127.0.0.1",)
    port_range: tuple[int, int] = (1024, 65_535)
    service_ports: frozenset[int] = field(default_factory=frozenset)
    reserved_label_prefixes: tuple[str, ...] = (LABEL_NAMESPACE, "com.docker.compose.")
    max_pids_limit: int = 4096
    max_mem_limit: int | None = None
    allow_swap: bool = False
    tmpfs_max_bytes: int = 1024**3
    refuse_root_user: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy the settings describe."""
        return cls(
            allow_privileged=settings.allow_privileged,
            allow_host_namespaces=settings.allow_host_namespaces,
            allow_devices=settings.allow_devices,
            allowed_bind_paths=tuple(normalize_path(p) for p in settings.allowed_bind_paths),
            allowed_rw_bind_paths=tuple(normalize_path(p) for p in settings.allowed_rw_bind_paths),
            allowed_networks=frozenset(settings.allowed_networks),
            allowed_capabilities=frozenset(settings.allowed_capabilities),
            port_addresses=tuple(settings.allowed_port_addresses),
            port_range=(settings.host_port_min, settings.host_port_max),
            service_ports=frozenset(service_ports(settings)),
            reserved_label_prefixes=tuple(
                dict.fromkeys([LABEL_NAMESPACE, *settings.reserved_label_prefixes])
            ),
            max_pids_limit=settings.max_pids_limit,
            max_mem_limit=settings.max_mem_limit,
            allow_swap=settings.allow_swap,
            tmpfs_max_bytes=settings.tmpfs_max_bytes,
            refuse_root_user=settings.refuse_root_user,
        )

    def check(self, spec: ContainerSpec, host: HostFacts | None = None) -> None:
        """Refuse ``spec`` if it asks for anything not allowed (on ``host``, when known).

        Raises:
            PolicyViolation: naming the first offending field.
            InvalidSpec: a resource the host does not have (more CPUs than it has).
        """
        if spec.privileged and not self.allow_privileged:
            raise PolicyViolation("privileged: privileged containers are not allowed")
        self._check_namespaces(spec)
        if spec.devices and not self.allow_devices:
            raise PolicyViolation("devices: host devices are not allowed")
        # User-defined networks are checked against the service's records (workers/resources.py).
        self._check_capabilities(spec.cap_add or [])
        self._check_labels(spec.labels or {})
        self._check_ports(spec)
        self._check_resources(spec, host)
        self._check_tmpfs(spec)
        self._check_user(spec)
        for mount in spec.mounts:
            if mount.is_host_path:
                self.check_bind(mount.source, mount.modes)

    def check_network(self, network: str, *, managed: bool = False) -> None:
        """A network a container may join: bridge, none, the allowlist, or a managed one.

        Raises:
            PolicyViolation: any other.
        """
        if _shares_namespace(network):
            # "host" or "container:<id>" as a network is that namespace (Docker treats the
            # spec's network as its network mode when none is given).
            if not self.allow_host_namespaces:
                raise PolicyViolation(
                    f"network: {network!r} shares a namespace outside the container; not allowed"
                )
            return
        if managed or network in _ALWAYS_ALLOWED_NETWORKS | self.allowed_networks:
            return
        raise PolicyViolation(
            f"network {network!r} is not allowed: only networks the service created"
            " (containerizer.networks.create) or CONTAINERIZER_ALLOWED_NETWORKS"
        )

    def check_bind(self, source: str, modes: Iterable[str]) -> None:
        """A host path bound into a container (by a bind, or a volume that is one).

        Raises:
            PolicyViolation: outside the allowlist, writable outside the writable one, the Docker
                socket or a directory above it, or a mode that propagates to the host.
        """
        path = normalize_path(source)
        if any(_is_within(socket, path) for socket in DOCKER_SOCKETS):
            raise PolicyViolation(
                f"volumes: {source!r} would expose the Docker socket; never allowed"
            )
        modes = set(modes)
        if modes & _REFUSED_BIND_MODES:
            raise PolicyViolation(
                f"volumes: mode {','.join(sorted(modes))!r} of {source!r} (propagation to the"
                " host or relabelling) is not allowed"
            )
        writable = any(_is_within(path, allowed) for allowed in self.allowed_rw_bind_paths)
        readable = writable or any(_is_within(path, allowed) for allowed in self.allowed_bind_paths)
        if not readable:
            raise PolicyViolation(
                f"volumes: bind mount of host path {source!r} is not allowed"
                " (set CONTAINERIZER_ALLOWED_BIND_PATHS)"
            )
        if "ro" not in modes and not writable:
            raise PolicyViolation(
                f"volumes: host path {source!r} may only be mounted read-only (add ':ro';"
                " CONTAINERIZER_ALLOWED_RW_BIND_PATHS lists writable paths)"
            )

    def check_resources_fit(self, spec: ContainerSpec, host: HostFacts) -> None:
        """The spec's resources fit ``host`` (a placement decision may call this per host)."""
        self._check_resources(spec, host)

    # --- the parts of check ------------------------------------------------------------------
    def _check_namespaces(self, spec: ContainerSpec) -> None:
        if self.allow_host_namespaces:
            return
        for name in _NAMESPACE_FIELDS:
            mode = getattr(spec, name)
            if mode is not None and _shares_namespace(mode):
                raise PolicyViolation(
                    f"{name}: {mode!r} shares a namespace outside the container; not allowed"
                )

    def _check_capabilities(self, capabilities: Iterable[str]) -> None:
        for cap in capabilities:
            if normalize_capability(cap) not in self.allowed_capabilities:
                raise PolicyViolation(
                    f"cap_add: capability {cap!r} is not allowed"
                    " (CONTAINERIZER_ALLOWED_CAPABILITIES lists the ones that are)"
                )

    def _check_labels(self, labels: dict[str, str]) -> None:
        for key in labels:
            for prefix in self.reserved_label_prefixes:
                if key.startswith(prefix):
                    raise PolicyViolation(f"labels: {key!r}: the prefix {prefix!r} is reserved")

    def _check_ports(self, spec: ContainerSpec) -> None:
        low, high = self.port_range
        for key, binding in (spec.ports or {}).items():
            for address, port in port_bindings(key, binding):
                if address is not None and not self._address_allowed(address):
                    raise PolicyViolation(
                        f"ports: {key} on {address}: ports are published only on"
                        f" {', '.join(self.port_addresses)} (CONTAINERIZER_ALLOWED_PORT_ADDRESSES)"
                    )
                if port is None:
                    if not (low <= _EPHEMERAL_PORTS[0] and _EPHEMERAL_PORTS[1] <= high):
                        raise PolicyViolation(
                            f"ports: {key}: a port Docker chooses may lie outside {low}-{high};"
                            " name the host port"
                        )
                    continue
                if not low <= port <= high:
                    raise PolicyViolation(
                        f"ports: {key}: host port {port} is outside {low}-{high}"
                        " (CONTAINERIZER_HOST_PORT_MIN/MAX)"
                    )
                if port in self.service_ports:
                    raise PolicyViolation(
                        f"ports: {key}: host port {port} is one containerizer itself listens on"
                    )

    def _address_allowed(self, address: str) -> bool:
        parsed = str(ipaddress.ip_address(address))
        return parsed in self.port_addresses

    def _check_resources(self, spec: ContainerSpec, host: HostFacts | None) -> None:
        pids = spec.pids_limit
        if pids is not None and pids <= 0:
            raise PolicyViolation("pids_limit: unlimited processes are not allowed")
        if pids is not None and pids > self.max_pids_limit:
            raise PolicyViolation(
                f"pids_limit: {pids} is above the ceiling of {self.max_pids_limit}"
                " (CONTAINERIZER_MAX_PIDS_LIMIT)"
            )
        ceiling = self.max_mem_limit or (host.memory_bytes if host else None)
        if spec.mem_limit is not None and ceiling and spec.mem_limit > ceiling:
            raise PolicyViolation(
                f"mem_limit: {spec.mem_limit} bytes is above the ceiling of {ceiling}"
                " (CONTAINERIZER_MAX_MEM_LIMIT, else the host's memory)"
            )
        swap = spec.memswap_limit
        if swap is not None and not self.allow_swap and swap != spec.mem_limit:
            raise PolicyViolation(
                "memswap_limit: swap is not allowed (memswap_limit equals mem_limit;"
                " CONTAINERIZER_ALLOW_SWAP)"
            )
        if host is not None and spec.nano_cpus is not None and spec.nano_cpus > host.cpus * 10**9:
            raise InvalidSpec(f"nano_cpus: more than the host's {host.cpus} CPUs")

    def _check_tmpfs(self, spec: ContainerSpec) -> None:
        for mount in spec.tmpfs_mounts:
            loose = mount.asked & {"exec", "suid", "dev"}
            if loose:
                raise PolicyViolation(
                    f"tmpfs {mount.target}: {', '.join(sorted(loose))} not allowed (tmpfs mounts"
                    " are always noexec, nosuid, nodev)"
                )
            if mount.size is not None and not 0 < mount.size <= self.tmpfs_max_bytes:
                raise PolicyViolation(
                    f"tmpfs {mount.target}: size must be 1 to {self.tmpfs_max_bytes} bytes"
                    " (CONTAINERIZER_TMPFS_MAX_BYTES)"
                )

    def _check_user(self, spec: ContainerSpec) -> None:
        if not self.refuse_root_user:
            return
        uid = str(spec.user).split(":", 1)[0] if spec.user is not None else ""
        if not uid.isascii() or not uid.isdigit() or int(uid) == 0:
            raise PolicyViolation(
                "user: a numeric user id other than 0 is required (CONTAINERIZER_REFUSE_ROOT_USER)"
            )


def service_ports(settings: Settings) -> set[int]:
    """The host ports containerizer itself listens on, or whose Redis it runs here."""
    ports = {settings.flower_port, settings.metrics_port}
    for url in (settings.broker_url, settings.result_backend, settings.redis_url):
        parsed = urlparse(url)
        if parsed.scheme in ("redis", "rediss", "amqp") and (parsed.hostname or "") in (
            _LOCAL_NAMES
        ):
            try:
                ports.add(parsed.port or (5672 if parsed.scheme == "amqp" else 6379))
            except ValueError:
                continue
    return ports - {0}


def _shares_namespace(mode: str) -> bool:
    """``host`` and ``container:<id>`` join a namespace the container does not own."""
    lowered = mode.lower()
    return lowered == "host" or lowered.startswith("container:")


def normalize_path(path: str) -> str:
    """An absolute, normalized path with symlinks resolved where the path exists here."""
    return os.path.realpath(posixpath.normpath(posixpath.join("/", path)))


def _is_within(path: str, ancestor: str) -> bool:
    """True when ``path`` is ``ancestor`` or lies below it."""
    if ancestor == "/":
        return True
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default

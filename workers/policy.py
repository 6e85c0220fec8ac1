"""The operator's policy: what a valid spec may ask for. Checked before anything reaches Docker.

The Docker socket is root on the host, so everything that would let a container escape is refused
unless the operator's settings allow it: privileged mode, the host's (or another container's)
namespaces, bind mounts of host paths outside an allowlist, extra capabilities and devices. The
Docker socket itself can never be mounted, whatever the allowlist says.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field

from config.settings import Settings, normalize_capability
from workers.errors import PolicyViolation
from workers.spec import ContainerSpec, Mount

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
_NAMESPACE_FIELDS = ("network_mode", "pid_mode", "ipc_mode", "uts_mode", "userns_mode")


@dataclass(frozen=True, slots=True)
class Policy:
    """What the operator allows beyond a plain, unprivileged container."""

    allow_privileged: bool = False
    allow_host_namespaces: bool = False
    allow_devices: bool = False
    allowed_bind_paths: tuple[str, ...] = ()
    allowed_rw_bind_paths: tuple[str, ...] = ()
    allowed_networks: frozenset[str] = field(default_factory=frozenset)
    allowed_capabilities: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy the settings describe."""
        return cls(
            allow_privileged=settings.allow_privileged,
            allow_host_namespaces=settings.allow_host_namespaces,
            allow_devices=settings.allow_devices,
            allowed_bind_paths=tuple(_normalize(p) for p in settings.allowed_bind_paths),
            allowed_rw_bind_paths=tuple(_normalize(p) for p in settings.allowed_rw_bind_paths),
            allowed_networks=frozenset(settings.allowed_networks),
            allowed_capabilities=frozenset(settings.allowed_capabilities),
        )

    def check(self, spec: ContainerSpec) -> None:
        """Refuse ``spec`` if it asks for anything not allowed.

        Raises:
            PolicyViolation: naming the first offending field.
        """
        if spec.privileged and not self.allow_privileged:
            raise PolicyViolation("privileged: privileged containers are not allowed")
        if not self.allow_host_namespaces:
            for name in _NAMESPACE_FIELDS:
                mode = getattr(spec, name)
                if mode is not None and _shares_namespace(mode):
                    raise PolicyViolation(
                        f"{name}: {mode!r} shares a namespace outside the container; not allowed"
                    )
        if spec.devices and not self.allow_devices:
            raise PolicyViolation("devices: host devices are not allowed")
        network = spec.network_mode
        if (
            network is not None
            and not _shares_namespace(network)
            and network not in _ALWAYS_ALLOWED_NETWORKS | self.allowed_networks
        ):
            raise PolicyViolation(
                f"network_mode: network {network!r} is not allowed"
                " (set CONTAINERIZER_ALLOWED_NETWORKS)"
            )
        self._check_capabilities(spec.cap_add or [])
        self._check_mounts([m for m in spec.mounts if m.is_host_path])

    def _check_capabilities(self, capabilities: Iterable[str]) -> None:
        for cap in capabilities:
            if normalize_capability(cap) not in self.allowed_capabilities:
                raise PolicyViolation(f"cap_add: capability {cap!r} is not allowed")

    def _check_mounts(self, mounts: list[Mount]) -> None:
        for mount in mounts:
            source, path = mount.source, _normalize(mount.source)
            if any(_is_within(socket, path) for socket in DOCKER_SOCKETS):
                raise PolicyViolation(
                    f"volumes: {source!r} would expose the Docker socket; never allowed"
                )
            modes = set(mount.mode.split(","))
            if modes & _REFUSED_BIND_MODES:
                raise PolicyViolation(
                    f"volumes: mode {mount.mode!r} of {source!r} (propagation to the host or"
                    " relabelling) is not allowed"
                )
            writable = any(_is_within(path, allowed) for allowed in self.allowed_rw_bind_paths)
            readable = writable or any(
                _is_within(path, allowed) for allowed in self.allowed_bind_paths
            )
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


def _shares_namespace(mode: str) -> bool:
    """``host`` and ``container:<id>`` join a namespace the container does not own."""
    lowered = mode.lower()
    return lowered == "host" or lowered.startswith("container:")


def _normalize(path: str) -> str:
    """An absolute, normalized path with symlinks resolved where the path exists here."""
    return os.path.realpath(posixpath.normpath(posixpath.join("/", path)))


def _is_within(path: str, ancestor: str) -> bool:
    """True when ``path`` is ``ancestor`` or lies below it."""
    if ancestor == "/":
        return True
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")

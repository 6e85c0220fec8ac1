"""What Docker is asked to create for a validated spec: docker-py ``containers.create`` keywords.

Pure: the spec and the operator's settings go in, keywords come out. The operator's defaults apply
wherever the spec says nothing, and the hardening below applies to every container, each part
visible in ``docker inspect``:

* capabilities: Docker's default set without ``CONTAINERIZER_DROPPED_CAPABILITIES`` (NET_RAW and
  MKNOD; ``ALL`` drops every one), plus what ``cap_add`` asks (the policy allows);
* ``no-new-privileges``; a pids limit; a memory limit, and swap equal to it unless the spec asks
  (and the operator allows) more;
* json-file logs with a size and a count;
* tmpfs mounts always ``noexec,nosuid,nodev``, with a size;
* the OCI runtime named by the operator (another one only for ``gpus``);
* ports published on the first allowed address when the spec names none.
"""

from __future__ import annotations

from typing import Any

import docker.types

from config.settings import Settings, normalize_capability
from workers.spec import MANAGED_LABEL, SPEC_HASH_LABEL, ContainerSpec, Tmpfs, port_bindings

MANAGED_FILTER = f"{MANAGED_LABEL}=true"
CREATE_TOKEN_LABEL = "containerizer.create-token"
HOST_LABEL = "containerizer.host"


def create_kwargs(
    spec: ContainerSpec, settings: Settings, *, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """docker-py ``containers.create`` keywords for ``spec``, with the operator's defaults and
    the hardening of every container; ``labels`` are the service's own (a create token, the
    host)."""
    kwargs = spec.model_dump(
        exclude_none=True,
        exclude={"gpus", "ports", "restart_policy", "tmpfs", "cap_drop", "auto_remove"},
    )
    kwargs.setdefault("network_mode", spec.network or settings.default_network_mode)
    if settings.default_cpu_shares is not None:
        kwargs.setdefault("cpu_shares", settings.default_cpu_shares)
    mem_limit = spec.mem_limit if spec.mem_limit is not None else settings.default_mem_limit
    kwargs["mem_limit"] = mem_limit
    # No swap unless asked for (and allowed): swap equal to memory.
    kwargs["memswap_limit"] = spec.memswap_limit if spec.memswap_limit is not None else mem_limit
    kwargs["pids_limit"] = (
        spec.pids_limit if spec.pids_limit is not None else (settings.default_pids_limit)
    )
    if not kwargs.get("privileged"):
        kwargs.pop("privileged", None)
    if spec.read_only is None and settings.read_only_rootfs:
        kwargs["read_only"] = True
    cap_drop = dropped_capabilities(spec, settings)
    if cap_drop:
        kwargs["cap_drop"] = cap_drop
    if settings.no_new_privileges:
        kwargs["security_opt"] = ["no-new-privileges:true"]
    kwargs["log_config"] = docker.types.LogConfig(
        type="json-file",
        config={"max-size": settings.log_max_size, "max-file": str(settings.log_max_file)},
    )
    kwargs["runtime"] = settings.gpu_runtime if spec.gpus else settings.container_runtime
    if spec.tmpfs is not None:
        kwargs["tmpfs"] = {
            mount.target: tmpfs_options(mount, settings) for mount in spec.tmpfs_mounts
        }
    if spec.restart_policy is not None:
        kwargs["restart_policy"] = spec.restart_policy.model_dump()
    if spec.ports is not None:
        kwargs["ports"] = published_ports(spec, settings.allowed_port_addresses[0])
    if spec.gpus:
        kwargs["device_requests"] = [
            docker.types.DeviceRequest(count=spec.gpus, capabilities=[["gpu"]])
        ]
    kwargs["labels"] = {
        **(spec.labels or {}),
        **(labels or {}),
        MANAGED_LABEL: "true",
        SPEC_HASH_LABEL: spec.spec_hash(),
    }
    return kwargs


def dropped_capabilities(spec: ContainerSpec, settings: Settings) -> list[str]:
    """The operator's dropped capabilities (but the ones ``cap_add`` asks for), then the spec's."""
    added = {normalize_capability(cap) for cap in spec.cap_add or []}
    dropped = [cap for cap in settings.dropped_capabilities if cap not in added]
    for cap in spec.cap_drop or []:
        if normalize_capability(cap) not in {normalize_capability(c) for c in dropped}:
            dropped.append(cap)
    return dropped


def tmpfs_options(mount: Tmpfs, settings: Settings) -> str:
    """A tmpfs's mount options: never executable, setuid or device files; always a size."""
    size = mount.size if mount.size is not None else settings.tmpfs_default_bytes
    access = "ro" if "ro" in mount.asked else "rw"
    return ",".join([access, "noexec", "nosuid", "nodev", f"size={size}", *mount.options])


def published_ports(spec: ContainerSpec, address: str) -> dict[str, list[tuple[str, int | None]]]:
    """docker-py's ``ports``: each binding on its address (the default one when it names none)."""
    return {
        key: [(host or address, port) for host, port in port_bindings(key, binding)]
        for key, binding in (spec.ports or {}).items()
    }

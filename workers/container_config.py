"""What Docker is asked to create for a validated spec: docker-py ``containers.create`` keywords.

Pure: the spec, the operator's settings and the facts of the host go in, keywords come out. The
operator's defaults apply wherever the spec says nothing.
"""

from __future__ import annotations

from typing import Any

import docker.types

from config.settings import Settings
from workers.spec import MANAGED_LABEL, SPEC_HASH_LABEL, ContainerSpec

MANAGED_FILTER = f"{MANAGED_LABEL}=true"


def create_kwargs(spec: ContainerSpec, settings: Settings) -> dict[str, Any]:
    """docker-py ``containers.create`` keywords for ``spec``, with the operator's defaults."""
    kwargs = spec.model_dump(exclude_none=True, exclude={"gpus", "ports", "restart_policy"})
    kwargs.setdefault("network_mode", settings.default_network_mode)
    if settings.default_cpu_shares is not None:
        kwargs.setdefault("cpu_shares", settings.default_cpu_shares)
    if settings.default_mem_limit is not None:
        kwargs.setdefault("mem_limit", settings.default_mem_limit)
    if not kwargs.get("privileged"):
        kwargs.pop("privileged", None)
    if spec.restart_policy is not None:
        kwargs["restart_policy"] = spec.restart_policy.model_dump()
    if spec.ports is not None:
        kwargs["ports"] = {
            port: tuple(binding)
            if isinstance(binding, list) and binding and isinstance(binding[0], str)
            else binding
            for port, binding in spec.ports.items()
        }
    if spec.gpus:
        kwargs["device_requests"] = [
            docker.types.DeviceRequest(count=spec.gpus, capabilities=[["gpu"]])
        ]
    kwargs["labels"] = {
        **(spec.labels or {}),
        MANAGED_LABEL: "true",
        SPEC_HASH_LABEL: spec.spec_hash(),
    }
    return kwargs

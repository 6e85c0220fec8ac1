"""The Docker service: container operations against one Docker engine, through docker-py.

Every method translates docker-py's failures into containerizer's errors
(:mod:`workers.docker_errors`) and finds containers by reference only among those that carry the
``containerizer.managed`` label (:meth:`DockerService.info`): anything else is reported as
:class:`~workers.errors.ContainerNotFound`, so a job cannot stop or read the operator's own
containers through this service. Operations by id trust their caller to have resolved the id so.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import docker.types

from config.settings import Settings
from workers.docker_errors import docker_errors
from workers.errors import Conflict, ContainerNotFound
from workers.models import ContainerInfo, ContainerStatus
from workers.spec import MANAGED_LABEL, SPEC_HASH_LABEL, ContainerSpec

log = logging.getLogger(__name__)

MANAGED_FILTER = f"{MANAGED_LABEL}=true"


@dataclass(frozen=True, slots=True)
class Created:
    """The outcome of a create: the container, and whether it existed (a repeated create)."""

    info: ContainerInfo
    existed: bool


@dataclass(frozen=True, slots=True)
class Timed:
    """A container after an operation whose duration matters (start, restart)."""

    info: ContainerInfo
    milliseconds: float


def connect(settings: Settings) -> docker.DockerClient:
    """A docker-py client for ``DOCKER_HOST`` (or the local socket).

    Raises:
        DockerUnavailable: when the daemon does not answer (docker-py asks it for its API version).
    """
    with docker_errors("docker"):
        client = docker.from_env(
            version=settings.docker_api_version,
            timeout=int(settings.docker_timeout_seconds),
            # A stats sweep keeps this many calls in flight; idle connections cost nothing.
            max_pool_size=max(10, settings.stats_concurrency),
        )
    if client.api.base_url.startswith("http+docker://"):
        # A local socket (unix, named pipe, ssh): no proxy or .netrc applies to it, and
        # reading them from the environment costs ~0.1 ms on every request.
        client.api.trust_env = False
    return client


class DockerService:
    """Container operations on one engine. Takes its docker-py client in."""

    def __init__(self, client: docker.DockerClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    # --- lifecycle ----------------------------------------------------------------------------
    def create(self, spec: ContainerSpec) -> Created:
        """Create a container from a validated, policy-checked spec.

        A create that repeats an earlier one (same name, same spec) returns the existing container,
        so a redelivered task does no harm.

        Raises:
            ImageNotFound: the image is not present on the host.
            Conflict: the name is taken by a container with another spec.
            DockerUnavailable: the daemon does not answer.
        """
        kwargs = self.create_kwargs(spec)
        subject = f"container {spec.name or spec.image}"
        try:
            with docker_errors(subject):
                container = self.client.containers.create(**kwargs)
        except Conflict:
            if spec.name is None:
                raise
            try:
                existing = self.info(spec.name)
            except ContainerNotFound:
                raise Conflict(
                    f"container {spec.name}: the name is taken by a container that containerizer"
                    " does not manage"
                ) from None
            if existing.labels.get(SPEC_HASH_LABEL) != spec.spec_hash():
                raise Conflict(
                    f"container {spec.name}: the name is taken by a container with another spec"
                ) from None
            return Created(existing, existed=True)
        return Created(ContainerInfo.from_attrs(container.attrs), existed=False)

    def start(self, container_id: str) -> float:
        """Start a container (a running one is left as it is); returns how long it took, in ms.

        Raises:
            ContainerNotFound, DockerUnavailable, EngineError.
        """
        with docker_errors(f"container {container_id}"):
            began = time.perf_counter()
            self.client.api.start(container_id)
        return round((time.perf_counter() - began) * 1000.0, 2)

    def stop(self, container_id: str, timeout: int) -> ContainerInfo:
        """Stop gracefully: SIGTERM (or the image's stop signal), SIGKILL after ``timeout`` s.

        Stopping a container that is not running succeeds and changes nothing (Docker answers
        304 Not Modified).
        """
        with docker_errors(f"container {container_id}"):
            self.client.api.stop(container_id, timeout=timeout)
            return ContainerInfo.from_attrs(self.client.api.inspect_container(container_id))

    def kill(self, container_id: str, signal: str) -> ContainerInfo:
        """Send ``signal``; a container that is not running has nothing to signal and is left so."""
        with docker_errors(f"container {container_id}"):
            try:
                self.client.api.kill(container_id, signal=signal)
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: not running, the state a kill asks for.
                    raise
            return ContainerInfo.from_attrs(self.client.api.inspect_container(container_id))

    def restart(self, container_id: str, timeout: int) -> Timed:
        """Stop (as :meth:`stop`) then start; time the whole restart."""
        with docker_errors(f"container {container_id}"):
            began = time.perf_counter()
            self.client.api.restart(container_id, timeout=timeout)
            elapsed_ms = (time.perf_counter() - began) * 1000.0
            attrs = self.client.api.inspect_container(container_id)
        return Timed(ContainerInfo.from_attrs(attrs), round(elapsed_ms, 2))

    def remove(self, container_id: str, *, force: bool, volumes: bool) -> None:
        """Remove a container (a running one only with ``force``).

        Raises:
            Conflict: it is running and ``force`` is false.
            ContainerNotFound: it does not exist.
        """
        with docker_errors(f"container {container_id}"):
            self.client.api.remove_container(container_id, v=volumes, force=force)

    # --- inspection ---------------------------------------------------------------------------
    def inspect(self, reference: str) -> dict[str, Any]:
        """The engine's inspect document of a managed container.

        Raises:
            ContainerNotFound: no container, or one containerizer does not manage.
        """
        with docker_errors(f"container {reference}"):
            attrs: dict[str, Any] = self.client.api.inspect_container(reference)
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        if labels.get(MANAGED_LABEL) != "true":
            raise ContainerNotFound(
                f"container {reference}: not managed by containerizer"
                f" (no {MANAGED_LABEL}=true label)"
            )
        return attrs

    def info(self, reference: str) -> ContainerInfo:
        """What Docker says of a managed container now (see :meth:`inspect`)."""
        return ContainerInfo.from_attrs(self.inspect(reference))

    def logs(self, container_id: str, *, tail: int, timestamps: bool) -> str:
        """The last ``tail`` lines of stdout and stderr, interleaved as written."""
        with docker_errors(f"container {container_id}"):
            output = self.client.api.logs(
                container_id, stdout=True, stderr=True, tail=tail, timestamps=timestamps
            )
        return bytes(output).decode("utf-8", "replace")

    def list(self, *, all: bool, labels: list[str]) -> list[dict[str, Any]]:
        """Managed containers, optionally filtered by labels (``key`` or ``key=value``)."""
        with docker_errors("containers"):
            rows = self.client.api.containers(all=all, filters={"label": [MANAGED_FILTER, *labels]})
        return [
            {
                "id": row["Id"],
                "name": (row.get("Names") or ["/"])[0].lstrip("/"),
                "image": row.get("Image", ""),
                "status": ContainerStatus.from_docker(str(row.get("State", ""))).value,
                "labels": row.get("Labels") or {},
            }
            for row in rows
        ]

    def stats(self, container_id: str) -> dict[str, Any]:
        """One raw stats sample, taken at once (``one_shot``: no second sample, no 1-2 s wait)."""
        with docker_errors(f"container {container_id}"):
            raw = self.client.api.stats(container_id, stream=False, one_shot=True)
        return dict(raw)

    # --- helpers ------------------------------------------------------------------------------
    def create_kwargs(self, spec: ContainerSpec) -> dict[str, Any]:
        """docker-py ``containers.create`` keywords for ``spec``, with the operator's defaults."""
        kwargs = spec.model_dump(exclude_none=True, exclude={"gpus", "ports", "restart_policy"})
        kwargs.setdefault("network_mode", self.settings.default_network_mode)
        if self.settings.default_cpu_shares is not None:
            kwargs.setdefault("cpu_shares", self.settings.default_cpu_shares)
        if self.settings.default_mem_limit is not None:
            kwargs.setdefault("mem_limit", self.settings.default_mem_limit)
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

"""ContainerSpec: the JSON a caller sends to create or run a container, validated before Docker.

Field names are docker-py's ``containers.create`` keywords, plus ``gpus`` (a count). Unknown fields,
wrong types and out-of-range values raise :class:`~workers.errors.InvalidSpec`; whether a valid spec
is *allowed* is the policy's business (:mod:`workers.policy`).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from workers.errors import InvalidSpec
from workers.reference import ImageReference, parse_reference

MiB = 1024 * 1024
MIN_MEMORY_BYTES = 6 * MiB  # Docker refuses less.
NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$"
NAME_MAX = 255
LABEL_NAMESPACE = "containerizer."
MANAGED_LABEL = "containerizer.managed"
SPEC_HASH_LABEL = "containerizer.spec-hash"

_BYTES_RE = re.compile(r"\s*(\d+)\s*([bkmgt]?)(?:i?b)?\s*", re.IGNORECASE)
_VOLUME_MODES = frozenset(
    {"rw", "ro", "z", "Z", "nocopy", "consistent", "cached", "delegated"}
    | {"shared", "rshared", "slave", "rslave", "private", "rprivate"}
)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_CAPABILITY_RE = re.compile(r"[A-Za-z_]+")
_PORT_KEY_RE = re.compile(r"\d{1,5}(?:/(?:tcp|udp|sctp))?")


def parse_bytes(value: object, *, field: str) -> int:
    """Return ``value`` (an int, or a string like ``"512m"``) in bytes.

    Raises:
        ValueError: when ``value`` is neither.
    """
    if isinstance(value, bool):
        raise ValueError(f"{field} must be bytes (an integer) or a size like '512m'")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _BYTES_RE.fullmatch(value)
        if match:
            return int(match.group(1)) * _UNITS[match.group(2).lower()]
    raise ValueError(f"{field} must be bytes (an integer) or a size like '512m', got {value!r}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RestartPolicy(_Strict):
    """docker-py's ``restart_policy``: ``{"Name": "on-failure", "MaximumRetryCount": 3}``."""

    Name: Literal["", "no", "always", "unless-stopped", "on-failure"] = "no"
    MaximumRetryCount: Annotated[int, Field(ge=0, le=1000)] = 0


class Healthcheck(_Strict):
    """docker-py's ``healthcheck`` (durations in nanoseconds)."""

    test: list[str] | str
    interval: Annotated[int, Field(ge=1_000_000)] | None = None
    timeout: Annotated[int, Field(ge=1_000_000)] | None = None
    retries: Annotated[int, Field(ge=0)] | None = None
    start_period: Annotated[int, Field(ge=0)] | None = None


class VolumeBinding(_Strict):
    """The value of a dict-form ``volumes`` entry: ``{"bind": "/data", "mode": "ro"}``."""

    bind: str
    mode: str = "rw"


@dataclass(frozen=True, slots=True)
class Mount:
    """One entry of ``volumes``, whichever form the caller used."""

    source: str
    target: str
    mode: str

    @property
    def is_host_path(self) -> bool:
        """A source that is a path binds the host's filesystem; otherwise it names a volume."""
        return self.source.startswith("/") or self.source.startswith(".")


class ContainerSpec(_Strict):
    """What to create. Field names and meanings are docker-py's, see ``containers.create``."""

    image: str
    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=NAME_MAX)] | None = None
    command: str | list[str] | None = None
    entrypoint: str | list[str] | None = None
    environment: dict[str, str | int | float] | list[str] | None = None
    labels: dict[str, str] | None = None
    cpu_shares: Annotated[int, Field(ge=2, le=262_144)] | None = None
    cpu_quota: Annotated[int, Field(ge=1_000)] | None = None
    cpu_period: Annotated[int, Field(ge=1_000, le=1_000_000)] | None = None
    nano_cpus: Annotated[int, Field(ge=10_000_000)] | None = None
    mem_limit: int | None = None
    memswap_limit: int | None = None
    pids_limit: Annotated[int, Field(ge=-1)] | None = None
    network_mode: Annotated[str, Field(min_length=1)] | None = None
    ports: dict[str, Any] | None = None
    volumes: dict[str, VolumeBinding] | list[str] | None = None
    restart_policy: RestartPolicy | None = None
    healthcheck: Healthcheck | None = None
    user: str | int | None = None
    working_dir: str | None = None
    privileged: bool = False
    cap_add: list[str] | None = None
    cap_drop: list[str] | None = None
    read_only: bool | None = None
    tmpfs: dict[str, str] | list[str] | None = None
    gpus: Annotated[int, Field(ge=-1)] | None = None
    # Not in the original contract, accepted so that the policy can refuse them by name (and an
    # operator can allow them) instead of a generic "unknown field".
    pid_mode: str | None = None
    ipc_mode: str | None = None
    uts_mode: str | None = None
    userns_mode: str | None = None
    devices: list[str] | None = None

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        try:
            parse_reference(value)
        except InvalidSpec as exc:
            raise ValueError(str(exc).removeprefix("image: ")) from None
        return value

    @field_validator("mem_limit", "memswap_limit", mode="before")
    @classmethod
    def _bytes(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            return None
        return parse_bytes(value, field=info.field_name or "size")

    @field_validator("mem_limit")
    @classmethod
    def _memory_floor(cls, value: int | None) -> int | None:
        if value is not None and value < MIN_MEMORY_BYTES:
            raise ValueError(f"must be at least 6 MiB ({MIN_MEMORY_BYTES} bytes), got {value}")
        return value

    @field_validator("environment")
    @classmethod
    def _environment(
        cls, value: dict[str, str | int | float] | list[str] | None
    ) -> dict[str, str | int | float] | list[str] | None:
        names = (
            value.keys() if isinstance(value, dict) else [v.split("=", 1)[0] for v in value or []]
        )
        for name in names:
            if not name or "=" in name or "\x00" in name:
                raise ValueError(f"invalid environment variable name {name!r}")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key in value or {}:
            if not key:
                raise ValueError("label keys must be non-empty")
            if key.startswith(LABEL_NAMESPACE):
                raise ValueError(f"label {key!r}: the {LABEL_NAMESPACE!r} namespace is reserved")
        return value

    @field_validator("cap_add", "cap_drop")
    @classmethod
    def _capabilities(cls, value: list[str] | None) -> list[str] | None:
        for cap in value or []:
            if not _CAPABILITY_RE.fullmatch(cap):
                raise ValueError(f"invalid capability name {cap!r}")
        return value

    @field_validator("working_dir")
    @classmethod
    def _working_dir(cls, value: str | None) -> str | None:
        if value is not None and not posixpath.isabs(value):
            raise ValueError("must be an absolute path")
        return value

    @field_validator("ports")
    @classmethod
    def _ports(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for key, binding in (value or {}).items():
            if not _PORT_KEY_RE.fullmatch(key) or not 0 < int(key.split("/")[0]) < 65_536:
                raise ValueError(f"invalid container port {key!r} (e.g. '8080' or '8080/tcp')")
            _check_port_binding(key, binding)
        return value

    @field_validator("volumes")
    @classmethod
    def _volumes(
        cls, value: dict[str, VolumeBinding] | list[str] | None
    ) -> dict[str, VolumeBinding] | list[str] | None:
        if isinstance(value, list):
            for entry in value:
                parts = entry.split(":")
                if len(parts) not in (2, 3) or not all(parts[:2]):
                    raise ValueError(f"invalid volume {entry!r} (want 'source:target[:mode]')")
        for mount in _mounts(value):
            if not posixpath.isabs(mount.target):
                raise ValueError(f"volume target {mount.target!r} must be an absolute path")
            unknown = set(mount.mode.split(",")) - _VOLUME_MODES
            if unknown:
                raise ValueError(f"volume {mount.target!r}: unknown mode(s) {sorted(unknown)}")
        return value

    @model_validator(mode="after")
    def _memory_swap(self) -> ContainerSpec:
        if self.memswap_limit is not None and self.memswap_limit != -1:
            if self.mem_limit is None:
                raise ValueError("memswap_limit needs mem_limit")
            if self.memswap_limit < self.mem_limit:
                raise ValueError("memswap_limit must be -1 or at least mem_limit")
        return self

    @property
    def reference(self) -> ImageReference:
        """The parsed image reference."""
        return parse_reference(self.image)

    @property
    def mounts(self) -> list[Mount]:
        """Every entry of ``volumes`` in one form."""
        return _mounts(self.volumes)

    def spec_hash(self) -> str:
        """A digest of the spec as given, to recognise a repeated create of the same container."""
        canonical = json.dumps(self.model_dump(mode="json", exclude_none=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def with_name(self, name: str) -> ContainerSpec:
        """A copy carrying ``name``."""
        return self.model_copy(update={"name": name})


def _check_port_binding(key: str, binding: Any) -> None:
    """A binding is a host port, null (any port), [host_ip, host_port] or a list of host ports."""
    if binding is None or _is_port(binding):
        return
    if isinstance(binding, list):
        if (
            len(binding) == 2
            and isinstance(binding[0], str)
            and (binding[1] is None or _is_port(binding[1]))
        ):
            return
        if binding and all(_is_port(port) for port in binding):
            return
    raise ValueError(
        f"port {key}: binding must be a host port, null, [host_ip, host_port] or a list of ports"
    )


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65_536


def _mounts(volumes: Mapping[str, VolumeBinding] | list[str] | None) -> list[Mount]:
    if volumes is None:
        return []
    if isinstance(volumes, list):
        mounts = []
        for entry in volumes:
            source, target, *rest = entry.split(":")
            mounts.append(Mount(source, target, rest[0] if rest else "rw"))
        return mounts
    return [Mount(source, b.bind, b.mode) for source, b in volumes.items()]


def parse_spec(data: object) -> ContainerSpec:
    """Validate a caller's JSON spec.

    Raises:
        InvalidSpec: naming every offending field.
    """
    if not isinstance(data, Mapping):
        raise InvalidSpec(f"spec must be a JSON object, got {type(data).__name__}")
    try:
        return ContainerSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidSpec(f"invalid spec: {format_validation_error(exc)}") from None


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``field.path: message``."""
    problems = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"]) or "spec"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "value_error":
            message = str(error.get("ctx", {}).get("error", message))
        problems.append(f"{location}: {message}")
    return "; ".join(problems)


__all__ = [
    "MANAGED_LABEL",
    "SPEC_HASH_LABEL",
    "ContainerSpec",
    "Mount",
    "format_validation_error",
    "parse_bytes",
    "parse_spec",
]

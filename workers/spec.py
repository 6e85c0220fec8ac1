"""ContainerSpec: the JSON a caller sends to create or run a container, validated before Docker.

Field names are docker-py's ``containers.create`` keywords, plus ``gpus`` (a count). Unknown fields,
wrong types and out-of-range values raise :class:`~workers.errors.InvalidSpec` naming the field;
whether a valid spec is *allowed* is the policy's business (:mod:`workers.policy`). Everything a
spec can say is bounded here, so that nothing Docker would refuse (or docker-py would fail to build)
gets that far: every number within int64 and Docker's own range, digits ASCII only, no NUL
anywhere, paths of bounded length checked before anything normalises them, a string ``command``
split as docker-py would split it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import posixpath
import re
import shlex
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
from workers.limits import ArgumentLimits, check_value
from workers.reference import ImageReference, parse_reference

MiB = 1024 * 1024
MIN_MEMORY_BYTES = 6 * MiB  # Docker refuses less.
INT64_MAX = 2**63 - 1
NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$"
NAME_MAX = 255
PATH_MAX = 4096
PATH_COMPONENTS_MAX = 256
LABEL_NAMESPACE = "containerizer."
MANAGED_LABEL = "containerizer.managed"
SPEC_HASH_LABEL = "containerizer.spec-hash"

Nanoseconds = Annotated[int, Field(ge=1_000_000, le=INT64_MAX)]

_BYTES_RE = re.compile(r"\s*([0-9]+)\s*([bkmgt]?)(?:i?b)?\s*", re.IGNORECASE | re.ASCII)
_VOLUME_MODES = frozenset(
    {"rw", "ro", "z", "Z", "nocopy", "consistent", "cached", "delegated"}
    | {"shared", "rshared", "slave", "rslave", "private", "rprivate"}
)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_CAPABILITY_RE = re.compile(r"[A-Za-z_]{1,64}", re.ASCII)
_PORT_KEY_RE = re.compile(r"[0-9]{1,5}(?:/(?:tcp|udp|sctp))?", re.ASCII)
# A volume name as Docker accepts one (a name, not a path).
_VOLUME_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}", re.ASCII)
_NETWORK_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}", re.ASCII)
_CONTAINER_REF_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}", re.ASCII)
_USER_RE = re.compile(r"[a-zA-Z0-9_.-]{1,256}(?::[a-zA-Z0-9_.-]{1,256})?", re.ASCII)
_ENV_NAME_RE = re.compile(r"[^=\x00]{1,1024}")
_DEVICE_RE = re.compile(r"/[^:]{0,4095}(?::/[^:]{0,4095})?(?::[rwm]{1,3})?")
_NETWORK_MODES = frozenset({"bridge", "none", "host", "default"})
#: The namespace modes docker-py can express; anything else is InvalidSpec. ``host`` and
#: ``container:<name or id>`` share a namespace and need the operator's permission (policy).
NAMESPACE_MODES: dict[str, frozenset[str]] = {
    "pid_mode": frozenset({"host"}),
    "ipc_mode": frozenset({"private", "shareable", "none", "host"}),
    "uts_mode": frozenset({"host"}),
    "userns_mode": frozenset({"host"}),
}
_JOINS_CONTAINER = frozenset({"pid_mode", "ipc_mode"})


def parse_bytes(value: object, *, field: str) -> int:
    """Return ``value`` (an int, or a string like ``"512m"``) in bytes.

    Raises:
        ValueError: when ``value`` is neither, or is more than int64 holds.
    """
    if isinstance(value, bool):
        raise ValueError(f"{field} must be bytes (an integer) or a size like '512m'")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _BYTES_RE.fullmatch(value)):
        if len(match.group(1)) > 19:
            raise ValueError(f"{field} is more than int64 holds")
        size = int(match.group(1)) * _UNITS[match.group(2).lower()]
    else:
        raise ValueError(f"{field} must be bytes (an integer) or a size like '512m', got {value!r}")
    if size > INT64_MAX:
        raise ValueError(f"{field} is more than int64 holds ({INT64_MAX})")
    return size


def check_path(value: str, *, what: str) -> str:
    """An absolute path of bounded length and depth (checked before anything normalises it).

    Raises:
        ValueError: naming ``what``.
    """
    if len(value) > PATH_MAX:
        raise ValueError(f"{what}: paths are at most {PATH_MAX} characters")
    if value.count("/") > PATH_COMPONENTS_MAX:
        raise ValueError(f"{what}: paths have at most {PATH_COMPONENTS_MAX} components")
    if not posixpath.isabs(value):
        raise ValueError(f"{what}: {value!r} must be an absolute path")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RestartPolicy(_Strict):
    """docker-py's ``restart_policy``: ``{"Name": "on-failure", "MaximumRetryCount": 3}``."""

    Name: Literal["", "no", "always", "unless-stopped", "on-failure"] = "no"
    MaximumRetryCount: Annotated[int, Field(ge=0, le=1000)] = 0


class Healthcheck(_Strict):
    """docker-py's ``healthcheck`` (durations in nanoseconds, at least 1 ms)."""

    test: list[str] | str
    interval: Nanoseconds | None = None
    timeout: Nanoseconds | None = None
    retries: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    start_period: Annotated[int, Field(ge=0, le=INT64_MAX)] | None = None

    @field_validator("test")
    @classmethod
    def _test(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list) and (
            not value or value[0] not in ("NONE", "CMD", "CMD-SHELL") or len(value) > 1024
        ):
            raise ValueError("must be a string, or a list starting with NONE, CMD or CMD-SHELL")
        return value


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
        return self.source.startswith("/")

    @property
    def modes(self) -> frozenset[str]:
        return frozenset(self.mode.split(","))


@dataclass(frozen=True, slots=True)
class Tmpfs:
    """One tmpfs mount: its target and its options (size in bytes, mode, uid, gid)."""

    target: str
    size: int | None
    options: tuple[str, ...]  # mode=..., uid=..., gid=...
    asked: frozenset[str]  # flags the caller wrote (exec, suid, dev, ro, ...)


_TMPFS_FLAGS = frozenset({"rw", "ro", "noexec", "exec", "nosuid", "suid", "nodev", "dev"})
_TMPFS_NUMERIC = {"mode": re.compile(r"[0-7]{3,4}"), "uid": re.compile(r"[0-9]{1,10}")}
_TMPFS_NUMERIC["gid"] = _TMPFS_NUMERIC["uid"]


def parse_tmpfs_options(target: str, text: str) -> Tmpfs:
    """``size=64m,mode=1777,noexec`` of a tmpfs at ``target``.

    Raises:
        ValueError: an option tmpfs mounts of containerizer do not take.
    """
    size: int | None = None
    options: list[str] = []
    asked: set[str] = set()
    for option in filter(None, text.split(",")):
        key, sep, value = option.partition("=")
        if not sep and key in _TMPFS_FLAGS:
            asked.add(key)
        elif key == "size" and sep:
            size = parse_bytes(value, field=f"tmpfs {target} size")
        elif key in _TMPFS_NUMERIC and sep and _TMPFS_NUMERIC[key].fullmatch(value):
            options.append(option)
        else:
            raise ValueError(
                f"tmpfs {target}: unknown option {option!r} (size, mode, uid, gid, ro, rw,"
                " noexec, nosuid, nodev)"
            )
    return Tmpfs(target, size, tuple(options), frozenset(asked))


class ContainerSpec(_Strict):
    """What to create. Field names and meanings are docker-py's, see ``containers.create``."""

    image: str
    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=NAME_MAX)] | None = None
    command: str | list[str] | None = None
    entrypoint: str | list[str] | None = None
    environment: dict[str, str | int | float] | list[str] | None = None
    labels: dict[str, str] | None = None
    cpu_shares: Annotated[int, Field(ge=2, le=262_144)] | None = None
    cpu_quota: Annotated[int, Field(ge=1_000, le=1_000_000_000)] | None = None
    cpu_period: Annotated[int, Field(ge=1_000, le=1_000_000)] | None = None
    nano_cpus: Annotated[int, Field(ge=10_000_000, le=INT64_MAX)] | None = None
    mem_limit: int | None = None
    memswap_limit: int | None = None
    pids_limit: Annotated[int, Field(ge=-1, le=INT64_MAX)] | None = None
    network_mode: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    network: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    ports: dict[str, Any] | None = None
    volumes: dict[str, VolumeBinding] | list[str] | None = None
    restart_policy: RestartPolicy | None = None
    healthcheck: Healthcheck | None = None
    user: str | Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    working_dir: str | None = None
    privileged: bool = False
    cap_add: Annotated[list[str], Field(max_length=64)] | None = None
    cap_drop: Annotated[list[str], Field(max_length=64)] | None = None
    read_only: bool | None = None
    tmpfs: dict[str, str] | list[str] | None = None
    gpus: Annotated[int, Field(ge=-1, le=1024)] | None = None
    # The service's, not Docker's: removed after its exit is recorded and its on_exit sent.
    auto_remove: bool | None = None
    # Not in the original contract, accepted so that the policy can refuse them by name (and an
    # operator can allow them) instead of a generic "unknown field".
    pid_mode: str | None = None
    ipc_mode: str | None = None
    uts_mode: str | None = None
    userns_mode: str | None = None
    devices: Annotated[list[str], Field(max_length=64)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        # NUL characters and runaway nesting are refused before any field looks at the spec.
        try:
            check_value("spec", data, ArgumentLimits())
        except InvalidSpec as exc:
            raise ValueError(str(exc)) from None
        return data

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        try:
            parse_reference(value)
        except InvalidSpec as exc:
            raise ValueError(str(exc).removeprefix("image: ")) from None
        return value

    @field_validator("command", "entrypoint")
    @classmethod
    def _command(cls, value: str | list[str] | None) -> list[str] | None:
        if isinstance(value, str):
            try:
                return shlex.split(value)  # What docker-py does with a string, done here.
            except ValueError as exc:
                raise ValueError(f"cannot be split into words ({exc})") from None
        return value

    @field_validator("mem_limit", "memswap_limit", mode="before")
    @classmethod
    def _bytes(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            return None
        if value == -1 and info.field_name == "memswap_limit":
            return -1
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
            if not _ENV_NAME_RE.fullmatch(name):
                raise ValueError(f"invalid environment variable name {name[:64]!r}")
        if isinstance(value, dict):
            for name, item in value.items():
                if isinstance(item, float) and not math.isfinite(item):
                    raise ValueError(f"{name}: not a finite number")
                if isinstance(item, int) and abs(item) > INT64_MAX:
                    raise ValueError(f"{name}: more than int64 holds")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key in value or {}:
            if not key or len(key) > 1024:
                raise ValueError("label keys must be 1 to 1024 characters")
            if key.startswith(LABEL_NAMESPACE):
                raise ValueError(f"label {key!r}: the {LABEL_NAMESPACE!r} namespace is reserved")
        return value

    @field_validator("cap_add", "cap_drop")
    @classmethod
    def _capabilities(cls, value: list[str] | None) -> list[str] | None:
        for cap in value or []:
            if not _CAPABILITY_RE.fullmatch(cap):
                raise ValueError(f"invalid capability name {cap[:64]!r}")
        return value

    @field_validator("working_dir")
    @classmethod
    def _working_dir(cls, value: str | None) -> str | None:
        return None if value is None else check_path(value, what="working_dir")

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | int | None) -> str | int | None:
        if isinstance(value, str) and not _USER_RE.fullmatch(value):
            raise ValueError("must be a user name or uid, optionally ':' and a group")
        return value

    @field_validator("network_mode")
    @classmethod
    def _network_mode(cls, value: str | None) -> str | None:
        if value is None or value in _NETWORK_MODES or _NETWORK_NAME_RE.fullmatch(value):
            return value
        joined = value.removeprefix("container:")
        if value.startswith("container:") and _CONTAINER_REF_RE.fullmatch(joined):
            return value
        raise ValueError("must be bridge, none, host, container:<name or id> or a network's name")

    @field_validator("network")
    @classmethod
    def _network(cls, value: str | None) -> str | None:
        if value is not None and not _NETWORK_NAME_RE.fullmatch(value):
            raise ValueError("must be a network's name")
        return value

    @field_validator("pid_mode", "ipc_mode", "uts_mode", "userns_mode")
    @classmethod
    def _namespace(cls, value: str | None, info: ValidationInfo) -> str | None:
        name = info.field_name or "mode"
        if value is None or value in NAMESPACE_MODES[name]:
            return value
        joined = value.removeprefix("container:")
        if (
            name in _JOINS_CONTAINER
            and value.startswith("container:")
            and _CONTAINER_REF_RE.fullmatch(joined)
        ):
            return value
        choices = sorted(NAMESPACE_MODES[name])
        if name in _JOINS_CONTAINER:
            choices.append("container:<name or id>")
        raise ValueError(f"must be one of {', '.join(choices)} (or absent)")

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: list[str] | None) -> list[str] | None:
        for device in value or []:
            if not _DEVICE_RE.fullmatch(device):
                raise ValueError(f"invalid device {device[:64]!r} (want /host[:/container][:rwm])")
        return value

    @field_validator("ports")
    @classmethod
    def _ports(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for key, binding in (value or {}).items():
            if not _PORT_KEY_RE.fullmatch(key) or not 0 < int(key.split("/")[0]) < 65_536:
                raise ValueError(f"invalid container port {key[:32]!r} (e.g. '8080' or '8080/tcp')")
            for address, _ in port_bindings(key, binding):
                if address is not None:
                    _address(key, address)
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
                    raise ValueError(f"invalid volume {entry[:64]!r} (want 'source:target[:mode]')")
        for mount in _mounts(value):
            if mount.is_host_path:
                check_path(mount.source, what="volume source")
            elif not _VOLUME_NAME_RE.fullmatch(mount.source):
                raise ValueError(
                    f"volume source {mount.source[:64]!r} must be an absolute host path or a"
                    " volume name"
                )
            check_path(mount.target, what="volume target")
            unknown = mount.modes - _VOLUME_MODES
            if unknown:
                raise ValueError(f"volume {mount.target!r}: unknown mode(s) {sorted(unknown)}")
        return value

    @field_validator("tmpfs")
    @classmethod
    def _tmpfs(cls, value: dict[str, str] | list[str] | None) -> dict[str, str] | list[str] | None:
        for mount in _tmpfs_mounts(value):
            check_path(mount.target, what="tmpfs target")
        return value

    @model_validator(mode="after")
    def _memory_swap(self) -> ContainerSpec:
        if self.memswap_limit is not None and self.memswap_limit != -1:
            if self.mem_limit is None:
                raise ValueError("memswap_limit needs mem_limit")
            if self.memswap_limit < self.mem_limit:
                raise ValueError("memswap_limit must be -1 or at least mem_limit")
        if self.network is not None and self.network_mode not in (None, self.network):
            raise ValueError("network and network_mode name different networks")
        restarts = self.restart_policy is not None and self.restart_policy.Name not in ("", "no")
        if self.auto_remove and restarts:
            raise ValueError("auto_remove and a restart policy contradict each other")
        return self

    @property
    def reference(self) -> ImageReference:
        """The parsed image reference."""
        return parse_reference(self.image)

    @property
    def mounts(self) -> list[Mount]:
        """Every entry of ``volumes`` in one form."""
        return _mounts(self.volumes)

    @property
    def tmpfs_mounts(self) -> list[Tmpfs]:
        """Every entry of ``tmpfs`` with its options parsed."""
        return _tmpfs_mounts(self.tmpfs)

    def spec_hash(self) -> str:
        """A digest of the spec as given, to recognise a repeated create of the same container."""
        canonical = json.dumps(self.model_dump(mode="json", exclude_none=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def with_name(self, name: str) -> ContainerSpec:
        """A copy carrying ``name``."""
        return self.model_copy(update={"name": name})


def port_bindings(key: str, binding: Any) -> list[tuple[str | None, int | None]]:
    """A port's bindings as (host address or None, host port or None) pairs.

    A binding is a host port, null (any port), [host_ip, host_port or null], or a list of host
    ports.

    Raises:
        ValueError: a binding of another shape.
    """
    if binding is None:
        return [(None, None)]
    if _is_port(binding):
        return [(None, int(binding))]
    if isinstance(binding, list):
        if (
            len(binding) == 2
            and isinstance(binding[0], str)
            and (binding[1] is None or _is_port(binding[1]))
        ):
            return [(binding[0], binding[1])]
        if binding and all(_is_port(port) for port in binding):
            return [(None, int(port)) for port in binding]
    raise ValueError(
        f"port {key}: binding must be a host port, null, [host_ip, host_port] or a list of ports"
    )


def _address(key: str, address: str) -> None:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"port {key}: {address[:64]!r} is not an IP address") from None


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


def _tmpfs_mounts(tmpfs: Mapping[str, str] | list[str] | None) -> list[Tmpfs]:
    if tmpfs is None:
        return []
    if isinstance(tmpfs, list):
        pairs = [tuple(entry.split(":", 1)) if ":" in entry else (entry, "") for entry in tmpfs]
    else:
        pairs = list(tmpfs.items())
    return [parse_tmpfs_options(target, options) for target, options in pairs]


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
        problems.append(f"{location[:200]}: {message}")
    return "; ".join(problems)


__all__ = [
    "MANAGED_LABEL",
    "SPEC_HASH_LABEL",
    "ContainerSpec",
    "Mount",
    "Tmpfs",
    "format_validation_error",
    "parse_bytes",
    "parse_spec",
    "port_bindings",
]

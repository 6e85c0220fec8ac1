"""containerizer's settings: one typed object, read from the environment (and an optional env file).

Every field is an environment variable with the ``CONTAINERIZER_`` prefix, e.g. ``broker_url`` is
``CONTAINERIZER_BROKER_URL``. ``DOCKER_HOST`` (and ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``) keep
docker-py's own names. Lists accept JSON (``["/srv","/data"]``) or a comma-separated string.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MiB = 1024**2
GiB = 1024**3
INT64_MAX = 2**63 - 1

CommaList = Annotated[list[str], NoDecode]

#: A host name as queue names and keys carry it: lowercase letters, digits and "-", at most 63.
HOST_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def default_host_name() -> str:
    """The machine's short host name, made valid: lowercase, other characters as "-"."""
    short = socket.gethostname().split(".", 1)[0].lower()
    cleaned = re.sub(r"[^a-z0-9-]+", "-", short).strip("-")[:63].strip("-")
    return cleaned or "localhost"


def _split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string for list-valued settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Everything an operator can configure. Defaults suit one Docker host with a local Redis."""

    model_config = SettingsConfigDict(
        env_prefix="CONTAINERIZER_",
        # An empty variable means "the default" (compose passes unset settings as empty).
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    # --- This Docker host ----------------------------------------------------------------------
    host_name: str = Field(
        default_factory=default_host_name,
        description="This Docker host's name in the cluster (default: the short hostname).",
    )
    host_dead_seconds: float = Field(
        30.0, gt=0, description="A host not heard from for this long is not alive."
    )
    heartbeat_seconds: float = Field(
        5.0, gt=0, description="How often each host's agent reports it is alive."
    )

    # --- Celery and Redis -------------------------------------------------------------------
    broker_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker.")
    result_backend: str = Field("redis://127.0.0.1:6379/1", description="Celery result backend.")
    redis_url: str = Field(
        "redis://127.0.0.1:6379/2", description="Redis holding container and image state."
    )
    redis_prefix: str = Field("containerizer:", description="Prefix of every state key.")
    result_expires_seconds: int = Field(86_400, ge=60, description="How long results are kept.")
    visibility_timeout_seconds: int | None = Field(
        None,
        ge=60,
        description=(
            "Redis broker redelivery delay for unacked tasks (None: the longest task time limit,"
            " a pull's, plus a minute)."
        ),
    )

    # --- Docker -------------------------------------------------------------------------------
    docker_timeout_seconds: float = Field(60.0, gt=0, description="Docker API request timeout.")
    docker_api_version: str = Field("auto", description='Docker API version, or "auto".')
    default_network_mode: str = Field("bridge", description="network_mode when a spec has none.")
    default_cpu_shares: int | None = Field(
        None, ge=2, le=262_144, description="cpu_shares when a spec has none (None: Docker's 1024)."
    )
    default_mem_limit: int = Field(
        512 * MiB, ge=6 * MiB, le=INT64_MAX, description="mem_limit in bytes when a spec has none."
    )
    startup_warning_seconds: float = Field(
        5.0, gt=0, description="A container start slower than this logs a warning."
    )
    logs_max_tail: int = Field(10_000, ge=1, description="Largest `tail` a logs task accepts.")
    logs_max_bytes: int = Field(
        1_048_576, ge=1_024, description="Most bytes a logs task returns (the last ones)."
    )
    logs_tail_lines: int = Field(
        50, ge=1, le=10_000, description="Lines of an exit's logs tail (on_exit, the record)."
    )
    logs_tail_bytes: int = Field(8_192, ge=256, description="Most bytes of an exit's logs tail.")
    logs_follow_max_seconds: float = Field(
        3_600.0, gt=0, description="Longest a logs(follow=true) stream follows its container."
    )
    logs_follow_max_lines: int = Field(
        10_000, ge=100, description="Lines a follow stream keeps (older ones are trimmed)."
    )
    logs_follow_line_bytes: int = Field(
        16_384, ge=256, description="Longest line a follow stream keeps (longer ones are cut)."
    )
    logs_follow_ttl_seconds: int = Field(
        3_600, ge=60, description="How long a follow stream lives after its last line."
    )
    logs_followers_max: int = Field(256, ge=1, description="Follow streams one host feeds at once.")

    # --- Policy (everything that escapes a container is off unless allowed here) -------------
    allow_privileged: bool = Field(False, description="Allow `privileged: true`.")
    allow_host_namespaces: bool = Field(
        False, description="Allow host/container network, pid, ipc, uts and userns modes."
    )
    allow_devices: bool = Field(False, description="Allow `devices`.")
    allowed_bind_paths: CommaList = Field(
        default_factory=list, description="Host path prefixes that may be bind-mounted read-only."
    )
    allowed_rw_bind_paths: CommaList = Field(
        default_factory=list, description="Host path prefixes that may be bind-mounted writable."
    )
    allowed_networks: CommaList = Field(
        default_factory=list,
        description="User-defined networks a container may join (bridge and none always).",
    )
    allowed_capabilities: CommaList = Field(
        default_factory=list, description="Capabilities `cap_add` may name."
    )
    allowed_port_addresses: CommaList = Field(
        default_factory=lambda: ["127.0.0.1"],
        description="Host addresses ports may be published on (the first is the default).",
    )
    host_port_min: int = Field(1024, ge=1, le=65_535, description="Lowest publishable host port.")
    host_port_max: int = Field(
        65_535, ge=1, le=65_535, description="Highest publishable host port."
    )
    allowed_volumes: CommaList = Field(
        default_factory=list,
        description="Named volumes the service did not create that containers may mount.",
    )
    allowed_volume_drivers: CommaList = Field(
        default_factory=lambda: ["local"], description="Volume drivers mounts may use."
    )
    reserved_label_prefixes: CommaList = Field(
        default_factory=lambda: ["containerizer.", "com.docker.compose."],
        description="Label key prefixes a spec may not set.",
    )

    # --- Hardened defaults of every container (each visible in `docker inspect`) -----------
    dropped_capabilities: CommaList = Field(
        default_factory=lambda: ["NET_RAW", "MKNOD"],
        description="Of Docker's default capabilities, the ones containers do not get (ALL: none).",
    )
    no_new_privileges: bool = Field(
        True, description="Run every container with no-new-privileges (setuid does not elevate)."
    )
    default_pids_limit: int = Field(
        1024, ge=1, le=INT64_MAX, description="pids_limit when a spec has none."
    )
    max_pids_limit: int = Field(
        4096, ge=1, le=INT64_MAX, description="The highest pids_limit a spec may ask for."
    )
    max_mem_limit: int | None = Field(
        None,
        ge=6 * MiB,
        le=INT64_MAX,
        description="The highest mem_limit a spec may ask for (None: the host's memory).",
    )
    allow_swap: bool = Field(
        False, description="Allow memswap_limit above mem_limit (swap); otherwise no swap."
    )
    log_max_size: str = Field("10m", description="json-file log max-size of every container.")
    log_max_file: int = Field(3, ge=1, le=100, description="json-file log max-file.")
    tmpfs_default_bytes: int = Field(
        64 * MiB, ge=MiB, le=INT64_MAX, description="Size of a tmpfs mount that names none."
    )
    tmpfs_max_bytes: int = Field(
        1 * GiB, ge=MiB, le=INT64_MAX, description="The largest tmpfs size a spec may ask for."
    )
    container_runtime: str = Field("runc", description="The OCI runtime of every container.")
    gpu_runtime: str = Field(
        "runc", description="The runtime of containers that ask for gpus (e.g. nvidia)."
    )
    refuse_root_user: bool = Field(
        False, description="Refuse specs without a numeric non-root `user` (off by default)."
    )
    read_only_rootfs: bool = Field(
        False, description="A read-only root filesystem when a spec does not say (off by default)."
    )

    # --- Messages and time limits ---------------------------------------------------------------
    max_message_bytes: int = Field(
        256 * 1024, ge=1024, description="Largest task message (arguments) a worker accepts."
    )
    max_argument_depth: int = Field(
        32, ge=2, le=200, description="Deepest nesting of a task's JSON arguments."
    )
    max_string_length: int = Field(
        64 * 1024, ge=256, description="Longest string in a task's arguments."
    )
    max_list_length: int = Field(
        1024, ge=16, description="Most entries of a list or object in a task's arguments."
    )
    secret_env_patterns: CommaList = Field(
        default_factory=lambda: ["*PASSWORD*", "*SECRET*", "*TOKEN*", "*KEY*"],
        description="Environment variable names whose values are redacted everywhere shown.",
    )
    task_soft_time_limit_seconds: float = Field(
        300.0, gt=0, description="Soft time limit of a task (pulls: the pull timeout, plus this)."
    )
    task_time_limit_seconds: float = Field(
        360.0, gt=0, description="Hard time limit of a task (pulls: the pull timeout, plus this)."
    )

    # --- Retries -----------------------------------------------------------------------------
    retry_max: int = Field(5, ge=0, description="Retries of a task after a transient failure.")
    retry_backoff_seconds: float = Field(2.0, gt=0, description="First retry delay (doubles).")
    retry_backoff_max_seconds: float = Field(60.0, gt=0, description="Longest retry delay.")

    # --- Images --------------------------------------------------------------------------------
    image_cache_bytes: int = Field(10 * GiB, ge=0, description="Byte budget of the image cache.")
    pinned_images: CommaList = Field(
        default_factory=list, description="Image references never evicted."
    )
    pull_timeout_seconds: float = Field(600.0, gt=0, description="Longest a pull may take.")
    pull_stall_seconds: float = Field(
        120.0, gt=0, description="A pull with no progress for this long is abandoned."
    )
    registry_auth_file: Path | None = Field(
        None, description="A Docker config.json-style file of per-registry credentials."
    )
    registry_auth: SecretStr | None = Field(
        None,
        description='Per-registry credentials as JSON: {"host:port": {"username", "password"}}.',
    )

    image_min_age_seconds: float = Field(
        120.0, ge=0, description="An image pulled more recently than this is never evicted."
    )
    image_cache_low_watermark: float = Field(
        0.9, gt=0, le=1, description="Eviction frees down to this fraction of the budget."
    )

    # --- Beat (periodic tasks) and live state ------------------------------------------------
    stats_interval_seconds: float = Field(10.0, gt=0, description="How often stats are swept.")
    evict_interval_seconds: float = Field(60.0, gt=0, description="How often eviction runs.")
    reconcile_interval_seconds: float = Field(
        60.0, gt=0, description="How often Redis is reconciled with Docker."
    )
    orphan_grace_seconds: float = Field(
        300.0,
        ge=0,
        description="How old a lost create's container (an orphan) must be before reconcile acts.",
    )
    orphan_policy: Literal["remove", "adopt"] = Field(
        "remove", description="What reconcile does with an orphan: remove it, or adopt it."
    )
    stats_source: Literal["auto", "api"] = Field(
        "auto",
        description="Stats from this host's cgroup files when readable (auto), or always the API.",
    )
    stats_concurrency: int = Field(
        128, ge=1, description="Stats calls in flight at once during a sweep."
    )
    stats_history_length: int = Field(
        360, ge=1, description="Samples kept per container (360 = 1 h at 10 s)."
    )
    cpu_alert_percent: float = Field(
        80.0, gt=0, description="CPU % above which a sample is flagged."
    )
    memory_alert_percent: float = Field(
        90.0, gt=0, le=100, description="Memory % of the limit above which a sample is flagged."
    )

    # --- `containerizer up` --------------------------------------------------------------------
    state_dir: Path = Field(
        Path(".containerizer"), description="Where `up` keeps beat's schedule and its own Redis."
    )
    run_beat: bool = Field(
        True,
        description="`up` runs beat. One per deployment schedules every host's periodic work:"
        " false on the other hosts (a second beat does no harm, it only sends twice).",
    )
    fork_services: bool = Field(
        True,
        description="`up` forks its Python services from one process that imported their code"
        " once (they share its memory); false: each starts its own interpreter.",
    )
    worker_pool: Literal["threads", "prefork"] = Field(
        "threads", description="Pool of the workers: threads (one process each) or prefork."
    )
    containers_concurrency: int = Field(
        0, ge=0, description="Tasks the containers worker runs at once (0: 16 threads, or CPUs)."
    )
    maintenance_concurrency: int = Field(
        2, ge=1, description="Tasks the maintenance worker runs at once."
    )
    flower_address: str = Field("127.0.0.1", description="Address Flower listens on.")
    flower_port: int = Field(5555, ge=0, le=65_535, description="Flower's port (0: no Flower).")
    flower_basic_auth: SecretStr | None = Field(
        None,
        description="Flower's `user:password` (None: `up` makes one, kept in the state dir).",
    )
    metrics_address: str = Field("127.0.0.1", description="Address of the /metrics endpoint.")
    metrics_port: int = Field(
        9808, ge=0, le=65_535, description="Port of the /metrics endpoint (0: none)."
    )
    log_level: str = Field("INFO", description="Log level of every process `up` starts.")

    @field_validator(
        "allowed_bind_paths",
        "allowed_rw_bind_paths",
        "allowed_networks",
        "allowed_capabilities",
        "allowed_port_addresses",
        "allowed_volumes",
        "allowed_volume_drivers",
        "reserved_label_prefixes",
        "dropped_capabilities",
        "secret_env_patterns",
        "pinned_images",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("allowed_capabilities", "dropped_capabilities")
    @classmethod
    def _capabilities(cls, value: list[str]) -> list[str]:
        return [normalize_capability(cap) for cap in value]

    @field_validator("allowed_port_addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("allowed_port_addresses needs at least one address")
        return [str(ipaddress.ip_address(address)) for address in value]

    @model_validator(mode="after")
    def _ranges(self) -> Settings:
        if self.host_port_min > self.host_port_max:
            raise ValueError("host_port_min is above host_port_max")
        if self.default_pids_limit > self.max_pids_limit:
            raise ValueError("default_pids_limit is above max_pids_limit")
        if self.max_mem_limit is not None and self.default_mem_limit > self.max_mem_limit:
            raise ValueError("default_mem_limit is above max_mem_limit")
        if self.tmpfs_default_bytes > self.tmpfs_max_bytes:
            raise ValueError("tmpfs_default_bytes is above tmpfs_max_bytes")
        if self.task_soft_time_limit_seconds >= self.task_time_limit_seconds:
            raise ValueError("task_soft_time_limit_seconds must be below task_time_limit_seconds")
        return self

    @field_validator("host_name")
    @classmethod
    def _host_name(cls, value: str) -> str:
        if not HOST_NAME_RE.fullmatch(value):
            raise ValueError(
                "host_name must be lowercase letters, digits and '-', at most 63, starting and"
                f" ending with a letter or digit; got {value!r}"
            )
        return value

    @field_validator("redis_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or any(ch.isspace() for ch in value):
            raise ValueError("redis_prefix must be non-empty and contain no whitespace")
        return value


def normalize_capability(name: str) -> str:
    """Docker accepts `net_admin`, `NET_ADMIN` and `CAP_NET_ADMIN` alike; compare one form."""
    upper = name.strip().upper()
    return upper.removeprefix("CAP_")


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, the optional ``CONTAINERIZER_ENV_FILE`` and overrides."""
    env_file = os.environ.get("CONTAINERIZER_ENV_FILE")
    if env_file:
        return Settings(_env_file=env_file, **overrides)
    return Settings(**overrides)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()

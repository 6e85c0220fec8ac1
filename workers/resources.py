"""Volumes and networks: the ones the service created, and the ones a container may use.

A volume or network is the service's only if it carries the ``containerizer.managed=true`` label
AND the service has its record (it created it): a label alone, which anyone can set, gives no
caller a way in. ``containerizer.volumes.*`` and ``containerizer.networks.*`` act only on those.

A container may mount a named volume the service created (one that does not exist yet is created,
labelled and recorded, for it), or one the operator allowlists (``CONTAINERIZER_ALLOWED_VOLUMES``).
A volume whose driver or options make it a host path by another name (the ``local`` driver with
``o=bind`` or a ``device``) follows the bind rules of the policy; a driver outside
``CONTAINERIZER_ALLOWED_VOLUME_DRIVERS`` is refused; the deployment's own volumes (labelled
``containerizer.deployment``) never. A container may join a network the service created, or one
the operator allowlists.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from config.settings import Settings
from workers.engine import Engine
from workers.errors import ContainerizerError, InvalidSpec, PolicyViolation, ResourceNotFound
from workers.keys import Keys
from workers.policy import Policy
from workers.spec import MANAGED_LABEL, ContainerSpec

log = logging.getLogger(__name__)

DEPLOYMENT_LABEL = "containerizer.deployment"
_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}", re.ASCII)
_ALWAYS_NETWORKS = frozenset({"bridge", "none", "host", "default"})
_DEFAULT_NETWORK_DRIVER = "bridge"


def resource_name(value: object, *, field: str = "name") -> str:
    """A volume or network name: letters, digits, ``_.-``, at most 128.

    Raises:
        InvalidSpec: anything else.
    """
    if isinstance(value, str) and _NAME_RE.fullmatch(value):
        return value
    raise InvalidSpec(f"{field}: expected a name of letters, digits and _.- (at most 128)")


#: Networks every dockerd has (or modes that are no network): never looked up.
DOCKERS_OWN_NETWORKS = frozenset({"bridge", "none", "default", "host"})


class ResourceService:
    """Volumes and networks of one Docker host. Takes its collaborators in."""

    def __init__(
        self,
        engine: Engine,
        client: redis.Redis,
        keys: Keys,
        policy: Policy,
        settings: Settings,
    ) -> None:
        self.engine = engine
        self.redis = client
        self.keys = keys
        self.policy = policy
        self.settings = settings

    def on(self, host: str) -> ResourceService:
        """The records of another host (for listing: acting needs that host's engine)."""
        return ResourceService(
            self.engine, self.redis, self.keys.on(host), self.policy, self.settings
        )

    # --- volumes ------------------------------------------------------------------------------
    def create_volume(
        self, name: str, *, labels: Mapping[str, str] | None = None, driver: str | None = None
    ) -> dict[str, Any]:
        """Create a named volume owned by the service: {name, driver, labels}.

        Creating one the service created already returns it (a redelivered task does no harm).

        Raises:
            PolicyViolation: a driver outside the allowlist, a reserved label, or a volume of that
                name that the service did not create.
        """
        chosen = driver or "local"
        self._check_driver(chosen)
        wanted = self._labels(labels)
        existing = self.engine.inspect_volume(name)
        if existing is not None:
            if not self.owns_volume(existing):
                raise PolicyViolation(f"volume {name!r} exists and containerizer did not create it")
            return _volume_summary(existing)
        volume = self.engine.create_volume(name, driver=chosen, labels=wanted)
        self._remember(self.keys.volumes(), name, {"driver": chosen, "labels": wanted})
        log.info("created volume %s (%s)", name, chosen)
        return _volume_summary(volume)

    def remove_volume(self, name: str, *, force: bool) -> dict[str, Any]:
        """Remove a volume the service created: {name, removed: true}.

        Raises:
            PolicyViolation: the service did not create it. Conflict: a container uses it.
        """
        if self._record(self.keys.volumes(), name) is None:
            raise PolicyViolation(f"volume {name!r} was not created by containerizer")
        # Gone already: removed behind the service's back, or a retried remove.
        with contextlib.suppress(ResourceNotFound):
            self.engine.remove_volume(name, force=force)
        self.redis.hdel(self.keys.volumes(), name)
        return {"name": name, "removed": True}

    def list_volumes(self) -> list[dict[str, Any]]:
        """The volumes the service created on this host."""
        return [
            {"name": name, "host": self.keys.host, **record}
            for name, record in sorted(self._records(self.keys.volumes()).items())
        ]

    def owns_volume(self, attrs: Mapping[str, Any]) -> bool:
        """Whether a volume (its inspect document) is one the service created."""
        labels = attrs.get("Labels") or {}
        return labels.get(MANAGED_LABEL) == "true" and (
            self._record(self.keys.volumes(), str(attrs.get("Name"))) is not None
        )

    def resolve_mounts(self, spec: ContainerSpec) -> list[str]:
        """Check every named volume the spec mounts, creating the missing ones (managed).

        Returns the names of the volumes created now, for :meth:`discard_volumes` to remove if
        the container's create fails.

        Raises:
            PolicyViolation: a volume the service did not create and the operator does not allow,
                a deployment volume, or one that is a host path outside the bind rules.
        """
        created: list[str] = []
        try:
            for mount in spec.mounts:
                if mount.is_host_path:
                    continue
                attrs = self.engine.inspect_volume(mount.source)
                if attrs is None:
                    self.create_volume(mount.source)
                    created.append(mount.source)
                    continue
                labels = attrs.get("Labels") or {}
                if labels.get(DEPLOYMENT_LABEL):
                    raise PolicyViolation(
                        f"volumes: {mount.source!r} is one of the deployment's own volumes;"
                        " never mountable"
                    )
                if self.owns_volume(attrs):
                    continue
                if mount.source not in self.settings.allowed_volumes:
                    raise PolicyViolation(
                        f"volumes: volume {mount.source!r} was not created by containerizer"
                        " (CONTAINERIZER_ALLOWED_VOLUMES lists the others a container may mount)"
                    )
                self._check_volume_source(attrs, mount.modes)
        except BaseException:
            self.discard_volumes(created)
            raise
        return created

    def discard_volumes(self, names: Iterable[str]) -> None:
        """Remove volumes created for a container whose create failed (best effort)."""
        for name in names:
            try:
                self.remove_volume(name, force=True)
            except ContainerizerError as exc:
                log.warning("could not remove volume %s after a failed create: %s", name, exc)

    def _check_volume_source(self, attrs: Mapping[str, Any], modes: Iterable[str]) -> None:
        """An allowlisted volume: its driver, and what it is on the host."""
        name = str(attrs.get("Name"))
        self._check_driver(str(attrs.get("Driver") or ""), what=f"volume {name!r}")
        options = attrs.get("Options") or {}
        mount_options = str(options.get("o") or "").split(",")
        device = options.get("device")
        if "bind" in mount_options or "rbind" in mount_options or device:
            # A host path by another name: the bind rules apply to the path it binds.
            path = str(device or "")
            if not path.startswith("/"):
                raise PolicyViolation(
                    f"volumes: volume {name!r} mounts {path!r}, which is not a host path"
                )
            self.policy.check_bind(path, modes)

    def _check_driver(self, driver: str, *, what: str = "driver") -> None:
        if driver not in self.settings.allowed_volume_drivers:
            raise PolicyViolation(
                f"{what}: volume driver {driver!r} is not allowed"
                " (CONTAINERIZER_ALLOWED_VOLUME_DRIVERS)"
            )

    # --- networks -----------------------------------------------------------------------------
    def create_network(
        self,
        name: str,
        *,
        internal: bool = False,
        labels: Mapping[str, str] | None = None,
        driver: str | None = None,
    ) -> dict[str, Any]:
        """Create a network owned by the service: {name, id, driver, internal, labels}.

        Raises:
            PolicyViolation: a driver other than bridge, a reserved label, a name Docker keeps for
                itself, or a network of that name that the service did not create.
        """
        chosen = driver or _DEFAULT_NETWORK_DRIVER
        if chosen != _DEFAULT_NETWORK_DRIVER:
            raise PolicyViolation(f"driver: network driver {chosen!r} is not allowed (bridge)")
        if name in _ALWAYS_NETWORKS:
            raise PolicyViolation(f"name: {name!r} is Docker's own network")
        wanted = self._labels(labels)
        existing = self.engine.inspect_network(name)
        if existing is not None:
            if not self.owns_network(existing):
                raise PolicyViolation(
                    f"network {name!r} exists and containerizer did not create it"
                )
            return _network_summary(existing)
        network_id = self.engine.create_network(
            name, driver=chosen, internal=internal, labels=wanted
        )
        self._remember(
            self.keys.networks(),
            name,
            {"id": network_id, "driver": chosen, "internal": internal, "labels": wanted},
        )
        log.info("created network %s (%s%s)", name, chosen, ", internal" if internal else "")
        return {
            "name": name,
            "id": network_id,
            "driver": chosen,
            "internal": internal,
            "labels": wanted,
        }

    def remove_network(self, name: str) -> dict[str, Any]:
        """Remove a network the service created: {name, removed: true}.

        Raises:
            PolicyViolation: the service did not create it. Conflict: a container is attached.
        """
        if self._record(self.keys.networks(), name) is None:
            raise PolicyViolation(f"network {name!r} was not created by containerizer")
        with contextlib.suppress(ResourceNotFound):
            self.engine.remove_network(name)
        self.redis.hdel(self.keys.networks(), name)
        return {"name": name, "removed": True}

    def list_networks(self) -> list[dict[str, Any]]:
        """The networks the service created on this host."""
        return [
            {"name": name, "host": self.keys.host, **record}
            for name, record in sorted(self._records(self.keys.networks()).items())
        ]

    def owns_network(self, attrs: Mapping[str, Any]) -> bool:
        """Whether a network (its inspect document) is one the service created."""
        labels = attrs.get("Labels") or {}
        return labels.get(MANAGED_LABEL) == "true" and (
            self._record(self.keys.networks(), str(attrs.get("Name"))) is not None
        )

    def check_networks(self, spec: ContainerSpec) -> None:
        """The networks a spec joins are Docker's own, the service's, or allowlisted (from the
        records: no Docker call).

        Raises:
            PolicyViolation: any other.
        """
        for network in {spec.network_mode, spec.network} - {None}:
            name = str(network)
            managed = self._record(self.keys.networks(), name) is not None
            self.policy.check_network(name, managed=managed)

    def require_networks(self, spec: ContainerSpec) -> None:
        """The networks a spec joins exist on this host (the one that creates the container:
        networks are a host's own). Docker would create the container and fail its start.

        Raises:
            ResourceNotFound: one that is not there.
        """
        for network in {spec.network_mode, spec.network} - {None}:
            name = str(network)
            if name in DOCKERS_OWN_NETWORKS or name.startswith("container:"):
                continue
            if self.engine.inspect_network(name) is None:
                raise ResourceNotFound(f"network {name!r} does not exist on this host")

    # --- both ---------------------------------------------------------------------------------
    def reconcile(self) -> int:
        """Drop the records of volumes and networks removed behind the service's back."""
        dropped = 0
        present_volumes = {str(v.get("Name")) for v in self.engine.volumes()}
        present_networks = {str(n.get("Name")) for n in self.engine.networks()}
        for key, present in (
            (self.keys.volumes(), present_volumes),
            (self.keys.networks(), present_networks),
        ):
            gone = [name for name in self._records(key) if name not in present]
            if gone:
                self.redis.hdel(key, *gone)
                dropped += len(gone)
        return dropped

    def _labels(self, labels: Mapping[str, str] | None) -> dict[str, str]:
        wanted = dict(labels or {})
        for key, value in wanted.items():
            if not isinstance(key, str) or not isinstance(value, str) or not key:
                raise InvalidSpec("labels: expected an object of strings")
            for prefix in self.policy.reserved_label_prefixes:
                if key.startswith(prefix):
                    raise PolicyViolation(f"labels: {key!r}: the prefix {prefix!r} is reserved")
        return {**wanted, MANAGED_LABEL: "true"}

    def _remember(self, key: str, name: str, record: dict[str, Any]) -> None:
        self.redis.hset(key, name, json.dumps({**record, "created_at": time.time()}))

    def _record(self, key: str, name: str) -> dict[str, Any] | None:
        raw = self.redis.hget(key, name)
        return json.loads(raw) if raw else None

    def _records(self, key: str) -> dict[str, dict[str, Any]]:
        return {str(name): json.loads(raw) for name, raw in self.redis.hgetall(key).items()}


def _volume_summary(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": attrs.get("Name"),
        "driver": attrs.get("Driver"),
        "labels": dict(attrs.get("Labels") or {}),
    }


def _network_summary(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": attrs.get("Name"),
        "id": attrs.get("Id"),
        "driver": attrs.get("Driver"),
        "internal": bool(attrs.get("Internal")),
        "labels": dict(attrs.get("Labels") or {}),
    }

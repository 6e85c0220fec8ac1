"""One typed fake of the engine (workers/engine.py) for unit tests of the logic above it.

It keeps containers and images in memory and behaves as dockerd does where the logic depends on
it: a taken name is Conflict, a missing image ImageNotFound, an unknown reference
ContainerNotFound. ``fail`` makes any method raise: ``engine.fail["start"] = DockerUnavailable()``.
Every call is recorded in ``calls`` as ``(method, first argument)``.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Generator, Iterator, Mapping
from typing import Any, cast

from config.settings import Settings
from workers.engine import Engine, Frame
from workers.errors import Conflict, ContainerNotFound, ImageNotFound, ResourceNotFound

_ids = itertools.count(1)


def fake_id(seed: str = "") -> str:
    """A 64-hex container or image id, unique per call."""
    return f"{seed.encode().hex()}{next(_ids):x}".ljust(64, "0")[:64]


def container_doc(
    container_id: str,
    name: str,
    *,
    image: str = "busybox:latest",
    labels: Mapping[str, str] | None = None,
    status: str = "created",
    exit_code: int = 0,
) -> dict[str, Any]:
    """An inspect document as dockerd writes it (the fields containerizer reads)."""
    return {
        "Id": container_id,
        "Name": f"/{name}",
        "Created": "2026-01-01T00:00:00.000000001Z",
        "Image": "sha256:" + "1" * 64,
        "Config": {"Image": image, "Labels": dict(labels or {})},
        "State": {
            "Status": status,
            "StartedAt": "0001-01-01T00:00:00Z",
            "FinishedAt": "0001-01-01T00:00:00Z",
            "ExitCode": exit_code,
            "OOMKilled": False,
            "Pid": 0,
        },
        "HostConfig": {},
    }


class FakeEngine(Engine):
    """An in-memory Docker daemon."""

    def __init__(self, settings: Settings | None = None, *, daemon_id: str = "FAKE:ID") -> None:
        super().__init__(cast(Any, None), settings or Settings())
        self.containers_by_id: dict[str, dict[str, Any]] = {}
        self.images_by_id: dict[str, dict[str, Any]] = {}
        self.created_kwargs: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.fail: dict[str, Exception] = {}
        self.stats_docs: dict[str, dict[str, Any]] = {}
        self.pull_events: list[dict[str, Any]] = []
        self.stream_events: list[dict[str, Any]] = []
        self.log_frames: dict[str, list[Frame]] = {}
        self.volumes_by_name: dict[str, dict[str, Any]] = {}
        self.networks_by_name: dict[str, dict[str, Any]] = {}
        self.info_doc: dict[str, Any] = {"ID": daemon_id, "NCPU": 2, "MemTotal": 8 * 1024**3}

    # --- plumbing -----------------------------------------------------------------------------
    def _call(self, method: str, argument: str = "") -> None:
        self.calls.append((method, argument))
        if method in self.fail:
            raise self.fail[method]

    def called(self, method: str) -> list[str]:
        """The first arguments of every call of ``method``."""
        return [argument for name, argument in self.calls if name == method]

    def add_container(self, name: str, **fields: Any) -> dict[str, Any]:
        """A container that exists already (as if created outside this test's calls)."""
        doc = container_doc(fake_id(name), name, **fields)
        self.containers_by_id[doc["Id"]] = doc
        return doc

    def add_image(self, *tags: str, image_id: str | None = None, size: int = 1000) -> str:
        """An image on the host with these tags; returns its id."""
        image_id = image_id or "sha256:" + fake_id("img")
        self.images_by_id[image_id] = {
            "Id": image_id,
            "RepoTags": list(tags),
            "Size": size,
            "RootFS": {"Layers": []},
        }
        return image_id

    def _find(self, reference: str) -> dict[str, Any]:
        for doc in self.containers_by_id.values():
            if reference in (doc["Id"], doc["Name"].lstrip("/")) or doc["Id"].startswith(reference):
                return doc
        raise ContainerNotFound(f"container {reference}: No such container: {reference}")

    def _image(self, name: str) -> dict[str, Any] | None:
        for doc in self.images_by_id.values():
            if name == doc["Id"] or name in doc["RepoTags"] or f"{name}:latest" in doc["RepoTags"]:
                return doc
        return None

    # --- the daemon ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        self._call("info")
        return dict(self.info_doc)

    def daemon(self) -> dict[str, Any]:
        return dict(self.info_doc)

    def version(self) -> dict[str, Any]:
        self._call("version")
        return {"Version": "20.10.24", "ApiVersion": "1.41"}

    def close(self) -> None:
        pass

    # --- containers ---------------------------------------------------------------------------
    def create_container(self, kwargs: Mapping[str, Any], *, subject: str) -> str:
        self._call("create_container", str(kwargs.get("name") or ""))
        self.created_kwargs.append(dict(kwargs))
        image = str(kwargs["image"])
        if self._image(image) is None:
            raise ImageNotFound(f"{subject}: No such image: {image}")
        name = str(kwargs.get("name") or fake_id("anon"))
        if any(doc["Name"] == f"/{name}" for doc in self.containers_by_id.values()):
            raise Conflict(f'{subject}: Conflict. The container name "/{name}" is already in use')
        doc = container_doc(fake_id(name), name, image=image, labels=kwargs.get("labels"))
        self.containers_by_id[doc["Id"]] = doc
        return str(doc["Id"])

    def inspect_container(self, reference: str) -> dict[str, Any]:
        self._call("inspect_container", reference)
        return copy.deepcopy(self._find(reference))

    def start(self, container_id: str) -> float:
        self._call("start", container_id)
        self._find(container_id)["State"].update(
            Status="running", StartedAt="2026-01-01T00:00:01.000000001Z"
        )
        return 12.5

    def stop(self, container_id: str, timeout: int) -> None:
        self._call("stop", container_id)
        state = self._find(container_id)["State"]
        if state["Status"] == "running":
            state.update(Status="exited", FinishedAt="2026-01-01T00:00:02.000000001Z")

    def kill(self, container_id: str, signal: str) -> None:
        self._call("kill", container_id)
        state = self._find(container_id)["State"]
        if state["Status"] == "running":
            state.update(Status="exited", ExitCode=137, FinishedAt="2026-01-01T00:00:02Z")

    def restart(self, container_id: str, timeout: int) -> float:
        self._call("restart", container_id)
        self._find(container_id)["State"].update(Status="running")
        return 321.0

    def remove_container(self, container_id: str, *, force: bool, volumes: bool) -> None:
        self._call("remove_container", container_id)
        doc = self._find(container_id)
        if doc["State"]["Status"] == "running" and not force:
            raise Conflict(f"container {container_id}: cannot remove a running container")
        del self.containers_by_id[doc["Id"]]

    def containers(
        self, *, all: bool, labels: list[str] | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        self._call("containers", "all" if all else "running")
        rows = []
        for doc in self.containers_by_id.values():
            state = doc["State"]["Status"]
            if (not all and state != "running") or (status and state != status):
                continue
            have = doc["Config"]["Labels"]
            if [w for w in labels or [] if not _label_matches(have, w)]:
                continue
            rows.append(
                {
                    "Id": doc["Id"],
                    "Names": [doc["Name"]],
                    "Image": doc["Config"]["Image"],
                    "ImageID": doc["Image"],
                    "State": state,
                    "Labels": dict(have),
                }
            )
        return rows

    def stats(self, container_id: str) -> dict[str, Any]:
        self._call("stats", container_id)
        self._find(container_id)
        return copy.deepcopy(self.stats_docs.get(container_id, {"read": "2026-01-01T00:00:05Z"}))

    def logs(self, container_id: str, *, tail: int, timestamps: bool, max_bytes: int) -> str:
        self._call("logs", container_id)
        self._find(container_id)
        data = b"".join(frame.data for frame in self.log_frames.get(container_id, []))
        return data[-max_bytes:].decode("utf-8", "replace")

    def follow_logs(
        self, container_id: str, *, since: int | None = None, seconds: float | None = None
    ) -> Iterator[Frame]:
        self._call("follow_logs", container_id)
        self._find(container_id)
        yield from self.log_frames.get(container_id, [])

    # --- images -------------------------------------------------------------------------------
    def inspect_image(self, name: str) -> dict[str, Any] | None:
        self._call("inspect_image", name)
        doc = self._image(name)
        return copy.deepcopy(doc) if doc is not None else None

    def image_history(self, image_id: str) -> list[dict[str, Any]]:
        self._call("image_history", image_id)
        doc = self._image(image_id)
        if doc is None:
            raise ImageNotFound(f"image {image_id}: No such image")
        return list(doc.get("History") or [])

    def images(self) -> list[dict[str, Any]]:
        self._call("images")
        return [copy.deepcopy(doc) for doc in self.images_by_id.values()]

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        self._call("tag", image_id)
        name = f"{repository}:{tag}"
        for doc in self.images_by_id.values():
            if name in doc["RepoTags"]:
                doc["RepoTags"].remove(name)
        self.images_by_id[image_id]["RepoTags"].append(name)

    def remove_image(self, name: str, *, force: bool) -> None:
        self._call("remove_image", name)
        doc = self._image(name)
        if doc is None:
            raise ImageNotFound(f"image {name}: No such image")
        used = any(c["Config"]["Image"] in doc["RepoTags"] for c in self.containers_by_id.values())
        if used and not force:
            raise Conflict(f"image {name}: image is being used by a container")
        if name in doc["RepoTags"] and len(doc["RepoTags"]) > 1:
            doc["RepoTags"].remove(name)
        else:
            del self.images_by_id[doc["Id"]]

    def pull(
        self,
        repository: str,
        tag: str,
        auth_config: Mapping[str, str] | None,
        *,
        stall_seconds: float,
    ) -> Generator[dict[str, Any], None, None]:
        self._call("pull", f"{repository}:{tag}")
        yield from self.pull_events

    def push(
        self, repository: str, tag: str, auth_config: Mapping[str, str] | None
    ) -> Iterator[dict[str, Any]]:
        self._call("push", f"{repository}:{tag}")
        yield {"aux": {"Digest": "sha256:" + "d" * 64}}

    # --- events -------------------------------------------------------------------------------
    def events(
        self, *, since: str, filters: Mapping[str, Any], until: str | None = None
    ) -> Iterator[dict[str, Any]]:
        self._call("events", since)
        yield from self.stream_events

    # --- volumes and networks -----------------------------------------------------------------
    def create_volume(self, name: str, *, driver: str, labels: Mapping[str, str]) -> dict[str, Any]:
        self._call("create_volume", name)
        volume = self.volumes_by_name.setdefault(
            name, {"Name": name, "Driver": driver, "Labels": dict(labels), "Options": {}}
        )
        return dict(volume)

    def inspect_volume(self, name: str) -> dict[str, Any] | None:
        self._call("inspect_volume", name)
        volume = self.volumes_by_name.get(name)
        return copy.deepcopy(volume) if volume is not None else None

    def remove_volume(self, name: str, *, force: bool) -> None:
        self._call("remove_volume", name)
        if name not in self.volumes_by_name:
            raise ResourceNotFound(f"volume {name}: no such volume")
        del self.volumes_by_name[name]

    def volumes(self, *, labels: list[str] | None = None) -> list[dict[str, Any]]:
        self._call("volumes")
        return [copy.deepcopy(v) for v in self.volumes_by_name.values()]

    def create_network(
        self, name: str, *, driver: str, internal: bool, labels: Mapping[str, str]
    ) -> str:
        self._call("create_network", name)
        network_id = fake_id(name)
        self.networks_by_name[name] = {
            "Id": network_id,
            "Name": name,
            "Driver": driver,
            "Internal": internal,
            "Labels": dict(labels),
        }
        return network_id

    def inspect_network(self, name: str) -> dict[str, Any] | None:
        self._call("inspect_network", name)
        network = self.networks_by_name.get(name)
        return copy.deepcopy(network) if network is not None else None

    def remove_network(self, name: str) -> None:
        self._call("remove_network", name)
        if name not in self.networks_by_name:
            raise ResourceNotFound(f"network {name}: no such network")
        del self.networks_by_name[name]

    def networks(self, *, labels: list[str] | None = None) -> list[dict[str, Any]]:
        self._call("networks")
        return [copy.deepcopy(n) for n in self.networks_by_name.values()]


def _label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


class FakeStrings:
    """Redis string keys: set (nx) and delete, the StateStore's client as the service uses it."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def set(self, key: str, value: str, *, nx: bool = False, ex: int | None = None) -> bool:
        if nx and key in self.values:
            return False
        self.values[key] = value
        return True

    def delete(self, key: str) -> int:
        return 1 if self.values.pop(key, None) is not None else 0


class FakeState:
    """The StateStore's interface over dicts, with its scripts' rules (claims, removed records,
    ordered starts); ``fail_record`` makes record() raise."""

    def __init__(
        self, records: dict[str, dict[str, Any]] | None = None, *, host: str = "h1"
    ) -> None:
        from workers.keys import Keys

        self.keys = Keys("test:", host)
        self.records: dict[str, dict[str, Any]] = records or {}
        self.claims: dict[str, dict[str, str]] = {}
        self.intent_tokens: dict[str, dict[str, Any]] = {}
        self.fail_record: Exception | None = None
        self.starts: list[tuple[str, int, dict[str, Any]]] = []
        self.stats: dict[str, Any] = {}
        self.redis = FakeStrings()

    def update(self, container_id: str, **fields: Any) -> None:
        if container_id in self.records:
            self.records[container_id].update(fields)

    # names
    def claim_name(self, name: str, *, spec_hash: str, token: str, ttl_seconds: float) -> Any:
        from workers.state import NameClaim

        for record in self.records.values():
            if record.get("name") == name and record.get("status") != "removed":
                return NameClaim(
                    "exists", record["id"], record.get("host", ""), record.get("spec_hash", "")
                )
        held = self.claims.get(name)
        if held is not None and held["token"] != token:
            return NameClaim("pending", "", held["host"], held["spec_hash"])
        self.claims[name] = {"host": self.keys.host, "spec_hash": spec_hash, "token": token}
        return NameClaim("claimed", "", self.keys.host, spec_hash)

    def release_name(self, name: str, token: str) -> None:
        if self.claims.get(name, {}).get("token") == token:
            del self.claims[name]

    def add_intent(self, token: str, name: str) -> None:
        self.intent_tokens[token] = {"name": name, "at": 0.0}

    def drop_intent(self, token: str) -> None:
        self.intent_tokens.pop(token, None)

    def intents(self) -> dict[str, dict[str, Any]]:
        return dict(self.intent_tokens)

    # records
    def record(self, container: Any, *, replacing_us: int | None = None, **extra: Any) -> bool:
        from workers.spec import SPEC_HASH_LABEL

        if self.fail_record is not None:
            raise self.fail_record
        record = self.records.setdefault(container.id, {})
        if record.get("status") == "removed":
            return False
        record.update(
            id=container.id,
            name=container.name,
            image=container.image,
            status=container.status.value,
            exit_code=container.exit_code,
            started_at=container.started_at,
            host=self.keys.host,
            labels=dict(container.labels),
            spec_hash=container.labels.get(SPEC_HASH_LABEL, ""),
            **extra,
        )
        return True

    def record_removed(self, container_id: str) -> None:
        self.records.setdefault(container_id, {"id": container_id})["status"] = "removed"

    def record_started(
        self, container_id: str, *, seen_us: int, started_at: str, **extra: Any
    ) -> bool:
        """As the store's script: applied over the status it followed, unless running."""
        self.starts.append((container_id, seen_us, extra))
        record = self.records.get(container_id)
        if record is None or record.get("status") in (None, "removed"):
            return False
        if record.get("status_at_us", 0) != seen_us:
            record.update(extra)
            return False
        if record["status"] == "running":
            return False
        record.update(status="running", started_at=started_at, status_at_us=seen_us + 1, **extra)
        return True

    def record_stats(self, container_id: str, usage: Any, sample: Any, **kwargs: Any) -> None:
        self.stats[container_id] = usage

    def previous_sample(self, container_id: str) -> Any:
        return None

    def get(self, container_id: str) -> dict[str, Any] | None:
        record = self.records.get(container_id)
        return dict(record) if record is not None else None

    def find(self, reference: str) -> dict[str, Any] | None:
        if reference in self.records:
            return self.get(reference)
        for record in self.records.values():
            if record.get("name") == reference or (
                len(reference) == 12 and str(record.get("id", "")).startswith(reference)
            ):
                return dict(record)
        return None

    def get_many(self, container_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {cid: dict(self.records[cid]) for cid in container_ids if cid in self.records}

    def live_ids(self, host: str | None = None) -> set[str]:
        return {
            cid
            for cid, r in self.records.items()
            if r.get("status") != "removed"
            and r.get("host", self.keys.host) == (host or self.keys.host)
        }

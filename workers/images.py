"""The image service: pull, tag, push, remove and list images on one Docker host.

Pulls against one Docker host never overlap, whatever the number of image workers: each takes a
Redis lock named after the daemon's id (expiring after the pull timeout, released only by its
holder). A pull re-checks the host after taking the lock, so many requests for one reference cost
the registry one pull: the first pulls, the rest find the image present. A present image answers
without contacting the registry at all.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from config.settings import Settings
from workers.credentials import CredentialStore, RegistryCredentials
from workers.engine import Engine
from workers.errors import (
    ContainerizerError,
    EngineError,
    ImageNotFound,
    PolicyViolation,
    PullTimeout,
)
from workers.hosts import HostRegistry
from workers.image_cache import ImageCache, Layer, image_layers
from workers.keys import Keys
from workers.metrics import Metrics
from workers.reference import ImageReference, canonical_name, parse_reference

log = logging.getLogger(__name__)

ProgressCallback = Callable[[dict[str, Any]], None]
PROGRESS_INTERVAL_SECONDS = 0.5
_DONE_STATUSES = ("download complete", "pull complete", "already exists")


@dataclass
class PullProgress:
    """Bytes done and total over the layers of one pull, from Docker's progress events."""

    reference: str
    current: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)

    def update(self, event: dict[str, Any]) -> bool:
        """Account for one progress event; returns whether it is progress.

        Everything the daemon reports of the pull moving on is (a layer started, bytes downloaded
        or extracted, a layer done); its "Retrying in N seconds" while a registry is gone is not.
        """
        status = str(event.get("status", "")).lower()
        if status.startswith("retrying"):
            return False
        layer = event.get("id")
        if isinstance(layer, str):
            self._layer(layer, status, event.get("progressDetail") or {})
        return True

    def _layer(self, layer: str, status: str, detail: dict[str, Any]) -> None:
        if status.startswith("downloading") and detail.get("total"):
            self.total[layer] = int(detail["total"])
            self.current[layer] = int(detail.get("current") or 0)
        elif any(status.startswith(done) for done in _DONE_STATUSES):
            self.current[layer] = self.total.get(layer, 0)
            self.total.setdefault(layer, 0)
            self.done.add(layer)
        elif status.startswith("pulling fs layer") or status.startswith("waiting"):
            self.total.setdefault(layer, 0)
            self.current.setdefault(layer, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "bytes_done": sum(self.current.values()),
            "bytes_total": sum(self.total.values()),
            "layers_done": len(self.done),
            "layers_total": len(self.total),
        }


def pinned_references(settings: Settings) -> frozenset[str]:
    """The canonical references of ``CONTAINERIZER_PINNED_IMAGES``.

    Raises:
        InvalidSpec: a pinned image is not a valid reference.
    """
    return frozenset(
        parse_reference(p, field="pinned_images").canonical for p in settings.pinned_images
    )


class ImageService:
    """Image operations on one engine. Takes its collaborators in."""

    def __init__(
        self,
        engine: Engine,
        redis_client: redis.Redis,
        keys: Keys,
        cache: ImageCache,
        credentials: CredentialStore,
        settings: Settings,
        metrics: Metrics | None = None,
        registry: HostRegistry | None = None,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.redis = redis_client
        self.keys = keys
        self.cache = cache
        self.credentials = credentials
        self.settings = settings
        self.metrics = metrics
        #: Canonical references of the operator's pinned images (never evicted).
        self.pinned = pinned_references(settings)

    # --- queries ------------------------------------------------------------------------------
    def present(self, reference: ImageReference) -> dict[str, Any] | None:
        """The inspect document of the image if the host has it; None otherwise."""
        return self.engine.inspect_image(reference.familiar)

    def is_pinned(self, references: list[str]) -> bool:
        """Whether any of an image's references is in the operator's pinned list."""
        return any(ref in self.pinned for ref in references)

    # --- pull ---------------------------------------------------------------------------------
    def pull(
        self,
        reference: ImageReference,
        *,
        auth: RegistryCredentials | None = None,
        always_pull: bool = False,
        progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Make the image present: from the host when it has it, else from its registry.

        Returns {reference, id, size, cached, pull_seconds}.

        Raises:
            ImageNotFound, RegistryAuthError, RegistryUnavailable, PullTimeout, DockerUnavailable.
        """
        before = self.present(reference)
        if before is not None and not always_pull:
            return self._hit(reference, before)
        with self._pull_lock(reference):
            if not always_pull:
                # Another worker may have pulled it while this one waited for the lock.
                attrs = self.present(reference)
                if attrs is not None:
                    return self._hit(reference, attrs)
            began = time.monotonic()
            self._pull_stream(
                reference, auth or self.credentials.for_registry(reference.registry), progress
            )
            seconds = time.monotonic() - began
        # The service owns a name only if it was absent when the service pulled it: refreshing
        # the operator's image gives no caller the right to re-tag or remove it.
        owned = before is None or self.cache.owns(reference.canonical)
        return self._pulled(reference, seconds, owned=owned)

    def _pull_lock(self, reference: ImageReference) -> _HeldLock:
        """The lock of this Docker host's pulls, held (waiting at most the pull timeout).

        Raises:
            PullTimeout: another pull held it for longer than the pull timeout.
        """
        lock = self.redis.lock(
            self.keys.pull_lock(),
            # The longest a pull can hold it: its deadline, plus one stall past the last event.
            timeout=self.settings.pull_timeout_seconds + self.settings.pull_stall_seconds + 60,
            blocking_timeout=self.settings.pull_timeout_seconds,
            thread_local=False,
        )
        if not lock.acquire():
            raise PullTimeout(
                f"image {reference}: another pull held this Docker host for longer than"
                f" {self.settings.pull_timeout_seconds:.0f} s"
            )
        return _HeldLock(lock, f"pull lock for {reference}")

    def _pulled(self, reference: ImageReference, seconds: float, *, owned: bool) -> dict[str, Any]:
        """Record a pull that reached the registry in the cache index (a name the service owns
        only); its result."""
        attrs = self.present(reference)
        if attrs is None:
            raise ImageNotFound(f"image {reference}: not present after a successful pull")
        size = int(attrs.get("Size") or 0)
        if owned:
            self.cache.record_pull(
                attrs["Id"], [reference.canonical], size, seconds, self._layers(attrs)
            )
        else:
            log.info("refreshed %s, an image containerizer does not own: not cached", reference)
        self.cache.count(hit=False)
        self.publish()
        if self.metrics is not None:
            self.metrics.observe("image_pull_seconds", seconds)
        log.info("pulled %s (%s, %d bytes) in %.2f s", reference, attrs["Id"][:19], size, seconds)
        return {
            "reference": reference.familiar,
            "id": attrs["Id"],
            "size": size,
            "cached": False,
            "pull_seconds": round(seconds, 3),
        }

    def _layers(self, attrs: dict[str, Any]) -> list[Layer] | None:
        """The image's layers with their sizes, for the cache to count shared layers once.

        None (the image counts as one layer of its own) if Docker does not answer: the pull has
        succeeded, and failing it now would leave the image out of the cache index.
        """
        try:
            history = self.engine.image_history(attrs["Id"])
        except ContainerizerError as exc:
            log.warning("no layer sizes for %s: %s", attrs["Id"][:19], exc)
            return None
        size = int(attrs.get("Size") or 0)
        diff_ids = list((attrs.get("RootFS") or {}).get("Layers") or [])
        layers = image_layers(
            attrs["Id"],
            diff_ids,
            [int(item.get("Size") or 0) for item in reversed(history)],
            size,
        )
        if len(layers) < len(diff_ids):
            log.info(
                "history of %s does not line up with its %d layers: counted as one of %d bytes",
                attrs["Id"][:19],
                len(diff_ids),
                size,
            )
        return layers

    def _hit(self, reference: ImageReference, attrs: dict[str, Any]) -> dict[str, Any]:
        self.cache.count(hit=True)
        return {
            "reference": reference.familiar,
            "id": attrs["Id"],
            "size": int(attrs.get("Size") or 0),
            "cached": True,
            "pull_seconds": 0.0,
        }

    def _pull_stream(
        self,
        reference: ImageReference,
        credentials: RegistryCredentials | None,
        progress: ProgressCallback | None,
    ) -> None:
        """Run one pull, reading Docker's progress stream to its end.

        A pull that makes no progress (no bytes, no layer done) for the stall limit is abandoned,
        as is one past the total deadline: closing the stream makes the daemon abandon the pull.
        Docker's own "Retrying in N seconds" reports are not progress.
        """
        subject = f"image {reference}"
        stall = self.settings.pull_stall_seconds
        deadline = time.monotonic() + self.settings.pull_timeout_seconds
        tracker = PullProgress(reference.familiar)
        last_report = 0.0
        events = self.engine.pull(
            reference.name,
            reference.pull_tag,
            credentials.auth_config() if credentials else None,
            stall_seconds=stall,
        )
        with contextlib.closing(events):
            last_progress = time.monotonic()
            for event in events:
                now = time.monotonic()
                if tracker.update(event):
                    last_progress = now
                elif now - last_progress > stall:
                    raise PullTimeout(f"{subject}: no progress for {stall:.0f} s")
                if now > deadline:
                    raise PullTimeout(
                        f"{subject}: pull exceeded {self.settings.pull_timeout_seconds:.0f} s"
                    )
                if progress is not None and now - last_report >= PROGRESS_INTERVAL_SECONDS:
                    progress(tracker.as_dict())
                    last_report = now
        if progress is not None:
            progress(tracker.as_dict())

    # --- tag, push, remove, list --------------------------------------------------------------
    def tag(self, source: ImageReference, target: ImageReference) -> dict[str, Any]:
        """Give ``source``'s image the name ``target``.

        Raises:
            ImageNotFound: no ``source`` image.
            PolicyViolation: ``target`` names an image the service did not pull or tag (re-tagging
                it would replace what the operator runs, e.g. the service's own image), or a
                pinned image.
        """
        if target.canonical in self.pinned:
            raise PolicyViolation(f"target: {target} is a pinned image; it is never re-tagged")
        if self.present(target) is not None and not self.cache.owns(target.canonical):
            raise PolicyViolation(
                f"target: {target} names an image containerizer did not pull or tag;"
                " it will not be replaced"
            )
        attrs = self.present(source)
        if attrs is None:
            raise ImageNotFound(f"image {source}: no such image")
        self.engine.tag(attrs["Id"], target.name, target.tag or "latest")
        self.cache.add_reference(attrs["Id"], target.canonical)
        self.publish()
        return {"source": source.familiar, "target": target.familiar}

    def push(
        self, reference: ImageReference, *, auth: RegistryCredentials | None = None
    ) -> dict[str, Any]:
        """Push to the reference's registry, reading the whole progress stream.

        Raises:
            ImageNotFound, RegistryAuthError, RegistryUnavailable, EngineError.
        """
        if self.present(reference) is None:
            raise ImageNotFound(f"image {reference}: no such image")
        credentials = auth or self.credentials.for_registry(reference.registry)
        digest: str | None = None
        for event in self.engine.push(
            reference.name,
            reference.tag or "latest",
            credentials.auth_config() if credentials else None,
        ):
            aux = event.get("aux") or {}
            if aux.get("Digest"):
                digest = str(aux["Digest"])
        if digest is None:
            raise EngineError(f"image {reference}: push ended without a digest")
        log.info("pushed %s (%s)", reference, digest)
        return {"reference": reference.familiar, "digest": digest}

    def remove(self, reference: ImageReference, *, force: bool) -> dict[str, Any]:
        """Remove an image (one name of it, if it has several).

        Raises:
            ImageNotFound: no such image.
            PolicyViolation: the service did not pull or tag this name (it is the operator's), or
                the image is pinned.
            Conflict: a container (running or stopped) uses it and ``force`` is false.
        """
        if reference.canonical in self.pinned:
            raise PolicyViolation(f"reference: {reference} is a pinned image; it is never removed")
        attrs = self.present(reference)
        if attrs is None:
            raise ImageNotFound(f"image {reference}: no such image")
        image_id = attrs["Id"]
        if not self.cache.owns(reference.canonical):
            raise PolicyViolation(
                f"reference: {reference} was not pulled or tagged by containerizer;"
                " it will not be removed"
            )
        self.engine.remove_image(reference.familiar, force=force)
        self.cache.disown(reference.canonical)
        if self.present_id(image_id):
            self.cache.forget_reference(image_id, reference.canonical)
        else:
            self.cache.forget(image_id)
        self.publish()
        return {"reference": reference.familiar, "removed": True}

    def layers(self, image_id: str) -> list[Layer] | None:
        """The layers of an image on the host (None: it is gone, or Docker did not say)."""
        attrs = self.engine.inspect_image(image_id)
        return None if attrs is None else self._layers(attrs)

    def present_id(self, image_id: str) -> bool:
        """Whether the host still has an image with this id."""
        return self.engine.inspect_image(image_id) is not None

    def publish(self) -> None:
        """Tell the cluster this host's images changed (placement by image, images.list)."""
        if self.registry is not None:
            try:
                self.registry.publish_inventory(self.engine.images())
            except (ContainerizerError, redis.RedisError) as exc:
                log.warning("could not publish this host's images (%s): the agent will", exc)

    def list(self, host: str | None = None) -> list[dict[str, Any]]:
        """Every image on this host (asked of Docker), or on ``host`` (as its agent published
        them); the ones the service pulled carry their cache figures."""
        here = self.keys.host
        if host is None or host == here or self.registry is None:
            rows = self.engine.images()
            entries = self.cache.entries()
        else:
            rows = [
                {"Id": i, "RepoTags": v["tags"], "Size": v["size"]}
                for i, v in self.registry.inventory(host).items()
            ]
            entries = ImageCache(self.redis, self.keys.on(host)).entries()
        cached = {entry["id"]: entry for entry in entries}
        result = []
        for row in rows:
            tags = [t for t in row.get("RepoTags") or [] if t != "<none>:<none>"]
            entry = cached.get(row["Id"])
            references = entry["references"] if entry else []
            result.append(
                {
                    "id": row["Id"],
                    "tags": tags,
                    "size": int(row.get("Size") or 0),
                    "last_used": entry["last_used"] if entry else None,
                    "use_count": entry["use_count"] if entry else None,
                    "pinned": self.is_pinned(references + [canonical_name(t) for t in tags]),
                    "cached": entry is not None,
                    "pulled_at": entry["pulled_at"] if entry else None,
                    "pull_seconds": entry["pull_seconds"] if entry else None,
                    "host": host or here,
                }
            )
        return result


class _HeldLock:
    """A held Redis lock, released on leaving the block (a lock that expired is logged)."""

    def __init__(self, lock: Any, what: str) -> None:
        self.lock = lock
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        try:
            self.lock.release()
        except redis.exceptions.LockError:
            log.warning("%s expired before the pull ended", self.what)

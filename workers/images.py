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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.auth
import docker.errors
import redis
import requests.exceptions
import urllib3.exceptions

from config.settings import Settings
from workers.credentials import CredentialStore, RegistryCredentials
from workers.docker_errors import docker_errors, registry_stream_error
from workers.errors import ContainerizerError, ImageNotFound, PolicyViolation, PullTimeout
from workers.image_cache import ImageCache, Layer, image_layers
from workers.keys import Keys
from workers.metrics import Metrics
from workers.reference import ImageReference, canonical_name, parse_reference

log = logging.getLogger(__name__)

ProgressCallback = Callable[[dict[str, Any]], None]
PROGRESS_INTERVAL_SECONDS = 0.5
_DONE_STATUSES = ("download complete", "pull complete", "already exists")
_STREAM_TIMEOUTS = (
    urllib3.exceptions.ReadTimeoutError,
    requests.exceptions.ReadTimeout,
    requests.exceptions.ConnectionError,
    TimeoutError,
)


@dataclass
class PullProgress:
    """Bytes done and total over the layers of one pull, from Docker's progress events."""

    reference: str
    current: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)

    def update(self, event: dict[str, Any]) -> None:
        layer = event.get("id")
        if not isinstance(layer, str):
            return
        detail = event.get("progressDetail") or {}
        status = str(event.get("status", "")).lower()
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
    """Image operations on one engine. Takes its clients in."""

    def __init__(
        self,
        client: docker.DockerClient,
        redis_client: redis.Redis,
        keys: Keys,
        cache: ImageCache,
        credentials: CredentialStore,
        settings: Settings,
        metrics: Metrics | None = None,
        host_id: str | None = None,
    ) -> None:
        self.client = client
        self.redis = redis_client
        self.keys = keys
        self.cache = cache
        self.credentials = credentials
        self.settings = settings
        self.metrics = metrics
        self._host_id = host_id  # The daemon's id, when the caller already asked for it.
        #: Canonical references of the operator's pinned images (never evicted).
        self.pinned = pinned_references(settings)

    # --- queries ------------------------------------------------------------------------------
    def present(self, reference: ImageReference) -> dict[str, Any] | None:
        """The inspect document of the image if the host has it; None otherwise."""
        return self._inspect(reference.familiar)

    def _inspect(self, name: str) -> dict[str, Any] | None:
        """The inspect document of the image ``name`` (a reference or an id), or None."""
        try:
            with docker_errors(f"image {name}", not_found=ImageNotFound):
                attrs: dict[str, Any] = self.client.api.inspect_image(name)
                return attrs
        except ImageNotFound:
            return None

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
        if not always_pull:
            attrs = self.present(reference)
            if attrs is not None:
                return self._hit(reference, attrs)
        lock = self.redis.lock(
            self.keys.pull_lock(self.host_id()),
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
        try:
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
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                log.warning("pull lock for %s expired before the pull ended", reference)
        attrs = self.present(reference)
        if attrs is None:
            raise ImageNotFound(f"image {reference}: not present after a successful pull")
        self.cache.record_pull(
            attrs["Id"],
            [reference.canonical],
            int(attrs.get("Size") or 0),
            seconds,
            self._layers(attrs),
        )
        self.cache.count(hit=False)
        if self.metrics is not None:
            self.metrics.observe("image_pull_seconds", seconds)
        log.info(
            "pulled %s (%s, %d bytes) in %.2f s",
            reference,
            attrs["Id"][:19],
            int(attrs.get("Size") or 0),
            seconds,
        )
        return {
            "reference": reference.familiar,
            "id": attrs["Id"],
            "size": int(attrs.get("Size") or 0),
            "cached": False,
            "pull_seconds": round(seconds, 3),
        }

    def _layers(self, attrs: dict[str, Any]) -> list[Layer] | None:
        """The image's layers with their sizes, for the cache to count shared layers once.

        None (the image counts as one layer of its own) if Docker does not answer: the pull has
        succeeded, and failing it now would leave the image out of the cache index.
        """
        try:
            with docker_errors(f"image {attrs['Id']}", not_found=ImageNotFound):
                history = self.client.api.history(attrs["Id"])
        except ContainerizerError as exc:
            log.warning("no layer sizes for %s: %s", attrs["Id"][:19], exc)
            return None
        size = int(attrs.get("Size") or 0)
        diff_ids = list((attrs.get("RootFS") or {}).get("Layers") or [])
        layers = image_layers(
            attrs["Id"],
            diff_ids,
            [int(item.get("Size") or 0) for item in reversed(history or [])],
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

        docker-py's ``pull`` reads with no timeout at all, so a stalled registry would hold the
        worker forever; this posts the same request with a read timeout (the stall limit) and
        closes it past the total deadline, which makes the daemon abandon the pull.
        """
        subject = f"image {reference}"
        api = self.client.api
        headers = {
            # An explicit (possibly empty) auth header: never the host's own docker config.
            "X-Registry-Auth": docker.auth.encode_header(
                credentials.auth_config() if credentials else {}
            ).decode("ascii")
        }
        params = {"fromImage": reference.name, "tag": reference.pull_tag}
        deadline = time.monotonic() + self.settings.pull_timeout_seconds
        tracker = PullProgress(reference.familiar)
        last_report = 0.0
        stalled = PullTimeout(
            f"{subject}: no progress for {self.settings.pull_stall_seconds:.0f} s"
        )
        with docker_errors(subject, not_found=ImageNotFound):
            try:
                response = self._post_pull(api, params, headers)
            except requests.exceptions.ReadTimeout:
                # The daemon took the request and said nothing: a registry that does not answer.
                raise stalled from None
            api._raise_for_status(response)
        # Errors of the stream itself (a daemon gone mid-pull) are translated too.
        with docker_errors(subject, not_found=ImageNotFound), contextlib.closing(response):
            for event in self._events(response, stalled):
                if "error" in event or "errorDetail" in event:
                    message = str(event.get("error") or event["errorDetail"].get("message"))
                    raise registry_stream_error(message, subject=subject)
                tracker.update(event)
                now = time.monotonic()
                if now > deadline:
                    raise PullTimeout(
                        f"{subject}: pull exceeded {self.settings.pull_timeout_seconds:.0f} s"
                    )
                if progress is not None and now - last_report >= PROGRESS_INTERVAL_SECONDS:
                    progress(tracker.as_dict())
                    last_report = now
        if progress is not None:
            progress(tracker.as_dict())

    def _post_pull(
        self, api: Any, params: dict[str, str], headers: dict[str, str]
    ) -> requests.Response:
        response: requests.Response = api._post(
            api._url("/images/create"),
            params=params,
            headers=headers,
            stream=True,
            timeout=(self.settings.docker_timeout_seconds, self.settings.pull_stall_seconds),
        )
        return response

    def _events(
        self, response: requests.Response, stalled: PullTimeout
    ) -> Iterator[dict[str, Any]]:
        try:
            yield from self.client.api._stream_helper(response, decode=True)
        except _STREAM_TIMEOUTS as exc:
            if isinstance(exc, requests.exceptions.ConnectionError) and not _is_timeout(exc):
                raise
            raise stalled from None

    def host_id(self) -> str:
        """The Docker daemon's own id: one lock per daemon, however clients address it."""
        if self._host_id is None:
            with docker_errors("docker"):
                self._host_id = str(self.client.info().get("ID") or "default")
        return self._host_id

    # --- tag, push, remove, list --------------------------------------------------------------
    def tag(self, source: ImageReference, target: ImageReference) -> dict[str, Any]:
        """Give ``source``'s image the name ``target``.

        Raises:
            ImageNotFound: no ``source`` image.
            PolicyViolation: ``target`` names an image the service did not pull or tag (re-tagging
                it would replace what the operator runs, e.g. the service's own image).
        """
        if self.present(target) is not None and not self.cache.owns(target.canonical):
            raise PolicyViolation(
                f"target: {target} names an image containerizer did not pull or tag;"
                " it will not be replaced"
            )
        with docker_errors(f"image {source}", not_found=ImageNotFound):
            attrs = self.client.api.inspect_image(source.familiar)
            self.client.api.tag(attrs["Id"], target.name, tag=target.tag or "latest", force=True)
        self.cache.add_reference(attrs["Id"], target.canonical)
        return {"source": source.familiar, "target": target.familiar}

    def push(
        self, reference: ImageReference, *, auth: RegistryCredentials | None = None
    ) -> dict[str, Any]:
        """Push to the reference's registry, reading the whole progress stream.

        docker-py does not raise when the stream reports an error, so every event is checked.

        Raises:
            ImageNotFound, RegistryAuthError, RegistryUnavailable, EngineError.
        """
        subject = f"image {reference}"
        credentials = auth or self.credentials.for_registry(reference.registry)
        digest: str | None = None
        with docker_errors(subject, not_found=ImageNotFound):
            self.client.api.inspect_image(reference.familiar)
            stream = self.client.api.push(
                reference.name,
                tag=reference.tag or "latest",
                stream=True,
                decode=True,
                auth_config=credentials.auth_config() if credentials else {},
            )
            for event in stream:
                if "error" in event or "errorDetail" in event:
                    message = str(event.get("error") or event["errorDetail"].get("message"))
                    raise registry_stream_error(message, subject=subject)
                aux = event.get("aux") or {}
                if aux.get("Digest"):
                    digest = str(aux["Digest"])
        if digest is None:
            raise registry_stream_error("push ended without a digest", subject=subject)
        log.info("pushed %s (%s)", reference, digest)
        return {"reference": reference.familiar, "digest": digest}

    def remove(self, reference: ImageReference, *, force: bool) -> dict[str, Any]:
        """Remove an image (one name of it, if it has several).

        Raises:
            ImageNotFound: no such image.
            PolicyViolation: the service did not pull or tag this name (it is the operator's).
            Conflict: a container (running or stopped) uses it and ``force`` is false.
        """
        with docker_errors(f"image {reference}", not_found=ImageNotFound):
            image_id = self.client.api.inspect_image(reference.familiar)["Id"]
        if not self.cache.owns(reference.canonical):
            raise PolicyViolation(
                f"reference: {reference} was not pulled or tagged by containerizer;"
                " it will not be removed"
            )
        with docker_errors(f"image {reference}", not_found=ImageNotFound):
            self.client.api.remove_image(reference.familiar, force=force)
        self.cache.disown(reference.canonical)
        if self.present_id(image_id):
            self.cache.forget_reference(image_id, reference.canonical)
        else:
            self.cache.forget(image_id)
        return {"reference": reference.familiar, "removed": True}

    def layers(self, image_id: str) -> list[Layer] | None:
        """The layers of an image on the host (None: it is gone, or Docker did not say)."""
        attrs = self._inspect(image_id)
        return None if attrs is None else self._layers(attrs)

    def present_id(self, image_id: str) -> bool:
        """Whether the host still has an image with this id."""
        return self._inspect(image_id) is not None

    def list(self) -> list[dict[str, Any]]:
        """Every image on the host; the ones the service pulled carry their cache figures."""
        with docker_errors("images"):
            rows = self.client.api.images()
        cached = {entry["id"]: entry for entry in self.cache.entries()}
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
                }
            )
        return result


def _is_timeout(exc: BaseException) -> bool:
    text = repr(exc).lower()
    return "read timed out" in text or "timeout" in text

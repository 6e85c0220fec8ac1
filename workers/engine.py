"""The engine: every call containerizer makes to one Docker daemon, through docker-py.

One ``Engine`` per Docker host owns the low-level docker-py client. Containers, images, events,
stats, logs, volumes and networks all go through it, so the error mapper
(:mod:`workers.docker_errors`) has one door to guard and a second daemon costs one more object.
Nothing outside this module touches docker-py's client or its private helpers.

Every method raises containerizer errors only: ``DockerUnavailable`` when the daemon does not
answer, ``ContainerNotFound``/``ImageNotFound`` for a 404, ``Conflict`` for a 409, and so on. The
engine does not decide what is managed: callers resolve references through the state store first.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import docker
import docker.auth
import docker.errors
import docker.models.containers
import docker.utils
import requests
import requests.exceptions
import urllib3.exceptions
from docker.transport import UnixHTTPAdapter

from config.settings import Settings
from workers.docker_errors import docker_errors, registry_stream_error
from workers.errors import Conflict, ImageNotFound, InvalidSpec, PullTimeout, ResourceNotFound

log = logging.getLogger(__name__)

_FRAME_HEADER = struct.Struct(">BxxxL")  # Docker's multiplexed stream: stream id, payload size.
STDOUT, STDERR = 1, 2


@dataclass(frozen=True, slots=True)
class Frame:
    """One chunk of a container's output: which stream (``STDOUT``/``STDERR``) and its bytes."""

    stream: int
    data: bytes


class _OnePoolUnixAdapter(UnixHTTPAdapter):  # type: ignore[misc]
    """docker-py's unix-socket adapter keeps a connection pool per URL (docker-py 7.1,
    ``UnixHTTPAdapter.get_connection``), so every call about a new container (its create, start,
    stop, remove: each a URL of its own) opens a new connection to dockerd, and an LRU of 10
    pools closes others. One socket is one server: one pool serves every URL, and its
    connections are kept and reused."""

    def get_connection(self, url: str, proxies: Any = None) -> Any:
        return super().get_connection(self.socket_path, proxies)


class Engine:
    """One Docker daemon. Takes docker-py's low-level client (``docker.APIClient``) in."""

    def __init__(self, api: docker.APIClient, settings: Settings) -> None:
        self.api = api
        self.settings = settings
        self._daemon: dict[str, Any] | None = None

    @classmethod
    def connect(cls, settings: Settings, base_url: str | None = None) -> Engine:
        """An engine for ``base_url``, else ``DOCKER_HOST`` (and its TLS settings), else the
        local socket.

        Raises:
            DockerUnavailable: the daemon does not answer (docker-py asks it for its API version).
        """
        options: dict[str, Any] = docker.utils.kwargs_from_env()
        if base_url is not None:
            options["base_url"] = base_url
        with docker_errors("docker"):
            api = docker.APIClient(
                version=settings.docker_api_version,
                timeout=int(settings.docker_timeout_seconds),
                # A stats sweep keeps this many calls in flight; idle connections cost nothing.
                max_pool_size=max(16, settings.stats_concurrency),
                **options,
            )
        if api.base_url.startswith("http+docker://"):
            # A local socket (unix, named pipe, ssh): no proxy or .netrc applies to it, and
            # reading them from the environment costs ~0.1 ms on every request.
            api.trust_env = False
        original = getattr(api, "_custom_adapter", None)
        if isinstance(original, UnixHTTPAdapter):
            adapter = _OnePoolUnixAdapter(
                f"http+unix://{original.socket_path}",
                int(settings.docker_timeout_seconds),
                max_pool_size=max(16, settings.stats_concurrency),
            )
            original.close()
            api._custom_adapter = adapter
            api.mount("http+docker://", adapter)
        return cls(api, settings)

    def close(self) -> None:
        """Close the client's connections."""
        self.api.close()

    # --- the daemon ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """``docker info`` now."""
        with docker_errors("docker"):
            info: dict[str, Any] = self.api.info()
        self._daemon = info
        return info

    def daemon(self) -> dict[str, Any]:
        """``docker info`` as first read: the daemon's id, CPUs, memory, cgroup setup."""
        return self._daemon if self._daemon is not None else self.info()

    def daemon_id(self) -> str:
        """The daemon's own id ("" when it gives none)."""
        return str(self.daemon().get("ID") or "")

    def version(self) -> dict[str, Any]:
        """``docker version`` of the daemon."""
        with docker_errors("docker"):
            version: dict[str, Any] = self.api.version()
        return version

    # --- containers -----------------------------------------------------------------------------
    def create_container(self, kwargs: Mapping[str, Any], *, subject: str) -> str:
        """Create a container from docker-py ``containers.create`` keywords; returns its id.

        Raises:
            ImageNotFound: the image is not present on the host.
            Conflict: the name is taken.
            InvalidSpec: docker-py or the daemon refuse the configuration.
        """
        arguments = dict(kwargs)
        arguments["version"] = self.api._version
        try:
            create_arguments = docker.models.containers._create_container_args(arguments)
        except (docker.errors.InvalidArgument, ValueError, TypeError) as exc:
            raise InvalidSpec(f"{subject}: {exc}") from None
        with docker_errors(subject):
            response = self.api.create_container(**create_arguments)
        return str(response["Id"])

    def inspect_container(self, reference: str) -> dict[str, Any]:
        """The inspect document of a container (by id, id prefix or name).

        Raises:
            ContainerNotFound: no such container.
        """
        with docker_errors(f"container {reference}"):
            attrs: dict[str, Any] = self.api.inspect_container(reference)
        return attrs

    def start(self, container_id: str) -> float:
        """Start a container (a running one is left as it is); returns how long it took, in ms."""
        with docker_errors(f"container {container_id}"):
            began = time.perf_counter()
            self.api.start(container_id)
        return round((time.perf_counter() - began) * 1000.0, 2)

    def stop(self, container_id: str, timeout: int) -> None:
        """Stop gracefully: SIGTERM (or the image's stop signal), SIGKILL after ``timeout`` s.

        Stopping a container that is not running succeeds and changes nothing (Docker answers
        304 Not Modified).
        """
        with docker_errors(f"container {container_id}"):
            self.api.stop(container_id, timeout=timeout)

    def kill(self, container_id: str, signal: str) -> None:
        """Send ``signal``; a container that is not running is left so (the state a kill asks
        for)."""
        with contextlib.suppress(Conflict), docker_errors(f"container {container_id}"):
            self.api.kill(container_id, signal=signal)

    def restart(self, container_id: str, timeout: int) -> float:
        """Stop (as :meth:`stop`) then start; returns how long the whole restart took, in ms."""
        with docker_errors(f"container {container_id}"):
            began = time.perf_counter()
            self.api.restart(container_id, timeout=timeout)
        return round((time.perf_counter() - began) * 1000.0, 2)

    def remove_container(self, container_id: str, *, force: bool, volumes: bool) -> None:
        """Remove a container (a running one only with ``force``).

        Raises:
            Conflict: it is running and ``force`` is false (or a removal is in progress).
            ContainerNotFound: it does not exist.
        """
        with docker_errors(f"container {container_id}"):
            self.api.remove_container(container_id, v=volumes, force=force)

    def containers(
        self, *, all: bool, labels: list[str] | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows of ``docker ps`` (``all``: stopped ones too), filtered by labels."""
        filters: dict[str, Any] = {}
        if labels:
            filters["label"] = labels
        if status:
            filters["status"] = status
        with docker_errors("containers"):
            rows: list[dict[str, Any]] = self.api.containers(all=all, filters=filters or None)
        return rows

    def stats(self, container_id: str) -> dict[str, Any]:
        """One raw stats sample, taken at once (``one_shot``: no second sample, no 1-2 s wait)."""
        with docker_errors(f"container {container_id}"):
            raw = self.api.stats(container_id, stream=False, one_shot=True)
        return dict(raw)

    def logs(self, container_id: str, *, tail: int, timestamps: bool, max_bytes: int) -> str:
        """The last ``tail`` lines of stdout and stderr, interleaved as written, and at most their
        last ``max_bytes`` bytes (a line cut short at the start is kept whole from the cut)."""
        kept = bytearray()
        with docker_errors(f"container {container_id}"):
            for frame in self._log_frames(container_id, tail=tail, timestamps=timestamps):
                kept += frame.data
                if len(kept) > max_bytes:
                    del kept[: len(kept) - max_bytes]
        return kept.decode("utf-8", "replace")

    def follow_logs(
        self, container_id: str, *, since: int | None = None, seconds: float | None = None
    ) -> Iterator[Frame]:
        """A container's output from its first line (or from ``since``, seconds), then as it
        comes, until the container stops, or for at most ``seconds`` (the stream is cut then,
        even from a container that says nothing). The caller closes the iterator to stop early.

        Raises:
            ContainerNotFound, DockerUnavailable (also while iterating).
        """
        with docker_errors(f"container {container_id}"):
            yield from self._log_frames(container_id, follow=True, since=since, seconds=seconds)

    def _log_frames(
        self,
        container_id: str,
        *,
        tail: int | str = "all",
        timestamps: bool = False,
        follow: bool = False,
        since: int | None = None,
        seconds: float | None = None,
    ) -> Iterator[Frame]:
        params: dict[str, Any] = {
            "stdout": 1,
            "stderr": 1,
            "timestamps": int(timestamps),
            "follow": int(follow),
            "tail": tail,
        }
        if since is not None:
            params["since"] = since
        # No read timeout while following: a quiet container says nothing for as long as it likes.
        timeout = None if follow else self.settings.docker_timeout_seconds
        response = self.api._get(
            self.api._url("/containers/{0}/logs", container_id),
            params=params,
            stream=True,
            timeout=(self.settings.docker_timeout_seconds, timeout),
        )
        fired = threading.Event()
        cut = None
        if seconds is not None:
            cut = threading.Timer(seconds, _cut, args=(response, fired))
            cut.daemon = True
            cut.start()
        with contextlib.closing(response), _cancelling(cut):
            self.api._raise_for_status(response)
            raw = response.raw
            try:
                while True:
                    header = raw.read(_FRAME_HEADER.size)
                    if len(header) < _FRAME_HEADER.size:
                        return
                    stream, size = _FRAME_HEADER.unpack(header)
                    if size:
                        data = raw.read(size)
                        if not data:
                            return
                        yield Frame(stream, data)
            except Exception:
                if fired.is_set():
                    return  # Cut at its bound: the end of the stream, not a failure.
                raise

    # --- images ---------------------------------------------------------------------------------
    def inspect_image(self, name: str) -> dict[str, Any] | None:
        """The inspect document of the image ``name`` (a reference or an id), or None."""
        try:
            with docker_errors(f"image {name}", not_found=ImageNotFound):
                attrs: dict[str, Any] = self.api.inspect_image(name)
        except ImageNotFound:
            return None
        return attrs

    def image_history(self, image_id: str) -> list[dict[str, Any]]:
        """The image's history, newest first (as the Engine API gives it)."""
        with docker_errors(f"image {image_id}", not_found=ImageNotFound):
            history: list[dict[str, Any]] = self.api.history(image_id)
        return history or []

    def images(self) -> list[dict[str, Any]]:
        """Rows of ``docker images``."""
        with docker_errors("images"):
            rows: list[dict[str, Any]] = self.api.images()
        return rows

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        """Name the image ``repository:tag`` (moving the name if another image had it)."""
        with docker_errors(f"image {image_id}", not_found=ImageNotFound):
            self.api.tag(image_id, repository, tag=tag, force=True)

    def remove_image(self, name: str, *, force: bool) -> None:
        """Remove an image, or one of its names.

        Raises:
            ImageNotFound: no such image. Conflict: a container uses it (without ``force``).
        """
        with docker_errors(f"image {name}", not_found=ImageNotFound):
            self.api.remove_image(name, force=force)

    def pull(
        self,
        repository: str,
        tag: str,
        auth_config: Mapping[str, str] | None,
        *,
        stall_seconds: float,
    ) -> Generator[dict[str, Any], None, None]:
        """Start a pull and yield Docker's progress events.

        docker-py's own ``pull`` reads with no timeout at all, so a stalled registry would hold the
        caller forever; this posts the same request with a read timeout of ``stall_seconds`` and
        raises PullTimeout when nothing arrives for that long. Closing the iterator closes the
        request, which makes the daemon abandon the pull. An error event in the stream raises.

        Raises:
            ImageNotFound, RegistryAuthError, RegistryUnavailable, PullTimeout, DockerUnavailable.
        """
        subject = f"image {repository}:{tag}"
        headers = {
            # An explicit (possibly empty) auth header: never the host's own docker config.
            "X-Registry-Auth": docker.auth.encode_header(dict(auth_config or {})).decode("ascii")
        }
        stalled = PullTimeout(f"{subject}: no progress for {stall_seconds:.0f} s")
        with docker_errors(subject, not_found=ImageNotFound, registry=True):
            try:
                response = self.api._post(
                    self.api._url("/images/create"),
                    params={"fromImage": repository, "tag": tag},
                    headers=headers,
                    stream=True,
                    timeout=(self.settings.docker_timeout_seconds, stall_seconds),
                )
            except requests.exceptions.ReadTimeout:
                # The daemon took the request and said nothing: a registry that does not answer.
                raise stalled from None
            self.api._raise_for_status(response)
        # Errors of the stream itself (a daemon gone mid-pull) are translated too.
        with (
            docker_errors(subject, not_found=ImageNotFound, registry=True),
            contextlib.closing(response),
        ):
            for event in self._json_stream(response, stalled):
                _raise_stream_error(event, subject)
                yield event

    def push(
        self, repository: str, tag: str, auth_config: Mapping[str, str] | None
    ) -> Iterator[dict[str, Any]]:
        """Push an image and yield Docker's progress events; an error event raises.

        docker-py does not raise when the stream reports an error, so every event is checked.

        Raises:
            ImageNotFound, RegistryAuthError, RegistryUnavailable, EngineError.
        """
        subject = f"image {repository}:{tag}"
        with docker_errors(subject, not_found=ImageNotFound, registry=True):
            stream = self.api.push(
                repository, tag=tag, stream=True, decode=True, auth_config=dict(auth_config or {})
            )
            for event in stream:
                _raise_stream_error(event, subject)
                yield event

    def _json_stream(
        self, response: requests.Response, stalled: PullTimeout
    ) -> Iterator[dict[str, Any]]:
        try:
            yield from self.api._stream_helper(response, decode=True)
        except (urllib3.exceptions.ReadTimeoutError, requests.exceptions.ReadTimeout):
            raise stalled from None
        except requests.exceptions.ConnectionError as exc:
            # requests wraps urllib3's read timeout of a streamed body in a ConnectionError.
            if _read_timed_out(exc):
                raise stalled from None
            raise

    # --- events ---------------------------------------------------------------------------------
    def events(
        self, *, since: str, filters: Mapping[str, Any], until: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Docker's event stream from ``since`` (seconds, with a fraction), until it ends (at
        ``until``, when given).

        Raises:
            DockerUnavailable: the daemon went away (also while iterating).
        """
        with docker_errors("events"):
            yield from self.api.events(since=since, until=until, decode=True, filters=dict(filters))

    # --- volumes and networks ---------------------------------------------------------------------
    def create_volume(self, name: str, *, driver: str, labels: Mapping[str, str]) -> dict[str, Any]:
        """Create a named volume (an existing one of that name is returned as it is)."""
        with docker_errors(f"volume {name}"):
            volume: dict[str, Any] = self.api.create_volume(
                name=name, driver=driver, labels=dict(labels)
            )
        return volume

    def inspect_volume(self, name: str) -> dict[str, Any] | None:
        """The volume's inspect document, or None."""
        try:
            with docker_errors(f"volume {name}", not_found=ResourceNotFound):
                volume: dict[str, Any] = self.api.inspect_volume(name)
        except ResourceNotFound:
            return None
        return volume

    def remove_volume(self, name: str, *, force: bool) -> None:
        """Remove a volume. Raises Conflict when a container uses it."""
        with docker_errors(f"volume {name}", not_found=ResourceNotFound):
            self.api.remove_volume(name, force=force)

    def volumes(self, *, labels: list[str] | None = None) -> list[dict[str, Any]]:
        """Every volume (filtered by labels)."""
        with docker_errors("volumes"):
            answer = self.api.volumes(filters={"label": labels} if labels else None)
        return list((answer or {}).get("Volumes") or [])

    def create_network(
        self, name: str, *, driver: str, internal: bool, labels: Mapping[str, str]
    ) -> str:
        """Create a network; returns its id."""
        with docker_errors(f"network {name}"):
            answer = self.api.create_network(
                name, driver=driver, internal=internal, labels=dict(labels), check_duplicate=True
            )
        return str(answer["Id"])

    def inspect_network(self, name: str) -> dict[str, Any] | None:
        """The network's inspect document, or None."""
        try:
            with docker_errors(f"network {name}", not_found=ResourceNotFound):
                network: dict[str, Any] = self.api.inspect_network(name)
        except ResourceNotFound:
            return None
        return network

    def remove_network(self, name: str) -> None:
        """Remove a network. Raises Conflict when a container is attached to it."""
        with docker_errors(f"network {name}", not_found=ResourceNotFound):
            self.api.remove_network(name)

    def networks(self, *, labels: list[str] | None = None) -> list[dict[str, Any]]:
        """Every network (filtered by labels)."""
        with docker_errors("networks"):
            rows: list[dict[str, Any]] = self.api.networks(
                filters={"label": labels} if labels else None
            )
        return rows


def _cut(response: Any, fired: threading.Event) -> None:
    """End a streamed response from another thread: shut its socket down, so that the read
    blocked on it returns (closing it would not wake the reader)."""
    fired.set()
    sock = getattr(getattr(response.raw, "_connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def _cancelling(timer: threading.Timer | None) -> Iterator[None]:
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()


def _raise_stream_error(event: Mapping[str, Any], subject: str) -> None:
    if "error" in event or "errorDetail" in event:
        message = str(event.get("error") or (event.get("errorDetail") or {}).get("message"))
        raise registry_stream_error(message, subject=subject)


def _read_timed_out(exc: BaseException) -> bool:
    """Whether a connection error is urllib3's read timeout underneath."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, urllib3.exceptions.ReadTimeoutError):
            return True
        if any(isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in seen.args):
            return True
        seen = seen.__cause__ or seen.__context__
    return False

"""A typed Python client for other services: task names and queues so nobody copies them by hand.

    from tasks.client import ContainerizerClient

    client = ContainerizerClient.from_settings()          # CONTAINERIZER_BROKER_URL, ...
    started = client.run({"image": "busybox", "command": ["sleep", "60"]})
    client.stop(started["id"])
    for stream, line in client.follow_logs(started["id"]):
        print(stream, line)

Every method sends one task by name to its queue and waits for the result (``wait=False`` returns
the ``AsyncResult`` instead). A failed task raises its documented error class from
:mod:`workers.errors` (``InvalidSpec``, ``ContainerNotFound``, ...). An operation on an existing
container goes straight to its host's own queue when the client can read the state store
(``CONTAINERIZER_REDIS_URL``), and through the shared queue otherwise (one hop more). Services in
other languages use the same contract by name; see README.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis
from celery import Celery
from celery.result import AsyncResult

import workers.errors  # noqa: F401 - so that results re-raise these classes, not look-alikes
from config.celery_config import CONTAINERS_QUEUE, IMAGES_QUEUE, MAINTENANCE_QUEUE, host_queue
from config.settings import Settings, load_settings
from tasks.redaction import redacted_reprs
from workers.keys import Keys
from workers.logs import read_stream

DEFAULT_TIMEOUT = 300.0
ProgressCallback = Callable[[dict[str, Any]], None]


class ContainerizerClient:
    """Sends containerizer tasks by name. Takes a Celery app configured for the broker in, and
    optionally the state store (to send container operations to their host directly, and to read
    live logs)."""

    def __init__(
        self,
        app: Celery,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        state: redis.Redis | None = None,
        keys: Keys | None = None,
    ) -> None:
        self.app = app
        self.timeout = timeout
        self.state = state
        self.keys = keys or Keys()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> ContainerizerClient:
        """A client for the broker, result backend and state store the settings name."""
        settings = settings or load_settings()
        app = Celery(
            "containerizer-client", broker=settings.broker_url, backend=settings.result_backend
        )
        app.conf.update(
            task_serializer="json",
            result_serializer="json",
            accept_content=["json"],
            result_accept_content=["json"],
            task_send_sent_event=True,
        )
        state = redis.Redis.from_url(
            settings.redis_url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5
        )
        return cls(app, state=state, keys=Keys(settings.redis_prefix), **kwargs)

    # --- plumbing -----------------------------------------------------------------------------
    def send(self, name: str, queue: str, /, **kwargs: Any) -> AsyncResult:
        """Send task ``name`` to ``queue``; secrets in ``kwargs`` are hidden from Flower."""
        return self.app.send_task(name, kwargs=kwargs, queue=queue, **redacted_reprs(kwargs=kwargs))

    def _call(self, name: str, queue: str, wait: bool, /, **kwargs: Any) -> Any:
        result = self.send(name, queue, **kwargs)
        if not wait:
            return result
        return result.get(timeout=self.timeout, disable_sync_subtasks=False)

    def _container(self, task: str, /, wait: bool = True, **kwargs: Any) -> Any:
        """A container task: on the container's host's own queue when the client knows it."""
        queue = CONTAINERS_QUEUE
        reference = kwargs.get("container")
        host = kwargs.get("host") or (self.host_of(reference) if reference else None)
        if host:
            queue = host_queue(CONTAINERS_QUEUE, host)
        return self._call(f"containerizer.containers.{task}", queue, wait, **kwargs)

    def _image(self, task: str, /, wait: bool = True, **kwargs: Any) -> Any:
        queue = host_queue(IMAGES_QUEUE, kwargs["host"]) if kwargs.get("host") else IMAGES_QUEUE
        return self._call(f"containerizer.images.{task}", queue, wait, **kwargs)

    def _maintenance(self, task: str, /, wait: bool = True, **kwargs: Any) -> Any:
        return self._call(f"containerizer.maintenance.{task}", MAINTENANCE_QUEUE, wait, **kwargs)

    def host_of(self, container: str) -> str | None:
        """The host of a container, from the state store (None: unknown, or no store here)."""
        if self.state is None:
            return None
        try:
            record_id = (
                container
                if self.state.exists(self.keys.container(container))
                else (
                    self.state.get(self.keys.container_name(container))
                    or self.state.get(self.keys.short_id(container))
                )
            )
            host = (
                self.state.hget(self.keys.container(str(record_id)), "host") if record_id else None
            )
        except redis.RedisError:
            return None
        return str(host) if host else None

    # --- containers ---------------------------------------------------------------------------
    def create(self, spec: dict[str, Any], *, host: str | None = None, wait: bool = True) -> Any:
        return self._container("create", wait, spec=spec, host=host)

    def run(
        self,
        spec: dict[str, Any],
        *,
        auth: dict[str, str] | None = None,
        host: str | None = None,
        on_exit: dict[str, Any] | None = None,
        follow: bool = False,
        wait: bool = True,
    ) -> Any:
        """Create and start; ``follow``: the result names its live-log stream (``stream``)."""
        kwargs: dict[str, Any] = {"spec": spec, "host": host}
        if auth is not None:
            kwargs["auth"] = auth
        if on_exit is not None:
            kwargs["on_exit"] = on_exit
        if follow:
            kwargs["follow"] = True
        return self._container("run", wait, **kwargs)

    def start(self, container: str, *, wait: bool = True) -> Any:
        return self._container("start", wait, container=container)

    def stop(self, container: str, *, timeout: int = 10, wait: bool = True) -> Any:
        return self._container("stop", wait, container=container, timeout=timeout)

    def kill(self, container: str, *, signal: str = "SIGKILL", wait: bool = True) -> Any:
        return self._container("kill", wait, container=container, signal=signal)

    def restart(self, container: str, *, timeout: int = 10, wait: bool = True) -> Any:
        return self._container("restart", wait, container=container, timeout=timeout)

    def remove(
        self, container: str, *, force: bool = False, volumes: bool = False, wait: bool = True
    ) -> Any:
        return self._container("remove", wait, container=container, force=force, volumes=volumes)

    def inspect(self, container: str, *, wait: bool = True) -> Any:
        return self._container("inspect", wait, container=container)

    def logs(
        self, container: str, *, tail: int = 100, timestamps: bool = False, wait: bool = True
    ) -> Any:
        return self._container("logs", wait, container=container, tail=tail, timestamps=timestamps)

    def wait(self, container: str, *, timeout: int = 300, condition: str = "not-running") -> Any:
        """Until the container is not running (or healthy), at most ``timeout`` seconds."""
        result = self.send(
            "containerizer.containers.wait",
            self._owner_queue(container),
            container=container,
            timeout=timeout,
            condition=condition,
        )
        return result.get(timeout=timeout + 60)

    def follow_logs(
        self, container: str, *, idle_seconds: float | None = None
    ) -> Iterator[tuple[str, str]]:
        """The container's lines as they come, from its first: (``stdout``/``stderr``, line),
        until it stops (the stream's eof), or ``idle_seconds`` without a line.

        Raises:
            ContainerNotFound, HostUnavailable; RuntimeError without a state store to read.
        """
        if self.state is None:
            raise RuntimeError("following logs needs the state store (CONTAINERIZER_REDIS_URL)")
        answer = self._container("logs", True, container=container, follow=True)
        yield from self.read_logs(answer["stream"], idle_seconds=idle_seconds)

    def read_logs(
        self, stream: str, *, idle_seconds: float | None = None
    ) -> Iterator[tuple[str, str]]:
        """The lines of a live-log stream (``logs(follow=true)``, ``run(follow=true)``), until its
        eof or ``idle_seconds`` without a line."""
        if self.state is None:
            raise RuntimeError("following logs needs the state store (CONTAINERIZER_REDIS_URL)")
        last, quiet_since = "0", time.monotonic()
        while True:
            entries = read_stream(self.state, stream, last_id=last)
            if entries:
                quiet_since = time.monotonic()
            for entry_id, fields in entries:
                last = entry_id
                if fields.get("eof"):
                    return
                yield fields.get("stream", "stdout"), fields.get("line", "")
            if idle_seconds is not None and time.monotonic() - quiet_since > idle_seconds:
                return

    def _owner_queue(self, container: str) -> str:
        host = self.host_of(container)
        return host_queue(CONTAINERS_QUEUE, host) if host else CONTAINERS_QUEUE

    def list(
        self,
        *,
        all: bool = False,
        labels: dict[str, str] | list[str] | None = None,
        host: str | None = None,
        wait: bool = True,
    ) -> Any:
        return self._call(
            "containerizer.containers.list",
            CONTAINERS_QUEUE,
            wait,
            all=all,
            labels=labels,
            host=host,
        )

    def stats(self, container: str, *, wait: bool = True) -> Any:
        return self._container("stats", wait, container=container)

    # --- volumes and networks -----------------------------------------------------------------
    def create_volume(
        self, name: str, *, labels: dict[str, str] | None = None, host: str | None = None
    ) -> Any:
        return self._resource("volumes.create", host, name=name, labels=labels)

    def remove_volume(self, name: str, *, force: bool = False, host: str | None = None) -> Any:
        return self._resource("volumes.remove", host, name=name, force=force)

    def volumes(self, *, host: str | None = None) -> Any:
        return self._resource("volumes.list", None, host=host)

    def create_network(
        self,
        name: str,
        *,
        internal: bool = False,
        labels: dict[str, str] | None = None,
        host: str | None = None,
    ) -> Any:
        return self._resource("networks.create", host, name=name, internal=internal, labels=labels)

    def remove_network(self, name: str, *, host: str | None = None) -> Any:
        return self._resource("networks.remove", host, name=name)

    def networks(self, *, host: str | None = None) -> Any:
        return self._resource("networks.list", None, host=host)

    def _resource(self, task: str, on: str | None, /, **kwargs: Any) -> Any:
        """A volume or network task, on host ``on``'s queue when named."""
        queue = host_queue(CONTAINERS_QUEUE, on) if on else CONTAINERS_QUEUE
        if on:
            kwargs["host"] = on
        return self._call(f"containerizer.{task}", queue, True, **kwargs)

    # --- images -------------------------------------------------------------------------------
    def pull(
        self,
        reference: str,
        *,
        auth: dict[str, str] | None = None,
        always_pull: bool = False,
        host: str | None = None,
        on_progress: ProgressCallback | None = None,
        poll_seconds: float = 0.2,
    ) -> Any:
        """Pull and wait; ``on_progress`` gets each PROGRESS update ({bytes_done, ...})."""
        queue = host_queue(IMAGES_QUEUE, host) if host else IMAGES_QUEUE
        result = self.send(
            "containerizer.images.pull",
            queue,
            reference=reference,
            auth=auth,
            always_pull=always_pull,
            host=host,
        )
        if on_progress is not None:
            deadline = time.monotonic() + self.timeout
            while not result.ready() and time.monotonic() < deadline:
                if result.state == "PROGRESS" and isinstance(result.info, dict):
                    on_progress(result.info)
                time.sleep(poll_seconds)
        return result.get(timeout=self.timeout)

    def prewarm(
        self,
        reference: str,
        *,
        hosts: Sequence[str] | None = None,
        auth: dict[str, str] | None = None,
    ) -> Any:
        """Pull on every named host (None: every live host)."""
        names = None if hosts is None else [str(h) for h in hosts]
        name = "containerizer.images.prewarm"
        return self._call(name, IMAGES_QUEUE, True, reference=reference, hosts=names, auth=auth)

    def tag(self, source: str, target: str, *, host: str | None = None, wait: bool = True) -> Any:
        return self._image("tag", wait, source=source, target=target, host=host)

    def push(
        self,
        reference: str,
        *,
        auth: dict[str, str] | None = None,
        host: str | None = None,
        wait: bool = True,
    ) -> Any:
        return self._image("push", wait, reference=reference, auth=auth, host=host)

    def remove_image(
        self, reference: str, *, force: bool = False, host: str | None = None, wait: bool = True
    ) -> Any:
        return self._image("remove", wait, reference=reference, force=force, host=host)

    def images(self, *, host: str | None = None, wait: bool = True) -> Any:
        return self._call("containerizer.images.list", IMAGES_QUEUE, wait, host=host)

    # --- maintenance --------------------------------------------------------------------------
    def collect_stats(self, *, host: str | None = None, wait: bool = True) -> Any:
        return self._maintenance("collect_stats", wait, host=host)

    def evict_images(self, *, host: str | None = None, wait: bool = True) -> Any:
        return self._maintenance("evict_images", wait, host=host)

    def reconcile(self, *, host: str | None = None, wait: bool = True) -> Any:
        return self._maintenance("reconcile", wait, host=host)

    def summary(self, *, host: str | None = None, wait: bool = True) -> Any:
        return self._maintenance("summary", wait, host=host)

    def hosts(self, *, wait: bool = True) -> Any:
        return self._maintenance("hosts", wait)

    def close(self) -> None:
        self.app.close()
        if self.state is not None:
            self.state.close()

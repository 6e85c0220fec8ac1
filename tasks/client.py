"""A typed Python client for other services: task names and queues so nobody copies them by hand.

    from tasks.client import ContainerizerClient

    client = ContainerizerClient.from_settings()          # CONTAINERIZER_BROKER_URL, ...
    started = client.run({"image": "busybox", "command": ["sleep", "60"]})
    client.stop(started["id"])

Every method sends one task by name to its queue and waits for the result (``wait=False`` returns
the ``AsyncResult`` instead). A failed task raises its documented error class from
:mod:`workers.errors` (``InvalidSpec``, ``ContainerNotFound``, ...). Services in other languages use
the same contract by name; see README.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.result import AsyncResult

import workers.errors  # noqa: F401 - so that results re-raise these classes, not look-alikes
from config.celery_config import CONTAINERS_QUEUE, IMAGES_QUEUE, MAINTENANCE_QUEUE
from config.settings import Settings, load_settings
from tasks.redaction import redacted_reprs

DEFAULT_TIMEOUT = 300.0
ProgressCallback = Callable[[dict[str, Any]], None]


class ContainerizerClient:
    """Sends containerizer tasks by name. Takes a Celery app configured for the broker in."""

    def __init__(self, app: Celery, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.app = app
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> ContainerizerClient:
        """A client for the broker and result backend the settings name (JSON only)."""
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
        return cls(app, **kwargs)

    # --- plumbing -----------------------------------------------------------------------------
    def send(self, name: str, queue: str, **kwargs: Any) -> AsyncResult:
        """Send task ``name`` to ``queue``; secrets in ``kwargs`` are hidden from Flower."""
        return self.app.send_task(name, kwargs=kwargs, queue=queue, **redacted_reprs(kwargs=kwargs))

    def _call(self, name: str, queue: str, wait: bool, **kwargs: Any) -> Any:
        result = self.send(name, queue, **kwargs)
        if not wait:
            return result
        return result.get(timeout=self.timeout, disable_sync_subtasks=False)

    def _container(self, task: str, wait: bool = True, **kwargs: Any) -> Any:
        return self._call(f"containerizer.containers.{task}", CONTAINERS_QUEUE, wait, **kwargs)

    def _image(self, task: str, wait: bool = True, **kwargs: Any) -> Any:
        return self._call(f"containerizer.images.{task}", IMAGES_QUEUE, wait, **kwargs)

    def _maintenance(self, task: str, wait: bool = True) -> Any:
        return self._call(f"containerizer.maintenance.{task}", MAINTENANCE_QUEUE, wait)

    # --- containers ---------------------------------------------------------------------------
    def create(self, spec: dict[str, Any], *, wait: bool = True) -> Any:
        return self._container("create", wait, spec=spec)

    def run(
        self, spec: dict[str, Any], *, auth: dict[str, str] | None = None, wait: bool = True
    ) -> Any:
        kwargs: dict[str, Any] = {"spec": spec}
        if auth is not None:
            kwargs["auth"] = auth
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

    def list(
        self,
        *,
        all: bool = False,
        labels: dict[str, str] | list[str] | None = None,
        wait: bool = True,
    ) -> Any:
        return self._container("list", wait, all=all, labels=labels)

    def stats(self, container: str, *, wait: bool = True) -> Any:
        return self._container("stats", wait, container=container)

    # --- images -------------------------------------------------------------------------------
    def pull(
        self,
        reference: str,
        *,
        auth: dict[str, str] | None = None,
        always_pull: bool = False,
        on_progress: ProgressCallback | None = None,
        poll_seconds: float = 0.2,
    ) -> Any:
        """Pull and wait; ``on_progress`` gets each PROGRESS update ({bytes_done, ...})."""
        result = self.send(
            "containerizer.images.pull",
            IMAGES_QUEUE,
            reference=reference,
            auth=auth,
            always_pull=always_pull,
        )
        if on_progress is not None:
            deadline = time.monotonic() + self.timeout
            while not result.ready() and time.monotonic() < deadline:
                if result.state == "PROGRESS" and isinstance(result.info, dict):
                    on_progress(result.info)
                time.sleep(poll_seconds)
        return result.get(timeout=self.timeout)

    def tag(self, source: str, target: str, *, wait: bool = True) -> Any:
        return self._image("tag", wait, source=source, target=target)

    def push(self, reference: str, *, auth: dict[str, str] | None = None, wait: bool = True) -> Any:
        return self._image("push", wait, reference=reference, auth=auth)

    def remove_image(self, reference: str, *, force: bool = False, wait: bool = True) -> Any:
        return self._image("remove", wait, reference=reference, force=force)

    def images(self, *, wait: bool = True) -> Any:
        return self._image("list", wait)

    # --- maintenance --------------------------------------------------------------------------
    def collect_stats(self, *, wait: bool = True) -> Any:
        return self._maintenance("collect_stats", wait)

    def evict_images(self, *, wait: bool = True) -> Any:
        return self._maintenance("evict_images", wait)

    def reconcile(self, *, wait: bool = True) -> Any:
        return self._maintenance("reconcile", wait)

    def summary(self, *, wait: bool = True) -> Any:
        return self._maintenance("summary", wait)

    def close(self) -> None:
        self.app.close()

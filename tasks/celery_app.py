"""The Celery application. ``celery -A tasks worker`` finds it as ``tasks.app``."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.app import backends

from config.celery_config import celery_config
from config.settings import get_settings
from tasks import redis_transport

redis_transport.install()  # Before any broker connection: workers survive a Redis restart.


class ContainerizerCelery(Celery):  # type: ignore[misc]
    """Celery, with every result backend storing task arguments redacted (tasks/redaction.py)."""

    def _get_backend(self) -> Any:
        from tasks.redaction import redacting_backend

        backend, url = backends.by_url(self.backend_cls or self.conf.result_backend, self.loader)
        return redacting_backend(backend)(app=self, url=url)


app = ContainerizerCelery(
    "containerizer",
    include=["tasks.containers", "tasks.images", "tasks.maintenance", "tasks.resources"],
)
app.conf.update(celery_config(get_settings()))

"""The Celery application. ``celery -A tasks worker`` finds it as ``tasks.app``."""

from __future__ import annotations

from celery import Celery

from config.celery_config import celery_config
from config.settings import get_settings

app = Celery("containerizer", include=["tasks.containers", "tasks.images", "tasks.maintenance"])
app.conf.update(celery_config(get_settings()))

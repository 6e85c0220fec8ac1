"""Configuration: the typed settings and the Celery configuration derived from them."""

from config.celery_config import QUEUES, celery_config
from config.settings import Settings, get_settings, load_settings

__all__ = ["QUEUES", "Settings", "celery_config", "get_settings", "load_settings"]

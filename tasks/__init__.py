"""The Celery face of containerizer: the app, thin tasks, the beat schedule and the CLI."""

from tasks.celery_app import app

__all__ = ["app"]

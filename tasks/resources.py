"""containerizer.volumes.* and containerizer.networks.*: the volumes and networks the service
creates, on a host's ``containers.<host>`` queue (and the shared ``containers`` one).

They act only on what the service created (labelled managed AND recorded); one it did not create
is PolicyViolation, one in use Conflict. ``host`` null is the host that takes the task (on the
shared queue a remove needs ``host`` when several hosts are live); ``list`` covers every host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Task

from config.celery_config import CONTAINERS_QUEUE, host_queue
from tasks.base import ContainerizerTask, check_arguments
from tasks.celery_app import app
from tasks.routing import forward
from tasks.runtime import runtime
from workers import arguments
from workers.cluster import host_argument
from workers.errors import InvalidSpec
from workers.resources import resource_name


def _on_host(task: Task, host: Any, *, removing: bool = False) -> str:
    """The host this task acts on; forwarded there unless it is this one."""
    rt = runtime()
    target = host_argument(host)
    if target is None and removing and len(set(rt.hosts.alive()) | {rt.cluster.here}) > 1:
        raise InvalidSpec("host: several hosts are live; name the one to remove it from")
    target = target or rt.cluster.here
    if target != rt.cluster.here:
        rt.cluster.require_alive(target)
        forward(task, host_queue(CONTAINERS_QUEUE, target), host=target)
    return target


def _labels(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return dict(value)
    raise InvalidSpec("labels: expected null or an object of strings")


def _driver(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and 0 < len(value) <= 128):
        return value
    raise InvalidSpec("driver: expected null or a driver's name")


def _everywhere(host: Any) -> list[str]:
    rt = runtime()
    pinned = host_argument(host)
    return [pinned] if pinned is not None else rt.hosts.names() or [rt.cluster.here]


@app.task(name="containerizer.volumes.create", bind=True, base=ContainerizerTask)
def create_volume(
    self: Task,
    name: Any = None,
    labels: Any = None,
    driver: Any = None,
    host: Any = None,
    *extra: Any,
    **unknown: Any,
) -> dict[str, Any]:
    """Create a managed volume: {name, driver, labels, host}."""
    check_arguments(self, extra, unknown)
    volume, wanted, chosen = resource_name(name), _labels(labels), _driver(driver)
    here = _on_host(self, host)
    return {**runtime().resources.create_volume(volume, labels=wanted, driver=chosen), "host": here}


@app.task(name="containerizer.volumes.remove", bind=True, base=ContainerizerTask)
def remove_volume(
    self: Task, name: Any = None, force: Any = False, host: Any = None, *extra: Any, **unknown: Any
) -> dict[str, Any]:
    """Remove a volume the service created: {name, removed: true, host}."""
    check_arguments(self, extra, unknown)
    volume, forced = resource_name(name), arguments.boolean("force", force)
    here = _on_host(self, host, removing=True)
    return {**runtime().resources.remove_volume(volume, force=forced), "host": here}


@app.task(name="containerizer.volumes.list", bind=True, base=ContainerizerTask)
def list_volumes(self: Task, host: Any = None, *extra: Any, **unknown: Any) -> list[dict[str, Any]]:
    """The volumes the service created, on every host (or ``host``): [{name, driver, labels,
    created_at, host}]."""
    check_arguments(self, extra, unknown)
    rt = runtime()
    return [row for each in _everywhere(host) for row in rt.resources.on(each).list_volumes()]


@app.task(name="containerizer.networks.create", bind=True, base=ContainerizerTask)
def create_network(
    self: Task,
    name: Any = None,
    internal: Any = False,
    labels: Any = None,
    driver: Any = None,
    host: Any = None,
    *extra: Any,
    **unknown: Any,
) -> dict[str, Any]:
    """Create a managed network: {name, id, driver, internal, labels, host}."""
    check_arguments(self, extra, unknown)
    network, wanted, chosen = resource_name(name), _labels(labels), _driver(driver)
    closed = arguments.boolean("internal", internal)
    here = _on_host(self, host)
    created = runtime().resources.create_network(
        network, internal=closed, labels=wanted, driver=chosen
    )
    return {**created, "host": here}


@app.task(name="containerizer.networks.remove", bind=True, base=ContainerizerTask)
def remove_network(
    self: Task, name: Any = None, host: Any = None, *extra: Any, **unknown: Any
) -> dict[str, Any]:
    """Remove a network the service created: {name, removed: true, host}."""
    check_arguments(self, extra, unknown)
    network = resource_name(name)
    here = _on_host(self, host, removing=True)
    return {**runtime().resources.remove_network(network), "host": here}


@app.task(name="containerizer.networks.list", bind=True, base=ContainerizerTask)
def list_networks(
    self: Task, host: Any = None, *extra: Any, **unknown: Any
) -> list[dict[str, Any]]:
    """The networks the service created, on every host (or ``host``): [{name, id, driver,
    internal, labels, created_at, host}]."""
    check_arguments(self, extra, unknown)
    rt = runtime()
    return [row for each in _everywhere(host) for row in rt.resources.on(each).list_networks()]

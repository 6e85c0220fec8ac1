"""The clients a worker process uses, built after the fork and on first use, never at import.

A prefork worker's children must not share the parent's sockets, so everything here is discarded
when a child starts (``worker_process_init``) and rebuilt lazily in the child.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

import redis
from celery import Task
from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from config.settings import Settings, get_settings
from tasks.watchdog import watchdog
from workers.cluster import Cluster
from workers.containers import ContainerService
from workers.credentials import CredentialStore
from workers.engine import Engine
from workers.eviction import Evictor
from workers.hosts import HostRegistry, Placement
from workers.image_cache import ImageCache
from workers.images import ImageService
from workers.jobs import Exits, Waiters
from workers.keys import Keys
from workers.logs import LogFollowers
from workers.maintenance import Periodic, Reconciler, StatsCollector
from workers.metrics import Metrics
from workers.migration import adopt_single_host_state
from workers.policy import Policy
from workers.resources import ResourceService
from workers.state import StateStore
from workers.stats_source import StatsSource

METRICS_FLUSH_SECONDS = 1.0  # How often a process writes the metrics it observed.
T = TypeVar("T")
_BUILD_LOCK = threading.RLock()


class built_once(Generic[T]):  # noqa: N801 - used as a decorator, like cached_property
    """``cached_property`` that builds at most once when threads race for it.

    A threads-pool worker's first tasks arrive together; Python 3.12 dropped the lock that
    ``cached_property`` held in 3.11, and an engine or a Redis pool built twice is a leak. Once
    built, the value sits in the instance's ``__dict__`` and is read without the lock.
    """

    def __init__(self, build: Callable[[Any], T]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> built_once[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> T | built_once[T]:
        if instance is None:
            return self
        values = instance.__dict__
        with _BUILD_LOCK:
            if self.name not in values:
                values[self.name] = self.build(instance)
            return values[self.name]  # type: ignore[no-any-return]


class Runtime:
    """Lazily built clients and services of one process (safe to share between its threads)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @built_once
    def keys(self) -> Keys:
        return Keys(self.settings.redis_prefix, self.settings.host_name)

    @built_once
    def redis(self) -> redis.Redis:
        # A dropped connection is retried here for about a second; a longer outage fails the
        # task with StateUnavailable, which Celery retries with the task's own backoff.
        return redis.Redis.from_url(
            self.settings.redis_url,
            decode_responses=True,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3),
        )

    @built_once
    def state(self) -> StateStore:
        return StateStore(self.redis, self.keys)

    @built_once
    def engine(self) -> Engine:
        # Not cached when the daemon is down (connect() raises DockerUnavailable) or the host name
        # is bound to another daemon: the next call tries again.
        engine = Engine.connect(self.settings)
        try:
            self._claim_host(engine)
        except BaseException:
            engine.close()
            raise
        return engine

    def _claim_host(self, engine: Engine) -> None:
        """Bind this host name to the daemon (refusing another's), then adopt whatever this
        daemon's single-host deployment left under the bare prefix.

        Raises:
            ConfigurationError: the name serves another daemon, or the daemon another name.
        """
        daemon_id = engine.daemon_id()
        if not daemon_id:
            return  # A daemon that does not say who it is: nothing to compare.
        self.hosts.claim(daemon_id)
        adopt_single_host_state(self.redis, self.keys, daemon_id)

    @built_once
    def hosts(self) -> HostRegistry:
        return HostRegistry(self.redis, self.keys, dead_seconds=self.settings.host_dead_seconds)

    @built_once
    def cluster(self) -> Cluster:
        return Cluster(self.engine, self.hosts, Placement(self.redis, self.keys), self.settings)

    @built_once
    def metrics(self) -> Metrics:
        return Metrics(self.redis, self.keys, flush_seconds=METRICS_FLUSH_SECONDS)

    @built_once
    def image_cache(self) -> ImageCache:
        return ImageCache(self.redis, self.keys)

    @built_once
    def policy(self) -> Policy:
        return Policy.from_settings(self.settings)

    @built_once
    def resources(self) -> ResourceService:
        return ResourceService(self.engine, self.redis, self.keys, self.policy, self.settings)

    @built_once
    def containers(self) -> ContainerService:
        return ContainerService(
            self.engine,
            self.state,
            self.policy,
            self.settings,
            self.image_cache,
            self.metrics,
            self.resources,
            stats_source=StatsSource(self.engine, self.settings.stats_source),
        )

    @built_once
    def periodic(self) -> Periodic:
        return Periodic(self.redis, self.keys)

    @built_once
    def waiters(self) -> Waiters:
        return Waiters(self.redis, self.keys, self.state)

    @built_once
    def followers(self) -> LogFollowers:
        return LogFollowers(self.engine, self.redis, self.keys, self.settings)

    @built_once
    def exits(self) -> Exits:
        from tasks.results import send_by_name, store_wait_result

        return Exits(
            self.engine,
            self.state,
            self.waiters,
            self.settings,
            notify=send_by_name,
            resolve=store_wait_result,
            metrics=self.metrics,
            before_removal=self.followers.drain,
        )

    @built_once
    def collector(self) -> StatsCollector:
        return StatsCollector(self.containers, self.settings, self.metrics)

    @built_once
    def evictor(self) -> Evictor:
        return Evictor(self.images, self.image_cache, self.settings, self.metrics)

    @built_once
    def reconciler(self) -> Reconciler:
        return Reconciler(self.containers, self.state, self.settings, self.resources)

    @built_once
    def credentials(self) -> CredentialStore:
        return CredentialStore.from_settings(self.settings)

    @built_once
    def images(self) -> ImageService:
        return ImageService(
            self.engine,
            self.redis,
            self.keys,
            self.image_cache,
            self.credentials,
            self.settings,
            self.metrics,
            self.hosts,
        )

    def close(self) -> None:
        """Close whatever was opened."""
        if "engine" in self.__dict__:
            self.engine.close()
        if "redis" in self.__dict__:
            self.redis.close()


_lock = threading.Lock()
_runtime: Runtime | None = None


def runtime() -> Runtime:
    """This process's runtime."""
    global _runtime  # noqa: PLW0603 - one runtime per process, by design
    with _lock:
        if _runtime is None:
            _runtime = Runtime(get_settings())
        return _runtime


@worker_init.connect
def _watch_time_limits(sender: Any = None, **_: object) -> None:
    """A pool that does not enforce time limits (threads, solo) gets the watchdog."""
    pool = getattr(sender, "pool_cls", None)
    name = getattr(pool, "__module__", "") if not isinstance(pool, str) else pool
    if "prefork" not in name:
        watchdog.enable()


@worker_process_init.connect
def _reset_after_fork(**_: object) -> None:
    """Drop what the parent built; the child builds its own clients on first use."""
    global _runtime  # noqa: PLW0603
    with _lock:
        _runtime = None


_task_started: dict[str, float] = {}


@task_prerun.connect
def _task_began(task_id: str | None = None, **_: object) -> None:
    if task_id:
        _task_started[task_id] = time.monotonic()


@task_postrun.connect
def _task_ended(task_id: str | None = None, task: Task | None = None, **_: object) -> None:
    began = _task_started.pop(task_id or "", None)
    if began is not None and task is not None and task.name.startswith("containerizer."):
        runtime().metrics.observe("task_duration_seconds", time.monotonic() - began, task.name)

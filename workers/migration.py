"""State written before hosts existed, adopted by the host it was written by.

The single-host layout kept one Docker daemon's state under the bare prefix (``<prefix>containers``,
``<prefix>image:<id>``, ...) and the daemon's id under ``<prefix>docker-host``. The first process of
the host whose daemon has that id moves the host's keys under ``<prefix>host:<name>:`` and marks the
live records with their host, once; container records and the name index were cluster keys
already and stay where they are. A crash part-way is finished by the next process: every step is a
move that does nothing once done, and the ``docker-host`` key goes last.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis

from workers.keys import Keys

log = logging.getLogger(__name__)

LEGACY_DAEMON_KEY = "docker-host"
# Whole keys that moved: old suffix -> the host key it became.
_MOVED: tuple[tuple[str, Callable[[Keys], str]], ...] = (
    ("containers", Keys.containers),
    ("images", Keys.images),
    ("images:owned", Keys.owned_references),
    ("image-cache:counters", Keys.image_cache_counters),
    ("events:since", Keys.events_since),
    ("metrics:counters", Keys.metrics_counters),
)
# Families of keys that moved: old prefix -> the host key builder for the rest of the name.
_FAMILIES: tuple[tuple[str, Callable[[Keys, str], str]], ...] = (
    ("image:", Keys.image),
    ("image-ref:", Keys.image_reference),
    ("metrics:histogram:", Keys.metrics_histogram),
)


def adopt_single_host_state(client: redis.Redis, keys: Keys, daemon_id: str) -> bool:
    """Move the single-host state of ``daemon_id`` under this host's keys; whether it did.

    State of another daemon is left where it is, for that daemon's host to adopt.
    """
    marker = keys.legacy(LEGACY_DAEMON_KEY)
    if not daemon_id or client.get(marker) != daemon_id:
        return False
    with client.lock(keys.legacy("lock:adopt"), timeout=300, blocking_timeout=300):
        if client.get(marker) != daemon_id:
            return False  # Another process of this host has just done it.
        for suffix, target in _MOVED:
            _move(client, keys.legacy(suffix), target(keys))
        for family, target_of in _FAMILIES:
            old = keys.legacy(family)
            for key in list(client.scan_iter(f"{old}*", count=1000)):
                _move(client, str(key), target_of(keys, str(key)[len(old) :]))
        live = [str(member) for member in client.smembers(keys.containers())]
        pipe = client.pipeline(transaction=False)
        for container_id in live:
            pipe.hsetnx(keys.container(container_id), "host", keys.host)
        pipe.delete(marker)
        pipe.execute()
    log.info(
        "adopted the single-host state of Docker daemon %s as host %r (%d live containers)",
        daemon_id,
        keys.host,
        len(live),
    )
    return True


def _move(client: redis.Redis, source: str, target: str) -> None:
    """Rename ``source`` to ``target``; merged into a ``target`` that exists already."""
    kind = client.type(source)
    if kind == "none":
        return
    if not client.exists(target):
        client.rename(source, target)
        return
    if kind == "set":
        client.sunionstore(target, [target, source])
    elif kind == "zset":
        client.zunionstore(target, [target, source], aggregate="MAX")
    elif kind == "hash":
        for field, value in client.hgetall(source).items():
            client.hsetnx(target, field, value)
    # A string (a number, a position) that exists under the new name already is the newer one.
    client.delete(source)

"""Keep Celery workers (and beat, and Flower) alive through a Redis broker restart, and spare them
a redis-py client built per broker command.

Workaround for celery 5.7.0 / kombu 5.7.0 (checked against kombu and celery main of 2026-08):
``Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")`` when
``redis-server`` dies while a task is in flight. It is the AttributeError of celery/kombu#970 and
celery/kombu#582, made fatal by the ``connection.close()`` that celery/celery#10242 added after
``collect()`` in ``Consumer.on_connection_error_after_connected``.

Why it happens: ``kombu.Connection.collect()`` sets ``transport.client = None`` even when it could
not close the channels: a dead BRPOP socket makes ``Channel.close`` raise before the channel is
marked closed, and the pub/sub channel's close raises too. The next thing that needs a Redis client
on that channel goes through ``Channel._connparams()``, which reads
``self.connection.client.hostname`` and raises AttributeError: ``QoS.restore_unacked`` from
``connection.close()``, or ``QoS.ack`` when the in-flight task finishes. Celery does not count
AttributeError as a connection error, so the worker dies (and with it, before ``up`` supervised,
the whole service).

The fix: the channel remembers its connection parameters while its transport is alive, and uses
them once the transport is gone. While Redis is down, ``restore_unacked`` then fails with an
ordinary ``redis.ConnectionError``, which kombu and Celery already ignore during cleanup (the
message stays in Redis's ``unacked`` hash and comes back after the visibility timeout); once Redis
is back, the ack of the task that was in flight succeeds. A channel that never connected raises
``redis.ConnectionError``.

Remove this when kombu's Redis channel no longer reaches ``_connparams`` with
``transport.client is None``. tests/integration/test_faults.py kills the real redis-server with a
task in flight to prove it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    """kombu's Redis channel, able to build a client after its transport was collected, and
    reusing one client for its commands."""

    _saved_connparams: dict[bool, dict[str, Any]] | None = None
    _shared_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        """kombu builds a new redis-py client for every ack, publish and event it sends (a
        client is cheap to use but not to build: redis-py copies ~170 response callbacks into
        each, about a third of a millisecond of CPU); this channel builds one per connection
        pool and reuses it. A redis-py client is safe to share between threads: every command
        takes a connection of the pool and gives it back."""
        if client:
            yield client
            return
        pool = self.pool
        shared = self._shared_client
        if shared is None or shared.connection_pool is not pool:
            shared = self._shared_client = self._create_client()  # type: ignore[no-untyped-call]
        yield shared

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport is not None and transport.client is not None:
            params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
            if self._saved_connparams is None:
                self._saved_connparams = {}
            self._saved_connparams[asynchronous] = dict(params)
            return params
        saved = (self._saved_connparams or {}).get(asynchronous)
        if saved is None:
            raise RedisConnectionError("broker connection already closed (celery/kombu#970)")
        return dict(saved)


def install() -> None:
    """Make kombu's ``redis://``/``rediss://`` transport use :class:`Channel` (idempotent).

    Done where the Celery app is made (tasks/celery_app.py), so that the workers, beat and Flower
    all have it before they open a broker connection. Patching the transport's channel class,
    rather than naming another transport, keeps ``redis://`` in every URI (Flower chooses its
    broker client by the URI's scheme).
    """
    kombu_redis.Transport.Channel = Channel

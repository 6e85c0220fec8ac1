"""The state store: one Redis hash per managed container, updated by every operation.

A record outlives its container: ``remove`` marks it ``removed`` and lets it expire, so that a
repeated remove (a redelivered task) can still answer, and so that callers can see what happened.

Two writers race for a record's status: tasks, which write what ``docker inspect`` said a moment
ago, and the events watcher, which writes what each Docker event says. Each status write carries
the time on Docker's clock of the transition it reports, and the record keeps the time of the one
it shows (``status_at_us``): an older report never overwrites a newer one. So a container that
exits the moment it starts is not recorded running by a start whose inspect was already stale.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from workers.keys import Keys
from workers.models import ContainerInfo
from workers.spec import SPEC_HASH_LABEL
from workers.stats import CpuSample, ResourceUsage

REMOVED_RECORD_TTL_SECONDS = 86_400
SHORT_ID_LENGTH = 12
STATS_BATCH = 200  # Stats writes per pipeline: a sweep's writes in a few round trips.

#: What redis-py raises, after its own brief retries, when the state store cannot be reached or
#: does not answer in time: transient (tasks retry it as StateUnavailable), unlike a bad command.
STATE_ERRORS: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)
#: Connection errors that no retry mends: Redis refused the credentials or the command.
STATE_REFUSALS: tuple[type[Exception], ...] = (
    redis.exceptions.AuthenticationError,
    redis.exceptions.AuthorizationError,
)


@dataclass(frozen=True)
class StatsWrite:
    """One container's stats sample to record."""

    container_id: str
    usage: ResourceUsage
    sample: CpuSample
    alerts: list[str]


@dataclass(frozen=True, slots=True)
class NameClaim:
    """What claiming a container name found: ``claimed`` (the caller creates it), ``exists`` (a
    live managed container has it: ``container_id``), ``pending`` (another create holds it)."""

    kind: str
    container_id: str
    host: str
    spec_hash: str


class StateStore:
    """Container records in Redis. The Redis client is passed in (``decode_responses=True``)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        # Each write is one atomic script: one round trip, and no remove can slip in between
        # the check for a removed record and the write that would bring it back.
        self._record = client.register_script(_RECORD)
        self._record_started = client.register_script(_RECORD_STARTED)
        self._transition = client.register_script(_TRANSITION)
        self._update = client.register_script(_UPDATE)
        self._record_removed = client.register_script(_RECORD_REMOVED)
        self._record_stats = client.register_script(_RECORD_STATS)
        self._claim_name = client.register_script(_CLAIM_NAME)
        self._release_name = client.register_script(_RELEASE_NAME)

    # --- writes -------------------------------------------------------------------------------
    # --- names -------------------------------------------------------------------------------
    def claim_name(self, name: str, *, spec_hash: str, token: str, ttl_seconds: float) -> NameClaim:
        """Claim a container name for one create (names are unique across the cluster).

        The claim expires after ``ttl_seconds`` (a crashed creator cannot hold it forever) and is
        released by :meth:`release_name`; claiming again with the same token renews it.
        """
        kind, container_id, host, held_hash = self._claim_name(
            keys=[self.keys.container_name(name), self.keys.name_claim(name)],
            args=[
                self.keys.container(""),
                self.keys.host,
                spec_hash,
                token,
                int(ttl_seconds * 1000),
            ],
        )
        if kind == "exists" and not held_hash:
            # A record written before records carried their spec hash: it is in the labels.
            labels = (self.get(str(container_id)) or {}).get("labels") or {}
            held_hash = labels.get(SPEC_HASH_LABEL, "")
        return NameClaim(str(kind), str(container_id), str(host), str(held_hash))

    def release_name(self, name: str, token: str) -> None:
        """End the claim ``token`` holds on ``name`` (a claim someone else holds stays)."""
        self._release_name(keys=[self.keys.name_claim(name)], args=[token])

    def add_intent(self, token: str, name: str) -> None:
        """Note a create under way on this host (the marker the orphan sweep looks for)."""
        self.redis.hset(
            self.keys.create_intents(), token, json.dumps({"name": name, "at": time.time()})
        )

    def drop_intent(self, token: str) -> None:
        """The create ``token`` is recorded (or undone): it no longer needs a marker."""
        self.redis.hdel(self.keys.create_intents(), token)

    def intents(self) -> dict[str, dict[str, Any]]:
        """Every create under way on this host: token -> {name, at}."""
        raw = self.redis.hgetall(self.keys.create_intents())
        return {str(token): json.loads(value) for token, value in raw.items()}

    # --- records -----------------------------------------------------------------------------
    def record(self, info: ContainerInfo, *, replacing_us: int | None = None, **extra: Any) -> bool:
        """Store what Docker says of a managed container, plus ``extra`` fields.

        Its status (and start, finish, exit code) is kept only if no newer transition has been
        recorded meanwhile. ``replacing_us`` is for reconcile's repairs, which write Docker's
        state now in place of the status recorded at that ``status_at_us``: they are skipped
        when the record has changed since (an event applied meanwhile; the next reconcile looks
        again). Returns whether the status was written.
        """
        status = {
            "status": info.status.value,
            "started_at": info.started_at,
            "finished_at": info.finished_at,
            "exit_code": info.exit_code,
            "oom_killed": info.oom_killed,
        }
        other: dict[str, Any] = {
            "id": info.id,
            "host": self.keys.host,
            "spec_hash": info.labels.get(SPEC_HASH_LABEL),
            "name": info.name,
            "image": info.image,
            "image_id": info.image_id,
            "labels": info.labels,
            "created_at": info.created_at,
            "updated_at": time.time(),
            **extra,
        }
        status_items = _flatten(_encode(status))
        names = [self.keys.container_name(info.name)] if info.name else []
        written = self._record(
            keys=[
                self.keys.container(info.id),
                self.keys.containers(),
                self.keys.short_id(info.id),
                *names,
            ],
            args=[
                info.id,
                info.status_at_us,
                -1 if replacing_us is None else replacing_us,
                len(status_items),
                *status_items,
                *_flatten(_encode(other)),
            ],
        )
        return bool(written == 1)

    def record_started(
        self, container_id: str, *, seen_us: int, started_at: str, **extra: Any
    ) -> bool:
        """Record a start without inspecting the container: ``running`` from ``started_at``.

        Applied only if the record still shows the status it showed before the start
        (``seen_us``, its ``status_at_us`` then): otherwise the watcher has already recorded this
        start, or its exit, and only ``extra`` is written. Nothing is written if that status was
        ``running``: Docker's start did nothing (``started_at`` stays). The record's time moves
        on by one microsecond only, so that the start event's exact time, and the exit after it,
        are still newer. Returns whether the status was written.
        """
        status = _flatten(
            _encode(
                {
                    "status": "running",
                    "started_at": started_at,
                    "exit_code": None,
                    "oom_killed": False,
                }
            )
        )
        other = _flatten(_encode({**extra, "updated_at": time.time()}))
        return bool(
            self._record_started(
                keys=[self.keys.container(container_id)],
                args=[seen_us, seen_us + 1, len(status), *status, *other],
            )
        )

    def transition(self, container_id: str, at_us: int, **fields: Any) -> bool:
        """Record a status change that happened at ``at_us`` (an event's time), unless the record
        already shows a newer one; no-op for a container without a record. Whether it did."""
        applied = self._transition(
            keys=[self.keys.container(container_id)],
            args=[at_us, *_flatten(_encode({**fields, "updated_at": time.time()}))],
        )
        return bool(applied == 1)

    def update(self, container_id: str, **fields: Any) -> None:
        """Change some fields of an existing record; no-op for a container without one."""
        self._update(
            keys=[self.keys.container(container_id)],
            args=_flatten(_encode({**fields, "updated_at": time.time()})),
        )

    def record_removed(self, container_id: str) -> None:
        """Mark a container removed: out of the live set, its record kept for a day."""
        self._record_removed(
            keys=[
                self.keys.container(container_id),
                self.keys.containers(),
                self.keys.stats_sample(container_id),
                self.keys.stats_history(container_id),
                self.keys.short_id(container_id),
                self.keys.placements(),
            ],
            args=[
                container_id,
                json.dumps(time.time()),
                REMOVED_RECORD_TTL_SECONDS,
                self.keys.container_name(""),
            ],
        )

    def record_stats(
        self,
        container_id: str,
        usage: ResourceUsage,
        sample: CpuSample,
        *,
        alerts: list[str],
        history_length: int,
    ) -> None:
        """Keep the latest usage (and its alerts) in the record, append it to the container's
        bounded history, and keep the CPU counters for the next CPU %."""
        self.record_stats_many([StatsWrite(container_id, usage, sample, alerts)], history_length)

    def record_stats_many(self, writes: Sequence[StatsWrite], history_length: int) -> None:
        """:meth:`record_stats` for many containers, in pipelines of STATS_BATCH scripts (a
        sweep's writes cost a few round trips, not one per container). A container that is not
        one of ours, or gone, gets no stats."""
        for first in range(0, len(writes), STATS_BATCH):
            pipe = self.redis.pipeline(transaction=False)
            for write in writes[first : first + STATS_BATCH]:
                keys, args = self._stats_write(write, history_length)
                self._record_stats(keys=keys, args=args, client=pipe)
            pipe.execute()

    def _stats_write(self, write: StatsWrite, history_length: int) -> tuple[list[str], list[Any]]:
        usage = write.usage.as_dict()
        record_fields = _flatten(
            _encode({"stats": usage, "stats_at": write.sample.read_at, "alerts": write.alerts})
        )
        sample_fields = _flatten(write.sample.as_mapping())
        history_fields = _flatten(
            {"at": str(write.sample.read_at), **{k: str(v) for k, v in usage.items()}}
        )
        keys = [
            self.keys.container(write.container_id),
            self.keys.stats_sample(write.container_id),
            self.keys.stats_history(write.container_id),
        ]
        args = [
            REMOVED_RECORD_TTL_SECONDS,
            history_length,
            len(record_fields),
            len(sample_fields),
            *record_fields,
            *sample_fields,
            *history_fields,
        ]
        return keys, args

    def history(self, container_id: str, count: int = 100) -> list[dict[str, str]]:
        """The latest ``count`` samples of a container, oldest first."""
        entries = self.redis.xrevrange(self.keys.stats_history(container_id), count=count) or []
        return [{str(k): str(v) for k, v in (fields or {}).items()} for _, fields in entries][::-1]

    # --- reads --------------------------------------------------------------------------------
    def get(self, container_id: str) -> dict[str, Any] | None:
        """The record of a container, decoded, or None."""
        raw = self.redis.hgetall(self.keys.container(container_id))
        return _decode(raw) if raw else None

    def find(self, reference: str) -> dict[str, Any] | None:
        """The record of a container by full id, short (12-character) id or name."""
        record = self.get(reference)
        if record is not None:
            return record
        keys = [self.keys.container_name(reference)]
        if len(reference) == SHORT_ID_LENGTH:
            keys.insert(0, self.keys.short_id(reference))
        for container_id in self.redis.mget(keys):
            if container_id:
                record = self.get(str(container_id))
                if record is not None:
                    return record
        return None

    def previous_sample(self, container_id: str) -> CpuSample | None:
        """The CPU counters of the last stats sample of this container."""
        return CpuSample.from_mapping(self.redis.hgetall(self.keys.stats_sample(container_id)))

    def previous_samples(self, container_ids: Sequence[str]) -> dict[str, CpuSample]:
        """:meth:`previous_sample` of several containers in one round trip (those without one
        are left out)."""
        pipe = self.redis.pipeline(transaction=False)
        for container_id in container_ids:
            pipe.hgetall(self.keys.stats_sample(container_id))
        samples = {}
        for container_id, raw in zip(container_ids, pipe.execute(), strict=True):
            sample = CpuSample.from_mapping(raw)
            if sample is not None:
                samples[container_id] = sample
        return samples

    def get_many(self, container_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Records of several containers in one round trip (absent ones are left out)."""
        pipe = self.redis.pipeline(transaction=False)
        for container_id in container_ids:
            pipe.hgetall(self.keys.container(container_id))
        return {
            container_id: _decode(raw)
            for container_id, raw in zip(container_ids, pipe.execute(), strict=True)
            if raw
        }

    def fields_many(
        self, container_ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Some fields of several records in one round trip (absent records are left out; an
        absent field is None)."""
        pipe = self.redis.pipeline(transaction=False)
        for container_id in container_ids:
            pipe.hmget(self.keys.container(container_id), list(fields))
        found = {}
        for container_id, values in zip(container_ids, pipe.execute(), strict=True):
            if any(value is not None for value in values):
                present = {f: v for f, v in zip(fields, values, strict=True) if v is not None}
                found[container_id] = {f: None for f in fields} | _decode(present)
        return found

    def live_ids(self, host: str | None = None) -> set[str]:
        """Ids of the managed containers the store believes exist on this host (or ``host``)."""
        keys = self.keys if host is None else self.keys.on(host)
        return {str(member) for member in self.redis.smembers(keys.containers())}


# KEYS: the name key, the name's claim. ARGV: the records' key prefix, this host, the spec hash,
# the claim's token, its time to live (ms).
# Returns {kind, container id, host, spec hash}: 'exists' when a live record has the name,
# 'pending' when another token claims it, 'claimed' when this token does now.
_CLAIM_NAME = """
local id = redis.call('GET', KEYS[1])
if id then
  local record = ARGV[1] .. id
  local status = redis.call('HGET', record, 'status')
  if status and status ~= 'removed' then
    return {'exists', id, redis.call('HGET', record, 'host') or '',
            redis.call('HGET', record, 'spec_hash') or ''}
  end
end
local holder = redis.call('HMGET', KEYS[2], 'host', 'spec_hash', 'token')
if holder[3] and holder[3] ~= ARGV[4] then
  return {'pending', '', holder[1] or '', holder[2] or ''}
end
redis.call('HSET', KEYS[2], 'host', ARGV[2], 'spec_hash', ARGV[3], 'token', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {'claimed', '', ARGV[2], ARGV[3]}
"""

# KEYS: the name's claim. ARGV: the token that holds it.
_RELEASE_NAME = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Every status write below compares its time with the record's status_at_us (0 when absent).

# KEYS: the record, the live set, the short id key, then the name key if the container has a name.
# ARGV: the container id; the snapshot's time; the status_at_us it replaces (-1: none, write it
# only if it is not older than the record's); the number of status items; the status items
# (field, value...); then the other items, written whatever the record holds.
# Returns 1: status written, 2: only the other items, 0: the record is of a removed container.
_RECORD = """
if redis.call('HGET', KEYS[1], 'status') == 'removed' then
  return 0
end
local stored = tonumber(redis.call('HGET', KEYS[1], 'status_at_us') or '0') or 0
local at = tonumber(ARGV[2])
local replacing = tonumber(ARGV[3])
local last = 4 + tonumber(ARGV[4])
local written = 2
if (replacing < 0 and at >= stored) or replacing == stored then
  -- A repair keeps the record's time when the snapshot's is older: later events stay newer.
  at = math.max(at, stored)
  redis.call('HSET', KEYS[1], 'status_at_us', string.format('%d', at), unpack(ARGV, 5, last))
  written = 1
end
if #ARGV > last then
  redis.call('HSET', KEYS[1], unpack(ARGV, last + 1))
end
redis.call('PERSIST', KEYS[1])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[1])
if KEYS[4] then
  redis.call('SET', KEYS[4], ARGV[1])
end
return written
"""

# KEYS: the record. ARGV: the status_at_us the start followed; the record's new status_at_us; the
# number of status items; the status items; the other items (written unless the start did nothing).
_RECORD_STARTED = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'removed' then
  return 0
end
local stored = tonumber(redis.call('HGET', KEYS[1], 'status_at_us') or '0') or 0
local last = 3 + tonumber(ARGV[3])
local applied = 0
if stored == tonumber(ARGV[1]) then
  if status == 'running' then
    return 0  -- Running already, nothing recorded since: Docker's start did nothing.
  end
  redis.call('HSET', KEYS[1], 'status_at_us', ARGV[2], unpack(ARGV, 4, last))
  applied = 1
end
if #ARGV > last then
  redis.call('HSET', KEYS[1], unpack(ARGV, last + 1))
end
return applied
"""

# KEYS: the record. ARGV: the transition's time, then field, value, field, value...
_TRANSITION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'removed' then
  return 0
end
local stored = tonumber(redis.call('HGET', KEYS[1], 'status_at_us') or '0') or 0
if tonumber(ARGV[1]) < stored then
  return 0
end
redis.call('HSET', KEYS[1], 'status_at_us', ARGV[1], unpack(ARGV, 2))
return 1
"""

# KEYS: the record. ARGV: field, value, field, value...
_UPDATE = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'removed' then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# KEYS: the record, the live set, the last stats sample, the stats history, the short id key,
# the host's placements. ARGV: the container id, updated_at (JSON), the TTL in seconds, the name
# keys' prefix.
_RECORD_REMOVED = """
local name = redis.call('HGET', KEYS[1], 'name')
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'status', 'removed', 'updated_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('EXPIRE', KEYS[4], ARGV[3])
if redis.call('GET', KEYS[5]) == ARGV[1] then
  redis.call('EXPIRE', KEYS[5], ARGV[3])
end
if name and name ~= '' then
  redis.call('HDEL', KEYS[6], name)
  if redis.call('GET', ARGV[4] .. name) == ARGV[1] then
    redis.call('EXPIRE', ARGV[4] .. name, ARGV[3])
  end
end
return 1
"""

# KEYS: the record, the last stats sample, the stats history.
# ARGV: the sample's TTL in seconds, the history's length, the number of record items, the number
# of sample items, then the record's field, value... the sample's... and the history entry's...
_RECORD_STATS = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'removed' then
  return 0
end
local first = 5
local last = first + tonumber(ARGV[3]) - 1
redis.call('HSET', KEYS[1], unpack(ARGV, first, last))
first = last + 1
last = first + tonumber(ARGV[4]) - 1
redis.call('HSET', KEYS[2], unpack(ARGV, first, last))
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, last + 1))
return 1
"""

# Text fields are stored as they are, so that `redis-cli HGET ... status` reads `running`;
# every other field is JSON so that its type survives (ints, bools, dicts, null).
_TEXT_FIELDS = frozenset(
    {
        "id",
        "host",
        "name",
        "image",
        "image_id",
        "status",
        "health",
        "spec_hash",
        "created_at",
        "started_at",
        "finished_at",
    }
)


def _encode(fields: Mapping[str, Any]) -> dict[Any, str]:
    encoded: dict[Any, str] = {}
    for name, value in fields.items():
        if name in _TEXT_FIELDS:
            encoded[name] = "" if value is None else str(value)
        else:
            encoded[name] = json.dumps(value)
    return encoded


def _flatten(fields: Mapping[Any, str]) -> list[Any]:
    return [item for pair in fields.items() for item in pair]


def _decode(raw: Mapping[Any, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for name, value in raw.items():
        key, text = str(name), str(value)
        if key in _TEXT_FIELDS:
            decoded[key] = text or None
        else:
            decoded[key] = json.loads(text)
    return decoded

"""Containers that run to completion: their exits, the tasks that wait for them, and what the
service does when one ends.

* Exit reasons everywhere: the exit code, whether the kernel killed it for memory, the signal when
  the code is 128+n, Docker's error string, and one word for it (``completed``, ``failed``,
  ``signaled``, ``oom``).
* ``containers.wait`` never holds a worker: it registers a waiter in Redis (one script, which first
  looks whether the condition holds already) and its task ends without a result; the host agent
  stores the result when an event makes the condition hold, or when the wait times out.
* When a container exits, the agent records the exit, resolves its waiters, sends its ``on_exit``
  task (once per exit: a replayed event finds the exit noted), then removes it if the spec asked
  (``auto_remove``), keeping its record (exit and last lines) for the record's retention.
"""

from __future__ import annotations

import logging
import signal as signals
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import redis

from config.settings import Settings
from workers.engine import Engine
from workers.errors import ContainerizerError, ContainerNotFound, InvalidSpec
from workers.keys import Keys
from workers.metrics import Metrics
from workers.models import ContainerStatus, docker_time_us
from workers.state import StateStore

log = logging.getLogger(__name__)

CONDITIONS = ("not-running", "healthy")
MAX_WAIT_SECONDS = 3600
EXIT_KEY_TTL_SECONDS = 2 * 86_400
#: Sends a task by name: (task, queue, kwargs, task id).
Notify = Callable[[str, str, dict[str, Any], str], None]
#: Stores a finished wait's result: (task id, result).
Resolve = Callable[[str, dict[str, Any]], None]
_TASK_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")
_NAMESPACE = uuid.UUID("4f1d8a63-3a07-4a3e-9d88-2c2b5b0c6c1e")


@dataclass(frozen=True, slots=True)
class ExitReport:
    """Why a container stopped, from Docker's ``State``."""

    exit_code: int | None
    oom_killed: bool
    signal: str | None
    error: str | None
    finished_at: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def exit_report(state: Mapping[str, Any]) -> ExitReport:
    """The exit a container's inspect ``State`` describes."""
    code = state.get("ExitCode")
    exit_code = int(code) if isinstance(code, int) else None
    oom = bool(state.get("OOMKilled"))
    finished = state.get("FinishedAt")
    finished_at = (
        finished if isinstance(finished, str) and not finished.startswith("0001") else None
    )
    error = str(state.get("Error") or "") or None
    return ExitReport(
        exit_code, oom, signal_of(exit_code), error, finished_at, reason_of(exit_code, oom)
    )


def signal_of(exit_code: int | None) -> str | None:
    """The signal a shell-style exit code names (128 + n), if any."""
    if exit_code is None or not 128 < exit_code <= 128 + 64:
        return None
    try:
        return signals.Signals(exit_code - 128).name
    except ValueError:
        return f"SIG{exit_code - 128}"


def reason_of(exit_code: int | None, oom_killed: bool) -> str:
    """One word for an exit: oom, completed (0), signaled (128+n) or failed."""
    if oom_killed:
        return "oom"
    if exit_code == 0:
        return "completed"
    if signal_of(exit_code) is not None:
        return "signaled"
    return "failed"


def parse_on_exit(value: object) -> dict[str, Any] | None:
    """``run``'s ``on_exit``: null, or {"task": name, "queue": queue, "kwargs": {...}}.

    Raises:
        InvalidSpec: naming what is wrong.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidSpec("on_exit: expected null or {task, queue, kwargs}")
    unknown = set(value) - {"task", "queue", "kwargs"}
    if unknown:
        raise InvalidSpec(f"on_exit: unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    for field in ("task", "queue"):
        text = value.get(field)
        if not isinstance(text, str) or not 0 < len(text) <= 200 or set(text) - _TASK_NAME_CHARS:
            raise InvalidSpec(f"on_exit.{field}: expected a name of letters, digits and _.:-")
    kwargs = value.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise InvalidSpec("on_exit.kwargs: expected an object")
    if "container_exit" in kwargs:
        raise InvalidSpec("on_exit.kwargs: container_exit is the service's to fill in")
    return {"task": value["task"], "queue": value["queue"], "kwargs": dict(kwargs)}


def wait_arguments(timeout: object, condition: object) -> tuple[int, str]:
    """``wait``'s ``timeout`` (0 to 3600 seconds) and ``condition``.

    Raises:
        InvalidSpec: naming the argument.
    """
    if (
        not isinstance(timeout, int)
        or isinstance(timeout, bool)
        or not 0 <= timeout <= MAX_WAIT_SECONDS
    ):
        raise InvalidSpec(f"timeout: expected an integer from 0 to {MAX_WAIT_SECONDS}")
    if condition not in CONDITIONS:
        raise InvalidSpec(f"condition: expected one of {', '.join(CONDITIONS)}")
    return timeout, str(condition)


def condition_holds(record: Mapping[str, Any], condition: str) -> bool:
    """Whether a container's record satisfies a wait's condition (as _SATISFIED says in Lua,
    where the registry decides atomically)."""
    status = record.get("status")
    if status in (None, "removed", "exited", "dead"):
        return True
    if condition == "not-running":
        return bool(status == "created")
    return bool(record.get("health") == "healthy")


def wait_result(record: Mapping[str, Any], *, timed_out: bool) -> dict[str, Any]:
    """What ``wait`` returns, from a container's record."""
    return {
        "id": record.get("id"),
        "status": record.get("status"),
        "exit_code": record.get("exit_code"),
        "oom_killed": bool(record.get("oom_killed")),
        "finished_at": record.get("finished_at"),
        "health": record.get("health"),
        "timed_out": timed_out,
        "signal": record.get("signal"),
        "reason": record.get("reason"),
        "error": record.get("error"),
        "host": record.get("host"),
    }


# The condition of a wait, in Lua: does the record satisfy it? (A missing record: it is gone.)
_SATISFIED = """
local function satisfied(record, condition)
  local status, health = unpack(redis.call('HMGET', record, 'status', 'health'))
  if not status or status == 'removed' or status == 'exited' or status == 'dead' then
    return true
  end
  if condition == 'not-running' then
    return status == 'created'
  end
  return health == 'healthy'
end
"""

# KEYS: the record, the container's waiters, the host's wait deadlines.
# ARGV: the task id, the condition, the deadline (epoch seconds), the deadline's member.
# Returns 1 when the condition holds already (nothing registered), 0 when the waiter is registered.
_REGISTER = (
    _SATISFIED
    + """
if satisfied(KEYS[1], ARGV[2]) then
  return 1
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 0
"""
)

# KEYS: the record, the container's waiters, the host's wait deadlines. ARGV: the container id.
# Returns the task ids of the waiters whose condition holds now (taken out of the registry).
_RESOLVE = (
    _SATISFIED
    + """
local done = {}
local waiters = redis.call('HGETALL', KEYS[2])
for i = 1, #waiters, 2 do
  if satisfied(KEYS[1], waiters[i + 1]) then
    redis.call('HDEL', KEYS[2], waiters[i])
    redis.call('ZREM', KEYS[3], ARGV[1] .. '|' .. waiters[i])
    table.insert(done, waiters[i])
  end
end
return done
"""
)

# KEYS: the host's wait deadlines. ARGV: now, the most to take, the waiters' key prefix.
# Returns the members (container id|task id) whose deadline has passed, taken out.
_EXPIRE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local split = string.find(member, '|', 1, true)
  redis.call('HDEL', ARGV[3] .. string.sub(member, 1, split - 1), string.sub(member, split + 1))
end
return due
"""


class Waiters:
    """Tasks waiting for a condition of a container, in Redis (they hold no worker)."""

    def __init__(self, client: redis.Redis, keys: Keys, state: StateStore) -> None:
        self.redis = client
        self.keys = keys
        self.state = state
        self._register = client.register_script(_REGISTER)
        self._resolve = client.register_script(_RESOLVE)
        self._expire = client.register_script(_EXPIRE)

    def register(self, container_id: str, task_id: str, condition: str, timeout: int) -> bool:
        """Register a waiter; False when the condition holds already (nothing registered)."""
        deadline = time.time() + timeout
        satisfied = self._register(
            keys=[
                self.keys.container(container_id),
                self.keys.waiters(container_id),
                self.keys.wait_deadlines(),
            ],
            args=[task_id, condition, deadline, f"{container_id}|{task_id}"],
        )
        return not bool(satisfied)

    def resolve(self, container_id: str) -> list[str]:
        """The waiters of a container whose condition holds now (taken out of the registry)."""
        done = self._resolve(
            keys=[
                self.keys.container(container_id),
                self.keys.waiters(container_id),
                self.keys.wait_deadlines(),
            ],
            args=[container_id],
        )
        return [str(task_id) for task_id in done]

    def expired(self, now: float | None = None, limit: int = 500) -> list[tuple[str, str]]:
        """(container id, task id) of the waits past their deadline (taken out)."""
        due = self._expire(
            keys=[self.keys.wait_deadlines()],
            args=[time.time() if now is None else now, limit, self.keys.waiters("")],
        )
        pairs = []
        for member in due:
            container_id, _, task_id = str(member).partition("|")
            pairs.append((container_id, task_id))
        return pairs


class Exits:
    """What happens when a managed container exits or changes health. Takes its collaborators in.

    ``notify`` sends a task by name (``on_exit``), ``resolve`` stores a finished wait's result:
    both come from the Celery side (tasks/agent.py), which this module does not import.
    """

    def __init__(
        self,
        engine: Engine,
        state: StateStore,
        waiters: Waiters,
        settings: Settings,
        *,
        notify: Notify,
        resolve: Resolve,
        metrics: Metrics | None = None,
        before_removal: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.state = state
        self.waiters = waiters
        self.settings = settings
        self.notify = notify
        self.resolve = resolve
        self.metrics = metrics
        self.before_removal = before_removal

    @property
    def redis(self) -> redis.Redis:
        return self.state.redis

    @property
    def keys(self) -> Keys:
        return self.state.keys

    def exited(
        self, container_id: str, report: ExitReport | None = None, at_us: int | None = None
    ) -> None:
        """A managed container died: record why, resolve its waiters, send its ``on_exit`` once,
        remove it if its spec asked.

        ``report`` is the exit as its ``die`` event (at ``at_us``) told it: recorded unless the
        record shows something newer (it started again), with no call to dockerd. Without it,
        the exit is read from Docker.
        """
        if report is not None and at_us is not None:
            fields = {"status": ContainerStatus.EXITED.value, **report.as_dict()}
            if not self.state.transition(container_id, at_us, **fields):
                self.settle(container_id)  # Removed, or started again since: nothing to send.
                return
        else:
            try:
                attrs = self.engine.inspect_container(container_id)
            except ContainerNotFound:
                self.settle(container_id)  # Removed already: its waiters are done.
                return
            state = attrs.get("State") or {}
            if state.get("Running"):
                return  # Started again (a restart policy) before this was handled.
            report = exit_report(state)
            self.state.update(container_id, **report.as_dict())
        self.settle(container_id)
        record = self.state.get(container_id) or {}
        self._notify_once(container_id, record, report)
        if record.get("auto_remove"):
            self._remove(container_id)

    def settle(self, container_id: str) -> None:
        """Store the result of every waiter of this container whose condition holds now."""
        done = self.waiters.resolve(container_id)
        if not done:
            return
        record = self.state.get(container_id) or {"id": container_id, "status": "removed"}
        result = wait_result(record, timed_out=False)
        for task_id in done:
            self._store(task_id, result)

    def expire(self) -> int:
        """Store ``timed_out`` results for the waits past their deadline; how many."""
        expired = self.waiters.expired()
        for container_id, task_id in expired:
            record = self.state.get(container_id) or {"id": container_id, "status": "removed"}
            self._store(task_id, wait_result(record, timed_out=True))
        return len(expired)

    def _store(self, task_id: str, result: dict[str, Any]) -> None:
        try:
            self.resolve(task_id, result)
        except Exception:
            log.exception("could not store the result of wait %s", task_id)

    def _notify_once(self, container_id: str, record: dict[str, Any], report: ExitReport) -> None:
        """Count the exit, and send ``on_exit``, once per exit: the exit's key notes it."""
        finished_us = docker_time_us(report.finished_at) if report.finished_at else 0
        key = self.keys.exit_notice(container_id, finished_us)
        on_exit = record.get("on_exit")
        first = self.redis.set(key, "pending", nx=True, ex=EXIT_KEY_TTL_SECONDS)
        if first and self.metrics is not None:
            self.metrics.increment(f"container_exits_total:{report.reason}")
        if not on_exit and not record.get("auto_remove"):
            return
        if not first and self.redis.get(key) == "sent":
            return  # A replayed event: this exit's on_exit went out already.
        tail = self._tail(container_id)
        self.state.update(container_id, logs_tail=tail)
        if on_exit:
            payload = {
                "id": container_id,
                "name": record.get("name"),
                "host": record.get("host") or self.keys.host,
                "exit_code": report.exit_code,
                "oom_killed": report.oom_killed,
                "finished_at": report.finished_at,
                "logs_tail": tail,
                "signal": report.signal,
                "reason": report.reason,
                "error": report.error,
            }
            kwargs = {**(on_exit.get("kwargs") or {}), "container_exit": payload}
            # One id per exit: a duplicate (only if this process died between sending and noting
            # it) carries the same id, so the receiver can tell.
            task_id = str(uuid.uuid5(_NAMESPACE, key))
            self.notify(str(on_exit["task"]), str(on_exit["queue"]), kwargs, task_id)
            log.info(
                "container %s exited (%s): sent %s to %s",
                container_id[:12],
                report.reason,
                on_exit["task"],
                on_exit["queue"],
            )
        self.redis.set(key, "sent", ex=EXIT_KEY_TTL_SECONDS)

    def _tail(self, container_id: str) -> str:
        try:
            return self.engine.logs(
                container_id,
                tail=self.settings.logs_tail_lines,
                timestamps=False,
                max_bytes=self.settings.logs_tail_bytes,
            )
        except ContainerizerError as exc:
            log.warning("no logs tail of %s: %s", container_id[:12], exc)
            return ""

    def _remove(self, container_id: str) -> None:
        if self.before_removal is not None:
            self.before_removal(container_id)  # Live-log followers read their last lines.
        try:
            self.engine.remove_container(container_id, force=True, volumes=False)
        except ContainerNotFound:
            pass
        except ContainerizerError as exc:
            log.warning("could not auto-remove container %s: %s", container_id[:12], exc)
            return
        self.state.record_removed(container_id)
        self.settle(container_id)
        log.info("auto-removed container %s", container_id[:12])


__all__ = [
    "CONDITIONS",
    "MAX_WAIT_SECONDS",
    "ExitReport",
    "Exits",
    "Waiters",
    "condition_holds",
    "exit_report",
    "parse_on_exit",
    "reason_of",
    "signal_of",
    "wait_arguments",
    "wait_result",
]

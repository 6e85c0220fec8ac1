"""EventWatcher.apply and since(), with hand-written fakes of Docker, the state store and Redis."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.unit.fakes import FakeEngine
from workers.events import EventWatcher
from workers.keys import Keys
from workers.models import ContainerInfo, ContainerStatus

KNOWN = "c0ffee" + "0" * 58
UNKNOWN = "dead00" + "0" * 58
TIME_NANO = 1_714_564_810_123_456_789
KEYS = Keys("test:", "h1")


class FakeState:
    """The StateStore calls the watcher makes, in order, over a dict of records."""

    def __init__(self, known: list[str]) -> None:
        self.records: dict[str, dict[str, Any]] = {cid: {"id": cid} for cid in known}
        self.calls: list[tuple[Any, ...]] = []

    def get(self, container_id: str) -> dict[str, Any] | None:
        return self.records.get(container_id)

    def record(self, info: ContainerInfo, **extra: Any) -> None:
        self.calls.append(("record", info))
        self.records[info.id] = {
            "id": info.id,
            "status": info.status.value,
            "exit_code": info.exit_code,
            "oom_killed": info.oom_killed,
            **extra,
        }

    def update(self, container_id: str, **fields: Any) -> None:
        self.calls.append(("update", container_id, fields))
        if container_id in self.records:
            self.records[container_id].update(fields)

    def transition(self, container_id: str, at_us: int, **fields: Any) -> None:
        """Applied unless the record shows a newer transition, as the store's script does."""
        self.calls.append(("transition", container_id, at_us, fields))
        record = self.records.get(container_id)
        if record is not None and at_us >= record.get("status_at_us", 0):
            record.update(fields, status_at_us=at_us)

    def record_removed(self, container_id: str) -> None:
        self.calls.append(("record_removed", container_id))
        if container_id in self.records:
            self.records[container_id]["status"] = "removed"


class FakeRedis:
    """get/set over a dict; values come back as strings (``decode_responses=True``)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> bool:
        self.data[key] = str(value)
        return True


def info(
    status: ContainerStatus,
    *,
    exit_code: int | None = None,
    oom_killed: bool = False,
    container_id: str = KNOWN,
) -> ContainerInfo:
    return ContainerInfo(
        id=container_id,
        name="web",
        image="busybox:latest",
        status=status,
        exit_code=exit_code,
        oom_killed=oom_killed,
    )


def event(
    action: str, container_id: str = KNOWN, time_nano: int | None = TIME_NANO
) -> dict[str, Any]:
    """A container event as docker-py decodes it from the engine's stream."""
    doc: dict[str, Any] = {
        "status": action,
        "id": container_id,
        "from": "busybox:latest",
        "Type": "container",
        "Action": action,
        "Actor": {"ID": container_id, "Attributes": {"name": "web", "image": "busybox:latest"}},
        "scope": "local",
    }
    if time_nano is not None:
        doc["time"] = time_nano // 1_000_000_000
        doc["timeNano"] = time_nano
    return doc


def watcher(
    known: list[str] | None = None,
) -> tuple[EventWatcher, FakeEngine, FakeState, FakeRedis]:
    docker, state, redis = FakeEngine(), FakeState([KNOWN] if known is None else known), FakeRedis()
    return (
        EventWatcher(docker, state, redis, KEYS),  # type: ignore[arg-type]
        docker,
        state,
        redis,
    )


# --- apply ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["create", "start", "die", "oom", "destroy"])
def test_an_event_for_an_unknown_container_changes_nothing_but_advances_since(action: str) -> None:
    events, docker, state, redis = watcher()

    events.apply(event(action, UNKNOWN))

    assert docker.calls == []
    assert state.calls == []
    assert UNKNOWN not in state.records
    assert redis.data == {KEYS.events_since(): str(TIME_NANO)}


def test_an_event_without_a_container_id_changes_nothing_but_advances_since() -> None:
    events, docker, state, redis = watcher()

    events.apply({"Type": "container", "Action": "die", "Actor": {}, "timeNano": TIME_NANO})

    assert docker.calls == []
    assert state.calls == []
    assert redis.data[KEYS.events_since()] == str(TIME_NANO)


AT = "2024-05-01T12:00:10.123456789Z"  # TIME_NANO as Docker writes times
AT_US = TIME_NANO // 1000


def test_die_records_the_exit_code_from_the_event_without_asking_docker() -> None:
    events, docker, state, redis = watcher()
    die = event("die")
    die["Actor"]["Attributes"]["exitCode"] = "137"

    events.apply(die)

    assert docker.calls == []
    assert state.calls == [
        ("transition", KNOWN, AT_US, {"status": "exited", "exit_code": 137, "finished_at": AT})
    ]
    assert redis.data[KEYS.events_since()] == str(TIME_NANO)


def test_oom_marks_the_record_oom_killed() -> None:
    events, docker, state, _ = watcher()
    events.apply(event("oom"))
    assert docker.calls == []
    assert state.calls == [("update", KNOWN, {"oom_killed": True})]


def test_destroy_takes_the_record_out_without_asking_docker() -> None:
    events, docker, state, redis = watcher()

    events.apply(event("destroy"))

    assert docker.calls == []
    assert state.calls == [("record_removed", KNOWN)]
    assert state.records[KNOWN]["status"] == "removed"
    assert redis.data[KEYS.events_since()] == str(TIME_NANO)


def test_start_marks_it_running_since_the_event() -> None:
    events, _, state, _ = watcher()
    events.apply(event("start"))
    assert state.calls == [
        (
            "transition",
            KNOWN,
            AT_US,
            {"status": "running", "started_at": AT, "exit_code": None, "oom_killed": False},
        )
    ]


@pytest.mark.parametrize(("action", "status"), [("pause", "paused"), ("unpause", "running")])
def test_pause_and_unpause(action: str, status: str) -> None:
    events, _, state, _ = watcher()
    events.apply(event(action))
    assert state.calls == [("transition", KNOWN, AT_US, {"status": status})]


def test_a_restart_of_a_container_that_exits_at_once_leaves_it_exited() -> None:
    """Docker logs "restart" after the start inside it, and after an exit that follows it."""
    events, _, state, _ = watcher()
    for offset, action in enumerate(["die", "start", "die", "restart"]):
        events.apply(event(action, time_nano=TIME_NANO + offset * 1000))
    assert state.records[KNOWN]["status"] == "exited"
    assert state.records[KNOWN]["status_at_us"] == AT_US + 2


@pytest.mark.parametrize("action", ["create", "stop", "kill", "restart"])
def test_events_whose_change_comes_with_a_later_event_change_nothing(action: str) -> None:
    events, docker, state, redis = watcher()
    events.apply(event(action))
    assert state.calls == [] and docker.calls == []
    assert redis.data[KEYS.events_since()] == str(TIME_NANO)


def test_an_event_in_the_legacy_format_is_applied() -> None:
    events, _, state, redis = watcher()

    events.apply({"status": "die", "id": KNOWN, "from": "busybox", "timeNano": TIME_NANO})

    assert state.calls == [
        ("transition", KNOWN, AT_US, {"status": "exited", "exit_code": None, "finished_at": AT})
    ]
    assert redis.data[KEYS.events_since()] == str(TIME_NANO)


def test_an_event_without_a_time_leaves_since_where_it_was() -> None:
    events, _, state, redis = watcher()
    redis.set(KEYS.events_since(), 42)

    before = time.time_ns() // 1000
    events.apply(event("start", time_nano=None))
    after = time.time_ns() // 1000

    (call,) = state.calls
    assert call[:2] == ("transition", KNOWN)
    assert before <= call[2] <= after  # Applied as of now, after whatever came before it.
    assert call[3] == {
        "status": "running",
        "started_at": None,
        "exit_code": None,
        "oom_killed": False,
    }
    assert redis.data == {KEYS.events_since(): "42"}


def test_since_follows_the_last_applied_event() -> None:
    events, _, _, redis = watcher()

    events.apply(event("start", time_nano=TIME_NANO))
    events.apply(event("die", UNKNOWN, time_nano=TIME_NANO + 1_000))

    assert redis.data[KEYS.events_since()] == str(TIME_NANO + 1_000)
    assert events.since() == "1714564810.123457789"


def test_since_is_kept_under_the_hosts_prefixed_key() -> None:
    events, _, _, redis = watcher()

    events.apply(event("die", UNKNOWN))

    assert list(redis.data) == ["test:host:h1:events:since"]


# --- since ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "since"),
    [
        (str(TIME_NANO), "1714564810.123456789"),
        ("1714564810000000000", "1714564810.000000000"),
        ("1714564810000000001", "1714564810.000000001"),
        ("5", "0.000000005"),
        (b"1714564810123456789", "1714564810.123456789"),
    ],
)
def test_since_formats_the_stored_nanoseconds(stored: Any, since: str) -> None:
    events, _, _, redis = watcher()
    redis.data[KEYS.events_since()] = stored

    assert events.since() == since


def test_since_without_a_stored_time_is_now() -> None:
    events, _, _, _ = watcher()

    before = time.time_ns()
    since = events.since()
    after = time.time_ns()

    match = re.fullmatch(r"(\d+)\.(\d{9})", since)
    assert match is not None, since
    nanos = int(match[1]) * 1_000_000_000 + int(match[2])
    assert before <= nanos <= after


def test_since_with_an_empty_stored_value_is_now() -> None:
    events, _, _, redis = watcher()
    redis.data[KEYS.events_since()] = ""

    seconds = float(events.since())

    assert abs(seconds - time.time()) < 5


# --- exits ----------------------------------------------------------------------------------------


class FakeExits:
    """What the watcher hands Exits for a die event."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def exited(self, container_id: str, report: Any = None, at_us: int | None = None) -> None:
        self.calls.append((container_id, report, at_us))

    def settle(self, container_id: str) -> None:
        self.calls.append(("settle", container_id))


def watcher_with_exits() -> tuple[EventWatcher, FakeEngine, FakeState, FakeExits]:
    docker, state, exits = FakeEngine(), FakeState([KNOWN]), FakeExits()
    return EventWatcher(docker, state, FakeRedis(), KEYS, exits), docker, state, exits  # type: ignore[arg-type]


def die(exit_code: str) -> dict[str, Any]:
    doc = event("die")
    doc["Actor"]["Attributes"]["exitCode"] = exit_code
    return doc


@pytest.mark.parametrize(
    ("code", "reason", "signal"),
    [("0", "completed", None), ("3", "failed", None), ("143", "signaled", "SIGTERM")],
)
def test_an_exit_is_reported_from_its_event_alone(
    code: str, reason: str, signal: str | None
) -> None:
    events, docker, _, exits = watcher_with_exits()
    events.apply(die(code))
    assert docker.calls == []
    [(container_id, report, at_us)] = exits.calls
    assert (container_id, at_us) == (KNOWN, AT_US)
    assert (report.exit_code, report.reason, report.signal) == (int(code), reason, signal)
    assert (report.oom_killed, report.finished_at) == (False, AT)


def test_a_kill_after_its_oom_event_is_reported_as_oom_from_the_events() -> None:
    events, _, _, exits = watcher_with_exits()
    events.apply(event("oom"))
    events.apply(die("137"))
    [(_, report, _)] = exits.calls
    assert (report.oom_killed, report.reason) == (True, "oom")


@pytest.mark.parametrize("code", ["137", None])
def test_a_kill_without_an_oom_event_or_an_exit_without_a_code_is_read_from_docker(
    code: str | None,
) -> None:
    """The kernel's OOM notice and the exit race: dockerd's inspect tells which it was."""
    events, _, _, exits = watcher_with_exits()
    events.apply(die(code) if code else event("die"))
    assert exits.calls == [(KNOWN, None, None)]


def test_the_kill_of_a_forced_removal_is_reported_from_its_event_alone() -> None:
    """The service marks a record it is force-removing: no inspect per removed container."""
    events, _, state, exits = watcher_with_exits()
    state.records[KNOWN]["removing"] = True
    events.apply(die("137"))
    [(_, report, _at_us)] = exits.calls
    assert report is not None and (report.exit_code, report.reason) == (137, "signaled")

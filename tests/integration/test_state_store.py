"""The state store's and the image cache's writes, each one Redis script, against a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from tests.integration.support import delete_keys
from workers.errors import ConfigurationError
from workers.hosts import HostRegistry
from workers.image_cache import ImageCache
from workers.keys import Keys
from workers.models import ContainerInfo, ContainerStatus, docker_time_us
from workers.state import REMOVED_RECORD_TTL_SECONDS, StateStore
from workers.stats import CpuSample, ResourceUsage

pytestmark = pytest.mark.integration
STATE_DB = 9  # Shared with other store-level tests; each uses a prefix of its own.
ID = "c" * 64


@dataclass
class Stores:
    redis: redis.Redis
    keys: Keys
    state: StateStore
    images: ImageCache


@pytest.fixture
def stores(redis_server: str) -> Iterator[Stores]:
    prefix = f"containerizer-state-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(f"{redis_server}/{STATE_DB}", decode_responses=True)
    keys = Keys(prefix)
    yield Stores(client, keys, StateStore(client, keys), ImageCache(client, keys))
    delete_keys(client, prefix)
    client.close()


def info(status: ContainerStatus = ContainerStatus.CREATED, name: str = "web") -> ContainerInfo:
    return ContainerInfo(
        id=ID,
        name=name,
        image="busybox:latest",
        status=status,
        image_id="sha256:" + "a" * 64,
        labels={"team": "platform"},
        created_at="2026-11-30T10:00:00.000000000Z",
        exit_code=None,
    )


def usage_sample() -> tuple[ResourceUsage, CpuSample]:
    usage = ResourceUsage(
        cpu_percent=1.0,
        memory_usage=1,
        memory_limit=2,
        network_rx_bytes=0,
        network_tx_bytes=0,
        block_read=0,
        block_write=0,
        pids=1,
    )
    return usage, CpuSample(container_ns=1, system_ns=1, online_cpus=1, read_at=1.0)


def test_record_writes_the_record_the_live_set_and_the_name(stores: Stores) -> None:
    stores.state.record(info(), startup_ms=12.5)
    record = stores.state.get(ID)
    assert record is not None
    assert record["status"] == "created" and record["name"] == "web"
    assert record["labels"] == {"team": "platform"} and record["startup_ms"] == 12.5
    assert record["exit_code"] is None and record["started_at"] is None
    assert stores.state.live_ids() == {ID}
    assert stores.state.find("web") == record
    assert stores.redis.ttl(stores.keys.container(ID)) == -1


def test_record_of_a_container_without_a_name_sets_no_name_key(stores: Stores) -> None:
    stores.state.record(info(name=""))
    assert stores.state.get(ID) is not None
    assert list(stores.redis.scan_iter(stores.keys.container_name("*"))) == []


def test_record_removed_keeps_the_record_for_a_day_out_of_the_live_set(stores: Stores) -> None:
    stores.state.record(info(ContainerStatus.RUNNING))
    usage, sample = usage_sample()
    stores.state.record_stats(ID, usage, sample, alerts=[], history_length=10)
    assert stores.redis.exists(stores.keys.stats_sample(ID))

    stores.state.record_removed(ID)

    record = stores.state.get(ID)
    assert record is not None and record["status"] == "removed" and record["name"] == "web"
    assert stores.state.live_ids() == set()
    assert not stores.redis.exists(stores.keys.stats_sample(ID))
    for key in (
        stores.keys.container(ID),
        stores.keys.container_name("web"),
        stores.keys.stats_history(ID),
    ):
        assert 0 < stores.redis.ttl(key) <= REMOVED_RECORD_TTL_SECONDS, key


def test_a_late_record_does_not_bring_a_removed_container_back(stores: Stores) -> None:
    stores.state.record(info(ContainerStatus.RUNNING))
    stores.state.record_removed(ID)
    stores.state.record(info(ContainerStatus.EXITED))
    record = stores.state.get(ID)
    assert record is not None and record["status"] == "removed"
    assert stores.state.live_ids() == set()
    assert stores.redis.ttl(stores.keys.container(ID)) > 0


def test_update_changes_a_live_record_only(stores: Stores) -> None:
    stores.state.update(ID, status="running")
    assert stores.state.get(ID) is None  # Not ours: no record is made.

    stores.state.record(info(ContainerStatus.RUNNING))
    stores.state.update(ID, status="exited", exit_code=3)
    record = stores.state.get(ID)
    assert record is not None and record["status"] == "exited" and record["exit_code"] == 3

    stores.state.record_removed(ID)
    stores.state.update(ID, status="running")
    record = stores.state.get(ID)
    assert record is not None and record["status"] == "removed"


def test_touch_counts_a_use_of_a_cached_image_only(stores: Stores) -> None:
    image_id = "sha256:" + "b" * 64
    assert stores.images.touch(image_id) is False
    assert not stores.redis.exists(stores.keys.image(image_id))

    stores.images.record_pull(image_id, ["docker.io/library/busybox:latest"], 10, 0.5)
    pulled = stores.images.get(image_id)
    assert pulled is not None and pulled["use_count"] == 0
    assert stores.images.touch(image_id) is True
    assert stores.images.touch(image_id) is True
    touched = stores.images.get(image_id)
    assert touched is not None and touched["use_count"] == 2
    assert touched["last_used"] >= pulled["last_used"]
    score = stores.redis.zscore(stores.keys.images(), image_id)
    assert score == pytest.approx(touched["last_used"])


def test_layers_recorded_at_a_pull_stay_when_a_later_pull_does_not_know_them(
    stores: Stores,
) -> None:
    image_id = "sha256:" + "c" * 64
    reference = "docker.io/library/busybox:latest"
    stores.images.record_pull(image_id, [reference], 30, 0.5)
    first = stores.images.get(image_id)
    assert first is not None and first["layers"] is None  # Eviction asks Docker later.

    stores.images.record_pull(image_id, [reference], 30, 0.5, [("sha256:a", 10), ("sha256:b", 20)])
    stores.images.record_pull(image_id, [reference], 30, 0.5)  # Docker did not say this time.

    entry = stores.images.get(image_id)
    assert entry is not None and entry["layers"] == [("sha256:a", 10), ("sha256:b", 20)]
    stores.images.set_layers(image_id, [("sha256:z", 30)])
    assert stores.images.get(image_id)["layers"] == [("sha256:z", 30)]  # type: ignore[index]
    stores.images.forget(image_id)
    stores.images.set_layers(image_id, [("sha256:z", 30)])
    assert not stores.redis.exists(stores.keys.image(image_id))  # No entry brought back.


def test_a_host_name_and_a_daemon_are_bound_to_each_other(stores: Stores) -> None:
    hosts = HostRegistry(stores.redis, stores.keys, dead_seconds=30)
    hosts.claim("DAEMON:A")
    hosts.claim("DAEMON:A")  # Again: nothing changes.
    with pytest.raises(ConfigurationError, match="bound to Docker daemon DAEMON:A"):
        hosts.claim("DAEMON:B")
    other = HostRegistry(stores.redis, stores.keys.on("other"), dead_seconds=30)
    with pytest.raises(ConfigurationError, match="already serves as host"):
        other.claim("DAEMON:A")
    other.claim("DAEMON:B")
    assert stores.redis.smembers(stores.keys.hosts()) == {stores.keys.host, "other"}
    assert stores.redis.ttl(stores.keys.daemon_id()) == -1


def test_record_stats_keeps_usage_sample_and_history_of_a_live_container(stores: Stores) -> None:
    stores.state.record(info(ContainerStatus.RUNNING))
    usage, sample = usage_sample()
    stores.state.record_stats(ID, usage, sample, alerts=["memory"], history_length=10)
    record = stores.state.get(ID)
    assert record is not None
    assert record["stats"] == usage.as_dict() and record["alerts"] == ["memory"]
    assert record["stats_at"] == 1.0
    assert stores.state.previous_sample(ID) == sample
    assert 0 < stores.redis.ttl(stores.keys.stats_sample(ID)) <= REMOVED_RECORD_TTL_SECONDS
    history = stores.state.history(ID)
    assert len(history) == 1 and history[0]["pids"] == "1" and history[0]["at"] == "1.0"


def test_record_stats_of_a_removed_or_unknown_container_keeps_nothing(stores: Stores) -> None:
    usage, sample = usage_sample()
    stores.state.record_stats(ID, usage, sample, alerts=[], history_length=10)
    assert stores.state.get(ID) is None
    stores.state.record(info(ContainerStatus.RUNNING))
    stores.state.record_removed(ID)
    stores.state.record_stats(ID, usage, sample, alerts=[], history_length=10)
    for key in (stores.keys.stats_sample(ID), stores.keys.stats_history(ID)):
        assert not stores.redis.exists(key), key


def test_removing_a_container_keeps_its_name_for_a_newer_one(stores: Stores) -> None:
    stores.state.record(info(ContainerStatus.EXITED))
    newer = ContainerInfo(id="d" * 64, name="web", image="busybox", status=ContainerStatus.CREATED)
    stores.state.record(newer)
    stores.state.record_removed(ID)
    assert stores.redis.get(stores.keys.container_name("web")) == newer.id
    assert stores.redis.ttl(stores.keys.container_name("web")) == -1


# --- ordering of status writes --------------------------------------------------------------------
CREATED_AT = "2026-11-30T10:00:00.000000000Z"
STARTED_AT = "2026-11-30T10:00:01.000000000Z"
DIED_AT = "2026-11-30T10:00:01.500000000Z"


def snapshot(status: ContainerStatus, *, started: bool, finished: bool) -> ContainerInfo:
    """What an inspect says: the times Docker had written by then."""
    return ContainerInfo(
        id=ID,
        name="web",
        image="busybox:latest",
        status=status,
        created_at=CREATED_AT,
        started_at=STARTED_AT if started else None,
        finished_at=DIED_AT if finished else None,
        exit_code=3 if finished else None,
    )


def test_a_stale_snapshot_does_not_overwrite_a_newer_exit(stores: Stores) -> None:
    # A task inspects a container just started; it exits; the watcher records the exit; then the
    # task writes its (older) snapshot.
    stale = snapshot(ContainerStatus.RUNNING, started=True, finished=False)
    stores.state.record(snapshot(ContainerStatus.CREATED, started=False, finished=False))
    stores.state.transition(
        ID, docker_time_us(DIED_AT), status="exited", exit_code=3, finished_at=DIED_AT
    )

    stores.state.record(stale, restart_ms=5.0)

    record = stores.state.get(ID)
    assert record is not None
    assert record["status"] == "exited" and record["exit_code"] == 3
    assert record["finished_at"] == DIED_AT
    assert record["status_at_us"] == docker_time_us(DIED_AT)
    assert record["restart_ms"] == 5.0  # What is not status is written all the same.


def test_a_newer_snapshot_overwrites_and_an_equal_one_rewrites(stores: Stores) -> None:
    stores.state.record(snapshot(ContainerStatus.RUNNING, started=True, finished=False))
    exited = snapshot(ContainerStatus.EXITED, started=True, finished=True)

    stores.state.record(exited)
    stores.state.record(exited)

    record = stores.state.get(ID)
    assert record is not None and record["status"] == "exited" and record["exit_code"] == 3
    assert record["status_at_us"] == docker_time_us(DIED_AT)


def test_an_older_event_does_not_overwrite_a_newer_status(stores: Stores) -> None:
    stores.state.record(snapshot(ContainerStatus.EXITED, started=True, finished=True))

    # The start event, applied late by a watcher that was behind.
    stores.state.transition(ID, docker_time_us(STARTED_AT), status="running")

    record = stores.state.get(ID)
    assert record is not None and record["status"] == "exited"


def test_a_repair_replaces_the_status_it_read_over_a_newer_time(stores: Stores) -> None:
    stores.state.record(snapshot(ContainerStatus.RUNNING, started=True, finished=False))
    paused_at = docker_time_us(DIED_AT)
    stores.state.transition(ID, paused_at, status="paused")

    # The unpause event was lost; Docker says running, as of its start.
    running = snapshot(ContainerStatus.RUNNING, started=True, finished=False)
    assert stores.state.record(running, replacing_us=paused_at) is True

    record = stores.state.get(ID)
    assert record is not None and record["status"] == "running"
    assert record["status_at_us"] == paused_at  # Time never goes back.


def test_a_repair_is_skipped_when_an_event_changed_the_record_since(stores: Stores) -> None:
    stores.state.record(snapshot(ContainerStatus.EXITED, started=True, finished=True))
    read_at = docker_time_us(DIED_AT)
    # Reconcile reads the record and inspects (exited); the container is started again and the
    # watcher records it before reconcile writes.
    exited = snapshot(ContainerStatus.EXITED, started=True, finished=True)
    restarted_us = read_at + 2_000_000
    stores.state.transition(ID, restarted_us, status="running", exit_code=None)

    assert stores.state.record(exited, replacing_us=read_at) is False

    record = stores.state.get(ID)
    assert record is not None and record["status"] == "running"
    assert record["status_at_us"] == restarted_us


def test_record_started_applies_over_the_status_it_followed(stores: Stores) -> None:
    stores.state.record(snapshot(ContainerStatus.CREATED, started=False, finished=False))
    seen = docker_time_us(CREATED_AT)

    applied = stores.state.record_started(
        ID, seen_us=seen, started_at="2026-11-30T10:00:01.1Z", startup_ms=80.0
    )

    record = stores.state.get(ID)
    assert applied is True
    assert record is not None and record["status"] == "running"
    assert record["started_at"] == "2026-11-30T10:00:01.1Z" and record["startup_ms"] == 80.0
    assert record["status_at_us"] == seen + 1
    # The start event then records Docker's own time, and the exit after it applies too.
    stores.state.transition(ID, docker_time_us(STARTED_AT), status="running", started_at=STARTED_AT)
    stores.state.transition(ID, docker_time_us(DIED_AT), status="exited", exit_code=3)
    record = stores.state.get(ID)
    assert record is not None and record["started_at"] == STARTED_AT
    assert record["status"] == "exited" and record["exit_code"] == 3


def test_record_started_after_the_watcher_recorded_the_exit_keeps_the_exit(stores: Stores) -> None:
    stores.state.record(snapshot(ContainerStatus.CREATED, started=False, finished=False))
    seen = docker_time_us(CREATED_AT)
    # The container started and exited before the start task wrote anything.
    stores.state.transition(ID, docker_time_us(STARTED_AT), status="running", started_at=STARTED_AT)
    stores.state.transition(ID, docker_time_us(DIED_AT), status="exited", exit_code=3)

    applied = stores.state.record_started(
        ID, seen_us=seen, started_at="2026-11-30T10:00:01.1Z", startup_ms=80.0
    )

    record = stores.state.get(ID)
    assert applied is False
    assert record is not None and record["status"] == "exited" and record["exit_code"] == 3
    assert record["started_at"] == STARTED_AT
    assert record["startup_ms"] == 80.0


def test_record_started_of_a_container_running_already_writes_nothing(stores: Stores) -> None:
    # A redelivered start: Docker's start of a running container does nothing, and no event.
    stores.state.record(snapshot(ContainerStatus.RUNNING, started=True, finished=False))
    seen = docker_time_us(STARTED_AT)

    applied = stores.state.record_started(
        ID, seen_us=seen, started_at="2026-11-30T10:05:00.0Z", startup_ms=0.4
    )

    record = stores.state.get(ID)
    assert applied is False
    assert record is not None and record["status"] == "running"
    assert record["started_at"] == STARTED_AT and record["status_at_us"] == seen
    assert "startup_ms" not in record


def test_record_started_and_transition_of_a_removed_or_unknown_container(stores: Stores) -> None:
    assert stores.state.record_started(ID, seen_us=0, started_at=STARTED_AT) is False
    stores.state.transition(ID, 1, status="running")
    assert stores.state.get(ID) is None

    stores.state.record(snapshot(ContainerStatus.CREATED, started=False, finished=False))
    stores.state.record_removed(ID)
    assert stores.state.record_started(ID, seen_us=0, started_at=STARTED_AT) is False
    stores.state.transition(ID, docker_time_us(DIED_AT) * 2, status="running")
    record = stores.state.get(ID)
    assert record is not None and record["status"] == "removed"

"""ContainerService's paths over the fake engine and the fake state store."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from config.settings import Settings
from tests.unit.fakes import FakeEngine, FakeState
from workers.container_config import CREATE_TOKEN_LABEL
from workers.containers import ContainerService
from workers.errors import (
    Conflict,
    ContainerNotFound,
    DockerUnavailable,
    ImageNotFound,
    ResourceNotFound,
)
from workers.policy import Policy
from workers.spec import MANAGED_LABEL, SPEC_HASH_LABEL, parse_spec
from workers.state import NameClaim


class FakeImageCache:
    def __init__(self) -> None:
        self.touched: list[str] = []

    def touch_reference(self, canonical: str) -> bool:
        self.touched.append(canonical)
        return True


SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
SPEC = parse_spec({"image": "busybox:latest", "name": "web"})


def service(engine: FakeEngine, state: FakeState) -> ContainerService:
    return ContainerService(
        engine,
        state,  # type: ignore[arg-type]
        Policy.from_settings(SETTINGS),
        SETTINGS,
        FakeImageCache(),  # type: ignore[arg-type]
    )


def with_image() -> FakeEngine:
    engine = FakeEngine()
    engine.add_image("busybox:latest")
    return engine


def known(status: str = "running", **record: Any) -> tuple[FakeEngine, FakeState, str]:
    """A container the service created: in Docker, and recorded."""
    engine = FakeEngine()
    labels = {MANAGED_LABEL: "true", SPEC_HASH_LABEL: SPEC.spec_hash()}
    container_id = str(engine.add_container("web", labels=labels, status=status)["Id"])
    state = FakeState(
        {container_id: {"id": container_id, "name": "web", "status": status, **record}}
    )
    return engine, state, container_id


# --- create -------------------------------------------------------------------------------------


def test_create_records_a_new_container_with_its_marker_and_releases_the_name() -> None:
    engine, state = with_image(), FakeState()
    result = service(engine, state).create(SPEC)
    assert result == {
        "id": result["id"],
        "name": "web",
        "image": "busybox:latest",
        "status": "created",
        "host": "h1",
    }
    record = state.records[result["id"]]
    assert record["status"] == "created" and record["spec_hash"] == SPEC.spec_hash()
    (kwargs,) = engine.created_kwargs
    assert kwargs["labels"][CREATE_TOKEN_LABEL]
    assert engine.called("inspect_container") == []  # The create's answer is enough.
    assert state.claims == {} and state.intent_tokens == {}


def test_repeated_create_with_the_same_spec_returns_the_existing_container() -> None:
    engine, state = with_image(), FakeState()
    first = service(engine, state).create(SPEC)
    again = service(engine, state).create(parse_spec({"name": "web", "image": "busybox:latest"}))
    assert again == first
    assert len(engine.containers_by_id) == 1 and len(engine.created_kwargs) == 1


def test_an_identical_create_under_way_is_waited_for() -> None:
    engine, state = with_image(), FakeState()
    first = service(engine, state).create(SPEC)
    replies = [NameClaim("pending", "", "h1", SPEC.spec_hash())]

    original = state.claim_name

    def pending_once(name: str, **kwargs: Any) -> NameClaim:
        return replies.pop() if replies else original(name, **kwargs)

    state.claim_name = pending_once  # type: ignore[method-assign]
    assert service(engine, state).create(SPEC) == first


def test_create_with_a_taken_name_and_another_spec_is_conflict() -> None:
    engine, state = with_image(), FakeState()
    service(engine, state).create(SPEC)
    other = parse_spec({"image": "busybox:latest", "name": "web", "mem_limit": "64m"})
    with pytest.raises(Conflict, match="container web: the name is taken"):
        service(engine, state).create(other)


def test_a_name_taken_on_another_host_is_conflict() -> None:
    engine, state = with_image(), FakeState()
    state.records["x" * 64] = {
        "id": "x" * 64,
        "name": "web",
        "status": "running",
        "host": "other",
        "spec_hash": SPEC.spec_hash(),
    }
    with pytest.raises(Conflict, match="taken on host 'other'"):
        service(engine, state).create(SPEC)


def test_create_name_taken_by_a_container_the_service_did_not_create_is_conflict() -> None:
    engine, state = with_image(), FakeState()
    # Even with every label of ours: an image's LABEL, or the operator, can set those.
    engine.add_container("web", labels={MANAGED_LABEL: "true", SPEC_HASH_LABEL: SPEC.spec_hash()})
    with pytest.raises(Conflict, match="does not manage"):
        service(engine, state).create(SPEC)
    assert state.records == {}


def test_the_container_of_a_lost_create_is_adopted_by_its_marker() -> None:
    engine, state = with_image(), FakeState()
    labels = {
        MANAGED_LABEL: "true",
        SPEC_HASH_LABEL: SPEC.spec_hash(),
        CREATE_TOKEN_LABEL: "lost",
    }
    orphan = engine.add_container("web", labels=labels)
    state.add_intent("lost", "web")
    result = service(engine, state).create(SPEC)
    assert result["id"] == orphan["Id"]
    assert state.records[orphan["Id"]]["status"] == "created"
    assert state.intent_tokens == {}


def test_create_of_a_missing_image_is_image_not_found_and_leaves_nothing() -> None:
    state = FakeState()
    with pytest.raises(ImageNotFound):
        service(FakeEngine(), state).create(SPEC)
    assert state.claims == {} and state.intent_tokens == {}


@pytest.mark.parametrize(
    "error", [redis.ConnectionError("refused"), redis.TimeoutError("timed out")]
)
def test_a_create_the_store_cannot_record_is_undone(error: Exception) -> None:
    engine, state = with_image(), FakeState()
    state.fail_record = error
    with pytest.raises(type(error)):
        service(engine, state).create(SPEC)
    assert len(engine.called("remove_container")) == 1
    assert engine.containers_by_id == {}


def test_an_adopted_container_is_kept_when_the_store_cannot_record_it() -> None:
    engine, state = with_image(), FakeState()
    labels = {MANAGED_LABEL: "true", SPEC_HASH_LABEL: SPEC.spec_hash(), CREATE_TOKEN_LABEL: "t"}
    engine.add_container("web", labels=labels)
    state.add_intent("t", "web")
    state.fail_record = redis.ConnectionError("refused")
    with pytest.raises(redis.ConnectionError):
        service(engine, state).create(SPEC)
    assert engine.called("remove_container") == []  # The first attempt made it.


def test_a_failed_undo_keeps_the_store_error() -> None:
    engine, state = with_image(), FakeState()
    state.fail_record = redis.ConnectionError("refused")
    engine.fail["remove_container"] = DockerUnavailable("docker: gone")
    with pytest.raises(redis.ConnectionError):
        service(engine, state).create(SPEC)


def test_other_store_errors_are_not_undone() -> None:
    engine, state = with_image(), FakeState()
    state.fail_record = redis.ResponseError("WRONGTYPE")
    with pytest.raises(redis.ResponseError):
        service(engine, state).create(SPEC)
    assert engine.called("remove_container") == []


def test_run_of_a_container_that_ran_does_not_start_it_again() -> None:
    engine, state = with_image(), FakeState()
    first = service(engine, state).run(SPEC)
    assert first["status"] == "running"
    again = service(engine, state).run(SPEC)
    assert again["id"] == first["id"]
    assert engine.called("start") == [first["id"]]


# --- resolve ------------------------------------------------------------------------------------


def test_a_container_is_found_by_id_short_id_and_name() -> None:
    engine, state, container_id = known()
    for reference in (container_id, container_id[:12], "web"):
        assert service(engine, state).resolve(reference)["id"] == container_id


def test_a_short_id_prefix_is_resolved_by_docker_and_decided_by_the_store() -> None:
    engine, state, container_id = known()
    assert service(engine, state).resolve(container_id[:6])["id"] == container_id


@pytest.mark.parametrize("status", ["removed"])
def test_a_removed_container_is_not_found(status: str) -> None:
    engine, state, _ = known(status=status)
    with pytest.raises(ContainerNotFound):
        service(engine, state).resolve("web")


def test_a_labelled_container_without_a_record_is_not_found() -> None:
    engine = FakeEngine()
    doc = engine.add_container("intruder", labels={MANAGED_LABEL: "true"})
    for reference in ("intruder", doc["Id"], doc["Id"][:12], doc["Id"][:8]):
        with pytest.raises(ContainerNotFound, match="no container managed by containerizer"):
            service(engine, FakeState()).resolve(reference)


# --- start --------------------------------------------------------------------------------------


def test_start_asks_docker_nothing_but_the_start() -> None:
    engine, state, container_id = known(status="created", status_at_us=1000)
    result = service(engine, state).start(state.records[container_id])
    assert result == {"id": container_id, "status": "running", "startup_ms": 12.5, "host": "h1"}
    assert [name for name, _ in engine.calls] == ["start"]  # No inspect before or after.
    # The record turns running only if it still shows what the start followed.
    assert state.starts == [(container_id, 1000, {"startup_ms": 12.5})]
    assert state.records[container_id]["status"] == "running"


def test_start_reports_what_the_watcher_recorded_meanwhile() -> None:
    """A batch container that exits at once: the watcher has recorded its exit first."""
    engine, state, container_id = known(status="created", status_at_us=1000)
    original = engine.start

    def start_then_exit(cid: str) -> float:
        state.records[cid].update(status="exited", exit_code=0, status_at_us=3000)
        return original(cid)

    engine.start = start_then_exit  # type: ignore[method-assign]
    result = service(engine, state).start(state.records[container_id])
    assert result["status"] == "exited"
    assert state.records[container_id]["status"] == "exited"


def test_start_of_a_running_container_keeps_its_record() -> None:
    engine, state, container_id = known(status_at_us=2000, started_at="S")
    before = dict(state.records[container_id])
    assert service(engine, state).start(before)["status"] == "running"
    assert state.records[container_id] == before


def test_an_operation_on_a_container_gone_from_docker_records_it_removed() -> None:
    engine, state, container_id = known()
    del engine.containers_by_id[container_id]  # Removed behind the service's back.
    with pytest.raises(ContainerNotFound):
        service(engine, state).stop(state.records[container_id], 10)
    assert state.records[container_id]["status"] == "removed"


# --- remove -------------------------------------------------------------------------------------


def test_remove_of_a_known_container_removes_it() -> None:
    engine, state, container_id = known()
    result = service(engine, state).remove(state.records[container_id], force=True, volumes=False)
    assert result == {"id": container_id, "removed": True, "host": "h1"}
    assert engine.containers_by_id == {}
    assert state.records[container_id]["status"] == "removed"


def test_remove_of_a_known_container_already_gone_from_docker_succeeds() -> None:
    engine, state, container_id = known(status="exited")
    del engine.containers_by_id[container_id]
    result = service(engine, state).remove(state.records[container_id], force=False, volumes=False)
    assert result["removed"] is True
    assert state.records[container_id]["status"] == "removed"


def test_remove_while_another_removal_is_under_way_waits_for_it() -> None:
    engine, state, container_id = known(status="exited")

    def in_progress(cid: str, *, force: bool, volumes: bool) -> None:
        del engine.containers_by_id[cid]  # The other removal ends a moment later.
        raise Conflict(f"container {cid}: removal of container {cid} is already in progress")

    engine.remove_container = in_progress  # type: ignore[method-assign]
    result = service(engine, state).remove(state.records[container_id], force=True, volumes=False)
    assert result["removed"] is True


def test_remove_of_a_running_container_without_force_is_conflict() -> None:
    engine, state, container_id = known()
    with pytest.raises(Conflict, match="running"):
        service(engine, state).remove(state.records[container_id], force=False, volumes=False)


# --- kill and restart ---------------------------------------------------------------------------


def test_a_kill_the_store_cannot_record_succeeds_and_is_not_repeated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, state, container_id = known()
    record = state.records[container_id]
    state.fail_record = redis.ConnectionError("refused")
    result = service(engine, state).kill(record, "SIGUSR1")
    # A raised StateUnavailable would retry the task, and the retry would signal again.
    assert result == {"id": container_id, "status": "exited", "host": "h1"}
    assert engine.called("kill") == [container_id]
    assert "record could not be written" in caplog.text


def test_a_restart_the_store_cannot_record_succeeds_and_is_not_repeated() -> None:
    engine, state, container_id = known()
    state.fail_record = redis.TimeoutError("timed out")
    result = service(engine, state).restart(state.records[container_id], 10)
    assert result == {"id": container_id, "status": "running", "restart_ms": 321.0, "host": "h1"}
    assert engine.called("restart") == [container_id]


def test_a_run_whose_start_docker_refuses_leaves_no_container() -> None:
    engine, state = with_image(), FakeState()

    def refused(container_id: str) -> float:
        raise ResourceNotFound(f"container {container_id}: network jobs-net not found")

    engine.start = refused  # type: ignore[method-assign]
    with pytest.raises(ResourceNotFound):
        service(engine, state).run(parse_spec({"image": "busybox:latest", "name": "job"}))
    assert engine.containers_by_id == {}  # Removed again.
    assert [r["status"] for r in state.records.values()] == ["removed"]


def test_a_restart_delivered_again_does_not_restart_again() -> None:
    """The Redis broker delivers a message again past its visibility timeout, which a restart
    with a long timeout can outlast: the second delivery reports, it does not restart."""
    engine, state, container_id = known()
    first = service(engine, state).restart(state.records[container_id], 10, task_id="t-1")
    again = service(engine, state).restart(state.records[container_id], 10, task_id="t-1")
    assert first["restart_ms"] == 321.0
    assert again == {"id": container_id, "status": "running", "restart_ms": None, "host": "h1"}
    assert engine.called("restart") == [container_id]
    other = service(engine, state).restart(state.records[container_id], 10, task_id="t-2")
    assert other["restart_ms"] == 321.0  # Another message: another restart.


def test_a_restart_docker_refused_may_be_retried_by_its_task() -> None:
    engine, state, container_id = known()

    def unavailable(container_id: str, timeout: int) -> float:
        raise DockerUnavailable("docker: connection refused")

    real = engine.restart
    engine.restart = unavailable  # type: ignore[method-assign]
    with pytest.raises(DockerUnavailable):
        service(engine, state).restart(state.records[container_id], 10, task_id="t-1")
    engine.restart = real  # type: ignore[method-assign]
    retried = service(engine, state).restart(state.records[container_id], 10, task_id="t-1")
    assert retried["restart_ms"] == 321.0


def test_a_refused_record_write_after_a_kill_is_raised() -> None:
    engine, state, container_id = known()
    state.fail_record = redis.ResponseError("WRONGTYPE")
    with pytest.raises(redis.ResponseError):
        service(engine, state).kill(state.records[container_id], "SIGKILL")


# --- reading ------------------------------------------------------------------------------------


def test_list_shows_recorded_containers_filtered_by_status_and_labels() -> None:
    engine, state, container_id = known()
    state.records[container_id]["labels"] = {"team": "a"}
    state.records["e" * 64] = {"id": "e" * 64, "name": "old", "status": "exited", "labels": {}}
    state.records["f" * 64] = {"id": "f" * 64, "name": "gone", "status": "removed"}
    svc = service(engine, state)
    assert [row["id"] for row in svc.list(all=False, labels=[])] == [container_id]
    assert [row["name"] for row in svc.list(all=True, labels=[])] == ["old", "web"]
    assert [row["id"] for row in svc.list(all=True, labels=["team=a"])] == [container_id]
    assert svc.list(all=True, labels=["team=b"]) == []


def test_inspect_redacts_secret_environment_values() -> None:
    engine, state, container_id = known()
    engine.containers_by_id[container_id]["Config"]["Env"] = ["DB_PASSWORD=hunter2", "MODE=x"]
    attrs = service(engine, state).inspect(state.records[container_id])
    assert attrs["Config"]["Env"] == ["DB_PASSWORD=**redacted**", "MODE=x"]

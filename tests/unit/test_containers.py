"""ContainerService's paths over the fake engine and a fake state store."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from config.settings import Settings
from tests.unit.fakes import FakeEngine
from workers.containers import ContainerService
from workers.errors import Conflict, ContainerNotFound, DockerUnavailable, ImageNotFound
from workers.models import ContainerInfo, ContainerStatus
from workers.policy import Policy
from workers.spec import MANAGED_LABEL, SPEC_HASH_LABEL, parse_spec


class FakeState:
    def __init__(self, records: dict[str, dict[str, Any]] | None = None) -> None:
        self.records = records or {}
        self.fail_record: Exception | None = None
        self.starts: list[tuple[str, int, dict[str, Any]]] = []

    def record(self, container: ContainerInfo, **extra: Any) -> None:
        if self.fail_record is not None:
            raise self.fail_record
        self.records[container.id] = {
            "id": container.id,
            "name": container.name,
            "status": container.status.value,
        }

    def record_removed(self, container_id: str) -> None:
        self.records[container_id] = {"id": container_id, "status": "removed"}

    def record_started(
        self, container_id: str, *, seen_us: int, started_at: str, **extra: Any
    ) -> bool:
        """As the store's script: applied over the status it followed, unless running."""
        self.starts.append((container_id, seen_us, extra))
        record = self.records[container_id]
        if record.get("status_at_us", 0) != seen_us or record["status"] == "running":
            return False
        record.update(status="running", started_at=started_at, status_at_us=seen_us + 1)
        return True

    def get(self, container_id: str) -> dict[str, Any] | None:
        return self.records.get(container_id)

    def find(self, reference: str) -> dict[str, Any] | None:
        by_name = [r for r in self.records.values() if r.get("name") == reference]
        return self.records.get(reference) or (by_name[0] if by_name else None)


class FakeImageCache:
    def touch(self, image_id: str) -> bool:
        return False


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


def managed(engine: FakeEngine, name: str = "web", **fields: Any) -> str:
    labels = {MANAGED_LABEL: "true", SPEC_HASH_LABEL: SPEC.spec_hash()}
    return str(engine.add_container(name, labels=labels, **fields)["Id"])


# --- create -------------------------------------------------------------------------------------


def test_create_reports_a_new_container_and_records_it() -> None:
    engine, state = with_image(), FakeState()
    result = service(engine, state).create(SPEC)
    assert result["name"] == "web" and result["status"] == "created"
    assert state.records[result["id"]]["status"] == "created"
    (kwargs,) = engine.created_kwargs
    assert kwargs["labels"][SPEC_HASH_LABEL] == SPEC.spec_hash()


def test_repeated_create_with_the_same_spec_returns_the_existing_container() -> None:
    engine, state = with_image(), FakeState()
    first = service(engine, state).create(SPEC)
    again = service(engine, state).create(parse_spec({"name": "web", "image": "busybox:latest"}))
    assert again == first
    assert len(engine.containers_by_id) == 1


def test_create_with_a_taken_name_and_another_spec_is_conflict() -> None:
    engine, state = with_image(), FakeState()
    service(engine, state).create(SPEC)
    other = parse_spec({"image": "busybox:latest", "name": "web", "mem_limit": "64m"})
    with pytest.raises(Conflict, match="container web: the name is taken"):
        service(engine, state).create(other)


def test_create_name_taken_by_an_unmanaged_container_is_conflict() -> None:
    engine, state = with_image(), FakeState()
    engine.add_container("web", labels={"owner": "operator"})
    with pytest.raises(Conflict, match="does not manage"):
        service(engine, state).create(SPEC)


def test_create_of_a_missing_image_is_image_not_found() -> None:
    with pytest.raises(ImageNotFound):
        service(FakeEngine(), FakeState()).create(SPEC)


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


def test_an_earlier_container_is_kept_when_the_store_cannot_record_it() -> None:
    engine, state = with_image(), FakeState()
    managed(engine)
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


# --- remove -------------------------------------------------------------------------------------


def test_remove_of_a_known_container_already_gone_from_docker_succeeds() -> None:
    state = FakeState({"a" * 64: {"id": "a" * 64, "status": "exited"}})
    result = service(FakeEngine(), state).remove("a" * 64, force=False, volumes=False)
    assert result == {"id": "a" * 64, "removed": True}
    assert state.records["a" * 64]["status"] == "removed"


def test_remove_of_a_container_nobody_knows_is_container_not_found() -> None:
    state = FakeState()
    with pytest.raises(ContainerNotFound):
        service(FakeEngine(), state).remove("web", force=False, volumes=False)
    assert state.records == {}


def test_remove_of_a_known_container_removes_it() -> None:
    engine = FakeEngine()
    container_id = managed(engine, status="running")
    state = FakeState({container_id: {"id": container_id, "status": "running"}})
    service(engine, state).remove(container_id, force=True, volumes=False)
    assert engine.called("remove_container") == [container_id]
    assert state.records[container_id]["status"] == "removed"


def test_remove_by_a_name_now_another_containers_removes_that_one() -> None:
    engine = FakeEngine()
    other = managed(engine)  # Made after the one the store knows went behind its back.
    state = FakeState({"a" * 64: {"id": "a" * 64, "name": "web", "status": "exited"}})
    result = service(engine, state).remove("web", force=False, volumes=False)
    assert result == {"id": other, "removed": True}
    assert engine.called("remove_container") == ["a" * 64, other]
    assert state.records["a" * 64]["status"] == "removed"
    assert state.records[other]["status"] == "removed"


def test_a_retried_remove_by_name_whose_container_is_gone_succeeds() -> None:
    state = FakeState({"a" * 64: {"id": "a" * 64, "name": "web", "status": "exited"}})
    result = service(FakeEngine(), state).remove("web", force=False, volumes=False)
    assert result == {"id": "a" * 64, "removed": True}
    assert state.records["a" * 64]["status"] == "removed"


# --- start --------------------------------------------------------------------------------------


def test_start_of_a_known_container_asks_docker_nothing_but_the_start() -> None:
    engine = FakeEngine()
    container_id = managed(engine)
    state = FakeState(
        {
            container_id: {
                "id": container_id,
                "name": "web",
                "status": "created",
                "status_at_us": 1000,
            }
        }
    )

    result = service(engine, state).start("web")

    assert result == {"id": container_id, "status": "running", "startup_ms": 12.5}
    assert [name for name, _ in engine.calls] == ["start"]  # No inspect before or after.
    # The record turns running only if it still shows what the start followed.
    assert state.starts == [(container_id, 1000, {"startup_ms": 12.5})]
    assert state.records[container_id]["status"] == "running"


def test_start_of_a_record_without_a_status_time_follows_time_zero() -> None:
    engine = FakeEngine()
    container_id = managed(engine)
    state = FakeState({container_id: {"id": container_id, "name": "web", "status": "created"}})
    service(engine, state).start(container_id)
    assert state.starts == [(container_id, 0, {"startup_ms": 12.5})]


def test_start_reports_what_the_watcher_recorded_meanwhile() -> None:
    """A batch container that exits at once: the watcher has recorded its exit first."""
    engine = FakeEngine()
    container_id = managed(engine)
    state = FakeState(
        {
            container_id: {
                "id": container_id,
                "name": "web",
                "status": "created",
                "status_at_us": 1000,
            }
        }
    )
    original = engine.start

    def start_then_exit(cid: str) -> float:
        state.records[cid].update(status="exited", exit_code=0, status_at_us=3000)
        return original(cid)

    engine.start = start_then_exit  # type: ignore[method-assign]
    result = service(engine, state).start("web")

    assert result == {"id": container_id, "status": "exited", "startup_ms": 12.5}
    assert state.records[container_id]["status"] == "exited"


def test_start_of_a_running_container_keeps_its_record() -> None:
    engine = FakeEngine()
    container_id = managed(engine, status="running")
    record = {
        "id": container_id,
        "name": "web",
        "status": "running",
        "status_at_us": 2000,
        "started_at": "S",
    }
    state = FakeState({container_id: dict(record)})
    result = service(engine, state).start("web")
    assert result["status"] == "running"
    assert state.records[container_id] == record


def test_start_of_a_container_the_store_does_not_know_inspects_it() -> None:
    engine, state = FakeEngine(), FakeState()
    container_id = managed(engine)
    result = service(engine, state).start("web")
    assert engine.called("start") == [container_id]
    # Resolve (and check the label), then its state.
    assert engine.called("inspect_container") == ["web", container_id]
    assert state.starts == []
    assert state.records[container_id]["status"] == "running"
    assert result["status"] == "running"


def test_start_of_a_known_container_gone_from_docker_is_container_not_found() -> None:
    engine = FakeEngine()
    state = FakeState({"a" * 64: {"id": "a" * 64, "name": "web", "status": "created"}})
    with pytest.raises(ContainerNotFound):
        service(engine, state).start("a" * 64)
    assert state.starts == []
    assert engine.called("inspect_container") == ["a" * 64]  # Does it name another?


# --- kill and restart ---------------------------------------------------------------------------


def known() -> tuple[FakeEngine, FakeState, str]:
    engine = FakeEngine()
    container_id = managed(engine, status="running")
    return (
        engine,
        FakeState({container_id: {"id": container_id, "name": "web", "status": "running"}}),
        container_id,
    )


def test_a_kill_the_store_cannot_record_succeeds_and_is_not_repeated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, state, container_id = known()
    state.fail_record = redis.ConnectionError("refused")
    result = service(engine, state).kill("web", "SIGUSR1")
    # A raised StateUnavailable would retry the task, and the retry would signal again.
    assert result == {"id": container_id, "status": "exited"}
    assert engine.called("kill") == [container_id]
    assert "record could not be written" in caplog.text


def test_a_restart_the_store_cannot_record_succeeds_and_is_not_repeated() -> None:
    engine, state, container_id = known()
    state.fail_record = redis.TimeoutError("timed out")
    result = service(engine, state).restart("web", 10)
    assert result == {"id": container_id, "status": "running", "restart_ms": 321.0}
    assert engine.called("restart") == [container_id]


def test_a_kill_with_the_store_down_before_it_does_nothing() -> None:
    engine, state, _ = known()

    def unreachable(reference: str) -> None:
        raise redis.ConnectionError("refused")

    state.find = unreachable  # type: ignore[method-assign]
    with pytest.raises(redis.ConnectionError):
        service(engine, state).kill("web", "SIGKILL")
    assert engine.called("kill") == []  # The task's retry sends the one signal.


def test_a_refused_record_write_after_a_kill_is_raised() -> None:
    engine, state, _ = known()
    state.fail_record = redis.ResponseError("WRONGTYPE")
    with pytest.raises(redis.ResponseError):
        service(engine, state).kill("web", "SIGKILL")


# --- reading ------------------------------------------------------------------------------------


def test_an_unmanaged_container_is_not_found() -> None:
    engine = FakeEngine()
    engine.add_container("operator-db", labels={"owner": "operator"})
    engine.add_container("half", labels={MANAGED_LABEL: "yes"})
    for name in ("operator-db", "half", "ghost"):
        with pytest.raises(ContainerNotFound):
            service(engine, FakeState()).info(name)


def test_list_filters_on_the_managed_label_and_the_callers_labels() -> None:
    engine = FakeEngine()
    running = managed(engine, status="running")
    engine.add_container("other", labels={"team": "a"}, status="running")
    rows = service(engine, FakeState()).list(all=False, labels=[])
    assert [row["id"] for row in rows] == [running]
    assert rows[0]["status"] == ContainerStatus.RUNNING.value
    assert service(engine, FakeState()).list(all=False, labels=["team=a"]) == []

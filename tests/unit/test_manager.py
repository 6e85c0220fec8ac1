"""ContainerManager's recovery paths, over fakes of the Docker service and the state store."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from config.settings import Settings
from workers.docker_service import Created, Timed
from workers.errors import ContainerNotFound, DockerUnavailable
from workers.manager import ContainerManager
from workers.models import ContainerInfo, ContainerStatus
from workers.policy import Policy
from workers.spec import parse_spec

ID = "f" * 64


def info(status: ContainerStatus = ContainerStatus.CREATED) -> ContainerInfo:
    return ContainerInfo(id=ID, name="web", image="busybox:latest", status=status)


class FakeDocker:
    """Containers by id, with their names; ``present`` false: the created one is gone."""

    def __init__(self, *, existed: bool = False, present: bool = True) -> None:
        self.existed = existed
        self.names: dict[str, str] = {ID: "web"} if present else {}
        self.removed: list[tuple[str, bool]] = []
        self.fail_remove: Exception | None = None
        self.started: list[str] = []
        self.info_calls: list[str] = []
        self.signals: list[tuple[str, str]] = []
        self.restarts: list[str] = []

    def create(self, spec: Any) -> Created:
        return Created(info(), existed=self.existed)

    def remove(self, container_id: str, *, force: bool, volumes: bool) -> None:
        if self.fail_remove is not None:
            raise self.fail_remove
        if container_id not in self.names:
            raise ContainerNotFound(f"container {container_id}: no such container")
        del self.names[container_id]
        self.removed.append((container_id, force))

    def start(self, container_id: str) -> float:
        if container_id not in self.names:
            raise ContainerNotFound(f"container {container_id}: no such container")
        self.started.append(container_id)
        return 12.5

    def kill(self, container_id: str, signal: str) -> ContainerInfo:
        self.signals.append((container_id, signal))
        return info(ContainerStatus.EXITED)

    def restart(self, container_id: str, timeout: int) -> Timed:
        self.restarts.append(container_id)
        return Timed(info(ContainerStatus.RUNNING), 321.0)

    def info(self, reference: str) -> ContainerInfo:
        self.info_calls.append(reference)
        for container_id, name in self.names.items():
            if reference in (container_id, name):
                return ContainerInfo(
                    id=container_id, name=name, image="busybox", status=ContainerStatus.EXITED
                )
        raise ContainerNotFound(f"container {reference}: no such container")


class FakeState:
    def __init__(self, records: dict[str, dict[str, Any]] | None = None) -> None:
        self.records = records or {}
        self.fail_record: Exception | None = None
        self.starts: list[tuple[str, int, dict[str, Any]]] = []

    def record(self, container: ContainerInfo, **extra: Any) -> None:
        if self.fail_record is not None:
            raise self.fail_record
        self.records[container.id] = {"id": container.id, "status": container.status.value}

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


def manager(docker: FakeDocker, state: FakeState) -> ContainerManager:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    return ContainerManager(
        docker,  # type: ignore[arg-type]
        state,  # type: ignore[arg-type]
        Policy.from_settings(settings),
        settings,
        FakeImageCache(),  # type: ignore[arg-type]
    )


SPEC = parse_spec({"image": "busybox:latest", "name": "web"})


@pytest.mark.parametrize(
    "error", [redis.ConnectionError("refused"), redis.TimeoutError("timed out")]
)
def test_a_create_the_store_cannot_record_is_undone(error: Exception) -> None:
    docker, state = FakeDocker(), FakeState()
    state.fail_record = error
    with pytest.raises(type(error)):
        manager(docker, state).create(SPEC)
    assert docker.removed == [(ID, True)]


def test_an_earlier_container_is_kept_when_the_store_cannot_record_it() -> None:
    docker, state = FakeDocker(existed=True), FakeState()
    state.fail_record = redis.ConnectionError("refused")
    with pytest.raises(redis.ConnectionError):
        manager(docker, state).create(SPEC)
    assert docker.removed == []  # Not this attempt's to remove: the first attempt made it.


def test_a_failed_undo_keeps_the_store_error() -> None:
    docker, state = FakeDocker(), FakeState()
    state.fail_record = redis.ConnectionError("refused")
    docker.fail_remove = DockerUnavailable("docker: gone")
    with pytest.raises(redis.ConnectionError):
        manager(docker, state).create(SPEC)


def test_other_store_errors_are_not_undone() -> None:
    docker, state = FakeDocker(), FakeState()
    state.fail_record = redis.ResponseError("WRONGTYPE")
    with pytest.raises(redis.ResponseError):
        manager(docker, state).create(SPEC)
    assert docker.removed == []


def test_remove_of_a_known_container_already_gone_from_docker_succeeds() -> None:
    docker = FakeDocker(present=False)
    state = FakeState({ID: {"id": ID, "status": "exited"}})
    assert manager(docker, state).remove(ID, force=False, volumes=False) == {
        "id": ID,
        "removed": True,
    }
    assert state.records[ID]["status"] == "removed"


def test_remove_of_a_container_nobody_knows_is_container_not_found() -> None:
    docker, state = FakeDocker(present=False), FakeState()
    with pytest.raises(ContainerNotFound):
        manager(docker, state).remove("web", force=False, volumes=False)
    assert state.records == {}


def test_remove_of_a_known_container_removes_it() -> None:
    docker = FakeDocker()
    state = FakeState({ID: {"id": ID, "status": "exited"}})
    manager(docker, state).remove(ID, force=True, volumes=False)
    assert docker.removed == [(ID, True)]
    assert state.records[ID]["status"] == "removed"


def test_remove_by_a_name_now_another_containers_removes_that_one() -> None:
    other = "e" * 64
    docker = FakeDocker(present=False)
    docker.names[other] = "web"  # Made after the one the store knows went behind its back.
    state = FakeState({ID: {"id": ID, "name": "web", "status": "exited"}})
    result = manager(docker, state).remove("web", force=False, volumes=False)
    assert result == {"id": other, "removed": True}
    assert docker.removed == [(other, False)]
    assert state.records[ID]["status"] == "removed"
    assert state.records[other]["status"] == "removed"


def test_a_retried_remove_by_name_whose_container_is_gone_succeeds() -> None:
    docker = FakeDocker(present=False)
    state = FakeState({ID: {"id": ID, "name": "web", "status": "exited"}})
    result = manager(docker, state).remove("web", force=False, volumes=False)
    assert result == {"id": ID, "removed": True}
    assert state.records[ID]["status"] == "removed"


# --- start ----------------------------------------------------------------------------------------


def test_start_of_a_known_container_asks_docker_nothing_but_the_start() -> None:
    docker = FakeDocker()
    state = FakeState({ID: {"id": ID, "name": "web", "status": "created", "status_at_us": 1000}})

    result = manager(docker, state).start("web")

    assert result == {"id": ID, "status": "running", "startup_ms": 12.5}
    assert docker.started == [ID]
    assert docker.info_calls == []  # No inspect before or after.
    # The record turns running only if it still shows what the start followed.
    assert state.starts == [(ID, 1000, {"startup_ms": 12.5})]
    assert state.records[ID]["status"] == "running"


def test_start_of_a_record_without_a_status_time_follows_time_zero() -> None:
    state = FakeState({ID: {"id": ID, "name": "web", "status": "created"}})

    manager(FakeDocker(), state).start(ID)

    assert state.starts == [(ID, 0, {"startup_ms": 12.5})]


def test_start_reports_what_the_watcher_recorded_meanwhile() -> None:
    """A batch container that exits at once: the watcher has recorded its exit first."""
    docker = FakeDocker()
    state = FakeState({ID: {"id": ID, "name": "web", "status": "created", "status_at_us": 1000}})

    def start_then_exit(container_id: str) -> float:
        state.records[ID].update(status="exited", exit_code=0, status_at_us=3000)
        return 12.5

    docker.start = start_then_exit  # type: ignore[method-assign]
    result = manager(docker, state).start("web")

    assert result == {"id": ID, "status": "exited", "startup_ms": 12.5}
    assert state.records[ID]["status"] == "exited"


def test_start_of_a_running_container_keeps_its_record() -> None:
    record = {"id": ID, "name": "web", "status": "running", "status_at_us": 2000, "started_at": "S"}
    state = FakeState({ID: dict(record)})

    result = manager(FakeDocker(), state).start("web")

    assert result["status"] == "running"
    assert state.records[ID] == record


def test_start_of_a_container_the_store_does_not_know_inspects_it() -> None:
    docker, state = FakeDocker(), FakeState()

    result = manager(docker, state).start("web")

    assert docker.started == [ID]
    assert docker.info_calls == ["web", ID]  # Resolve (and check the label), then its state.
    assert state.starts == []
    assert state.records[ID]["status"] == "exited"  # What the (fake) inspect said.
    assert result["status"] == "exited"


def test_start_of_a_known_container_gone_from_docker_is_container_not_found() -> None:
    docker = FakeDocker(present=False)
    state = FakeState({ID: {"id": ID, "name": "web", "status": "created"}})

    with pytest.raises(ContainerNotFound):
        manager(docker, state).start(ID)

    assert state.starts == []
    assert docker.info_calls == [ID]  # Docker was asked whether the reference names another.


def known() -> FakeState:
    return FakeState({ID: {"id": ID, "name": "web", "status": "running"}})


def test_a_kill_the_store_cannot_record_succeeds_and_is_not_repeated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    docker, state = FakeDocker(), known()
    state.fail_record = redis.ConnectionError("refused")
    result = manager(docker, state).kill("web", "SIGUSR1")
    # A raised StateUnavailable would retry the task, and the retry would signal again.
    assert result == {"id": ID, "status": "exited"}
    assert docker.signals == [(ID, "SIGUSR1")]
    assert "record could not be written" in caplog.text


def test_a_restart_the_store_cannot_record_succeeds_and_is_not_repeated() -> None:
    docker, state = FakeDocker(), known()
    state.fail_record = redis.TimeoutError("timed out")
    result = manager(docker, state).restart("web", 10)
    assert result == {"id": ID, "status": "running", "restart_ms": 321.0}
    assert docker.restarts == [ID]


def test_a_kill_with_the_store_down_before_it_does_nothing() -> None:
    docker, state = FakeDocker(), known()

    def unreachable(reference: str) -> None:
        raise redis.ConnectionError("refused")

    state.find = unreachable  # type: ignore[method-assign]
    with pytest.raises(redis.ConnectionError):
        manager(docker, state).kill("web", "SIGKILL")
    assert docker.signals == []  # The task's retry sends the one signal.


def test_a_refused_record_write_after_a_kill_is_raised() -> None:
    docker, state = FakeDocker(), known()
    state.fail_record = redis.ResponseError("WRONGTYPE")
    with pytest.raises(redis.ResponseError):
        manager(docker, state).kill("web", "SIGKILL")

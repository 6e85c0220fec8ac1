"""DockerService against a hand-written fake docker-py client (no daemon)."""

from __future__ import annotations

import copy
import json
from typing import Any

import docker.errors
import docker.types
import pytest
import requests
from docker.models.containers import Container

from config.settings import Settings
from workers.docker_service import MANAGED_FILTER, Created, DockerService, connect
from workers.errors import Conflict, ContainerNotFound, DockerUnavailable, ImageNotFound
from workers.models import ContainerStatus
from workers.spec import MANAGED_LABEL, SPEC_HASH_LABEL, ContainerSpec, parse_spec

MiB = 1024 * 1024


def api_error(status: int, message: str) -> docker.errors.APIError:
    """The exception docker-py raises for an engine answer (its own error factory)."""
    resp = requests.Response()
    resp.status_code = status
    resp._content = json.dumps({"message": message}).encode()
    http_error = requests.exceptions.HTTPError(f"{status}", response=resp)
    try:
        docker.errors.create_api_error_from_http_exception(http_error)
    except docker.errors.APIError as exc:
        return exc
    raise AssertionError("docker-py did not raise")


def inspect_doc(
    name: str, labels: dict[str, str], *, image: str = "busybox", status: str = "created"
) -> dict[str, Any]:
    return {
        "Id": f"id-{name}",
        "Name": f"/{name}",
        "Created": "2024-05-01T12:00:00.123456789Z",
        "State": {
            "Status": status,
            "ExitCode": 0,
            "OOMKilled": False,
            "StartedAt": "0001-01-01T00:00:00Z",
            "FinishedAt": "0001-01-01T00:00:00Z",
        },
        "Config": {"Image": image, "Labels": labels},
    }


class FakeContainers:
    """``client.containers``: create records its keywords; get finds by name or id."""

    def __init__(self, client: FakeClient) -> None:
        self.client = client
        self.docs: dict[str, dict[str, Any]] = {}
        self.create_calls: list[dict[str, Any]] = []
        self.get_calls: list[str] = []
        self.create_error: Exception | None = None

    def add(self, doc: dict[str, Any]) -> None:
        self.docs[doc["Name"].lstrip("/")] = doc

    def create(self, **kwargs: Any) -> Container:
        self.create_calls.append(kwargs)
        if self.create_error is not None:
            raise self.create_error
        name = kwargs.get("name") or "generated"
        if name in self.docs:
            raise api_error(409, f'Conflict. The container name "/{name}" is already in use')
        doc = inspect_doc(name, dict(kwargs.get("labels") or {}), image=kwargs["image"])
        self.add(doc)
        return Container(attrs=doc, client=self.client, collection=self)

    def get(self, reference: str) -> Container:
        self.get_calls.append(reference)
        for name, doc in self.docs.items():
            if reference in (name, doc["Id"]):
                return Container(attrs=doc, client=self.client, collection=self)
        raise api_error(404, f"No such container: {reference}")


class FakeAPI:
    """``client.api``: the low-level calls the service makes."""

    def __init__(self, containers: FakeContainers) -> None:
        self._containers = containers
        self.containers_calls: list[dict[str, Any]] = []
        self.stats_calls: list[tuple[str, dict[str, Any]]] = []
        self.rows: list[dict[str, Any]] = []
        self.error: Exception | None = None

    def containers(self, **kwargs: Any) -> list[dict[str, Any]]:
        self.containers_calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return self.rows

    def inspect_container(self, reference: str) -> dict[str, Any]:
        """A fresh document per call, as the engine answers."""
        return copy.deepcopy(self._containers.get(reference).attrs)

    def stats(self, container_id: str, **kwargs: Any) -> dict[str, Any]:
        self.stats_calls.append((container_id, kwargs))
        return {"id": container_id, "read": "2024-05-01T12:00:00Z"}


class FakeClient:
    def __init__(self) -> None:
        self.containers = FakeContainers(self)
        self.api = FakeAPI(self.containers)


def make_service(**settings: Any) -> tuple[DockerService, FakeClient]:
    client = FakeClient()
    return DockerService(client, Settings(**settings)), client  # type: ignore[arg-type]


def spec(**fields: Any) -> ContainerSpec:
    return parse_spec({"image": "busybox:1.36", **fields})


# --- create_kwargs --------------------------------------------------------------------------


def test_create_kwargs_of_a_minimal_spec() -> None:
    service, _ = make_service()
    parsed = spec()
    assert service.create_kwargs(parsed) == {
        "image": "busybox:1.36",
        "network_mode": "bridge",
        "labels": {MANAGED_LABEL: "true", SPEC_HASH_LABEL: parsed.spec_hash()},
    }


def test_create_kwargs_keeps_caller_labels_and_adds_ours() -> None:
    service, _ = make_service()
    parsed = spec(name="web", labels={"team": "a"})
    kwargs = service.create_kwargs(parsed)
    assert kwargs["labels"] == {
        "team": "a",
        "containerizer.managed": "true",
        "containerizer.spec-hash": parsed.spec_hash(),
    }
    assert kwargs["name"] == "web"


def test_create_kwargs_defaults_apply_only_when_the_spec_has_none() -> None:
    service, _ = make_service(
        default_network_mode="appnet", default_cpu_shares=256, default_mem_limit=64 * MiB
    )
    kwargs = service.create_kwargs(spec())
    assert kwargs["network_mode"] == "appnet"
    assert kwargs["cpu_shares"] == 256
    assert kwargs["mem_limit"] == 64 * MiB

    kwargs = service.create_kwargs(spec(network_mode="none", cpu_shares=1024, mem_limit="1g"))
    assert kwargs["network_mode"] == "none"
    assert kwargs["cpu_shares"] == 1024
    assert kwargs["mem_limit"] == 1024 * MiB


def test_create_kwargs_without_default_limits_sets_none() -> None:
    service, _ = make_service()
    kwargs = service.create_kwargs(spec())
    assert "cpu_shares" not in kwargs
    assert "mem_limit" not in kwargs


def test_create_kwargs_gpus_become_a_device_request() -> None:
    service, _ = make_service()
    kwargs = service.create_kwargs(spec(gpus=2))
    assert "gpus" not in kwargs
    (request,) = kwargs["device_requests"]
    assert isinstance(request, docker.types.DeviceRequest)
    assert request.count == 2
    assert request.capabilities == [["gpu"]]

    (every,) = service.create_kwargs(spec(gpus=-1))["device_requests"]
    assert every.count == -1
    assert "device_requests" not in service.create_kwargs(spec(gpus=0))
    assert "device_requests" not in service.create_kwargs(spec())


def test_create_kwargs_ports() -> None:
    service, _ = make_service()
    kwargs = service.create_kwargs(
        spec(
            ports={
                "80/tcp": ["127.0.0.1", 8080],
                "81": ["127.0.0.1", None],
                "82": 8082,
                "83": None,
                "84": [8084, 9084],
            }
        )
    )
    assert kwargs["ports"] == {
        "80/tcp": ("127.0.0.1", 8080),
        "81": ("127.0.0.1", None),
        "82": 8082,
        "83": None,
        "84": [8084, 9084],
    }


def test_create_kwargs_nested_values_are_plain_dicts() -> None:
    service, _ = make_service()
    kwargs = service.create_kwargs(
        spec(
            restart_policy={"Name": "on-failure", "MaximumRetryCount": 3},
            healthcheck={"test": ["CMD", "true"], "interval": 1_000_000_000},
            volumes={"/srv": {"bind": "/data", "mode": "ro"}},
            mem_limit="512m",
        )
    )
    assert kwargs["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert kwargs["healthcheck"] == {"test": ["CMD", "true"], "interval": 1_000_000_000}
    assert kwargs["volumes"] == {"/srv": {"bind": "/data", "mode": "ro"}}
    assert kwargs["mem_limit"] == 512 * MiB


def test_create_kwargs_privileged_only_when_true() -> None:
    service, _ = make_service()
    assert "privileged" not in service.create_kwargs(spec(privileged=False))
    assert service.create_kwargs(spec(privileged=True))["privileged"] is True


# --- create ---------------------------------------------------------------------------------


def test_create_passes_the_kwargs_and_reports_a_new_container() -> None:
    service, client = make_service()
    parsed = spec(name="web")
    created = service.create(parsed)
    assert client.containers.create_calls == [service.create_kwargs(parsed)]
    assert created == Created(info=created.info, existed=False)
    assert created.info.name == "web"
    assert created.info.status is ContainerStatus.CREATED
    assert created.info.labels[SPEC_HASH_LABEL] == parsed.spec_hash()


def test_repeated_create_with_the_same_spec_returns_the_existing_container() -> None:
    service, client = make_service()
    parsed = spec(name="web", mem_limit="64m")
    first = service.create(parsed)
    again = service.create(spec(mem_limit=64 * MiB, name="web"))
    assert again.existed is True
    assert again.info == first.info
    assert client.containers.get_calls == ["web"]
    assert len(client.containers.create_calls) == 2


def test_create_with_a_taken_name_and_another_spec_is_conflict() -> None:
    service, _ = make_service()
    service.create(spec(name="web"))
    with pytest.raises(Conflict, match="container web: the name is taken"):
        service.create(spec(name="web", mem_limit="64m"))


def test_create_of_an_existing_container_found_by_its_hash_label() -> None:
    service, client = make_service()
    parsed = spec(name="db")
    client.containers.add(
        inspect_doc(
            "db", {MANAGED_LABEL: "true", SPEC_HASH_LABEL: parsed.spec_hash()}, status="running"
        )
    )
    created = service.create(parsed)
    assert created.existed is True
    assert created.info.status is ContainerStatus.RUNNING
    assert created.info.id == "id-db"


def test_create_conflict_without_a_name_is_raised() -> None:
    service, client = make_service()
    client.containers.create_error = api_error(409, "conflict")
    with pytest.raises(Conflict):
        service.create(spec())
    assert client.containers.get_calls == []


def test_create_name_taken_by_an_unmanaged_container_is_conflict() -> None:
    # The operator's own container "web" holds the name: the create clashes with existing state.
    service, client = make_service()
    client.containers.add(inspect_doc("web", {"owner": "operator"}))
    with pytest.raises(Conflict):
        service.create(spec(name="web"))


def test_create_of_a_missing_image_is_image_not_found() -> None:
    service, client = make_service()
    client.containers.create_error = api_error(404, "No such image: busybox:1.36")
    with pytest.raises(ImageNotFound, match="container web"):
        service.create(spec(name="web"))


def test_create_with_the_daemon_down_is_docker_unavailable() -> None:
    service, client = make_service()
    client.containers.create_error = requests.exceptions.ConnectionError("connection refused")
    with pytest.raises(DockerUnavailable):
        service.create(spec(name="web"))


# --- reading containers ---------------------------------------------------------------------


def test_get_of_an_unmanaged_container_is_not_found() -> None:
    service, client = make_service()
    client.containers.add(inspect_doc("operator-db", {"owner": "operator"}))
    client.containers.add(inspect_doc("half", {MANAGED_LABEL: "yes"}))
    with pytest.raises(ContainerNotFound, match="not managed by containerizer"):
        service.info("operator-db")
    with pytest.raises(ContainerNotFound, match="not managed by containerizer"):
        service.inspect("half")


def test_get_of_a_missing_container_is_not_found() -> None:
    service, _ = make_service()
    with pytest.raises(ContainerNotFound, match="container ghost: No such container: ghost"):
        service.info("ghost")


def test_info_and_inspect_of_a_managed_container() -> None:
    service, client = make_service()
    doc = inspect_doc("web", {MANAGED_LABEL: "true"}, status="running")
    client.containers.add(doc)
    assert service.info("id-web").status is ContainerStatus.RUNNING
    inspected = service.inspect("web")
    assert inspected == doc
    assert inspected is not doc


def test_list_filters_on_the_managed_label_and_the_callers_labels() -> None:
    service, client = make_service()
    client.api.rows = [
        {
            "Id": "abc",
            "Names": ["/web"],
            "Image": "busybox:1.36",
            "State": "running",
            "Labels": {MANAGED_LABEL: "true", "team": "a"},
        },
        {"Id": "def", "Names": None, "Image": "busybox", "State": "weird", "Labels": None},
    ]
    rows = service.list(all=True, labels=["team=a", "tier"])
    assert client.api.containers_calls == [
        {"all": True, "filters": {"label": ["containerizer.managed=true", "team=a", "tier"]}}
    ]
    assert MANAGED_FILTER == "containerizer.managed=true"
    assert rows == [
        {
            "id": "abc",
            "name": "web",
            "image": "busybox:1.36",
            "status": "running",
            "labels": {MANAGED_LABEL: "true", "team": "a"},
        },
        {"id": "def", "name": "", "image": "busybox", "status": "dead", "labels": {}},
    ]


def test_list_without_labels_still_filters_on_managed() -> None:
    service, client = make_service()
    assert service.list(all=False, labels=[]) == []
    assert client.api.containers_calls == [
        {"all": False, "filters": {"label": ["containerizer.managed=true"]}}
    ]


def test_list_with_the_daemon_down_is_docker_unavailable() -> None:
    service, client = make_service()
    client.api.error = requests.exceptions.ConnectionError("refused")
    with pytest.raises(DockerUnavailable, match=r"^containers: "):
        service.list(all=False, labels=[])


def test_stats_is_one_shot() -> None:
    service, client = make_service()
    assert service.stats("abc") == {"id": "abc", "read": "2024-05-01T12:00:00Z"}
    assert client.api.stats_calls == [("abc", {"stream": False, "one_shot": True})]


@pytest.mark.parametrize(
    ("docker_host", "trusts_environment"),
    [
        ("unix:///var/run/docker.sock", False),
        ("tcp://127.0.0.1:2375", True),
    ],
)
def test_connect_reads_proxy_settings_only_for_a_daemon_over_the_network(
    monkeypatch: pytest.MonkeyPatch, docker_host: str, trusts_environment: bool
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    client = connect(Settings(docker_api_version="1.41"))  # A fixed version: no daemon asked.
    try:
        assert client.api.trust_env is trusts_environment
    finally:
        client.close()

"""Engine: docker-py's low-level calls and their translation, over a hand-written fake client."""

from __future__ import annotations

import io
import json
import struct
from typing import Any, cast

import docker.errors
import pytest
import requests

from config.settings import Settings
from workers.engine import STDERR, STDOUT, Engine
from workers.errors import Conflict, DockerUnavailable, ImageNotFound, InvalidSpec


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


class FakeResponse:
    def __init__(self, body: bytes) -> None:
        self.raw = io.BytesIO(body)

    def close(self) -> None:
        self.raw.close()


class FakeAPI:
    """The low-level calls the engine makes, recorded; ``error`` makes each raise."""

    _version = "1.41"

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.error: Exception | None = None
        self.body = b""

    def _record(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((method, args, kwargs))
        if self.error is not None:
            raise self.error

    def create_container(self, **kwargs: Any) -> dict[str, Any]:
        self._record("create_container", **kwargs)
        return {"Id": "c" * 64, "Warnings": []}

    def containers(self, **kwargs: Any) -> list[dict[str, Any]]:
        self._record("containers", **kwargs)
        return [{"Id": "abc"}]

    def stats(self, container_id: str, **kwargs: Any) -> dict[str, Any]:
        self._record("stats", container_id, **kwargs)
        return {"id": container_id}

    def kill(self, container_id: str, **kwargs: Any) -> None:
        self._record("kill", container_id, **kwargs)

    def inspect_image(self, name: str) -> dict[str, Any]:
        self._record("inspect_image", name)
        return {"Id": name}

    def _url(self, path: str, *args: str) -> str:
        return path.format(*args)

    def _get(self, url: str, **kwargs: Any) -> FakeResponse:
        self._record("_get", url, **kwargs)
        return FakeResponse(self.body)

    def _raise_for_status(self, response: Any) -> None:
        pass


def engine(**settings: Any) -> tuple[Engine, FakeAPI]:
    api = FakeAPI()
    return Engine(cast(Any, api), Settings(**settings)), api


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def test_create_converts_docker_py_keywords_and_returns_the_id_without_an_inspect() -> None:
    eng, api = engine()
    container_id = eng.create_container(
        {"image": "busybox", "name": "web", "mem_limit": 64 * 1024**2, "labels": {"a": "b"}},
        subject="container web",
    )
    assert container_id == "c" * 64
    ((method, _, kwargs),) = api.calls  # One call: no inspect afterwards.
    assert method == "create_container"
    assert kwargs["image"] == "busybox" and kwargs["name"] == "web"
    assert kwargs["host_config"]["Memory"] == 64 * 1024**2


def test_create_that_docker_py_refuses_is_invalid_spec_before_the_daemon() -> None:
    eng, api = engine()
    with pytest.raises(InvalidSpec, match="container web"):
        eng.create_container({"image": "busybox", "uts_mode": "nope"}, subject="container web")
    assert api.calls == []


def test_create_conflict_and_missing_image_are_translated() -> None:
    eng, api = engine()
    api.error = api_error(409, "Conflict. The container name is already in use")
    with pytest.raises(Conflict):
        eng.create_container({"image": "busybox"}, subject="container web")
    api.error = api_error(404, "No such image: busybox:1")
    with pytest.raises(ImageNotFound):
        eng.create_container({"image": "busybox:1"}, subject="container web")


def test_containers_filters_by_label_and_status() -> None:
    eng, api = engine()
    eng.containers(all=True, labels=["containerizer.managed=true", "team=a"], status="running")
    eng.containers(all=False)
    assert [kwargs for _, _, kwargs in api.calls] == [
        {
            "all": True,
            "filters": {"label": ["containerizer.managed=true", "team=a"], "status": "running"},
        },
        {"all": False, "filters": None},
    ]


def test_a_daemon_that_does_not_answer_is_docker_unavailable() -> None:
    eng, api = engine()
    api.error = requests.exceptions.ConnectionError("connection refused")
    with pytest.raises(DockerUnavailable, match=r"^containers: "):
        eng.containers(all=False)


def test_stats_is_one_shot() -> None:
    eng, api = engine()
    assert eng.stats("abc") == {"id": "abc"}
    assert api.calls == [("stats", ("abc",), {"stream": False, "one_shot": True})]


def test_kill_of_a_container_that_is_not_running_succeeds() -> None:
    eng, api = engine()
    api.error = api_error(409, "Container abc is not running")
    eng.kill("abc", "SIGTERM")  # The state a kill asks for.


def test_logs_keep_the_last_bytes_of_both_streams_interleaved() -> None:
    eng, api = engine()
    api.body = frame(STDOUT, b"one\n") + frame(STDERR, b"two\n") + frame(STDOUT, b"three\n")
    assert eng.logs("abc", tail=100, timestamps=False, max_bytes=1024) == "one\ntwo\nthree\n"
    assert eng.logs("abc", tail=100, timestamps=False, max_bytes=8) == "o\nthree\n"
    (_, (url,), kwargs) = api.calls[0]
    assert url == "/containers/abc/logs"
    assert kwargs["params"]["tail"] == 100 and kwargs["params"]["follow"] == 0


def test_follow_logs_yields_each_frame_with_its_stream() -> None:
    eng, api = engine()
    api.body = frame(STDOUT, b"out\n") + frame(STDERR, b"err\n") + b"\x01\x00"  # cut short
    frames = list(eng.follow_logs("abc"))
    assert [(f.stream, f.data) for f in frames] == [(STDOUT, b"out\n"), (STDERR, b"err\n")]
    (_, _, kwargs) = api.calls[0]
    assert kwargs["params"]["follow"] == 1
    assert kwargs["timeout"][1] is None  # A quiet container is not a timeout.


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
    connected = Engine.connect(Settings(docker_api_version="1.41"))  # No daemon asked.
    try:
        assert connected.api.trust_env is trusts_environment
    finally:
        connected.close()

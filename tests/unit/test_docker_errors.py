"""translate_error and registry_stream_error: docker-py and requests failures in our error tree."""

from __future__ import annotations

import json

import docker.errors
import pytest
import requests
import requests.exceptions

from workers.docker_errors import docker_errors, registry_stream_error, translate_error
from workers.errors import (
    Conflict,
    ContainerizerError,
    ContainerNotFound,
    DockerUnavailable,
    EngineError,
    ImageNotFound,
    InvalidSpec,
    PolicyViolation,
    PullTimeout,
    RegistryAuthError,
    RegistryUnavailable,
    ResourceNotFound,
    TransientError,
)

REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def response(status: int, message: str) -> requests.Response:
    """What the engine answers: a status and a JSON body ``{"message": ...}``."""
    resp = requests.Response()
    resp.status_code = status
    resp.reason = REASONS.get(status, "Error")
    resp.url = "http+docker://localhost/v1.45/containers/create"
    resp._content = json.dumps({"message": message}).encode()
    return resp


def engine_error(status: int, message: str) -> docker.errors.APIError:
    """The exception docker-py itself raises for that answer (NotFound/ImageNotFound for 404)."""
    http_error = requests.exceptions.HTTPError(
        f"{status} error", response=response(status, message)
    )
    with pytest.raises(docker.errors.APIError) as caught:
        docker.errors.create_api_error_from_http_exception(http_error)
    return caught.value


def test_docker_py_builds_the_expected_classes() -> None:
    assert type(engine_error(404, "No such container: web")) is docker.errors.NotFound
    assert type(engine_error(404, "No such image: busybox:9")) is docker.errors.ImageNotFound
    assert type(engine_error(409, "Conflict.")) is docker.errors.APIError


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectionError(
            "('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))"
        ),
        requests.exceptions.ReadTimeout(
            "UnixHTTPConnectionPool(host='localhost', port=None): Read timed out. (read timeout=60)"
        ),
        requests.exceptions.ConnectTimeout("connect timed out"),
        docker.errors.DockerException(
            "Error while fetching server API version: ('Connection aborted.', "
            "FileNotFoundError(2, 'No such file or directory'))"
        ),
    ],
)
def test_unreachable_daemon_is_docker_unavailable(exc: BaseException) -> None:
    error = translate_error(exc, subject="container web")
    assert type(error) is DockerUnavailable
    assert str(error).startswith("container web: Docker daemon unreachable")
    assert error.transient


def test_other_docker_exception_is_engine_error() -> None:
    error = translate_error(docker.errors.DockerException("something odd"), subject="docker")
    assert type(error) is EngineError
    assert str(error) == "docker: something odd"
    assert not error.transient


def test_unrelated_exception_is_engine_error_with_its_type() -> None:
    error = translate_error(ValueError("boom"), subject="container web")
    assert type(error) is EngineError
    assert str(error) == "container web: ValueError: boom"


def test_409_is_conflict() -> None:
    message = 'Conflict. The container name "/web" is already in use by container "abc".'
    error = translate_error(engine_error(409, message), subject="container web")
    assert type(error) is Conflict
    assert str(error) == f"container web: {message}"


def test_404_is_container_not_found_by_default() -> None:
    error = translate_error(engine_error(404, "No such container: web"), subject="container web")
    assert type(error) is ContainerNotFound
    assert str(error) == "container web: No such container: web"


def test_a_404_for_a_missing_network_is_resource_not_found_not_the_container() -> None:
    """A start whose network is gone: the container exists, its record must not be dropped."""
    message = "failed to set up container networking: network jobs-net not found"
    error = translate_error(engine_error(404, message), subject="container web")
    assert type(error) is ResourceNotFound
    assert "jobs-net" in str(error)


def test_404_is_image_not_found_when_asked() -> None:
    error = translate_error(
        engine_error(404, "manifest for registry.local/app:1 not found"),
        subject="image registry.local/app:1",
        not_found=ImageNotFound,
    )
    assert type(error) is ImageNotFound


def test_docker_image_not_found_is_image_not_found_whatever_the_default() -> None:
    exc = engine_error(404, "No such image: busybox:9")
    assert isinstance(exc, docker.errors.ImageNotFound)
    assert type(translate_error(exc, subject="container web")) is ImageNotFound


def test_pull_of_a_missing_hub_repository_is_image_not_found() -> None:
    exc = engine_error(
        404,
        "pull access denied for nope/nope, repository does not exist or may require "
        "'docker login': denied: requested access to the resource is denied",
    )
    error = translate_error(exc, subject="image nope/nope", not_found=ImageNotFound)
    assert type(error) is ImageNotFound


@pytest.mark.parametrize("status", [401, 403])
def test_auth_statuses_are_registry_auth_errors(status: int) -> None:
    error = translate_error(engine_error(status, "no way"), subject="image r/app", registry=True)
    assert type(error) is RegistryAuthError
    assert "registry refused the credentials" in str(error)


def test_auth_message_in_a_500_is_registry_auth_error() -> None:
    exc = engine_error(
        500, 'Head "http://127.0.0.1:5000/v2/app/manifests/1": no basic auth credentials'
    )
    assert type(translate_error(exc, subject="image app", registry=True)) is RegistryAuthError
    exc = engine_error(500, "unauthorized: authentication required")
    assert type(translate_error(exc, subject="image app", registry=True)) is RegistryAuthError


@pytest.mark.parametrize(
    "message",
    [
        'Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused',
        'Get "https://registry.invalid/v2/": dial tcp: lookup registry.invalid: no such host',
        'Get "https://r.example/v2/": net/http: TLS handshake timeout',
        'Get "https://r.example/v2/": dial tcp 10.0.0.1:443: i/o timeout',
    ],
)
def test_registry_down_in_a_500_is_registry_unavailable(message: str) -> None:
    error = translate_error(engine_error(500, message), subject="image r/app", registry=True)
    assert type(error) is RegistryUnavailable
    assert error.transient
    assert str(error).startswith("image r/app: registry unreachable: ")


def test_missing_image_in_a_500_is_image_not_found_only_for_images() -> None:
    message = "manifest for 127.0.0.1:5000/app:9 not found: manifest unknown"
    pulled = translate_error(engine_error(500, message), subject="image app", registry=True)
    assert type(pulled) is ImageNotFound
    inspected = translate_error(
        engine_error(500, message), subject="image app", not_found=ImageNotFound
    )
    assert type(inspected) is ImageNotFound
    assert type(translate_error(engine_error(500, message), subject="container web")) is (
        EngineError
    )


def test_400_is_invalid_spec() -> None:
    error = translate_error(engine_error(400, "invalid reference format"), subject="container web")
    assert type(error) is InvalidSpec
    assert str(error) == "container web: Docker rejected the request: invalid reference format"
    assert not error.transient


def test_other_500_is_engine_error() -> None:
    message = "failed to create shim task: OCI runtime create failed: exec: no such file"
    error = translate_error(engine_error(500, message), subject="container web")
    assert type(error) is EngineError
    assert str(error) == f"container web: Docker error 500: {message}"
    assert not error.transient


def test_port_conflict_500_naming_a_container_is_not_a_registry_outage() -> None:
    # The "eof" marker must not match inside words: "geoffrey" is a container name here and a port
    # clash is a permanent engine error, not a transient registry outage that would be retried.
    message = (
        "driver failed programming external connectivity on endpoint geoffrey (3f2a): "
        "Bind for 127.0.0.1:8080 failed: port is already allocated"
    )
    error = translate_error(engine_error(500, message), subject="container geoffrey")
    assert type(error) is EngineError
    assert not error.transient


def test_api_error_built_by_hand_without_explanation() -> None:
    resp = requests.Response()
    resp.status_code = 500
    resp.reason = "Internal Server Error"
    resp._content = b""
    error = translate_error(
        docker.errors.APIError("500 Server Error", response=resp), subject="container web"
    )
    assert type(error) is EngineError
    assert "Docker error 500" in str(error)


def test_api_error_with_explanation_keyword() -> None:
    resp = requests.Response()
    resp.status_code = 409
    resp._content = b""
    exc = docker.errors.APIError("409", response=resp, explanation=b"container is paused")
    error = translate_error(exc, subject="container web")
    assert type(error) is Conflict
    assert str(error) == "container web: container is paused"


@pytest.mark.parametrize(
    "error",
    [
        InvalidSpec("x"),
        PolicyViolation("x"),
        Conflict("x"),
        DockerUnavailable("x"),
        PullTimeout("x"),
    ],
)
def test_containerizer_errors_pass_through(error: ContainerizerError) -> None:
    assert translate_error(error, subject="container web") is error


def test_docker_errors_context_manager_translates_and_chains() -> None:
    original = engine_error(409, "in use")
    with pytest.raises(Conflict) as caught, docker_errors("container web"):
        raise original
    assert caught.value.__cause__ is original


def test_docker_errors_context_manager_not_found_choice() -> None:
    with pytest.raises(ImageNotFound), docker_errors("image x", not_found=ImageNotFound):
        raise engine_error(404, "manifest unknown")


def test_docker_errors_context_manager_leaves_ours_alone() -> None:
    mine = PolicyViolation("mine")
    with pytest.raises(PolicyViolation) as caught, docker_errors("container web"):
        raise mine
    assert caught.value is mine


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("unauthorized: authentication required", RegistryAuthError),
        (
            "denied: requested access to the resource is denied",
            RegistryAuthError,
        ),
        (
            'Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused',
            RegistryUnavailable,
        ),
        ('Get "https://r.example/v2/": EOF', RegistryUnavailable),
        ("manifest for app:9 not found: manifest unknown: manifest unknown", ImageNotFound),
        ("An image does not exist locally with the tag: app", ImageNotFound),
        ("unknown blob", EngineError),
        ("received unexpected HTTP status: 500 Internal Server Error", EngineError),
    ],
)
def test_registry_stream_error(message: str, expected: type[ContainerizerError]) -> None:
    error = registry_stream_error(message, subject="image app")
    assert type(error) is expected
    assert str(error).startswith("image app: ")
    assert message in str(error)


def test_transient_classes() -> None:
    for cls in (DockerUnavailable, RegistryUnavailable):
        assert issubclass(cls, TransientError)
        assert cls("x").transient
    for cls in (
        InvalidSpec,
        PolicyViolation,
        ContainerNotFound,
        ImageNotFound,
        Conflict,
        RegistryAuthError,
        PullTimeout,
        EngineError,
    ):
        assert not issubclass(cls, TransientError)
        assert issubclass(cls, ContainerizerError)
        assert not cls("x").transient


def test_errors_carry_one_message_and_recreate_from_args() -> None:
    error = Conflict("container web: in use")
    assert str(error) == error.message == "container web: in use"
    assert error.args == ("container web: in use",)
    assert type(error)(*error.args).message == error.message


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (403, "authorization denied by plugin opa: request rejected"),
        (500, "connection refused to containerd: dial unix /run/containerd/containerd.sock"),
        (500, "unexpected EOF"),
    ],
)
def test_registry_markers_apply_only_to_registry_operations(status: int, message: str) -> None:
    for subject in ("container web", "image web"):  # An image's name says nothing.
        error = translate_error(engine_error(status, message), subject=subject)
        assert type(error) is EngineError
        assert not error.transient


def test_docker_errors_leaves_bugs_of_our_own_alone() -> None:
    with pytest.raises(KeyError), docker_errors("container web"):
        raise KeyError("Id")

"""The one place that turns docker-py and ``requests`` errors into containerizer's error tree."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import docker.errors
import requests.exceptions
import urllib3.exceptions

from workers.errors import (
    Conflict,
    ContainerizerError,
    ContainerNotFound,
    DockerUnavailable,
    EngineError,
    ImageNotFound,
    InvalidSpec,
    RegistryAuthError,
    RegistryUnavailable,
    ResourceNotFound,
)

_AUTH_MARKERS = (
    "unauthorized",
    "authentication required",
    "no basic auth credentials",
    "incorrect username or password",
    "denied: requested access",
    "access denied",
)
_REGISTRY_DOWN_MARKERS = (
    "connection refused",
    "no such host",
    "i/o timeout",
    "tls handshake timeout",
    "network is unreachable",
    "server misbehaving",
    "connection reset by peer",
    "timeout exceeded while awaiting headers",
)
# "EOF" only as a word: container names like "geoffrey" must not look like a network failure.
_EOF_RE = re.compile(r"\beof\b")
# Docker refuses to remove a network in use with a 403, not a 409.
_IN_USE_MARKERS = ("has active endpoints",)
_MISSING_IMAGE_MARKERS = ("manifest unknown", "not found", "does not exist", "no such image")


# dockerd 20.10+: "network <name> not found" (libnetwork's ErrNoSuchNetwork).
_NETWORK_MISSING_RE = re.compile(r"\bnetwork \S+ not found", re.IGNORECASE)


def translate_error(
    exc: BaseException,
    *,
    subject: str,
    not_found: type[ContainerizerError] = ContainerNotFound,
    registry: bool = False,
) -> ContainerizerError:
    """Return the containerizer error that ``exc`` means.

    ``subject`` names what the operation was about (``container web-1``, ``image busybox``) and
    starts the message; ``not_found`` is the error a plain 404 becomes. ``registry`` says that the
    operation reaches an image registry (pull, push): only then are authorization failures and
    unreachable peers the registry's. Elsewhere a 403 is an authorization plugin of the daemon,
    and "connection refused" is about containerd or a peer.
    """
    if isinstance(exc, ContainerizerError):
        return exc
    if isinstance(exc, docker.errors.ImageNotFound):
        return ImageNotFound(f"{subject}: {_explanation(exc)}")
    if isinstance(exc, docker.errors.NotFound):
        explanation = _explanation(exc)
        if not_found is ContainerNotFound and _NETWORK_MISSING_RE.search(explanation):
            # A start (or create) whose network is gone: the container is there, the network
            # is not; a ContainerNotFound would have the record marked removed.
            return ResourceNotFound(f"{subject}: {explanation}")
        return not_found(f"{subject}: {explanation}")
    if isinstance(exc, docker.errors.APIError):
        return _translate_api_error(exc, subject=subject, not_found=not_found, registry=registry)
    if isinstance(
        exc,
        requests.exceptions.ConnectionError
        | requests.exceptions.Timeout
        | requests.exceptions.ChunkedEncodingError
        | urllib3.exceptions.ProtocolError
        | ConnectionError,
    ):
        return DockerUnavailable(f"{subject}: Docker daemon unreachable: {_short(exc)}")
    if isinstance(exc, docker.errors.DockerException):
        # docker-py raises a bare DockerException when it cannot reach the daemon to ask for its
        # API version (the usual first symptom of a stopped daemon).
        text = str(exc)
        if "Error while fetching server API version" in text or "Connection" in text:
            return DockerUnavailable(f"{subject}: Docker daemon unreachable: {_short(exc)}")
        return EngineError(f"{subject}: {text}")
    return EngineError(f"{subject}: {type(exc).__name__}: {exc}")


def _translate_api_error(
    exc: docker.errors.APIError,
    *,
    subject: str,
    not_found: type[ContainerizerError],
    registry: bool,
) -> ContainerizerError:
    status = exc.status_code
    explanation = _explanation(exc)
    lowered = explanation.lower()
    if status == 409 or any(marker in lowered for marker in _IN_USE_MARKERS):
        return Conflict(f"{subject}: {explanation}")
    if registry and (status in (401, 403) or any(marker in lowered for marker in _AUTH_MARKERS)):
        return RegistryAuthError(f"{subject}: registry refused the credentials: {explanation}")
    if status == 404:
        if any(marker in lowered for marker in ("manifest unknown", "pull access denied")):
            return ImageNotFound(f"{subject}: {explanation}")
        return not_found(f"{subject}: {explanation}")
    if status == 400:
        return InvalidSpec(f"{subject}: Docker rejected the request: {explanation}")
    if status is not None and status >= 500:
        if registry and _registry_down(lowered):
            return RegistryUnavailable(f"{subject}: registry unreachable: {explanation}")
        about_images = registry or not_found is ImageNotFound
        if about_images and any(marker in lowered for marker in _MISSING_IMAGE_MARKERS):
            return ImageNotFound(f"{subject}: {explanation}")
    return EngineError(f"{subject}: Docker error {status}: {explanation}")


def registry_stream_error(message: str, *, subject: str) -> ContainerizerError:
    """Translate an error reported inside a pull or push progress stream."""
    lowered = message.lower()
    if any(marker in lowered for marker in _AUTH_MARKERS):
        return RegistryAuthError(f"{subject}: registry refused the credentials: {message}")
    if _registry_down(lowered):
        return RegistryUnavailable(f"{subject}: registry unreachable: {message}")
    if any(marker in lowered for marker in _MISSING_IMAGE_MARKERS):
        return ImageNotFound(f"{subject}: {message}")
    return EngineError(f"{subject}: {message}")


# What docker-py, requests and urllib3 raise. Anything else escaping a docker-py call (a KeyError
# in our own code, say) is a bug, not the engine's failure, and is left alone.
ENGINE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    docker.errors.DockerException,
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
    ConnectionError,
)


@contextmanager
def docker_errors(
    subject: str,
    *,
    not_found: type[ContainerizerError] = ContainerNotFound,
    registry: bool = False,
) -> Iterator[None]:
    """Run a block of docker-py calls, re-raising their failures as containerizer errors."""
    try:
        yield
    except ENGINE_EXCEPTIONS as exc:
        raise translate_error(exc, subject=subject, not_found=not_found, registry=registry) from exc


def _registry_down(lowered: str) -> bool:
    return any(marker in lowered for marker in _REGISTRY_DOWN_MARKERS) or bool(
        _EOF_RE.search(lowered)
    )


def _explanation(exc: docker.errors.DockerException) -> str:
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return str(explanation or exc).strip()


def _short(exc: BaseException) -> str:
    """The last line of a chained connection error is the informative one."""
    text = str(exc)
    return text.rsplit(":", 1)[-1].strip(" )'\"") or type(exc).__name__

"""The error tree of containerizer.

The class names are part of the public contract (DESIGN.md): a caller that only has Celery installed
sees them as the exception type of a failed task, so they never change. Every exception carries a
single human-readable message, which keeps it JSON-serializable and re-creatable by Celery.
"""

from __future__ import annotations


class ContainerizerError(Exception):
    """Raised when any containerizer operation fails; the base of every error below."""

    #: Whether a task that raised this error is retried with backoff.
    transient: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidSpec(ContainerizerError):
    """Raised when a job's JSON input is malformed: bad types, unknown fields, bad references."""


class PolicyViolation(ContainerizerError):
    """Raised when a job asks for what the operator's policy does not allow (privileged, ...)."""


class ContainerNotFound(ContainerizerError):
    """Raised when no container managed by containerizer has the given id or name."""


class ImageNotFound(ContainerizerError):
    """Raised when an image is neither present on the Docker host nor in its registry."""


class ResourceNotFound(ContainerizerError):
    """Raised when a volume or network a request names does not exist."""


class Conflict(ContainerizerError):
    """Raised when the engine refuses an operation that clashes with existing state."""


class RegistryAuthError(ContainerizerError):
    """Raised when a registry refuses the credentials given (or their absence)."""


class PullTimeout(ContainerizerError):
    """Raised when a pull stalls or exceeds its time budget."""


class ConfigurationError(ContainerizerError):
    """Raised when the deployment's configuration keeps it from working safely (see message)."""


class TimeLimitExceeded(ContainerizerError):
    """Raised when a task runs past its time limit (the work it did may stand; see the message)."""


class EngineError(ContainerizerError):
    """Raised when the Docker engine fails a request for a reason no other error names."""


class TransientError(ContainerizerError):
    """Raised when a dependency is temporarily unreachable; tasks retry these with backoff."""

    transient = True


class DockerUnavailable(TransientError):
    """Raised when the Docker daemon cannot be reached or does not answer in time."""


class RegistryUnavailable(TransientError):
    """Raised when an image registry cannot be reached."""


class StateUnavailable(TransientError):
    """Raised when the Redis holding containerizer's state cannot be reached in time."""


class HostUnavailable(TransientError):
    """Raised when a task names a Docker host that has not been heard from (not alive)."""


__all__ = [
    "ConfigurationError",
    "Conflict",
    "ContainerNotFound",
    "ContainerizerError",
    "DockerUnavailable",
    "EngineError",
    "HostUnavailable",
    "ImageNotFound",
    "InvalidSpec",
    "PolicyViolation",
    "PullTimeout",
    "RegistryAuthError",
    "RegistryUnavailable",
    "ResourceNotFound",
    "StateUnavailable",
    "TimeLimitExceeded",
    "TransientError",
]

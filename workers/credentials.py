"""Registry credentials: per registry host, from configuration or from one job's ``auth``; and the
redaction of every secret a task carries.

Credentials are chosen by the registry a reference names, never one default for every image. They
never appear in logs, results, Redis state or error messages: :class:`RegistryCredentials` hides
its password from ``repr``, and :class:`Redactor` scrubs task arguments and results before Celery
shows or stores them: registry credentials, and the values of environment variables whose names
look secret (``*PASSWORD*``, ``*SECRET*``, ``*TOKEN*``, ``*KEY*``), which still reach the container.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.settings import Settings
from workers.errors import InvalidSpec
from workers.reference import DEFAULT_DOMAIN

REDACTED = "**redacted**"
SECRET_KEYS = frozenset({"auth", "password", "identitytoken", "registrytoken", "auth_config"})
#: Environment variables whose values are secret, by name (shell patterns, any case).
SECRET_ENV_PATTERNS = ("*PASSWORD*", "*SECRET*", "*TOKEN*", "*KEY*")
#: Where environments are: a spec's ``environment`` ({name: value} or ["NAME=value"]), the
#: engine's inspect document's ``Env`` (["NAME=value"]).
_ENVIRONMENT_KEYS = frozenset({"environment", "Env"})
_DOCKER_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)


@dataclass(frozen=True, slots=True)
class RegistryCredentials:
    """A username and password for one registry."""

    username: str
    password: str = field(repr=False)

    def auth_config(self) -> dict[str, str]:
        """docker-py's ``auth_config``."""
        return {"username": self.username, "password": self.password}


def registry_key(address: str) -> str:
    """The host[:port] an address names: ``https://index.docker.io/v1/`` -> ``docker.io``."""
    host = address.strip().lower()
    host = host.split("://", 1)[-1].split("/", 1)[0]
    return DEFAULT_DOMAIN if host in _DOCKER_HUB_ALIASES else host


class CredentialStore:
    """Credentials by registry host."""

    def __init__(self, entries: Mapping[str, RegistryCredentials] | None = None) -> None:
        self._entries = {registry_key(host): creds for host, creds in (entries or {}).items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> CredentialStore:
        """Read ``registry_auth_file`` (config.json style), then ``registry_auth`` (JSON) over it.

        Raises:
            ValueError: when either is malformed (the message names no secret).
        """
        entries: dict[str, RegistryCredentials] = {}
        if settings.registry_auth_file is not None:
            document = json.loads(Path(settings.registry_auth_file).read_text())
            if isinstance(document, Mapping):
                document = document.get("auths", document)
            entries.update(_entries(document, "registry_auth_file"))
        if settings.registry_auth is not None:
            document = json.loads(settings.registry_auth.get_secret_value())
            entries.update(_entries(document, "CONTAINERIZER_REGISTRY_AUTH"))
        return cls(entries)

    def for_registry(self, registry: str) -> RegistryCredentials | None:
        """The configured credentials of ``registry``, if any."""
        return self._entries.get(registry_key(registry))

    def registries(self) -> list[str]:
        """The registries with credentials (for logs: never the credentials)."""
        return sorted(self._entries)


def _entries(document: Any, source: str) -> dict[str, RegistryCredentials]:
    if not isinstance(document, Mapping):
        raise ValueError(f"{source}: expected an object of registries")
    entries = {}
    for host, value in document.items():
        if not isinstance(value, Mapping):
            raise ValueError(f"{source}: entry for {host!r} must be an object")
        if "auth" in value:
            try:
                username, _, password = base64.b64decode(value["auth"]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError, TypeError):
                raise ValueError(
                    f"{source}: 'auth' of {host!r} is not base64 user:password"
                ) from None
        else:
            username, password = value.get("username", ""), value.get("password", "")
        if not username or not password:
            raise ValueError(f"{source}: entry for {host!r} needs a username and a password")
        entries[str(host)] = RegistryCredentials(str(username), str(password))
    return entries


def parse_auth(value: object) -> RegistryCredentials | None:
    """A job's ``auth`` argument: null, or ``{"username": ..., "password": ...}``.

    Raises:
        InvalidSpec: naming what is wrong, never the values.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidSpec("auth: expected null or an object with username and password")
    unknown = set(value) - {"username", "password", "serveraddress", "email"}
    if unknown:
        raise InvalidSpec(f"auth: unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    username, password = value.get("username"), value.get("password")
    if not isinstance(username, str) or not username:
        raise InvalidSpec("auth.username: expected a non-empty string")
    if not isinstance(password, str) or not password:
        raise InvalidSpec("auth.password: expected a non-empty string")
    return RegistryCredentials(username, password)


class Redactor:
    """Replaces secrets in JSON-like values: registry credentials (by key) and the values of
    environment variables whose names match ``secret_env`` (shell patterns, any case)."""

    def __init__(self, secret_env: Iterable[str] = SECRET_ENV_PATTERNS) -> None:
        self.secret_env = tuple(pattern.upper() for pattern in secret_env)

    def secret_name(self, name: str) -> bool:
        """Whether an environment variable of this name holds a secret."""
        upper = name.upper()
        return any(fnmatch.fnmatchcase(upper, pattern) for pattern in self.secret_env)

    def __call__(self, value: Any) -> Any:
        """A copy of ``value`` with every secret replaced (recursively; arguments are bounded in
        depth before anything redacts them, see workers/limits.py)."""
        if isinstance(value, Mapping):
            return {key: self._item(str(key), item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self(item) for item in value)
        return value

    def _item(self, key: str, item: Any) -> Any:
        if key.lower() in SECRET_KEYS and item is not None:
            return REDACTED
        if key in _ENVIRONMENT_KEYS:
            return self.environment(item)
        return self(item)

    def environment(self, value: Any) -> Any:
        """An environment with its secret values replaced; anything else redacted as usual."""
        if isinstance(value, Mapping):
            return {
                name: REDACTED if self.secret_name(str(name)) else self(item)
                for name, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._variable(item) for item in value]
        return self(value)

    def _variable(self, item: Any) -> Any:
        if isinstance(item, str) and "=" in item:
            name = item.split("=", 1)[0]
            if self.secret_name(name):
                return f"{name}={REDACTED}"
        return self(item)


#: The redactor with the default patterns.
redact = Redactor()

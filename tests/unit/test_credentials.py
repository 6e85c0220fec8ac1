"""Registry credentials: per registry host, never shown in reprs, errors or stored arguments."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from workers.credentials import (
    REDACTED,
    CredentialStore,
    RegistryCredentials,
    parse_auth,
    redact,
    registry_key,
)
from workers.errors import InvalidSpec

SECRET = "s3cr3t-Pa55"


def basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def auth_file(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


# --- registry_key -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("localhost:5001", "localhost:5001"),
        ("127.0.0.1:5001", "127.0.0.1:5001"),
        ("http://127.0.0.1:5001", "127.0.0.1:5001"),
        ("https://registry.example.com/v2/", "registry.example.com"),
        ("https://registry.example.com:8443/v1/some/path", "registry.example.com:8443"),
        ("Registry.Example.COM:5000", "registry.example.com:5000"),
        ("  ghcr.io  ", "ghcr.io"),
        ("docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("registry.hub.docker.com", "docker.io"),
        ("HTTPS://Index.Docker.IO/v1/", "docker.io"),
    ],
)
def test_registry_key(address: str, key: str) -> None:
    assert registry_key(address) == key


def test_registry_key_keeps_other_docker_looking_hosts_apart() -> None:
    assert registry_key("mirror.docker.io.example.com") == "mirror.docker.io.example.com"
    assert registry_key("docker.io:5000") == "docker.io:5000"


# --- CredentialStore ------------------------------------------------------------------------------


def test_no_configuration_means_no_credentials() -> None:
    store = CredentialStore.from_settings(Settings())

    assert store.registries() == []
    assert store.for_registry("docker.io") is None


def test_a_config_json_file_with_base64_auth_and_plain_entries(tmp_path: Path) -> None:
    path = auth_file(
        tmp_path,
        {
            "auths": {
                "127.0.0.1:5001": {"auth": basic("alice", "pw:with:colons")},
                "https://index.docker.io/v1/": {"auth": basic("hubuser", "hubpass")},
                "localhost:5002": {"username": "bob", "password": "bobpass"},
            },
            "credsStore": "ignored",
        },
    )

    store = CredentialStore.from_settings(Settings(registry_auth_file=path))

    assert store.registries() == ["127.0.0.1:5001", "docker.io", "localhost:5002"]
    assert store.for_registry("127.0.0.1:5001") == RegistryCredentials("alice", "pw:with:colons")
    assert store.for_registry("docker.io") == RegistryCredentials("hubuser", "hubpass")
    assert store.for_registry("index.docker.io") == RegistryCredentials("hubuser", "hubpass")
    assert store.for_registry("LOCALHOST:5002") == RegistryCredentials("bob", "bobpass")
    assert store.for_registry("localhost:5001") is None


def test_a_file_without_an_auths_object_is_read_as_the_registries_themselves(
    tmp_path: Path,
) -> None:
    path = auth_file(tmp_path, {"localhost:5001": {"username": "u", "password": "p"}})

    store = CredentialStore.from_settings(Settings(registry_auth_file=path))

    assert store.for_registry("localhost:5001") == RegistryCredentials("u", "p")


def test_registry_auth_json_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CONTAINERIZER_REGISTRY_AUTH",
        json.dumps(
            {
                "127.0.0.1:5001": {"username": "one", "password": "pw-one"},
                "localhost:5001": {"auth": basic("two", "pw-two")},
            }
        ),
    )

    store = CredentialStore.from_settings(Settings())

    assert store.for_registry("127.0.0.1:5001") == RegistryCredentials("one", "pw-one")
    assert store.for_registry("localhost:5001") == RegistryCredentials("two", "pw-two")


def test_credentials_are_chosen_per_registry_never_one_default() -> None:
    settings = Settings(
        registry_auth=json.dumps(
            {
                "127.0.0.1:5001": {"username": "loopback", "password": "a"},
                "localhost:5001": {"username": "localhost", "password": "b"},
            }
        )
    )

    store = CredentialStore.from_settings(settings)

    first, second = store.for_registry("127.0.0.1:5001"), store.for_registry("localhost:5001")
    assert first is not None
    assert second is not None
    assert first.username == "loopback"
    assert second.username == "localhost"
    assert store.for_registry("127.0.0.1:5002") is None
    assert store.for_registry("docker.io") is None


def test_the_environment_overrides_the_file_for_the_same_host(tmp_path: Path) -> None:
    path = auth_file(
        tmp_path,
        {
            "auths": {
                "localhost:5001": {"auth": basic("file-user", "file-pw")},
                "https://index.docker.io/v1/": {"auth": basic("file-hub", "file-hub-pw")},
                "127.0.0.1:5001": {"auth": basic("file-only", "file-only-pw")},
            }
        },
    )
    settings = Settings(
        registry_auth_file=path,
        registry_auth=json.dumps(
            {
                "localhost:5001": {"username": "env-user", "password": "env-pw"},
                # Another spelling of the same registry still overrides.
                "docker.io": {"username": "env-hub", "password": "env-hub-pw"},
            }
        ),
    )

    store = CredentialStore.from_settings(settings)

    assert store.for_registry("localhost:5001") == RegistryCredentials("env-user", "env-pw")
    assert store.for_registry("docker.io") == RegistryCredentials("env-hub", "env-hub-pw")
    assert store.for_registry("127.0.0.1:5001") == RegistryCredentials("file-only", "file-only-pw")


def test_a_store_built_directly_normalizes_its_hosts() -> None:
    store = CredentialStore({"HTTPS://Registry-1.Docker.IO/v2/": RegistryCredentials("u", "p")})

    assert store.registries() == ["docker.io"]
    assert store.for_registry("https://index.docker.io/v1/") == RegistryCredentials("u", "p")


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(f'{{"localhost:5001": {{"username": "u", "password": "{SECRET}"', id="json"),
        pytest.param(json.dumps([{"username": "u", "password": SECRET}]), id="not-an-object"),
        pytest.param(json.dumps({"localhost:5001": f"u:{SECRET}"}), id="entry-not-an-object"),
        pytest.param(json.dumps({"localhost:5001": {"password": SECRET}}), id="no-username"),
        pytest.param(json.dumps({"localhost:5001": {"username": "u"}}), id="no-password"),
        pytest.param(
            json.dumps({"localhost:5001": {"username": "", "password": SECRET}}), id="empty-user"
        ),
        pytest.param(json.dumps({"localhost:5001": {"auth": basic("u", "")}}), id="auth-no-pw"),
        pytest.param(
            json.dumps({"localhost:5001": {"auth": base64.b64encode(SECRET.encode()).decode()}}),
            id="auth-no-colon",
        ),
        pytest.param(json.dumps({"localhost:5001": {"auth": f"{SECRET}!"}}), id="auth-not-b64"),
        pytest.param(json.dumps({"localhost:5001": {"auth": 12345}}), id="auth-not-a-string"),
        pytest.param(
            json.dumps({"localhost:5001": {"auth": f"ü{SECRET}"}}, ensure_ascii=False),
            id="auth-not-ascii",
        ),
        pytest.param(
            json.dumps(
                {
                    "localhost:5001": {
                        "auth": base64.b64encode(b"\xff\xfe:" + SECRET.encode()).decode()
                    }
                }
            ),
            id="auth-not-utf8",
        ),
    ],
)
def test_malformed_registry_auth_raises_value_error_naming_no_secret(document: str) -> None:
    with pytest.raises(ValueError, match=r"CONTAINERIZER_REGISTRY_AUTH|line|char") as caught:
        CredentialStore.from_settings(Settings(registry_auth=document))

    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(f'{{"auths": {{"localhost:5001": {{"auth": "{SECRET}"', id="json"),
        pytest.param({"auths": [f"u:{SECRET}"]}, id="auths-not-an-object"),
        pytest.param({"auths": {"localhost:5001": {"username": "u"}}}, id="no-password"),
        pytest.param({"auths": {"localhost:5001": {"auth": basic("", SECRET)}}}, id="no-user"),
        pytest.param([{"username": "u", "password": SECRET}], id="top-level-not-an-object"),
    ],
)
def test_a_malformed_auth_file_raises_value_error_naming_no_secret(
    tmp_path: Path, document: Any
) -> None:
    path = auth_file(tmp_path, document)

    with pytest.raises(ValueError) as caught:
        CredentialStore.from_settings(Settings(registry_auth_file=path))

    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


def test_a_malformed_file_entry_names_its_source_and_host(tmp_path: Path) -> None:
    path = auth_file(tmp_path, {"auths": {"localhost:5001": {"username": "u"}}})

    with pytest.raises(ValueError, match=r"registry_auth_file: entry for 'localhost:5001'"):
        CredentialStore.from_settings(Settings(registry_auth_file=path))


# --- RegistryCredentials --------------------------------------------------------------------------


def test_registry_credentials_hide_the_password_from_repr_and_str() -> None:
    credentials = RegistryCredentials("alice", SECRET)

    for text in (repr(credentials), str(credentials), f"{credentials}", f"{credentials!r}"):
        assert SECRET not in text
        assert "alice" in text
    assert SECRET not in repr([credentials, {"auth": credentials}])


def test_registry_credentials_give_docker_py_its_auth_config() -> None:
    assert RegistryCredentials("alice", SECRET).auth_config() == {
        "username": "alice",
        "password": SECRET,
    }


# --- parse_auth -----------------------------------------------------------------------------------


def test_parse_auth_of_none_is_none() -> None:
    assert parse_auth(None) is None


def test_parse_auth_of_a_valid_object() -> None:
    assert parse_auth({"username": "alice", "password": SECRET}) == RegistryCredentials(
        "alice", SECRET
    )


def test_parse_auth_accepts_docker_s_optional_fields() -> None:
    value = {"username": "a", "password": SECRET, "serveraddress": "localhost:5001", "email": ""}

    assert parse_auth(value) == RegistryCredentials("a", SECRET)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"password": SECRET}, "auth.username"),
        ({"username": "", "password": SECRET}, "auth.username"),
        ({"username": None, "password": SECRET}, "auth.username"),
        ({"username": 42, "password": SECRET}, "auth.username"),
        ({"username": "alice"}, "auth.password"),
        ({"username": "alice", "password": ""}, "auth.password"),
        ({"username": "alice", "password": None}, "auth.password"),
        ({"username": "alice", "password": [SECRET]}, "auth.password"),
        ({"username": "alice", "password": {"value": SECRET}}, "auth.password"),
        ({"username": "alice", "password": SECRET, "token": SECRET}, "unknown field.*token"),
        ({"username": "alice", "password": SECRET, "auth": SECRET}, "unknown field.*auth"),
        (f"alice:{SECRET}", "expected null or an object"),
        ([{"username": "alice", "password": SECRET}], "expected null or an object"),
        (0, "expected null or an object"),
    ],
)
def test_parse_auth_refuses_bad_values_without_showing_them(value: object, message: str) -> None:
    with pytest.raises(InvalidSpec, match=message) as caught:
        parse_auth(value)

    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    assert all(SECRET not in str(arg) for arg in caught.value.args)


# --- redact ---------------------------------------------------------------------------------------


def test_redact_replaces_secret_keys_whatever_their_case() -> None:
    value = {
        "auth": {"username": "alice", "password": SECRET},
        "Password": SECRET,
        "IDENTITYTOKEN": SECRET,
        "IdentityToken": SECRET,
        "RegistryToken": SECRET,
        "auth_config": {"username": "alice", "password": SECRET},
    }

    assert redact(value) == {
        "auth": REDACTED,
        "Password": REDACTED,
        "IDENTITYTOKEN": REDACTED,
        "IdentityToken": REDACTED,
        "RegistryToken": REDACTED,
        "auth_config": REDACTED,
    }


def test_redact_recurses_into_dicts_lists_and_tuples() -> None:
    value = {
        "reference": "127.0.0.1:5001/app:1",
        "jobs": [
            {"spec": {"image": "busybox", "env": ["A=1"]}, "auth": {"password": SECRET}},
            ({"password": SECRET, "username": "bob"}, "plain", 3),
        ],
        "nested": {"deeper": {"AUTH": SECRET, "keep": [1, 2.5, True, None]}},
    }

    redacted = redact(value)

    assert redacted == {
        "reference": "127.0.0.1:5001/app:1",
        "jobs": [
            {"spec": {"image": "busybox", "env": ["A=1"]}, "auth": REDACTED},
            ({"password": REDACTED, "username": "bob"}, "plain", 3),
        ],
        "nested": {"deeper": {"AUTH": REDACTED, "keep": [1, 2.5, True, None]}},
    }
    assert isinstance(redacted["jobs"], list)
    assert isinstance(redacted["jobs"][1], tuple)
    assert SECRET not in repr(redacted)


def test_redact_leaves_a_none_secret_alone() -> None:
    assert redact({"auth": None, "password": None}) == {"auth": None, "password": None}


def test_redact_leaves_non_secret_keys_and_scalars_untouched() -> None:
    value = {
        "username": "alice",
        "author": "x",
        "passwords_file": "/etc/p",
        "reference": "busybox",
        "count": 3,
    }

    assert redact(value) == value
    assert redact("password") == "password"
    assert redact(None) is None
    assert redact(7) == 7
    assert redact([SECRET]) == [SECRET]  # A bare value has no name to say it is secret.


def test_redact_does_not_mutate_its_input() -> None:
    value: dict[str, Any] = {
        "auth": {"username": "alice", "password": SECRET},
        "items": [{"password": SECRET}],
        "pair": ({"auth": SECRET},),
    }
    before = copy.deepcopy(value)

    redacted = redact(value)

    assert value == before
    assert redacted is not value
    assert redacted["items"] is not value["items"]
    assert redacted["items"][0] is not value["items"][0]

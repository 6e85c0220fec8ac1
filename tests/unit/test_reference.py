"""Image references by the grammar of distribution/reference."""

from __future__ import annotations

import pytest

from workers.errors import InvalidSpec
from workers.reference import ImageReference, parse_reference

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "registry", "name", "familiar", "canonical", "pull_tag"),
    [
        (
            "busybox",
            "docker.io",
            "busybox",
            "busybox:latest",
            "docker.io/library/busybox:latest",
            "latest",
        ),
        (
            "busybox:1.36",
            "docker.io",
            "busybox",
            "busybox:1.36",
            "docker.io/library/busybox:1.36",
            "1.36",
        ),
        (
            "library/busybox",
            "docker.io",
            "busybox",
            "busybox:latest",
            "docker.io/library/busybox:latest",
            "latest",
        ),
        (
            "docker.io/busybox",
            "docker.io",
            "busybox",
            "busybox:latest",
            "docker.io/library/busybox:latest",
            "latest",
        ),
        (
            "team/app:v2",
            "docker.io",
            "team/app",
            "team/app:v2",
            "docker.io/team/app:v2",
            "v2",
        ),
        (
            "127.0.0.1:5000/a/b:tag",
            "127.0.0.1:5000",
            "127.0.0.1:5000/a/b",
            "127.0.0.1:5000/a/b:tag",
            "127.0.0.1:5000/a/b:tag",
            "tag",
        ),
        (
            "localhost/x",
            "localhost",
            "localhost/x",
            "localhost/x:latest",
            "localhost/x:latest",
            "latest",
        ),
        (
            "localhost:5000/x",
            "localhost:5000",
            "localhost:5000/x",
            "localhost:5000/x:latest",
            "localhost:5000/x:latest",
            "latest",
        ),
        (
            f"registry.example.com:443/team/app@{DIGEST}",
            "registry.example.com:443",
            "registry.example.com:443/team/app",
            f"registry.example.com:443/team/app@{DIGEST}",
            f"registry.example.com:443/team/app@{DIGEST}",
            DIGEST,
        ),
        (
            f"name:tag@{DIGEST}",
            "docker.io",
            "name",
            f"name:tag@{DIGEST}",
            f"docker.io/library/name:tag@{DIGEST}",
            DIGEST,
        ),
        (
            "[::1]:5000/app:1",
            "[::1]:5000",
            "[::1]:5000/app",
            "[::1]:5000/app:1",
            "[::1]:5000/app:1",
            "1",
        ),
        (
            "a__b/c-d--e/f.g_h:Tag_1.0-rc",
            "docker.io",
            "a__b/c-d--e/f.g_h",
            "a__b/c-d--e/f.g_h:Tag_1.0-rc",
            "docker.io/a__b/c-d--e/f.g_h:Tag_1.0-rc",
            "Tag_1.0-rc",
        ),
    ],
)
def test_valid_references(
    text: str, registry: str, name: str, familiar: str, canonical: str, pull_tag: str
) -> None:
    ref = parse_reference(text)
    assert ref.registry == registry
    assert ref.name == name
    assert ref.familiar == familiar
    assert ref.canonical == canonical
    assert ref.pull_tag == pull_tag
    assert str(ref) == familiar


def test_parts_of_a_full_reference() -> None:
    ref = parse_reference(f"registry.example.com:443/team/app:1.0@{DIGEST}")
    assert ref == ImageReference(
        domain="registry.example.com:443", path="team/app", tag="1.0", digest=DIGEST
    )
    assert ref.repository == "registry.example.com:443/team/app"


def test_docker_hub_user_repo_is_not_a_library_image() -> None:
    ref = parse_reference("library/busybox/extra")
    assert ref.path == "library/busybox/extra"
    assert ref.name == "library/busybox/extra"


def test_uppercase_first_component_is_a_registry_host() -> None:
    # splitDockerDomain: a first component with uppercase letters is a host, so "Case" is the path.
    ref = parse_reference("Registry/app")
    assert ref.registry == "Registry"
    assert ref.path == "app"


def test_tag_of_128_characters_is_accepted() -> None:
    assert parse_reference("busybox:" + "t" * 128).tag == "t" * 128


@pytest.mark.parametrize(
    "text",
    [
        "UPPER/Case",
        "Busybox",
        "busybox:" + "t" * 129,
        "",
        "a//b",
        "a/",
        "/a",
        "-a",
        "a-",
        "a/-b",
        "a___b",
        "a..b",
        "busybox:",
        "busybox:.tag",
        "busybox:-tag",
        "busybox:ta g",
        "busybox@",
        "busybox@sha256",
        "busybox@sha256:",
        "busybox@sha256:xyz",
        "busybox@sha256:" + "0" * 31,
        "busybox@sha256:" + "g" * 64,
        "busybox@:" + "0" * 64,
        "busybox@256:" + "0" * 64,
        "busybox:1@sha256:" + "0" * 31,
        ":tag",
        "@" + DIGEST,
        "bad_host:5000:x/app",
        "host:port/app",
        "-host.com/app",
        "a/" + "b" * 254,
        "busy box",
    ],
)
def test_invalid_references(text: str) -> None:
    with pytest.raises(InvalidSpec, match=r"^image: "):
        parse_reference(text)


@pytest.mark.parametrize("value", [None, 1, b"busybox", ["busybox"]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidSpec, match="non-empty string"):
        parse_reference(value)


def test_field_name_prefixes_the_message() -> None:
    with pytest.raises(InvalidSpec, match=r"^target: "):
        parse_reference("UPPER/Case", field="target")


@pytest.mark.parametrize("text", ["busybox\n", "busybox:1.36\n", "127.0.0.1:5000/a\n"])
def test_trailing_newline_is_refused(text: str) -> None:
    # Docker anchors its expressions at the end of the text; Python's `$` also matches before a
    # final newline, which must not let "busybox\n" through to the engine.
    with pytest.raises(InvalidSpec):
        parse_reference(text)


def test_tag_is_ascii_only() -> None:
    # distribution/reference's tag is [\w][\w.-]{0,127} in Go's RE2, where \w is [0-9A-Za-z_].
    with pytest.raises(InvalidSpec):
        parse_reference("busybox:é")


def test_legacy_docker_hub_domain_is_normalized() -> None:
    # splitDockerDomain maps index.docker.io to docker.io (and so adds library/).
    ref = parse_reference("index.docker.io/busybox")
    assert ref.registry == "docker.io"
    assert ref.canonical == "docker.io/library/busybox:latest"
    assert ref.familiar == "busybox:latest"

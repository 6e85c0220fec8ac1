"""Image references, parsed by the grammar of distribution/reference (what Docker itself accepts).

reference  := name [ ":" tag ] [ "@" digest ]
name       := [domain "/"] path-component ["/" path-component]*
domain     := host [":" port]
path-comp  := [a-z0-9]+ (separator [a-z0-9]+)*      separator := [_.] | "__" | "-"+
tag        := [\\w][\\w.-]{0,127}
digest     := algorithm ":" hex{32,}
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workers.errors import InvalidSpec

DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[_.]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# Go's \w is ASCII-only; so is Docker's grammar.
_DOMAIN_RE = re.compile(_DOMAIN, re.ASCII)
_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*", re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_DIGEST_RE = re.compile(_DIGEST, re.ASCII)
_SHA256_RE = re.compile(r"sha256:[0-9a-f]{64}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
LEGACY_DEFAULT_DOMAIN = "index.docker.io"


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed, validated image reference."""

    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        """The fully qualified repository, e.g. ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def registry(self) -> str:
        """The registry host (and port) the reference names; ``docker.io`` when it names none."""
        return self.domain

    @property
    def canonical(self) -> str:
        """Fully qualified with the implied tag: ``docker.io/library/busybox:latest``."""
        text = self.repository
        if self.tag is not None or self.digest is None:
            text += f":{self.tag or DEFAULT_TAG}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def name(self) -> str:
        """The repository in the short form Docker prints: ``busybox``, ``127.0.0.1:5000/app``."""
        if self.domain != DEFAULT_DOMAIN:
            return f"{self.domain}/{self.path}"
        if self.path.startswith("library/") and self.path.count("/") == 1:
            return self.path.removeprefix("library/")
        return self.path

    @property
    def familiar(self) -> str:
        """The short form with its tag: ``busybox:latest``, ``127.0.0.1:5000/app:1``."""
        text = self.name
        if self.tag is not None or self.digest is None:
            text += f":{self.tag or DEFAULT_TAG}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def pull_tag(self) -> str:
        """What docker-py's ``pull(name, tag=...)`` wants as its tag: the digest, else the tag."""
        return self.digest if self.digest is not None else (self.tag or DEFAULT_TAG)

    def __str__(self) -> str:
        return self.familiar


def parse_reference(value: object, *, field: str = "image") -> ImageReference:
    """Parse ``value`` as an image reference.

    Raises:
        InvalidSpec: when ``value`` is not a string or not a valid reference.
    """
    if not isinstance(value, str) or not value:
        raise InvalidSpec(f"{field}: an image reference must be a non-empty string")
    text = value
    digest: str | None = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST_RE.fullmatch(digest) or (
            digest.startswith("sha256:") and not _SHA256_RE.fullmatch(digest)
        ):
            raise InvalidSpec(f"{field}: invalid digest in image reference {value!r}")
    tag: str | None = None
    last_slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > last_slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise InvalidSpec(f"{field}: invalid tag {tag!r} in image reference {value!r}")
    if not text:
        raise InvalidSpec(f"{field}: image reference {value!r} has no repository name")
    if len(text) > NAME_TOTAL_MAX:
        raise InvalidSpec(f"{field}: repository name longer than {NAME_TOTAL_MAX} characters")

    domain, path = _split_domain(text)
    if not _DOMAIN_RE.fullmatch(domain):
        raise InvalidSpec(f"{field}: invalid registry host {domain!r} in {value!r}")
    if _HEX64_RE.fullmatch(text):
        raise InvalidSpec(
            f"{field}: {value!r} looks like an image id; a repository name cannot be 64 hex digits"
        )
    if not _PATH_RE.fullmatch(path):
        raise InvalidSpec(
            f"{field}: invalid repository name {path!r} in {value!r}"
            " (lowercase letters, digits and separators . _ __ - only)"
        )
    return ImageReference(domain=domain, path=path, tag=tag, digest=digest)


def _split_domain(name: str) -> tuple[str, str]:
    """Split the registry host off the way Docker does (splitDockerDomain)."""
    first, sep, rest = name.partition("/")
    if not sep or (
        not any(ch in first for ch in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    return domain, path


def canonical_name(name: str) -> str:
    """The canonical form of an image name Docker reports; a name this parser refuses is kept as
    it is (it then matches no reference the service knows)."""
    try:
        return parse_reference(name).canonical
    except InvalidSpec:
        return name

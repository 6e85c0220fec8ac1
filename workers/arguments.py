"""Validation of task arguments other than specs.

Each function returns the clean value or raises InvalidSpec.
"""

from __future__ import annotations

import re
import signal as signals
from collections.abc import Mapping
from typing import Any

from workers.errors import InvalidSpec

# A container id (or unique prefix) or a name, as Docker accepts them.
_CONTAINER_REF_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}")
_SIGNAL_NAMES = frozenset(s.name for s in signals.Signals)
MAX_STOP_TIMEOUT = 3_600


def reject_unknown(task: str, unknown: Mapping[str, Any]) -> None:
    """Refuse keyword arguments the task does not define (a typo must not be silently ignored)."""
    if unknown:
        names = ", ".join(sorted(unknown))
        raise InvalidSpec(f"{task}: unknown argument(s): {names}")


def container_ref(value: object) -> str:
    """A container id, id prefix or name."""
    if isinstance(value, str) and _CONTAINER_REF_RE.fullmatch(value.lstrip("/")):
        return value.lstrip("/")
    raise InvalidSpec(f"container: expected a container id or name, got {value!r}")


def boolean(name: str, value: object) -> bool:
    """A JSON boolean (no truthy strings: "false" must not mean true)."""
    if isinstance(value, bool):
        return value
    raise InvalidSpec(f"{name}: expected true or false, got {value!r}")


def integer(name: str, value: object, *, minimum: int, maximum: int) -> int:
    """A JSON integer within bounds."""
    if isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum:
        return value
    raise InvalidSpec(f"{name}: expected an integer from {minimum} to {maximum}, got {value!r}")


def stop_timeout(value: object) -> int:
    """Seconds to wait for a graceful stop before SIGKILL."""
    return integer("timeout", value, minimum=0, maximum=MAX_STOP_TIMEOUT)


def signal_name(value: object) -> str:
    """A signal as a name (``SIGTERM``, ``TERM``) or number; returned as Docker wants it."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and 0 < int(value) < 65:
        return value
    if isinstance(value, str) and value.isascii():
        name = value.upper()
        if not name.startswith("SIG"):
            name = f"SIG{name}"
        if name in _SIGNAL_NAMES or re.fullmatch(r"SIGRTM(IN|AX)([+-][0-9]{1,2})?", name):
            return name
    raise InvalidSpec(f"signal: unknown signal {value!r}")


def label_filter(value: object) -> list[str]:
    """Labels to filter on: ``{"k": "v"}``, ``["k=v", "k"]`` or null; as Docker's filter list."""
    if value is None:
        return []
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
    ):
        return [f"{key}={val}" for key, val in value.items()]
    if isinstance(value, list) and all(isinstance(item, str) and item for item in value):
        return list(value)
    raise InvalidSpec(f"labels: expected an object of strings or a list of strings, got {value!r}")

"""Bounds on what a message may carry, checked before anything recursive looks at it.

A task's arguments arrive as JSON from anyone who can write to the broker. Before the worker
redacts, logs, stores or validates them, :func:`check_bounds` walks them once, iteratively, and
refuses what no caller needs: nesting deeper than ``max_depth``, strings longer than
``max_string``, lists or objects with more than ``max_items`` entries, object keys that are not
strings, and NUL characters anywhere. The message's total size is bounded by the worker before it
decodes the body (``max_bytes``). Every refusal is InvalidSpec naming where it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workers.errors import InvalidSpec

KiB = 1024


@dataclass(frozen=True, slots=True)
class ArgumentLimits:
    """The bounds of one task message's arguments (documented defaults)."""

    max_bytes: int = 256 * KiB
    max_depth: int = 32
    max_string: int = 64 * KiB
    max_items: int = 1024


def check_size(size: int, limits: ArgumentLimits) -> None:
    """Refuse a message body of ``size`` bytes over ``max_bytes``.

    Raises:
        InvalidSpec: naming the size and the bound.
    """
    if size > limits.max_bytes:
        raise InvalidSpec(
            f"message: {size} bytes of arguments, more than the {limits.max_bytes} allowed"
        )


def check_bounds(args: Any, kwargs: Any, limits: ArgumentLimits) -> None:
    """Walk a task's positional and keyword arguments once, without recursion.

    Raises:
        InvalidSpec: naming the first value past a bound (``kwargs.spec.command[3]``).
    """
    if not isinstance(args, list | tuple):
        raise InvalidSpec(f"message: positional arguments must be a list, got {_kind(args)}")
    if not isinstance(kwargs, Mapping):
        raise InvalidSpec(f"message: keyword arguments must be an object, got {_kind(kwargs)}")
    check_value("args", args, limits)
    check_value("kwargs", kwargs, limits)


def check_value(root: str, value: Any, limits: ArgumentLimits) -> None:
    """Walk one JSON value without recursion; ``root`` names it in errors.

    Raises:
        InvalidSpec: naming the first value past a bound (``spec.command[3]``).
    """
    stack: list[tuple[str, Any, int]] = [(root, value, 1)]
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, str):
            _check_string(path, item, limits)
        elif isinstance(item, Mapping | list | tuple):
            if depth > limits.max_depth:
                raise InvalidSpec(f"{path}: nested deeper than {limits.max_depth} levels")
            if len(item) > limits.max_items:
                raise InvalidSpec(f"{path}: more than {limits.max_items} entries")
            if isinstance(item, Mapping):
                for key, entry in item.items():
                    if not isinstance(key, str):
                        raise InvalidSpec(f"{path}: object keys must be strings")
                    _check_string(f"{path} key", key, limits)
                    stack.append((f"{path}.{_short(key)}", entry, depth + 1))
            else:
                stack.extend((f"{path}[{i}]", entry, depth + 1) for i, entry in enumerate(item))
        elif item is not None and not isinstance(item, bool | int | float):
            raise InvalidSpec(f"{path}: {_kind(item)} is not a JSON value")


def _check_string(path: str, value: str, limits: ArgumentLimits) -> None:
    if len(value) > limits.max_string:
        raise InvalidSpec(f"{path}: a string longer than {limits.max_string} characters")
    if "\x00" in value:
        raise InvalidSpec(f"{path}: NUL characters are not allowed")


def _short(key: str) -> str:
    """A key as a path shows it: at most 64 characters, printable."""
    shown = key if key.isprintable() else repr(key)
    return shown if len(shown) <= 64 else shown[:61] + "..."


def _kind(value: object) -> str:
    return type(value).__name__

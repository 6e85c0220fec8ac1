"""Validation of task arguments other than specs."""

from __future__ import annotations

import pytest

from workers.arguments import (
    MAX_STOP_TIMEOUT,
    boolean,
    container_ref,
    integer,
    label_filter,
    reject_unknown,
    signal_name,
    stop_timeout,
)
from workers.errors import InvalidSpec


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("web", "web"),
        ("/web", "web"),
        ("web-1.a_b", "web-1.a_b"),
        ("a", "a"),
        ("3f2a", "3f2a"),
        ("f" * 64, "f" * 64),
        ("w" * 255, "w" * 255),
    ],
)
def test_container_ref_accepts_ids_prefixes_and_names(value: str, expected: str) -> None:
    assert container_ref(value) == expected


@pytest.mark.parametrize(
    "value",
    ["", "/", "-web", ".web", "web/1", "web 1", "w" * 256, None, 42, ["web"], {"id": "web"}],
)
def test_container_ref_refuses_the_rest(value: object) -> None:
    with pytest.raises(InvalidSpec, match=r"^container: expected a container id or name"):
        container_ref(value)


def test_container_ref_refuses_a_trailing_newline() -> None:
    # Python's `$` matches before a final newline; "web\n" is not a container name.
    with pytest.raises(InvalidSpec):
        container_ref("web\n")


def test_boolean_accepts_only_json_booleans() -> None:
    assert boolean("force", True) is True
    assert boolean("force", False) is False
    for value in ("false", "true", 0, 1, None, "", []):
        with pytest.raises(InvalidSpec, match=r"^force: expected true or false"):
            boolean("force", value)


def test_integer_bounds() -> None:
    assert integer("tail", 0, minimum=0, maximum=10) == 0
    assert integer("tail", 10, minimum=0, maximum=10) == 10
    for value in (-1, 11, True, False, 5.0, "5", None):
        with pytest.raises(InvalidSpec, match=r"^tail: expected an integer from 0 to 10"):
            integer("tail", value, minimum=0, maximum=10)


def test_stop_timeout() -> None:
    assert stop_timeout(0) == 0
    assert stop_timeout(10) == 10
    assert stop_timeout(MAX_STOP_TIMEOUT) == 3600
    with pytest.raises(InvalidSpec, match=r"^timeout: "):
        stop_timeout(MAX_STOP_TIMEOUT + 1)
    with pytest.raises(InvalidSpec, match=r"^timeout: "):
        stop_timeout(-1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("SIGTERM", "SIGTERM"),
        ("TERM", "SIGTERM"),
        ("sigkill", "SIGKILL"),
        ("kill", "SIGKILL"),
        ("SIGHUP", "SIGHUP"),
        ("usr1", "SIGUSR1"),
        ("SIGRTMIN", "SIGRTMIN"),
        ("SIGRTMIN+3", "SIGRTMIN+3"),
        ("rtmax-2", "SIGRTMAX-2"),
        (9, "9"),
        (15, "15"),
        (1, "1"),
        (64, "64"),
    ],
)
def test_signal_name(value: object, expected: str) -> None:
    assert signal_name(value) == expected


@pytest.mark.parametrize(
    "value",
    ["SIGBOGUS", "BOGUS", "", "SIG", "SIGRTMIN+x", 0, 65, -9, True, None, 9.0, ["SIGTERM"]],
)
def test_signal_name_refuses_unknown(value: object) -> None:
    with pytest.raises(InvalidSpec, match=r"^signal: unknown signal"):
        signal_name(value)


def test_label_filter_forms() -> None:
    assert label_filter(None) == []
    assert label_filter({}) == []
    assert label_filter({"team": "a", "tier": "web"}) == ["team=a", "tier=web"]
    assert label_filter({"team": ""}) == ["team="]
    assert label_filter(["team=a", "tier"]) == ["team=a", "tier"]
    assert label_filter([]) == []


@pytest.mark.parametrize(
    "value", ["team=a", {"team": 1}, {"": "a"}, {"team": None}, [""], ["a", 1], 5, True]
)
def test_label_filter_refuses_other_shapes(value: object) -> None:
    with pytest.raises(InvalidSpec, match=r"^labels: expected"):
        label_filter(value)


def test_reject_unknown() -> None:
    reject_unknown("containers.stop", {})
    with pytest.raises(
        InvalidSpec, match=r"^containers.stop: unknown argument\(s\): signal, timout$"
    ):
        reject_unknown("containers.stop", {"timout": 5, "signal": "TERM"})

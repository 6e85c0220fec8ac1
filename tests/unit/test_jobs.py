"""Exit reasons, on_exit and wait arguments, wait conditions, live-log line splitting."""

from __future__ import annotations

from typing import Any

import pytest

from workers.errors import InvalidSpec
from workers.jobs import (
    condition_holds,
    exit_report,
    parse_on_exit,
    reason_of,
    signal_of,
    wait_arguments,
    wait_result,
)
from workers.logs import _Lines


@pytest.mark.parametrize(
    ("code", "oom", "reason", "signal"),
    [
        (0, False, "completed", None),
        (3, False, "failed", None),
        (128, False, "failed", None),
        (137, False, "signaled", "SIGKILL"),
        (143, False, "signaled", "SIGTERM"),
        (137, True, "oom", "SIGKILL"),
        (255, False, "failed", None),
        (None, False, "failed", None),
    ],
)
def test_exit_reasons(code: int | None, oom: bool, reason: str, signal: str | None) -> None:
    assert reason_of(code, oom) == reason
    assert signal_of(code) == signal


def test_an_exit_report_from_dockers_state() -> None:
    report = exit_report(
        {
            "ExitCode": 137,
            "OOMKilled": True,
            "Error": "",
            "FinishedAt": "2026-01-01T00:00:02.5Z",
        }
    )
    assert report.as_dict() == {
        "exit_code": 137,
        "oom_killed": True,
        "signal": "SIGKILL",
        "error": None,
        "finished_at": "2026-01-01T00:00:02.5Z",
        "reason": "oom",
    }
    never = exit_report({"ExitCode": 0, "FinishedAt": "0001-01-01T00:00:00Z", "Error": "boom"})
    assert never.finished_at is None and never.error == "boom"


def test_on_exit_is_checked_before_anything_is_sent() -> None:
    assert parse_on_exit(None) is None
    ok = parse_on_exit({"task": "billing.job_done", "queue": "billing", "kwargs": {"n": 1}})
    assert ok == {"task": "billing.job_done", "queue": "billing", "kwargs": {"n": 1}}
    assert parse_on_exit({"task": "a", "queue": "b"}) == {"task": "a", "queue": "b", "kwargs": {}}
    for bad in (
        "task",
        {"task": "a"},
        {"task": "a b", "queue": "q"},
        {"task": "a", "queue": "q" * 201},
        {"task": "a", "queue": "q", "kwargs": []},
        {"task": "a", "queue": "q", "kwargs": {"container_exit": 1}},
        {"task": "a", "queue": "q", "extra": 1},
    ):
        with pytest.raises(InvalidSpec, match="on_exit"):
            parse_on_exit(bad)


@pytest.mark.parametrize(
    ("timeout", "condition"),
    [(-1, "not-running"), (3601, "not-running"), ("5", "not-running"), (True, "healthy"), (5, "x")],
)
def test_wait_arguments_are_bounded(timeout: Any, condition: Any) -> None:
    with pytest.raises(InvalidSpec):
        wait_arguments(timeout, condition)


def test_wait_conditions() -> None:
    running = {"status": "running", "health": "starting"}
    assert not condition_holds(running, "not-running")
    assert not condition_holds(running, "healthy")
    assert condition_holds({**running, "health": "healthy"}, "healthy")
    for stopped in ("exited", "dead", "removed"):
        assert condition_holds({"status": stopped}, "healthy")  # It will never be healthy.
        assert condition_holds({"status": stopped}, "not-running")
    assert condition_holds({"status": "created"}, "not-running")
    assert condition_holds({}, "not-running")  # Gone.


def test_a_wait_result_reads_the_record() -> None:
    record = {"id": "c", "status": "exited", "exit_code": 3, "oom_killed": False, "host": "a"}
    result = wait_result(record, timed_out=False)
    assert result["exit_code"] == 3 and result["host"] == "a" and result["timed_out"] is False
    assert result["health"] is None


def test_lines_are_split_across_frames_and_cut_when_too_long() -> None:
    lines = _Lines(max_bytes=8)
    assert lines.feed("stdout", b"one\ntw") == [("stdout", "one")]
    assert lines.feed("stderr", b"err\n") == [("stderr", "err")]
    assert lines.feed("stdout", b"o\nthree") == [("stdout", "two")]
    assert lines.feed("stdout", b"-and-more-and-more") == [("stdout", "three-an\u2026")]
    assert lines.rest() == []
    assert lines.feed("stdout", b"no end") == []
    assert lines.rest() == [("stdout", "no end")]  # The last line, without its newline.
    assert _Lines(16).feed("stdout", "caf\u00e9\n".encode()) == [("stdout", "caf\u00e9")]

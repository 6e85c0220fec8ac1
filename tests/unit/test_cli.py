"""The CLI's words: docker's statuses and durations, tables that never wrap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from tasks.cli_client import docker_status, fit, human_duration, table

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_durations_as_docker_says_them() -> None:
    assert human_duration(0.2) == "Less than a second"
    assert human_duration(1) == "1 second"
    assert human_duration(5) == "5 seconds"
    assert human_duration(90) == "About a minute"
    assert human_duration(600) == "10 minutes"
    assert human_duration(3700) == "About an hour"
    assert human_duration(5 * 3600) == "5 hours"
    assert human_duration(3 * 86400) == "3 days"


def test_statuses_as_docker_ps_shows_them() -> None:
    assert docker_status({"status": "running", "started_at": stamp(5)}, NOW) == "Up 5 seconds"
    exited = {"status": "exited", "exit_code": 3, "finished_at": stamp(5)}
    assert docker_status(exited, NOW) == "Exited (3) 5 seconds ago"
    assert docker_status({"status": "created"}, NOW) == "Created"
    assert docker_status({"status": "paused"}, NOW) == "Paused"


def test_a_table_never_wraps_a_cell_at_80_columns() -> None:
    grid = table("CONTAINER ID", "IMAGE", "STATUS", "NAMES", "HOST")
    grid.add_row(
        "a" * 12,
        "registry.example.com:5000/team/very-long-image-name:1.2.3-rc4",
        "Exited (137) 3 hours ago",
        "a-very-long-container-name-of-a-batch-job",
        "host-1",
    )
    console = Console(width=80, record=True, highlight=False)
    console.print(grid)
    lines = console.export_text().splitlines()
    assert len(lines) == 2  # The header and one row: nothing wrapped.
    assert all(len(line) <= 80 for line in lines)
    assert "\u2026" in lines[1]  # Cut as docker cuts: with an ellipsis.


def test_fitting_keeps_the_id_and_status_whole_and_every_column_shown() -> None:
    """Rich alone would drop the rightmost columns; fit() cuts the image first."""
    grid = table(
        "CONTAINER ID", "IMAGE", "STATUS", "NAMES", "HOST",
        keep={"CONTAINER ID": 12, "STATUS": 24, "NAMES": 20, "HOST": 12},
    )  # fmt: skip
    row = (
        "c543de0a1b2c",
        "registry.example.com:5000/team/very-long-image-name:1.2.3-rc4",
        "Exited (137) 3 hours ago",
        "a-batch-job-20261201",
        "host-1",
    )
    grid.add_row(*row)
    fit(grid, 80)
    console = Console(width=80, record=True, highlight=False)
    console.print(grid)
    header, line = console.export_text().splitlines()
    assert len(line) <= 80
    assert header.split() == ["CONTAINER", "ID", "IMAGE", "STATUS", "NAMES", "HOST"]
    for whole in (row[0], row[2], row[3], row[4]):
        assert whole in line
    assert "registry.\u2026" in line or "registry\u2026" in line

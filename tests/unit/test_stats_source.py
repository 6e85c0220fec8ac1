"""StatsSource: the host's cgroup files when readable, the API otherwise, over fake file trees."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.unit.fakes import FakeEngine
from tests.unit.test_cgroup_stats import CID, docker_info, fake_v1, write
from workers import stats_source
from workers.stats_source import StatsSource


def source(tmp_path: Path, mode: str = "auto") -> tuple[StatsSource, FakeEngine]:
    root, proc = fake_v1(tmp_path)
    engine = FakeEngine()
    engine.info_doc = docker_info()
    doc = engine.add_container("job")
    engine.containers_by_id = {CID: {**doc, "Id": CID}}  # The container the fake files hold.
    return (
        StatsSource(engine, mode, cgroup_root=str(root), proc_root=str(proc)),  # type: ignore[arg-type]
        engine,
    )


def stats_calls(engine: FakeEngine) -> list[object]:
    return [call for call in engine.calls if call[0] == "stats"]


def test_auto_reads_the_files_and_never_asks_docker(tmp_path: Path) -> None:
    stats, engine = source(tmp_path)
    raw = stats.raw(CID)
    assert raw["cpu_stats"]["cpu_usage"]["total_usage"] == 2_500_000_000
    assert raw["memory_stats"]["usage"] > 0
    assert stats.kind == "cgroup"
    assert stats_calls(engine) == []


def test_api_mode_asks_docker(tmp_path: Path) -> None:
    stats, engine = source(tmp_path, "api")
    stats.raw(CID)
    assert stats.kind == "api"
    assert stats_calls(engine) == [("stats", CID)]


def test_a_container_without_a_cgroup_there_is_asked_of_docker(tmp_path: Path) -> None:
    """Stopped, or run with a --cgroup-parent of its own: the API says which."""
    stats, engine = source(tmp_path)
    other = engine.add_container("elsewhere")["Id"]
    stats.raw(other)
    assert stats_calls(engine) == [("stats", other)]
    assert stats.kind == "cgroup"


def test_unusable_files_fall_back_to_the_api_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stats, engine = source(tmp_path)
    assert stats.kind == "cgroup"
    write(tmp_path / "cgroup" / "cpuacct" / "docker" / CID / "cpuacct.usage", "garbage\n")
    with caplog.at_level(logging.WARNING, logger="workers.stats_source"):
        stats.raw(CID)
        stats.raw(CID)
    assert stats_calls(engine) == [("stats", CID), ("stats", CID)]
    assert stats.kind == "api"
    assert len([r for r in caplog.records if "unusable" in r.getMessage()]) == 1


def test_detection_is_tried_again_later_when_nothing_ran_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stats, _ = source(tmp_path)
    procs = tmp_path / "cgroup" / "cpuacct" / "docker" / CID / "cgroup.procs"
    procs.write_text("")  # No process in any container: no evidence the files are this host's.
    assert stats.kind == "api"
    procs.write_text("4242\n")
    assert stats.kind == "api"  # Not asked again at once...
    now = stats_source.time.monotonic()
    monkeypatch.setattr(
        stats_source.time, "monotonic", lambda: now + stats_source.DETECT_AGAIN_SECONDS + 1
    )
    assert stats.kind == "cgroup"  # ...but after a while.

"""Every benchmark runs once, at a small N, so that CI proves it works. No figure is asserted:
the benchmarks measure, the README reports (a timed test would only measure this machine's load).

What is asserted is what does not depend on speed: each prints its figures and exits 0, the burst
loses no task, the stats sweep leaves every record fresh, and the footprint reads every process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 900.0


def bench(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m bench.<module> ARGS`` from the source tree, as the README runs it."""
    return subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_burst(tmp_path: Path) -> None:
    plot = tmp_path / "burst.png"
    done = bench(
        "burst", "-n", "4", "--rounds", "1", "--mixed", "60", "--mixed-runs", "3",
        "--plot", str(plot),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ratio" in done.stdout
    assert "60 mixed tasks at once (3 runs" in done.stdout
    assert "0 lost or failed" in done.stdout
    assert plot.stat().st_size > 0


def test_stats(tmp_path: Path) -> None:
    plot = tmp_path / "stats.png"
    done = bench("stats", "-n", "3", "-n", "6", "--rounds", "1", "--plot", str(plot))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS: N=6: all records fresh (6/6)" in done.stdout
    assert "growth:" in done.stdout
    assert plot.stat().st_size > 0


def test_footprint() -> None:
    done = bench("footprint", "-n", "3", "--settle", "2")
    # Its exit status is the memory goal's: measured, not asserted here.
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "baseline (prefork, one interpreter each), idle" in done.stdout
    assert "default (threads, forked from up), 3 containers" in done.stdout
    for role in ("worker:containers", "worker:images", "worker:maintenance", "events", "beat"):
        assert role in done.stdout, role


def test_hosts() -> None:
    done = bench("hosts", "-n", "4", "--rounds", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ratio two/one" in done.stdout


def test_lifecycle() -> None:
    done = bench("lifecycle", "-n", "5")
    assert done.returncode == 0, done.stdout + done.stderr


def test_pulls() -> None:
    done = bench("pulls", "-n", "2", "--rounds", "1", "--warmup", "0")
    assert done.returncode == 0, done.stdout + done.stderr

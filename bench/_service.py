"""Shared by the benchmarks: a private `containerizer up` and a by-name Celery client."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from celery import Celery

REDIS = os.environ.get("CONTAINERIZER_BENCH_REDIS", "redis://127.0.0.1:6379")
# Databases of their own, apart from a running service (0-2) and the tests (10-15).
BROKER_DB, RESULT_DB, STATE_DB = 6, 7, 8
LOCK_PATH = "/tmp/containerizer-bench.lock"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_service(**extra_env: str) -> Iterator[Celery]:
    """Start `containerizer up` (as the README runs it) and yield a client app for it.

    Benchmarks share Redis databases, so one runs at a time: the others wait here.
    """
    with one_benchmark_at_a_time(), _running_service(extra_env) as app:
        yield app


@contextmanager
def one_benchmark_at_a_time() -> Iterator[None]:
    """Wait for any other benchmark to finish: they share Redis databases and the machine."""
    with open(LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextmanager
def _running_service(
    extra_env: dict[str, str] | None = None,
    *,
    redis_url: str = REDIS,
    dbs: tuple[int, int, int] = (BROKER_DB, RESULT_DB, STATE_DB),
    source: Path | None = None,
    flush: bool = True,
) -> Iterator[Celery]:
    """``source``: run the service from that checkout of containerizer instead of this one.
    ``flush``: start from empty databases (the second host of a cluster does not)."""
    state_dir = tempfile.mkdtemp(prefix="containerizer-bench-")
    source_env = {"PYTHONPATH": str(source)} if source is not None else {}
    env = {
        **os.environ,
        **source_env,
        "CONTAINERIZER_BROKER_URL": f"{redis_url}/{dbs[0]}",
        "CONTAINERIZER_RESULT_BACKEND": f"{redis_url}/{dbs[1]}",
        "CONTAINERIZER_REDIS_URL": f"{redis_url}/{dbs[2]}",
        "CONTAINERIZER_REDIS_PREFIX": "containerizer-bench:",
        "CONTAINERIZER_STATE_DIR": state_dir,
        "CONTAINERIZER_FLOWER_PORT": str(_free_port()),
        "CONTAINERIZER_METRICS_PORT": str(_free_port()),
        "CONTAINERIZER_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    app = Celery(
        broker=env["CONTAINERIZER_BROKER_URL"], backend=env["CONTAINERIZER_RESULT_BACKEND"]
    )
    app.conf.update(accept_content=["json"], task_serializer="json", result_serializer="json")
    # Every run starts from empty databases: no results, records or event position of a run before.
    for db in dbs if flush else ():
        client = redis.Redis.from_url(f"{redis_url}/{db}")
        client.flushdb()
        client.close()
    executable = Path(sys.executable).with_name("containerizer")
    log = Path(state_dir) / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(executable), "up"], env=env, stdout=out, stderr=out, cwd=source
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            replies = app.control.ping(timeout=1.0) or []
            host = env.get("CONTAINERIZER_HOST_NAME")
            nodes = {
                name.split("@")[0]
                for reply in replies
                for name in reply
                if host is None or name.endswith(f"@{host}")
            }
            if {"containers", "images", "maintenance"} <= nodes:
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"containerizer up did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield app
    finally:
        process.terminate()
        process.wait(timeout=90)
        app.close()
        # A failed start has put the log's tail in its error already.
        shutil.rmtree(state_dir, ignore_errors=True)


def call(app: Celery, name: str, queue: str = "containers", **kwargs: Any) -> Any:
    """Send a task by name and wait for its result."""
    return app.send_task(name, kwargs=kwargs, queue=queue).get(timeout=300)


def line_plot(
    path: Path,
    xs: Sequence[float],
    lines: Sequence[tuple[str, Sequence[float], dict[str, Any]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    from_zero: bool = False,
) -> None:
    """A PNG of ``lines`` (label, values over ``xs``, matplotlib line keywords) at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values, style in lines:
        ax.plot(xs, values, label=label, **style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if from_zero:
        ax.set_ylim(bottom=0)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot: {path}")


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2

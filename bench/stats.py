"""A stats sweep of N running containers through containerizer versus the alternatives, in one run.

Starts N managed containers through a `containerizer up` started here (beat's own sweep pushed out
to once an hour, so it does not run during the measurements), then times, in the same run:

- containerizer.maintenance.collect_stats (sent by name to the ``maintenance`` queue): the wall
  time of the task's round trip and the task's own ``seconds``;
- ``docker stats --no-stream`` with the ids of those N containers (the Docker CLI);
- docker-py's one-shot stats of the N containers, 128 calls at once: what the service's API path
  (``CONTAINERIZER_STATS_SOURCE=api``, or a worker that cannot read the host's cgroup files) asks of
  dockerd, without its Redis writes.

With several N (default 100, 250 and 500) the containers are started up to each N in turn and each
N is measured as above; ``--plot`` draws the sweep times against N.

dockerd's stats collector samples its subscribed containers once a tick (every 1 s) and sleeps in
between; a one-shot call waits for the next tick. When nothing subscribes, the collector goes idle
and the next call wakes it at once. So each timed step starts after a pause of IDLE_SECONDS, which
lets the collector go idle, and no step inherits another's half-spent tick. The three take turns
at going first from round to round.

After the last collect_stats it reads every container's record in the service's Redis and checks
that its ``stats_at`` (the time of the sample) is recent. Every container labelled
containerizer-bench=stats is removed at the end, also after a failure or Ctrl-C.

    .venv/bin/python -m bench.stats                      # N = 100, 250, 500
    .venv/bin/python -m bench.stats -n 100 --plot bench/stats.png
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import redis
from celery import Celery

from bench._service import REDIS, STATE_DB, call, line_plot, median, running_service

IMAGE = "containerizer-test/busybox:latest"
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
LABELS = {"containerizer-bench": "stats"}
LABEL_FILTER = "containerizer-bench=stats"
STATE_PREFIX = "containerizer-bench:"  # CONTAINERIZER_REDIS_PREFIX that bench._service sets.
COLLECT_TASK = "containerizer.maintenance.collect_stats"

ROUNDS = 3
API_THREADS = 128  # As the service's stats_concurrency.
BATCH = 20  # containers.run tasks in flight at once while starting the containers.
IDLE_SECONDS = 1.5  # Pause before each timed step: dockerd's collector (1 s tick) goes idle.
FRESH_SECONDS = 10.0  # A record's stats_at must be at most this old after the last sweep.
SWEEP_LIMIT_SECONDS = 1.5  # Acceptance: collect_stats median (wall) below this.

RUN_TIMEOUT = 120.0  # One containers.run round trip.
LOCKED_RETRIES = 5  # collect_stats answered "locked": another sweep runs; wait and resend.
DOCKER_CLI_TIMEOUT = 120.0
REMOVE_WORKERS = 8


@dataclass
class Sweep:
    """One collect_stats round: wall time of the round trip and the task's own figure."""

    wall: float
    task_seconds: float
    containers: int
    skipped: int
    source: str


@dataclass
class Freshness:
    """What the state records held after a collect_stats sweep."""

    total: int
    fresh: int = 0  # stats_at within FRESH_SECONDS of the check, and stats present.
    during_sweep: int = 0  # stats_at no earlier than the moment the sweep was sent.
    oldest_age: float | None = None
    problems: list[str] = field(default_factory=list)


def start_containers(app: Celery, count: int, batch: int) -> list[str]:
    """Run ``count`` containers through the service, ``batch`` tasks in flight at once."""
    spec = {"image": IMAGE, "command": COMMAND, "labels": LABELS}
    ids: list[str] = []
    began = time.perf_counter()
    while len(ids) < count:
        size = min(batch, count - len(ids))
        pending = [
            app.send_task("containerizer.containers.run", kwargs={"spec": spec}, queue="containers")
            for _ in range(size)
        ]
        for result in pending:
            outcome = result.get(timeout=RUN_TIMEOUT)
            if outcome.get("status") != "running":
                raise RuntimeError(f"containers.run did not leave a running container: {outcome}")
            ids.append(str(outcome["id"]))
        print(f"  started {len(ids)}/{count} containers", file=sys.stderr, flush=True)
    print(
        f"  {count} containers started in {time.perf_counter() - began:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    return ids


def collect_stats(app: Celery) -> Sweep:
    """One collect_stats round trip; resent (boundedly) if another sweep holds the lock."""
    for _ in range(LOCKED_RETRIES):
        began = time.perf_counter()
        result = call(app, COLLECT_TASK, queue="maintenance")
        wall = time.perf_counter() - began
        if not result.get("locked"):
            return Sweep(
                wall=wall,
                task_seconds=float(result["seconds"]),
                containers=int(result["containers"]),
                skipped=int(result.get("skipped", 0)),
                source=str(result.get("source", "api")),
            )
        time.sleep(IDLE_SECONDS * 2)
    raise RuntimeError(f"collect_stats stayed locked through {LOCKED_RETRIES} attempts")


def docker_stats_cli(ids: list[str]) -> float:
    """Wall time of `docker stats --no-stream` over these containers."""
    began = time.perf_counter()
    completed = subprocess.run(
        ["docker", "stats", "--no-stream", *ids],
        capture_output=True,
        text=True,
        timeout=DOCKER_CLI_TIMEOUT,
        check=False,
    )
    wall = time.perf_counter() - began
    if completed.returncode != 0:
        raise RuntimeError(f"docker stats failed: {completed.stderr.strip()}")
    rows = len(completed.stdout.strip().splitlines()) - 1  # Less the header line.
    if rows != len(ids):
        raise RuntimeError(f"docker stats listed {rows} containers, not {len(ids)}")
    return wall


def api_sweep(client: docker.DockerClient, ids: list[str]) -> float:
    """Wall time of one-shot stats of every container from docker-py, API_THREADS at once: what
    the service's API path asks of dockerd, without its Redis writes."""
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(API_THREADS, len(ids))) as pool:
        list(pool.map(lambda cid: client.api.stats(cid, stream=False, one_shot=True), ids))
    return time.perf_counter() - began


def check_freshness(state: redis.Redis, ids: list[str], sent_at: float) -> Freshness:
    """Read each container's record: how many hold stats sampled within FRESH_SECONDS."""
    pipe = state.pipeline(transaction=False)
    for cid in ids:
        pipe.hmget(f"{STATE_PREFIX}container:{cid}", ["stats_at", "stats"])
    rows = pipe.execute()
    now = time.time()
    report = Freshness(total=len(ids))
    for cid, (raw_at, raw_stats) in zip(ids, rows, strict=True):
        if raw_at is None or raw_stats is None:
            report.problems.append(f"{cid[:12]}: no stats in its record")
            continue
        stats_at = float(json.loads(raw_at))
        stats = json.loads(raw_stats)
        age = now - stats_at
        report.oldest_age = age if report.oldest_age is None else max(report.oldest_age, age)
        if not isinstance(stats, dict) or not stats:
            report.problems.append(f"{cid[:12]}: stats field is {raw_stats!r}")
        elif age <= FRESH_SECONDS:
            report.fresh += 1
        else:
            report.problems.append(f"{cid[:12]}: stats_at is {age:.1f} s old")
        if stats_at >= sent_at:
            report.during_sweep += 1
    return report


def remove_all(client: docker.DockerClient) -> int:
    """Force-remove every container labelled containerizer-bench=stats; returns how many."""
    leftovers = client.containers.list(all=True, filters={"label": LABEL_FILTER})

    def remove(container: docker.models.containers.Container) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)

    with ThreadPoolExecutor(max_workers=REMOVE_WORKERS) as pool:
        list(pool.map(remove, leftovers))
    return len(leftovers)


def idle() -> None:
    time.sleep(IDLE_SECONDS)


@dataclass
class Figures:
    """One N's medians and rounds."""

    count: int
    sweeps: list[Sweep]
    fresh: Freshness
    cli: list[float]
    api: list[float]

    @property
    def wall(self) -> float:
        return median([s.wall for s in self.sweeps])


def measure(
    app: Celery, client: docker.DockerClient, counts: list[int], batch: int, rounds: int
) -> list[Figures]:
    """For each N (ascending), start containers up to N, then time the sweeps."""
    state = redis.Redis.from_url(f"{REDIS}/{STATE_DB}")
    ids: list[str] = []
    figures = []
    for count in sorted(counts):
        ids += start_containers(app, count - len(ids), batch)
        figures.append(measure_at(app, client, state, ids, rounds))
        report(figures[-1])
    state.close()
    return figures


def measure_at(
    app: Celery, client: docker.DockerClient, state: redis.Redis, ids: list[str], rounds: int
) -> Figures:
    sweeps: list[Sweep] = []
    freshness: list[Freshness] = []
    cli: list[float] = []
    api: list[float] = []

    def timed_collect() -> None:
        idle()
        sent_at = time.time()
        sweeps.append(collect_stats(app))
        freshness.append(check_freshness(state, ids, sent_at))

    def timed_cli() -> None:
        idle()
        cli.append(docker_stats_cli(ids))

    def timed_api() -> None:
        idle()
        api.append(api_sweep(client, ids))

    for step in (timed_collect, timed_cli, timed_api):  # Warm-up.
        step()
    for series in (sweeps, freshness, cli, api):
        series.clear()
    for index in range(rounds):
        # Rotate which goes first: none always gets the collector just woken.
        steps: list[Callable[[], None]] = [timed_collect, timed_cli, timed_api]
        steps = steps[index % 3 :] + steps[: index % 3]
        for step in steps:
            step()
        print(f"  N={len(ids)}: round {index + 1}/{rounds} done", file=sys.stderr, flush=True)
    return Figures(len(ids), sweeps, freshness[-1], cli, api)


def report(figures: Figures) -> None:
    count, sweeps, fresh = figures.count, figures.sweeps, figures.fresh
    wall = figures.wall
    task = median([s.task_seconds for s in sweeps])
    cli, api = median(figures.cli), median(figures.api)

    def rounds(values: list[float]) -> str:
        return ", ".join(f"{v:.3f}" for v in values)

    sources = sorted({s.source for s in sweeps})
    print(
        f"N={count} running containers ({IMAGE}); {len(sweeps)} timed rounds after a warm-up,"
        f" {IDLE_SECONDS} s idle before each step; collect_stats read from: {', '.join(sources)}"
    )
    print(f"  {'method':<42} {'median s':>9} {'ms/container':>13}   rounds (s)")
    rows = [
        ("collect_stats, task round trip", wall, [s.wall for s in sweeps]),
        ("collect_stats, task seconds", task, [s.task_seconds for s in sweeps]),
        ("docker stats --no-stream", cli, figures.cli),
        (f"docker-py one-shot stats x{API_THREADS} threads", api, figures.api),
    ]
    for label, value, series in rows:
        print(f"  {label:<42} {value:9.3f} {value * 1000 / count:13.2f}   {rounds(series)}")
    oldest = "n/a" if fresh.oldest_age is None else f"{fresh.oldest_age:.2f} s"
    print(
        f"  records after the last sweep: {fresh.fresh}/{fresh.total} with stats_at within"
        f" {FRESH_SECONDS:.0f} s (oldest {oldest}); {fresh.during_sweep}/{fresh.total}"
        " sampled after the sweep was sent"
    )
    for problem in fresh.problems[:10]:
        print(f"    {problem}")
    print(
        f"  docker stats --no-stream / collect_stats: {cli / wall:.2f}x;"
        f" docker-py one-shot / collect_stats: {api / wall:.2f}x"
    )


def verdict(figures: list[Figures]) -> bool:
    """The acceptance lines; whether all pass."""
    checks = []
    for fig in figures:
        if fig.count >= 500:
            checks.append(
                (
                    f"N={fig.count}: collect_stats median {fig.wall:.3f} s"
                    f" < {SWEEP_LIMIT_SECONDS} s",
                    fig.wall < SWEEP_LIMIT_SECONDS,
                )
            )
        checks.append(
            (
                f"N={fig.count}: all records fresh ({fig.fresh.fresh}/{fig.fresh.total})",
                fig.fresh.fresh == fig.fresh.total
                and all(s.containers >= fig.count for s in fig.sweeps),
            )
        )
    if len(figures) > 1:
        first, last = figures[0], figures[-1]
        growth = (last.wall - first.wall) / (last.count - first.count) * 1000
        print(
            f"growth: {growth:.2f} ms per container from N={first.count} to N={last.count}"
            f" (collect_stats x{last.wall / first.wall:.2f} for x{last.count / first.count:.1f}"
            f" the containers; docker stats --no-stream"
            f" x{median(last.cli) / median(first.cli):.2f})"
        )
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    return all(ok for _, ok in checks)


def draw(figures: list[Figures], path: Path) -> None:
    line_plot(
        path,
        [f.count for f in figures],
        [
            ("collect_stats (containerizer)", [f.wall for f in figures], {"marker": "o"}),
            ("docker stats --no-stream", [median(f.cli) for f in figures], {"marker": "s"}),
            (
                f"docker-py one-shot x{API_THREADS}",
                [median(f.api) for f in figures],
                {"marker": "^"},
            ),
        ],
        xlabel="running containers",
        ylabel="seconds per sweep (median)",
        title="Stats sweep",
        from_zero=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-n", type=int, action="append", help="running containers (repeat; default 100, 250, 500)"
    )
    parser.add_argument(
        "--batch", type=int, default=BATCH, help=f"run tasks in flight (default {BATCH})"
    )
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG of sweep time by N")
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help=f"timed rounds (default {ROUNDS})"
    )
    parser.add_argument(
        "--stats-source",
        choices=["auto", "api"],
        default="auto",
        help="the service's CONTAINERIZER_STATS_SOURCE (api: the Docker API's path)",
    )
    parser.add_argument(
        "--log-level", help="the service's CONTAINERIZER_LOG_LEVEL (INFO logs each sweep)"
    )
    args = parser.parse_args()
    counts = sorted(set(args.n or [100, 250, 500]))
    if counts[0] < 1:
        parser.error("-n must be at least 1")

    client = docker.from_env(timeout=120)
    client.images.get(IMAGE)
    passed = False
    try:
        overrides = {
            "CONTAINERIZER_STATS_INTERVAL_SECONDS": "3600",
            "CONTAINERIZER_STATS_SOURCE": args.stats_source,
            # No /metrics endpoint: its fixed default port may be taken by another service.
            "CONTAINERIZER_METRICS_PORT": "0",
        }
        if args.log_level:
            overrides["CONTAINERIZER_LOG_LEVEL"] = args.log_level
        with running_service(**overrides) as app:
            figures = measure(app, client, counts, args.batch, args.rounds)
        passed = verdict(figures)
        if args.plot is not None:
            draw(figures, args.plot)
    finally:
        removed = remove_all(client)
        print(f"  removed {removed} containers", file=sys.stderr, flush=True)
        client.close()
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()

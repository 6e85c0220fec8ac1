"""A stats sweep of N running containers through containerizer versus the alternatives, in one run.

Starts N managed containers through a `containerizer up` started here (beat's own sweep pushed out
to once an hour, so it does not run during the measurements), then times, in the same run:

- containerizer.maintenance.collect_stats (sent by name to the ``maintenance`` queue): the wall
  time of the task's round trip and the task's own ``seconds``;
- ``docker stats --no-stream`` with the ids of those N containers (the Docker CLI);
- a serial sweep with docker-py, ``container.stats(stream=False)`` (two samples per call) one
  container after another over 5 of them, extrapolated to N; and the same serial loop with
  ``one_shot=True`` for reference.

dockerd's stats collector samples its subscribed containers once a tick (every 1 s) and sleeps in
between; a one-shot call waits for the next tick. When nothing subscribes, the collector goes idle
and the next call wakes it at once. So each timed step starts after a pause of IDLE_SECONDS, which
lets the collector go idle, and no step inherits another's half-spent tick. collect_stats and
``docker stats`` alternate which goes first from round to round.

After the last collect_stats it reads every container's record in the service's Redis and checks
that its ``stats_at`` (the time of the sample) is recent. Every container labelled
containerizer-bench=stats is removed at the end, also after a failure or Ctrl-C.

    .venv/bin/python -m bench.stats -n 100
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

import docker
import docker.errors
import redis
from celery import Celery

from bench._service import REDIS, STATE_DB, call, median, running_service

IMAGE = "containerizer-test/busybox:latest"
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
LABELS = {"containerizer-bench": "stats"}
LABEL_FILTER = "containerizer-bench=stats"
STATE_PREFIX = "containerizer-bench:"  # CONTAINERIZER_REDIS_PREFIX that bench._service sets.
COLLECT_TASK = "containerizer.maintenance.collect_stats"

ROUNDS = 3
WARMUP = 1
SERIAL_SAMPLE = 5  # Containers the serial sweeps time, to extrapolate from.
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


def serial_sweep(client: docker.DockerClient, ids: list[str], *, one_shot: bool) -> list[float]:
    """Seconds of each stats call, one container after another."""
    containers = [client.containers.get(cid) for cid in ids]
    seconds = []
    for container in containers:
        began = time.perf_counter()
        if one_shot:
            container.stats(stream=False, one_shot=True)
        else:
            container.stats(stream=False)
        seconds.append(time.perf_counter() - began)
    return seconds


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


def measure(app: Celery, client: docker.DockerClient, count: int, batch: int) -> None:
    ids = start_containers(app, count, batch)
    state = redis.Redis.from_url(f"{REDIS}/{STATE_DB}")

    def timed_collect() -> None:
        idle()
        sent_at = time.time()
        sweeps.append(collect_stats(app))
        freshness.append(check_freshness(state, ids, sent_at))

    def timed_cli() -> None:
        idle()
        cli.append(docker_stats_cli(ids))

    sweeps: list[Sweep] = []
    freshness: list[Freshness] = []
    cli: list[float] = []
    for _ in range(WARMUP):
        timed_collect()
        timed_cli()
    sweeps.clear()
    freshness.clear()
    cli.clear()
    for index in range(ROUNDS):
        # Alternate which goes first, and end on collect_stats: freshness is checked after it.
        steps: list[Callable[[], None]] = [timed_cli, timed_collect]
        if (ROUNDS - 1 - index) % 2:
            steps.reverse()
        for step in steps:
            step()
        print(f"  round {index + 1}/{ROUNDS} done", file=sys.stderr, flush=True)

    sample = ids[:SERIAL_SAMPLE]
    idle()
    two_sample = serial_sweep(client, sample, one_shot=False)
    idle()
    one_shot = serial_sweep(client, sample, one_shot=True)
    state.close()
    report(count, sweeps, freshness[-1], cli, two_sample, one_shot)


def report(
    count: int,
    sweeps: list[Sweep],
    fresh: Freshness,
    cli: list[float],
    two_sample: list[float],
    one_shot: list[float],
) -> None:
    wall = median([s.wall for s in sweeps])
    task = median([s.task_seconds for s in sweeps])
    cli_median = median(cli)
    per_two = sum(two_sample) / len(two_sample)
    per_one = sum(one_shot) / len(one_shot)

    def rounds(values: list[float]) -> str:
        return ", ".join(f"{v:.3f}" for v in values)

    print(
        f"containers: {count} running ({IMAGE}); {ROUNDS} timed rounds after {WARMUP} warm-up,"
        f" {IDLE_SECONDS} s idle before each step"
    )
    print(f"{'method':<44} {'median s':>9}   rounds (s)")
    print(
        f"{'collect_stats, task round trip':<44} {wall:9.3f}   {rounds([s.wall for s in sweeps])}"
    )
    print(
        f"{'collect_stats, task seconds':<44} {task:9.3f}"
        f"   {rounds([s.task_seconds for s in sweeps])}"
    )
    print(f"{'docker stats --no-stream':<44} {cli_median:9.3f}   {rounds(cli)}")
    print(
        f"{f'serial stats(stream=False) x{count} (extrap.)':<44} {per_two * count:9.3f}"
        f"   {per_two:.3f} per container over {len(two_sample)}: {rounds(two_sample)}"
    )
    print(
        f"{f'serial stats(one_shot=True) x{count} (extrap.)':<44} {per_one * count:9.3f}"
        f"   {per_one:.3f} per container over {len(one_shot)}: {rounds(one_shot)}"
    )
    sampled = {(s.containers, s.skipped) for s in sweeps}
    print(f"collect_stats (containers, skipped) per round: {sorted(sampled)}")
    oldest = "n/a" if fresh.oldest_age is None else f"{fresh.oldest_age:.2f} s"
    print(
        f"records after the last sweep: {fresh.fresh}/{fresh.total} with stats_at within"
        f" {FRESH_SECONDS:.0f} s (oldest {oldest}); {fresh.during_sweep}/{fresh.total}"
        " sampled after the sweep was sent"
    )
    for problem in fresh.problems[:10]:
        print(f"  {problem}")
    print(f"speed-up vs docker stats --no-stream: {cli_median / wall:.2f}x")
    print(f"speed-up vs serial two-sample sweep (extrap.): {per_two * count / wall:.1f}x")

    checks = [
        (
            f"collect_stats median {wall:.3f} s < {SWEEP_LIMIT_SECONDS} s",
            wall < SWEEP_LIMIT_SECONDS,
        ),
        (
            f"collect_stats ({wall:.3f} s) faster than"
            f" docker stats --no-stream ({cli_median:.3f} s)",
            wall < cli_median,
        ),
        (
            f"all records fresh ({fresh.fresh}/{fresh.total})",
            fresh.fresh == fresh.total and all(s.containers >= count for s in sweeps),
        ),
    ]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="running containers (default 100)")
    parser.add_argument(
        "--batch", type=int, default=BATCH, help=f"run tasks in flight (default {BATCH})"
    )
    parser.add_argument(
        "--log-level", help="the service's CONTAINERIZER_LOG_LEVEL (INFO logs each sweep)"
    )
    args = parser.parse_args()
    if args.n < SERIAL_SAMPLE:
        parser.error(f"-n must be at least {SERIAL_SAMPLE}")

    client = docker.from_env(timeout=60)
    client.images.get(IMAGE)
    try:
        overrides = {
            "CONTAINERIZER_STATS_INTERVAL_SECONDS": "3600",
            # No /metrics endpoint: its fixed default port may be taken by another service.
            "CONTAINERIZER_METRICS_PORT": "0",
        }
        if args.log_level:
            overrides["CONTAINERIZER_LOG_LEVEL"] = args.log_level
        with running_service(**overrides) as app:
            measure(app, client, args.n, args.batch)
    finally:
        removed = remove_all(client)
        print(f"  removed {removed} containers", file=sys.stderr, flush=True)
        client.close()


if __name__ == "__main__":
    main()

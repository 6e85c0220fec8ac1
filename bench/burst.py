"""Bursts: N containers asked for at once through ``run`` (sent by name, as another service would)
against docker-py doing the same creates and starts from a thread pool of 16, alternated in the
same run; the same for N removes; then the queue's own throughput: 1,000 mixed tasks at once (50
runs among list, inspect and stats), with the p50 and p99 from send to result, and nothing lost.

    .venv/bin/python -m bench.burst                 # N = 50 and 200, 3 rounds each
    .venv/bin/python -m bench.burst -n 50 --rounds 3 --plot bench/burst.png
    .venv/bin/python -m bench.burst -n 10 --rounds 1 --mixed-runs 0 --mixed-kinds list \
        --mixed-against a6a311b                     # 1,000 lists, against the code of a6a311b

The direct path creates each container with the keywords the service would give Docker for the
same spec (workers/container_config.py: the hardened defaults included), so that both paths ask
dockerd for the same work. A burst is timed from the first send to the last container running
(the service: every run's result; docker-py: every start returned). Medians over the rounds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import docker
from celery import Celery

from bench._service import (
    _running_service,
    line_plot,
    median,
    one_benchmark_at_a_time,
    running_service,
)
from bench.compare import checkout
from config.settings import Settings
from workers.container_config import create_kwargs
from workers.spec import parse_spec

IMAGE = "containerizer-test/busybox:latest"
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
LABEL = "containerizer-bench"
THREADS = 16


def spec(index: int, tag: str) -> dict[str, Any]:
    return {
        "image": IMAGE,
        "command": COMMAND,
        "name": f"bench-{tag}-{index}",
        "labels": {LABEL: "burst"},
    }


def service_burst(app: Celery, n: int, tag: str) -> tuple[float, list[str]]:
    began = time.perf_counter()
    results = [
        app.send_task(
            "containerizer.containers.run", kwargs={"spec": spec(i, tag)}, queue="containers"
        )
        for i in range(n)
    ]
    ids = [r.get(timeout=600)["id"] for r in results]
    return time.perf_counter() - began, ids


def direct_burst(client: docker.DockerClient, n: int, tag: str) -> tuple[float, list[str]]:
    settings = Settings()

    def one(i: int) -> str:
        kwargs = create_kwargs(parse_spec(spec(i, tag)), settings)
        container = client.containers.create(**kwargs)
        container.start()
        return str(container.id)

    began = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        ids = list(pool.map(one, range(n)))
    return time.perf_counter() - began, ids


def service_removes(app: Celery, ids: list[str]) -> float:
    began = time.perf_counter()
    results = [
        app.send_task(
            "containerizer.containers.remove",
            kwargs={"container": cid, "force": True},
            queue="containers",
        )
        for cid in ids
    ]
    for r in results:
        r.get(timeout=600)
    return time.perf_counter() - began


def direct_removes(client: docker.DockerClient, ids: list[str]) -> float:
    began = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda cid: client.api.remove_container(cid, force=True), ids))
    return time.perf_counter() - began


MIXED_KINDS = ("list", "inspect", "stats")


def mixed(
    app: Celery,
    ids: list[str],
    total: int = 1000,
    runs: int = 50,
    kinds: tuple[str, ...] = MIXED_KINDS,
) -> dict[str, Any]:
    """``total`` tasks at once: ``runs`` runs spread among ``kinds`` (list, inspect, stats) in
    turn; send to result of each, and whether every one came back SUCCESS (nothing lost)."""
    arguments: dict[str, dict[str, Any]] = {
        "list": {},
        "inspect": {"container": ids[0]},
        "stats": {"container": ids[-1]},
    }
    tasks = [(f"containerizer.containers.{kind}", arguments[kind]) for kind in kinds]
    every = max(total // max(runs, 1), 1)
    sent: list[tuple[float, Any]] = []
    began = time.perf_counter()
    for i in range(total):
        if runs and i % every == 0 and i // every < runs:
            name, kwargs = "containerizer.containers.run", {"spec": spec(i, "mixed-run")}
        else:
            name, kwargs = tasks[i % len(tasks)]
        sent.append((time.perf_counter(), app.send_task(name, kwargs=kwargs, queue="containers")))
    latencies, failed = [], 0
    for at, result in sent:
        try:
            result.get(timeout=600)
        except Exception:  # Counted: the figure is "nothing lost".
            failed += 1
        latencies.append(time.perf_counter() - at)  # An upper bound: read in send order.
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "tasks": total,
        "runs": min(runs, total),
        "kinds": kinds,
        "failed": failed,
        "seconds": elapsed,
        "per_second": total / elapsed,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[max(int(len(latencies) * 0.99) - 1, 0)],
    }


def cleanup(client: docker.DockerClient) -> None:
    for container in client.containers.list(all=True, filters={"label": f"{LABEL}=burst"}):
        container.remove(force=True)


def run(
    sizes: list[int],
    rounds: int,
    plot: Path | None,
    total: int,
    runs: int,
    against: str | None = None,
    kinds: tuple[str, ...] = MIXED_KINDS,
) -> bool:
    """The bursts, then the mixed throughput (also on the code of git ref ``against``, when
    given, in this run); whether no mixed task was lost."""
    client = docker.from_env(timeout=600)
    cleanup(client)
    figures: dict[int, dict[str, list[float]]] = {}
    with running_service() as app:
        for n in sizes:
            times: dict[str, list[float]] = {k: [] for k in ("service", "direct", "rm-s", "rm-d")}
            paths: list[tuple[str, Callable[[str], tuple[float, list[str]]]]] = [
                ("service", partial(service_burst, app, n)),
                ("direct", partial(direct_burst, client, n)),
            ]
            for r in range(rounds):
                order = paths[:]
                random.shuffle(order)
                for label, burst in order:
                    seconds, ids = burst(f"{n}-{r}-{label}")
                    times[label].append(seconds)
                    remove = service_removes if label == "service" else direct_removes
                    target: Any = app if label == "service" else client
                    times["rm-s" if label == "service" else "rm-d"].append(remove(target, ids))
                cleanup(client)
            figures[n] = times
            report(n, times)
        throughput = mixed_on(app, total, runs, kinds)
    cleanup(client)
    print_mixed("this tree", throughput)
    lost = throughput["failed"]
    if against is not None:
        with (
            one_benchmark_at_a_time(),
            checkout(against) as source,
            _running_service(source=source) as app,
        ):
            baseline = mixed_on(app, total, runs, kinds)
        cleanup(client)
        print_mixed(against, baseline)
        ratio = throughput["per_second"] / baseline["per_second"]
        print(f"tasks/s, this tree / {against}: {ratio:.2f}")
        lost += baseline["failed"]
    if plot is not None:
        draw(figures, plot)
    return bool(lost == 0)


def mixed_on(app: Celery, total: int, runs: int, kinds: tuple[str, ...]) -> dict[str, Any]:
    """The mixed burst on a service, around 10 containers of its own (removed after)."""
    keep = service_burst(app, 10, "mixed")[1]
    throughput = mixed(app, keep, total=total, runs=runs, kinds=kinds)
    service_removes(app, keep)
    return throughput


def print_mixed(label: str, throughput: dict[str, Any]) -> None:
    print(
        f"{label}: {throughput['tasks']} mixed tasks at once ({throughput['runs']} runs, the rest"
        f" {', '.join(throughput['kinds'])} in turn): {throughput['seconds']:.2f} s,"
        f" {throughput['per_second']:.0f} tasks/s, p50 {throughput['p50'] * 1000:.0f} ms,"
        f" p99 {throughput['p99'] * 1000:.0f} ms (send to result);"
        f" {throughput['failed']} lost or failed"
    )


def report(n: int, times: dict[str, list[float]]) -> None:
    s, d = median(times["service"]), median(times["direct"])
    rs, rd = median(times["rm-s"]), median(times["rm-d"])
    print(f"N={n}: {len(times['service'])} rounds, medians")
    print(
        f"  run    service {s:6.2f} s ({n / s:5.1f}/s)   docker-py x{THREADS} {d:6.2f} s"
        f" ({n / d:5.1f}/s)   ratio {s / d:.3f}"
    )
    print(
        f"  remove service {rs:6.2f} s ({n / rs:5.1f}/s)   docker-py x{THREADS} {rd:6.2f} s"
        f" ({n / rd:5.1f}/s)   ratio {rs / rd:.3f}"
    )
    spread = statistics.pstdev(times["service"]) if len(times["service"]) > 1 else 0.0
    print(
        f"  rounds: service {[round(t, 2) for t in times['service']]}"
        f" direct {[round(t, 2) for t in times['direct']]} (service stdev {spread:.2f} s)"
    )


def draw(figures: dict[int, dict[str, list[float]]], path: Path) -> None:
    sizes = sorted(figures)
    lines = [
        (label, [median(figures[n][key]) for n in sizes], {"linestyle": style, "marker": "o"})
        for key, label, style in (
            ("service", "containerizer run", "-"),
            ("direct", f"docker-py x{THREADS} create+start", "-"),
            ("rm-s", "containerizer remove", "--"),
            ("rm-d", f"docker-py x{THREADS} remove", "--"),
        )
    ]
    line_plot(
        path,
        sizes,
        lines,
        xlabel="containers asked for at once",
        ylabel="seconds until all done",
        title="Burst: run (create + start) and remove",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-n", type=int, action="append", help="burst size (repeat; default 50, 200)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--mixed", type=int, default=1000, help="tasks of the mixed burst")
    parser.add_argument("--mixed-runs", type=int, default=50, help="runs among them")
    parser.add_argument(
        "--mixed-kinds",
        default=",".join(MIXED_KINDS),
        help="tasks of the mixed burst besides runs, in turn (default list,inspect,stats)",
    )
    parser.add_argument(
        "--mixed-against",
        metavar="REF",
        help="also run the mixed burst on this git ref's code (a worktree), as its baseline",
    )
    args = parser.parse_args()
    ok = run(
        args.n or [50, 200],
        args.rounds,
        args.plot,
        args.mixed,
        args.mixed_runs,
        args.mixed_against,
        tuple(kind for kind in args.mixed_kinds.split(",") if kind),
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

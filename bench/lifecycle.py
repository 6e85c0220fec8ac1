"""Container lifecycle through containerizer's tasks versus docker-py directly, in the same run.

Each round is create + start + stop + remove of one container. Rounds alternate between the task
path (four tasks sent by name to a `containerizer up` started here, each awaited) and the direct
path (docker-py against the same daemon), so that both see the same machine state.

    make bench-lifecycle  (or: .venv/bin/python -m bench.lifecycle -n 300; about 3 minutes)

A round takes about a quarter of a second and varies by some 15 ms (container start and stop). The
ratio of two medians of 100 rounds has a standard error of about 0.012, as much as the task path's
margin to 1.10, so runs of 100 rounds land on either side of it by chance; 300 rounds halve that.
The interval printed (bootstrap over the rounds) says how far this run's figure can be trusted.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from itertools import pairwise

import docker
from celery import Celery

from bench._service import call, median, running_service

IMAGE = "containerizer-test/busybox:latest"
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
LABELS = {"containerizer-bench": "lifecycle"}


OPERATIONS = ("create", "start", "stop", "remove")


def direct_round(client: docker.DockerClient) -> list[float]:
    """One round through docker-py: the seconds of each of OPERATIONS."""
    marks = [time.perf_counter()]
    container = client.containers.create(IMAGE, COMMAND, labels=LABELS)
    marks.append(time.perf_counter())
    container.start()
    marks.append(time.perf_counter())
    container.stop(timeout=10)
    marks.append(time.perf_counter())
    container.remove()
    marks.append(time.perf_counter())
    return [later - earlier for earlier, later in pairwise(marks)]


def task_round(app: Celery) -> list[float]:
    """One round through the tasks, each awaited: the seconds of each of OPERATIONS."""
    spec = {"image": IMAGE, "command": COMMAND, "labels": LABELS}
    marks = [time.perf_counter()]
    created = call(app, "containerizer.containers.create", spec=spec)
    marks.append(time.perf_counter())
    call(app, "containerizer.containers.start", container=created["id"])
    marks.append(time.perf_counter())
    call(app, "containerizer.containers.stop", container=created["id"], timeout=10)
    marks.append(time.perf_counter())
    call(app, "containerizer.containers.remove", container=created["id"])
    marks.append(time.perf_counter())
    return [later - earlier for earlier, later in pairwise(marks)]


def ratio_interval(
    direct: list[float], tasks: list[float], resamples: int = 2000, seed: int = 1
) -> tuple[float, float]:
    """A 95 % bootstrap interval of median(tasks) / median(direct), rounds resampled."""
    rng = random.Random(seed)
    ratios = sorted(
        median(rng.choices(tasks, k=len(tasks))) / median(rng.choices(direct, k=len(direct)))
        for _ in range(resamples)
    )
    return ratios[int(0.025 * resamples)], ratios[int(0.975 * resamples) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="rounds per path (default 300)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=5,
        help="untimed rounds per path first, while the service settles (default 5)",
    )
    parser.add_argument(
        "--without-flower",
        action="store_true",
        help="run the service without Flower (it may run on another machine)",
    )
    args = parser.parse_args()
    extra_env = {"CONTAINERIZER_FLOWER_PORT": "0"} if args.without_flower else {}

    client = docker.from_env()
    client.images.get(IMAGE)
    with running_service(**extra_env) as app:
        for _ in range(args.warmup):
            direct_round(client)
            task_round(app)
        direct_rounds: list[list[float]] = []
        task_rounds: list[list[float]] = []
        for index in range(args.n):
            # Alternate which path goes first, so neither always follows the other.
            if index % 2:
                task_rounds.append(task_round(app))
                direct_rounds.append(direct_round(client))
            else:
                direct_rounds.append(direct_round(client))
                task_rounds.append(task_round(app))
    for leftover in client.containers.list(all=True, filters={"label": "containerizer-bench"}):
        leftover.remove(force=True)

    direct = [sum(round_) for round_ in direct_rounds]
    tasks = [sum(round_) for round_ in task_rounds]
    d, t = median(direct), median(tasks)
    print(f"rounds per path: {args.n} (create + start + stop + remove), image {IMAGE}")
    for position, operation in enumerate(OPERATIONS):
        op_direct = median([round_[position] for round_ in direct_rounds]) * 1000
        op_tasks = median([round_[position] for round_ in task_rounds]) * 1000
        print(
            f"  {operation:<7} median   direct {op_direct:6.1f} ms   task {op_tasks:6.1f} ms"
            f"   task - direct {op_tasks - op_direct:+5.1f} ms"
        )
    for label, values in (("direct docker-py", direct), ("containerizer tasks", tasks)):
        print(
            f"{label:<20} median {median(values) * 1000:7.1f} ms"
            f"   stdev {statistics.stdev(values) * 1000:6.1f} ms"
        )
    low, high = ratio_interval(direct, tasks)
    print(f"ratio tasks/direct (median): {t / d:.3f}   95 % interval {low:.3f}-{high:.3f}")


if __name__ == "__main__":
    main()

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

import docker
from celery import Celery

from bench._service import call, median, running_service

IMAGE = "containerizer-test/busybox:latest"
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
LABELS = {"containerizer-bench": "lifecycle"}


def direct_round(client: docker.DockerClient) -> float:
    began = time.perf_counter()
    container = client.containers.create(IMAGE, COMMAND, labels=LABELS)
    container.start()
    container.stop(timeout=10)
    container.remove()
    return time.perf_counter() - began


def task_round(app: Celery) -> float:
    spec = {"image": IMAGE, "command": COMMAND, "labels": LABELS}
    began = time.perf_counter()
    created = call(app, "containerizer.containers.create", spec=spec)
    call(app, "containerizer.containers.start", container=created["id"])
    call(app, "containerizer.containers.stop", container=created["id"], timeout=10)
    call(app, "containerizer.containers.remove", container=created["id"])
    return time.perf_counter() - began


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
        direct: list[float] = []
        tasks: list[float] = []
        for index in range(args.n):
            # Alternate which path goes first, so neither always follows the other.
            if index % 2:
                tasks.append(task_round(app))
                direct.append(direct_round(client))
            else:
                direct.append(direct_round(client))
                tasks.append(task_round(app))
    for leftover in client.containers.list(all=True, filters={"label": "containerizer-bench"}):
        leftover.remove(force=True)

    d, t = median(direct), median(tasks)
    print(f"rounds per path: {args.n} (create + start + stop + remove), image {IMAGE}")
    for label, values in (("direct docker-py", direct), ("containerizer tasks", tasks)):
        print(
            f"{label:<20} median {median(values) * 1000:7.1f} ms"
            f"   stdev {statistics.stdev(values) * 1000:6.1f} ms"
        )
    low, high = ratio_interval(direct, tasks)
    print(f"ratio tasks/direct (median): {t / d:.3f}   95 % interval {low:.3f}-{high:.3f}")


if __name__ == "__main__":
    main()

"""40 runs placed on one Docker host against the same 40 spread over two, in the same run.

Two hosts of one deployment on this machine: host ``b`` is the machine's dockerd, host ``a`` a
private dockerd of its own (socket, data root, exec root, bridge; tests/integration/daemons.py),
each with its `containerizer up` on the benchmark's Redis databases. A round sends N
``containerizer.containers.run`` by name at once, pinned to ``b`` (one host) or without a host
(placement spreads them), and times until every one reports running; then removes them. The two
kinds alternate which goes first; medians over the rounds, and the ratio.

Both daemons share this machine's CPUs, so two hosts here are not twice the capacity of one: the
figure says what the placement and the forwarding cost and gain on one machine, not what two
machines would do.

    .venv/bin/python -m bench.hosts              # N = 40, 3 rounds
    .venv/bin/python -m bench.hosts -n 10 --rounds 1
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import docker
from celery import Celery

from bench._service import _running_service, median, one_benchmark_at_a_time
from tests.integration.daemons import private_dockerd

IMAGE = "containerizer-test/busybox:latest"
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
LABEL = "containerizer-bench"
BRIDGE, ADDRESS = "ctzbench1", "198.18.249.1/24"
# Both hosts beat every second and are dead after 10 s without: placement sees both at once.
CLUSTER = {
    "CONTAINERIZER_HEARTBEAT_SECONDS": "1",
    "CONTAINERIZER_HOST_DEAD_SECONDS": "10",
    "CONTAINERIZER_STATS_INTERVAL_SECONDS": "3600",
}


def spec(index: int, tag: str) -> dict[str, Any]:
    return {
        "image": IMAGE,
        "command": COMMAND,
        "name": f"bench-hosts-{tag}-{index}",
        "labels": {LABEL: "hosts"},
        "network_mode": "none",
    }


def burst(
    app: Celery, count: int, tag: str, host: str | None
) -> tuple[float, list[dict[str, Any]]]:
    began = time.perf_counter()
    results = [
        app.send_task(
            "containerizer.containers.run",
            kwargs={"spec": spec(i, tag), "host": host},
            queue="containers",
        )
        for i in range(count)
    ]
    started = [r.get(timeout=600) for r in results]
    return time.perf_counter() - began, started


def remove(app: Celery, started: list[dict[str, Any]]) -> None:
    results = [
        app.send_task(
            "containerizer.containers.remove",
            kwargs={"container": row["id"], "force": True},
            queue="containers",
        )
        for row in started
    ]
    for result in results:
        result.get(timeout=600)


@contextlib.contextmanager
def two_hosts() -> Iterator[tuple[Celery, docker.DockerClient]]:
    """Hosts b (this machine's dockerd) and a (a private one), one deployment."""
    machine = docker.from_env(timeout=600)
    prefix = f"containerizer-bench-hosts-{uuid.uuid4().hex[:6]}:"
    common = {**CLUSTER, "CONTAINERIZER_REDIS_PREFIX": prefix}
    with (
        one_benchmark_at_a_time(),
        private_dockerd(machine, IMAGE, bridge=BRIDGE, address=ADDRESS) as daemon_a,
        _running_service({**common, "CONTAINERIZER_HOST_NAME": "b"}) as app,
        _running_service(
            {
                **common,
                "CONTAINERIZER_HOST_NAME": "a",
                "DOCKER_HOST": daemon_a.url,
                "CONTAINERIZER_RUN_BEAT": "false",
                "CONTAINERIZER_FLOWER_PORT": "0",
            },
            flush=False,
        ),
    ):
        deadline = time.monotonic() + 60
        while True:
            alive = app.send_task("containerizer.maintenance.hosts", queue="maintenance").get(
                timeout=60
            )
            if {h["host"] for h in alive if h["alive"]} >= {"a", "b"}:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"both hosts not alive: {alive}")
            time.sleep(0.5)
        try:
            yield app, machine
        finally:
            machine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=40, help="runs per burst")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"one host": [], "two hosts": []}
    spread: Counter[str] = Counter()
    with two_hosts() as (app, _):
        remove(app, burst(app, 4, "warm", None)[1])  # Both hosts' workers warmed up.
        for index in range(args.rounds):
            order = ["one host", "two hosts"] if index % 2 == 0 else ["two hosts", "one host"]
            for kind in order:
                host = "b" if kind == "one host" else None
                seconds, started = burst(app, args.n, f"{index}-{kind[:3]}", host)
                times[kind].append(seconds)
                if host is None:
                    spread.update(row["host"] for row in started)
                remove(app, started)
            print(f"  round {index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        leftovers = app.send_task(
            "containerizer.containers.list", kwargs={"all": True}, queue="containers"
        ).get(timeout=60)
        for row in leftovers:
            app.send_task(
                "containerizer.containers.remove",
                kwargs={"container": row["id"], "force": True},
                queue="containers",
            ).get(timeout=120)
    one, two = median(times["one host"]), median(times["two hosts"])
    print(f"{args.n} runs at once, {args.rounds} rounds, medians (both daemons on this machine)")
    print(
        f"  one host (pinned to b)   {one:6.2f} s ({args.n / one:5.1f}/s)"
        f"   rounds {[round(t, 2) for t in times['one host']]}"
    )
    print(
        f"  two hosts (placed)       {two:6.2f} s ({args.n / two:5.1f}/s)"
        f"   rounds {[round(t, 2) for t in times['two hosts']]}"
    )
    print(f"  ratio two/one {two / one:.3f}; placed: {dict(sorted(spread.items()))}")


if __name__ == "__main__":
    main()

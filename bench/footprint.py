"""Memory of everything `containerizer up` runs: PSS per process, idle and with N containers.

Starts `containerizer up` (as the README runs it), waits for it to settle, and reads each process
of its tree: PSS (proportional set size: each shared page divided among the processes sharing
it, so the figures add up to what the tree costs the machine), USS and RSS, from
/proc/<pid>/smaps_rollup through psutil. Then it runs N containers through the service, lets
one stats sweep and one reconcile pass over them, and reads again. It does so twice in one run:
with the configuration the service had before (the baseline) and with today's defaults.

The processes are grouped by where they must run: the part on every Docker host (the workers, the
events agent and the ``up`` supervisor that starts them), and the part a deployment needs once
(Flower, beat, the metrics endpoint: they read Redis and serve every host).

    .venv/bin/python -m bench.footprint              # idle, then 100 containers
    .venv/bin/python -m bench.footprint -n 20
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass

import docker
import psutil
from celery import Celery

from bench._service import call, running_service

IMAGE = "containerizer-test/busybox:latest"
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
LABEL = "containerizer-bench"
MIB = 1024 * 1024
SETTLE_SECONDS = 10.0  # After start (or after the containers): imports done, caches warm.
BATCH = 20

# Where each process must run (see the module's docstring), by what its command line holds.
PER_HOST = ("worker", "events", "up")
ONCE = ("flower", "beat", "metrics", "redis")

SINGLE_HOST_GOAL_MIB = 250.0
PER_HOST_GOAL_MIB = 150.0


@dataclass(frozen=True)
class Reading:
    pid: int
    role: str
    pss: float
    uss: float
    rss: float

    @property
    def per_host(self) -> bool:
        return self.role.split(":")[0] in PER_HOST


def role_of(process: psutil.Process) -> str:
    """A short name for a process of the tree: worker:containers, beat, flower, events, ...
    (from its command line, or the title `up` or Celery gave a forked child)."""
    argv = process.cmdline()
    text = " ".join(argv)
    if "redis-server" in text:
        return "redis"
    for kind in ("containers", "images", "maintenance"):
        if f"{kind}@" in text:
            return f"worker:{kind}"
    for role in ("flower", "beat", "events", "metrics"):
        if role in text:
            return role
    return "up" if text.rstrip().endswith(" up") else str(process.name())


def tree(root: psutil.Process) -> list[psutil.Process]:
    return [root, *root.children(recursive=True)]


def read(processes: Iterable[psutil.Process]) -> list[Reading]:
    readings = []
    for process in processes:
        try:
            info = process.memory_full_info()
            readings.append(
                Reading(
                    process.pid, role_of(process), info.pss / MIB, info.uss / MIB, info.rss / MIB
                )
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return sorted(readings, key=lambda r: (not r.per_host, r.role, r.pid))


def find_up() -> psutil.Process:
    """The `containerizer up` that bench._service started (its state dir is a bench one)."""
    for process in psutil.process_iter(["cmdline", "environ"]):
        try:
            argv = process.info["cmdline"] or []
            env = process.info["environ"] or {}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if argv[-1:] == ["up"] and "containerizer-bench-" in env.get("CONTAINERIZER_STATE_DIR", ""):
            return process
    raise RuntimeError("the benchmark's containerizer up is not running")


def report(title: str, readings: list[Reading]) -> tuple[float, float]:
    print(f"{title}: {len(readings)} processes")
    print(f"  {'process':<22} {'pid':>7} {'PSS MiB':>9} {'USS MiB':>9} {'RSS MiB':>9}")
    for r in readings:
        print(f"  {r.role:<22} {r.pid:>7} {r.pss:9.1f} {r.uss:9.1f} {r.rss:9.1f}")
    total = sum(r.pss for r in readings)
    per_host = sum(r.pss for r in readings if r.per_host)
    print(
        f"  {'total':<22} {'':>7} {total:9.1f} {sum(r.uss for r in readings):9.1f}"
        f" {sum(r.rss for r in readings):9.1f}"
    )
    print(f"  on every Docker host (workers, events, up): {per_host:.1f} MiB PSS")
    print(f"  once per deployment (Flower, beat, metrics): {total - per_host:.1f} MiB PSS")
    return total, per_host


def run_containers(app: Celery, count: int) -> list[str]:
    spec = {"image": IMAGE, "command": COMMAND, "labels": {LABEL: "footprint"}}
    ids: list[str] = []
    while len(ids) < count:
        batch = [
            app.send_task("containerizer.containers.run", kwargs={"spec": spec}, queue="containers")
            for _ in range(min(BATCH, count - len(ids)))
        ]
        ids += [str(result.get(timeout=300)["id"]) for result in batch]
    return ids


def cleanup(client: docker.DockerClient) -> None:
    for container in client.containers.list(all=True, filters={"label": f"{LABEL}=footprint"}):
        container.remove(force=True)


#: The configurations measured, in one run: as the service ran before issue 14 (a prefork
#: containers worker with one process per CPU, each service its own interpreter), and today's
#: defaults (threads pools, services forked from `up` after it imported their code).
CONFIGURATIONS = {
    "baseline (prefork, one interpreter each)": {
        "CONTAINERIZER_WORKER_POOL": "prefork",
        "CONTAINERIZER_FORK_SERVICES": "false",
    },
    "default (threads, forked from up)": {},
}


def measure(label: str, env: dict[str, str], count: int, settle: float) -> tuple[float, float]:
    """Idle and with ``count`` containers; returns (idle total, idle on every host)."""
    client = docker.from_env(timeout=300)
    cleanup(client)
    try:
        # No Redis of up's own: the benchmark's Redis is the machine's, as in production.
        with running_service(**env) as app:
            time.sleep(settle)
            root = find_up()
            idle, idle_host = report(f"{label}, idle", read(tree(root)))
            run_containers(app, count)
            call(app, "containerizer.maintenance.collect_stats", queue="maintenance")
            call(app, "containerizer.maintenance.reconcile", queue="maintenance")
            time.sleep(settle)
            busy, busy_host = report(f"{label}, {count} containers", read(tree(root)))
    finally:
        cleanup(client)
        client.close()
    print(
        f"  with {count} containers: whole service {busy:.1f} MiB PSS ({busy - idle:+.1f} MiB),"
        f" the part on every host {busy_host:.1f} MiB ({busy_host - idle_host:+.1f} MiB)"
    )
    print()
    return idle, idle_host


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="containers under management")
    parser.add_argument("--settle", type=float, default=SETTLE_SECONDS)
    args = parser.parse_args()
    figures = {
        label: measure(label, env, args.n, args.settle) for label, env in CONFIGURATIONS.items()
    }
    (base, base_host), (idle, idle_host) = figures.values()
    print(
        f"idle: whole service {idle:.1f} MiB PSS against {base:.1f} (x{idle / base:.2f}),"
        f" on every host {idle_host:.1f} against {base_host:.1f} (x{idle_host / base_host:.2f})"
    )
    checks = [
        (
            f"idle, whole single-host service {idle:.1f} MiB PSS < {SINGLE_HOST_GOAL_MIB:.0f}",
            idle < SINGLE_HOST_GOAL_MIB,
        ),
        (
            f"idle, the part on every host {idle_host:.1f} MiB PSS < {PER_HOST_GOAL_MIB:.0f}",
            idle_host < PER_HOST_GOAL_MIB,
        ),
    ]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    sys.exit(0 if all(ok for _, ok in checks) else 1)


if __name__ == "__main__":
    main()

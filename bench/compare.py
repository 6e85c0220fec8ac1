"""The lifecycle benchmark for two versions of containerizer at once: this tree against a git ref.

Each version runs its own `containerizer up` on a redis-server of its own; every round runs
create + start + stop + remove once through docker-py and once through each version, in a random
order, so that the versions are compared on the same machine at the same moments. Machine state
moves whole runs of bench/lifecycle.py by a hundredth or two; side by side, the difference
between two versions is good to a few thousandths.

    .venv/bin/python -m bench.compare HEAD~1 [-n 80]
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import docker
import redis

from bench._service import _running_service, median, one_benchmark_at_a_time
from bench.lifecycle import direct_round, task_round

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server of its own on a free port, keeping nothing on disk."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """``ref`` checked out in a temporary git worktree."""
    path = Path(tempfile.mkdtemp(prefix="containerizer-compare-")) / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), ref], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False
        )
        shutil.rmtree(path.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the git ref to compare this tree with (e.g. HEAD~1)")
    parser.add_argument("-n", type=int, default=80, help="rounds per path (default 80)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds per path first")
    args = parser.parse_args()

    client = docker.from_env()
    with ExitStack() as stack:
        stack.enter_context(one_benchmark_at_a_time())
        source = stack.enter_context(checkout(args.ref))
        ours = stack.enter_context(
            _running_service(redis_url=stack.enter_context(redis_server()), dbs=(0, 1, 2))
        )
        theirs = stack.enter_context(
            _running_service(
                redis_url=stack.enter_context(redis_server()), dbs=(0, 1, 2), source=source
            )
        )
        paths: dict[str, Callable[[], float]] = {
            "direct docker-py": lambda: sum(direct_round(client)),
            f"tasks, {args.ref}": lambda: sum(task_round(theirs)),
            "tasks, this tree": lambda: sum(task_round(ours)),
        }
        for _ in range(args.warmup):
            for run in paths.values():
                run()
        times: dict[str, list[float]] = {label: [] for label in paths}
        order = list(paths)
        for _ in range(args.n):
            random.shuffle(order)
            for label in order:
                times[label].append(paths[label]())
    for leftover in client.containers.list(all=True, filters={"label": "containerizer-bench"}):
        leftover.remove(force=True)

    direct = median(times["direct docker-py"])
    print(f"rounds per path: {args.n} (create + start + stop + remove), in random order")
    for label, values in times.items():
        print(
            f"{label:<24} median {median(values) * 1000:7.1f} ms"
            f"   ratio {median(values) / direct:.3f}"
        )
    ours_median = median(times["tasks, this tree"])
    theirs_median = median(times[f"tasks, {args.ref}"])
    print(
        f"this tree vs {args.ref}: {(ours_median - theirs_median) * 1000:+.1f} ms a round"
        f" ({(ours_median / theirs_median - 1) * 100:+.1f} %)"
    )


if __name__ == "__main__":
    main()

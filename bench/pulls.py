"""N concurrent pulls of one uncached image through containerizer versus docker-py, in one run.

The image is about 100 MB (busybox plus one random layer) in the local open registry. Each round
runs four scenarios, each after removing the image from the host: one pull through the service
(containerizer.images.pull sent by name to a `containerizer up` started here), N pull tasks sent
at once, one direct docker-py pull, and N direct docker-py pulls from N threads (each with its own
client) started together. Rounds alternate which path goes first. For each scenario it reports
the wall time and the registry's manifest and blob requests, counted from the registry's access
log, and it checks the acceptance figures: every request succeeds, exactly one service request
reports `cached: false`, the registry sees a single pull, and N requests take at most 1.2x one.

    .venv/bin/python -m bench.pulls -n 20
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from celery import Celery

from bench._service import median, running_service

REFERENCE = "127.0.0.1:5000/containerizer-test/big:latest"
REPOSITORY_PATH = "/v2/containerizer-test/big/"
CI_STATE = Path(os.environ.get("CONTAINERIZER_CI_STATE", "/var/tmp/containerizer-ci"))
ACCESS_LOG = CI_STATE / "registry-open.log"
PULL_TASK = "containerizer.images.pull"
WAIT_SECONDS = 120.0  # Longest wait for one scenario (every request of it); a pull takes ~1 s.
LOG_SETTLE_SECONDS = 0.3  # The registry writes a line as it answers: let the last ones land.
WALL_RATIO_LIMIT = 1.2
MAX_MANIFEST_REQUESTS = MAX_BLOB_GETS = 2  # Those of a single pull.


class AccessLog:
    """The registry's access log from a mark on: requests for the benchmark's repository."""

    _REQUEST = re.compile(r'"(GET|HEAD) (/v2/\S*) HTTP/[\d.]+" \d{3} (\d+)')

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def counts(self) -> dict[str, int]:
        """Since the mark: {"HEAD manifests", "GET manifests", "GET blobs", "blob bytes"}."""
        with self.path.open("rb") as log:
            log.seek(self.offset)
            text = log.read().decode(errors="replace")
        result: dict[str, int] = {}
        for match in self._REQUEST.finditer(text):
            method, path, size = match.groups()
            if not path.startswith(REPOSITORY_PATH):
                continue
            kind = path[len(REPOSITORY_PATH) :].split("/")[0]
            key = f"{method} {kind}"
            result[key] = result.get(key, 0) + 1
            if key == "GET blobs":
                result["blob bytes"] = result.get("blob bytes", 0) + int(size)
        return result


@dataclass
class Outcome:
    """One scenario of one round."""

    wall: float
    requests: int
    succeeded: int
    uncached: int | None  # Requests reporting `cached: false` (service only).
    registry: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def remove_image(client: docker.DockerClient) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(REFERENCE, force=True)
    try:
        client.images.get(REFERENCE)
    except docker.errors.ImageNotFound:
        return
    raise RuntimeError(f"{REFERENCE} is still present after removal")


def service_pulls(app: Celery, n: int) -> Outcome:
    """N pull tasks sent by name at once (one after another, without waiting), then awaited."""
    began = time.perf_counter()
    results = [
        app.send_task(PULL_TASK, kwargs={"reference": REFERENCE}, queue="images") for _ in range(n)
    ]
    deadline = time.monotonic() + WAIT_SECONDS
    replies: list[dict[str, object]] = []
    errors: list[str] = []
    for result in results:
        try:
            replies.append(result.get(timeout=max(1.0, deadline - time.monotonic())))
        except Exception as exc:  # A failed or late task is a figure of the report.
            errors.append(f"{type(exc).__name__}: {exc}")
    wall = time.perf_counter() - began
    uncached = sum(1 for reply in replies if reply.get("cached") is False)
    return Outcome(wall, n, len(replies), uncached, errors=errors)


def direct_pulls(n: int) -> Outcome:
    """N threads, each with its own docker-py client, pulling once they all stand ready."""
    clients = [docker.from_env(timeout=int(WAIT_SECONDS)) for _ in range(n)]
    barrier = threading.Barrier(n, timeout=60)
    starts: list[float] = []
    ends: list[float] = []
    errors: list[str] = []

    def pull(client: docker.DockerClient) -> None:
        try:
            barrier.wait()
            starts.append(time.perf_counter())
            client.images.pull(REFERENCE)
            ends.append(time.perf_counter())
        except Exception as exc:  # Reported, as for the service.
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=pull, args=(client,), daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + WAIT_SECONDS + 60
    for thread in threads:
        thread.join(timeout=max(0.1, deadline - time.monotonic()))
    for client in clients:
        client.close()
    if any(thread.is_alive() for thread in threads):
        errors.append("a direct pull did not end in time")
    wall = max(ends) - min(starts) if ends else float("nan")
    return Outcome(wall, n, len(ends), None, errors=errors)


def measured(
    client: docker.DockerClient, access_log: AccessLog, scenario: Callable[[], Outcome]
) -> Outcome:
    """Run one scenario on a host without the image; add the registry requests it caused."""
    remove_image(client)
    access_log.mark()
    outcome = scenario()
    if outcome.succeeded == 0:  # Nothing to measure: say why at once rather than after the rest.
        raise RuntimeError(f"every pull failed: {outcome.errors[:3]}")
    time.sleep(LOG_SETTLE_SECONDS)
    outcome.registry = access_log.counts()
    return outcome


def manifest_requests(outcome: Outcome) -> int:
    """HEAD (tag to digest) and GET: dockerd may skip the GET when it still has the manifest."""
    return outcome.registry.get("HEAD manifests", 0) + outcome.registry.get("GET manifests", 0)


def mb(outcome: Outcome) -> float:
    return outcome.registry.get("blob bytes", 0) / 1e6


def span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def new_bench_dirs(before: set[Path]) -> list[Path]:
    """`running_service()` keeps its up.log in a fresh containerizer-bench-* temporary dir."""
    now = set(Path(tempfile.gettempdir()).glob("containerizer-bench-*"))
    return sorted(path / "up.log" for path in now - before)


def run(
    n: int, rounds: int, warmup: int, extra_env: dict[str, str]
) -> tuple[dict[str, list[Outcome]], list[Path]]:
    """Every scenario of every round, by scenario name; and the service's log files."""
    client = docker.from_env(timeout=int(WAIT_SECONDS))
    access_log = AccessLog(ACCESS_LOG)
    scenarios = scenario_names(n)
    outcomes: dict[str, list[Outcome]] = {name: [] for name in scenarios}
    existing = set(Path(tempfile.gettempdir()).glob("containerizer-bench-*"))
    try:
        with running_service(**extra_env) as app:
            logs = new_bench_dirs(existing)
            runs: dict[str, Callable[[], Outcome]] = {
                scenarios[0]: lambda: service_pulls(app, 1),
                scenarios[1]: lambda: service_pulls(app, n),
                scenarios[2]: lambda: direct_pulls(1),
                scenarios[3]: lambda: direct_pulls(n),
            }
            for _ in range(warmup):
                measured(client, access_log, runs[scenarios[0]])
                measured(client, access_log, runs[scenarios[2]])
            for index in range(rounds):
                # Alternate which path goes first, so neither always follows the other.
                order = scenarios if index % 2 == 0 else scenarios[2:] + scenarios[:2]
                for name in order:
                    outcomes[name].append(measured(client, access_log, runs[name]))
    finally:
        remove_image(client)
        client.close()
    return outcomes, logs


def scenario_names(n: int) -> tuple[str, str, str, str]:
    return ("service x1", f"service x{n}", "direct x1", f"direct x{n}")


def report(n: int, rounds: int, outcomes: dict[str, list[Outcome]]) -> None:
    scenarios = scenario_names(n)
    print(f"{REFERENCE}: {n} concurrent requests, {rounds} rounds, image removed before each")
    print(
        f"{'scenario':<12} {'wall median':>11} {'wall range':>15}"
        f" {'HEAD manifest':>13} {'GET manifest':>12} {'GET blob':>8} {'blob MB':>7}"
        f" {'ok':>9} {'uncached':>8}"
    )
    for name in scenarios:
        rows = outcomes[name]
        walls = [row.wall for row in rows]

        def column(key: str, rows: list[Outcome] = rows) -> str:
            return span([row.registry.get(key, 0) for row in rows])

        uncached = [row.uncached for row in rows if row.uncached is not None]
        print(
            f"{name:<12} {median(walls):>9.3f} s {min(walls):>6.3f}-{max(walls):.3f} s"
            f" {column('HEAD manifests'):>13} {column('GET manifests'):>12}"
            f" {column('GET blobs'):>8} {median([mb(row) for row in rows]):>7.0f}"
            f" {sum(r.succeeded for r in rows):>4}/{sum(r.requests for r in rows):<4}"
            f" {span(uncached) if uncached else '-':>8}"
        )
    print("(registry: requests a round for the repository, min-max over rounds; MB: median)")

    wall = {name: median([row.wall for row in outcomes[name]]) for name in scenarios}
    service_ratio = wall[scenarios[1]] / wall[scenarios[0]]
    print(f"ratio service x{n} / service x1: {service_ratio:.3f}")
    print(f"ratio direct x{n} / direct x1:   {wall[scenarios[3]] / wall[scenarios[2]]:.3f}")
    print(f"ratio service x{n} / direct x{n}: {wall[scenarios[1]] / wall[scenarios[3]]:.3f}")
    if n > 1:
        extra = (wall[scenarios[1]] - wall[scenarios[0]]) / (n - 1)
        print(f"service: {extra * 1000:.1f} ms per request beyond the first (hits run one by one)")

    concurrent = outcomes[scenarios[1]]
    failed = sum(row.requests - row.succeeded for row in concurrent)
    uncached_counts = [row.uncached for row in concurrent]
    manifests = max(manifest_requests(row) for row in concurrent)
    blobs = max(row.registry.get("GET blobs", 0) for row in concurrent)
    direct = outcomes[scenarios[3]]
    direct_manifests = median([manifest_requests(row) for row in direct])
    direct_blobs = median([row.registry.get("GET blobs", 0) for row in direct])
    checks = [
        (failed == 0, f"all {n} service requests succeed in every round ({failed} failed)"),
        (
            all(count == 1 for count in uncached_counts),
            f"exactly one reports cached: false (per round: {uncached_counts})",
        ),
        (
            manifests <= MAX_MANIFEST_REQUESTS and blobs <= MAX_BLOB_GETS,
            f"registry sees one pull: at most {manifests} manifest requests (HEAD + GET) and"
            f" {blobs} blob GETs a round (direct x{n}: median {direct_manifests:g} and"
            f" {direct_blobs:g})",
        ),
        (
            service_ratio <= WALL_RATIO_LIMIT,
            f"wall time of {n} requests is {service_ratio:.2f}x one pull"
            f" (limit {WALL_RATIO_LIMIT}x)",
        ),
    ]
    for ok, text in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    for name in scenarios:
        for row in outcomes[name]:
            for error in row.errors[:3]:
                print(f"error ({name}): {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="concurrent pull requests (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the four (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed single pulls per path")
    parser.add_argument(
        "--keep-log",
        action="store_true",
        help="run the service at log level INFO and print where its up.log is",
    )
    args = parser.parse_args()

    extra_env: dict[str, str] = {}
    if args.keep_log:
        extra_env["CONTAINERIZER_LOG_LEVEL"] = "INFO"
    outcomes, logs = run(args.n, args.rounds, args.warmup, extra_env)
    report(args.n, args.rounds, outcomes)
    if args.keep_log:
        for path in logs:
            print(f"service log: {path}")


if __name__ == "__main__":
    main()

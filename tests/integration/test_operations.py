"""What operators use: the CLI against a running service, Flower behind auth, /metrics."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from typing import Any

import docker
import docker.errors
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.support import (
    AUTH_REGISTRY,
    FLOWER_PASSWORD,
    FLOWER_USER,
    OPEN_REGISTRY,
    REGISTRY_BIG,
    REGISTRY_BUSYBOX,
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    SLEEPER,
    TEST_IMAGE,
    RunningService,
    TaskClient,
    containerizer_executable,
    flower_get,
    require,
    wait_for,
)

pytestmark = pytest.mark.integration


def cli(service: RunningService, *args: str) -> subprocess.CompletedProcess[str]:
    """`containerizer ARGS` against the test deployment, as an operator would type it."""
    return subprocess.run(
        [containerizer_executable(), *args],
        env={**os.environ, **service.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cli_drives_a_container_from_run_to_rm(
    service: RunningService, labels: dict[str, str], docker_client: docker.DockerClient
) -> None:
    name = f"ctz-cli-{labels['ctz-test']}"
    label_args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
    run = cli(
        service,
        "run",
        TEST_IMAGE,
        "--name",
        name,
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--env",
        "GREETING=hi",
        *label_args,
        "--",
        "sh",
        "-c",
        f"echo $GREETING; {SLEEPER[2]}",
    )
    assert run.returncode == 0, run.stderr
    assert name in run.stdout and "running" in run.stdout
    container = docker_client.containers.get(name)
    assert container.attrs["HostConfig"]["NanoCpus"] == 500_000_000

    ps = cli(service, "ps", "--label", f"ctz-test={labels['ctz-test']}")
    assert ps.returncode == 0 and name in ps.stdout and "Up " in ps.stdout  # docker's status
    listed = json.loads(
        cli(service, "ps", "--json", "--label", f"ctz-test={labels['ctz-test']}").stdout
    )
    assert [c["name"] for c in listed] == [name]

    deadline = time.monotonic() + 10
    while "hi" not in (logs := cli(service, "logs", name)).stdout:
        assert time.monotonic() < deadline, logs
        time.sleep(0.2)

    stats = cli(service, "stats", name)
    assert stats.returncode == 0 and " / 64.0MiB" in stats.stdout
    usage = json.loads(cli(service, "stats", name, "--json").stdout)
    assert usage["memory_limit"] == 64 * 1024 * 1024

    stop = cli(service, "stop", name)
    assert stop.returncode == 0 and "exited" in stop.stdout
    assert cli(service, "ps", "--label", f"ctz-test={labels['ctz-test']}").stdout.count(name) == 0
    assert name in cli(service, "ps", "-a", "--label", f"ctz-test={labels['ctz-test']}").stdout
    rm = cli(service, "rm", name)
    assert rm.returncode == 0
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(name)


def test_cli_errors_print_the_documented_name_and_exit_non_zero(service: RunningService) -> None:
    bad = cli(service, "run", "UPPER/Case")
    assert bad.returncode == 1 and bad.stderr.startswith("InvalidSpec:")
    missing = cli(service, "stop", "ctz-no-such-container")
    assert missing.returncode == 1 and missing.stderr.startswith("ContainerNotFound:")


def test_cli_pull_images_evict_summary(
    service: RunningService, docker_client: docker.DockerClient
) -> None:
    reference = f"{OPEN_REGISTRY}/{REGISTRY_BIG}"
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(reference, force=True)
    try:
        require("script (a terminal for the progress bar)", shutil.which("script") is not None)
        command = f"{containerizer_executable()} pull {reference}"
        on_terminal = subprocess.run(
            ["script", "-qec", command, "/dev/null"],
            env={**os.environ, **service.env, "TERM": "xterm", "COLUMNS": "120"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert on_terminal.returncode == 0, on_terminal.stdout
        assert "━" in on_terminal.stdout, "no progress bar on a terminal"
        assert "pulled in" in on_terminal.stdout
        again = cli(service, "pull", reference)
        assert again.returncode == 0 and "(cached)" in again.stdout

        images = json.loads(cli(service, "images", "--json").stdout)
        entry = next(i for i in images if reference in i["tags"])
        assert entry["cached"] is True and entry["size"] > 100 * 1024 * 1024
        table = cli(service, "images")
        assert reference in table.stdout and "CACHED" in table.stdout

        evict = json.loads(cli(service, "evict", "--json").stdout)
        assert evict["evicted"] == [] and evict["budget_bytes"] == 10 * 1024**3
        summary = cli(service, "summary")
        assert summary.returncode == 0 and "images cached" in summary.stdout
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(reference, force=True)


def test_flower_needs_credentials_shows_tasks_and_no_passwords(
    service: RunningService,
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
) -> None:
    base = f"http://127.0.0.1:{service.env['CONTAINERIZER_FLOWER_PORT']}"
    auth = (FLOWER_USER, FLOWER_PASSWORD)
    assert flower_get(f"{base}/api/workers")[0] == 401
    assert flower_get(f"{base}/api/workers", (FLOWER_USER, "wrong"))[0] == 401

    reference = f"{AUTH_REGISTRY}/{REGISTRY_BUSYBOX}"
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(reference, force=True)
    pulled = tasks.send(
        "containerizer.images.pull",
        reference=reference,
        auth={"username": REGISTRY_USER, "password": REGISTRY_PASSWORD},
    )
    pulled.get(timeout=120)
    ran = tasks.send(
        "containerizer.containers.run",
        spec={"image": TEST_IMAGE, "command": SLEEPER, "labels": labels},
    )
    ran.get(timeout=60)

    def flower_tasks() -> dict[str, Any]:
        status, body = flower_get(f"{base}/api/tasks?limit=1000", auth)
        assert status == 200, body
        return dict(json.loads(body))

    deadline = time.monotonic() + 20
    while not {pulled.id, ran.id} <= set(seen := flower_tasks()):
        assert time.monotonic() < deadline, "Flower never showed the tasks"
        time.sleep(0.5)
    pull_info = seen[pulled.id]
    assert pull_info["name"] == "containerizer.images.pull"
    assert pull_info["state"] == "SUCCESS" and pull_info["runtime"] > 0
    assert seen[ran.id]["routing_key"] == "containers" or seen[ran.id].get("worker")
    assert "**redacted**" in pull_info["kwargs"]

    outputs = [json.dumps(seen)]
    for path in ("/api/workers?refresh=1", f"/api/task/info/{pulled.id}"):
        status, body = flower_get(base + path, auth)
        assert status == 200, (path, body)
        outputs.append(body)
    for body in outputs:
        assert REGISTRY_PASSWORD not in body
        assert FLOWER_PASSWORD not in body
    docker_client.images.remove(reference, force=True)


def test_metrics_are_scraped_and_add_up_across_processes(
    service: RunningService, tasks: TaskClient, labels: dict[str, str]
) -> None:
    url = f"http://127.0.0.1:{service.env['CONTAINERIZER_METRICS_PORT']}/metrics"

    def scrape() -> dict[str, float]:
        status, body = flower_get(url)
        assert status == 200
        samples = {}
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                key = sample.name + json.dumps(sample.labels, sort_keys=True)
                samples[key] = sample.value
        return samples

    on_host = json.dumps({"host": service.host})  # Every figure carries its host.
    task = {"host": service.host, "task": "containerizer.containers.run"}
    run_count = "containerizer_task_duration_seconds_count" + json.dumps(task, sort_keys=True)
    startups = "containerizer_container_startup_seconds_count" + on_host
    before = scrape()
    # Several at once: the containers worker runs two processes, both record into Redis.
    results = [
        tasks.send(
            "containerizer.containers.run",
            spec={"image": TEST_IMAGE, "command": SLEEPER, "labels": labels},
        )
        for _ in range(6)
    ]
    for result in results:
        result.get(timeout=60)

    def counted() -> dict[str, float] | None:
        # A task's duration is recorded just after its result: wait for the sixth.
        now = scrape()
        return now if now.get(run_count, 0) - before.get(run_count, 0) >= 6 else None

    after = wait_for(counted, 10, "six run durations recorded")
    assert after[run_count] - before.get(run_count, 0) == 6
    assert after[startups] - before.get(startups, 0) == 6
    running = json.dumps({"host": service.host, "status": "running"}, sort_keys=True)
    assert after["containerizer_containers" + running] >= 6
    assert after["containerizer_image_cache_budget_bytes" + on_host] == 10 * 1024**3
    for name in (
        "containerizer_image_cache_bytes",
        "containerizer_image_cache_hits_total",
        "containerizer_image_cache_misses_total",
        "containerizer_evicted_images_total",
        "containerizer_evicted_bytes_total",
    ):
        assert name + on_host in after, name

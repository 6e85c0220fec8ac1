"""The `containerizer` command against a running service, as an operator types it: run --rm --wait,
logs -f while the container runs, ps -a with docker's statuses, volume and network verbs."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import uuid

import docker
import docker.errors
import pytest

from tests.integration.support import (
    TEST_IMAGE,
    RunningService,
    containerizer_executable,
    wait_for,
)

pytestmark = pytest.mark.integration

CLI_TIMEOUT = 120.0


def cli(
    service: RunningService, *args: str, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``containerizer ARGS`` with the service's settings, as an operator's shell would."""
    return subprocess.run(
        [containerizer_executable(), *args],
        env={**os.environ, **service.env, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def label_args(labels: dict[str, str]) -> list[str]:
    return [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def gone(docker_client: docker.DockerClient, name: str) -> bool:
    try:
        docker_client.containers.get(name)
    except docker.errors.NotFound:
        return True
    return False


def test_run_rm_wait_prints_the_output_exits_with_its_code_and_leaves_no_container(
    service: RunningService, docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    name = unique("cli-job")
    done = cli(
        service,
        "run",
        "--rm",
        "--wait",
        "--name",
        name,
        *label_args(labels),
        TEST_IMAGE,
        "--",
        "sh",
        "-c",
        "echo hi; echo oops >&2; exit 3",
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == "hi\n"
    assert "oops" in done.stderr
    wait_for(lambda: gone(docker_client, name), 10, f"{name} removed")


def test_run_wait_exits_zero_for_a_job_that_succeeds(
    service: RunningService, docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    name = unique("cli-ok")
    done = cli(
        service, "run", "--wait", "--name", name, *label_args(labels), TEST_IMAGE,
        "--", "sh", "-c", "echo done",
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "done\n"), done.stderr
    assert docker_client.containers.get(name).status == "exited"  # No --rm: it is kept.


def test_logs_follow_prints_a_line_while_the_container_runs_and_exits_when_it_stops(
    service: RunningService, docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    name = unique("cli-follow")
    script = "echo first; sleep 4; echo second"
    started = cli(
        service, "run", "--name", name, *label_args(labels), TEST_IMAGE, "--", "sh", "-c", script
    )
    assert started.returncode == 0, started.stderr
    follower = subprocess.Popen(
        [containerizer_executable(), "logs", "-f", name],
        env={**os.environ, **service.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        first = follower.stdout.readline()
        assert first == "first\n"
        assert docker_client.containers.get(name).status == "running"  # Live, not after the fact.
        rest, errors = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, errors
    assert rest == "second\n"


def test_ps_all_shows_exit_codes_and_ages_as_docker_does(
    service: RunningService, labels: dict[str, str]
) -> None:
    name = unique("cli-ps")
    done = cli(
        service, "run", "--wait", "--name", name, *label_args(labels), TEST_IMAGE,
        "--", "sh", "-c", "exit 3",
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    time.sleep(1)
    listing = cli(service, "ps", "-a", *label_args(labels)[:2])
    assert listing.returncode == 0, listing.stderr
    rows = [line for line in listing.stdout.splitlines() if name in line]
    assert len(rows) == 1, listing.stdout
    [row] = rows
    assert re.search(r"Exited \(3\) (\d+ seconds?|Less than a second) ago", row), row
    assert all(len(line) <= 80 for line in listing.stdout.splitlines()), listing.stdout
    running = cli(service, "ps", *label_args(labels)[:2])
    assert name not in running.stdout  # Without -a, only running containers.


def test_volume_and_network_verbs(service: RunningService) -> None:
    volume, network = unique("cli-vol"), unique("cli-net")
    try:
        assert cli(service, "volume", "create", volume).returncode == 0
        assert volume in cli(service, "volume", "ls").stdout
        assert cli(service, "network", "create", network).returncode == 0
        assert network in cli(service, "network", "ls").stdout
    finally:
        removed_volume = cli(service, "volume", "rm", volume)
        removed_network = cli(service, "network", "rm", network)
    assert removed_volume.returncode == 0, removed_volume.stderr
    assert removed_network.returncode == 0, removed_network.stderr
    assert volume not in cli(service, "volume", "ls").stdout


def test_a_bad_spec_is_refused_before_anything_is_sent(service: RunningService) -> None:
    done = cli(service, "run", "--memory", "lots", TEST_IMAGE)
    assert done.returncode != 0
    assert "InvalidSpec" in done.stderr or "mem" in done.stderr.lower()


def test_an_unreachable_redis_is_exit_2_with_a_sentence_not_a_traceback(
    service: RunningService,
) -> None:
    with socket.socket() as sock:  # A port nothing listens on.
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    nowhere = {
        f"CONTAINERIZER_{name}": f"redis://127.0.0.1:{closed}/{db}"
        for db, name in enumerate(("BROKER_URL", "RESULT_BACKEND", "REDIS_URL"))
    }
    done = subprocess.run(
        [containerizer_executable(), "ps"],
        env={**os.environ, **service.env, **nowhere},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "unreachable" in done.stderr
    assert "Traceback" not in done.stderr

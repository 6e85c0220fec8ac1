"""The compose deployment for real, as the README's "With docker-compose" section runs it offline.

Base and Redis images from scripts/base-images.sh (debootstrap, cached), the project's image from
`make wheels` and the Dockerfile with the offline build arguments, `docker-compose up -d` under a
project name and ports of its own; every service healthy, Flower's basic auth, /metrics, a
`containerizer.containers.run` sent by name from a container on the compose network that makes a
container on the host's dockerd and its record in the stack's Redis; `docker-compose down -v`
leaves nothing. The project's image has a tag of its own and is removed; the base images stay.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import SLEEPER, free_port, require

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "containerizer-ci/debian-python:bookworm"
REDIS_IMAGE = "containerizer-ci/redis:bookworm"
OFFLINE_PIP_ARGS = "--no-index --find-links /src/docker/wheels"
SERVICES = {
    "redis",
    "worker-containers",
    "worker-images",
    "worker-maintenance",
    "beat",
    "events",
    "flower",
    "metrics",
}
# Docker 20.10 runs a health check first one interval after the start: 30 s for the workers.
HEALTHY_WITHIN = 150.0
CACHE_BYTES = 5 * 1024**3  # Not the default, so /metrics shows that .env reached the stack.
PROJECT_LABEL = "com.docker.compose.project"
TEST_LABEL = "ctz-test-run"

# What another service with only Celery installed runs: a task sent by name, JSON only. It runs
# in a one-off container on the compose network, where the stack's Redis is `redis`.
SEND_BY_NAME = """
import json, os, sys
from celery import Celery
password = os.environ["REDIS_PASSWORD"]
app = Celery(broker=f"redis://:{password}@redis:6379/0",
             backend=f"redis://:{password}@redis:6379/1")
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
name, queue, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(json.dumps(app.send_task(name, kwargs=kwargs, queue=queue).get(timeout=120)))
"""


def run(
    command: list[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; with ``check``, fail with its output when it fails."""
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


@dataclass
class Stack:
    """One compose project: its directory (docker-compose.yml and .env) and its environment."""

    project: str
    directory: Path
    image: str
    redis_password: str
    flower_auth: str
    flower_port: int
    metrics_port: int
    # The environment of every docker and docker-compose call: only what they need, so that
    # CONTAINERIZER_* variables of the test session cannot override the .env substitutions.
    env: dict[str, str] = field(
        default_factory=lambda: {
            name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ
        }
    )
    phases: dict[str, float] = field(default_factory=dict)

    def compose(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        # In the project's directory, as an operator runs it: its docker-compose.yml and .env.
        return run(
            ["docker-compose", "-p", self.project, *args],
            timeout=timeout,
            env=self.env,
            cwd=self.directory,
            check=check,
        )

    def docker(self, *args: str, timeout: float = 60, check: bool = True) -> list[str]:
        """The words (ids, names) of a docker CLI call's output."""
        return run(["docker", *args], timeout=timeout, env=self.env, check=check).stdout.split()

    def resources(self) -> dict[str, list[str]]:
        """The project's containers, networks and volumes, by compose's own label."""
        label = f"label={PROJECT_LABEL}={self.project}"
        return {
            "containers": self.docker("ps", "-aq", "--filter", label),
            "networks": self.docker("network", "ls", "-q", "--filter", label),
            "volumes": self.docker("volume", "ls", "-q", "--filter", label),
        }

    def managed_containers(self) -> list[str]:
        return self.docker("ps", "-aq", "--filter", f"label={TEST_LABEL}={self.project}")

    def inspect(self) -> dict[str, dict[str, Any]]:
        """service -> `docker inspect` of its container, for every container of the project."""
        ids = self.resources()["containers"]
        if not ids:
            return {}
        inspected = json.loads(run(["docker", "inspect", *ids], timeout=60, env=self.env).stdout)
        return {item["Config"]["Labels"]["com.docker.compose.service"]: item for item in inspected}

    def states(self) -> dict[str, tuple[str, str]]:
        """service -> (container state, health) of every container of the project."""
        return {
            name: (item["State"]["Status"], (item["State"].get("Health") or {}).get("Status", ""))
            for name, item in self.inspect().items()
        }

    def diagnostics(self, services: set[str]) -> str:
        """`docker-compose ps`, and the last health probe and logs of each of ``services``."""
        ps = self.compose("ps", check=False)
        inspected = self.inspect()
        parts = [f"docker-compose ps:\n{ps.stdout}{ps.stderr}"]
        for name in sorted(services):
            probes = (inspected.get(name, {}).get("State", {}).get("Health") or {}).get("Log")
            last = probes[-1]["Output"].strip() if probes else "(none yet)"
            logs = self.compose("logs", "--no-color", "--tail=40", name, check=False).stdout
            parts.append(f"--- {name}: last health probe: {last}\n{logs}")
        return "\n".join(parts)

    def send(self, name: str, **kwargs: Any) -> Any:
        """Send a task by name from a one-off container on the compose network; its result."""
        command = ["docker", "run", "--rm", "--network", f"{self.project}_default"]
        command += ["--label", f"{TEST_LABEL}={self.project}"]
        # The password from .env, as the README does it: on no command line.
        command += ["--env-file", str(self.directory / ".env"), self.image]
        command += ["python", "-c", SEND_BY_NAME, name, name.split(".")[1], json.dumps(kwargs)]
        return json.loads(run(command, timeout=180, env=self.env).stdout)

    def redis_state(self, *command: str) -> str:
        """A redis-cli command against the stack's state database (2), inside its Redis."""
        script = 'REDISCLI_AUTH="$REDIS_PASSWORD" exec redis-cli -n 2 "$@"'
        return self.compose(
            "exec", "-T", "redis", "sh", "-c", script, "sh", *command
        ).stdout.strip()


def write_project(directory: Path, stack: Stack) -> None:
    """docker-compose.yml and an .env made from .env.example with this run's values."""
    shutil.copy(ROOT / "docker-compose.yml", directory / "docker-compose.yml")
    values = {
        "REDIS_PASSWORD": stack.redis_password,
        "FLOWER_BASIC_AUTH": stack.flower_auth,
        "CONTAINERIZER_IMAGE": stack.image,
        "BASE_IMAGE": BASE_IMAGE,
        "PIP_INSTALL_ARGS": OFFLINE_PIP_ARGS,
        "REDIS_IMAGE": REDIS_IMAGE,
        "FLOWER_PUBLISHED_PORT": str(stack.flower_port),
        "METRICS_PUBLISHED_PORT": str(stack.metrics_port),
        "CONTAINERIZER_IMAGE_CACHE_BYTES": str(CACHE_BYTES),
    }
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        name = line.partition("=")[0]
        lines.append(f"{name}={values.pop(name)}" if name in values else line)
    assert not values, f".env.example lacks {sorted(values)}"
    (directory / ".env").write_text("\n".join(lines) + "\n")


def http_status(url: str, auth: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    require("docker-compose", shutil.which("docker-compose") is not None)
    project = f"ctz-deploy-{secrets.token_hex(4)}"
    stack = Stack(
        project=project,
        directory=tmp_path,
        image=f"containerizer:{project}",
        redis_password=secrets.token_hex(16),
        flower_auth=f"tester:{secrets.token_hex(8)}",
        flower_port=free_port(),
        metrics_port=free_port(),
    )
    dockerd = run(["docker", "info"], timeout=30, env=stack.env, check=False)
    require("dockerd", dockerd.returncode == 0, dockerd.stderr.strip())
    write_project(tmp_path, stack)
    try:
        yield stack
    finally:
        # Whatever the test reached: the stack, containers it made, this run's image.
        stack.compose("down", "-v", "--timeout", "10", check=False)
        for container in stack.managed_containers():
            stack.docker("rm", "-f", container, check=False)
        stack.docker("rmi", stack.image, f"{stack.image}-build", check=False)


def timed(stack: Stack, phase: str, started: float) -> None:
    stack.phases[phase] = round(time.monotonic() - started, 1)


def build_images(stack: Stack) -> None:
    started = time.monotonic()
    # Idempotent: a second run finds the images (or imports the cached tarballs).
    base = run([str(ROOT / "scripts" / "base-images.sh")], timeout=600, check=False)
    require("the base images", base.returncode == 0, base.stderr.strip()[-2000:])
    print(base.stdout.strip())  # One line per image: present, imported or built, and how long.
    timed(stack, "base images", started)

    started = time.monotonic()
    run(["make", "-s", "wheels"], timeout=300)
    timed(stack, "make wheels", started)

    started = time.monotonic()
    build = [
        "docker", "build", "-q", "--force-rm",
        "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
        "--build-arg", f"PIP_INSTALL_ARGS={OFFLINE_PIP_ARGS}",
    ]  # fmt: skip
    env = {**stack.env, "DOCKER_BUILDKIT": "0"}  # the classic builder: no buildx plugin here
    # The build stage gets a tag of its own too, so that removing both leaves no image behind.
    run([*build, "--target", "build", "-t", f"{stack.image}-build", "."], timeout=600, env=env)
    run([*build, "-t", stack.image, "."], timeout=600, env=env)
    timed(stack, "docker build", started)


def wait_until_healthy(stack: Stack) -> None:
    started = time.monotonic()
    deadline = started + HEALTHY_WITHIN
    while True:
        states = stack.states()
        unhealthy = {name for name, (_, health) in states.items() if health != "healthy"}
        if set(states) == SERVICES and not unhealthy:
            timed(stack, "healthy", started)
            return
        failed = {name for name, (_, health) in states.items() if health == "unhealthy"}
        if failed or time.monotonic() > deadline:
            waiting = unhealthy | (SERVICES - set(states))
            reason = f"unhealthy: {sorted(failed)}" if failed else f"not healthy: {sorted(waiting)}"
            raise AssertionError(
                f"the stack did not turn healthy within {HEALTHY_WITHIN:.0f} s ({reason}; "
                f"states {states})\n{stack.diagnostics(waiting)}"
            )
        time.sleep(2)


def check_endpoints(stack: Stack) -> None:
    flower = f"http://127.0.0.1:{stack.flower_port}/"
    assert http_status(flower)[0] == 401, "Flower answers without credentials"
    assert http_status(flower, "tester:wrong-password")[0] == 401
    assert http_status(flower, stack.flower_auth)[0] == 200
    status, metrics = http_status(f"http://127.0.0.1:{stack.metrics_port}/metrics")
    assert status == 200
    budget = [
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith('containerizer_image_cache_budget_bytes{host="compose"} ')
    ]
    assert budget == [CACHE_BYTES], metrics


def check_run_by_name(stack: Stack) -> None:
    started = time.monotonic()
    name = f"{stack.project}-job"
    spec = {
        # Any local image does: the base image is there, and no registry is needed.
        "image": BASE_IMAGE,
        "name": name,
        "command": SLEEPER,
        "labels": {TEST_LABEL: stack.project},
        "mem_limit": "64m",
    }
    created = stack.send("containerizer.containers.run", spec=spec)
    assert created["name"] == name and created["status"] == "running", created
    assert created["pulled"] is False, created
    # On the host's dockerd, managed, running.
    labels, running = run(
        ["docker", "inspect", "-f", "{{json .Config.Labels}} {{.State.Running}}", created["id"]],
        timeout=30,
    ).stdout.rsplit(" ", 1)
    assert json.loads(labels)["containerizer.managed"] == "true"
    assert running.strip() == "true"
    # Its record in the stack's Redis.
    key = f"containerizer:container:{created['id']}"
    assert stack.redis_state("HGET", key, "name") == name
    assert stack.redis_state("HGET", key, "status") == "running"

    removed = stack.send("containerizer.containers.remove", container=name, force=True)
    assert removed == {"id": created["id"], "removed": True, "host": "compose"}
    assert stack.managed_containers() == []
    assert stack.redis_state("HGET", key, "status") == "removed"
    timed(stack, "run and remove", started)


# Measured on 2 cores: 95-107 s with the base images there (CI: services.sh builds them), up to
# 220 s while other tests loaded the machine, 165-187 s when it bootstraps Debian first.
@pytest.mark.timeout(600)
def test_compose_deployment_builds_offline_runs_a_container_and_leaves_nothing(
    stack: Stack,
) -> None:
    started = time.monotonic()
    build_images(stack)

    up = time.monotonic()
    stack.compose("up", "-d", timeout=300)
    timed(stack, "up -d", up)
    wait_until_healthy(stack)
    resources = stack.resources()
    # The label filter finds them all (else the check after `down` would prove nothing).
    assert len(resources["containers"]) == len(SERVICES), resources
    assert len(resources["networks"]) == 1 and len(resources["volumes"]) == 2, resources

    check_endpoints(stack)
    check_run_by_name(stack)

    down = time.monotonic()
    stack.compose("down", "-v", "--timeout", "10")
    timed(stack, "down -v", down)
    assert stack.resources() == {"containers": [], "networks": [], "volumes": []}
    assert stack.managed_containers() == []
    timed(stack, "total", started)
    print("deployment phases (s):", json.dumps(stack.phases))

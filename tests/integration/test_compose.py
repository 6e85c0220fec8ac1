"""docker-compose.yml validates, and keeps the Docker socket and the secrets where they belong."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.settings import Settings
from tasks.up import worker_services
from tests.integration.support import require

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SOCKET = "/var/run/docker.sock"


def compose_config(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "config"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    require("docker-compose", shutil.which("docker-compose") is not None)
    for name in ("docker-compose.yml", "Dockerfile"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    return tmp_path


@pytest.fixture
def services(project: Path) -> dict[str, Any]:
    result = compose_config(project)
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout)["services"])


def test_compose_file_validates_with_the_documented_env(services: dict[str, Any]) -> None:
    assert set(services) == {
        "redis",
        "worker-containers",
        "worker-images",
        "worker-maintenance",
        "beat",
        "events",
        "flower",
        "metrics",
    }
    for name, service in services.items():
        assert "healthcheck" in service, name


def test_docker_socket_only_where_docker_is_used(services: dict[str, Any]) -> None:
    with_socket = {
        name
        for name, service in services.items()
        if any(SOCKET in str(volume) for volume in service.get("volumes", []))
    }
    assert with_socket == {"worker-containers", "worker-images", "worker-maintenance", "events"}


def test_images_worker_runs_one_process_and_beat_is_single(services: dict[str, Any]) -> None:
    # Each worker runs as `up` runs it (one definition, tasks/up.py): the images one in one process.
    assert services["worker-images"]["command"] == ["containerizer", "worker", "images"]
    argv = {s.name: s.argv for s in worker_services(Settings(host_name="compose"))}
    images = argv["worker-images"]
    assert images[images.index("-c") + 1] == "1"
    assert images[images.index("-Q") + 1] == "images.compose,images"
    assert "beat" in services["beat"]["command"]
    assert services["beat"].get("scale", 1) == 1


def test_secrets_and_ports(services: dict[str, Any]) -> None:
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--requirepass" in redis_command
    flower = services["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == "admin:change-me-flower"
    for name, service in services.items():
        if name != "flower":
            assert "FLOWER_BASIC_AUTH" not in (service.get("environment") or {}), name
        for port in service.get("ports", []):
            published = port if isinstance(port, str) else f"{port.get('host_ip')}"
            assert "127.0.0.1" in published, (name, port)
    broker = services["worker-containers"]["environment"]["CONTAINERIZER_BROKER_URL"]
    assert broker == "redis://:change-me-redis@redis:6379/0"


def test_compose_refuses_to_run_without_a_redis_password(project: Path) -> None:
    env = (project / ".env").read_text().replace("REDIS_PASSWORD=change-me-redis\n", "")
    (project / ".env").write_text(env)
    result = compose_config(project)
    assert result.returncode != 0
    assert "REDIS_PASSWORD" in result.stderr

"""`containerizer up` starts a redis-server of its own when none answers, and stops cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker
import psutil
import pytest
from celery import Celery

from tests.integration.support import (
    TEST_IMAGE,
    containerizer_executable,
    free_port,
    require,
    stop_process,
    wait_for_workers,
)

pytestmark = pytest.mark.integration


def test_up_starts_its_own_redis_and_stops_everything_on_sigterm(
    docker_client: docker.DockerClient, tmp_path: Path, labels: dict[str, str]
) -> None:
    require("redis-server", shutil.which("redis-server") is not None)
    port = free_port()
    url = f"redis://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CONTAINERIZER_BROKER_URL": f"{url}/0",
        "CONTAINERIZER_RESULT_BACKEND": f"{url}/1",
        "CONTAINERIZER_REDIS_URL": f"{url}/2",
        "CONTAINERIZER_STATE_DIR": str(tmp_path / "state"),
        "CONTAINERIZER_FLOWER_PORT": str(free_port()),
        "CONTAINERIZER_METRICS_PORT": str(free_port()),
    }
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [containerizer_executable(), "up"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    app = Celery(broker=f"{url}/0", backend=f"{url}/1")
    app.conf.update(accept_content=["json"])
    try:
        deadline = time.monotonic() + 20
        while b"starting redis-server" not in log.read_bytes():
            assert time.monotonic() < deadline and up.poll() is None, log.read_text()
            time.sleep(0.2)
        wait_for_workers(app, {"containers", "images", "maintenance"})
        result = app.send_task(
            "containerizer.containers.run",
            kwargs={"spec": {"image": TEST_IMAGE, "command": ["true"], "labels": labels}},
            queue="containers",
        ).get(timeout=60)
        assert result["status"] in ("running", "exited")
        assert (tmp_path / "state" / "redis").is_dir()
        children = psutil.Process(up.pid).children(recursive=True)
        assert any(c.name() == "redis-server" for c in children)

        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=90) == 0, log.read_text()
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], [p.cmdline() for p in alive]
        assert b"stopping redis" in log.read_bytes()
    finally:
        stop_process(up)
        app.close()

"""Integration fixtures: a real dockerd, a real Redis and `containerizer up` as production runs it.

Each fixture that needs a service skips when it is missing locally and fails in CI (CI=true).
Every test container carries a ``ctz-test-run`` label; the containers a test made are removed
after it, and a session finalizer removes any that a failed test left behind.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import pytest
import redis
from celery import Celery

from tests.integration.support import (
    AUTH_REGISTRY_ALIAS,
    FLOWER_PASSWORD,
    FLOWER_USER,
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    TEST_IMAGE,
    RunningService,
    TaskClient,
    containerizer_executable,
    free_port,
    rabbitmq_broker,
    require,
    stop_process,
    wait_for_workers,
)

RUN_ID = uuid.uuid4().hex[:10]
RUN_LABEL = "ctz-test-run"
REDIS_URL = os.environ.get("CONTAINERIZER_TEST_REDIS", "redis://127.0.0.1:6379")
# Databases of their own, so that a developer's running service (0-2) is not disturbed.
BROKER_DB, RESULT_DB, STATE_DB = 10, 11, 12


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        require("dockerd", False, str(exc))
    try:
        client.images.get(TEST_IMAGE)
    except docker.errors.ImageNotFound:
        require(f"test image {TEST_IMAGE}", False, "run scripts/services.sh")
    yield client
    for container in client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={RUN_ID}"}):
        container.remove(force=True)
    client.close()


@pytest.fixture(scope="session")
def redis_server() -> str:
    client = redis.Redis.from_url(f"{REDIS_URL}/0")
    try:
        client.ping()
    except redis.RedisError as exc:
        require("redis", False, str(exc))
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def state_redis(redis_server: str, service: RunningService) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(f"{redis_server}/{STATE_DB}", decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def session_broker(redis_server: str) -> Iterator[str]:
    """The test deployment's broker: a database of the machine's Redis, or with
    CONTAINERIZER_TEST_BROKER=rabbitmq a vhost of its rabbitmq-server (results and state stay
    in Redis), as `make test` runs the lifecycle tests a second time."""
    broker = os.environ.get("CONTAINERIZER_TEST_BROKER", "redis")
    if broker == "rabbitmq":
        with rabbitmq_broker("ctz-session") as url:
            yield url
    elif broker == "redis":
        yield f"{redis_server}/{BROKER_DB}"
    else:
        pytest.fail(f"CONTAINERIZER_TEST_BROKER={broker!r}: redis or rabbitmq")


@pytest.fixture(scope="session")
def service_env(
    redis_server: str, session_broker: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The environment of the test deployment."""
    state_dir = tmp_path_factory.mktemp("containerizer-state")
    prefix = f"containerizer-test-{RUN_ID}:"
    # Credentials for the auth registry under one of its names only (localhost:5001), so that
    # tests can tell credentials chosen per registry from one default for every image.
    auth_file = state_dir / "registry-auth.json"
    token = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
    auth_file.write_text(json.dumps({"auths": {AUTH_REGISTRY_ALIAS: {"auth": token}}}))
    return {
        "CONTAINERIZER_BROKER_URL": session_broker,
        "CONTAINERIZER_RESULT_BACKEND": f"{redis_server}/{RESULT_DB}",
        "CONTAINERIZER_REDIS_URL": f"{redis_server}/{STATE_DB}",
        "CONTAINERIZER_REDIS_PREFIX": prefix,
        "CONTAINERIZER_HOST_NAME": "ctz-test",
        "CONTAINERIZER_STATE_DIR": str(state_dir),
        "CONTAINERIZER_FLOWER_PORT": str(free_port()),
        "CONTAINERIZER_FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{FLOWER_PASSWORD}",
        "CONTAINERIZER_METRICS_PORT": str(free_port()),
        "CONTAINERIZER_RETRY_MAX": "3",
        "CONTAINERIZER_RETRY_BACKOFF_SECONDS": "0.5",
        "CONTAINERIZER_RETRY_BACKOFF_MAX_SECONDS": "2",
        "CONTAINERIZER_CONTAINERS_CONCURRENCY": "2",
        "CONTAINERIZER_REGISTRY_AUTH_FILE": str(auth_file),
        "CONTAINERIZER_PULL_STALL_SECONDS": "4",
        # No stats sweeps unless a test asks: they would keep dockerd's stats collector busy and
        # make single stats calls wait for its next tick (test_beat_fills_stats_on_its_own runs
        # a deployment of its own).
        "CONTAINERIZER_STATS_INTERVAL_SECONDS": "3600",
    }


@pytest.fixture(scope="session")
def celery_config(service_env: dict[str, str]) -> dict[str, Any]:
    """pytest-celery's client app configuration: what a caller with only Celery sets."""
    return {
        "broker_url": service_env["CONTAINERIZER_BROKER_URL"],
        "result_backend": service_env["CONTAINERIZER_RESULT_BACKEND"],
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_extended": True,
    }


@pytest.fixture(scope="session")
def service(
    docker_client: docker.DockerClient,
    service_env: dict[str, str],
    celery_session_app: Celery,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningService]:
    """`containerizer up`, exactly as the README runs it, against the test databases."""
    if service_env["CONTAINERIZER_BROKER_URL"].startswith("redis"):
        flush = redis.Redis.from_url(service_env["CONTAINERIZER_BROKER_URL"])
        flush.flushdb()  # Messages a killed earlier run may have left (a vhost starts empty).
        flush.close()
    log_path = tmp_path_factory.mktemp("logs") / "up.log"
    env = {**os.environ, **service_env}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [containerizer_executable(), "up"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    running = RunningService(
        process, service_env, log_path, service_env["CONTAINERIZER_REDIS_PREFIX"]
    )
    try:
        wait_for_workers(celery_session_app, {"containers", "images", "maintenance"})
    except TimeoutError:
        stop_process(process)
        pytest.fail(f"containerizer up did not come up:\n{running.log()[-4000:]}")
    yield running
    code = stop_process(process)
    assert code == 0, f"containerizer up exited with {code}:\n{running.log()[-4000:]}"


@pytest.fixture
def tasks(service: RunningService, celery_session_app: Celery) -> TaskClient:
    """A by-name task client of the running test service."""
    return TaskClient(celery_session_app)


@pytest.fixture
def labels(
    docker_client: docker.DockerClient, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """Labels for a test's containers; whatever carries them is removed after the test."""
    test_label = uuid.uuid4().hex[:12]
    value = {RUN_LABEL: RUN_ID, "ctz-test": test_label}
    yield value
    for container in docker_client.containers.list(
        all=True, filters={"label": f"ctz-test={test_label}"}
    ):
        container.remove(force=True)

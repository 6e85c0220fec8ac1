"""Image tasks against real local registries (an open one and one with htpasswd auth)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import pytest
import redis

from tests.integration.support import (
    AUTH_REGISTRY,
    AUTH_REGISTRY_ALIAS,
    OPEN_REGISTRY,
    REGISTRY_BIG,
    REGISTRY_BUSYBOX,
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    SLEEPER,
    TEST_IMAGE,
    RegistryLog,
    RunningService,
    TaskClient,
    free_port,
    require,
)

pytestmark = pytest.mark.integration

AUTH = {"username": REGISTRY_USER, "password": REGISTRY_PASSWORD}


@pytest.fixture
def registry_log() -> RegistryLog:
    log = RegistryLog("open")
    require("the open test registry's access log", log.path.exists(), str(log.path))
    return log


@pytest.fixture
def absent(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """References a test needs absent from the host; removed before and after the test."""
    references: list[str] = []

    def remove_all() -> None:
        for reference in references:
            with contextlib.suppress(docker.errors.NotFound):
                docker_client.images.remove(reference, force=True)

    yield references
    remove_all()


def local_image(
    docker_client: docker.DockerClient, absent: list[str], labels: dict[str, str], name: str
) -> tuple[str, str]:
    """A new image with one name, made here (never pulled by the service); removed after the
    test. Returns (reference, image id)."""
    base = docker_client.containers.create(TEST_IMAGE, ["true"], labels=labels)
    reference = f"containerizer-test/{name}:{uuid.uuid4().hex[:12]}"
    absent.append(reference)
    image = base.commit(*reference.split(":"))
    return reference, str(image.id)


def make_absent(docker_client: docker.DockerClient, absent: list[str], reference: str) -> str:
    absent.append(reference)
    with contextlib.suppress(docker.errors.NotFound):
        docker_client.images.remove(reference, force=True)
    return reference


def test_pull_then_a_second_pull_is_answered_from_the_cache(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    absent: list[str],
    registry_log: RegistryLog,
) -> None:
    reference = make_absent(docker_client, absent, f"{OPEN_REGISTRY}/{REGISTRY_BUSYBOX}")
    first = tasks.call("containerizer.images.pull", reference=reference)
    assert first["cached"] is False and first["reference"] == reference
    assert first["id"].startswith("sha256:") and first["size"] > 0
    assert first["pull_seconds"] > 0
    assert registry_log.requests(), "the first pull must reach the registry"

    registry_log.mark()
    second = tasks.call("containerizer.images.pull", reference=reference)
    assert second == {**first, "cached": True, "pull_seconds": 0.0}
    time.sleep(0.5)  # The registry writes its access log as it answers.
    assert registry_log.requests() == []


def test_concurrent_pulls_of_one_uncached_image_cost_one_pull(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    absent: list[str],
    registry_log: RegistryLog,
) -> None:
    reference = make_absent(docker_client, absent, f"{OPEN_REGISTRY}/{REGISTRY_BIG}")
    results = [tasks.send("containerizer.images.pull", reference=reference) for _ in range(20)]
    # Every state the backend publishes, PROGRESS included: polling the state could miss the
    # last report of a pull that finishes between two polls.
    published: list[dict[str, Any]] = []
    outcomes = [r.get(timeout=300, on_message=published.append) for r in results]
    assert sum(1 for o in outcomes if o["cached"] is False) == 1
    assert len({o["id"] for o in outcomes}) == 1
    assert registry_log.count("manifests") <= 2
    assert 1 <= registry_log.count("blobs") <= 2
    puller = next(r.id for r, o in zip(results, outcomes, strict=True) if o["cached"] is False)
    progress = [
        m["result"] for m in published if m["task_id"] == puller and m["status"] == "PROGRESS"
    ]
    assert progress, "the pull never reported PROGRESS"
    last = progress[-1]
    assert last["reference"] == reference and last["bytes_total"] >= 100 * 1024 * 1024
    # The last report is sent after the stream ends: every layer is done by then.
    assert last["bytes_done"] == last["bytes_total"]
    assert last["layers_done"] == last["layers_total"]


def test_images_list_reports_the_cache(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    absent: list[str],
    labels: dict[str, str],
) -> None:
    reference = make_absent(docker_client, absent, f"{OPEN_REGISTRY}/{REGISTRY_BUSYBOX}")
    pulled = tasks.call("containerizer.images.pull", reference=reference)

    def entry() -> dict[str, Any]:
        images = tasks.call("containerizer.images.list")
        return next(i for i in images if i["id"] == pulled["id"])

    before = entry()
    assert before["cached"] is True and before["size"] == pulled["size"]
    assert before["use_count"] == 0 and before["last_used"] is not None
    assert reference in before["tags"]
    tasks.call(
        "containerizer.containers.create",
        spec={"image": reference, "command": SLEEPER, "labels": labels},
    )
    after = entry()
    assert after["use_count"] == 1 and after["last_used"] > before["last_used"]


def test_an_image_the_service_did_not_pull_is_listed_but_not_cached(
    tasks: TaskClient, docker_client: docker.DockerClient, absent: list[str], labels: dict[str, str]
) -> None:
    reference, image_id = local_image(docker_client, absent, labels, "local-only")
    listed = next(i for i in tasks.call("containerizer.images.list") if i["id"] == image_id)
    assert listed["tags"] == [reference] and listed["size"] > 0
    assert listed["cached"] is False and listed["use_count"] is None and listed["pinned"] is False


def test_auth_registry_needs_credentials_chosen_per_registry(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    absent: list[str],
    service: RunningService,
) -> None:
    reference = make_absent(docker_client, absent, f"{AUTH_REGISTRY}/{REGISTRY_BUSYBOX}")
    error, result = tasks.failure("containerizer.images.pull", reference=reference)
    assert type(error).__name__ == "RegistryAuthError", error
    assert result.retries == 0

    wrong = {"username": REGISTRY_USER, "password": "not-the-password"}
    error, _ = tasks.failure("containerizer.images.pull", reference=reference, auth=wrong)
    assert type(error).__name__ == "RegistryAuthError"

    assert (
        tasks.call("containerizer.images.pull", reference=reference, auth=AUTH)["cached"] is False
    )

    # The same registry under the name the configuration has credentials for.
    alias = make_absent(docker_client, absent, f"{AUTH_REGISTRY_ALIAS}/{REGISTRY_BUSYBOX}")
    assert tasks.call("containerizer.images.pull", reference=alias)["cached"] is False


def test_push_reads_the_whole_stream(
    tasks: TaskClient, docker_client: docker.DockerClient, absent: list[str]
) -> None:
    tag = uuid.uuid4().hex[:12]
    for registry in (OPEN_REGISTRY, AUTH_REGISTRY):
        target = make_absent(docker_client, absent, f"{registry}/containerizer-test/pushed:{tag}")
        assert tasks.call("containerizer.images.tag", source=TEST_IMAGE, target=target) == {
            "source": TEST_IMAGE,
            "target": target,
            "host": "ctz-test",
        }
    open_target, auth_target = absent[-2], absent[-1]
    pushed = tasks.call("containerizer.images.push", reference=open_target)
    assert pushed["reference"] == open_target and pushed["digest"].startswith("sha256:")

    error, result = tasks.failure("containerizer.images.push", reference=auth_target)
    assert type(error).__name__ == "RegistryAuthError", error
    assert result.retries == 0
    assert tasks.call("containerizer.images.push", reference=auth_target, auth=AUTH)[
        "digest"
    ].startswith("sha256:")


def test_credentials_are_nowhere_in_redis_or_the_logs(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    absent: list[str],
    redis_server: str,
    service: RunningService,
    labels: dict[str, str],
) -> None:
    reference = make_absent(docker_client, absent, f"{AUTH_REGISTRY}/{REGISTRY_BUSYBOX}")
    tasks.call("containerizer.images.pull", reference=reference, auth=AUTH)
    tasks.call("containerizer.images.push", reference=reference, auth=AUTH)
    make_absent(docker_client, absent, reference)
    run = tasks.call(
        "containerizer.containers.run",
        spec={"image": reference, "command": SLEEPER, "labels": labels},
        auth=AUTH,
    )
    assert run["pulled"] is True
    tasks.failure("containerizer.images.pull", reference=f"{OPEN_REGISTRY}/nope/nope:1", auth=AUTH)
    time.sleep(1)
    secret = REGISTRY_PASSWORD.encode()
    for db in range(16):
        client = redis.Redis.from_url(f"{redis_server}/{db}")
        try:
            for key in client.scan_iter(count=1000):
                kind = client.type(key)
                if kind == b"string":
                    values = [client.get(key) or b""]
                elif kind == b"hash":
                    values = list(client.hgetall(key).values())
                elif kind == b"list":
                    values = client.lrange(key, 0, -1)
                elif kind in (b"set", b"zset"):
                    values = (
                        list(client.smembers(key)) if kind == b"set" else client.zrange(key, 0, -1)
                    )
                else:
                    continue
                assert not any(secret in value for value in values), f"db {db} key {key!r}"
        finally:
            client.close()
    assert REGISTRY_PASSWORD not in service.log()


def test_image_errors(
    tasks: TaskClient, docker_client: docker.DockerClient, absent: list[str]
) -> None:
    error, result = tasks.failure(
        "containerizer.images.pull", reference=f"{OPEN_REGISTRY}/containerizer-test/nope:latest"
    )
    assert type(error).__name__ == "ImageNotFound", error
    assert result.retries == 0

    for bad in ("UPPER/Case", "busybox:", "", None, 5):
        error, result = tasks.failure("containerizer.images.pull", reference=bad)
        assert type(error).__name__ == "InvalidSpec", (bad, error)
        assert result.retries == 0

    error, _ = tasks.failure("containerizer.images.pull", reference="busybox", auth={"user": "x"})
    assert type(error).__name__ == "InvalidSpec"
    assert "x" not in str(error).split(":", 1)[1]

    closed = f"127.0.0.1:{free_port()}/containerizer-test/busybox:latest"
    began = time.monotonic()
    error, result = tasks.failure("containerizer.images.pull", reference=closed)
    assert type(error).__name__ == "RegistryUnavailable", error
    assert result.retries == 3 and time.monotonic() - began < 60


@pytest.fixture
def stalling_registry() -> Iterator[str]:
    """A TCP server on loopback that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_a_stalled_pull_is_pull_timeout(tasks: TaskClient, stalling_registry: str) -> None:
    began = time.monotonic()
    error, result = tasks.failure(
        "containerizer.images.pull", reference=f"{stalling_registry}/stalled/image:1"
    )
    assert type(error).__name__ == "PullTimeout", error
    assert result.retries == 0
    assert 3.5 < time.monotonic() - began < 30  # CONTAINERIZER_PULL_STALL_SECONDS=4


def test_removing_an_image_a_container_uses_is_a_conflict(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    absent: list[str],
    labels: dict[str, str],
) -> None:
    local, _ = local_image(docker_client, absent, labels, "local")  # Not the service's.
    reference = f"containerizer-test/in-use:{uuid.uuid4().hex[:12]}"
    absent.append(reference)
    tasks.call("containerizer.images.tag", source=local, target=reference)
    docker_client.images.remove(local)  # The service's name is now the image's only one.
    tasks.call(
        "containerizer.containers.create",
        spec={"image": reference, "command": ["true"], "labels": labels},
    )
    error, result = tasks.failure("containerizer.images.remove", reference=reference)
    assert type(error).__name__ == "Conflict", error
    assert result.retries == 0
    assert tasks.call("containerizer.images.remove", reference=reference, force=True) == {
        "reference": reference,
        "removed": True,
        "host": "ctz-test",
    }
    error, _ = tasks.failure("containerizer.images.remove", reference=reference)
    assert type(error).__name__ == "ImageNotFound"


def test_images_the_service_does_not_own_are_not_removed_or_retagged(
    tasks: TaskClient, docker_client: docker.DockerClient, absent: list[str], labels: dict[str, str]
) -> None:
    operators, _ = local_image(docker_client, absent, labels, "operators")
    error, result = tasks.failure("containerizer.images.remove", reference=operators, force=True)
    assert type(error).__name__ == "PolicyViolation", error
    assert result.retries == 0
    # Re-tagging the operator's name (think: the service's own image) onto another image.
    error, _ = tasks.failure("containerizer.images.tag", source=TEST_IMAGE, target=operators)
    assert type(error).__name__ == "PolicyViolation", error
    docker_client.images.get(operators)  # untouched


def test_run_pulls_a_missing_image_through_the_images_queue(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    absent: list[str],
    labels: dict[str, str],
    service: RunningService,
) -> None:
    reference = make_absent(docker_client, absent, f"{OPEN_REGISTRY}/{REGISTRY_BUSYBOX}")
    result = tasks.send(
        "containerizer.containers.run",
        spec={"image": reference, "command": SLEEPER, "labels": labels},
    )
    outcome = result.get(timeout=120)
    assert outcome["pulled"] is True and outcome["status"] == "running"
    assert outcome["image"] == reference and outcome["startup_ms"] > 0
    assert docker_client.containers.get(outcome["id"]).status == "running"
    # The pull ran as an images.pull task (on the images worker), not inside the run task.
    deadline = time.monotonic() + 5
    while "containerizer.images.pull[" not in service.log():
        assert time.monotonic() < deadline, "no images.pull task in the service log"
        time.sleep(0.2)
    again = tasks.call(
        "containerizer.containers.run",
        spec={"image": reference, "command": SLEEPER, "labels": labels},
    )
    assert again["pulled"] is False


def test_run_of_an_image_no_registry_has_fails_with_image_not_found(
    tasks: TaskClient, docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    # The pull runs as a separate task of the replacing chain; its failure is the run's failure.
    spec = {"image": f"{OPEN_REGISTRY}/containerizer-test/nope:1", "labels": labels}
    error, _ = tasks.failure("containerizer.containers.run", spec=spec)
    assert type(error).__name__ == "ImageNotFound", error
    filters = {"label": f"ctz-test={labels['ctz-test']}"}
    assert docker_client.containers.list(all=True, filters=filters) == []

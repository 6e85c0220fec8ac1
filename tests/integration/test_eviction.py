"""LRU eviction under a byte budget, on a deployment of its own with a small budget.

Five images, each busybox plus a small layer of its own (so about the same size S), pushed to the
open registry: P (pinned), A, B and C are pulled through the service, L is only ever local. Then
C gets a container (in use) and B is used and its container removed (recently used). With a budget
of 3.5 S and the low watermark at 90 % (3.15 S), the four cached images (4 S) are over budget by
one: P is the least recently used but pinned, so A goes, and nothing else.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import pytest

from tests.integration.support import OPEN_REGISTRY, TEST_IMAGE, TaskClient, deployment

pytestmark = pytest.mark.integration


@pytest.fixture
def images(docker_client: docker.DockerClient, labels: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Build and push the five images; remove every local trace afterwards."""
    run = uuid.uuid4().hex[:10]
    made: dict[str, Any] = {}
    for name in ("p", "a", "b", "c", "l"):
        container = docker_client.containers.create(
            TEST_IMAGE, ["sh", "-c", f"echo {name}-{run} > /marker"], labels=labels
        )
        container.start()
        container.wait(timeout=30)
        repository = f"{OPEN_REGISTRY}/containerizer-test/evict-{name}"
        image = container.commit(repository, run)
        made[name] = {"reference": f"{repository}:{run}", "size": int(image.attrs["Size"])}
        if name != "l":
            for line in docker_client.api.push(repository, tag=run, stream=True, decode=True):
                assert "error" not in line, line
            docker_client.images.remove(made[name]["reference"])
    yield made
    for entry in made.values():
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.images.remove(entry["reference"], force=True)


@pytest.fixture
def small_cache_service(
    images: dict[str, Any], redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TaskClient]:
    size = max(entry["size"] for entry in images.values())
    with deployment(
        redis_server,
        tmp_path_factory.mktemp("evict-state"),
        (3, 4, 5),
        image_cache_bytes=str(int(size * 3.5)),
        image_min_age_seconds="0",
        pinned_images=images["p"]["reference"],
        # Eviction runs when the test asks for it, not on a schedule.
        evict_interval_seconds="3600",
    ) as (tasks, _):
        yield tasks


def test_eviction_honours_lru_budget_watermark_and_protections(
    small_cache_service: TaskClient,
    images: dict[str, Any],
    docker_client: docker.DockerClient,
    labels: dict[str, str],
) -> None:
    tasks = small_cache_service
    for name in ("p", "a", "b", "c"):
        assert (
            tasks.call("containerizer.images.pull", reference=images[name]["reference"])["cached"]
            is False
        )
    in_use = tasks.call(
        "containerizer.containers.create",
        spec={"image": images["c"]["reference"], "command": ["true"], "labels": labels},
    )
    used = tasks.call(
        "containerizer.containers.create",
        spec={"image": images["b"]["reference"], "command": ["true"], "labels": labels},
    )
    tasks.call("containerizer.containers.remove", container=used["id"])
    assert in_use["status"] == "created"

    outcome = tasks.call("containerizer.maintenance.evict_images")
    assert outcome["evicted"] == [images["a"]["reference"]], outcome
    assert outcome["freed_bytes"] > 0
    assert outcome["budget_bytes"] == int(max(e["size"] for e in images.values()) * 3.5)
    assert outcome["cache_bytes"] <= outcome["budget_bytes"] * 0.9

    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(images["a"]["reference"])
    for kept in ("p", "b", "c", "l"):
        docker_client.images.get(images[kept]["reference"])

    again = tasks.call("containerizer.maintenance.evict_images")
    assert again["evicted"] == [] and again["freed_bytes"] == 0
    listed = {tuple(i["tags"]): i for i in tasks.call("containerizer.images.list")}
    pinned = next(i for tags, i in listed.items() if images["p"]["reference"] in tags)
    assert pinned["pinned"] is True and pinned["cached"] is True

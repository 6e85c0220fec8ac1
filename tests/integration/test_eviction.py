"""LRU eviction under a byte budget, on a deployment of its own with a small budget.

Five images, each busybox plus a layer of its own (1 MiB of random bytes), pushed to the open
registry: P (pinned), A, B and C are pulled through the service, L is only ever local. The cache
counts busybox's layer once: its size is busybox plus four layers of their own. Then C gets a
container (in use) and B is used and its container removed (recently used). The budget is set
between the cache without A (at 90 %, the low watermark) and the cache with it: P is the least
recently used but pinned, so A goes, it frees its own layer only, and nothing else goes.
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
            TEST_IMAGE, ["sh", "-c", "head -c 1048576 /dev/urandom > /marker"], labels=labels
        )
        container.start()
        container.wait(timeout=30)
        repository = f"{OPEN_REGISTRY}/containerizer-test/evict-{name}"
        image = container.commit(repository, run)
        container.remove()
        made[name] = {
            "reference": f"{repository}:{run}",
            "size": int(image.attrs["Size"]),
            "own": int(image.history()[0]["Size"]),  # The layer on top of busybox's.
        }
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
    with deployment(
        redis_server,
        tmp_path_factory.mktemp("evict-state"),
        (3, 4, 5),
        image_cache_bytes=str(budget(images)),
        image_min_age_seconds="0",
        pinned_images=images["p"]["reference"],
        # Eviction runs when the test asks for it, not on a schedule.
        evict_interval_seconds="3600",
    ) as (tasks, _):
        yield tasks


def base_bytes(images: dict[str, Any]) -> int:
    """busybox's layer, under every image."""
    return int(images["a"]["size"] - images["a"]["own"])


def cache_bytes(images: dict[str, Any], names: str) -> int:
    return base_bytes(images) + sum(images[name]["own"] for name in names)


def budget(images: dict[str, Any]) -> int:
    """Over budget with A; within the low watermark (90 %) without it."""
    return (int(cache_bytes(images, "pbc") / 0.9) + cache_bytes(images, "pabc")) // 2


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

    # busybox's layer counts once, not once per image.
    summary = tasks.call("containerizer.maintenance.summary")["images"]
    assert summary["cache_bytes"] == cache_bytes(images, "pabc"), summary
    assert summary["cache_bytes"] < sum(images[name]["size"] for name in "pabc")
    assert summary["cache_bytes"] > summary["budget_bytes"] == budget(images)

    outcome = tasks.call("containerizer.maintenance.evict_images")
    assert outcome["evicted"] == [images["a"]["reference"]], outcome
    assert outcome["freed_bytes"] == images["a"]["own"]  # busybox's layer stays for the others.
    assert outcome["cache_bytes"] == cache_bytes(images, "pbc")
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

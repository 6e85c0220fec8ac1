"""LRU eviction of cached images under a byte budget, after kubelet's image GC.

When the images the service pulled take more than the budget, the least recently used (last_used,
then pulled_at) are removed until the cache is under the low watermark. Never an image a container
uses (running or stopped), never a pinned image, never one younger than the minimum age, never one
that carries names the service did not pull, and never an image the service did not pull at all
(only pulled images are in the cache index to begin with).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from config.settings import Settings
from workers.errors import Conflict, ImageNotFound
from workers.image_cache import ImageCache, LayerUse, cached_bytes
from workers.images import ImageService
from workers.metrics import Metrics
from workers.reference import canonical_name, parse_reference

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvictionPlan:
    """Which images to remove, and why the others stay."""

    victims: list[dict[str, Any]]
    protected: dict[str, str]  # image id -> reason
    cache_bytes: int
    budget_bytes: int
    target_bytes: int
    freed_bytes: int = 0  # Layers only victims have (one a kept cached image has stays).


@dataclass(frozen=True)
class Protections:
    """Images eviction must not touch, by id (and pinned references, canonical)."""

    in_use: frozenset[str] = frozenset()
    pinned: frozenset[str] = frozenset()
    shared: frozenset[str] = frozenset()
    min_age_seconds: float = 120.0

    def reason(self, entry: dict[str, Any], now: float) -> str | None:
        image_id = entry["id"]
        if image_id in self.in_use:
            return "used by a container"
        if any(ref in self.pinned for ref in entry.get("references", [])):
            return "pinned"
        if image_id in self.shared:
            return "has names the service did not pull"
        pulled_at = entry.get("pulled_at")
        if pulled_at is not None and now - float(pulled_at) < self.min_age_seconds:
            return "younger than the minimum age"
        return None


def plan_eviction(
    entries: list[dict[str, Any]],
    protections: Protections,
    *,
    budget_bytes: int,
    low_watermark: float,
    now: float,
) -> EvictionPlan:
    """Choose LRU victims until the cache is under ``budget_bytes * low_watermark``.

    Nothing is chosen while the cache is within the budget. Sizes are those of the union of the
    images' layers: removing an image frees only the layers no other cached image has.
    """
    cache_bytes = cached_bytes(entries)
    target = int(budget_bytes * low_watermark)
    victims: list[dict[str, Any]] = []
    protected: dict[str, str] = {}
    if cache_bytes <= budget_bytes:
        return EvictionPlan([], {}, cache_bytes, budget_bytes, target)
    use = LayerUse(entries)
    ordered = sorted(
        entries, key=lambda e: (float(e.get("last_used") or 0), float(e.get("pulled_at") or 0))
    )
    for entry in ordered:
        if use.total <= target:
            break
        reason = protections.reason(entry, now)
        if reason is not None:
            protected[entry["id"]] = reason
            continue
        victims.append(entry)
        use.release(entry)
    return EvictionPlan(
        victims, protected, cache_bytes, budget_bytes, target, cache_bytes - use.total
    )


class Evictor:
    """Applies eviction plans to a Docker host and its cache index."""

    def __init__(
        self,
        images: ImageService,
        cache: ImageCache,
        settings: Settings,
        metrics: Metrics | None = None,
    ) -> None:
        self.images = images
        self.cache = cache
        self.settings = settings
        self.metrics = metrics

    def protections(self, entries: list[dict[str, Any]]) -> Protections:
        """What the host says must stay: images containers use, images with foreign names."""
        engine = self.images.engine
        in_use = {
            str(row.get("ImageID")) for row in engine.containers(all=True) if row.get("ImageID")
        }
        rows = {row["Id"]: row for row in engine.images()}
        shared = set()
        for entry in entries:
            row = rows.get(entry["id"])
            if row is None:
                continue
            ours = set(entry.get("references", []))
            tags = {canonical_name(t) for t in row.get("RepoTags") or [] if t != "<none>:<none>"}
            if tags - ours:
                shared.add(entry["id"])
        return Protections(
            in_use=frozenset(in_use),
            pinned=self.images.pinned,
            shared=frozenset(shared),
            min_age_seconds=self.settings.image_min_age_seconds,
        )

    def evict(self) -> dict[str, Any]:
        """Evict what the plan says; returns {evicted, freed_bytes, cache_bytes, budget_bytes}."""
        entries = self._present_entries()
        plan = plan_eviction(
            entries,
            self.protections(entries),
            budget_bytes=self.settings.image_cache_bytes,
            low_watermark=self.settings.image_cache_low_watermark,
            now=time.time(),
        )
        evicted: list[str] = []
        use = LayerUse(entries)
        images = 0
        for victim in plan.victims:
            if self._remove(victim):
                evicted.extend(victim["references"] or [victim["id"]])
                use.release(victim)
                images += 1
        cache_bytes = use.total
        freed = plan.cache_bytes - cache_bytes
        if self.metrics is not None and evicted:
            self.metrics.increment("evicted_images_total", images)
            self.metrics.increment("evicted_bytes_total", freed)
        if plan.cache_bytes > plan.budget_bytes or evicted:
            log.info(
                "image cache %d of %d bytes (target %d): evicted %s (%d bytes); kept %s",
                plan.cache_bytes,
                plan.budget_bytes,
                plan.target_bytes,
                evicted or "nothing",
                freed,
                {k[:19]: v for k, v in plan.protected.items()} or "nothing protected",
            )
        return {
            "evicted": evicted,
            "freed_bytes": freed,
            "cache_bytes": cache_bytes,
            "budget_bytes": plan.budget_bytes,
        }

    def _present_entries(self) -> list[dict[str, Any]]:
        """Cache entries whose image still exists; the others are dropped from the index.

        An entry recorded without its layers (before they were recorded) gets them here, once.
        """
        entries = []
        for entry in self.cache.entries():
            if not self.images.present_id(entry["id"]):
                self.cache.forget(entry["id"])
                continue
            if entry.get("layers") is None:
                layers = self.images.layers(entry["id"])
                if layers is not None:
                    self.cache.set_layers(entry["id"], layers)
                    entry["layers"] = layers
            entries.append(entry)
        return entries

    def _remove(self, victim: dict[str, Any]) -> bool:
        """Remove every name the service pulled the image under; True when the image is gone."""
        engine = self.images.engine
        try:
            for reference in victim["references"]:
                name = parse_reference(reference).familiar
                # A name that moved to another image (a newer pull) is not ours to drop.
                attrs = engine.inspect_image(name)
                if attrs is not None and attrs["Id"] == victim["id"]:
                    with contextlib.suppress(ImageNotFound):  # Untagged meanwhile.
                        engine.remove_image(name, force=False)
                self.cache.disown(reference)
            with contextlib.suppress(ImageNotFound):  # Gone with its last name.
                engine.remove_image(victim["id"], force=False)
        except Conflict as exc:
            log.info("not evicting %s: %s", victim["id"][:19], exc)
            return False
        if self.images.present_id(victim["id"]):
            return False
        self.cache.forget(victim["id"])
        return True

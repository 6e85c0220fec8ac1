"""The image cache index in Redis, shared by every worker and surviving restarts.

It holds the images the service pulled (an image it never pulled is never its to evict), each with
its id, references, size, layers, pulled_at, pull_seconds, last_used, use_count; a sorted set orders
them by last use (the LRU index); counters give the hit rate of pull requests.

The cache's size is the size of the union of its images' layers: images built on one base share
its layers on disk, and count them once.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from typing import Any

import redis

from workers.keys import Keys

# KEYS: the image's entry, the LRU index. ARGV: the image id, now. An image the cache does not
# hold (never pulled by the service, or evicted a moment ago) gets no entry.
_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'last_used', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'use_count', 1)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""

# KEYS: the reference's key, the LRU index. ARGV: the entries' key prefix, now. As _TOUCH, for the
# cached image a reference names (none: nothing happens).
_TOUCH_REFERENCE = """
local id = redis.call('GET', KEYS[1])
if not id or redis.call('EXISTS', ARGV[1] .. id) == 0 then
  return 0
end
redis.call('HSET', ARGV[1] .. id, 'last_used', ARGV[2])
redis.call('HINCRBY', ARGV[1] .. id, 'use_count', 1)
redis.call('ZADD', KEYS[2], ARGV[2], id)
return 1
"""


#: A layer as the cache counts it: its chain id (the layer with every layer below it, which is
#: what the Docker host stores and shares) and its own size in bytes.
Layer = tuple[str, int]


def image_layers(
    image_id: str, diff_ids: list[str], history_sizes: list[int], size: int
) -> list[Layer]:
    """The layers of an image, from its RootFS diff ids and its history's sizes (oldest first).

    The Engine API's history does not say which entries made a layer; an entry with a size did.
    When those do not line up with the layers one to one (a layer of size 0, a history that was
    squashed), the image counts as one layer of its whole size, known by the image's id and so
    shared with nothing: the cache then over-counts it, never under-counts.
    """
    sizes = [s for s in history_sizes if s > 0]
    if diff_ids and len(sizes) == len(diff_ids) and sum(sizes) == size:
        return list(zip(chain_ids(diff_ids), sizes, strict=True))
    return [(image_id, size)]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Docker's chain ids: the first layer's diff id, then sha256("<parent> <diff id>")."""
    chain: list[str] = []
    for diff_id in diff_ids:
        if chain:
            digest = hashlib.sha256(f"{chain[-1]} {diff_id}".encode()).hexdigest()
            chain.append(f"sha256:{digest}")
        else:
            chain.append(diff_id)
    return chain


def layers_of(entry: dict[str, Any]) -> list[Layer]:
    """A cache entry's layers; one of its own, its whole size, for an entry recorded without."""
    return entry.get("layers") or [(entry["id"], int(entry.get("size") or 0))]


class LayerUse:
    """Which cached images use each layer: what removing some of them would free."""

    def __init__(self, entries: Iterable[dict[str, Any]]) -> None:
        self.users: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        for entry in entries:
            for chain_id, size in layers_of(entry):
                self.users[chain_id] = self.users.get(chain_id, 0) + 1
                self.sizes[chain_id] = max(size, self.sizes.get(chain_id, 0))
        self.total = sum(self.sizes.values())

    def release(self, entry: dict[str, Any]) -> int:
        """Count ``entry`` as gone; returns the bytes of the layers no other image uses."""
        freed = 0
        for chain_id, _ in layers_of(entry):
            self.users[chain_id] -= 1
            if self.users[chain_id] == 0:
                freed += self.sizes[chain_id]
        self.total -= freed
        return freed


def cached_bytes(entries: Iterable[dict[str, Any]]) -> int:
    """Bytes of the union of the entries' layers."""
    return LayerUse(entries).total


# KEYS: the image's entry. ARGV: its layers (JSON). Only an entry that still exists.
_SET_LAYERS = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'layers', ARGV[1])
return 1
"""


class ImageCache:
    """The LRU index of pulled images. The Redis client is passed in (``decode_responses=True``)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._touch = client.register_script(_TOUCH)
        self._touch_reference = client.register_script(_TOUCH_REFERENCE)
        self._set_layers = client.register_script(_SET_LAYERS)

    # --- writes -------------------------------------------------------------------------------
    def record_pull(
        self,
        image_id: str,
        references: list[str],
        size: int,
        pull_seconds: float,
        layers: list[Layer] | None = None,
    ) -> None:
        """Add (or refresh) an image the service has just pulled.

        ``layers`` None (unknown): the layers recorded earlier stay; with none, eviction asks
        Docker for them later.
        """
        now = time.time()
        key = self.keys.image(image_id)
        for reference in references:
            self._release(reference, image_id)
        known = set(self.references(image_id))
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            key,
            mapping={
                "id": image_id,
                "references": json.dumps(sorted(known | set(references))),
                "size": size,
                **({"layers": json.dumps(layers)} if layers else {}),
                "pulled_at": now,
                "pull_seconds": round(pull_seconds, 3),
                "last_used": now,
            },
        )
        pipe.hsetnx(key, "use_count", 0)
        pipe.zadd(self.keys.images(), {image_id: now})
        for reference in references:
            pipe.set(self.keys.image_reference(reference), image_id)
            pipe.sadd(self.keys.owned_references(), reference)
        pipe.execute()

    def add_reference(self, image_id: str, reference: str) -> None:
        """The service gave an image another name (a tag): it owns that name now."""
        self.redis.sadd(self.keys.owned_references(), reference)
        self._release(reference, image_id)
        if not self.redis.exists(self.keys.image(image_id)):
            return
        references = set(self.references(image_id)) | {reference}
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.image(image_id), "references", json.dumps(sorted(references)))
        pipe.set(self.keys.image_reference(reference), image_id)
        pipe.execute()

    def set_layers(self, image_id: str, layers: list[Layer]) -> None:
        """Record the layers of a cached image whose entry has none (written before layers were)."""
        self._set_layers(keys=[self.keys.image(image_id)], args=[json.dumps(layers)])

    def touch(self, image_id: str) -> bool:
        """A container was created from the image: bump last_used and use_count if it is cached."""
        touched = self._touch(
            keys=[self.keys.image(image_id), self.keys.images()], args=[image_id, time.time()]
        )
        return bool(touched)

    def touch_reference(self, canonical: str) -> bool:
        """As :meth:`touch`, for the cached image a canonical reference names (one round trip,
        no Docker call)."""
        touched = self._touch_reference(
            keys=[self.keys.image_reference(canonical), self.keys.images()],
            args=[self.keys.image(""), time.time()],
        )
        return bool(touched)

    def forget(self, image_id: str) -> None:
        """The image left the host."""
        references = self.references(image_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.keys.image(image_id))
        pipe.zrem(self.keys.images(), image_id)
        for reference in references:
            pipe.delete(self.keys.image_reference(reference))
        pipe.execute()

    def _release(self, reference: str, new_owner: str) -> None:
        """A name moved to another image: the entry of the image it named no longer has it."""
        previous = self.lookup(reference)
        if previous is not None and previous != new_owner:
            references = [r for r in self.references(previous) if r != reference]
            if self.redis.exists(self.keys.image(previous)):
                self.redis.hset(self.keys.image(previous), "references", json.dumps(references))

    def owns(self, reference: str) -> bool:
        """Whether the service pulled or tagged this (canonical) reference."""
        return bool(self.redis.sismember(self.keys.owned_references(), reference))

    def disown(self, reference: str) -> None:
        """The service removed this name."""
        self.redis.srem(self.keys.owned_references(), reference)

    def forget_reference(self, image_id: str, reference: str) -> None:
        """One name of a cached image was removed; the image stays."""
        references = [r for r in self.references(image_id) if r != reference]
        pipe = self.redis.pipeline(transaction=True)
        if self.redis.exists(self.keys.image(image_id)):
            pipe.hset(self.keys.image(image_id), "references", json.dumps(references))
        pipe.delete(self.keys.image_reference(reference))
        pipe.execute()

    def count(self, *, hit: bool) -> None:
        """Count a pull request answered from the cache (hit) or from the registry (miss)."""
        self.redis.hincrby(self.keys.image_cache_counters(), "hits" if hit else "misses", 1)

    # --- reads --------------------------------------------------------------------------------
    def lookup(self, canonical: str) -> str | None:
        """The id of the cached image a canonical reference names."""
        value = self.redis.get(self.keys.image_reference(canonical))
        return str(value) if value else None

    def references(self, image_id: str) -> list[str]:
        raw = self.redis.hget(self.keys.image(image_id), "references")
        return list(json.loads(raw)) if raw else []

    def get(self, image_id: str) -> dict[str, Any] | None:
        """One entry, decoded."""
        raw = self.redis.hgetall(self.keys.image(image_id))
        return _decode(raw) if raw else None

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, least recently used first."""
        ids = [str(i) for i in self.redis.zrange(self.keys.images(), 0, -1)]
        pipe = self.redis.pipeline(transaction=False)
        for image_id in ids:
            pipe.hgetall(self.keys.image(image_id))
        return [_decode(raw) for raw in pipe.execute() if raw]

    def total_bytes(self) -> int:
        """Bytes of the cached images, each layer counted once."""
        return cached_bytes(self.entries())

    def counters(self) -> dict[str, Any]:
        """hits, misses and hit_rate (None before the first request)."""
        raw = self.redis.hgetall(self.keys.image_cache_counters())
        hits, misses = int(raw.get("hits", 0)), int(raw.get("misses", 0))
        total = hits + misses
        return {
            "hits": hits,
            "misses": misses,
            "hit_rate": round(hits / total, 4) if total else None,
        }


def _decode(raw: dict[Any, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": str(raw.get("id", ""))}
    entry["references"] = json.loads(raw.get("references") or "[]")
    entry["size"] = int(raw.get("size") or 0)
    # None: written before layers were recorded (layers_of counts it as one layer of its own).
    layers = json.loads(raw.get("layers") or "null")
    entry["layers"] = [(str(c), int(size)) for c, size in layers] if layers else None
    for name in ("pulled_at", "pull_seconds", "last_used"):
        entry[name] = float(raw[name]) if raw.get(name) not in (None, "") else None
    entry["use_count"] = int(raw.get("use_count") or 0)
    return entry

"""Every Redis key containerizer uses, built in one place. Each carries the configured prefix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds the Redis keys of one deployment (one prefix)."""

    prefix: str = "containerizer:"

    def container(self, container_id: str) -> str:
        """Hash: the record of one managed container."""
        return f"{self.prefix}container:{container_id}"

    def container_name(self, name: str) -> str:
        """String: the id of the managed container with this name."""
        return f"{self.prefix}container-name:{name}"

    def containers(self) -> str:
        """Set: ids of managed containers that exist in Docker (the live set)."""
        return f"{self.prefix}containers"

    def stats_sample(self, container_id: str) -> str:
        """Hash: the raw CPU counters of the last stats sample, for the next CPU % computation."""
        return f"{self.prefix}stats-sample:{container_id}"

    def image(self, image_id: str) -> str:
        """Hash: the cache entry of one image the service pulled."""
        return f"{self.prefix}image:{image_id}"

    def images(self) -> str:
        """Sorted set: ids of cached images scored by last use (the LRU index)."""
        return f"{self.prefix}images"

    def image_reference(self, canonical: str) -> str:
        """String: the id of the cached image a canonical reference names."""
        return f"{self.prefix}image-ref:{canonical}"

    def owned_references(self) -> str:
        """Set: canonical image references the service pulled or tagged (the ones it may
        re-tag or remove)."""
        return f"{self.prefix}images:owned"

    def image_cache_counters(self) -> str:
        """Hash: ``hits`` and ``misses`` of pull requests."""
        return f"{self.prefix}image-cache:counters"

    def pull_lock(self, docker_host: str) -> str:
        """Lock: held while one pull runs against one Docker host."""
        return f"{self.prefix}lock:pull:{docker_host}"

    def stats_history(self, container_id: str) -> str:
        """Stream: recent ResourceUsage samples of one container (bounded by MAXLEN)."""
        return f"{self.prefix}stats-history:{container_id}"

    def docker_host(self) -> str:
        """String: the id of the one Docker daemon whose state this prefix holds."""
        return f"{self.prefix}docker-host"

    def events_since(self) -> str:
        """String: the time (ns) of the last Docker event the watcher applied, to resume from."""
        return f"{self.prefix}events:since"

    def maintenance_lock(self, task: str) -> str:
        """Lock: held while one periodic task runs, so that overlapping runs do no double work."""
        return f"{self.prefix}lock:maintenance:{task}"

    def metrics_histogram(self, name: str) -> str:
        """Hash: cumulative bucket counts, sum and count of one histogram, by label value."""
        return f"{self.prefix}metrics:histogram:{name}"

    def metrics_counters(self) -> str:
        """Hash: monotonically increasing counters."""
        return f"{self.prefix}metrics:counters"

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

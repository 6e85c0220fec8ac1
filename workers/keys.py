"""Every Redis key containerizer uses, built in one place. Each carries the configured prefix.

Keys are of two kinds. Cluster keys are shared by every Docker host of a deployment: container
records (container ids are unique across daemons), the name index (names are unique across the
cluster), the host registry. Host keys hold what belongs to one Docker host and carry its name:
``<prefix>host:<host>:...`` (its live set, image cache, locks, event position, metrics), so that
hosts never overwrite each other. ``Keys(prefix, host)`` builds both; ``keys.on(other)`` builds
another host's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds the Redis keys of one deployment (one prefix), from one host's point of view."""

    prefix: str = "containerizer:"
    host: str = "default"

    def on(self, host: str) -> Keys:
        """The keys of another host."""
        return replace(self, host=host)

    def _host(self, suffix: str) -> str:
        return f"{self.prefix}host:{self.host}:{suffix}"

    # --- cluster: containers ---------------------------------------------------------------------
    def container(self, container_id: str) -> str:
        """Hash: the record of one managed container (its ``host`` field names its host)."""
        return f"{self.prefix}container:{container_id}"

    def container_name(self, name: str) -> str:
        """String: the id of the managed container with this name (names are cluster-wide)."""
        return f"{self.prefix}container-name:{name}"

    def short_id(self, container_id: str) -> str:
        """String: the full id of the managed container whose id starts with these 12 digits."""
        return f"{self.prefix}container-short:{container_id[:12]}"

    def name_claim(self, name: str) -> str:
        """Hash: a create of a container with this name under way (host, spec hash, token)."""
        return f"{self.prefix}name-claim:{name}"

    def stats_sample(self, container_id: str) -> str:
        """Hash: the raw CPU counters of the last stats sample, for the next CPU % computation."""
        return f"{self.prefix}stats-sample:{container_id}"

    def stats_history(self, container_id: str) -> str:
        """Stream: recent ResourceUsage samples of one container (bounded by MAXLEN)."""
        return f"{self.prefix}stats-history:{container_id}"

    # --- cluster: hosts --------------------------------------------------------------------------
    def hosts(self) -> str:
        """Set: the names of every host that has ever served this deployment."""
        return f"{self.prefix}hosts"

    def host_info(self) -> str:
        """Hash: this host's heartbeat (docker version, CPUs, memory, load, last_seen, ...)."""
        return f"{self.prefix}host:{self.host}"

    def daemon_host(self, daemon_id: str) -> str:
        """String: the host name a Docker daemon (by its id) serves as."""
        return f"{self.prefix}docker-id:{daemon_id}"

    # --- host: containers ----------------------------------------------------------------------
    def containers(self) -> str:
        """Set: ids of this host's managed containers that exist in Docker (the live set)."""
        return self._host("containers")

    def daemon_id(self) -> str:
        """String: the id of the one Docker daemon this host name is bound to."""
        return self._host("docker-id")

    def placements(self) -> str:
        """Hash: container name -> memory limit (bytes) of each container placed on this host."""
        return self._host("placements")

    def create_intents(self) -> str:
        """Hash: create token -> {name, at} of each create under way (the orphan marker)."""
        return self._host("create-intents")

    def waiters(self, container_id: str) -> str:
        """Hash: task id -> condition of each ``wait`` task waiting for this container."""
        return self._host(f"waiters:{container_id}")

    def wait_deadlines(self) -> str:
        """Sorted set: ``<container id>|<task id>`` of this host's waits, scored by deadline."""
        return self._host("wait-deadlines")

    def exit_notice(self, container_id: str, finished_us: int) -> str:
        """String: ``pending``/``sent``, the on_exit of one exit of a container (once each)."""
        return f"{self.prefix}exit:{container_id}:{finished_us}"

    def once(self, operation: str, task_id: str) -> str:
        """String: an operation that must not be repeated (a restart) done by that task's message
        (a redelivered copy finds it and does not do it again)."""
        return f"{self.prefix}once:{operation}:{task_id}"

    def follow_requests(self) -> str:
        """List: requests to follow a container's logs into a stream (the agent takes them)."""
        return self._host("follow-requests")

    def logs_stream(self, container_id: str, token: str) -> str:
        """Stream: one follower's copy of a container's output (``logs(follow=true)``)."""
        return f"{self.prefix}logs:{container_id}:{token}"

    def events_since(self) -> str:
        """String: the time (ns) of the last Docker event the watcher applied, to resume from."""
        return self._host("events:since")

    # --- host: images --------------------------------------------------------------------------
    def image(self, image_id: str) -> str:
        """Hash: the cache entry of one image the service pulled on this host."""
        return self._host(f"image:{image_id}")

    def images(self) -> str:
        """Sorted set: ids of this host's cached images scored by last use (the LRU index)."""
        return self._host("images")

    def image_reference(self, canonical: str) -> str:
        """String: the id of the cached image a canonical reference names on this host."""
        return self._host(f"image-ref:{canonical}")

    def owned_references(self) -> str:
        """Set: canonical image references the service pulled or tagged on this host (the ones
        it may re-tag or remove)."""
        return self._host("images:owned")

    def image_cache_counters(self) -> str:
        """Hash: ``hits`` and ``misses`` of pull requests on this host."""
        return self._host("image-cache:counters")

    def image_inventory(self) -> str:
        """Hash: image id -> {tags, size} of every image on this host (the agent keeps it)."""
        return self._host("image-inventory")

    def image_references(self) -> str:
        """Set: the canonical references of every image on this host (the agent keeps it)."""
        return self._host("image-refs")

    def pull_lock(self) -> str:
        """Lock: held while one pull runs against this host's Docker daemon."""
        return self._host("lock:pull")

    # --- host: volumes and networks ---------------------------------------------------------------
    def volumes(self) -> str:
        """Hash: name -> record (driver, labels, created_at) of each volume the service created."""
        return self._host("volumes")

    def networks(self) -> str:
        """Hash: name -> record (id, driver, internal, labels) of each network it created."""
        return self._host("networks")

    # --- host: periodic work and metrics ----------------------------------------------------------
    def maintenance_lock(self, task: str) -> str:
        """Lock: held while one periodic task runs, so that overlapping runs do no double work."""
        return self._host(f"lock:maintenance:{task}")

    def tick(self, task: str) -> str:
        """String: the last interval slot in which a periodic task ran on this host."""
        return self._host(f"tick:{task}")

    def metrics_histogram(self, name: str) -> str:
        """Hash: cumulative bucket counts, sum and count of one histogram, by label value."""
        return self._host(f"metrics:histogram:{name}")

    def restarts(self) -> str:
        """Hash: service name -> how often ``up`` restarted it on this host."""
        return self._host("metrics:restarts")

    def metrics_counters(self) -> str:
        """Hash: monotonically increasing counters."""
        return self._host("metrics:counters")

    # --- single-host layout, before hosts (read once, by the migration) --------------------------
    def legacy(self, suffix: str) -> str:
        """A key of the layout before hosts: ``<prefix><suffix>``."""
        return f"{self.prefix}{suffix}"

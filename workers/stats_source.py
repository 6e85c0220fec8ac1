"""Where a container's one-shot stats come from: this host's cgroup and /proc files when this
process can read them (as cAdvisor and the kubelet do), the Docker API otherwise.

dockerd answers a one-shot stats call on its next collection tick after a few milliseconds of work
per container, so an API sweep grows with the containers it samples; the files answer in a few
small reads each. The documents agree (workers/cgroup_stats.py computes them as dockerd does; the
integration test compares them within 1 %), so callers cannot tell which they got but by
:attr:`StatsSource.kind`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Literal

from workers.cgroup_stats import CgroupStats, CgroupStatsError
from workers.engine import Engine

log = logging.getLogger(__name__)

#: How long a failed detection (no container running yet, files unreadable) stands: short, for a
#: sweep that finds no evidence at its start (nothing ran yet) must not send the next sweeps, with
#: containers running by then, to the API; a detection is a few file reads.
DETECT_AGAIN_SECONDS = 2.0


class StatsSource:
    """One-shot stats documents in the Docker Engine API's shape."""

    def __init__(
        self,
        engine: Engine,
        mode: Literal["auto", "api"] = "auto",
        *,
        cgroup_root: str = "/sys/fs/cgroup",
        proc_root: str = "/proc",
    ) -> None:
        """``mode`` ``api`` always asks dockerd; ``auto`` reads the host's files once it has
        found it can (see :meth:`CgroupStats.detect`)."""
        self.engine = engine
        self.mode = mode
        self.cgroup_root = cgroup_root
        self.proc_root = proc_root
        self._counters: CgroupStats | None = None
        self._detect_after = 0.0
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        """Where the next sample comes from: ``cgroup`` or ``api``."""
        return "cgroup" if self._reader() is not None else "api"

    def raw(self, container_id: str) -> dict[str, Any]:
        """One stats document for a full container id.

        Raises:
            ContainerNotFound, DockerUnavailable, ...: from the API, when it is asked.
        """
        counters = self._reader()
        if counters is not None:
            try:
                raw = counters.raw_stats(container_id)
            except CgroupStatsError as exc:
                self._give_up(exc)
            else:
                if raw is not None:
                    return raw
                # No cgroup where Docker's layout puts it, or no process left in it: the API
                # tells whether it stopped or lives elsewhere (a --cgroup-parent of its own).
        return self.engine.stats(container_id)

    def _reader(self) -> CgroupStats | None:
        if self.mode != "auto":
            return None
        counters = self._counters
        if counters is not None or time.monotonic() < self._detect_after:
            return counters
        with self._lock:
            if self._counters is None and time.monotonic() >= self._detect_after:
                self._counters = CgroupStats.detect(
                    self.engine.daemon(), cgroup_root=self.cgroup_root, proc_root=self.proc_root
                )
                self._detect_after = time.monotonic() + DETECT_AGAIN_SECONDS
                log.info(
                    "stats: %s",
                    "read from this host's cgroup files"
                    if self._counters is not None
                    else "asked of the Docker API (this host's cgroup files are not readable here)",
                )
            return self._counters

    def _give_up(self, exc: CgroupStatsError) -> None:
        """A file could not be used: the API answers until detection succeeds again."""
        with self._lock:
            if self._counters is not None:
                log.warning("stats: cgroup files unusable (%s); asking the Docker API", exc)
            self._counters = None
            self._detect_after = time.monotonic() + DETECT_AGAIN_SECONDS

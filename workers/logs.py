"""Live logs: a container's output copied into a Redis stream as it comes (``logs(follow=true)``).

The logs task asks (a request on the host's list) and returns the stream's name at once; the host
agent takes the request and follows the container's output with Docker's ``logs -f`` in a thread of
its own, from its first line as ``docker logs -f`` does, appending one entry per line
(``{"stream": "stdout"|"stderr", "line": ...}``), and a last entry ``{"eof": "1", "reason": ...}``
when the container stops, after ``CONTAINERIZER_LOGS_FOLLOW_MAX_SECONDS``, or on an error. A stream
keeps its latest ``LOGS_FOLLOW_MAX_LINES`` lines, each cut at ``LOGS_FOLLOW_LINE_BYTES``, and
expires ``LOGS_FOLLOW_TTL_SECONDS`` after its last entry. Readers read it from the state Redis
(``XREAD BLOCK``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from typing import Any

import redis

from config.settings import Settings
from workers.engine import STDERR, Engine
from workers.errors import ContainerizerError
from workers.keys import Keys

log = logging.getLogger(__name__)

_STREAM_NAMES = {STDERR: "stderr"}


class LogFollowers:
    """The follow streams of one host: asked for by tasks, fed by its agent."""

    def __init__(self, engine: Engine, client: redis.Redis, keys: Keys, settings: Settings) -> None:
        self.engine = engine
        self.redis = client
        self.keys = keys
        self.settings = settings
        self._active: dict[str, set[threading.Thread]] = {}
        self._lock = threading.Lock()

    # --- the task's side ----------------------------------------------------------------------
    def request(self, container_id: str) -> str:
        """Ask this host's agent to follow a container; returns the stream's name at once."""
        stream = self.keys.logs_stream(container_id, uuid.uuid4().hex[:12])
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(
            self.keys.follow_requests(), json.dumps({"container": container_id, "stream": stream})
        )
        pipe.execute()
        return stream

    # --- the agent's side ---------------------------------------------------------------------
    def serve(self, stop: threading.Event) -> None:
        """Take follow requests until ``stop`` is set, each followed in a thread of its own."""
        while not stop.is_set():
            try:
                item = self.redis.blpop([self.keys.follow_requests()], timeout=1)
            except redis.RedisError as exc:
                log.warning("follow requests unreadable (%s); trying again", exc)
                stop.wait(1.0)
                continue
            if item is None:
                continue
            try:
                request = json.loads(item[1])
                container_id, stream = str(request["container"]), str(request["stream"])
            except (ValueError, KeyError, TypeError):
                log.warning("dropped a malformed follow request")
                continue
            self._start(container_id, stream, stop)

    def _start(self, container_id: str, stream: str, stop: threading.Event) -> None:
        with self._lock:
            running = sum(len(threads) for threads in self._active.values())
            if running >= self.settings.logs_followers_max:
                self._end(stream, "too many followers on this host")
                return
            thread = threading.Thread(
                target=self.follow, args=(container_id, stream, stop), daemon=True, name="follow"
            )
            self._active.setdefault(container_id, set()).add(thread)
        thread.start()

    def follow(self, container_id: str, stream: str, stop: threading.Event) -> None:
        """Copy one container's output into ``stream`` until it stops (or a bound)."""
        reason = "stopped"
        longest = self.settings.logs_follow_max_seconds
        deadline = time.monotonic() + longest
        lines = _Lines(self.settings.logs_follow_line_bytes)
        # Cut at the bound by the engine too: a container that prints nothing sends no frame
        # to end the loop on.
        frames = self.engine.follow_logs(container_id, seconds=longest)
        try:
            for frame in frames:
                name = _STREAM_NAMES.get(frame.stream, "stdout")
                self._append(stream, lines.feed(name, frame.data))  # One round trip a frame.
                if stop.is_set():
                    reason = "the host's agent stopped"
                    break
                if time.monotonic() > deadline:
                    reason = "followed for the longest allowed"
                    break
            else:
                # The stream ended: the container stopped, or the engine cut it at the bound.
                if time.monotonic() >= deadline:
                    reason = "followed for the longest allowed"
        except ContainerizerError as exc:
            cut = time.monotonic() >= deadline
            reason = "followed for the longest allowed" if cut else f"error: {exc}"
        except redis.RedisError as exc:
            log.warning("follow stream %s lost: %s", stream, exc)
            reason = "the state store failed"
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()
            with contextlib.suppress(redis.RedisError):
                self._append(stream, lines.rest())
                self._end(stream, reason)
            with self._lock:
                self._active.get(container_id, set()).discard(threading.current_thread())

    def drain(self, container_id: str, timeout: float = 5.0) -> None:
        """Wait (a bounded time) for this container's followers, and those asked for and not
        started yet, to read its last lines: before an auto_remove takes them away."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                threads = list(self._active.get(container_id, ()))
            if threads:
                threads[0].join(timeout=max(deadline - time.monotonic(), 0.0))
            elif self._requested(container_id):
                time.sleep(0.05)
            else:
                return

    def _requested(self, container_id: str) -> bool:
        """Whether a follow of this container waits in the request list."""
        try:
            pending = self.redis.lrange(self.keys.follow_requests(), 0, -1)
        except redis.RedisError:
            return False
        return any(f'"container": "{container_id}"' in str(item) for item in pending)

    def _append(self, stream: str, lines: list[tuple[str, str]]) -> None:
        if not lines:
            return
        pipe = self.redis.pipeline(transaction=False)
        for name, text in lines:
            pipe.xadd(
                stream,
                {"stream": name, "line": text},
                maxlen=self.settings.logs_follow_max_lines,
                approximate=True,
            )
        pipe.expire(stream, self.settings.logs_follow_ttl_seconds)
        pipe.execute()

    def _end(self, stream: str, reason: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(stream, {"eof": "1", "reason": reason[:500]})
        pipe.expire(stream, self.settings.logs_follow_ttl_seconds)
        pipe.execute()


class _Lines:
    """Splits each stream's bytes into lines (a line's end may come in a later frame)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.partial: dict[str, bytes] = {}

    def feed(self, stream: str, data: bytes) -> list[tuple[str, str]]:
        buffer = self.partial.get(stream, b"") + data
        *complete, rest = buffer.split(b"\n")
        if len(rest) > self.max_bytes:  # A line with no end in sight: cut, as if it ended.
            complete.append(rest)
            rest = b""
        self.partial[stream] = rest
        return [(stream, self._text(line)) for line in complete]

    def rest(self) -> list[tuple[str, str]]:
        done = [(stream, self._text(part)) for stream, part in self.partial.items() if part]
        self.partial.clear()
        return done

    def _text(self, line: bytes) -> str:
        if len(line) > self.max_bytes:
            return line[: self.max_bytes].decode("utf-8", "replace") + "\u2026"
        return line.decode("utf-8", "replace")


def read_stream(
    client: redis.Redis, stream: str, *, last_id: str = "0", block_ms: int = 1000
) -> list[tuple[str, dict[str, str]]]:
    """The entries of a follow stream after ``last_id`` (waiting up to ``block_ms`` for some)."""
    answer: Any = client.xread({stream: last_id}, block=block_ms, count=500)
    if not answer:
        return []
    _, entries = answer[0]
    return [
        (str(entry_id), {str(k): str(v) for k, v in fields.items()}) for entry_id, fields in entries
    ]

"""Services of a test's own, which it may stop, kill -9, slow down and start again: a private
dockerd, a private redis-server, a private registry and a throttling TCP proxy.

Each takes a directory of its own and free ports, so that faulting it disturbs no other test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Self

import docker
import docker.errors
import psutil
import redis

from tests.integration.support import free_port, require, stop_process


def _ip(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["ip", *args], capture_output=True, check=False)


class PrivateDockerd:
    """A dockerd beside the machine's: its own socket, data root, exec root, pidfile, bridge and
    daemon id (Docker 20.10 takes its id from a key file that only its config file can move)."""

    def __init__(self, root: Path, bridge: str, address: str) -> None:
        self.root = root
        self.bridge = bridge
        self.address = address
        self.socket = root / "docker.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        with (self.root / "dockerd.log").open("ab") as log:
            self.process = self._spawn(log)
        deadline = time.monotonic() + 60
        while not self._answers():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(
                    "private dockerd did not start: "
                    + (self.root / "dockerd.log").read_text(errors="replace")[-2000:]
                )
            time.sleep(0.3)

    def client(self, timeout: int = 60) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=timeout)

    def _answers(self) -> bool:
        try:
            client = docker.DockerClient(base_url=self.url, timeout=5)
        except docker.errors.DockerException:
            return False
        try:
            return bool(client.ping())
        except (docker.errors.DockerException, OSError):
            return False
        finally:
            client.close()

    def _spawn(self, log: BinaryIO) -> subprocess.Popen[bytes]:
        config = self.root / "daemon.json"
        config.write_text(json.dumps({"deprecated-key-path": str(self.root / "key.json")}))
        return subprocess.Popen(
            [
                "dockerd",
                "--config-file",
                str(config),
                "-H",
                self.url,
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "docker.pid"),
                "--bridge",
                self.bridge,
                # Otherwise it rewrites the DOCKER chains the machine's daemon uses.
                "--iptables=false",
                "--ip-masq=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        """Stop dockerd (SIGTERM: it stops its containers and its containerd). If it had to be
        killed, the containerd and shims it started outlive it: they are killed too, found by
        the directories of this daemon on their command lines."""
        if self.process is not None:
            stop_process(self.process, timeout=30)
            self.process = None
        for leftover in self._processes_below_root():
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()

    def ensure_running(self) -> None:
        """Start it again if a test left it stopped."""
        if self.process is None or self.process.poll() is not None or not self._answers():
            self.stop()
            self.start()

    def _processes_below_root(self) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if any(str(self.root) in part for part in process.info["cmdline"] or []):
                    found.append(process)
        return found


@contextlib.contextmanager
def private_dockerd(
    source: docker.DockerClient, image: str, *, bridge: str, address: str
) -> Iterator[PrivateDockerd]:
    """A private dockerd with ``image`` loaded from the machine's daemon, removed afterwards."""
    require("root (to run a second dockerd)", os.geteuid() == 0)
    require("dockerd and ip", bool(shutil.which("dockerd") and shutil.which("ip")))
    if _ip("link", "show", bridge).returncode != 0:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", address, "dev", bridge)
        _ip("link", "set", bridge, "up")
        # Containers of one private bridge reach each other (iptables is off for this daemon).
        subprocess.run(
            ["iptables", "-A", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"],
            capture_output=True,
            check=False,
        )
    # Not under pytest's tmp: dockerd mounts below its data root, which pytest cannot delete.
    root = Path(tempfile.mkdtemp(prefix="containerizer-test-dockerd-", dir="/var/tmp"))
    daemon = PrivateDockerd(root, bridge, address)
    try:
        daemon.start()
        client = daemon.client()
        client.images.load(b"".join(source.images.get(image).save(named=image)))
        client.close()
        yield daemon
    finally:
        daemon.stop()
        subprocess.run(
            ["iptables", "-D", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"],
            capture_output=True,
            check=False,
        )
        _ip("link", "del", bridge)
        for mount in sorted(_mounts_below(root), reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(root, ignore_errors=True)


def _mounts_below(root: Path) -> list[str]:
    with open("/proc/mounts") as mounts:
        return [line.split()[1] for line in mounts if line.split()[1].startswith(str(root))]


class PrivateRedis:
    """A redis-server of the test's own, on a free port; with ``aof`` it persists as production
    does (appendonly, fsync every second), so that a kill -9 loses at most a second."""

    def __init__(self, root: Path, *, aof: bool = False) -> None:
        self.root = root
        self.aof = aof
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"]
            if self.aof
            else ["--appendonly", "no"]
        )
        with (self.root / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    *persistence,
                    "--dir",
                    str(self.root),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise
                time.sleep(0.1)
        finally:
            client.close()

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=30)
            self.process = None


class PrivateRegistry:
    """A docker-registry (registry v2) of the test's own on a free loopback port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        (root / "data").mkdir(parents=True, exist_ok=True)
        config = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {
                "filesystem": {"rootdirectory": str(root / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": f"127.0.0.1:{self.port}"},
        }
        (root / "config.yml").write_text(json.dumps(config))  # YAML reads JSON.

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        require("docker-registry", bool(shutil.which("docker-registry")))
        with (self.root / "registry.log").open("ab") as log:
            self.process = subprocess.Popen(
                ["docker-registry", "serve", str(self.root / "config.yml")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(
                    "private registry did not start: "
                    + (self.root / "registry.log").read_text(errors="replace")[-2000:]
                )
            time.sleep(0.1)

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=30)
            self.process = None


def copy_image(source: str, target: str, repository: str, tag: str) -> str:
    """Copy ``repository:tag`` (a schema 2 manifest, its config and layers) from the registry
    at ``source`` to the one at ``target`` over the registry API, as plain HTTP on loopback:
    no Docker daemon sees the image, so a pull from ``target`` has every byte to download.
    Returns the manifest's digest."""
    media_type = "application/vnd.docker.distribution.manifest.v2+json"

    def call(
        method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[bytes, dict[str, str]]:
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.read(), dict(response.headers)

    manifest, headers = call(
        "GET", f"http://{source}/v2/{repository}/manifests/{tag}", headers={"Accept": media_type}
    )
    document = json.loads(manifest)
    for blob in [document["config"], *document["layers"]]:
        content, _ = call("GET", f"http://{source}/v2/{repository}/blobs/{blob['digest']}")
        _, upload = call("POST", f"http://{target}/v2/{repository}/blobs/uploads/", b"")
        location = upload["Location"]
        if location.startswith("/"):
            location = f"http://{target}{location}"
        separator = "&" if "?" in location else "?"
        call(
            "PUT",
            f"{location}{separator}digest={urllib.parse.quote(blob['digest'])}",
            content,
            {"Content-Type": "application/octet-stream"},
        )
    call(
        "PUT",
        f"http://{target}/v2/{repository}/manifests/{tag}",
        manifest,
        {"Content-Type": media_type},
    )
    return str(headers.get("Docker-Content-Digest", ""))


class _LoopbackProxy:
    """A TCP server on a free loopback port, served by an event loop in a thread of its own;
    subclasses say what a connection does (``_serve``)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", self.port), self.loop
        )
        self.server = future.result(timeout=10)
        return self

    def __exit__(self, *_: object) -> None:
        # Open connections too: a stopped loop would otherwise leave their sockets open.
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    async def _close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self._writers):
            writer.close()
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            # Cancelled by the proxy's exit: ended, not failed (asyncio would log a cancelled
            # handler as an error).
            with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                await self._serve(reader, writer)
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _upstream(
        self, opener: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The upstream connection (closed with the proxy), or None if it refuses."""
        try:
            up_reader, up_writer = await opener
        except OSError:
            return None
        self._writers.add(up_writer)
        return up_reader, up_writer

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class SlowProxy(_LoopbackProxy):
    """A TCP proxy on a free loopback port that passes at most ``bytes_per_second`` from the
    upstream to the client: a registry that serves slowly enough for a kill to land mid-pull.

    ``rate`` may be changed (None: no limit); it applies to connections opened afterwards.
    """

    def __init__(self, upstream_port: int, bytes_per_second: int | None) -> None:
        super().__init__()
        self.upstream_port = upstream_port
        self.rate = bytes_per_second

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._upstream(asyncio.open_connection("127.0.0.1", self.upstream_port))
        if upstream is None:
            return
        up_reader, up_writer = upstream
        await asyncio.gather(
            self._pipe(reader, up_writer, None), self._pipe(up_reader, writer, self.rate)
        )

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, rate: int | None
    ) -> None:
        chunk = 16 * 1024
        try:
            while data := await source.read(chunk):
                sink.write(data)
                await sink.drain()
                if rate:
                    await asyncio.sleep(len(data) / rate)
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.close()


class ReplyCutter(_LoopbackProxy):
    """A TCP front (``url``, for DOCKER_HOST) for a Docker daemon's unix socket that passes every
    request on, but for the first ``count`` requests whose request line holds ``marker`` it cuts
    the caller's connection when the reply comes: the daemon did the work, and its caller never
    hears of it. ``cut`` counts the replies it cut."""

    def __init__(self, upstream: Path, marker: bytes, count: int = 1) -> None:
        super().__init__()
        self.upstream = upstream
        self.marker = marker
        self.left = count
        self.cut = 0

    @property
    def url(self) -> str:
        return f"tcp://{self.address}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._upstream(asyncio.open_unix_connection(str(self.upstream)))
        if upstream is None:
            return
        up_reader, up_writer = upstream
        cutting = asyncio.Event()

        async def requests() -> None:
            while data := await reader.read(64 * 1024):
                request_line = data.split(b"\r\n", 1)[0]
                if (
                    self.left > 0
                    and request_line.startswith(b"POST ")
                    and self.marker in request_line
                ):
                    self.left -= 1
                    cutting.set()
                up_writer.write(data)
                await up_writer.drain()

        async def replies() -> None:
            while data := await up_reader.read(64 * 1024):
                if cutting.is_set():
                    self.cut += 1
                    writer.transport.abort()  # A reset, before a byte of the reply.
                    up_writer.close()
                    return
                writer.write(data)
                await writer.drain()

        await asyncio.gather(requests(), replies())

"""The ``containerizer`` command."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from config.settings import load_settings
from tasks.cli_client import register as register_client_commands

cli = typer.Typer(
    name="containerizer",
    help="Queue-driven Docker container manager.",
    no_args_is_help=True,
    add_completion=False,
)


@cli.command()
def up() -> None:
    """Run the whole service in the foreground: workers, beat and Flower. Ctrl-C stops it."""
    from tasks.up import up as run_up

    settings = load_settings()
    _configure_logging(settings.log_level, "up")
    raise typer.Exit(run_up(settings))


@cli.command()
def worker(
    kind: Annotated[str, typer.Argument(help="containers, images or maintenance.")],
) -> None:
    """Run one worker as `up` runs it: this host's own queue of a kind, then the shared one."""
    import os

    from tasks.up import worker_services

    settings = load_settings()
    services = {
        service.name.removeprefix("worker-"): service for service in worker_services(settings)
    }
    if kind not in services:
        typer.echo(f"unknown worker {kind!r}: one of {', '.join(sorted(services))}", err=True)
        raise typer.Exit(2)
    argv = services[kind].argv
    os.execv(argv[0], argv)


@cli.command()
def events() -> None:
    """Follow Docker's events and keep container records current (`up` runs this)."""
    import signal
    import threading
    import time

    from tasks.runtime import Runtime
    from workers.errors import ConfigurationError, DockerUnavailable
    from workers.events import EventWatcher
    from workers.state import STATE_ERRORS

    settings = load_settings()
    _configure_logging(settings.log_level, "events")
    log = logging.getLogger("containerizer.events")

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupt)
    runtime = Runtime(settings)
    try:
        delay = 0.5
        transient: tuple[type[Exception], ...] = (DockerUnavailable, *STATE_ERRORS)
        while True:
            try:
                engine = runtime.engine
                break
            except transient as exc:
                log.warning("%s; retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
            except ConfigurationError as exc:
                log.error("%s", exc)
                raise typer.Exit(2) from None
        watcher = EventWatcher(engine, runtime.state, runtime.redis, runtime.keys)
        log.info("following Docker events from %s", watcher.since())
        watcher.run(threading.Event())
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        runtime.close()


@cli.command()
def metrics() -> None:
    """Serve Prometheus metrics, read from Redis at scrape time (`up` runs this)."""
    import signal
    import threading

    from prometheus_client import CollectorRegistry, start_http_server

    from tasks.metrics_server import ContainerizerCollector
    from tasks.runtime import Runtime

    settings = load_settings()
    _configure_logging(settings.log_level, "metrics")
    runtime = Runtime(settings)
    registry = CollectorRegistry()
    registry.register(
        ContainerizerCollector(runtime.state, runtime.image_cache, runtime.metrics, settings)
    )
    server, thread = start_http_server(
        settings.metrics_port, addr=settings.metrics_address, registry=registry
    )
    logging.getLogger("containerizer.metrics").info(
        "metrics on http://%s:%d/metrics", settings.metrics_address, settings.metrics_port
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    thread.join(timeout=5)
    runtime.close()


def _configure_logging(level: str, process: str) -> None:
    logging.basicConfig(
        level=level,
        format=f"[%(asctime)s: %(levelname)s/containerizer-{process}] %(message)s",
        stream=sys.stderr,
    )


@cli.command()
def version() -> None:
    """Print the version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("containerizer"))


register_client_commands(cli)


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()

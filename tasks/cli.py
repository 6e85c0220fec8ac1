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
    """Follow Docker's events into the records and heartbeat this host (`up` runs this)."""
    from tasks.agent import run

    settings = load_settings()
    _configure_logging(settings.log_level, "events")
    raise typer.Exit(run(settings))


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
        ContainerizerCollector(
            runtime.state, runtime.image_cache, runtime.metrics, settings, runtime.hosts
        )
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

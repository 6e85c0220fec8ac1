"""The ``containerizer`` command."""

from __future__ import annotations

import logging
import sys

import typer

from config.settings import load_settings

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
    logging.basicConfig(
        level=settings.log_level,
        format="[%(asctime)s: %(levelname)s/containerizer-up] %(message)s",
        stream=sys.stderr,
    )
    raise typer.Exit(run_up(settings))


@cli.command()
def version() -> None:
    """Print the version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("containerizer"))


def main() -> None:
    """Console-script entry point."""
    cli()

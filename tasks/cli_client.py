"""The client side of the ``containerizer`` command: docker-CLI-like verbs over the task contract.

Tables for people, ``--json`` for scripts. A failed task prints its documented error name and
message on stderr and exits 1; a broker that does not answer exits 2.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from workers.errors import ContainerizerError
from workers.spec import parse_spec

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(cli: typer.Typer) -> None:
    """Add the client verbs to the ``containerizer`` command."""
    for command in (run, ps, stop, kill, restart, rm, logs, stats, pull, images, evict, summary):
        name = command.__name__.removesuffix("_")
        cli.command(name=name)(command)


def _client() -> Any:
    from tasks.client import ContainerizerClient

    return ContainerizerClient.from_settings(timeout=600.0)


@contextmanager
def _reporting_errors() -> Iterator[None]:
    """Documented errors: their name and message, exit 1. An unreachable broker: exit 2."""
    from celery.exceptions import TimeoutError as ResultTimeout
    from kombu.exceptions import OperationalError

    try:
        yield
    except ContainerizerError as exc:
        err.print(f"[bold red]{type(exc).__name__}[/]: {exc}", markup=True)
        raise typer.Exit(1) from None
    except OperationalError as exc:
        err.print(f"broker unreachable: {exc} (is `containerizer up` running?)")
        raise typer.Exit(2) from None
    except ResultTimeout:
        err.print("no answer in time (are the workers running?)")
        raise typer.Exit(2) from None


def _emit(result: Any, as_json: bool, table: Table | str) -> None:
    """JSON for scripts, the table (or line) for people."""
    if as_json:
        out.print_json(json.dumps(result))
    else:
        out.print(table)


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            err.print(f"[bold red]InvalidSpec[/]: {option} {value!r}: expected KEY=VALUE")
            raise typer.Exit(1)
        pairs[key] = val
    return pairs


def human_bytes(value: float | None) -> str:
    """1536 -> '1.5KiB'."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}TiB"


def ago(timestamp: float | None) -> str:
    """Seconds since the epoch -> '42s ago'."""
    if timestamp is None:
        return "-"
    seconds = max(time.time() - float(timestamp), 0.0)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


# --- containers ---------------------------------------------------------------------------------
def run(
    image: Annotated[str, typer.Argument(help="Image reference.")],
    command: Annotated[list[str] | None, typer.Argument(help="Command (after --).")] = None,
    name: Annotated[str | None, typer.Option(help="Container name.")] = None,
    memory: Annotated[str | None, typer.Option("--memory", "-m", help="e.g. 512m")] = None,
    cpus: Annotated[float | None, typer.Option(help="CPUs, e.g. 0.5")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE")] = None,
    gpus: Annotated[int | None, typer.Option(help="Number of GPUs.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create and start a container (pulling its image through the images queue if missing)."""
    spec: dict[str, Any] = {"image": image}
    if command:
        spec["command"] = command
    if name:
        spec["name"] = name
    if memory:
        spec["mem_limit"] = memory
    if cpus is not None:
        spec["nano_cpus"] = round(cpus * 1e9)
    if env:
        spec["environment"] = _pairs(env, "--env")
    if label:
        spec["labels"] = _pairs(label, "--label")
    if gpus is not None:
        spec["gpus"] = gpus
    with _reporting_errors():
        parse_spec(spec)  # The same validation the service does, before anything is sent.
        result = _client().run(spec)
    table = Table("ID", "NAME", "IMAGE", "STATUS", "STARTUP", "PULLED", box=None)
    table.add_row(
        result["id"][:12],
        result["name"],
        result["image"],
        result["status"],
        f"{result['startup_ms']:.0f} ms",
        "yes" if result["pulled"] else "no",
    )
    _emit(result, as_json, table)


def ps(
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include stopped containers.")] = False,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE")] = None,
    as_json: JsonOption = False,
) -> None:
    """List managed containers."""
    with _reporting_errors():
        rows = _client().list(all=all_, labels=list(label or []) or None)
    table = Table("CONTAINER ID", "NAME", "IMAGE", "STATUS", box=None)
    for row in rows:
        table.add_row(row["id"][:12], row["name"], row["image"], row["status"])
    _emit(rows, as_json, table)


def stop(
    container: str,
    time_: Annotated[int, typer.Option("--time", "-t", help="Seconds before SIGKILL.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Stop a container gracefully."""
    with _reporting_errors():
        result = _client().stop(container, timeout=time_)
    _emit(
        result, as_json, f"{result['id'][:12]} {result['status']} (exit code {result['exit_code']})"
    )


def kill(
    container: str,
    signal: Annotated[str, typer.Option("--signal", "-s")] = "SIGKILL",
    as_json: JsonOption = False,
) -> None:
    """Send a signal to a container."""
    with _reporting_errors():
        result = _client().kill(container, signal=signal)
    _emit(result, as_json, f"{result['id'][:12]} {result['status']}")


def restart(
    container: str,
    time_: Annotated[int, typer.Option("--time", "-t", help="Seconds before SIGKILL.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Restart a container."""
    with _reporting_errors():
        result = _client().restart(container, timeout=time_)
    _emit(
        result, as_json, f"{result['id'][:12]} {result['status']} in {result['restart_ms']:.0f} ms"
    )


def rm(
    container: str,
    force: Annotated[bool, typer.Option("--force", "-f", help="Remove a running one.")] = False,
    volumes: Annotated[bool, typer.Option("--volumes", "-v")] = False,
    as_json: JsonOption = False,
) -> None:
    """Remove a container."""
    with _reporting_errors():
        result = _client().remove(container, force=force, volumes=volumes)
    _emit(result, as_json, result["id"][:12])


def logs(
    container: str,
    tail: Annotated[int, typer.Option(help="Lines from the end.")] = 100,
    timestamps: Annotated[bool, typer.Option("--timestamps", "-t")] = False,
    as_json: JsonOption = False,
) -> None:
    """Print a container's recent stdout and stderr."""
    with _reporting_errors():
        result = _client().logs(container, tail=tail, timestamps=timestamps)
    if as_json:
        out.print_json(json.dumps(result))
    else:
        sys.stdout.write(result["logs"])


def stats(containers: list[str], as_json: JsonOption = False) -> None:
    """One-shot resource usage of containers."""
    client = _client()
    results = {}
    with _reporting_errors():
        for container in containers:
            results[container] = client.stats(container)
    table = Table(
        "CONTAINER", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS", box=None
    )
    for container, usage in results.items():
        limit = usage["memory_limit"] or 0
        table.add_row(
            container[:12],
            f"{usage['cpu_percent']:.2f}%",
            f"{human_bytes(usage['memory_usage'])} / {human_bytes(limit)}",
            f"{usage['memory_usage'] / limit * 100:.2f}%" if limit else "-",
            f"{human_bytes(usage['network_rx_bytes'])} / {human_bytes(usage['network_tx_bytes'])}",
            f"{human_bytes(usage['block_read'])} / {human_bytes(usage['block_write'])}",
            str(usage["pids"]),
        )
    _emit(results if len(results) > 1 else next(iter(results.values())), as_json, table)


# --- images -------------------------------------------------------------------------------------
def pull(
    reference: str,
    always: Annotated[bool, typer.Option("--always", help="Pull even if present.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Pull an image through the images queue, with a progress bar on a terminal."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    client = _client()
    with _reporting_errors():
        if out.is_terminal and not as_json:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=out,
                transient=True,
            ) as bar:
                task = bar.add_task(reference, total=None)

                def show(progress: dict[str, Any]) -> None:
                    bar.update(
                        task,
                        completed=progress["bytes_done"],
                        total=progress["bytes_total"] or None,
                    )

                result = client.pull(reference, always_pull=always, on_progress=show)
        else:
            result = client.pull(reference, always_pull=always)
    how = "cached" if result["cached"] else f"pulled in {result['pull_seconds']:.2f} s"
    _emit(
        result,
        as_json,
        f"{result['reference']}: {result['id'][:19]} {human_bytes(result['size'])} ({how})",
    )


def images(as_json: JsonOption = False) -> None:
    """Images on the host, with the cache's figures for those the service pulled."""
    with _reporting_errors():
        rows = _client().images()
    table = Table("ID", "SIZE", "CACHED", "LAST USED", "USES", "PINNED", "IMAGE", box=None)
    table.columns[-1].overflow = "fold"
    for row in sorted(rows, key=lambda r: (not r["cached"], r["tags"])):
        table.add_row(
            row["id"].removeprefix("sha256:")[:12],
            human_bytes(row["size"]),
            "yes" if row["cached"] else "no",
            ago(row["last_used"]),
            "-" if row["use_count"] is None else str(row["use_count"]),
            "yes" if row["pinned"] else "",
            "\n".join(row["tags"]) or "<none>",
        )
    _emit(rows, as_json, table)


def evict(as_json: JsonOption = False) -> None:
    """Run LRU eviction of the image cache now."""
    with _reporting_errors():
        result = _client().evict_images()
    lines = [
        f"evicted: {', '.join(result['evicted']) or 'nothing'}",
        f"freed: {human_bytes(result['freed_bytes'])}",
        f"cache: {human_bytes(result['cache_bytes'])} of {human_bytes(result['budget_bytes'])}",
    ]
    _emit(result, as_json, "\n".join(lines))


def summary(as_json: JsonOption = False) -> None:
    """Containers by status and the image cache."""
    with _reporting_errors():
        result = _client().summary()
    containers, cache = result["containers"], result["images"]
    table = Table("", "", box=None, show_header=False)
    for status, count in containers.items():
        if count or status in ("total", "running", "stopped"):
            table.add_row(f"containers {status}", str(count))
    table.add_row("images cached", str(cache["cached"]))
    table.add_row(
        "cache", f"{human_bytes(cache['cache_bytes'])} of {human_bytes(cache['budget_bytes'])}"
    )
    rate = cache["hit_rate"]
    table.add_row("hit rate", "-" if rate is None else f"{rate * 100:.1f}%")
    _emit(result, as_json, table)

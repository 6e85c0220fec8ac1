"""The client side of the ``containerizer`` command: docker-CLI-like verbs over the task contract.

Tables for people (never wider than the terminal, 80 columns when output is not one: cells are cut
with an ellipsis as docker does; ``--no-trunc`` shows everything), ``--json`` for scripts. A failed
task prints its documented error name and message on stderr and exits 1; a broker or workers that
do not answer exit 2; ``run --wait`` exits with the container's exit code, as ``docker run`` does.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from workers.errors import ContainerizerError
from workers.spec import parse_spec

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NoTrunc = Annotated[bool, typer.Option("--no-trunc", help="Do not cut ids and cells.")]
HostOption = Annotated[str | None, typer.Option("--host", help="The Docker host (its name).")]

volume_cli = typer.Typer(help="Volumes the service creates.", no_args_is_help=True)
network_cli = typer.Typer(help="Networks the service creates.", no_args_is_help=True)


MIN_COLUMN = 8  # A column cut to fit is never narrower (unless its widest cell is).


def register(cli: typer.Typer) -> None:
    """Add the client verbs to the ``containerizer`` command."""
    for command in (
        run,
        create,
        start,
        ps,
        stop,
        kill,
        restart,
        rm,
        inspect,
        wait,
        logs,
        stats,
        pull,
        push,
        tag,
        rmi,
        images,
        evict,
        summary,
        hosts,
    ):
        name = command.__name__.removesuffix("_")
        cli.command(name=name)(command)
    cli.add_typer(volume_cli, name="volume")
    cli.add_typer(network_cli, name="network")


def _client() -> Any:
    from tasks.client import ContainerizerClient

    return ContainerizerClient.from_settings(timeout=600.0)


@contextmanager
def _reporting_errors() -> Iterator[None]:
    """Documented errors: their name and message, exit 1. An unreachable broker, result store or
    state store, or workers that do not answer: exit 2."""
    from celery.exceptions import TimeoutError as ResultTimeout
    from kombu.exceptions import OperationalError
    from redis.exceptions import RedisError

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
    except RedisError as exc:
        err.print(f"Redis unreachable: {exc} (is `containerizer up` running?)")
        raise typer.Exit(2) from None
    except RuntimeError as exc:
        # Celery's result consumer gives up reconnecting to the result store this way.
        if "result store" not in str(exc):
            raise
        err.print("result store unreachable (is Redis running?)")
        raise typer.Exit(2) from None


def table(*columns: str, no_trunc: bool = False, keep: dict[str, int] | None = None) -> Table:
    """A docker-style table: no box, one line per row, cells cut with an ellipsis; the columns
    in ``keep`` are never narrower than their width there (an id, a status: cut, they would say
    nothing), the others give way first."""
    grid = Table(*columns, box=None, pad_edge=False, show_edge=False)
    for column in grid.columns:
        column.no_wrap = True
        column.overflow = "fold" if no_trunc else "ellipsis"
        column.min_width = (keep or {}).get(str(column.header))
    return grid


def fit(grid: Table, width: int) -> None:
    """Give each column of ``grid`` a width so that its lines fit in ``width``: the widest of
    the columns not kept whole are cut first, down to 8 characters, then the kept ones down to
    their ``min_width``. (Rich left to itself drops the rightmost columns instead.)"""
    columns = grid.columns
    widths = [
        max([cell_len(str(column.header))] + [cell_len(str(cell)) for cell in column._cells])
        for column in columns
    ]
    floors = [
        column.min_width or min(MIN_COLUMN, w) for column, w in zip(columns, widths, strict=True)
    ]
    excess = sum(widths) + 2 * (len(columns) - 1) - width
    order = sorted(
        range(len(columns)), key=lambda i: (columns[i].min_width is not None, -widths[i])
    )
    for index in order:
        if excess <= 0:
            break
        cut = min(excess, widths[index] - floors[index])
        if cut > 0:
            widths[index] -= cut
            excess -= cut
    for column, value in zip(columns, widths, strict=True):
        column.width = value


def _emit(result: Any, as_json: bool, shown: Table | str, *, no_trunc: bool = False) -> None:
    """JSON for scripts, the table (or line) for people."""
    if as_json:
        out.print_json(json.dumps(result))
    elif no_trunc and isinstance(shown, Table):
        Console(highlight=False, width=100_000).print(shown)
    else:
        if isinstance(shown, Table):
            fit(shown, out.width)
        out.print(shown)


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


def human_duration(seconds: float) -> str:
    """As docker says durations: 'Less than a second', '5 seconds', 'About a minute', '3 hours'."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return f"{seconds:.0f} second{'s' if int(seconds) != 1 else ''}"
    minutes = seconds / 60
    if minutes < 2:
        return "About a minute"
    if minutes < 60:
        return f"{minutes:.0f} minutes"
    hours = minutes / 60
    if hours < 2:
        return "About an hour"
    if hours < 48:
        return f"{hours:.0f} hours"
    return f"{hours / 24:.0f} days"


def docker_status(row: dict[str, Any], now: datetime | None = None) -> str:
    """A container's status as ``docker ps`` words it: 'Up 5 seconds', 'Exited (3) 2 minutes
    ago', 'Created'."""
    current = now or datetime.now(UTC)
    status = str(row.get("status") or "")
    if status == "running":
        since = _time(row.get("started_at"))
        return f"Up {human_duration((current - since).total_seconds())}" if since else "Up"
    if status in ("exited", "dead"):
        finished = _time(row.get("finished_at"))
        code = row.get("exit_code")
        word = "Exited" if status == "exited" else "Dead"
        code_text = f" ({code})" if code is not None else ""
        when = f" {human_duration((current - finished).total_seconds())} ago" if finished else ""
        return f"{word}{code_text}{when}"
    return status.capitalize()


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    from workers.models import parse_docker_time

    try:
        return parse_docker_time(value)
    except ValueError:
        return None


def _short(container_id: str, no_trunc: bool) -> str:
    return container_id if no_trunc else container_id.removeprefix("sha256:")[:12]


# --- containers ---------------------------------------------------------------------------------
def _spec(
    image: str,
    command: list[str] | None,
    name: str | None,
    memory: str | None,
    cpus: float | None,
    env: list[str] | None,
    label: list[str] | None,
    gpus: int | None,
    network: str | None,
    volume: list[str] | None,
    auto_remove: bool = False,
) -> dict[str, Any]:
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
    if network:
        spec["network"] = network
    if volume:
        spec["volumes"] = list(volume)
    if auto_remove:
        spec["auto_remove"] = True
    return spec


ImageArgument = Annotated[str, typer.Argument(help="Image reference.")]
CommandArgument = Annotated[list[str] | None, typer.Argument(help="Command (after --).")]
NameOption = Annotated[str | None, typer.Option(help="Container name.")]
MemoryOption = Annotated[str | None, typer.Option("--memory", "-m", help="e.g. 512m")]
CpusOption = Annotated[float | None, typer.Option(help="CPUs, e.g. 0.5")]
EnvOption = Annotated[list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE")]
LabelOption = Annotated[list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE")]
GpusOption = Annotated[int | None, typer.Option(help="Number of GPUs.")]
NetworkOption = Annotated[str | None, typer.Option("--network", help="A managed network.")]
VolumeOption = Annotated[
    list[str] | None, typer.Option("--volume", "-v", help="NAME:/path[:ro] or /host:/path:ro")
]


def run(
    image: ImageArgument,
    command: CommandArgument = None,
    name: NameOption = None,
    memory: MemoryOption = None,
    cpus: CpusOption = None,
    env: EnvOption = None,
    label: LabelOption = None,
    gpus: GpusOption = None,
    network: NetworkOption = None,
    volume: VolumeOption = None,
    host: HostOption = None,
    rm_: Annotated[bool, typer.Option("--rm", help="Remove it once it has exited.")] = False,
    wait_: Annotated[
        bool, typer.Option("--wait", help="Print its output, exit with its exit code.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create and start a container (pulling its image through the images queue if missing)."""
    spec = _spec(image, command, name, memory, cpus, env, label, gpus, network, volume, rm_)
    client = _client()
    with _reporting_errors():
        parse_spec(spec)  # The same validation the service does, before anything is sent.
        result = client.run(spec, host=host, follow=wait_)
        if wait_:
            for stream, line in client.read_logs(result["stream"]):
                (sys.stderr if stream == "stderr" else sys.stdout).write(line + "\n")
            waited = client.wait(result["id"], timeout=3600)
            raise typer.Exit(int(waited["exit_code"] or 0))
    grid = table("ID", "NAME", "IMAGE", "STATUS", "STARTUP", "PULLED", "HOST")
    grid.add_row(
        result["id"][:12],
        result["name"],
        result["image"],
        result["status"],
        f"{result['startup_ms']:.0f} ms",
        "yes" if result["pulled"] else "no",
        result.get("host") or "",
    )
    _emit(result, as_json, grid)


def create(
    image: ImageArgument,
    command: CommandArgument = None,
    name: NameOption = None,
    memory: MemoryOption = None,
    cpus: CpusOption = None,
    env: EnvOption = None,
    label: LabelOption = None,
    gpus: GpusOption = None,
    network: NetworkOption = None,
    volume: VolumeOption = None,
    host: HostOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a container without starting it (its image must be on its host)."""
    spec = _spec(image, command, name, memory, cpus, env, label, gpus, network, volume)
    with _reporting_errors():
        parse_spec(spec)
        result = _client().create(spec, host=host)
    _emit(result, as_json, result["id"])


def start(container: str, as_json: JsonOption = False) -> None:
    """Start a created or stopped container."""
    with _reporting_errors():
        result = _client().start(container)
    _emit(result, as_json, result["id"][:12])


def ps(
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include stopped containers.")] = False,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE")] = None,
    host: HostOption = None,
    no_trunc: NoTrunc = False,
    as_json: JsonOption = False,
) -> None:
    """List managed containers (every host's, or one's)."""
    with _reporting_errors():
        rows = _client().list(all=all_, labels=list(label or []) or None, host=host)
    now = datetime.now(UTC)
    cells = [
        (
            _short(row["id"], no_trunc),
            row["image"],
            docker_status(row, now),
            row["name"],
            row.get("host") or "",
        )
        for row in rows
    ]
    # As docker ps: the id and the status whole, the names mostly; the image gives way first.
    widest = [max([len(cell[i]) for cell in cells], default=0) for i in range(5)]
    keep = {
        "CONTAINER ID": 12,
        "STATUS": min(widest[2], 30),
        "NAMES": min(widest[3], 20),
        "HOST": min(widest[4], 12),
    }
    grid = table("CONTAINER ID", "IMAGE", "STATUS", "NAMES", "HOST", no_trunc=no_trunc, keep=keep)
    for cell in cells:
        grid.add_row(*cell)
    _emit(rows, as_json, grid, no_trunc=no_trunc)


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


def inspect(container: str) -> None:
    """The engine's inspect document of a container (secrets redacted), as JSON."""
    with _reporting_errors():
        result = _client().inspect(container)
    out.print_json(json.dumps(result))


def wait(
    container: str,
    timeout: Annotated[int, typer.Option(help="Seconds at most (3600).")] = 300,
    condition: Annotated[str, typer.Option(help="not-running or healthy.")] = "not-running",
    as_json: JsonOption = False,
) -> None:
    """Wait until a container stops (or is healthy); print its exit code."""
    with _reporting_errors():
        result = _client().wait(container, timeout=timeout, condition=condition)
    if result["timed_out"]:
        err.print(f"timed out after {timeout} s ({result['status']})")
    shown = str(result["exit_code"]) if condition == "not-running" else str(result["health"])
    _emit(result, as_json, shown)
    if result["timed_out"]:
        raise typer.Exit(1)


def logs(
    container: str,
    tail: Annotated[int, typer.Option(help="Lines from the end.")] = 100,
    timestamps: Annotated[bool, typer.Option("--timestamps", "-t")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Print lines as they come.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Print a container's stdout and stderr (with -f, live until it stops; Ctrl-C stops)."""
    client = _client()
    with _reporting_errors():
        if follow:
            try:
                for stream, line in client.follow_logs(container):
                    (sys.stderr if stream == "stderr" else sys.stdout).write(line + "\n")
                    sys.stdout.flush()
            except KeyboardInterrupt:
                raise typer.Exit(130) from None
            return
        result = client.logs(container, tail=tail, timestamps=timestamps)
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
    grid = table("CONTAINER", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS")
    for container, usage in results.items():
        limit = usage["memory_limit"] or 0
        grid.add_row(
            container[:12],
            f"{usage['cpu_percent']:.2f}%",
            f"{human_bytes(usage['memory_usage'])} / {human_bytes(limit)}",
            f"{usage['memory_usage'] / limit * 100:.2f}%" if limit else "-",
            f"{human_bytes(usage['network_rx_bytes'])} / {human_bytes(usage['network_tx_bytes'])}",
            f"{human_bytes(usage['block_read'])} / {human_bytes(usage['block_write'])}",
            str(usage["pids"]),
        )
    _emit(results if len(results) > 1 else next(iter(results.values())), as_json, grid)


# --- images -------------------------------------------------------------------------------------
def pull(
    reference: str,
    always: Annotated[bool, typer.Option("--always", help="Pull even if present.")] = False,
    host: HostOption = None,
    all_hosts: Annotated[
        bool, typer.Option("--all-hosts", help="On every live host (prewarm).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Pull an image through the images queue, with a progress bar on a terminal."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    client = _client()
    with _reporting_errors():
        if all_hosts:
            warmed = client.prewarm(reference)
            grid = table("HOST", "ID", "SIZE", "RESULT")
            for each, part in warmed["hosts"].items():
                if isinstance(part, dict):
                    how = "cached" if part["cached"] else f"pulled in {part['pull_seconds']:.2f} s"
                    grid.add_row(each, part["id"][:19], human_bytes(part["size"]), how)
                else:
                    grid.add_row(each, "-", "-", str(part))
            _emit(warmed, as_json, grid)
            return
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

                result = client.pull(reference, always_pull=always, host=host, on_progress=show)
        else:
            result = client.pull(reference, always_pull=always, host=host)
    how = "cached" if result["cached"] else f"pulled in {result['pull_seconds']:.2f} s"
    on = f" on {result['host']}" if result.get("host") else ""
    _emit(
        result,
        as_json,
        f"{result['reference']}: {result['id'][:19]} {human_bytes(result['size'])} ({how}){on}",
    )


def push(reference: str, host: HostOption = None, as_json: JsonOption = False) -> None:
    """Push an image to its registry."""
    with _reporting_errors():
        result = _client().push(reference, host=host)
    _emit(result, as_json, f"{result['reference']}: {result['digest']}")


def tag(source: str, target: str, host: HostOption = None, as_json: JsonOption = False) -> None:
    """Give an image another name."""
    with _reporting_errors():
        result = _client().tag(source, target, host=host)
    _emit(result, as_json, f"{result['target']}")


def rmi(
    reference: str,
    force: Annotated[bool, typer.Option("--force", "-f")] = False,
    host: HostOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove an image the service pulled or tagged."""
    with _reporting_errors():
        result = _client().remove_image(reference, force=force, host=host)
    _emit(result, as_json, f"Untagged: {result['reference']}")


def images(host: HostOption = None, no_trunc: NoTrunc = False, as_json: JsonOption = False) -> None:
    """Images on every host (or one), with the cache's figures for those the service pulled."""
    with _reporting_errors():
        rows = _client().images(host=host)
    grid = table(
        "IMAGE", "ID", "SIZE", "CACHED", "LAST USED", "USES", "PINNED", "HOST", no_trunc=no_trunc
    )
    for row in sorted(rows, key=lambda r: (r.get("host") or "", not r["cached"], r["tags"])):
        grid.add_row(
            ", ".join(row["tags"]) or "<none>",
            _short(row["id"], no_trunc),
            human_bytes(row["size"]),
            "yes" if row["cached"] else "no",
            ago(row["last_used"]),
            "-" if row["use_count"] is None else str(row["use_count"]),
            "yes" if row["pinned"] else "",
            row.get("host") or "",
        )
    _emit(rows, as_json, grid, no_trunc=no_trunc)


def evict(host: HostOption = None, as_json: JsonOption = False) -> None:
    """Run LRU eviction of the image cache now."""
    with _reporting_errors():
        result = _client().evict_images(host=host)
    lines = [
        f"evicted: {', '.join(result['evicted']) or 'nothing'}",
        f"freed: {human_bytes(result['freed_bytes'])}",
        f"cache: {human_bytes(result['cache_bytes'])} of {human_bytes(result['budget_bytes'])}",
    ]
    _emit(result, as_json, "\n".join(lines))


def summary(host: HostOption = None, as_json: JsonOption = False) -> None:
    """Containers by status and the image caches."""
    with _reporting_errors():
        result = _client().summary(host=host)
    containers, cache = result["containers"], result["images"]
    grid = Table("", "", box=None, show_header=False)
    for status, count in containers.items():
        if count or status in ("total", "running", "stopped"):
            grid.add_row(f"containers {status}", str(count))
    grid.add_row("images cached", str(cache["cached"]))
    grid.add_row(
        "cache", f"{human_bytes(cache['cache_bytes'])} of {human_bytes(cache['budget_bytes'])}"
    )
    rate = cache["hit_rate"]
    grid.add_row("hit rate", "-" if rate is None else f"{rate * 100:.1f}%")
    grid.add_row("hosts", ", ".join(result.get("hosts") or {}) or "-")
    _emit(result, as_json, grid)


def hosts(as_json: JsonOption = False) -> None:
    """The Docker hosts of the deployment and their last heartbeat."""
    with _reporting_errors():
        rows = _client().hosts()
    grid = table("HOST", "ALIVE", "DOCKER", "CPUS", "MEMORY", "RUNNING", "IMAGES", "SEEN")
    for row in rows:
        grid.add_row(
            row["host"],
            "yes" if row["alive"] else "no",
            row["docker_version"] or "-",
            str(row["cpus"] or "-"),
            human_bytes(row["memory_bytes"]),
            str(row["running"]),
            str(row["images_cached"]),
            ago(row["last_seen"]),
        )
    _emit(rows, as_json, grid)


# --- volumes and networks -----------------------------------------------------------------------
@volume_cli.command("create")
def volume_create(
    name: str,
    label: LabelOption = None,
    host: HostOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a volume (managed: only the service's own may be removed through it)."""
    with _reporting_errors():
        result = _client().create_volume(name, labels=_pairs(label, "--label") or None, host=host)
    _emit(result, as_json, result["name"])


@volume_cli.command("ls")
def volume_ls(host: HostOption = None, as_json: JsonOption = False) -> None:
    """The volumes the service created."""
    with _reporting_errors():
        rows = _client().volumes(host=host)
    grid = table("DRIVER", "VOLUME NAME", "HOST")
    for row in rows:
        grid.add_row(row["driver"], row["name"], row["host"])
    _emit(rows, as_json, grid)


@volume_cli.command("rm")
def volume_rm(
    name: str,
    force: Annotated[bool, typer.Option("--force", "-f")] = False,
    host: HostOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove a volume the service created."""
    with _reporting_errors():
        result = _client().remove_volume(name, force=force, host=host)
    _emit(result, as_json, result["name"])


@network_cli.command("create")
def network_create(
    name: str,
    internal: Annotated[bool, typer.Option("--internal", help="No outside access.")] = False,
    label: LabelOption = None,
    host: HostOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a bridge network (managed)."""
    with _reporting_errors():
        result = _client().create_network(
            name, internal=internal, labels=_pairs(label, "--label") or None, host=host
        )
    _emit(result, as_json, result["id"])


@network_cli.command("ls")
def network_ls(
    host: HostOption = None, no_trunc: NoTrunc = False, as_json: JsonOption = False
) -> None:
    """The networks the service created."""
    with _reporting_errors():
        rows = _client().networks(host=host)
    grid = table("NETWORK ID", "NAME", "DRIVER", "INTERNAL", "HOST", no_trunc=no_trunc)
    for row in rows:
        grid.add_row(
            _short(row["id"], no_trunc),
            row["name"],
            row["driver"],
            "yes" if row["internal"] else "no",
            row["host"],
        )
    _emit(rows, as_json, grid, no_trunc=no_trunc)


@network_cli.command("rm")
def network_rm(name: str, host: HostOption = None, as_json: JsonOption = False) -> None:
    """Remove a network the service created."""
    with _reporting_errors():
        result = _client().remove_network(name, host=host)
    _emit(result, as_json, result["name"])

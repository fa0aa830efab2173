"""``perpbox lab``: the stress lab's commands (``perpbox.lab``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

LAB_HELP = """The stress lab: scenarios run on the exact engine over simulated time, with their metrics.

Examples:

  perpbox lab list

  perpbox lab show calm > my-market.toml

  perpbox lab run calm --seeds 4 --horizon 1h --out runs/calm

  perpbox lab sweep calm --grid half_spread_bps=0.5,1,2 --seeds 4 --out sweeps/calm
"""

lab_app = typer.Typer(help=LAB_HELP, no_args_is_help=True, add_completion=False)


@lab_app.command("list")
def list_command() -> None:
    """The built-in scenarios, with their descriptions."""
    import tomllib

    from perpbox.lab.scenario import builtin_names, builtin_text

    for name in builtin_names():
        head = tomllib.loads(builtin_text(name)).get("scenario", {})
        typer.echo(f"{name}: {head.get('description', '')}")


@lab_app.command("show")
def show_command(name: Annotated[str, typer.Argument(help="A built-in scenario.")]) -> None:
    """Print a built-in scenario's TOML: a starting point for your own.

    Example:

      perpbox lab show calm > my-market.toml
    """
    from perpbox.lab.scenario import ScenarioError, builtin_text

    try:
        typer.echo(builtin_text(name), nl=False)
    except ScenarioError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None


@lab_app.command("run")
def run_command(
    scenario: Annotated[str, typer.Argument(help="A built-in scenario's name or a scenario file.",
                                            metavar="NAME_OR_FILE")],
    out: Annotated[Path, typer.Option(help="Write metrics.json, report.html and events.parquet here.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE: a tunable of the scenario "
                                                   "(repeatable).")] = None,
    seeds: Annotated[int, typer.Option(help="Runs with seeds 1..N.", min=1, max=10_000)] = 1,
    horizon: Annotated[str | None, typer.Option(help="Override the scenario's horizon (90s, 30m, 6h, 2d).")] = None,
) -> None:
    """Run a scenario for N seeds and write what it measured.

    metrics.json (documented in the README's stress lab section) holds the distributions over seeds
    (p50/p95/p99/max) and every run; the conservation residual must be exactly 0. The same
    scenario, keys and seeds always write byte-identical metrics.json and events.

    Exit codes: 0 done; 1 a scenario or --set that does not parse; 3 a run whose conservation
    residual is not zero (an engine bug: the files are still written).

    Examples:

      perpbox lab run calm --out runs/calm

      perpbox lab run calm --set half_spread_bps=3 --seeds 8 --horizon 2h --out runs/wide
    """
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    from perpbox.lab.metrics import run_metrics, summarise
    from perpbox.lab.output import write_run
    from perpbox.lab.run import simulate
    from perpbox.lab.scenario import ScenarioError, load_scenario, parse_duration, parse_override

    try:
        overrides = dict(parse_override(s) for s in set_ or [])
        horizon_ms = None if horizon is None else parse_duration(horizon, "--horizon")
        sc = load_scenario(scenario, overrides, horizon_ms=horizon_ms)
    except ScenarioError as e:
        typer.echo(f"lab: {e}", err=True)
        raise typer.Exit(1) from None
    runs, traces = [], []
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[sim]}"),
                  TimeRemainingColumn()) as progress:
        for seed in range(1, seeds + 1):
            task = progress.add_task(f"{sc.name} seed {seed}", total=sc.horizon_ms, sim="")

            def tick(done_ms: int, task: TaskID = task) -> None:
                if done_ms % 60_000 < sc.step_ms or done_ms == sc.horizon_ms:
                    progress.update(task, completed=done_ms, sim=f"{done_ms / 3_600_000:.2f} h simulated")

            trace = simulate(sc, seed, tick)
            runs.append(run_metrics(sc, trace))
            traces.append(trace)
    metrics = summarise(sc, runs)
    write_run(out, sc, metrics, traces)
    typer.echo(f"liquidated_usd p95={metrics['liquidated_usd']['p95'] if metrics['liquidated_usd'] else 0} "
               f"bad_debt_usd p95={metrics['bad_debt_usd']['p95'] if metrics['bad_debt_usd'] else 0} "
               f"conservation_residual_usd={metrics['conservation_residual_usd']} -> {out}")
    if metrics["conservation_residual_usd"] != "0":
        typer.echo("lab: the conservation residual is not zero: the engine lost or made money", err=True)
        raise typer.Exit(3)


@lab_app.command("sweep")
def sweep_command(
    scenario: Annotated[str, typer.Argument(help="A built-in scenario's name or a scenario file.",
                                            metavar="NAME_OR_FILE")],
    out: Annotated[Path, typer.Option(help="Write results.parquet and sweep.html here (a restart skips "
                                      "the runs already in it).")],
    grid: Annotated[list[str], typer.Option(help="KEY=V1,V2,…: values of a tunable (repeatable; the points "
                                            "are the cartesian product).")],
    seeds: Annotated[int, typer.Option(help="Runs with seeds 1..N at each point.", min=1, max=10_000)] = 1,
    horizon: Annotated[str | None, typer.Option(help="Override the scenario's horizon.")] = None,
    executor: Annotated[str, typer.Option(help="local (processes) or ray.")] = "local",
    workers: Annotated[int, typer.Option(help="Processes (local) or CPUs of a local Ray.", min=1)] = 1,
    address: Annotated[str | None, typer.Option(help="A Ray cluster to run on (ray://HOST:10001 or auto).")] = None,
) -> None:
    """Run a scenario over the cartesian product of tunable grids, N seeds each.

    One row per run in results.parquet (the point's keys, every metric, the state hash); any
    executor gives the same rows. On a Ray cluster: start it (ray start --head, then ray start
    --address=HEAD:6379 on each node, each with perpbox installed), then pass --executor ray
    --address auto from the head node.

    Examples:

      perpbox lab sweep xyz100-weekend-twap --grid discovery_band_bps=300,600,1000
      --grid halt_offhours=false,true --out sweeps/xyz

      perpbox lab sweep calm --grid half_spread_bps=0.5,1,2 --seeds 8 --executor ray --workers 2 --out sweeps/calm
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from perpbox.lab.scenario import ScenarioError, parse_duration
    from perpbox.lab.sweep import local_executor, parse_grid, ray_executor, sweep
    from perpbox.lab.sweep_report import sweep_html

    try:
        grids = parse_grid(grid)
        horizon_ms = None if horizon is None else parse_duration(horizon, "--horizon")
        if executor not in ("local", "ray"):
            raise ScenarioError(f"--executor: local or ray, not {executor!r}")
        run = local_executor(workers) if executor == "local" else ray_executor(address, workers)
        with Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as progress:
            task = progress.add_task("runs", total=None)

            def tick(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            frame = sweep(scenario, grids, seeds, out, run, horizon_ms, tick)
    except ScenarioError as e:
        typer.echo(f"lab: {e}", err=True)
        raise typer.Exit(1) from None
    (out / "sweep.html").write_text(sweep_html(f"perpbox lab sweep: {scenario}", frame, grids))
    typer.echo(f"{frame.height} runs in {out / 'results.parquet'}")


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")

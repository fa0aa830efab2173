"""``perpbox lab``: the stress lab's commands (``perpbox.lab``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    grid: Annotated[list[str] | None, typer.Option(help="KEY=V1,V2,…: values of a tunable (repeatable; the "
                                                   "points are the cartesian product).")] = None,
    sobol: Annotated[int | None, typer.Option(help="Instead of grids: Saltelli's design with N base samples in "
                                              "the --bounds box, and Sobol indices (SALib).", min=2)] = None,
    bounds: Annotated[list[str] | None, typer.Option(help="KEY=LO:HI: a tunable's range for --sobol "
                                                     "(repeatable).")] = None,
    metric: Annotated[str, typer.Option(help="The metric the Sobol indices explain.")] = "liquidated_usd",
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
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from perpbox.lab.scenario import ScenarioError, parse_duration
    from perpbox.lab.sensitivity import parse_bounds, sobol_indices, sobol_points
    from perpbox.lab.sweep import parse_grid, points, sweep_points
    from perpbox.lab.sweep_report import sweep_html

    try:
        if (sobol is None) == (not grid):
            raise ScenarioError("give --grid (a cartesian sweep) or --sobol N with --bounds, not both")
        horizon_ms = None if horizon is None else parse_duration(horizon, "--horizon")
        run = _executor(executor, workers, address)
        if sobol is not None:
            box = parse_bounds(bounds or [])
            if not box:
                raise ScenarioError("--sobol needs --bounds KEY=LO:HI")
            pts = sobol_points(scenario, box, sobol)
            grids = {k: sorted({dict(p)[k] for p in pts}) for k in box}
        else:
            grids = parse_grid(grid or [])
            pts = points(grids)
        with Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as progress:
            task = progress.add_task("runs", total=None)

            def tick(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            frame = sweep_points(scenario, pts, seeds, out, run, horizon_ms, tick)
        if sobol is not None:
            if metric not in frame.columns:
                raise ScenarioError(f"--metric {metric!r}: not a column of the results")
            indices = sobol_indices(scenario, box, pts, frame, metric)
            (out / "sobol.json").write_text(json.dumps({"metric": metric, "n": sobol, "indices": indices},
                                                       indent=2, sort_keys=True) + "\n")
            for key, ix in indices.items():
                typer.echo(f"{key}: S1={ix['S1']:.3f} ±{ix['S1_conf']:.3f}  ST={ix['ST']:.3f} ±{ix['ST_conf']:.3f}")
    except ScenarioError as e:
        typer.echo(f"lab: {e}", err=True)
        raise typer.Exit(1) from None
    if sobol is None:
        (out / "sweep.html").write_text(sweep_html(f"perpbox lab sweep: {scenario}", frame, grids))
    typer.echo(f"{frame.height} runs in {out / 'results.parquet'}")


def _executor(name: str, workers: int, address: str | None) -> Any:
    from perpbox.lab.scenario import ScenarioError
    from perpbox.lab.sweep import local_executor, ray_executor

    if name not in ("local", "ray"):
        raise ScenarioError(f"--executor: local or ray, not {name!r}")
    return local_executor(workers) if name == "local" else ray_executor(address, workers)


@lab_app.command("worst")
def worst_command(
    scenario: Annotated[str, typer.Argument(help="A built-in scenario's name or a scenario file.",
                                            metavar="NAME_OR_FILE")],
    search: Annotated[list[str], typer.Option(help="KEY=LO:HI: a tunable's range to search (repeatable).")],
    out: Annotated[Path, typer.Option(help="Write worst.json and the runs' results.parquet here.")],
    objective: Annotated[str, typer.Option(help="METRIC.pNN or METRIC.max over the seeds, maximised.")]
    = "bad_debt_usd.p95",
    trials: Annotated[int, typer.Option(help="optuna trials.", min=1, max=10_000)] = 20,
    seeds: Annotated[int, typer.Option(help="Seeds per trial.", min=1)] = 1,
    horizon: Annotated[str | None, typer.Option(help="Override the scenario's horizon.")] = None,
    executor: Annotated[str, typer.Option(help="local or ray (for each trial's seeds).")] = "local",
    workers: Annotated[int, typer.Option(help="Processes (local) or CPUs of a local Ray.", min=1)] = 1,
) -> None:
    """Look for the worst case within bounds (optuna's TPE sampler, seeded): the point of the
    search box that maximises the objective.

    Example:

      perpbox lab worst xyz100-weekend-twap --search twap_usd=1000000:20000000
      --search discovery_band_bps=200:1500 --objective liquidated_usd.p95 --trials 30 --out worst/xyz
    """
    import json

    from perpbox.lab.scenario import ScenarioError, parse_duration
    from perpbox.lab.sensitivity import parse_bounds, worst_case

    try:
        horizon_ms = None if horizon is None else parse_duration(horizon, "--horizon")
        result = worst_case(scenario, parse_bounds(search), objective, trials, seeds, out,
                            _executor(executor, workers, None), horizon_ms)
    except ScenarioError as e:
        typer.echo(f"lab: {e}", err=True)
        raise typer.Exit(1) from None
    (out / "worst.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    best = result["best"]
    typer.echo(f"worst {objective} = {best['value']} at {best['point']} (trial {best['trial']} of {trials})")


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")

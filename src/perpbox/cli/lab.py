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


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")

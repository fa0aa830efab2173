"""``perpbox wear DIR``: what the hedge runs under DIR cost — per run and in total."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

WEAR_HELP = """Wear of the hedge runs under DIR: every *.parquet a hedge run wrote (its fills and funding
payments, grouped by run id) with the run's sidecar <run_id>.json (the venues and their mids at
the end, which mark what is still open).

Per run and in total, per leg and venue: volume, fees and rebates (apart), slippage against the
mid when each order was decided, funding (+ paid), realised (average cost) and unrealised PnL,
pnl = trading − fees − funding, loss = −pnl, wear_bps = 1e4 × loss / volume; and the farmers'
wear: the loss on BOTH venues over the volume on ONE (the maker's) × 1e4. A positive wear is a
cost, a negative one a gain. Amounts are exact; --json prints them as decimal strings.

Exit codes: 0 done; 1 no runs under DIR, or a run that cannot be valued (a position left open
with no end mid in its sidecar, an unreadable row).

Examples:

  perpbox wear runs/

  perpbox wear runs/ --json > wear.json
"""


def wear_command(
    dir: Annotated[Path, typer.Argument(help="A directory of hedge runs (searched recursively).", metavar="DIR",
                                        exists=True, file_okay=False, dir_okay=True)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")] = False,
) -> None:
    from perpbox.bots.wear import WearResult, combine, read_dir, render_runs
    from perpbox.cli.console import table_console

    skipped: list[Path] = []
    try:
        runs = read_dir(dir, skipped)
    except (OSError, ValueError, TypeError) as e:
        typer.echo(f"wear: {e}", err=True)
        raise typer.Exit(1) from None
    for p in skipped:
        typer.echo(f"wear: skipped {p}: not a hedge run's rows", err=True)
    if not runs:
        typer.echo(f"wear: no hedge runs (*.parquet) under {dir}", err=True)
        raise typer.Exit(1)
    results: list[tuple[str, WearResult]] = []
    for run in runs:
        try:
            results.append((run.run_id, run.result()))
        except (ValueError, TypeError) as e:
            where = ", ".join(str(p) for p in run.files)
            sidecar = "" if run.meta else f" (no sidecar {run.run_id}.json)"
            typer.echo(f"wear: run {run.run_id} ({where}){sidecar}: {e}", err=True)
            raise typer.Exit(1) from None
    total = combine(r for _, r in results)
    if as_json:
        out = {"runs": [{**res.to_json(), "run_id": rid,
                         "meta": next((r.meta.to_json() for r in runs if r.run_id == rid and r.meta), None)}
                        for rid, res in results],
               "total": total.to_json()}
        typer.echo(json.dumps(out, indent=2))
        return
    table_console(200).print(render_runs(results, total, title=f"wear: {len(results)} runs under {dir}"))


def register(app: typer.Typer) -> None:
    app.command("wear", help=WEAR_HELP)(wear_command)

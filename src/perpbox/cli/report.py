"""``perpbox load`` (captures, archives, Tardis CSV → the dataset) and ``perpbox report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

LOAD_HELP = """Load offline market data into a dataset directory (Parquet, venue=/channel=/coin=/date=).

SOURCE can be an hftbacktest-style capture (`<local_ns> <json>` lines, .gz), a Hyperliquid archive
file or tree (market_data/DATE/HOUR/l2Book/COIN.lz4), or a Tardis CSV (trades, quotes,
book_snapshot_N, incremental_book_L2, derivative_ticker). Loading is append-only.

--depth is the number of book levels kept per side in each snapshot (default 20; 0 keeps the whole
book the source holds). 20 levels of a Binance BTCUSDT book span under ±2 bps, so the report's
depth bands need more (it warns when a band is cut); `perpbox report` on a raw file keeps the whole
book by itself.

Examples:

  perpbox load usdm_btcusdt_20240808.gz --depth 0 --out data/

  perpbox load market_data/20250126 --format hl-archive --out data/

  perpbox load binance-futures_trades_2024-08-08_BTCUSDT.csv.gz --coin BTCUSDT --out data/
"""

REPORT_HELP = """Market-quality report: spreads, depth within ±bps of mid, slippage by trade size,
trade sizes, basis vs a benchmark, regimes, weekend vs weekday and the reopen test.

Writes OUT (HTML with plots, opens offline) and metrics.json beside it. --venue-data and
--benchmark take a dataset directory (from `perpbox load` / `perpbox record`) or raw capture,
archive or Tardis files; both options can be repeated. Raw files are read with the whole book they
hold (--depth N keeps N levels a side instead). When a depth band reaches past the end of the book
data in some snapshots, that band's figure is a lower bound: the command prints a warning for it
(also in metrics.json "warnings" and on the page).

Examples:

  perpbox report --venue-data data/ --out report.html

  perpbox report --venue-data usdm_btcusdt_20240808.gz --benchmark spot_btcusdt_20240808.gz --out r.html

  perpbox report --venue-data d/ --benchmark s/ --regime calm=2025-04-01..2025-04-03 --regime
  crash=2025-04-03..2025-04-05 --out r.html
"""


def load_command(
    sources: Annotated[list[Path], typer.Argument(help="Capture / archive / Tardis files or folders.", exists=True)],
    out: Annotated[Path, typer.Option("--out", help="Dataset directory to append to.")],
    fmt: Annotated[str, typer.Option("--format", help="auto, hftbacktest, hl-archive or tardis.")] = "auto",
    venue: Annotated[str | None, typer.Option(help="Venue name (default: from the data).")] = None,
    coin: Annotated[str | None, typer.Option(help="Coin name (default: the venue's symbol).")] = None,
    depth: Annotated[int, typer.Option(help="Book levels kept per side (0: the whole book).", min=0)] = 20,
) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from perpbox.venues import dataset
    from perpbox.venues.sources import load_source

    console = Console()
    summary = Table("source", "format", "channel", "rows", "files")
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("loading", total=len(sources))
        for src in sources:
            progress.update(task, description=f"loading {src.name}")
            frames, stats = load_source(src, fmt=fmt, venue=venue, coin=coin, depth=_levels(src, fmt, depth))
            for channel, frame in frames.items():
                written = dataset.write_chunk(frame, channel, out)
                summary.add_row(src.name, str(stats.get("format")), channel, f"{frame.height:,}", str(len(written)))
            gaps = stats.get("depth_gaps")
            if gaps:
                console.print(f"[yellow]{src.name}: {gaps} depth sequence gap(s); skipped until the next snapshot")
            progress.advance(task)
    console.print(summary)
    console.print(f"dataset: {out}  (polars: perpbox.venues.dataset.scan('{out}', 'book'); "
                  f"duckdb: read_parquet('{out}/**/*.parquet', hive_partitioning=true))")


def report_command(
    venue_data: Annotated[list[Path], typer.Option("--venue-data", help="Dataset dir or raw files (repeatable).",
                                                   exists=True)],
    out: Annotated[Path, typer.Option("--out", help="HTML report path; metrics.json is written beside it.")] = Path(
        "report.html"),
    benchmark: Annotated[list[Path] | None, typer.Option(help="Benchmark venue data (repeatable).",
                                                         exists=True)] = None,
    regime: Annotated[list[str] | None, typer.Option(
        help="NAME=START..END (ISO-8601 UTC or ns); repeatable; the first is the baseline of the ratios.")] = None,
    basis_step: Annotated[float, typer.Option(help="Basis sampling grid in seconds.")] = 1.0,
    max_quote_age: Annotated[float | None, typer.Option(
        help="Ignore quotes older than this many seconds when pricing a trade's slippage.")] = None,
    depth: Annotated[int | None, typer.Option(
        help="Book levels per side kept from raw files (default: the whole book).", min=1)] = None,
) -> None:
    import warnings

    from rich.console import Console
    from rich.markup import escape

    from perpbox.analytics.report import DepthTruncatedWarning, build_report

    console = Console()
    with console.status("computing the report"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DepthTruncatedWarning)  # printed below, once, in red
        metrics = build_report([str(p) for p in venue_data], [str(p) for p in benchmark] if benchmark else None,
                               regime or (), out=out, basis_step_s=basis_step, max_quote_age_s=max_quote_age,
                               depth=depth)
    for venue, coins in metrics["venues"].items():
        for coin, entry in coins.items():
            a = entry["all"]
            d5 = a["depth_usd"].get("5", {}).get("both", {}).get("median")
            cut5 = a["depth_usd"].get("5", {}).get("truncated_share") or 0
            lower = f" (lower bound: book cut in {cut5:.0%} of snapshots)" if cut5 > 0 else ""
            console.print(
                f"{venue}/{coin}: spread median {_f(a['spread_bps']['median'])} bps, depth ±5 bps {_f(d5)} USD{lower}, "
                f"|slippage| median {_f(a['slippage_bps'].get('median_abs'))} bps, "
                f"basis mean {_f(a['basis']['vs_benchmark'].get('mean'))} bps")
    console.print(f"wrote {out} and {out.with_name('metrics.json')}")
    if metrics.get("warnings"):
        err = Console(stderr=True)
        for line in metrics["warnings"]:
            err.print(f"[bold red]WARNING: depth truncated:[/] {escape(line)}", highlight=False)


def _levels(src: Path, fmt: str, depth: int) -> int | None:
    """``--depth`` as the loaders take it: 0 (the whole book) is None for a capture, a large count
    for the archive and Tardis loaders."""
    if depth:
        return depth
    from perpbox.analytics.report import WHOLE_BOOK
    from perpbox.venues.sources import detect_format

    return None if (fmt if fmt != "auto" else detect_format(src)) == "hftbacktest" else WHOLE_BOOK


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:,.4g}"


def register(app: typer.Typer) -> None:
    """Add ``load`` and ``report`` to the ``perpbox`` app."""
    app.command("load", help=LOAD_HELP)(load_command)
    app.command("report", help=REPORT_HELP)(report_command)

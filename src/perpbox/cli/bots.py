"""``perpbox hedge``: hedge mode's command."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from perpbox.bots.hedge import HedgeRunner, Preview

HEDGE_HELP = """Hedge mode: a post-only maker on MAKER's venue, an IOC hedge on TAKER's as soon as any of
it fills, then back — with a hedge ledger, banded hedges on fresh books, bounded unhedged exposure
and reconciliation against both venues, also after every reconnect of a venue's streams (see the
README's trader bots section).

While it runs, a terminal shows the wear table live (fees, rebates, slippage against the mid at
decision time, funding, realised and unrealised PnL, wear in bps per leg and the farmers' wear);
--ledger DIR keeps the run's fills and funding as Parquet rows with a JSON sidecar, rewritten every
few seconds, which `perpbox wear DIR` sums over runs.

Exit codes: 0 done; 2 the hedge failed at every band and both legs were flattened; 3 an
unexplained position change (an incident) did not resolve. Ctrl-C cancels the resting maker,
settles the hedge debt and prints the summary.

Examples:

  perpbox hedge --accounts accounts.toml --maker hl_a --taker hl_b --coin BTC --size 0.001 --iterations 10

  perpbox hedge --accounts accounts.toml --maker hl_a --taker hl_b --coin BTC --size 0.001 --iterations 10 --dry-run

  perpbox hedge --accounts accounts.toml --maker hl_a --taker hl_b --coin ETH --size 0.01 --iterations 40
  --max-position 0.05 --hedge-band-bps 30 --max-unhedged-ms 2000 --ledger runs/
"""


def _decimal(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{name}: {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise typer.BadParameter(f"{name}: must be positive")
    return value


def _dry_run(runner: HedgeRunner, console: Console) -> int:
    """``--dry-run``: the run's preview as a table; 1 when something would stop it."""
    from rich.table import Table

    async def read() -> Preview:
        try:
            return await runner.preview()
        finally:
            await runner.maker.aclose()
            await runner.taker.aclose()

    try:
        preview = asyncio.run(read())
    except Exception as e:  # a venue that does not answer: say which call failed, never a traceback
        typer.echo(f"hedge --dry-run: reading the venues failed: {type(e).__name__}: {e}", err=True)
        return 1
    table = Table(title="hedge --dry-run: nothing is sent")
    table.add_column("")
    table.add_column("")
    for label, text in preview.lines:
        table.add_row(label, text)
    console.print(table)
    for problem in preview.problems:
        console.print(f"[red]would not run:[/red] {problem}")
    if not preview.problems:
        console.print("every check passed")
    return 1 if preview.problems else 0


def hedge_command(
    accounts: Annotated[Path, typer.Option(help="The accounts file (TOML).")],
    maker: Annotated[str, typer.Option(help="The account that posts the maker orders.")],
    taker: Annotated[str, typer.Option(help="The account that hedges.")],
    coin: Annotated[str, typer.Option(help="The coin (the maker venue's name).")],
    size: Annotated[str, typer.Option(help="Size of each maker order.")],
    iterations: Annotated[int, typer.Option(help="Maker orders to fill and hedge.", min=1)],
    taker_coin: Annotated[str | None, typer.Option(help="The taker venue's name for the coin.")] = None,
    max_position: Annotated[str | None, typer.Option(help="Walk inventory up to this and back.")] = None,
    max_unhedged_usd: Annotated[str | None, typer.Option(help="Hard limit on unhedged notional.")] = None,
    max_unhedged_ms: Annotated[int, typer.Option(help="Hard limit on unhedged time.", min=1)] = 5_000,
    hedge_band_bps: Annotated[int, typer.Option(help="How far through the book a hedge may go.", min=1)] = 50,
    requote_s: Annotated[float, typer.Option(help="Re-post an unfilled maker at the touch after this.")] = 5.0,
    ledger: Annotated[Path | None, typer.Option(help="Write the run's fills and funding here (Parquet rows and a "
                                                "JSON sidecar; `perpbox wear DIR` sums them).")] = None,
    incident_timeout_s: Annotated[float, typer.Option(help="How long an incident may wait for the venues to agree "
                                                      "before the run stops (exit 3).", min=1)] = 60.0,
    streams: Annotated[bool, typer.Option(help="Books and fills of Hyperliquid venues from their WebSocket "
                                          "streams (REST when a stream is down).")] = True,
    dry_run: Annotated[bool, typer.Option(help="Read both venues and print the first maker order, its hedge and "
                                          "every check; send nothing (exit 1 when a check fails).")] = False,
) -> None:
    from rich.live import Live
    from rich.logging import RichHandler

    from perpbox.bots.accounts import AccountsError, load_accounts, open_venue
    from perpbox.bots.hedge import HedgeConfig, HedgeRunner, Summary
    from perpbox.bots.hyperliquid_venue import HyperliquidVenue
    from perpbox.bots.streamed_venue import StreamedVenue
    from perpbox.bots.venue import Venue
    from perpbox.bots.wear import RunMeta, WearResult, render, write_run
    from perpbox.cli.console import table_console

    console = table_console()
    live_view = console.is_terminal  # a live wear table only on a terminal; logs go above it
    handler: logging.Handler = RichHandler(console=console, show_path=False) if live_view else \
        logging.StreamHandler(sys.stderr)
    if not live_view:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        specs = load_accounts(accounts)
        for name in (maker, taker):
            if name not in specs:
                raise AccountsError(f"{accounts}: no account [{name}]")
        rest_maker, rest_taker = open_venue(specs[maker]), open_venue(specs[taker])
    except AccountsError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    cfg = HedgeConfig(coin=coin, size=_decimal(size, "--size"), iterations=iterations, taker_coin=taker_coin,
                      max_position=_decimal(max_position, "--max-position") if max_position else None,
                      max_unhedged_usd=_decimal(max_unhedged_usd, "--max-unhedged-usd") if max_unhedged_usd else None,
                      max_unhedged_ms=max_unhedged_ms, hedge_band_bps=hedge_band_bps,
                      requote_ms=round(requote_s * 1000), incident_timeout_ms=round(incident_timeout_s * 1000))
    coins = {"maker": coin, "taker": taker_coin or coin}
    if dry_run:
        raise typer.Exit(_dry_run(HedgeRunner(rest_maker, rest_taker, cfg), table_console()))

    async def streamed(venue: Venue, leg: str) -> Venue:
        if not streams or not isinstance(venue, HyperliquidVenue):
            return venue
        sv = StreamedVenue(venue, [coins[leg]])
        if not await sv.start(timeout=10):
            logging.getLogger("perpbox.hedge").warning("%s: streams not live yet: REST until they are", venue.name)
        return sv

    def save(runner: HedgeRunner, end_mids: dict[str, Decimal]) -> Path | None:
        if ledger is None or not runner.rows:
            return None
        meta = RunMeta(run_id=runner.run_id, start_ms=runner.since, end_ms=runner.clock(),
                       maker_venue=runner.maker.name, taker_venue=runner.taker.name, coin=coin,
                       taker_coin=taker_coin, end_mids=end_mids)
        return write_run(ledger, runner.run_id, runner.rows, meta)

    async def watch(runner: HedgeRunner, view: Live | None) -> None:
        """Refresh the live table every second; write the ledger every 5 s while rows come in."""
        written, tick = 0, 0
        while True:
            await asyncio.sleep(1)
            tick += 1
            rows = len(runner.rows)
            try:
                if view is not None:
                    view.update(render(runner.wear(), title=f"hedge {coin}: {runner.done}/{iterations}"))
                if tick % 5 == 0 and rows != written:
                    save(runner, dict(runner.mids))
                    written = rows
            except (ValueError, OSError) as e:  # a position with no mid yet; a full disk: next time
                logging.getLogger("perpbox.hedge").debug("live wear: %s", e)

    async def main() -> tuple[Summary, WearResult | str, Path | None]:
        maker_venue = await streamed(rest_maker, "maker")
        taker_venue = await streamed(rest_taker, "taker")
        runner = HedgeRunner(maker_venue, taker_venue, cfg)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        view = Live(console=console, refresh_per_second=2, transient=True) if live_view else None
        try:
            if view is not None:
                view.start()
            watcher = asyncio.create_task(watch(runner, view))
            try:
                summary = await runner.run(stop)
            finally:
                watcher.cancel()
                if view is not None:
                    view.stop()
            end_mids = {}
            for venue, c in ((maker_venue, coins["maker"]), (taker_venue, coins["taker"])):
                mid = (await venue.book(c)).mid()
                if mid is not None:
                    end_mids[venue.name] = mid
            end_mids = {**runner.mids, **end_mids}
            try:
                wear: WearResult | str = runner.wear(end_mids)
            except ValueError as e:  # a position left open on a venue with no book to mark it
                wear = f"the run cannot be valued: {e}"
            return summary, wear, save(runner, end_mids)
        finally:
            await maker_venue.aclose()
            await taker_venue.aclose()

    summary, wear, path = asyncio.run(main())
    if isinstance(wear, str):
        typer.echo(f"hedge {coin}: {summary.iterations} iterations; {wear}", err=True)
        pnl, farmers = "n/a", "n/a"
    else:
        console.print(render(wear, title=f"hedge {coin}: {summary.iterations} iterations"))
        pnl = f"{wear.total.pnl_usd:.4f}"
        farmers = "n/a" if wear.farmers_wear_bps is None else f"{wear.farmers_wear_bps:.3f}"
    typer.echo(f"pnl_usd={pnl} wear_bps={farmers} incidents={len(summary.incidents)}"
               f" overshoots={summary.overshoots} unhedged={summary.unhedged}")
    if path is not None:
        typer.echo(f"fills written to {path}")
    if summary.reason:
        typer.echo(summary.reason, err=True)
    raise typer.Exit(summary.code)


def register(app: typer.Typer) -> None:
    app.command("hedge", help=HEDGE_HELP)(hedge_command)

"""``perpbox hedge``: the trader bots' commands."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer

HEDGE_HELP = """Hedge mode: a post-only maker on MAKER's venue, an IOC hedge on TAKER's as soon as any of
it fills, then back — with a hedge ledger, banded hedges on fresh books, bounded unhedged exposure
and reconciliation against both venues (see the README's trader bots section).

Exit codes: 0 done; 2 the hedge failed at every band and both legs were flattened; 3 an
unexplained position change (an incident) did not resolve. Ctrl-C cancels the resting maker,
settles the hedge debt and prints the summary.

Examples:

  perpbox hedge --accounts accounts.toml --maker hl_a --taker hl_b --coin BTC --size 0.001 --iterations 10

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
    ledger: Annotated[Path | None, typer.Option(help="Write the run's fills here (Parquet).")] = None,
    incident_timeout_s: Annotated[float, typer.Option(help="How long an incident may wait for the venues to agree "
                                                      "before the run stops (exit 3).", min=1)] = 60.0,
) -> None:
    from rich.console import Console
    from rich.table import Table

    from perpbox.bots.accounts import AccountsError, load_accounts, open_venue
    from perpbox.bots.hedge import HedgeConfig, HedgeRunner

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        specs = load_accounts(accounts)
        for name in (maker, taker):
            if name not in specs:
                raise AccountsError(f"{accounts}: no account [{name}]")
        maker_venue, taker_venue = open_venue(specs[maker]), open_venue(specs[taker])
    except AccountsError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    cfg = HedgeConfig(coin=coin, size=_decimal(size, "--size"), iterations=iterations, taker_coin=taker_coin,
                      max_position=_decimal(max_position, "--max-position") if max_position else None,
                      max_unhedged_usd=_decimal(max_unhedged_usd, "--max-unhedged-usd") if max_unhedged_usd else None,
                      max_unhedged_ms=max_unhedged_ms, hedge_band_bps=hedge_band_bps,
                      requote_ms=round(requote_s * 1000), incident_timeout_ms=round(incident_timeout_s * 1000))

    async def main() -> tuple[object, Decimal, Decimal, list[dict[str, object]]]:
        runner = HedgeRunner(maker_venue, taker_venue, cfg)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            summary = await runner.run(stop)
            mids = []
            for venue, c in ((maker_venue, coin), (taker_venue, taker_coin or coin)):
                mid = (await venue.book(c)).mid()
                mids.append(mid if mid is not None else Decimal(0))
            return summary, mids[0], mids[1], runner.rows
        finally:
            await maker_venue.aclose()
            await taker_venue.aclose()

    summary, maker_mid, taker_mid, rows = asyncio.run(main())
    from perpbox.bots.hedge import Summary

    assert isinstance(summary, Summary)
    table = Table(title=f"hedge {coin}: {summary.iterations} iterations")
    for col in ("leg", "fills", "volume USD", "fees USD", "position"):
        table.add_column(col, justify="right")
    for leg, st in (("maker", summary.maker), ("taker", summary.taker)):
        table.add_row(leg, str(st.fills), f"{st.volume_usd:.2f}", f"{st.fees_usd:.4f}", str(st.position))
    Console(stderr=False).print(table)
    wear = summary.wear_bps(maker_mid, taker_mid)
    wear_text = "n/a" if wear is None else f"{wear:.3f}"
    typer.echo(f"pnl_usd={summary.pnl_usd(maker_mid, taker_mid):.4f} wear_bps={wear_text}"
               f" incidents={len(summary.incidents)} overshoots={summary.overshoots} unhedged={summary.unhedged}")
    if ledger is not None and rows:
        import polars as pl

        ledger.mkdir(parents=True, exist_ok=True)
        path = ledger / f"hedge-{coin.replace(':', '_')}-{rows[0]['time']}.parquet"
        pl.DataFrame(rows).write_parquet(path)
        typer.echo(f"fills written to {path}")
    if summary.reason:
        typer.echo(summary.reason, err=True)
    raise typer.Exit(summary.code)


def carry_command(
    spread: Annotated[str, typer.Option(help="How far the dear (short) venue is above the cheap one, in %.")],
    days: Annotated[str, typer.Option(help="Days for the spread to converge.")],
    leverage: Annotated[str, typer.Option(help="Leverage on each venue.")],
    long_funding: Annotated[str, typer.Option(help="The long venue's funding rate per interval, in %.")],
    short_funding: Annotated[str, typer.Option(help="The short venue's funding rate per interval, in %.")],
    long_interval_h: Annotated[str, typer.Option(help="The long venue's funding interval (hours).")] = "1",
    short_interval_h: Annotated[str, typer.Option(help="The short venue's funding interval (hours).")] = "8",
    capital: Annotated[str, typer.Option(help="USD posted across both venues.")] = "10000",
) -> None:
    """Spread + funding carry of long-the-cheap / short-the-dear with margin on both venues: the APR
    of each part and the total (rates with the venue's sign: positive, longs pay).

    Example (the reference's Lighter/Binance case, rates per interval):

      perpbox carry --spread 0.1 --days 2 --leverage 3 --long-funding -0.0008 --long-interval-h 1
      --short-funding 0.0083 --short-interval-h 8
    """
    from rich.console import Console
    from rich.table import Table

    from perpbox.bots.carry import format_carry, funding_apr, spread_funding_carry

    def pct(text: str, name: str) -> Decimal:
        try:
            return Decimal(text) / 100
        except InvalidOperation:
            raise typer.BadParameter(f"{name}: {text!r} is not a number") from None

    try:
        result = spread_funding_carry(
            spread=pct(spread, "--spread"), days=days, leverage=leverage,
            long_funding_apr=funding_apr(pct(long_funding, "--long-funding"), long_interval_h),
            short_funding_apr=funding_apr(pct(short_funding, "--short-funding"), short_interval_h), capital=capital)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    table = Table(title="spread + funding carry")
    table.add_column("")
    table.add_column("", justify="right")
    for k, v in format_carry(result):
        table.add_row(k, v)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("hedge", help=HEDGE_HELP)(hedge_command)
    app.command("carry")(carry_command)

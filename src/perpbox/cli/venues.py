"""Venue data kit commands: ``scan``, ``funding``, ``watch``, ``record``.

Venue names: ``hyperliquid`` is the native client (``--url`` points it at mainnet, testnet or any
compatible server such as ``perpbox serve``); ``ccxt:hyperliquid`` is ccxt's class (also honours
``--url``); anything else is a ccxt id (``binance`` = ``binanceusdm``, ``bybit``, ``okx``, …).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import typer

from perpbox.venues.hyperliquid import MAINNET_URL

#: Base-tier taker fees (fractions) used when ccxt's market table has none and no --fee is given.
DEFAULT_OUT = Path("venue-data")
DEFAULT_TAKER_FEES = {"hyperliquid": 0.00045, "binanceusdm": 0.0005, "bybit": 0.00055, "okx": 0.0005}


def _px(x: float | None) -> str:
    """Prices readable at any scale: 100,034.50 / 31.2450 / 0.00001234."""
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.2f}"
    return f"{x:.4f}" if abs(x) >= 1 else f"{x:.6g}"


def _split(csv: str) -> list[str]:
    return [x.strip() for x in csv.split(",") if x.strip()]


def _is_native(venue: str) -> bool:
    return venue.strip().lower() in ("hyperliquid", "hl")


def _ccxt_name(venue: str) -> str:
    return venue.split(":", 1)[1] if venue.startswith("ccxt:") else venue


# -- funding ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VenueFunding:
    venue: str
    coin: str
    rate: float
    interval_hours: float
    interval_source: str
    per_hour: float
    per_8h: float
    apr: float
    half_spread: float | None
    taker_fee: float


def funding_snapshot(coin: str, venues: list[str], url: str = MAINNET_URL,
                     fees: dict[str, float] | None = None) -> tuple[list[VenueFunding], dict[str, str]]:
    """Current funding per venue, normalised, with the half-spread and taker fee of each.
    A venue that fails is reported in the second value and left out (it degrades alone)."""
    from perpbox.analytics.funding import half_spread, normalise
    from perpbox.venues.ccxt_venues import CcxtVenue
    from perpbox.venues.hyperliquid import HyperliquidInfo
    from perpbox.venues.intervals import DEFAULT_TABLE, canonical_venue

    fees = fees or {}
    out: list[VenueFunding] = []
    errors: dict[str, str] = {}
    for name in venues:
        try:
            if _is_native(name):
                label = "hyperliquid"
                with HyperliquidInfo(url) as info:
                    market = next(m for m in info.meta_and_asset_ctxs() if m.coin == coin)
                    live = None
                    try:
                        live = next((p.interval_hours for p in info.predicted_fundings()
                                     if p.coin == coin and p.venue == "HlPerp"), None)
                    except Exception:
                        live = None
                    iv = DEFAULT_TABLE.resolve("hyperliquid", coin, live)
                    book = info.l2_book(coin)
                rate, hs = market.ctx.funding * iv.hours, half_spread(book.best_bid, book.best_ask) if book else None
                taker = fees.get(label, DEFAULT_TAKER_FEES["hyperliquid"])
                n = normalise(label, rate, iv.hours, coin, iv.source)
            else:
                ccxt_id = canonical_venue(_ccxt_name(name))
                label = name if name.startswith("ccxt:") else ccxt_id
                venue = CcxtVenue(ccxt_id, url=url if ccxt_id == "hyperliquid" else None)
                fq = venue.funding(coin)
                ob = venue.order_book(coin, 5)
                hs = half_spread(ob.bids[0][0] if ob.bids else None, ob.asks[0][0] if ob.asks else None)
                default_fee = venue.taker_fee(coin) or DEFAULT_TAKER_FEES.get(ccxt_id, 0.0005)
                taker = fees.get(label, fees.get(ccxt_id, default_fee))
                n = normalise(label, fq.rate, fq.interval_hours, coin, fq.interval_source)
            out.append(VenueFunding(n.venue, coin, n.rate, n.interval_hours, n.interval_source, n.per_hour,
                                    n.per_8h, n.apr, hs, taker))
        except Exception as e:
            errors[name] = f"{type(e).__name__}: {e}"
    return out, errors


def _parse_fees(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        venue, _, bps = item.partition("=")
        if not bps:
            raise typer.BadParameter(f"--fee wants VENUE=BPS, got {item!r}")
        out[venue.strip()] = float(bps) / 1e4
    return out


# -- watch --------------------------------------------------------------------------------------------

async def _native_mids(url: str, coin: str) -> AsyncIterator[tuple[float, float, float]]:
    """(bid, ask, mid): an l2Book snapshot first, then every bbo push (with reconnects)."""
    from perpbox.venues.hyperliquid import AsyncHyperliquidInfo, HyperliquidStream, WsMessage, parse_bbo

    async with AsyncHyperliquidInfo(url) as info:
        book = await info.l2_book(coin)
    if book is not None and book.mid is not None:
        yield book.best_bid, book.best_ask, book.mid  # type: ignore[misc]
    stream = HyperliquidStream(url, [{"type": "bbo", "coin": coin}])
    try:
        async for item in stream:
            if isinstance(item, WsMessage) and item.channel == "bbo":
                b = parse_bbo(item.data)
                if b.bid and b.ask:
                    yield b.bid.px, b.ask.px, (b.bid.px + b.ask.px) / 2
    finally:
        await stream.close()


async def _ccxt_mids(venue: str, coin: str, url: str) -> AsyncIterator[tuple[float, float, float]]:
    from perpbox.venues.ccxt_venues import watch_books
    from perpbox.venues.intervals import canonical_venue

    ccxt_id = canonical_venue(_ccxt_name(venue))
    async for b in watch_books(ccxt_id, coin, url=url if ccxt_id == "hyperliquid" else None, limit=None):
        if b.mid is not None:
            yield b.bids[0][0] / b.multiplier, b.asks[0][0] / b.multiplier, b.mid


def deviations(mids: dict[str, float]) -> dict[str, float]:
    """Each venue's mid vs the median of all venues' mids, in bps."""
    if not mids:
        return {}
    ref = statistics.median(mids.values())
    return {v: (m - ref) / ref * 1e4 for v, m in mids.items()}


async def watch_async(coin: str, venues: list[str], url: str, once: bool, duration: float | None,
                      timeout: float, on_update: Any = None) -> dict[str, dict[str, float]]:
    state: dict[str, dict[str, float]] = {}
    errors: dict[str, str] = {}
    everyone = asyncio.Event()

    async def pump(venue: str) -> None:
        try:
            src = _native_mids(url, coin) if _is_native(venue) else _ccxt_mids(venue, coin, url)
            async for bid, ask, mid in src:
                state[venue] = {"bid": bid, "ask": ask, "mid": mid, "local_ts": time.time()}
                if len(state) == len(venues):
                    everyone.set()
                if on_update is not None:
                    on_update(state, errors)
        except Exception as e:
            errors[venue] = f"{type(e).__name__}: {e}"
            if len(state) + len(errors) >= len(venues):
                everyone.set()

    tasks = [asyncio.create_task(pump(v)) for v in venues]
    try:
        if once:
            with _suppress_timeout():
                await asyncio.wait_for(everyone.wait(), timeout)
        else:
            await asyncio.sleep(duration if duration is not None else float("inf"))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    devs = deviations({v: s["mid"] for v, s in state.items()})
    for v, s in state.items():
        s["dev_bps"] = devs[v]
    for v, e in errors.items():
        state.setdefault(v, {})["error"] = e  # type: ignore[assignment]
    return state


class _suppress_timeout:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is not None and issubclass(exc_type, TimeoutError)


def _watch_table(coin: str, state: dict[str, dict[str, Any]], errors: dict[str, str]) -> Any:
    from rich.table import Table

    mids = {v: s["mid"] for v, s in state.items() if "mid" in s}
    devs = deviations(mids)
    t = Table(title=f"{coin} mids across venues (deviation vs median, bps)")
    for col in ("venue", "bid", "ask", "mid", "dev bps", "age s"):
        t.add_column(col, justify="left" if col == "venue" else "right")
    now = time.time()
    for v, s in state.items():
        if "mid" in s:
            t.add_row(v, _px(s["bid"]), _px(s["ask"]), _px(s["mid"]), f"{devs[v]:+.2f}",
                      f"{now - s.get('local_ts', now):.1f}")
    for v, e in errors.items():
        t.add_row(v, "", "", "", "", e[:60])
    return t


# -- commands -----------------------------------------------------------------------------------------

def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``perpbox`` app."""

    @app.command()
    def scan(
        url: str = typer.Option(MAINNET_URL, help="Hyperliquid-compatible base URL (mainnet, testnet, perpbox serve)."),
        min_oi: float = typer.Option(0.0, "--min-oi", help="Minimum open interest in USD."),
        min_spread_bps: float | None = typer.Option(None, help="Only markets quoting at least this wide (bps)."),
        max_spread_bps: float | None = typer.Option(None, help="Only markets quoting at most this wide (bps)."),
        min_volume: float = typer.Option(0.0, help="Minimum 24 h notional volume in USD."),
        sort: str = typer.Option("oi", help="oi, volume, spread, funding, abs_funding, depth or coin."),
        limit: int = typer.Option(40, help="Rows to show (0 = all)."),
        dex: str = typer.Option("", help="HIP-3 dex name ('' = first dex, '*' = every dex)."),
        concurrency: int = typer.Option(8, help="Concurrent l2Book requests."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per market instead of a table."),
    ) -> None:
        """Every perp market: spread, OI, 24 h volume, funding (1 h, 8 h-eq, APR), top-5 depth.

        Examples:

          perpbox scan --min-oi 5e6 --sort spread --limit 20

          perpbox scan --dex xyz

          perpbox scan --url http://127.0.0.1:8080 --json
        """
        from perpbox.analytics.scanner import filter_rows, sort_rows
        from perpbox.analytics.scanner import scan as do_scan

        dexes = ["*"] if dex == "*" else [dex]
        rows = sort_rows(filter_rows(do_scan(url, dexes, concurrency), min_oi, min_spread_bps, max_spread_bps,
                                     min_volume), sort)
        if limit:
            rows = rows[:limit]
        if as_json:
            for r in rows:
                typer.echo(json.dumps(r.as_dict()))
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"perp markets at {url} (sorted by {sort})")
        for col in ("coin", "spread bps", "mid", "OI $", "24h vol $", "fund 1h bps", "8h bps", "APR %",
                    "bid5 $", "ask5 $"):
            t.add_column(col, justify="left" if col == "coin" else "right")
        for r in rows:
            t.add_row(r.coin, "-" if r.spread_bps is None else f"{r.spread_bps:.2f}",
                      _px(r.mid_px), f"{r.oi_usd:,.0f}", f"{r.volume_24h_usd:,.0f}",
                      f"{r.funding_1h * 1e4:.4f}", f"{r.funding_8h * 1e4:.3f}", f"{r.funding_apr * 100:.2f}",
                      f"{r.bid_depth_usd:,.0f}", f"{r.ask_depth_usd:,.0f}")
        Console().print(t)

    @app.command()
    def funding(
        coin: str = typer.Option("BTC", help="Coin as traders name it (mapped per venue, e.g. PEPE → 1000PEPE)."),
        venues: str = typer.Option("hyperliquid,binance,bybit", help="Comma-separated venues."),
        url: str = typer.Option(MAINNET_URL, help="Base URL for hyperliquid (and ccxt:hyperliquid)."),
        hold_hours: float = typer.Option(24 * 7, help="Holding horizon used for the net APR (hours)."),
        fee: list[str] = typer.Option([], help="Taker fee override VENUE=BPS (repeatable): --fee bybit=5.5."),  # noqa: B008
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    ) -> None:
        """Funding per venue normalised (per hour, 8 h-eq, APR), pairwise carry, net of costs.

        Costs: taker fees on both legs at entry and exit plus half the quoted spread on each fill;
        break-even = round-trip cost / carry per hour; net APR amortises the cost over --hold-hours.

        Examples:

          perpbox funding --coin BTC --venues hyperliquid,binance,bybit

          perpbox funding --coin ETH --venues hyperliquid,okx --hold-hours 72 --fee okx=5

          perpbox funding --coin BTC --venues hyperliquid --url http://127.0.0.1:8080 --json
        """
        from perpbox.analytics.funding import net_carry, normalise, pairwise

        rows, errors = funding_snapshot(coin, _split(venues), url, _parse_fees(fee))
        rates = [normalise(r.venue, r.rate, r.interval_hours, coin, r.interval_source) for r in rows]
        fees = {r.venue: r.taker_fee for r in rows}
        spreads = {r.venue: r.half_spread or 0.0 for r in rows}
        pairs = [net_carry(c, fees, spreads, hold_hours) for c in pairwise(rates)]
        if as_json:
            typer.echo(json.dumps({
                "coin": coin, "venues": [asdict(r) for r in rows], "errors": errors,
                "pairs": [{"long": n.carry.long_venue, "short": n.carry.short_venue, "carry_per_hour": n.carry.per_hour,
                           "carry_8h": n.carry.per_8h, "carry_apr": n.carry.apr, "round_trip_cost": n.cost,
                           "break_even_hours": None if n.break_even_hours == float("inf") else n.break_even_hours,
                           "net_apr": n.net_apr, "hold_hours": hold_hours} for n in pairs]}))
            return
        from rich.console import Console
        from rich.table import Table

        con = Console()
        t = Table(title=f"{coin} funding (positive: longs pay)")
        for col in ("venue", "rate", "interval h", "per 1h bps", "8h-eq bps", "APR %", "half-spread bps", "taker bps"):
            t.add_column(col, justify="left" if col == "venue" else "right")
        for r in rows:
            t.add_row(r.venue, f"{r.rate:.8f}", f"{r.interval_hours:g} ({r.interval_source})",
                      f"{r.per_hour * 1e4:.4f}",
                      f"{r.per_8h * 1e4:.3f}", f"{r.apr * 100:.2f}",
                      "-" if r.half_spread is None else f"{r.half_spread * 1e4:.3f}", f"{r.taker_fee * 1e4:.2f}")
        con.print(t)
        p = Table(title=f"pairs: long the lower rate, short the higher (net over {hold_hours:g} h)")
        for col in ("long", "short", "carry 8h bps", "carry APR %", "round trip bps", "break-even h", "net APR %"):
            p.add_column(col, justify="left" if col in ("long", "short") else "right")
        for n in pairs:
            be = "never" if n.break_even_hours == float("inf") else f"{n.break_even_hours:,.1f}"
            p.add_row(n.carry.long_venue, n.carry.short_venue, f"{n.carry.per_8h * 1e4:.3f}",
                      f"{n.carry.apr * 100:.2f}", f"{n.cost * 1e4:.2f}", be,
                      "-" if n.net_apr is None else f"{n.net_apr * 100:.2f}")
        con.print(p)
        for v, e in errors.items():
            con.print(f"[yellow]{v}: {e}[/yellow]")

    @app.command()
    def watch(
        coin: str = typer.Option("BTC", help="Coin as traders name it."),
        venues: str = typer.Option("hyperliquid,binance,bybit,okx", help="Comma-separated venues."),
        url: str = typer.Option(MAINNET_URL, help="Base URL for hyperliquid (and ccxt:hyperliquid)."),
        once: bool = typer.Option(False, help="Wait for a mid from every venue (or --timeout), print once, exit."),
        duration: float | None = typer.Option(None, help="Stop after this many seconds (default: until Ctrl-C)."),
        timeout: float = typer.Option(20.0, help="With --once: the longest wait for all venues."),
        as_json: bool = typer.Option(False, "--json", help="With --once: print JSON."),
    ) -> None:
        """Live cross-venue mids and each venue's deviation from the median, in bps.

        Examples:

          perpbox watch --coin BTC --venues hyperliquid,binance,bybit,okx

          perpbox watch --coin ETH --venues hyperliquid,binance --duration 60

          perpbox watch --coin BTC --venues hyperliquid --url http://127.0.0.1:8080 --once --json
        """
        vs = _split(venues)
        if once:
            state = asyncio.run(watch_async(coin, vs, url, True, None, timeout))
            if as_json:
                typer.echo(json.dumps({"coin": coin, "venues": state}))
            else:
                from rich.console import Console

                Console().print(_watch_table(coin, {v: s for v, s in state.items() if "mid" in s},
                                             {v: s["error"] for v, s in state.items() if "error" in s}))
            return
        from rich.live import Live

        with Live(_watch_table(coin, {}, {}), refresh_per_second=4) as live:
            def update(state: dict[str, Any], errors: dict[str, str]) -> None:
                live.update(_watch_table(coin, state, errors))
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(watch_async(coin, vs, url, False, duration, timeout, on_update=update))

    @app.command()
    def record(
        venue: str = typer.Option("hyperliquid", help="Only 'hyperliquid' (any compatible server via --url)."),
        coins: str = typer.Option("BTC", help="Comma-separated coins."),
        channels: str = typer.Option("l2Book,trades,bbo", help="l2Book, trades, bbo, activeAssetCtx."),
        out: Path = typer.Option(DEFAULT_OUT, help="Dataset root (appended to, never overwritten)."),  # noqa: B008
        url: str = typer.Option(MAINNET_URL, help="Base URL of the venue."),
        duration: float | None = typer.Option(None, help="Stop after this many seconds (default: Ctrl-C)."),
        flush_seconds: float = typer.Option(10.0, help="Write buffered rows at least this often."),
        flush_rows: int = typer.Option(20_000, help="...or as soon as this many rows are buffered."),
        quiet: bool = typer.Option(False, help="No live progress display."),
    ) -> None:
        """Record WebSocket market data into Parquet (venue=/channel=/coin=/date=), resumable.

        Tables: l2Book→book, bbo→bbo, trades→trades, activeAssetCtx→prices (perpbox.venues.tables).
        Ctrl-C or SIGTERM flushes what is buffered; running again appends new chunk files. Gaps
        (reconnects, silences) go to OUT/gaps.jsonl.

        Examples:

          perpbox record --coins BTC,ETH --channels l2Book,trades,bbo --out ./hl-data

          perpbox record --url http://127.0.0.1:8080 --coins BTC --duration 30 --out /tmp/px
        """
        from perpbox.venues.recorder import record as do_record

        if not _is_native(venue):
            raise typer.BadParameter("only --venue hyperliquid is recorded natively (use --url for compatible servers)")
        stats = do_record(url, _split(coins), _split(channels), out, duration=duration, flush_seconds=flush_seconds,
                          flush_rows=flush_rows, live=not quiet)
        lead = "" if quiet else "\n"
        typer.echo(f"{lead}wrote {sum(stats.rows_written.values()):,} rows in {stats.files} files to {out} "
                   f"({', '.join(f'{k}={v}' for k, v in sorted(stats.rows_written.items()))}); "
                   f"gaps={len(stats.gaps)} reconnects={stats.reconnects}")

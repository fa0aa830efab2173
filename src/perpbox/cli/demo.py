"""``perpbox demo``: a short seeded exchange session printed with rich.

Two markets (BTC, ETH) with Hyperliquid's mainnet margin tiers and fees; a few market makers
quote ladders around a random-walk mark; takers cross the spread; two leveraged traders hold
positions (one isolated).  At the end it prints the books, the last fills, every account's
positions and margin, the fee account, the USDC conservation check and the state hash, and proves
that replaying the event log rebuilds the same state.
"""

from __future__ import annotations

import random
import sys

from rich.console import Console
from rich.table import Table

from perpbox.core.numbers import USD, format_units, round_price_sig
from perpbox.exchange import Exchange
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.results import Response, Resting, Statuses
from perpbox.ledger.ledger import FEE_ACCOUNT
from perpbox.market import MarginTable, MarketSpec


def default_markets() -> list[tuple[MarketSpec, int]]:
    """BTC and ETH with Hyperliquid's mainnet tiers, and a starting mark in price units."""
    btc = MarketSpec(name="BTC", asset=0, sz_decimals=5,
                     margin_table=MarginTable.hyperliquid([(0, 40), (150_000_000, 20)], "tiered 40x"))
    eth = MarketSpec(name="ETH", asset=1, sz_decimals=4,
                     margin_table=MarginTable.hyperliquid([(0, 25), (100_000_000, 15)], "tiered 25x"))
    return [(btc, 1_000_000), (eth, 350_000)]  # $100,000.0 (1 decimal) and $3,500.00 (2 decimals)


def _addr(i: int) -> str:
    return "0x" + f"{i:040x}"


def run_demo(seed: int = 1, steps: int = 300, console: Console | None = None) -> Exchange:
    con = console or Console(width=None if sys.stdout.isatty() else 150)
    rng = random.Random(seed)
    ex = Exchange()
    log: list[V.Event] = []
    ts = 1_700_000_000_000

    def do(cmd: C.Command) -> Response:
        outcome = ex.execute(cmd)
        log.extend(outcome.events)
        return outcome.response

    markets = default_markets()
    for spec, mark in markets:
        do(C.AddMarket(ts=ts, spec=spec, mark_px=mark))
    makers = [_addr(0x100 + i) for i in range(3)]
    takers = [_addr(0x200 + i) for i in range(4)]
    whale, iso_trader = _addr(0x300), _addr(0x301)
    for u in makers:
        do(C.Deposit(ts=ts, user=u, usd=2_000_000 * USD))
    for u in takers:
        do(C.Deposit(ts=ts, user=u, usd=50_000 * USD))
    do(C.Deposit(ts=ts, user=whale, usd=100_000 * USD))
    do(C.Deposit(ts=ts, user=iso_trader, usd=20_000 * USD))
    do(C.UpdateLeverage(ts=ts, user=whale, asset=0, is_cross=True, leverage=10))
    do(C.UpdateLeverage(ts=ts, user=iso_trader, asset=1, is_cross=False, leverage=20))

    marks = {spec.asset: mark for spec, mark in markets}
    quotes: dict[str, list[tuple[int, int]]] = {u: [] for u in makers}  # (asset, oid)
    with con.status("simulating") as status:
        for step in range(steps):
            ts += 1_000
            # the mark takes a small random step; makers requote a ladder around it
            for spec, _ in markets:
                a = spec.asset
                move = rng.gauss(0, 0.0008)
                marks[a] = round_price_sig(max(1, int(marks[a] * (1 + move))), spec.px_decimals)
            do(C.Tick(ts=ts, marks=dict(marks)))
            maker = makers[step % len(makers)]
            for a, oid in quotes[maker]:
                do(C.Cancel(ts=ts, user=maker, asset=a, oid=oid))
            quotes[maker] = []
            for spec, _ in markets:
                a, mid = spec.asset, marks[spec.asset]
                for k in range(1, 4):
                    off = mid * (3 + 4 * k + step % len(makers)) // 10_000
                    sz = 10**spec.sz_decimals * rng.randint(5, 30) // 100
                    for is_buy, px in ((True, mid - off), (False, mid + off)):
                        px = round_price_sig(px, spec.px_decimals, up=not is_buy)
                        res = do(C.place(ts, maker, a, is_buy, px, sz, tif="Alo"))
                        if isinstance(res, Statuses) and isinstance(res.items[0], Resting):
                            quotes[maker].append((a, res.items[0].oid))
            # takers send market orders (IOC) bounded by 1% slippage from the mark
            if rng.random() < 0.6:
                spec, _ = markets[rng.randrange(len(markets))]
                a, is_buy = spec.asset, rng.random() < 0.5
                sz = 10 ** spec.sz_decimals * rng.randint(1, 20) // 100
                do(C.market_order(ts, takers[rng.randrange(len(takers))], spec, marks[a], is_buy, sz, slippage_bps=100))
            if step == steps // 4:  # leveraged traders open positions: 0.5 BTC long, 2 ETH short
                btc, eth = markets[0][0], markets[1][0]
                do(C.market_order(ts, whale, btc, marks[0], True, 50_000, slippage_bps=100))
                do(C.market_order(ts, iso_trader, eth, marks[1], False, 20_000, slippage_bps=100))
            status.update(f"simulating step {step + 1}/{steps}")

    _print_report(con, ex, log, markets)
    return ex


def _usd(micro: int) -> str:
    return f"{micro / USD:,.2f}"  # display only


def _print_report(con: Console, ex: Exchange, log: list[V.Event], markets: list[tuple[MarketSpec, int]]) -> None:
    reads = ex.reads
    for spec, _ in markets:
        t = Table(title=f"{spec.name} book (mark {format_units(reads.mark(spec.asset), spec.px_decimals)})")
        for col in ("bid size", "bid", "ask", "ask size"):
            t.add_column(col, justify="right")
        bids, asks = reads.book_levels(spec.asset, True, 5), reads.book_levels(spec.asset, False, 5)
        for i in range(max(len(bids), len(asks))):
            b = bids[i] if i < len(bids) else None
            a = asks[i] if i < len(asks) else None
            t.add_row(
                format_units(b[1], spec.sz_decimals) if b else "", format_units(b[0], spec.px_decimals) if b else "",
                format_units(a[0], spec.px_decimals) if a else "", format_units(a[1], spec.sz_decimals) if a else "",
            )
        con.print(t)

    fills = [e for e in log if isinstance(e, V.Fill)]
    specs = {s.asset: s for s, _ in markets}
    t = Table(title=f"last fills ({len(fills)} in all)")
    for col in ("tid", "market", "side", "px", "sz", "taker fee", "maker fee"):
        t.add_column(col, justify="right")
    for f in fills[-8:]:
        s = specs[f.asset]
        t.add_row(str(f.tid), s.name, "buy" if f.taker_is_buy else "sell", format_units(f.px, s.px_decimals),
                  format_units(f.sz, s.sz_decimals), _usd(f.taker_fee), _usd(f.maker_fee))
    con.print(t)

    t = Table(title="positions and margin (USDC, at the mark)")
    for col in ("account", "market", "size", "entry", "mode", "uPnL", "margin used", "account value", "withdrawable"):
        t.add_column(col, justify="right")
    for addr in reads.addresses():
        held = [pos for pos in reads.positions(addr) if pos.szi]
        summary = reads.margin_summary(addr)
        if not held or summary is None:
            continue
        for pos in held:
            s = specs[pos.asset]
            entry = format_units(pos.entry_ntl // abs(pos.szi), s.px_decimals)
            used = pos.initial_margin if pos.is_cross else pos.isolated_value
            mode = f"{'cross' if pos.is_cross else 'isolated'} {pos.leverage}x"
            t.add_row(addr[:6] + "…" + addr[-4:], s.name, format_units(pos.szi, s.sz_decimals), entry, mode,
                      _usd(pos.unrealized_pnl), _usd(used), _usd(summary.account_value), _usd(summary.withdrawable))
    con.print(t)

    audit = reads.cash_audit()
    fees = reads.account(FEE_ACCOUNT)
    external = audit.deposits - audit.withdrawals
    ok = audit.cash == external
    con.print(f"fee account: {_usd(fees.raw_usd if fees is not None else 0)} USDC   "
              f"conservation: Σ cash {audit.cash} = deposits − withdrawals {external} µUSDC "
              f"[{'green' if ok else 'red'}]{'OK' if ok else 'BROKEN'}[/]")
    h = ex.state_hash()
    replayed = Exchange.replay(log).state_hash()
    con.print(f"events: {len(log)}   state hash: {h[:16]}…   replay: "
              f"[{'green' if replayed == h else 'red'}]{'same state' if replayed == h else 'DIFFERENT'}[/]")

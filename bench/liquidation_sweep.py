"""Benchmark: the vectorised liquidation pre-filter (``perpbox.risk.sweep.PositionIndex``).

A seeded book of positions is generated with numpy, up front and untimed: by default 100,000
accounts each holding 10 positions (1,000,000 in all) spread over 50 markets with tiered margin
tables (major / mid / alt, with tier bounds low enough that the largest positions reach the upper
tiers).  Position notionals are log-normal (median $3,000), 60% long, 15% isolated at a random
leverage (log-normal, median 3x, capped by the table); each account's cross equity is its cross
notional over a log-normal effective leverage (median 3x).  Every position is opened through
``Ledger.apply_fill`` at the market's mid, then the index is built once with
``PositionIndex.rebuild``.

Every mark then drops 10% and ``candidates(prices)`` is timed (``time.perf_counter``, best and
median of ``--repeat`` runs after one warm-up).  The candidates are confirmed with the exact
integer check (``MarginView``), and unless ``--no-full-check`` every account is also checked
exactly, in pure Python, to show that the filter missed none (and how long that takes).

The last line printed is exactly::

    positions=<int> sweep_ms=<float>

with ``sweep_ms`` the median.  Run: ``.venv/bin/python bench/liquidation_sweep.py
[--accounts N] [--per-account K] [--markets M] [--seed S] [--repeat R] [--no-full-check]``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# Make ``perpbox`` importable from a source checkout (src layout) without installing it.
_SRC = Path(__file__).resolve().parents[1] / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from perpbox.ledger.ledger import Account, Ledger  # noqa: E402
from perpbox.market import MarginTable, MarketSpec  # noqa: E402
from perpbox.risk.margin import MarginView  # noqa: E402
from perpbox.risk.sweep import PositionIndex  # noqa: E402

USD = 10**6
MOVE = 0.90  # every mark drops 10%
# Tier tables as (lower bound USD, max leverage), Hyperliquid style (mmr = 1 / (2 * max leverage)).
TABLES = {
    "major": [(0, 50), (1_000_000, 20), (10_000_000, 10)],
    "mid": [(0, 20), (200_000, 10), (2_000_000, 5)],
    "alt": [(0, 10), (50_000, 5), (500_000, 3)],
}
P_LONG = 0.60
P_ISOLATED = 0.15
NOTIONAL_MEDIAN_USD, NOTIONAL_SIGMA = 3_000.0, 1.8
EFF_LEV_MEDIAN, EFF_LEV_SIGMA = 3.0, 0.6
ISO_LEV_MEDIAN, ISO_LEV_SIGMA = 3.0, 0.6


def account(i: int) -> str:
    return "0x" + f"{i:040x}"


def make_markets(n: int, rng: np.random.Generator) -> tuple[dict[int, MarketSpec], dict[int, int]]:
    """``n`` markets: 5 majors, then mids and alts; mids as integer price units."""
    markets: dict[int, MarketSpec] = {}
    mids: dict[int, int] = {}
    for asset in range(n):
        kind = "major" if asset < 5 else "mid" if asset < n // 2 else "alt"
        usd = float(np.exp(rng.uniform(np.log(20_000), np.log(100_000)))) if kind == "major" else \
            float(np.exp(rng.uniform(np.log(0.05), np.log(500))))
        # Hyperliquid-like size decimals: fewer for cheap coins
        szd = 5 if usd >= 10_000 else 4 if usd >= 1_000 else 2 if usd >= 10 else 1 if usd >= 1 else 0
        px = max(1, round(usd * 10 ** (6 - szd)))
        markets[asset] = MarketSpec(f"M{asset}", asset, szd, MarginTable.hyperliquid(TABLES[kind], kind))
        mids[asset] = int(px)
    return markets, mids


def build(n_accounts: int, per_account: int, markets: dict[int, MarketSpec], mids: dict[int, int],
          rng: np.random.Generator) -> Ledger:
    n_markets = len(markets)
    if per_account > n_markets:
        raise SystemExit("--per-account must not exceed --markets")
    # every account holds `per_account` distinct markets
    assets = np.argsort(rng.random((n_accounts, n_markets)), axis=1)[:, :per_account]
    px = np.array([mids[a] for a in range(n_markets)], dtype=np.float64)[assets]
    notional = np.exp(rng.normal(np.log(NOTIONAL_MEDIAN_USD), NOTIONAL_SIGMA, assets.shape)) * USD
    lots = np.maximum(1, np.rint(notional / px)).astype(np.int64)
    is_buy = rng.random(assets.shape) < P_LONG
    is_cross = rng.random(assets.shape) >= P_ISOLATED
    max_lev = np.array([markets[a].max_leverage for a in range(n_markets)])[assets]
    # leverage setting (sizes an isolated position's margin): log-normal around 3x, within the table
    leverage = np.clip(np.rint(np.exp(rng.normal(np.log(ISO_LEV_MEDIAN), ISO_LEV_SIGMA, assets.shape))), 1, max_lev)
    leverage = leverage.astype(np.int64)
    ntl = lots * px
    eff_lev = np.clip(np.exp(rng.normal(np.log(EFF_LEV_MEDIAN), EFF_LEV_SIGMA, n_accounts)), 1.0, 25.0)
    cross_equity = np.maximum(1, np.rint((ntl * is_cross).sum(axis=1) / eff_lev)).astype(np.int64)
    iso_margin = np.where(is_cross, 0, np.ceil(ntl / leverage)).sum(axis=1).astype(np.int64)
    deposit = (cross_equity + iso_margin + per_account).tolist()  # + slack for ceil rounding
    cols = (assets.tolist(), is_cross.tolist(), leverage.tolist(), is_buy.tolist(), lots.tolist())
    prices = [mids[a] for a in range(n_markets)]

    ledger = Ledger()
    step = max(1, n_accounts // 200)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=False) as progress:
        task = progress.add_task("ledger: opening positions", total=n_accounts)
        deposit_, position, apply_fill, get = ledger.deposit, ledger.position, ledger.apply_fill, ledger.account
        for i, (a_row, c_row, l_row, b_row, q_row) in enumerate(zip(*cols)):
            addr = account(i)
            deposit_(addr, deposit[i])
            acct = get(addr)
            for asset, cross, lev, buy, q in zip(a_row, c_row, l_row, b_row, q_row):
                apply_fill(acct, position(acct, asset, cross, lev), buy, prices[asset], q, 0)
            if i % step == 0:
                progress.update(task, completed=i + 1)
        progress.update(task, completed=n_accounts)
    return ledger


def exact_liquidatable(mv: MarginView, acct: Account) -> bool:
    live = [p for p in acct.positions.values() if p.szi]
    if any(p.is_cross for p in live) and mv.cross_value(acct) < mv.cross_maintenance_margin(acct):
        return True
    return any(not p.is_cross and mv.isolated_value(p) < mv.maintenance_margin(p) for p in live)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--per-account", type=int, default=10, help="positions per account (distinct markets)")
    ap.add_argument("--markets", type=int, default=50)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeat", type=int, default=15, help="timed runs of candidates()")
    ap.add_argument("--no-full-check", action="store_true", help="skip the exact check of every account")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    markets, mids = make_markets(args.markets, rng)
    t0 = time.perf_counter()
    ledger = build(args.accounts, args.per_account, markets, mids, rng)
    t_ledger = time.perf_counter() - t0
    index = PositionIndex(markets)
    t0 = time.perf_counter()
    index.rebuild(ledger)
    t_rebuild = time.perf_counter() - t0
    n_pos = len(index)
    print(f"book: {args.accounts} accounts, {n_pos} positions, {args.markets} markets, seed {args.seed} "
          f"(ledger {t_ledger:.1f}s, index rebuild {t_rebuild:.1f}s, untimed)")

    prices = {a: int(px * MOVE) for a, px in mids.items()}
    gc.collect()
    gc.disable()
    try:
        got = index.candidates(prices)  # warm-up
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            got = index.candidates(prices)
            times.append((time.perf_counter() - t0) * 1e3)
    finally:
        gc.enable()
    best, median = min(times), statistics.median(times)

    mv = MarginView(markets, prices)
    accounts = ledger.accounts
    t0 = time.perf_counter()
    confirmed = [a for a in got if exact_liquidatable(mv, accounts[a])]
    t_confirm = (time.perf_counter() - t0) * 1e3
    print(f"after a {1 - MOVE:.0%} drop of every mark: {len(got)} candidates, {len(confirmed)} liquidatable "
          f"(exact check of the candidates: {t_confirm:.1f} ms)")
    if not args.no_full_check:
        t0 = time.perf_counter()
        exact = {a for a, acct in accounts.items() if exact_liquidatable(mv, acct)}
        t_full = (time.perf_counter() - t0) * 1e3
        missed = exact - set(got)
        print(f"exact check of every account (pure Python): {len(exact)} liquidatable, {t_full:.0f} ms; "
              f"missed by the filter: {len(missed)}")
        if missed:
            print(f"ERROR: the filter missed {sorted(missed)[:5]}")
            return 1

    # incremental upkeep: a tick that touched 1% of the accounts
    touched = [account(i) for i in rng.choice(args.accounts, max(1, args.accounts // 100), replace=False)]
    t0 = time.perf_counter()
    index.sync(ledger, touched)
    t_sync = (time.perf_counter() - t0) * 1e3
    print(f"sync of {len(touched)} touched accounts: {t_sync:.2f} ms")
    print(f"candidates(): best {best:.2f} ms, median {median:.2f} ms over {args.repeat} runs")
    print(f"positions={n_pos} sweep_ms={median:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

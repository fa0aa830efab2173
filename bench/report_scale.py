"""Market-quality report at the published study's scale: 1.3 M book snapshots, 540 k trades.

What it measures
----------------
The full ``perpbox report`` path on a Parquet dataset: reading the venue and benchmark datasets,
every metric (spreads over every quote, depth within ±2/5/10/25/50 bps on every 20-level snapshot,
slippage of every trade against the prior quote by notional bucket, trade sizes, basis of the
venue, its oracle and the benchmark on a 1 s grid with episodes, three regimes with their ratios,
weekend-versus-weekday 5-minute bars, the reopen test), the HTML page with its plots (plotly.js
embedded) and ``metrics.json``. Timed once, end to end, with ``time.perf_counter``.

The dataset (generated and written untimed; seeded, so every run is the same)
----------------------------------------------------------------------------
A silver-like perp, ``synthetic/XAG``, over 28 days (4 weekends): a mid random walk around
$30 (tick 0.001) with a fatter-tailed stretch standing in for a crash; 1.3 M book snapshots with
20 levels a side (best quote 1–6 ticks from mid, further levels 1–4 ticks apart, log-normal
sizes); no separate ``bbo`` channel, so the top of book comes from the snapshots as it would for
a Hyperliquid recording; 540 k trades at the touch or through it with log-normal sizes; an
oracle series every 5 s. The benchmark ``bench/XAG`` quotes every 10 s on weekdays only (the
market that closes at the weekend, so the reopen test has something to test).

The last line printed is exactly ``snapshots=<int> trades=<int> seconds=<float>``.
Run: ``.venv/bin/python bench/report_scale.py [--snapshots N] [--trades N] [--seed S] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

_SRC = Path(__file__).resolve().parents[1] / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from perpbox.analytics.report import build_report  # noqa: E402
from perpbox.venues import dataset  # noqa: E402
from perpbox.venues.l2book import list_column  # noqa: E402
from perpbox.venues.tables import conform  # noqa: E402

NS = 10**9
DAYS = 28
START = 1_735_689_600 * NS  # 2025-01-01T00:00:00Z, a Wednesday
TICK = 0.001
LEVELS = 20


def _mid_path(rng: np.random.Generator, ts: np.ndarray, crash: tuple[int, int]) -> np.ndarray:
    """A mid at each time: Gaussian log-returns scaled to the time step, 3× vol in ``crash``."""
    dt_s = np.diff(ts, prepend=ts[0]) / NS
    vol = np.where((ts >= crash[0]) & (ts < crash[1]), 3.0, 1.0) * 0.25 / np.sqrt(365 * 86400)
    steps = rng.standard_normal(len(ts)) * vol * np.sqrt(dt_s)
    return 30.0 * np.exp(np.cumsum(steps))


def generate(n_snap: int, n_trades: int, seed: int, crash: tuple[int, int]) -> dict[str, dict[str, pl.DataFrame]]:
    rng = np.random.default_rng(seed)
    span = DAYS * 86400 * NS
    ts = np.sort(rng.integers(START, START + span, n_snap))
    mid = _mid_path(rng, ts, crash)
    # best quotes 1..6 ticks from mid (wider in the crash), then levels 1..4 ticks apart
    widen = np.where((ts >= crash[0]) & (ts < crash[1]), 3, 1)
    mid_t = np.round(mid / TICK)
    bid0 = mid_t - rng.integers(1, 4, n_snap) * widen
    ask0 = mid_t + rng.integers(1, 4, n_snap) * widen
    gaps = rng.integers(1, 5, (n_snap, LEVELS - 1))
    bid_px = np.concatenate([bid0[:, None], bid0[:, None] - np.cumsum(gaps, axis=1)], axis=1) * TICK
    gaps = rng.integers(1, 5, (n_snap, LEVELS - 1))
    ask_px = np.concatenate([ask0[:, None], ask0[:, None] + np.cumsum(gaps, axis=1)], axis=1) * TICK
    bid_sz = np.round(rng.lognormal(4.0, 1.0, (n_snap, LEVELS)), 1)
    ask_sz = np.round(rng.lognormal(4.0, 1.0, (n_snap, LEVELS)), 1)
    lengths = np.full(n_snap, LEVELS)
    book = pl.DataFrame({
        "ts_ns": ts, "local_ns": ts + 5_000_000, "venue": "synthetic", "coin": "XAG",
        "bid_px": list_column(bid_px.ravel(), lengths), "bid_sz": list_column(bid_sz.ravel(), lengths),
        "ask_px": list_column(ask_px.ravel(), lengths), "ask_sz": list_column(ask_sz.ravel(), lengths),
    })
    # trades: at a random snapshot's touch or a few ticks through it
    at = np.sort(rng.integers(0, n_snap, n_trades))
    side = np.where(rng.random(n_trades) < 0.5, 1, -1).astype(np.int8)
    through = rng.geometric(0.7, n_trades) - 1
    px = np.where(side == 1, ask_px[at, 0] + through * TICK, bid_px[at, 0] - through * TICK)
    trades = pl.DataFrame({
        "ts_ns": ts[at] + 1_000_000, "local_ns": ts[at] + 6_000_000, "venue": "synthetic", "coin": "XAG",
        "px": px, "sz": np.round(rng.lognormal(3.5, 1.5, n_trades), 1), "side": side,
        "trade_id": np.arange(n_trades).astype(str),
    })
    # oracle every 5 s: the mid plus a small mean-reverting premium
    ots = np.arange(START, START + span, 5 * NS)
    omid = np.interp(ots, ts, mid) * (1 + rng.normal(0, 2e-4, len(ots)))
    prices = pl.DataFrame({"ts_ns": ots, "local_ns": ots, "venue": "synthetic", "coin": "XAG",
                           "mark_px": omid, "oracle_px": omid})
    # benchmark: weekday quotes every 10 s (closed Sat 00:00 → Mon 00:00 UTC)
    bts = np.arange(START, START + span, 10 * NS)
    dow = ((bts // NS // 86400) + 3) % 7
    bts = bts[dow < 5]
    bmid = np.interp(bts, ts, mid) * (1 + rng.normal(0, 1e-4, len(bts)))
    bench = pl.DataFrame({"ts_ns": bts, "local_ns": bts, "venue": "bench", "coin": "XAG",
                          "bid_px": bmid - TICK, "bid_sz": 100.0, "ask_px": bmid + TICK, "ask_sz": 100.0})
    return {
        "venue": {"book": conform("book", book), "trades": conform("trades", trades),
                  "prices": conform("prices", prices)},
        "benchmark": {"bbo": conform("bbo", bench)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--snapshots", type=int, default=1_300_000)
    ap.add_argument("--trades", type=int, default=540_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", type=Path, default=None, help="write the dataset and report here and keep them")
    args = ap.parse_args()

    crash = (START + 17 * 86400 * NS, START + 19 * 86400 * NS)
    iso = lambda ns: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / NS))  # noqa: E731
    regimes = [f"pre-crash={iso(START + 10 * 86400 * NS)}..{iso(crash[0])}",
               f"crash={iso(crash[0])}..{iso(crash[1])}", f"after={iso(crash[1])}..{iso(START + DAYS * 86400 * NS)}"]

    root = args.keep or Path(tempfile.mkdtemp(prefix="perpbox-report-scale-"))
    t0 = time.perf_counter()
    data = generate(args.snapshots, args.trades, args.seed, crash)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    for part, frames in data.items():
        for channel, frame in frames.items():
            dataset.write_chunk(frame, channel, root / part)
    t_write = time.perf_counter() - t0
    del data

    t0 = time.perf_counter()
    metrics = build_report(root / "venue", root / "benchmark", regimes, out=root / "report" / "report.html")
    seconds = time.perf_counter() - t0

    m = metrics["venues"]["synthetic"]["XAG"]
    a = m["all"]
    print(f"generated in {t_gen:.1f} s, written (Parquet, zstd) in {t_write:.1f} s to {root}")
    print(f"book snapshots {a['span']['book_snapshots']:,}  trades {a['trade_size']['count']:,}  "
          f"span {a['span']['hours']:.0f} h")
    print(f"spread median {a['spread_bps']['median']:.3f} bps, p95 {a['spread_bps']['p95']:.3f}; "
          f"depth ±5 bps both median {a['depth_usd']['5']['both']['median']:,.0f} USD; "
          f"|slippage| median {a['slippage_bps']['median_abs']:.3f} bps")
    print(f"basis vs benchmark mean {a['basis']['vs_benchmark']['mean']:.3f} bps over "
          f"{a['basis']['vs_benchmark']['samples']:,} s; perp vs oracle p95 {a['basis']['perp_vs_oracle']['p95']:.3f}")
    print(f"crash / pre-crash spread mean ratio {m['regime_ratios']['crash']['spread_bps.mean']:.2f}; "
          f"weekend/weekday notional per bar {a['sessions']['ratios']['mean_notional']:.2f}; "
          f"reopen test {a['reopen_test']['share']} over {a['reopen_test']['weekends']} weekends")
    html = root / "report" / "report.html"
    print(f"report {html.stat().st_size / 1e6:.1f} MB, metrics.json "
          f"{len(json.dumps(metrics)) / 1e3:.0f} kB; full report in {seconds:.2f} s")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    print(f"snapshots={a['span']['book_snapshots']} trades={a['trade_size']['count']} seconds={seconds:.2f}")


if __name__ == "__main__":
    main()

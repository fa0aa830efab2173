"""Market-quality metrics on small hand-computed cases: spread, depth bands, slippage (as-of edge
cases, notional bucket boundaries), basis episodes, weekend sessions, the reopen test, regimes."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from perpbox.analytics import quality as q
from perpbox.analytics.report import base_asset, compute_metrics
from perpbox.venues.tables import conform

A = pytest.approx
NS = 10**9


def bbo(rows: list[tuple[int, float, float]]) -> pl.DataFrame:
    return conform("bbo", pl.DataFrame({
        "ts_ns": [r[0] for r in rows], "local_ns": [r[0] for r in rows], "venue": "v", "coin": "C",
        "bid_px": [r[1] for r in rows], "bid_sz": 1.0, "ask_px": [r[2] for r in rows], "ask_sz": 1.0}))


def trades(rows: list[tuple[int, int, float, float]]) -> pl.DataFrame:
    return conform("trades", pl.DataFrame({
        "ts_ns": [r[0] for r in rows], "local_ns": [r[0] for r in rows], "venue": "v", "coin": "C",
        "side": [r[1] for r in rows], "px": [r[2] for r in rows], "sz": [r[3] for r in rows],
        "trade_id": [str(i) for i in range(len(rows))]}))


def book(rows: list[tuple[int, list, list, list, list]]) -> pl.DataFrame:
    return conform("book", pl.DataFrame({
        "ts_ns": [r[0] for r in rows], "local_ns": [r[0] for r in rows], "venue": "v", "coin": "C",
        "bid_px": [r[1] for r in rows], "bid_sz": [r[2] for r in rows],
        "ask_px": [r[3] for r in rows], "ask_sz": [r[4] for r in rows]},
        schema_overrides={k: pl.List(pl.Float64) for k in ("bid_px", "bid_sz", "ask_px", "ask_sz")}))


def utc(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()) * NS


# ------------------------------------------------------------------------------------------ spread

def test_spread_stats_hand_computed():
    # mid 100 everywhere; spreads 2, 5, 10, 20 bps
    s = q.spread_stats(bbo([(1, 99.99, 100.01), (2, 99.975, 100.025), (3, 99.95, 100.05), (4, 99.9, 100.1),
                            (5, 0.0, 100.0)]))  # a one-sided quote (bid 0) is not a quote
    assert s["count"] == 4
    assert s["mean"] == A(9.25) and s["median"] == A(7.5)
    assert s["p90"] == A(17.0) and s["p95"] == A(18.5) and s["p99"] == A(19.7)
    assert s["share_le_5bps"] == 0.5 and s["crossed"] == 0
    empty = q.spread_stats(bbo([]))
    assert empty["count"] == 0 and empty["median"] is None


# ------------------------------------------------------------------------------------------- depth

BOOK1 = (1, [99.99, 99.97, 99.90], [1.0, 2.0, 3.0], [100.01, 100.04, 100.5], [1.0, 2.0, 4.0])


def test_depth_bands_hand_computed():
    # mid 100: bid levels at 1, 3, 10 bps; ask levels at 1, 4, 50 bps (band edges are inclusive)
    m = q.depth_matrix(book([BOOK1]))
    assert m["bid_2"][0] == A(99.99) and m["ask_2"][0] == A(100.01)
    assert m["bid_5"][0] == A(99.99 + 199.94) and m["ask_5"][0] == A(100.01 + 200.08)
    assert m["bid_10"][0] == A(99.99 + 199.94 + 299.7) and m["ask_10"][0] == A(300.09)
    assert m["ask_50"][0] == A(300.09 + 402.0)
    assert not m["cut_bid_2"][0] and m["cut_bid_10"][0] and m["cut_ask_50"][0] and not m["cut_ask_25"][0]


def test_depth_stats_quantiles_ratio_and_ragged_rows():
    doubled = (2, BOOK1[1], [2 * x for x in BOOK1[2]], BOOK1[3], [2 * x for x in BOOK1[4]])
    one_sided = (3, [99.0], [1.0], [], [])
    d = q.depth_stats(book([BOOK1, doubled, one_sided]))
    assert d["snapshots"] == 2
    b2 = d["2"]["both"]
    assert b2["median"] == A(300.0) and b2["p5"] == A(210.0) and b2["p95"] == A(390.0)
    assert d["5"]["bid_ask_ratio"] == A(299.93 / 300.09)
    assert d["2"]["truncated_share"] == 0.0 and d["50"]["truncated_share"] == 1.0
    short = q.depth_stats(book([(1, [99.99], [1.0], [100.01, 100.02], [1.0, 1.0])]))
    assert short["2"]["ask"]["median"] == A(200.03)


# ---------------------------------------------------------------------------------------- slippage

QUOTES = bbo([(10, 99.99, 100.01), (20, 100.09, 100.11)])  # mids 100, 100.1
TRADES = trades([
    (5, 1, 100.0, 1.0),        # before any quote: unmatched
    (10, 1, 100.01, 1.0),      # same instant as the first quote: that quote may be its effect → unmatched
    (15, 1, 100.01, 5.0),      # +1 bps, 500.05 USD
    (20, -1, 99.99, 10.0),     # priced off the t=10 quote (strictly before): +1 bps, 999.9 USD
    (25, -1, 100.2, 10.0),     # sold above mid: −9.99 bps, 1,002 USD
    (30, 1, 100.7, 100.0),     # +59.94 bps, 10,070 USD
    (40, 1, 100.1, 1000.0),    # 0 bps, 100,100 USD
])


def test_slippage_asof_and_sign():
    f = q.slippage_frame(TRADES, QUOTES)
    assert f["mid"].to_list()[:4] == [None, None, A(100.0), A(100.0)]
    s = f["slippage_bps"].to_list()
    assert s[2] == A(1.0) and s[3] == A(1.0)
    assert s[4] == A(-0.1 / 100.1 * 1e4) and s[5] == A(0.6 / 100.1 * 1e4) and s[6] == A(0.0, abs=1e-9)
    incl = q.slippage_frame(TRADES, QUOTES, exact_matches=True)
    assert incl["mid"].to_list()[1] == A(100.0) and incl["mid"].to_list()[3] == A(100.1)


def test_slippage_stats_and_buckets():
    st = q.slippage_stats(TRADES, QUOTES)
    assert st["count"] == 5 and st["unmatched"] == 2
    assert st["median_abs"] == A(1.0) and st["median"] == A(1.0)
    assert st["share_within_5bps"] == A(0.6) and st["share_within_10bps"] == A(0.8)
    assert st["count_above_50bps"] == 1
    assert st["p99_abs"] == A(np.percentile([1, 1, 9.99001, 59.94006, 0], 99), rel=1e-4)
    by = st["by_notional"]
    assert [by[k]["count"] for k in ("lt_1k", "1k_10k", "10k_50k", "gt_50k")] == [2, 1, 1, 1]
    assert by["10k_50k"]["median_abs"] == A(59.94006, rel=1e-5) and by["gt_50k"]["count_above_50bps"] == 0
    aged = q.slippage_stats(TRADES, QUOTES, max_quote_age_ns=12)
    assert aged["count"] == 4 and aged["unmatched"] == 3  # t=40 is 20 ns after its quote


def test_bucket_boundaries_lower_bound_inclusive():
    n = np.array([0.0, 999.99, 1000.0, 9999.99, 10000.0, 49999.99, 50000.0, 1e9])
    assert q.bucket_of(n).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_trade_size_stats():
    st = q.trade_size_stats(TRADES)
    notional = [100.0, 100.01, 500.05, 999.9, 1002.0, 10070.0, 100100.0]
    assert st["count"] == 7 and st["total_notional"] == A(sum(notional))
    assert st["median_notional"] == A(999.9) and st["mean_notional"] == A(sum(notional) / 7)
    assert st["buy_share"] == A(5 / 7)
    assert st["by_notional"]["lt_1k"] == {"count": 4, "notional": A(100 + 100.01 + 500.05 + 999.9)}


# ------------------------------------------------------------------------------------------- basis

def test_basis_grid_thresholds_and_reversion():
    a = (np.array([0, 2 * NS, 4 * NS]), np.array([101.0, 102.0, 100.0]))
    b = (np.array([0, 1 * NS]), np.array([100.0, 100.0]))
    g, basis = q.basis_series(a, b)  # common span [0, 1 s] only: b ends at 1 s
    assert g.tolist() == [0, NS] and basis.tolist() == A([100.0, 100.0])
    b = (np.array([0, 4 * NS]), np.array([100.0, 100.0]))
    g, basis = q.basis_series(a, b)
    assert basis.tolist() == A([100.0, 100.0, 200.0, 200.0, 0.0])
    st = q.basis_stats(g, basis, thresholds=(50, 150, 250))
    assert st["mean"] == A(120.0) and st["max"] == A(200.0) and st["min"] == A(0.0) and st["samples"] == 5
    assert st["time_above"]["50"] == {"seconds": 4.0, "share": A(0.8)}
    assert st["time_above"]["150"]["seconds"] == 2.0
    assert st["time_to_revert_s"]["50"] == {"episodes": 1, "open_at_end": 0, "median": 4.0, "mean": 4.0, "max": 4.0}
    assert st["time_to_revert_s"]["250"]["episodes"] == 0 and st["time_to_revert_s"]["250"]["median"] is None
    st2 = q.basis_stats(np.arange(4) * NS, np.array([60.0, 0.0, 60.0, 60.0]), thresholds=(50,))
    assert st2["time_to_revert_s"]["50"] == {"episodes": 2, "open_at_end": 1, "median": 1.0, "mean": 1.0, "max": 1.0}
    none = q.basis_stats(np.empty(0), np.empty(0), reason="no overlap")
    assert none == {"samples": 0, "reason": "no overlap"}


# ---------------------------------------------------------------------------------------- sessions

def test_weekend_window():
    w = q.Weekend()
    ts = np.array([utc("2024-08-09T23:59:59"), utc("2024-08-10T00:00:00"), utc("2024-08-11T23:59:59"),
                   utc("2024-08-12T00:00:00"), utc("2024-08-14T12:00:00")])
    assert w.contains(ts).tolist() == [False, True, True, False, False]
    metals = q.Weekend(start_dow=4, start_hour=22, end_dow=6, end_hour=23)  # Fri 22:00 → Sun 23:00
    ts = np.array([utc("2024-08-09T21:59:59"), utc("2024-08-09T22:00:00"), utc("2024-08-11T22:59:59"),
                   utc("2024-08-11T23:00:00")])
    assert metals.contains(ts).tolist() == [False, True, True, False]
    assert w.windows(utc("2024-08-09T00:00:00"), utc("2024-08-13T00:00:00")) == [
        (utc("2024-08-10T00:00:00"), utc("2024-08-12T00:00:00"))]


def test_session_bars_weekend_vs_weekday():
    fri23 = utc("2024-08-09T23:00:00")
    sat0 = utc("2024-08-10T00:00:00")
    ts = np.arange(fri23, utc("2024-08-10T01:00:00") + 1, 60 * NS)
    k = (ts - sat0) // (300 * NS)
    mid = np.where(ts < sat0, 100.0, 100.0 * np.exp(0.001 * k))
    quotes = bbo([(int(t), m - 0.01, m + 0.01) for t, m in zip(ts, mid)])
    tr = [(fri23 + i * 300 * NS + NS, 1, 100.0, 10.0) for i in range(12)]          # 1,000 USD per weekday bar
    tr += [(sat0 + i * 300 * NS + NS, 1, 100.0, 20.0) for i in range(1, 12)]       # 2,000 USD, bars 1..11
    st = q.session_stats(trades(tr), quotes)
    wd, we = st["weekday"], st["weekend"]
    assert wd["bars"] == 12 and we["bars"] == 12
    assert wd["mean_notional"] == A(1000.0) and we["mean_notional"] == A(2000 * 11 / 12)
    assert wd["vol_5m_bps_equal"] == A(0.0, abs=1e-9)
    assert we["vol_5m_bps_equal"] == A(10 * math.sqrt(11 / 12), rel=1e-6)
    assert we["vol_5m_bps_notional"] == A(10.0, rel=1e-6)
    assert st["ratios"]["mean_notional"] == A(11 / 6) and st["ratios"]["vol_5m_bps_equal"] is None
    short = q.session_stats(trades([]), bbo([(fri23, 99.0, 101.0), (fri23 + 20 * NS, 99.0, 101.0)]))
    assert short["ratios"] is None and "no complete 5-minute bar" in short["reason"]


def test_reopen_test():
    fri, mon = utc("2024-08-10T00:00:00"), utc("2024-08-12T00:00:00")
    week = 7 * 86400 * NS
    bench = bbo([(fri - NS, 99.99, 100.01), (mon + NS, 109.99, 110.01),                    # close 100 → reopen 110
                 (fri + week - NS, 99.99, 100.01), (mon + week + NS, 99.99, 100.01)])  # close 100 → reopen 100
    venue = bbo([(fri - NS, 99.99, 100.01), (mon - 5 * NS, 107.99, 108.01),
                 (fri + week + NS, 99.99, 100.01), (mon + week - NS, 104.99, 105.01), (mon + week + NS, 99, 101)])
    r = q.reopen_test(venue, bench)
    assert r["weekends"] == 2 and r["share"] == 0.5
    assert [d["closer"] for d in r["details"]] == [True, False]
    assert r["details"][0]["pre_open"] == A(108.0) and r["details"][0]["reopen"] == A(110.0)
    none = q.reopen_test(bbo([(fri + NS, 99, 101), (fri + 2 * NS, 99, 101)]))
    assert none["share"] is None and "no complete weekend" in none["reason"]


# ----------------------------------------------------------------------------------------- regimes

def test_regime_parse_and_ratios():
    r = q.Regime.parse("crash=2025-04-03T00:00..2025-04-05")
    assert (r.name, r.start_ns, r.end_ns) == ("crash", utc("2025-04-03T00:00:00"), utc("2025-04-05T00:00:00"))
    assert q.Regime.parse("x=1..5") == q.Regime("x", 1, 5)
    with pytest.raises(ValueError):
        q.Regime.parse("nope")
    ratios = q.regime_ratios({
        "calm": {"spread_bps": {"mean": 2.0, "median": 1.0}, "trade_size": {"count": 10}, "span": {"hours": 1.0}},
        "crash": {"spread_bps": {"mean": 6.0, "median": 4.0}, "trade_size": {"count": 10}, "span": {"hours": 0.5}},
    }, "calm")
    assert ratios["crash"]["spread_bps.mean"] == 3.0 and ratios["crash"]["spread_bps.median"] == 4.0
    assert ratios["crash"]["trade_size.count"] == 2.0  # per hour
    assert ratios["crash"]["depth_usd.5.both.median"] is None


def test_compute_metrics_layout_on_small_frames():
    frames = {"bbo": QUOTES, "trades": TRADES, "book": book([BOOK1])}
    bench = {"bbo": bbo([(0, 99.98, 100.0), (50, 99.98, 100.0)]).with_columns(venue=pl.lit("b"), coin=pl.lit("CUSDT"))}
    m, _ = compute_metrics(frames, bench, ["early=0..21", "late=21..100"], basis_step_s=1e-8)
    entry = m["venues"]["v"]["C"]
    assert entry["all"]["spread_bps"]["median"] == A((2.0 + 0.02 / 100.1 * 1e4) / 2)
    assert entry["all"]["depth_usd"]["5"]["both"]["median"] == A(299.93 + 300.09)
    assert entry["all"]["slippage_bps"]["median_abs"] == A(1.0)
    assert entry["all"]["basis"]["benchmark"] == "b/CUSDT"
    assert entry["all"]["basis"]["vs_benchmark"]["samples"] > 0
    assert entry["regimes"]["early"]["trade_size"]["count"] == 4
    assert set(entry["regime_ratios"]) == {"late"}
    assert base_asset("BTCUSDT") == base_asset("BTCUSD_PERP") == base_asset("BTC-PERP") == base_asset("BTC") == "BTC"

"""The agents' calibration targets (issue 19): ``perpbox.agents.calibration`` and the numbers it
stored in ``agents/data/calibration.toml``.

* the stored numbers are what :func:`calibration_tables` computes from the captures in
  ``../shared/data/hftbacktest`` (to the 6 significant digits stored);
* a few of them again by plain code on the raw lines (Hyperliquid's median spread and ±1 bps depth,
  the trade counts, Binance BTCUSDT's median trade size, buy share and bookTicker spread);
* the statistics and :func:`compare` on small hand-made markets (no data needed).

The captures are read in place, never copied; the tests that read them skip when they are absent
(a failure under ``PERPBOX_NO_SKIPS=1``, see ``tests/conftest.py``).
"""

from __future__ import annotations

import gzip
import json
import math
import statistics
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from perpbox.agents import calibration as cal
from perpbox.agents.calibration import BookSnapshot, Capture, Trade
from shared_data import SHARED_DATA

DATA = SHARED_DATA / "hftbacktest"
HL = DATA / "hyperliquid_btcusd_20250126.gz"
BTC = DATA / "usdm_btcusdt_20240808.gz"
needs_data = pytest.mark.skipif(not all((DATA / s.file).exists() for s in cal.SOURCES),
                                reason="shared data missing: ../shared/data/hftbacktest (README: ../shared)")


@pytest.fixture(scope="module")
def captures() -> dict[str, Capture]:
    return cal.read_sources(DATA)


@pytest.fixture(scope="module")
def stored() -> dict[str, Any]:
    return cal.load_calibration()


def _raw(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt") as fh:
        return [json.loads(line.split(" ", 1)[1]) for line in fh]


# --------------------------------------------------------------------------------------------------
# (a) the stored numbers regenerate


def _diff(stored: Any, fresh: Any, where: str, out: list[str]) -> None:
    if isinstance(fresh, dict):
        if not isinstance(stored, dict) or stored.keys() != fresh.keys():
            out.append(f"{where}: keys {sorted(stored) if isinstance(stored, dict) else stored} != {sorted(fresh)}")
            return
        for k in fresh:
            _diff(stored[k], fresh[k], f"{where}.{k}", out)
    elif isinstance(fresh, float):
        want = cal.round_sig(fresh)
        if not (isinstance(stored, float) and (stored == want or (math.isnan(stored) and math.isnan(want)))):
            out.append(f"{where}: stored {stored!r}, computed {fresh!r} (rounded {want!r})")
    elif stored != fresh or type(stored) is not type(fresh):
        out.append(f"{where}: stored {stored!r}, computed {fresh!r}")


@needs_data
def test_stored_numbers_are_what_the_captures_give(captures, stored):
    fresh = cal.calibration_tables(DATA, captures)
    problems: list[str] = []
    for name, table in fresh.items():
        _diff(stored.get(name), table, name, problems)
    assert not problems, ("calibration.toml is stale; regenerate with "
                          "`.venv/bin/python -m perpbox.agents.calibration ../shared/data/hftbacktest --write`:\n"
                          + "\n".join(problems))
    assert stored["generated_by"] == "perpbox.agents.calibration.build_calibration"
    assert stored["references"] == list(cal.REFERENCES)
    assert stored["method"] == cal.METHOD


def test_references_load_as_market_stats(stored):
    hl = cal.load_reference("hyperliquid_btc")
    assert hl.spread is not None and hl.depth is not None and hl.trades is not None and hl.prints is not None
    assert stored["hyperliquid_btc"]["spread"]["source"] == "hyperliquid_btcusd_20250126"
    assert stored["hyperliquid_btc"]["trades"]["source"] == "usdm_btcusdt_20240808"  # 64 HL fills are too few
    assert hl.trades == cal.load_reference("binance_btcusdt").trades
    own = cal.load_reference("hyperliquid_btc", own_trades=True)
    assert own.trades is not None and own.trades.count == 64 and own.spread == hl.spread
    assert [b.bps for b in hl.depth.bands] == list(cal.BANDS_BPS)
    # Hyperliquid's 20 levels reach ~2.4 bps: ±1, ±2 whole, ±5 and out lower bounds
    assert [b.truncated for b in hl.depth.bands] == [False, False, True, True, True, True]
    assert repr(cal.MarketStats.from_dict(hl.to_dict())) == repr(hl)  # repr: nan != nan
    with pytest.raises(KeyError, match="hyperliquid_btc"):
        cal.load_reference("nope")


# --------------------------------------------------------------------------------------------------
# (b) a few numbers by independent code on the raw lines


@needs_data
def test_hyperliquid_by_hand(captures, stored):
    msgs = _raw(HL)
    books = [m["data"] for m in msgs if m["channel"] == "l2Book"]
    spreads, bid1 = [], []
    for b in books:
        bid, ask = float(b["levels"][0][0]["px"]), float(b["levels"][1][0]["px"])
        mid = (bid + ask) / 2
        spreads.append((ask - bid) / mid * 1e4)
        bid1.append(sum(float(lv["px"]) * float(lv["sz"]) for lv in b["levels"][0]
                        if float(lv["px"]) >= mid * (1 - 1e-4)))
    spread = stored["hyperliquid_btc"]["spread"]
    assert len(books) == 46 == spread["samples"]
    assert statistics.median(spreads) == pytest.approx(spread["median_bps"], rel=1e-5)
    assert spread["median_bps"] == pytest.approx(1 / 105_055.5 * 1e4, rel=1e-5)  # one $1 tick
    assert statistics.median(bid1) == pytest.approx(stored["hyperliquid_btc"]["depth"]["within_1bps"]["bid_usd"],
                                                    rel=1e-5)
    assert max(len(b["levels"][0]) for b in books) == 20
    trade_msgs = [m["data"] for m in msgs if m["channel"] == "trades"]
    tids = {t["tid"] for d in trade_msgs for t in d}
    assert len(trade_msgs) == 9 and len(tids) == 64 == stored["hyperliquid_btc"]["hl_trades"]["count"]
    assert len(captures["hyperliquid_btcusd_20250126"].trades) == 64
    first_book = min(b["time"] for b in books)
    assert sum(t["time"] < first_book for t in trade_msgs[0]) == 30 == len(trade_msgs[0])  # the subscription backlog


@needs_data
def test_binance_btc_by_hand(captures, stored):
    usd, buys, spreads = [], 0, []
    with gzip.open(BTC, "rt") as fh:
        for line in fh:
            raw = line.split(" ", 1)[1]
            if '"e":"trade"' in raw:
                d = json.loads(raw)["data"]
                usd.append(float(d["p"]) * float(d["q"]))
                buys += d["m"] is False
            elif '"e":"bookTicker"' in raw:
                d = json.loads(raw)["data"]
                bid, ask = float(d["b"]), float(d["a"])
                spreads.append((ask - bid) / ((ask + bid) / 2) * 1e4)
    trades = stored["binance_btcusdt"]["trades"]
    assert len(usd) == 21313 == trades["count"] == len(captures["usdm_btcusdt_20240808"].trades)
    assert statistics.median(usd) == pytest.approx(trades["usd_p50"], rel=1e-5)
    assert buys / len(usd) == pytest.approx(trades["buy_share_count"], rel=1e-5)
    assert statistics.fmean(usd) == pytest.approx(trades["usd_mean"], rel=1e-5)
    # the rebuilt book sampled each second against every bookTicker: both at one 0.1 tick
    assert len(spreads) == 66089
    assert statistics.median(spreads) == pytest.approx(stored["binance_btcusdt"]["spread"]["median_bps"], rel=0.01)
    src = stored["sources"]["usdm_btcusdt_20240808"]
    assert src["count_depth_gaps"] == 0 and src["count_depth_applied"] == 6547 and src["book_snapshots"] == 345


@needs_data
def test_binance_books_are_sorted_and_uncrossed(captures):
    for key in ("usdm_btcusdt_20240808", "usdm_ethusdt_20240808"):
        books = captures[key].books
        assert all(b.bids[0][0] < b.asks[0][0] for b in books)
        assert all(all(x[0] > y[0] for x, y in zip(b.bids, b.bids[1:])) for b in books[::50])
        assert all(isinstance(b.bids[0][0], Decimal) for b in books)
        assert [b.ts_ms - books[0].ts_ms for b in books[:3]] == [0, 1000, 2000]


# --------------------------------------------------------------------------------------------------
# (c) the statistics and compare on hand-made markets


def _book(ts: int, bid: float, ask: float, levels: int = 20, sz: float = 1.0) -> BookSnapshot:
    return BookSnapshot(ts, [(bid - i, sz) for i in range(levels)], [(ask + i, sz) for i in range(levels)])


def test_stats_of_a_small_market_by_hand():
    books = [BookSnapshot(0, [(Decimal(99), Decimal(1)), (Decimal(98), Decimal(2))],
                          [(Decimal(101), Decimal(1)), (Decimal(102), Decimal(1))])]
    trades = [Trade(0, 100, 1, "buy"), Trade(0, 100, 2, "buy"), Trade(500, 100, 1, "sell"), Trade(2000, 100, 4, "buy")]
    s = cal.market_stats(Capture("test", "X", "hand", books, trades), bands_bps=(50, 100, 300))
    assert s.spread is not None and s.spread.median_bps == pytest.approx(200.0)
    assert s.depth is not None
    b50, b100, b300 = s.depth.bands
    assert (b50.bid_usd, b50.ask_usd, b50.truncated) == (0.0, 0.0, False)
    assert (b100.bid_usd, b100.ask_usd, b100.truncated) == (99.0, 101.0, False)  # 99 and 101 are exactly ±1 %
    assert (b300.bid_usd, b300.ask_usd, b300.truncated) == (99 + 196.0, 101 + 102.0, True)  # book ends at ±2 %
    assert math.isnan(b300.bid_usd_known) and s.depth.reach_bid_bps == pytest.approx(200.0)
    t, p = s.trades, s.prints
    assert t is not None and p is not None
    assert (t.count, t.usd_p50, t.span_s, t.per_s) == (4, 150.0, 2.0, 1.5)
    assert (t.buy_share_count, t.buy_share_notional, t.gap_p50_s) == (0.75, 0.875, 0.5)
    assert t.ln_usd_mu == pytest.approx(statistics.fmean(math.log(x) for x in (100, 200, 100, 400)))
    assert (p.count, p.usd_p50, p.buy_share_count) == (3, 300.0, 2 / 3)  # the first two fills are one print


def test_compare_passes_the_reference_and_flags_a_wide_spread():
    ref = cal.load_reference("hyperliquid_btc")
    assert cal.compare(ref, ref) == []
    assert ref.spread is not None
    wide = replace(ref, spread=replace(ref.spread, median_bps=3.0, p90_bps=3.0))
    problems = cal.compare(wide, ref)
    assert len(problems) == 2 and all(p.startswith("spread") and "3 bps" in p for p in problems), problems


def test_compare_flags_a_generated_market_like_todays_agents():
    """A book quoted 3 bps wide around 105,000 with $1 levels of 1 BTC: the spread is flagged."""
    books = [_book(i * 500, 105_000 - 15.75, 105_000 + 15.75) for i in range(50)]
    trades = [Trade(i * 1000, 105_000, 0.01, "buy" if i % 2 else "sell") for i in range(100)]
    gen = cal.market_stats(Capture("sim", "BTC", "generated", books, trades))
    assert gen.spread is not None and gen.spread.median_bps == pytest.approx(3.0, rel=1e-3)
    problems = cal.compare(gen, cal.load_reference("hyperliquid_btc"))
    assert any(p.startswith("spread median") for p in problems), problems
    assert any(p.startswith("trades per second") for p in problems)  # 1/s against Binance's 62/s


def test_compare_depth_lower_bounds_and_buy_share():
    ref = cal.load_reference("hyperliquid_btc")
    assert ref.depth is not None and ref.trades is not None
    band10 = ref.depth.band(10)
    assert band10 is not None and band10.truncated

    def with_band(stats: cal.MarketStats, bps: float, factor: float, known: float = 1.0) -> cal.MarketStats:
        assert stats.depth is not None
        bands = tuple(replace(b, bid_usd=b.bid_usd * factor, ask_usd=b.ask_usd * factor, bid_known_share=known,
                              ask_known_share=known, truncated=known < 1) if b.bps == bps else b
                      for b in stats.depth.bands)
        return replace(stats, depth=replace(stats.depth, bands=bands))

    # the reference's ±10 bps is a lower bound: far more passes, far less does not
    assert cal.compare(with_band(ref, 10, 10.0), ref) == []
    thin = cal.compare(with_band(ref, 10, 0.1), ref)
    assert len(thin) == 2 and all("depth ±10 bps" in p and "lower bound" in p for p in thin), thin
    # ±1 bps is whole: too deep is flagged too; a generated lower bound is only held from above
    assert len(cal.compare(with_band(ref, 1, 10.0), ref)) == 2
    assert cal.compare(with_band(ref, 1, 0.1, known=0.5), ref) == []
    assert len(cal.compare(with_band(ref, 1, 10.0, known=0.5), ref)) == 2
    skewed = replace(ref, trades=replace(ref.trades, buy_share_count=ref.trades.buy_share_count + 0.2))
    assert [p.split(":")[0] for p in cal.compare(skewed, ref)] == ["trades buy share"]
    assert cal.compare(skewed, ref, cal.Tolerances(buy_share_abs=None)) == []


def _write(path: Path, lines: list[dict[str, Any]]) -> Path:
    with gzip.open(path, "wt") as fh:
        for i, msg in enumerate(lines):
            fh.write(f"{i} {json.dumps(msg)}\n")
    return path


def _diff_msg(U: int, u: int, pu: int, T: int, b: list[list[str]], a: list[list[str]]) -> dict[str, Any]:
    return {"stream": "x@depth@0ms", "data": {"e": "depthUpdate", "E": T, "T": T, "s": "X", "U": U, "u": u, "pu": pu,
                                              "b": b, "a": a}}


def test_binance_reader_rebuilds_and_samples_the_book(tmp_path):
    snap = {"lastUpdateId": 10, "bids": [["100.0", "1"], ["99.0", "2"]], "asks": [["101.0", "1"], ["103.0", "5"]]}
    path = _write(tmp_path / "c.gz", [
        _diff_msg(1, 5, 0, 900, [["98.0", "7"]], []),            # before the snapshot (u < 10): dropped
        _diff_msg(6, 11, 5, 1000, [["100.0", "3"]], []),        # bridges lastUpdateId 10
        snap,                                                  # arrives after both (buffered)
        _diff_msg(12, 12, 11, 1500, [], [["101.0", "0"], ["102.0", "4"]]),
        {"stream": "x@trade", "data": {"e": "trade", "T": 1600, "s": "X", "p": "102.0", "q": "0.5", "m": True}},
        _diff_msg(13, 13, 12, 2100, [["100.5", "1"]], [["110.0", "9"]]),  # 110 is past the snapshot's 103
        _diff_msg(14, 14, 13, 2600, [], []),
        _diff_msg(16, 16, 99, 3500, [], []),  # pu != 14: a gap, nothing sampled from 2600 on
    ])
    cap = cal.read_binance_usdm_capture(path, sample_ms=500)
    assert cap.counts["depth_dropped_before_snapshot"] == 1 and cap.counts["depth_gaps"] == 1
    assert [b.ts_ms for b in cap.books] == [1000, 1500, 2000, 2500]
    first, third, fourth = cap.books[0], cap.books[2], cap.books[3]
    assert first.bids == ((Decimal(100), Decimal(3)), (Decimal(99), Decimal(2)))
    assert third.asks == ((Decimal(102), Decimal(4)), (Decimal(103), Decimal(5)))
    assert fourth.asks == third.asks and fourth.ask_known_to == Decimal(103)  # 110 is not listed
    assert fourth.bids[0] == (Decimal("100.5"), Decimal(1)) and fourth.bid_known_to == Decimal(99)
    assert cap.trades == [Trade(1600, Decimal("102.0"), Decimal("0.5"), "sell")]

"""The market-quality report on the real captures: Binance USDⓈ-M BTCUSDT and ETHUSDT (2024-08-08,
~345 s each), Binance spot BTCUSDT as the basis benchmark, and Hyperliquid BTC (2025-01-26, ~25 s).

The pinned figures were computed once from the data and checked for plausibility: a one-tick
spread is 0.1 / 61,800 = 0.0162 bps on BTCUSDT, 0.01 / 2,681 = 0.0373 bps on ETHUSDT and
1 / 105,055 = 0.0952 bps on Hyperliquid BTC, and the medians are exactly that (the books sit at one
tick); the USDⓈ-M perp traded ~3.6 bps under spot.

The report is run on the raw capture files, as ``perpbox report --venue-data FILE`` does, so it
keeps the whole book each capture holds (it used to keep 20 levels, which on Binance span under
±2 bps: ETHUSDT's ±5 bps depth came out at $327k against ~$3M in the book). The depth figures are
checked against a plain-Python rebuild of the book from the raw file (``_independent_depth``).
"""

from __future__ import annotations

import gzip
import json
import statistics

import pytest

from perpbox.analytics.report import DepthTruncatedWarning, build_report
from shared_data import SHARED_DATA

DATA = SHARED_DATA / "hftbacktest"
FILES = ["usdm_btcusdt_20240808.gz", "usdm_ethusdt_20240808.gz", "hyperliquid_btcusd_20250126.gz"]
pytestmark = pytest.mark.skipif(not (DATA / FILES[0]).exists(),
                                reason="shared data missing: ../shared/data/hftbacktest (README: ../shared)")
A = pytest.approx


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    with pytest.warns(DepthTruncatedWarning) as caught:
        metrics = build_report([DATA / f for f in FILES], [DATA / "spot_btcusdt_20240808.gz"], out=out)
    return metrics, out, [str(w.message) for w in caught]


def _independent_depth(name: str, band_bps: float = 5.0) -> tuple[float, float, int]:
    """(median both-sides depth within ±band of mid, share of books cut inside the band, books)
    from the raw file in plain Python: the REST snapshot, then every depth diff in file order
    (those ending before the snapshot dropped; the files have no sequence gaps). The book is known
    out to the snapshot's deepest bid and ask (past them only changed levels are known); a side
    whose best price is past that edge counts its best level and is cut."""
    snap, diffs = None, []
    with gzip.open(DATA / name, "rt") as fh:
        for line in fh:
            msg = json.loads(line.split(" ", 1)[1])
            data = msg.get("data", msg)
            if "lastUpdateId" in data:
                snap = data
            elif data.get("e") == "depthUpdate":
                diffs.append(data)
    bids = {float(p): float(q) for p, q in snap["bids"]}
    asks = {float(p): float(q) for p, q in snap["asks"]}
    bid_edge, ask_edge = min(bids), max(asks)
    both, cut = [], []
    for d in diffs:
        if d["u"] < snap["lastUpdateId"]:
            continue
        for side, updates in ((bids, d["b"]), (asks, d["a"])):
            for p, q in updates:
                if float(q) == 0:
                    side.pop(float(p), None)
                else:
                    side[float(p)] = float(q)
        kb = {p: q for p, q in bids.items() if p >= bid_edge} or {max(bids): bids[max(bids)]}
        ka = {p: q for p, q in asks.items() if p <= ask_edge} or {min(asks): asks[min(asks)]}
        mid = (max(kb) + min(ka)) / 2
        lo, hi = mid * (1 - band_bps / 1e4), mid * (1 + band_bps / 1e4)
        both.append(sum(p * q for p, q in kb.items() if p >= lo) + sum(p * q for p, q in ka.items() if p <= hi))
        cut.append(min(kb) >= lo or max(ka) <= hi)
    return statistics.median(both), sum(cut) / len(cut), len(both)


def test_report_files_and_documented_keys(report):
    _, out, _ = report
    page = out.read_text()
    assert "binance-usdm/BTCUSDT" in page and "hyperliquid/BTC" in page
    assert "Plotly.newPlot" in page and '<script src="http' not in page  # plotly.js embedded: opens offline
    on_disk = json.loads(out.with_name("metrics.json").read_text())
    assert on_disk["venues"].keys() == {"binance-usdm", "hyperliquid"}
    a = on_disk["venues"]["binance-usdm"]["BTCUSDT"]["all"]
    for key in ("count", "mean", "median", "p90", "p95", "p99", "share_le_5bps"):
        assert key in a["spread_bps"]
    for band in ("2", "5", "10", "25", "50"):
        for side in ("bid", "ask", "both"):
            assert set(a["depth_usd"][band][side]) == {"median", "p5", "p95", "mean"}
        assert "bid_ask_ratio" in a["depth_usd"][band]
    for key in ("median_abs", "p95", "p99", "share_within_5bps", "share_within_10bps", "count_above_50bps"):
        assert key in a["slippage_bps"]
        for bucket in ("lt_1k", "1k_10k", "10k_50k", "gt_50k"):
            assert key in a["slippage_bps"]["by_notional"][bucket]
    assert set(a["trade_size"]) >= {"count", "total_notional", "median_notional", "mean_notional"}
    for key in ("mean", "p5", "p95", "max", "time_above", "time_to_revert_s"):
        assert key in a["basis"]["vs_benchmark"]
    assert {"weekend", "weekday", "ratios"} <= set(a["sessions"]) and "share" in a["reopen_test"]


def test_binance_usdm_btcusdt_numbers(report):
    a = report[0]["venues"]["binance-usdm"]["BTCUSDT"]["all"]
    assert a["spread_bps"]["count"] == 66089
    assert a["spread_bps"]["median"] == A(0.1 / 61700 * 1e4, rel=0.01)
    assert a["spread_bps"]["median"] == A(0.016207, rel=1e-4)
    assert a["spread_bps"]["mean"] == A(0.03311, rel=1e-3)
    median, cut, books = _independent_depth("usdm_btcusdt_20240808.gz")
    assert a["depth_usd"]["snapshots"] == books == 6547
    assert a["depth_usd"]["5"]["both"]["median"] == A(median, rel=1e-9)
    assert median == A(6_698_461, rel=1e-6)  # 20 levels gave $1,071,335
    # BTC fell ~24 bps during the capture, down to the REST snapshot's deepest bid: from there on
    # the capture cannot see the whole bid side, and the report says so
    assert a["depth_usd"]["5"]["truncated_share"] == A(cut, abs=1e-12) and 0.1 < cut < 0.3
    assert a["depth_usd"]["50"]["truncated_share"] == 1.0  # the snapshot covered ±24..28 bps
    s = a["slippage_bps"]
    assert s["count"] == 21313 and s["unmatched"] == 0
    assert s["median_abs"] == A(0.008117, rel=1e-3) and s["p95"] == A(6.882, rel=1e-3)
    assert a["trade_size"]["median_notional"] == A(989.04, rel=1e-4)
    b = a["basis"]["vs_benchmark"]
    assert a["basis"]["benchmark"] == "binance-spot/BTCUSDT"
    assert b["samples"] == 343 and b["mean"] == A(-3.619, rel=1e-3)
    assert b["p5"] == A(-5.269, rel=1e-3) and b["p95"] == A(-1.993, rel=1e-3)


def test_binance_usdm_ethusdt_numbers(report):
    a = report[0]["venues"]["binance-usdm"]["ETHUSDT"]["all"]
    assert a["spread_bps"]["median"] == A(0.037295, rel=1e-4)
    median, cut, books = _independent_depth("usdm_ethusdt_20240808.gz")
    assert a["depth_usd"]["snapshots"] == books
    assert a["depth_usd"]["5"]["both"]["median"] == A(median, rel=1e-9)
    assert 2.9e6 < median < 3.1e6  # about $3M in the book; 20 levels gave $326,780
    assert a["depth_usd"]["5"]["truncated_share"] == cut == 0.0
    assert a["slippage_bps"]["median_abs"] == A(0.018659, rel=1e-3)
    assert a["slippage_bps"]["count"] == 14076
    assert a["basis"]["vs_benchmark"] == {"samples": 0, "reason": "no benchmark for this coin"}


def test_hyperliquid_btc_numbers(report):
    a = report[0]["venues"]["hyperliquid"]["BTC"]["all"]
    assert a["spread_bps"]["count"] == 46 and a["spread_bps"]["median"] == A(1 / 105055.5 * 1e4, rel=1e-4)
    assert a["depth_usd"]["5"]["both"]["median"] == A(6_605_693, rel=1e-4)
    s = a["slippage_bps"]
    # 30 of the 64 trades predate the first book in the capture (the trades channel's first message
    # replays recent history): no prior mid, so unmatched
    assert s["count"] == 34 and s["unmatched"] == 30
    assert s["median_abs"] == A(0.047596, rel=1e-3)
    assert a["basis"]["vs_benchmark"]["samples"] == 0  # the spot capture is from another day
    assert a["sessions"]["ratios"] is None and a["reopen_test"]["share"] is None


def test_truncated_bands_warn_loudly(report):
    metrics, out, caught = report
    assert caught == metrics["warnings"]
    by_pair = {w.split(":", 1)[0]: w for w in metrics["warnings"]}
    # Hyperliquid publishes 20 levels; BTCUSDT's snapshot covers ±24 bps; ETHUSDT's ±49 bps
    assert set(by_pair) == {"binance-usdm/BTCUSDT", "binance-usdm/ETHUSDT", "hyperliquid/BTC"}
    assert "±50 bps in all" in by_pair["binance-usdm/BTCUSDT"]
    eth = metrics["venues"]["binance-usdm"]["ETHUSDT"]["all"]["depth_usd"]
    assert "±5 bps" not in by_pair["binance-usdm/ETHUSDT"]
    assert f"±50 bps in {eth['50']['truncated_share'] * 100:.3g}%" in by_pair["binance-usdm/ETHUSDT"]
    page = out.read_text()
    assert page.count('class="warn"') == 3 and "lower bounds" in page
    assert json.loads(out.with_name("metrics.json").read_text())["warnings"] == metrics["warnings"]

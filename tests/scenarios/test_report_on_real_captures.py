"""The market-quality report on the real captures: Binance USDⓈ-M BTCUSDT and ETHUSDT (2024-08-08,
~345 s each), Binance spot BTCUSDT as the basis benchmark, and Hyperliquid BTC (2025-01-26, ~25 s).

The pinned figures were computed once from the data and checked for plausibility: a one-tick
spread is 0.1 / 61,800 = 0.0162 bps on BTCUSDT, 0.01 / 2,681 = 0.0373 bps on ETHUSDT and
1 / 105,055 = 0.0952 bps on Hyperliquid BTC, and the medians are exactly that (the books sit at one
tick); the USDⓈ-M perp traded ~3.6 bps under spot. The 20-level books span less than ±5 bps on
Binance, so depth within 5 bps is the whole published book there (``truncated_share`` says so).
"""

from __future__ import annotations

import json

import pytest

from perpbox.analytics.report import build_report
from perpbox.venues.captures import load_capture
from perpbox.venues.sources import merge
from shared_data import SHARED_DATA

DATA = SHARED_DATA / "hftbacktest"
FILES = ["usdm_btcusdt_20240808.gz", "usdm_ethusdt_20240808.gz", "hyperliquid_btcusd_20250126.gz"]
pytestmark = pytest.mark.skipif(not (DATA / FILES[0]).exists(), reason="shared data missing")
A = pytest.approx


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    venue = merge(load_capture(DATA / f).frames for f in FILES)
    bench = load_capture(DATA / "spot_btcusdt_20240808.gz").frames
    out = tmp_path_factory.mktemp("report") / "report.html"
    metrics = build_report(venue, bench, out=out)
    return metrics, out


def test_report_files_and_documented_keys(report):
    _, out = report
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
    assert a["depth_usd"]["5"]["both"]["median"] == A(1_071_335, rel=1e-4)
    assert a["depth_usd"]["5"]["truncated_share"] == 1.0
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
    assert a["depth_usd"]["5"]["both"]["median"] == A(326_780, rel=1e-4)
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

"""Capture loader: Binance diff-book rebuild and its U/u/pu checks, bookTicker/trades, Hyperliquid
messages, COIN-M conversion; then the real captures (counts, rebuilt book == bookTicker)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest

from perpbox.venues import captures
from perpbox.venues.captures import load_capture, read_lines
from perpbox.venues.l2book import L2Book, list_to_matrix
from shared_data import SHARED_DATA

DATA = SHARED_DATA / "hftbacktest"


def write_capture(path: Path, messages: list[tuple[int, dict]]) -> Path:
    with gzip.open(path, "wb") as fh:
        for ts, msg in messages:
            fh.write(f"{ts} {json.dumps(msg)}\n".encode())
    return path


def depth(U: int, u: int, pu: int | None, b: list, a: list, T: int = 1_000, s: str = "BTCUSDT") -> dict:
    data = {"e": "depthUpdate", "E": T, "T": T, "s": s, "U": U, "u": u, "b": b, "a": a}
    if pu is not None:
        data["pu"] = pu
    return {"stream": f"{s.lower()}@depth@0ms", "data": data}


SNAP = {"lastUpdateId": 100, "E": 1, "T": 1,
        "bids": [["100.0", "1"], ["99.0", "2"], ["98.0", "3"]],
        "asks": [["101.0", "1"], ["102.0", "2"], ["103.0", "3"]]}


def tops(result) -> list[tuple[list, list]]:
    book = result.frames["book"]
    return list(zip(book["bid_px"].to_list(), book["ask_px"].to_list()))


def test_book_rebuilt_from_snapshot_with_sequence_checks(tmp_path):
    msgs = [
        (1, depth(90, 95, 89, [["97.0", "5"]], [], T=1000)),          # before the snapshot, u < 100: dropped
        (2, depth(96, 101, 95, [["100.0", "0"]], [], T=2000)),        # bridges L=100 (U <= 101 <= u)
        (3, SNAP),                                                   # arrives after those two (buffered)
        (4, depth(102, 104, 101, [["100.5", "4"]], [["101.0", "0"]], T=3000)),
        (5, depth(105, 106, 999, [["90.0", "1"]], [], T=4000)),       # pu != 104: gap, skip
        (6, depth(107, 108, 106, [["91.0", "1"]], [], T=5000)),       # still unsynced: buffered
    ]
    res = load_capture(write_capture(tmp_path / "c.gz", msgs))
    assert res.venue == "binance-usdm"
    assert res.stats["depth_dropped_before_snapshot"] == 1
    assert res.stats["depth_applied"] == 2
    assert res.stats["depth_gaps"] == 1
    assert res.stats["depth_unsynced_at_end"] == 2
    book = res.frames["book"]
    assert book["ts_ns"].to_list() == [2000 * 10**6, 3000 * 10**6]
    assert tops(res) == [([99.0, 98.0], [101.0, 102.0, 103.0]), ([100.5, 99.0, 98.0], [102.0, 103.0])]
    assert book["bid_sz"].to_list()[1] == [4.0, 2.0, 3.0]


def test_gap_resyncs_from_a_later_snapshot(tmp_path):
    snap2 = {"lastUpdateId": 200, "bids": [["50.0", "1"]], "asks": [["51.0", "1"]]}
    msgs = [
        (1, SNAP),
        (2, depth(100, 102, 99, [], [["101.5", "1"]], T=1000)),
        (3, depth(150, 160, 140, [["100.2", "1"]], [], T=2000)),  # gap
        (4, depth(190, 199, 160, [["49.0", "1"]], [], T=2500)),   # buffered, u < 200 → dropped on resync
        (5, snap2),
        (6, depth(200, 205, 199, [["50.5", "2"]], [], T=3000)),   # bridges 200
        (7, depth(206, 207, 205, [], [["51.0", "0"], ["52.0", "1"]], T=4000)),
    ]
    res = load_capture(write_capture(tmp_path / "c.gz", msgs))
    assert res.stats["depth_gaps"] == 1
    assert res.stats["snapshots_used"] == 2
    assert tops(res) == [([100.0, 99.0, 98.0], [101.0, 101.5, 102.0, 103.0]), ([50.5, 50.0], [51.0]),
                         ([50.5, 50.0], [52.0])]


def test_snapshot_too_old_to_bridge_is_a_gap(tmp_path):
    msgs = [(1, depth(150, 160, 140, [["1.0", "1"]], [])), (2, SNAP)]
    res = load_capture(write_capture(tmp_path / "c.gz", msgs))
    assert res.stats["depth_gaps"] == 1
    assert "book" not in res.frames


def test_spot_rule_without_pu(tmp_path):
    msgs = [
        (1, SNAP),
        (2, depth(101, 103, None, [["100.0", "5"]], [], T=1000)),
        (3, depth(104, 104, None, [], [["101.0", "7"]], T=2000)),
        (4, depth(106, 107, None, [], [], T=3000)),  # 106 != 104 + 1: gap
    ]
    res = load_capture(write_capture(tmp_path / "c.gz", msgs))
    assert res.venue == "binance-spot"
    assert res.stats["depth_applied"] == 2 and res.stats["depth_gaps"] == 1
    assert res.frames["book"]["bid_sz"].to_list()[0][0] == 5.0
    assert res.frames["book"]["ask_sz"].to_list()[1][0] == 7.0


def test_depth_limit_and_ties(tmp_path):
    many = {"lastUpdateId": 1, "bids": [[str(100 - i), "1"] for i in range(30)],
            "asks": [[str(101 + i), "1"] for i in range(30)]}
    msgs = [(1, many), (2, depth(1, 2, 0, [], [], T=1))]
    res = load_capture(write_capture(tmp_path / "c.gz", msgs), depth=5)
    bid, ask = tops(res)[0]
    assert bid == [100.0, 99.0, 98.0, 97.0, 96.0] and ask == [101.0, 102.0, 103.0, 104.0, 105.0]


def test_book_ticker_trades_and_aggressor(tmp_path):
    msgs = [
        (10, {"stream": "btcusdt@bookTicker", "data": {"e": "bookTicker", "u": 1, "s": "BTCUSDT", "b": "100.1",
                                                         "B": "2", "a": "100.2", "A": "3", "T": 5, "E": 6}}),
        (11, {"stream": "btcusdt@trade", "data": {"e": "trade", "E": 7, "T": 7, "s": "BTCUSDT", "t": 42,
                                                    "p": "100.2", "q": "0.5", "X": "MARKET", "m": False}}),
        (12, {"stream": "btcusdt@aggTrade", "data": {"e": "aggTrade", "E": 8, "T": 8, "s": "BTCUSDT", "a": 9,
                                                       "p": "100.1", "q": "0.25", "m": True}}),
        (13, {"e": "trade", "E": 9, "T": 9, "s": "BTCUSDT", "t": 43, "p": "100.1", "q": "1", "m": True}),
        (14, {"u": 2, "s": "BTCUSDT", "b": "100.0", "B": "1", "a": "100.3", "A": "1"}),  # bare spot ticker
    ]
    res = load_capture(write_capture(tmp_path / "c.gz", msgs))
    bbo = res.frames["bbo"]
    assert bbo.height == 2
    assert bbo["ts_ns"][0] == 14  # no venue time: the local receive time (and sorted by ts_ns)
    assert bbo.row(1, named=True) | {"venue": None} == {
        "ts_ns": 5_000_000, "local_ns": 10, "venue": None, "coin": "BTCUSDT", "bid_px": 100.1, "bid_sz": 2.0,
        "ask_px": 100.2, "ask_sz": 3.0}
    t = res.frames["trades"]
    assert t["side"].to_list() == [1, -1, -1]  # m=true: buyer is maker → seller-initiated
    assert t["trade_id"].to_list() == ["42", "9", "43"]
    assert t["sz"].to_list() == [0.5, 0.25, 1.0]


def test_coinm_sizes_become_coin_units(tmp_path):
    snap = {"lastUpdateId": 10, "symbol": "BTCUSD_PERP", "pair": "BTCUSD",
            "bids": [["50000.0", "10"]], "asks": [["50010.0", "5"]]}
    msgs = [
        (1, snap),
        (2, {"stream": "btcusd_perp@depth@0ms", "data": {"e": "depthUpdate", "E": 1, "T": 1, "s": "BTCUSD_PERP",
                                                          "ps": "BTCUSD", "U": 10, "u": 11, "pu": 9, "b": [],
                                                          "a": []}}),
        (3, {"stream": "btcusd_perp@trade", "data": {"e": "trade", "E": 2, "T": 2, "s": "BTCUSD_PERP", "t": 1,
                                                      "p": "50000.0", "q": "4", "m": False}}),
    ]
    res = load_capture(write_capture(tmp_path / "c.gz", msgs))
    assert res.venue == "binance-coinm"
    book = res.frames["book"]
    assert book["bid_sz"].to_list()[0] == [pytest.approx(10 * 100 / 50000)]
    assert res.frames["trades"]["sz"][0] == pytest.approx(4 * 100 / 50000)  # 400 USD of BTC


def test_hyperliquid_messages(tmp_path):
    lv = [[{"px": "10.0", "sz": "1", "n": 1}, {"px": "9.0", "sz": "2", "n": 1}], [{"px": "11.0", "sz": "3", "n": 2}]]
    trade = {"coin": "X", "side": "A", "px": "10.0", "sz": "0.5", "time": 5, "hash": "0x0", "tid": 7}
    msgs = [
        (100, {"channel": "l2Book", "data": {"coin": "X", "time": 3, "levels": lv}}),
        (101, {"channel": "trades", "data": [trade, trade | {"tid": 8, "side": "B"}]}),
        (102, {"channel": "trades", "data": [trade]}),  # re-sent on reconnect: dropped
        (103, {"channel": "bbo", "data": {"coin": "X", "time": 6, "bbo": [lv[0][0], lv[1][0]]}}),
        (104, {"channel": "activeAssetCtx", "data": {"coin": "X", "ctx": {"markPx": "10.4", "oraclePx": "10.5"}}}),
    ]
    res = load_capture(write_capture(tmp_path / "c.gz", msgs))
    assert res.venue == "hyperliquid"
    assert tops(res) == [([10.0, 9.0], [11.0])]
    assert res.frames["trades"]["side"].to_list() == [-1, 1]
    assert res.stats["trades_duplicate"] == 1
    assert res.frames["bbo"]["ts_ns"].to_list() == [6_000_000]
    assert res.frames["prices"].select("mark_px", "oracle_px").row(0) == (10.4, 10.5)


def test_overrides_and_list_matrix():
    book = L2Book()
    book.load([["1", "1"], ["2", "1"]], [["3", "1"]])
    assert book.bids.top(5) == ([2.0, 1.0], [1.0, 1.0])
    assert not book.crossed()
    import polars as pl
    s = pl.Series([[1.0, 2.0], [], [3.0]], dtype=pl.List(pl.Float64))
    m = list_to_matrix(s.slice(1, 2))
    assert m.shape == (2, 1) and m[1, 0] == 3.0 and m[0, 0] != m[0, 0]


# --------------------------------------------------------------------------------- real captures

needs_data = pytest.mark.skipif(not (DATA / "usdm_btcusdt_20240808.gz").exists(), reason="shared data missing")


@needs_data
def test_real_usdm_btc_capture_rebuilds_the_book_bookticker_agrees(monkeypatch):
    applied_u: list[int] = []
    original = captures._BinanceDepth._apply

    def recording(self, local_ns, ev):
        original(self, local_ns, ev)
        applied_u.append(ev["u"])

    monkeypatch.setattr(captures._BinanceDepth, "_apply", recording)
    path = DATA / "usdm_btcusdt_20240808.gz"
    res = load_capture(path, coin="BTC")
    assert res.stats["depth"] == 6551 and res.stats["bookTicker"] == 66089 and res.stats["trade"] == 21313
    assert res.stats.get("depth_gaps", 0) == 0
    assert res.stats["depth_applied"] == 6547 and res.stats["depth_dropped_before_snapshot"] == 4
    book = res.frames["book"]
    assert book.height == 6547 and set(book["coin"]) == {"BTC"}
    assert book["bid_px"].list.len().min() == 20 and book["ask_px"].list.len().min() == 20
    # the book is never crossed, and where a bookTicker carries the same update id as a depth diff,
    # the rebuilt best bid/ask equals it (USDⓈ-M shares one update-id sequence for both streams)
    bb = book["bid_px"].list.first().to_list()
    ba = book["ask_px"].list.first().to_list()
    assert all(b < a for b, a in zip(bb, ba))
    ticker = {}
    for _, raw in read_lines(path):
        if raw.startswith(b'{"stream":"btcusdt@bookTicker"'):
            d = orjson.loads(raw)["data"]
            ticker[d["u"]] = (float(d["b"]), float(d["a"]))
    common = [(i, u) for i, u in enumerate(applied_u) if u in ticker]
    assert len(common) > 500
    assert all(ticker[u] == (bb[i], ba[i]) for i, u in common)


@needs_data
def test_real_hyperliquid_and_spot_captures():
    hl = load_capture(DATA / "hyperliquid_btcusd_20250126.gz")
    assert hl.frames["book"].height == 46 and hl.frames["trades"].height == 64
    assert hl.frames["book"]["bid_px"].list.len().to_list() == [20] * 46
    spot = load_capture(DATA / "spot_btcusdt_20240808.gz")
    assert spot.venue == "binance-spot" and spot.stats.get("depth_gaps", 0) == 0
    assert spot.frames["bbo"].height == 28040 and spot.frames["trades"].height == 9757
    cm = load_capture(DATA / "cm_btcusd_perp_20240808.gz")
    assert cm.venue == "binance-coinm" and cm.stats.get("depth_gaps", 0) == 0
    # 100-USD contracts → BTC: a trade's notional is a multiple of 100 USD
    n = (cm.frames["trades"]["px"] * cm.frames["trades"]["sz"] / 100).to_list()
    assert all(abs(x - round(x)) < 1e-6 for x in n)

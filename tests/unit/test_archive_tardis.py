"""Hyperliquid LZ4 archive (built here from the real captured l2Book messages) and Tardis CSVs."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import lz4.frame
import orjson
import polars as pl
import pytest

from perpbox.venues import dataset
from perpbox.venues.archive import archive_files, load_archive
from perpbox.venues.captures import load_capture, read_lines
from perpbox.venues.sources import detect_format, load_source
from perpbox.venues.tardis import load_tardis
from shared_data import SHARED_DATA

DATA = SHARED_DATA / "hftbacktest"
HL = DATA / "hyperliquid_btcusd_20250126.gz"
needs_data = pytest.mark.skipif(not HL.exists(), reason="shared data missing")


def archive_line(local_ns: int, msg: dict) -> bytes:
    t = dt.datetime.fromtimestamp(local_ns // 10**9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return orjson.dumps({"time": f"{t}.{local_ns % 10**9:09d}", "ver_num": 1, "raw": msg})


@pytest.fixture
def hl_archive(tmp_path: Path) -> Path:
    """market_data/20250126/19/l2Book/BTC.lz4 holding the capture's 46 real l2Book messages."""
    lines = [archive_line(ts, m) for ts, raw in read_lines(HL) if (m := orjson.loads(raw))["channel"] == "l2Book"]
    d = tmp_path / "market_data" / "20250126" / "19" / "l2Book"
    d.mkdir(parents=True)
    (d / "BTC.lz4").write_bytes(lz4.frame.compress(b"\n".join(lines) + b"\n"))
    other = tmp_path / "market_data" / "20250126" / "20" / "l2Book"
    other.mkdir(parents=True)
    (other / "ETH.lz4").write_bytes(lz4.frame.compress(lines[0].replace(b'"BTC"', b'"ETH"')))
    return tmp_path / "market_data"


@needs_data
def test_archive_equals_the_capture_books(hl_archive: Path):
    book = load_archive(hl_archive, coins=["BTC"])
    cap = load_capture(HL).frames["book"]
    assert book.height == 46
    assert book.select("ts_ns", "local_ns", "bid_px", "bid_sz", "ask_px", "ask_sz").equals(
        cap.select("ts_ns", "local_ns", "bid_px", "bid_sz", "ask_px", "ask_sz"))
    assert book["venue"][0] == "hyperliquid" and book["coin"][0] == "BTC"
    both = load_archive(hl_archive)
    assert sorted(set(both["coin"])) == ["BTC", "ETH"] and both.height == 47
    assert [p.stem for p in archive_files(hl_archive)] == ["BTC", "ETH"]
    assert detect_format(hl_archive) == "hl-archive"
    assert detect_format(hl_archive / "20250126" / "19" / "l2Book" / "BTC.lz4") == "hl-archive"


@needs_data
def test_archive_depth_limit_and_dataset_roundtrip(hl_archive: Path, tmp_path: Path):
    book = load_archive(hl_archive, coins=["BTC"], depth=5)
    assert book["bid_px"].list.len().max() == 5
    frames, _ = load_source(hl_archive, coins=["BTC"])
    dataset.write_chunk(frames["book"], "book", tmp_path / "ds")
    back = dataset.scan(tmp_path / "ds", "book").collect()
    assert back.height == 46 and back["ask_px"].to_list() == frames["book"]["ask_px"].to_list()


HEAD = "exchange,symbol,timestamp,local_timestamp"


def write(path: Path, text: str, gz: bool = False) -> Path:
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def test_tardis_trades_and_quotes(tmp_path: Path):
    trades = write(tmp_path / "binance-futures_trades_2024-08-08_BTCUSDT.csv.gz",
                   f"{HEAD},id,side,price,amount\n"
                   "binance-futures,BTCUSDT,1723161256322000,1723161256330000,5266583935,buy,61800.3,0.006\n"
                   "binance-futures,BTCUSDT,1723161256344000,1723161256350000,5266583936,sell,61800.2,0.2\n"
                   "binance-futures,BTCUSDT,1723161256345000,1723161256351000,5266583937,unknown,61800.2,1\n",
                   gz=True)
    ch, t = load_tardis(trades)
    assert ch == "trades" and detect_format(trades) == "tardis"
    assert t["side"].to_list() == [1, -1, None]
    assert t["ts_ns"][0] == 1723161256322000 * 1000 and t["local_ns"][0] == 1723161256330000 * 1000
    assert t["venue"][0] == "binance-futures" and t["trade_id"][0] == "5266583935"
    quotes = write(tmp_path / "q.csv", f"{HEAD},ask_amount,ask_price,bid_price,bid_amount\n"
                   "binance-futures,BTCUSDT,1000,1001,2.5,61800.3,61800.2,1.5\n"
                   "binance-futures,BTCUSDT,2000,2001,,,61800.2,1.5\n")
    ch, q = load_tardis(quotes, venue="bf", coin="BTC")
    assert ch == "bbo" and q.height == 1
    assert q.row(0) == (1_000_000, 1_001_000, "bf", "BTC", 61800.2, 1.5, 61800.3, 2.5)


def test_tardis_book_snapshot_and_ticker(tmp_path: Path):
    cols = ",".join(f"asks[{i}].price,asks[{i}].amount,bids[{i}].price,bids[{i}].amount" for i in range(3))
    snap = write(tmp_path / "s.csv", f"{HEAD},{cols}\n"
                 "deribit,BTC-PERPETUAL,10,11,101,1,100,2,102,3,99,4,103,5,98,6\n"
                 "deribit,BTC-PERPETUAL,20,21,101,1,100,2,102,3,99,4,,,,\n")
    ch, b = load_tardis(snap)
    assert ch == "book"
    assert b["bid_px"].to_list() == [[100.0, 99.0, 98.0], [100.0, 99.0]]
    assert b["ask_sz"].to_list() == [[1.0, 3.0, 5.0], [1.0, 3.0]]
    ch, b2 = load_tardis(snap, depth=1)
    assert b2["ask_px"].to_list() == [[101.0], [101.0]]
    tick = write(tmp_path / "t.csv", f"{HEAD},funding_timestamp,funding_rate,predicted_funding_rate,open_interest,"
                 "last_price,index_price,mark_price\n"
                 "binance-futures,BTCUSDT,10,11,,0.0001,,100,61800,61810.5,61805.2\n")
    ch, p = load_tardis(tick)
    assert ch == "prices" and p.select("mark_px", "oracle_px").row(0) == (61805.2, 61810.5)


def test_tardis_incremental_book_rebuild(tmp_path: Path):
    rows = [
        # initial snapshot (one message), then two updates, then a reconnect snapshot resets the book
        (10, True, "bid", 100, 1), (10, True, "bid", 99, 2), (10, True, "ask", 101, 3), (10, True, "ask", 102, 4),
        (20, False, "bid", 100, 0), (20, False, "bid", 99.5, 5),
        (30, False, "ask", 100.5, 1),
        (40, True, "bid", 90, 1), (40, True, "ask", 91, 1),
        (50, False, "ask", 91, 0),
    ]
    text = f"{HEAD},is_snapshot,side,price,amount\n" + "".join(
        f"bitmex,XBTUSD,{ts},{ts + 1},{str(s).lower()},{side},{px},{amt}\n" for ts, s, side, px, amt in rows)
    ch, b = load_tardis(write(tmp_path / "inc.csv", text))
    assert ch == "book"
    assert b["ts_ns"].to_list() == [10_000, 20_000, 30_000, 40_000, 50_000]
    assert b["bid_px"].to_list() == [[100.0, 99.0], [99.5, 99.0], [99.5, 99.0], [90.0], [90.0]]
    assert b["bid_sz"].to_list()[1] == [5.0, 2.0]
    assert b["ask_px"].to_list() == [[101.0, 102.0], [101.0, 102.0], [100.5, 101.0, 102.0], [91.0], []]
    assert b["venue"][0] == "bitmex" and b["coin"][0] == "XBTUSD"


def test_unknown_csv_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="not a Tardis CSV"):
        load_tardis(write(tmp_path / "x.csv", f"{HEAD},foo\nx,y,1,2,3\n"))


def test_dataset_source_roundtrip(tmp_path: Path):
    _, t = load_tardis(write(tmp_path / "t.csv", f"{HEAD},id,side,price,amount\nx,Y,1000,1000,1,buy,2,3\n"))
    dataset.write_chunk(t, "trades", tmp_path / "ds")
    assert detect_format(tmp_path / "ds") == "dataset"
    frames, stats = load_source(tmp_path / "ds")
    assert stats["format"] == "dataset" and frames["trades"].equals(t)
    assert isinstance(frames["trades"], pl.DataFrame)

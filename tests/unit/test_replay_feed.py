"""The recorded-price oracle feed: inputs, coin matching and real-time replay offsets."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from perpbox.config import load_config
from perpbox.feeds.replay import ReplayFeed, base_coin, load_series
from perpbox.venues import dataset

BTC, ETH, SOL = 0, 1, 2
START = 1_800_000_000_000


@pytest.mark.parametrize(("symbol", "coin"), [
    ("BTCUSDT", "BTC"), ("BTC-USD", "BTC"), ("BTC/USDT:USDT", "BTC"), ("BTC-PERP", "BTC"), ("ETH", "ETH"),
    ("xyz:SILVER", "xyz:SILVER"), ("1000PEPEUSDT", "1000PEPE"), ("ETH_USDC", "ETH"),
])
def test_symbols_reduce_to_the_exchange_coin(symbol: str, coin: str) -> None:
    assert base_coin(symbol) == coin


def test_csv_prices_replay_at_their_recorded_offsets(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("ts_ms,coin,px\n1700000000000,BTCUSDT,65000.5\n1700000001000,BTCUSDT,65010\n"
                    "1700000002000,ETHUSDT,3100.25\n1700000100000,BTCUSDT,66000\n1700000000500,DOGEUSDT,0.1\n")
    markets = load_config().all_markets()
    feed = ReplayFeed(markets, path, seed=1, start_ts=START)
    assert feed.covered == [BTC, ETH]  # DOGE is not listed: ignored
    assert (feed.px[BTC], feed.px[ETH]) == (650_005.0, 310_025.0)  # BTC: 1 price decimal, ETH: 2
    feed.step(START + 1_500)
    assert feed.px[BTC] == 650_100.0
    feed.step(START + 100_000)
    assert feed.px[BTC] == 660_000.0
    feed.step(START + 10_000_000)  # after the last record the price holds
    assert feed.px[BTC] == 660_000.0
    sol_before = feed.px[SOL]
    feed.step(START + 20_000_000)
    assert feed.px[SOL] != sol_before  # uncovered markets keep the synthetic walk


def test_parquet_with_ns_timestamps_and_a_price_column(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pl.DataFrame({"timestamp": [1_700_000_000_000_000_000, 1_700_000_003_000_000_000], "coin": ["ETH", "ETH"],
                  "price": [3000.0, 3001.5]}).write_parquet(path)
    series = load_series(path)
    assert series["ts_ms"].to_list() == [1_700_000_000_000, 1_700_000_003_000]
    feed = ReplayFeed(load_config().all_markets(), path, seed=1, start_ts=START)
    feed.step(START + 3_000)
    assert feed.px[ETH] == 300_150.0


def test_a_dataset_directory_replays_its_bbo_mids(tmp_path: Path) -> None:
    ts = [1_700_000_000_000_000_000, 1_700_000_002_000_000_000]
    dataset.write_chunk(pl.DataFrame({"ts_ns": ts, "local_ns": ts, "venue": "binanceusdm", "coin": "BTCUSDT",
                                      "bid_px": [64000.0, 64100.0], "bid_sz": 1.0, "ask_px": [64001.0, 64101.0],
                                      "ask_sz": 1.0}), "bbo", tmp_path)
    feed = ReplayFeed(load_config().all_markets(), tmp_path, seed=1, start_ts=START)
    assert feed.px[BTC] == 640_005.0
    feed.step(START + 2_000)
    assert feed.px[BTC] == 641_005.0


def test_a_recording_without_a_listed_coin_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("ts_ms,coin,px\n1,DOGE,0.1\n")
    with pytest.raises(ValueError, match="no coin matches"):
        ReplayFeed(load_config().all_markets(), path, seed=1, start_ts=START)
    bad = tmp_path / "y.csv"
    bad.write_text("when,coin,px\n1,BTC,1\n")
    with pytest.raises(ValueError, match="no time column"):
        load_series(bad)

"""The Parquet dataset: append-only chunks, partition names, readers."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from perpbox.venues import dataset

T0 = 1_700_000_000_000_000_000  # 2023-11-14 22:13:20 UTC


def _trades(coin: str, n: int = 2) -> pl.DataFrame:
    ts = [T0 + i * 1_000_000_000 for i in range(n)]
    return pl.DataFrame({"ts_ns": ts, "local_ns": ts, "venue": "hl", "coin": coin, "px": [1.0 + i for i in range(n)],
                         "sz": 1.0, "side": [1, -1][:n], "trade_id": [str(i) for i in range(n)]})


def test_chunks_append_and_never_overwrite(tmp_path: Path) -> None:
    first = dataset.write_chunk(_trades("BTC"), "trades", tmp_path)
    second = dataset.write_chunk(_trades("BTC"), "trades", tmp_path)
    assert len(first) == len(second) == 1 and first != second
    assert first[0].parent == tmp_path / "venue=hl" / "channel=trades" / "coin=BTC" / "date=2023-11-14"
    frame = dataset.scan(tmp_path, "trades").collect()
    assert frame.height == 4 and frame["px"].to_list() == [1.0, 2.0, 1.0, 2.0]
    assert not list(tmp_path.rglob("*.tmp"))


def test_hip3_coin_names_are_percent_encoded_on_disk_only(tmp_path: Path) -> None:
    (path,) = dataset.write_chunk(_trades("xyz:SILVER"), "trades", tmp_path)
    assert path.parent.parent.name == "coin=xyz%3ASILVER"
    assert dataset.channels(tmp_path) == {"trades": [("hl", "xyz:SILVER")]}
    assert dataset.scan(tmp_path, "trades", coins=["xyz:SILVER"]).collect()["coin"].unique().to_list() == ["xyz:SILVER"]
    rows = duckdb.sql(f"select coin, count(*) from read_parquet('{tmp_path}/**/*.parquet') group by coin").fetchall()
    assert rows == [("xyz:SILVER", 2)]


def test_an_empty_channel_reads_as_an_empty_frame_with_its_schema(tmp_path: Path) -> None:
    frame = dataset.scan(tmp_path, "bbo").collect()
    assert frame.height == 0 and frame.columns[:4] == ["ts_ns", "local_ns", "venue", "coin"]

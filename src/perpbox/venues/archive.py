"""Loader for Hyperliquid's historical L2 archive → the ``book`` table.

Hyperliquid publishes hourly book files at
``s3://hyperliquid-archive/market_data/<YYYYMMDD>/<hour>/l2Book/<COIN>.lz4`` (requester pays). Each
is an LZ4 frame holding JSON lines, one per recorded ``l2Book`` WebSocket message::

    {"time": "2024-08-05T00:00:05.402514755", "ver_num": 1,
     "raw": {"channel": "l2Book",
             "data": {"coin": "BTC", "time": 1722816005022,
                      "levels": [[{"px": "58167.0", "sz": "0.0172", "n": 1}, ...],   # bids, best first
                                 [{"px": "58168.0", "sz": "1.2", "n": 3}, ...]]}}}  # asks, best first

``raw.data.time`` (venue ms) becomes ``ts_ns``; the outer ``time`` (the recorder's clock, UTC, ns
precision, no zone) becomes ``local_ns``. Each line is a full snapshot (up to 20 levels a side), so
decoding is one vectorised NDJSON read per file: no per-line Python.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import lz4.frame
import polars as pl

from perpbox.venues.tables import conform, empty

_LEVEL = pl.Struct({"px": pl.Utf8, "sz": pl.Utf8, "n": pl.Int64})
_SCHEMA = {
    "time": pl.Utf8,
    "ver_num": pl.Int64,
    "raw": pl.Struct({
        "channel": pl.Utf8,
        "data": pl.Struct({"coin": pl.Utf8, "time": pl.Int64, "levels": pl.List(pl.List(_LEVEL))}),
    }),
}


def archive_files(root: Path | str, coins: Iterable[str] | None = None) -> list[Path]:
    """The ``l2Book/<COIN>.lz4`` files under ``root`` (a file, an hour, a date or ``market_data``),
    in date/hour order."""
    root = Path(root)
    if root.is_file():
        return [root]
    cset = {c.upper() for c in coins} if coins else None
    found = [p for p in root.rglob("*") if p.is_file() and p.parent.name == "l2Book"
             and p.suffix in (".lz4", ".json", ".jsonl", "")]
    if cset is not None:
        found = [p for p in found if p.stem.upper() in cset]

    def key(p: Path) -> tuple:
        hour, date = p.parent.parent.name, p.parent.parent.parent.name
        return (date, int(hour) if hour.isdigit() else hour, p.stem)

    return sorted(found, key=key)


def read_archive_bytes(path: Path | str) -> bytes:
    """The JSON-lines payload of one archive file (LZ4 frame, or plain if not compressed)."""
    data = Path(path).read_bytes()
    if data[:4] == b"\x04\x22\x4d\x18":  # LZ4 frame magic
        return lz4.frame.decompress(data)
    return data


def parse_archive(payload: bytes, *, venue: str = "hyperliquid", depth: int = 20) -> pl.DataFrame:
    """Decode archive JSON lines into the ``book`` table (vectorised)."""
    if not payload.strip():
        return empty("book")
    raw = pl.read_ndjson(io.BytesIO(payload), schema=_SCHEMA)
    frame = raw.select(
        pl.col("time").alias("local"),
        pl.col("raw").struct.field("channel").alias("channel"),
        pl.col("raw").struct.field("data").alias("data"),
    ).filter(pl.col("channel") == "l2Book").unnest("data")

    def side(i: int, field: str) -> pl.Expr:
        return (pl.col("levels").list.get(i, null_on_oob=True).list.head(depth)
                .list.eval(pl.element().struct.field(field).cast(pl.Float64)))

    local = pl.col("local").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="ns", strict=False)
    out = frame.select(
        (pl.col("time") * 1_000_000).alias("ts_ns"),
        pl.coalesce(local.dt.epoch("ns"), pl.col("time") * 1_000_000).alias("local_ns"),
        pl.lit(venue).alias("venue"),
        pl.col("coin"),
        side(0, "px").alias("bid_px"), side(0, "sz").alias("bid_sz"),
        side(1, "px").alias("ask_px"), side(1, "sz").alias("ask_sz"),
    )
    return conform("book", out)


def load_archive(root: Path | str, *, coins: Iterable[str] | None = None, venue: str = "hyperliquid",
                 depth: int = 20) -> pl.DataFrame:
    """Every ``l2Book`` archive file under ``root`` (optionally only ``coins``) → one ``book`` table."""
    parts = [parse_archive(read_archive_bytes(p), venue=venue, depth=depth) for p in archive_files(root, coins)]
    parts = [p for p in parts if p.height]
    if not parts:
        return empty("book")
    return pl.concat(parts).sort(["coin", "ts_ns"], maintain_order=True)

"""The market-data tables every source lands in: recorder, capture loaders, archive and Tardis.

One schema per channel so that the report, the scanner and user notebooks read recorded, captured
and archived data the same way (polars DataFrames; Parquet on disk, partitioned
``venue=/channel=/coin=/date=``). Prices and sizes are float64: this is observed market data for
analytics, not exchange state, and the sources publish decimal strings that float64 holds to far
better than a basis point. Time is ``ts_ns``: the venue's event time in ns since the epoch when the
source has one, else the local receive time; ``local_ns`` is always the local receive time (equal to
``ts_ns`` when the source has only one clock).

``side`` of a trade is the aggressor: +1 buyer-initiated, -1 seller-initiated.
Book snapshots hold levels best-first as list columns (equal length per side within a row, at most
the depth the source published).
"""

from __future__ import annotations

import polars as pl

BOOK = {
    "ts_ns": pl.Int64,
    "local_ns": pl.Int64,
    "venue": pl.Utf8,
    "coin": pl.Utf8,
    "bid_px": pl.List(pl.Float64),
    "bid_sz": pl.List(pl.Float64),
    "ask_px": pl.List(pl.Float64),
    "ask_sz": pl.List(pl.Float64),
}
BBO = {
    "ts_ns": pl.Int64,
    "local_ns": pl.Int64,
    "venue": pl.Utf8,
    "coin": pl.Utf8,
    "bid_px": pl.Float64,
    "bid_sz": pl.Float64,
    "ask_px": pl.Float64,
    "ask_sz": pl.Float64,
}
TRADES = {
    "ts_ns": pl.Int64,
    "local_ns": pl.Int64,
    "venue": pl.Utf8,
    "coin": pl.Utf8,
    "px": pl.Float64,
    "sz": pl.Float64,
    "side": pl.Int8,
    "trade_id": pl.Utf8,
}
# Oracle / mark / index series where a venue publishes one (Hyperliquid activeAssetCtx, Binance markPrice).
PRICES = {
    "ts_ns": pl.Int64,
    "local_ns": pl.Int64,
    "venue": pl.Utf8,
    "coin": pl.Utf8,
    "mark_px": pl.Float64,
    "oracle_px": pl.Float64,
}
FUNDING = {
    "ts_ns": pl.Int64,
    "venue": pl.Utf8,
    "coin": pl.Utf8,
    "rate": pl.Float64,          # the rate paid per interval, as the venue publishes it
    "interval_hours": pl.Float64,
    "premium": pl.Float64,       # null where the venue does not publish it
}

SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "book": BOOK, "bbo": BBO, "trades": TRADES, "prices": PRICES, "funding": FUNDING,
}


def empty(channel: str) -> pl.DataFrame:
    """An empty frame with the channel's schema."""
    return pl.DataFrame(schema=SCHEMAS[channel])


def conform(channel: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Columns in schema order with schema types; missing nullable columns filled with nulls."""
    schema = SCHEMAS[channel]
    cols = [
        (pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype=dtype)).alias(name)
        for name, dtype in schema.items()
    ]
    return frame.select(cols)


def bbo_from_book(book: pl.DataFrame) -> pl.DataFrame:
    """Top of book from book snapshots (one BBO row per snapshot with both sides present)."""
    out = book.filter((pl.col("bid_px").list.len() > 0) & (pl.col("ask_px").list.len() > 0)).select(
        "ts_ns", "local_ns", "venue", "coin",
        pl.col("bid_px").list.first().alias("bid_px"), pl.col("bid_sz").list.first().alias("bid_sz"),
        pl.col("ask_px").list.first().alias("ask_px"), pl.col("ask_sz").list.first().alias("ask_sz"),
    )
    return conform("bbo", out)

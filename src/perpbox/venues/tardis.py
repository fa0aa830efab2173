"""Loader for Tardis.dev CSV datasets (plain or ``.csv.gz``) → the market-data tables.

The data type is recognised from the header (Tardis "downloadable CSV files" documentation);
every file starts with ``exchange,symbol,timestamp,local_timestamp`` (µs since the epoch; the
exchange's time and the receive time):

* ``trades``: ``id, side, price, amount`` → ``trades``; ``side`` is the taker's (buy → +1,
  sell → -1, unknown → null).
* ``quotes``: ``ask_amount, ask_price, bid_price, bid_amount`` → ``bbo``.
* ``book_snapshot_25`` / ``book_snapshot_5`` / any ``book_snapshot_N``: ``asks[0].price,
  asks[0].amount, bids[0].price, bids[0].amount, …`` → ``book`` (empty cells, when the book is
  thinner than N, are dropped from the lists).
* ``incremental_book_L2``: ``is_snapshot, side, price, amount`` (amount = new absolute size, 0
  deletes) → ``book``, rebuilt: rows sharing a ``(timestamp, local_timestamp)`` are one update, a
  run of ``is_snapshot`` rows after non-snapshot rows starts a fresh book (Tardis' reconnect
  convention), and the top ``depth`` levels are emitted after each update. The CSV is parsed and
  grouped vectorised; only the level application loops (``L2Book``), as any diff rebuild must.
* ``derivative_ticker``: ``mark_price, index_price, …`` → ``prices`` (index as the oracle).

``venue`` defaults to the ``exchange`` column (e.g. ``binance-futures``), ``coin`` to ``symbol``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl

from perpbox.venues.l2book import BookRows, L2Book
from perpbox.venues.tables import conform

US = 1_000


def detect_kind(columns: list[str]) -> str:
    """The Tardis data type of a CSV from its header."""
    cols = set(columns)
    if {"is_snapshot", "side", "price", "amount"} <= cols:
        return "incremental_book_L2"
    if "asks[0].price" in cols:
        return "book_snapshot"
    if {"ask_price", "bid_price"} <= cols:
        return "quotes"
    if {"id", "side", "price", "amount"} <= cols:
        return "trades"
    if "mark_price" in cols or "index_price" in cols:
        return "derivative_ticker"
    raise ValueError(f"not a Tardis CSV type this loader knows: columns {sorted(cols)[:12]}")


def _read(path: Path | str) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema_length=10_000, schema_overrides={"symbol": pl.Utf8, "id": pl.Utf8})


def _base(venue: str | None, coin: str | None) -> list[pl.Expr]:
    return [
        (pl.col("timestamp").cast(pl.Int64) * US).alias("ts_ns"),
        (pl.col("local_timestamp").cast(pl.Int64) * US).alias("local_ns"),
        (pl.lit(venue) if venue else pl.col("exchange")).cast(pl.Utf8).alias("venue"),
        (pl.lit(coin) if coin else pl.col("symbol")).cast(pl.Utf8).alias("coin"),
    ]


def load_tardis(path: Path | str, *, venue: str | None = None, coin: str | None = None,
                depth: int = 20) -> tuple[str, pl.DataFrame]:
    """Load one Tardis CSV; returns ``(channel, frame)`` with channel in book/bbo/trades/prices."""
    raw = _read(path)
    kind = detect_kind(raw.columns)
    base = _base(venue, coin)
    if kind == "trades":
        side = pl.col("side").cast(pl.Utf8).str.to_lowercase()
        out = raw.select(*base, pl.col("price").alias("px"), pl.col("amount").alias("sz"),
                         pl.when(side == "buy").then(1).when(side == "sell").then(-1).otherwise(None)
                         .cast(pl.Int8).alias("side"),
                         pl.col("id").cast(pl.Utf8).alias("trade_id"))
        return "trades", conform("trades", out).sort("ts_ns", maintain_order=True)
    if kind == "quotes":
        out = raw.select(*base, pl.col("bid_price").alias("bid_px"), pl.col("bid_amount").alias("bid_sz"),
                         pl.col("ask_price").alias("ask_px"), pl.col("ask_amount").alias("ask_sz"))
        out = out.filter(pl.col("bid_px").is_not_null() & pl.col("ask_px").is_not_null())
        return "bbo", conform("bbo", out).sort("ts_ns", maintain_order=True)
    if kind == "derivative_ticker":
        cols = raw.columns
        out = raw.select(*base,
                         (pl.col("mark_price") if "mark_price" in cols else pl.lit(None)).alias("mark_px"),
                         (pl.col("index_price") if "index_price" in cols else pl.lit(None)).alias("oracle_px"))
        return "prices", conform("prices", out).sort("ts_ns", maintain_order=True)
    if kind == "book_snapshot":
        return "book", _snapshots(raw, base, depth)
    return "book", _incremental(raw, venue, coin, depth)


def _snapshots(raw: pl.DataFrame, base: list[pl.Expr], depth: int) -> pl.DataFrame:
    levels = max(int(m.group(1)) for c in raw.columns if (m := re.match(r"asks\[(\d+)\]\.price", c))) + 1
    n = min(levels, depth)

    def side(name: str, field: str) -> pl.Expr:
        cols = [f"{name}[{i}].{field}" for i in range(n) if f"{name}[{i}].{field}" in raw.columns]
        return pl.concat_list([pl.col(c).cast(pl.Float64) for c in cols]).list.drop_nulls()

    out = raw.select(*base, side("bids", "price").alias("bid_px"), side("bids", "amount").alias("bid_sz"),
                     side("asks", "price").alias("ask_px"), side("asks", "amount").alias("ask_sz"))
    return conform("book", out).sort("ts_ns", maintain_order=True)


def _incremental(raw: pl.DataFrame, venue: str | None, coin: str | None, depth: int) -> pl.DataFrame:
    frame = raw.select(
        pl.col("exchange").cast(pl.Utf8), pl.col("symbol").cast(pl.Utf8),
        pl.col("timestamp").cast(pl.Int64), pl.col("local_timestamp").cast(pl.Int64),
        pl.col("is_snapshot").cast(pl.Utf8).str.to_lowercase().is_in(["true", "1"]).alias("snap"),
        (pl.col("side").cast(pl.Utf8).str.to_lowercase() == "bid").alias("bid"),
        pl.col("price").cast(pl.Float64), pl.col("amount").cast(pl.Float64),
    )
    parts = []
    for (exchange, symbol), g in frame.group_by(["exchange", "symbol"], maintain_order=True):
        parts.append(_rebuild(g, venue or str(exchange), coin or str(symbol), depth))
    if not parts:
        return conform("book", pl.DataFrame(schema={"ts_ns": pl.Int64}))
    return pl.concat(parts).sort("ts_ns", maintain_order=True)


def _rebuild(g: pl.DataFrame, venue: str, coin: str, depth: int) -> pl.DataFrame:
    """Apply one symbol's incremental rows message by message; emit the top levels after each."""
    ts = g["timestamp"].to_numpy()
    local = g["local_timestamp"].to_numpy()
    snap = g["snap"].to_numpy()
    bid = g["bid"].to_numpy()
    px = g["price"].to_numpy()
    amt = g["amount"].to_numpy()
    n = len(ts)
    # message boundaries: a new (timestamp, local_timestamp) or a snapshot flag change
    new_msg = np.ones(n, dtype=bool)
    new_msg[1:] = (ts[1:] != ts[:-1]) | (local[1:] != local[:-1]) | (snap[1:] != snap[:-1])
    starts = np.flatnonzero(new_msg)
    ends = np.append(starts[1:], n)
    # a snapshot message that follows non-snapshot rows (or opens the file) resets the book
    reset = snap[starts] & np.concatenate(([True], ~snap[starts[:-1]]))
    book = L2Book()
    rows = BookRows()
    bids, asks = book.bids, book.asks
    pxl, amtl, bidl, snapl = px.tolist(), amt.tolist(), bid.tolist(), snap.tolist()
    for s, e, r in zip(starts.tolist(), ends.tolist(), reset.tolist()):
        if r:
            book.clear()
        for i in range(s, e):
            (bids if bidl[i] else asks).set(pxl[i], amtl[i])
        if snapl[s] and e < n and snapl[e]:
            continue  # the snapshot continues in the next message: emit once it is complete
        rows.add_book(int(ts[s]) * US, int(local[s]) * US, coin, book, depth)
    return rows.frame(venue)

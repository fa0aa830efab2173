"""A price-level (L2) book rebuilt from diffs, and a builder for the ``book`` table.

Rebuilding a book from incremental updates is inherently sequential, so this is the one place the
loaders loop per event in Python; it is kept tight. Each side is a plain ``dict`` price → size plus
a sorted ``list`` of keys maintained with ``bisect`` (bids keyed by ``-price``, so both sides are
ascending best-first): a level insert or delete is one C-level ``memmove``, and the top N levels are
a slice. That beats re-sorting or ``heapq.nlargest`` for books of a few thousand levels.

``BookRows`` accumulates top-N snapshots as flat arrays plus per-row lengths and turns them into the
``book`` table's list columns in one step (Arrow offsets), not one Python list per row.
"""

from __future__ import annotations

from bisect import bisect_left, insort

import numpy as np
import polars as pl
import pyarrow as pa

from perpbox.venues.tables import conform


class BookSide:
    """One side of an L2 book: price → size, with the prices kept sorted best-first."""

    __slots__ = ("keys", "levels", "sign")

    def __init__(self, is_bid: bool) -> None:
        self.sign = -1.0 if is_bid else 1.0
        self.levels: dict[float, float] = {}
        self.keys: list[float] = []  # sign * price, ascending == best first

    def clear(self) -> None:
        self.levels.clear()
        self.keys.clear()

    def set(self, px: float, sz: float) -> None:
        """Set the size at ``px`` (0 removes the level, as every venue's diff feed means it)."""
        levels = self.levels
        if sz == 0.0:
            if px in levels:
                del levels[px]
                keys = self.keys
                del keys[bisect_left(keys, self.sign * px)]
        else:
            if px not in levels:
                insort(self.keys, self.sign * px)
            levels[px] = sz

    def best(self) -> float | None:
        return self.sign * self.keys[0] if self.keys else None

    def top(self, n: int) -> tuple[list[float], list[float]]:
        sign = self.sign
        pxs = [sign * k for k in self.keys[:n]]
        levels = self.levels
        return pxs, [levels[p] for p in pxs]

    def __len__(self) -> int:
        return len(self.levels)


class L2Book:
    """Both sides of a price-level book."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids = BookSide(True)
        self.asks = BookSide(False)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def load(self, bids: list, asks: list) -> None:
        """Replace the book with a snapshot given as ``[[px, sz], ...]`` (strings or numbers)."""
        self.clear()
        self.apply(bids, asks)

    def apply(self, bids: list, asks: list) -> None:
        """Apply ``[[px, sz], ...]`` level updates (absolute sizes; 0 deletes).

        ``BookSide.set`` inlined: this loop is the loaders' hot path."""
        for side, updates in ((self.bids, bids), (self.asks, asks)):
            levels, keys, sign = side.levels, side.keys, side.sign
            for px, sz in updates:
                p = float(px)
                s = float(sz)
                if s == 0.0:
                    if p in levels:
                        del levels[p]
                        del keys[bisect_left(keys, sign * p)]
                elif p in levels:
                    levels[p] = s
                else:
                    insort(keys, sign * p)
                    levels[p] = s

    def crossed(self) -> bool:
        b, a = self.bids.best(), self.asks.best()
        return b is not None and a is not None and b >= a


class BookRows:
    """Accumulates top-N book snapshots and builds the ``book`` table."""

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.local: list[int] = []
        self.coin: list[str] = []
        self.bid_px: list[float] = []
        self.bid_sz: list[float] = []
        self.ask_px: list[float] = []
        self.ask_sz: list[float] = []
        self.bid_n: list[int] = []
        self.ask_n: list[int] = []

    def __len__(self) -> int:
        return len(self.ts)

    def add(self, ts_ns: int, local_ns: int, coin: str, bid_px: list[float], bid_sz: list[float],
            ask_px: list[float], ask_sz: list[float]) -> None:
        self.ts.append(ts_ns)
        self.local.append(local_ns)
        self.coin.append(coin)
        self.bid_px.extend(bid_px)
        self.bid_sz.extend(bid_sz)
        self.ask_px.extend(ask_px)
        self.ask_sz.extend(ask_sz)
        self.bid_n.append(len(bid_px))
        self.ask_n.append(len(ask_px))

    def add_book(self, ts_ns: int, local_ns: int, coin: str, book: L2Book, depth: int) -> None:
        bp, bs = book.bids.top(depth)
        ap, as_ = book.asks.top(depth)
        self.add(ts_ns, local_ns, coin, bp, bs, ap, as_)

    def frame(self, venue: str, size_scale: float | None = None) -> pl.DataFrame:
        """The ``book`` table. ``size_scale`` (inverse contracts): size := size × scale / price."""
        bid_px = np.asarray(self.bid_px, dtype=np.float64)
        ask_px = np.asarray(self.ask_px, dtype=np.float64)
        bid_sz = np.asarray(self.bid_sz, dtype=np.float64)
        ask_sz = np.asarray(self.ask_sz, dtype=np.float64)
        if size_scale is not None:
            bid_sz = bid_sz * size_scale / bid_px
            ask_sz = ask_sz * size_scale / ask_px
        frame = pl.DataFrame({
            "ts_ns": pl.Series(self.ts, dtype=pl.Int64),
            "local_ns": pl.Series(self.local, dtype=pl.Int64),
            "venue": pl.Series([venue] * len(self.ts), dtype=pl.Utf8),
            "coin": pl.Series(self.coin, dtype=pl.Utf8),
            "bid_px": list_column(bid_px, self.bid_n),
            "bid_sz": list_column(bid_sz, self.bid_n),
            "ask_px": list_column(ask_px, self.ask_n),
            "ask_sz": list_column(ask_sz, self.ask_n),
        })
        return conform("book", frame)


def list_column(flat: np.ndarray, lengths: list[int] | np.ndarray) -> pl.Series:
    """A ``List(Float64)`` series from flat values and per-row lengths (no per-row Python lists)."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=offsets[1:])
    arr = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(np.asarray(flat, dtype=np.float64)))
    return pl.Series(arr).cast(pl.List(pl.Float64))


def list_to_matrix(series: pl.Series, width: int | None = None) -> np.ndarray:
    """Best-first list column → 2-D float array (rows × width), NaN where a row has fewer levels.

    Full-depth rows are a fixed-size view (``list.to_array``); ragged ones are scattered from the
    Arrow values/offsets. This is how the metrics read millions of 20-level snapshots without
    exploding them into rows."""
    lengths = series.list.len().fill_null(0).cast(pl.Int64).to_numpy()
    n = len(lengths)
    if width is None:
        width = int(lengths.max()) if n else 0
    if n == 0 or width == 0:
        return np.full((n, width), np.nan)
    if (lengths == width).all() and not series.has_nulls():
        # the common case (every snapshot at full depth): a fixed-size view, no scatter
        return np.asarray(series.list.to_array(width).to_numpy(), dtype=np.float64)
    arr = series.rechunk().to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    offsets = np.asarray(arr.offsets, dtype=np.int64)
    values = np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float64)
    out = np.full((n, width), np.nan)
    lengths_c = np.minimum(lengths, width)
    rows = np.repeat(np.arange(n), lengths_c)
    starts = np.repeat(offsets[:-1] - offsets[0], lengths_c)
    cols = np.arange(len(rows)) - np.repeat(np.cumsum(lengths_c) - lengths_c, lengths_c)
    out[rows, cols] = values[starts + cols]
    return out

"""What the simulated participants must reproduce, measured from real captures (issue 19).

The agents of ``perpbox serve`` (and of the stress lab) are to be calibrated to real markets: today
they quote BTC 2.6–5 bps wide while Hyperliquid's BTC book sits at one tick (~0.1 bps). This module
is the measurement side:

* readers that turn a capture into a :class:`Capture` -- a time-ordered list of book snapshots and
  trades, prices and sizes parsed exactly (``Decimal``):
  :func:`read_hyperliquid_capture` and :func:`read_binance_usdm_capture`;
* :func:`market_stats`, the statistics the agents must reproduce, from *any* :class:`Capture` -- a
  real one or one recorded from a generated market (build ``BookSnapshot`` / ``Trade`` from the
  engine's book and fills; ``int`` / ``float`` prices are accepted too);
* :func:`compare`, which checks a generated market's :class:`MarketStats` against a reference and
  returns the violations, and :func:`load_reference`, the references measured once and stored in
  ``agents/data/calibration.toml`` (written by :func:`build_calibration`; regenerate with
  ``python -m perpbox.agents.calibration ../shared/data/hftbacktest --write``).

The statistics themselves are floats (they are outside the engine). Definitions:

* **spread**: ``(best ask - best bid) / mid * 1e4`` bps per book snapshot (snapshots with an empty
  side skipped); median, p90 and mean over snapshots; ``min_bps`` is the smallest positive spread
  seen (one tick, on these captures).
* **depth**: per snapshot and side, the cumulative notional ``sum(px * sz)`` in USD of the levels
  within ±b bps of mid (bids ``px >= mid * (1 - b/1e4)``, asks ``px <= mid * (1 + b/1e4)``) for
  ``b`` in :data:`BANDS_BPS`; the median over snapshots. A snapshot may not hold the whole book: its
  levels are the whole book only out to ``bid_known_to`` / ``ask_known_to`` (by default its last
  level). Where a band reaches past that, the snapshot's figure is a lower bound; ``*_known_share``
  is the share of snapshots whose band lies wholly inside the known book, and a band with a share
  below 1 on either side is ``truncated``: its median is then a lower bound of the true median
  (each sample is at most its true value); ``*_usd_known`` is the median over the snapshots that
  know the band whole -- an estimate, not a bound. ``reach_*_bps`` is the median distance from mid
  to the edge of the known book. The levels must be sorted best first.
* **trades** (one row per fill, as the venues publish them) and **prints** (fills with the same
  millisecond and the same taker side merged: one taker order sweeping several makers, as near as
  the public data tells): count; USD size ``px * sz`` -- p10/p50/p90/p99 (numpy's linear
  interpolation) and the mean; a lognormal fit by maximum likelihood (``ln_usd_mu``,
  ``ln_usd_sigma``: mean and population standard deviation of ``ln(USD size)``); the rate
  ``per_s = (count - 1) / span_s`` (``span_s`` from the first to the last trade; i.e. one over the
  mean gap); the gaps between consecutive rows, p50/p90 in seconds; the aggressor mix: share of
  taker buys by count and by notional.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import numpy as np

Side = Literal["buy", "sell"]
Num = Decimal | int | float
"""A price or size: ``Decimal`` from the readers; ``int`` / ``float`` accepted from generated markets."""
Level = tuple[Num, Num]
"""``(price, size)`` of one book level."""

BANDS_BPS: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 25.0, 50.0)
"""The depth bands: cumulative notional within ±b bps of mid."""
SIG_DIGITS = 6
"""Significant digits of the floats stored in ``calibration.toml``."""
CALIBRATION_RESOURCE = "data/calibration.toml"
REFERENCES = ("hyperliquid_btc", "binance_btcusdt", "binance_ethusdt")
"""The references in ``calibration.toml`` (:func:`load_reference`)."""


# --------------------------------------------------------------------------------------------------
# The capture


@dataclass(frozen=True)
class BookSnapshot:
    """One state of the book. ``bids`` best (highest) first, ``asks`` best (lowest) first.

    The listed levels are the whole book from the best price out to ``bid_known_to`` /
    ``ask_known_to`` inclusive (``None``: the last listed level); beyond that nothing is known."""

    ts_ms: int
    bids: Sequence[Level]
    asks: Sequence[Level]
    bid_known_to: Num | None = None
    ask_known_to: Num | None = None


@dataclass(frozen=True)
class Trade:
    """One fill: time, price, size (coin) and the taker's side."""

    ts_ms: int
    px: Num
    sz: Num
    side: Side


@dataclass
class Capture:
    """Book snapshots and trades of one market, each list in time order.

    ``counts`` says what the reader saw (lines, messages, gaps, ...); ``book_sampling`` how the
    snapshots were taken."""

    venue: str
    symbol: str
    source: str
    books: list[BookSnapshot]
    trades: list[Trade]
    book_sampling: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def start_ms(self) -> int:
        """Time of the first book snapshot (else of the first trade; 0 if empty)."""
        if self.books:
            return self.books[0].ts_ms
        return self.trades[0].ts_ms if self.trades else 0

    @property
    def end_ms(self) -> int:
        """Time of the last book snapshot (else of the last trade; 0 if empty)."""
        if self.books:
            return self.books[-1].ts_ms
        return self.trades[-1].ts_ms if self.trades else 0


def _lines(path: Path | str) -> Iterator[str]:
    """The raw JSON of each ``<local receive ns> <raw JSON>`` line of a (gzip) capture."""
    path = Path(path)
    with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")) as fh:
        for line in fh:
            _, _, raw = line.partition(" ")
            if raw.strip():
                yield raw


def read_hyperliquid_capture(path: Path | str) -> Capture:
    """A Hyperliquid WebSocket capture (``l2Book`` and ``trades`` channels, one coin).

    Each ``l2Book`` message is a full snapshot of the venue's 20 levels a side; it becomes one
    :class:`BookSnapshot` at the message's ``time``, known only out to its last level. Trades are
    deduplicated by ``tid`` (a reconnect re-sends recent ones) and time-stamped with their ``time``;
    ``side`` ``"B"`` is a taker buy, ``"A"`` a taker sell. The first ``trades`` message after
    subscribing carries the venue's recent trades, from before the capture started; they are kept
    (``counts["trades_before_first_book"]``)."""
    books: list[BookSnapshot] = []
    trades: list[Trade] = []
    seen: set[int | str] = set()
    counts: dict[str, int] = {"lines": 0, "l2Book": 0, "trades_messages": 0, "trades": 0, "trades_duplicate": 0}
    coins: set[str] = set()
    for raw in _lines(path):
        counts["lines"] += 1
        msg = json.loads(raw)
        channel = msg.get("channel")
        data = msg.get("data")
        if channel == "l2Book":
            counts["l2Book"] += 1
            coins.add(data["coin"])
            bid_levels, ask_levels = data["levels"]
            books.append(BookSnapshot(
                ts_ms=int(data["time"]),
                bids=tuple((Decimal(lv["px"]), Decimal(lv["sz"])) for lv in bid_levels),
                asks=tuple((Decimal(lv["px"]), Decimal(lv["sz"])) for lv in ask_levels)))
        elif channel == "trades":
            counts["trades_messages"] += 1
            for t in data:
                tid = t.get("tid", t.get("hash"))
                if tid is not None and tid in seen:
                    counts["trades_duplicate"] += 1
                    continue
                if tid is not None:
                    seen.add(tid)
                coins.add(t["coin"])
                counts["trades"] += 1
                trades.append(Trade(int(t["time"]), Decimal(t["px"]), Decimal(t["sz"]),
                                    "buy" if t["side"] == "B" else "sell"))
        else:
            counts["other"] = counts.get("other", 0) + 1
    books.sort(key=lambda b: b.ts_ms)
    trades.sort(key=lambda t: t.ts_ms)
    first_book = books[0].ts_ms if books else 0
    counts["trades_before_first_book"] = sum(t.ts_ms < first_book for t in trades)
    return Capture(venue="hyperliquid", symbol=",".join(sorted(coins)), source=Path(path).name, books=books,
                   trades=trades, counts=counts,
                   book_sampling="every l2Book message (the venue's 20-level snapshot), at its time")


class _DiffBook:
    """A Binance USDⓈ-M book rebuilt from a REST snapshot and ``depthUpdate`` diffs
    (Binance, "How to manage a local order book correctly"):

    1. diffs before a usable snapshot are buffered;
    2. on a snapshot with ``lastUpdateId = L``: buffered diffs with ``u < L`` are dropped; the first
       applied one must have ``U <= L <= u`` (``U <= L + 1`` accepted);
    3. every later diff must have ``pu`` == the previous diff's ``u``;
    4. a break counts a gap: the book is dropped and diffs wait for the next snapshot line.

    A size of 0 removes the level. The snapshot holds a limited number of levels (1,000 a side) and
    diffs only tell about levels that change, so the book is known from the best price out to the
    snapshot's deepest bid and ask (fixed in price); :meth:`snapshot` lists only that range."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.synced = False
        self.pending_id: int | None = None
        self.last_u = 0
        self.buffer: list[dict[str, Any]] = []
        self.bid_edge = Decimal(0)
        self.ask_edge = Decimal(0)
        self.prices: dict[str, Decimal] = {}  # the Decimal of each price string seen (prices recur)

    def on_snapshot(self, snap: dict[str, Any]) -> list[dict[str, Any]]:
        """Load a REST snapshot if not in sync; returns the buffered diffs to replay."""
        if self.synced:
            self.counts["snapshots_ignored"] += 1
            return []
        self.counts["snapshots_used"] += 1
        self.bids = {Decimal(p): Decimal(q) for p, q in snap["bids"] if Decimal(q) != 0}
        self.asks = {Decimal(p): Decimal(q) for p, q in snap["asks"] if Decimal(q) != 0}
        self.bid_edge = min(self.bids) if self.bids else Decimal(0)
        self.ask_edge = max(self.asks) if self.asks else Decimal("Infinity")
        self.pending_id = int(snap["lastUpdateId"])
        pending, self.buffer = self.buffer, []
        return pending

    def on_diff(self, ev: dict[str, Any]) -> bool:
        """Feed one diff; True if it was applied to the book."""
        if not self.synced:
            lid = self.pending_id
            if lid is None:
                self.buffer.append(ev)
                return False
            if ev["u"] < lid:
                self.counts["depth_dropped_before_snapshot"] += 1
                return False
            if ev["U"] > lid + 1:
                self._gap(ev)
                return False
            self.synced, self.pending_id = True, None
        elif ev.get("pu") != self.last_u:
            self._gap(ev)
            return False
        prices = self.prices
        for side, rows in ((self.bids, ev["b"]), (self.asks, ev["a"])):
            for p, q in rows:
                px = prices.get(p)
                if px is None:
                    px = prices[p] = Decimal(p)
                sz = Decimal(q)
                if sz:
                    side[px] = sz
                else:
                    side.pop(px, None)
        self.last_u = ev["u"]
        self.counts["depth_applied"] += 1
        return True

    def _gap(self, ev: dict[str, Any]) -> None:
        self.counts["depth_gaps"] += 1
        self.synced, self.pending_id = False, None
        self.bids, self.asks = {}, {}
        self.buffer = [ev]

    def snapshot(self, ts_ms: int) -> BookSnapshot:
        """The known book now: levels from the best price out to the snapshot's edge; when the best
        price is already past the edge, the best level alone (known to itself)."""
        bids = sorted((p for p in self.bids if p >= self.bid_edge), reverse=True)
        asks = sorted(p for p in self.asks if p <= self.ask_edge)
        bid_to: Decimal = self.bid_edge
        ask_to: Decimal = self.ask_edge
        if not bids and self.bids:
            bids, bid_to = [max(self.bids)], max(self.bids)
        if not asks and self.asks:
            asks, ask_to = [min(self.asks)], min(self.asks)
        return BookSnapshot(ts_ms, tuple((p, self.bids[p]) for p in bids), tuple((p, self.asks[p]) for p in asks),
                            bid_to, ask_to)


def read_binance_usdm_capture(path: Path | str, *, sample_ms: int = 1000) -> Capture:
    """A Binance USDⓈ-M capture (combined streams ``<sym>@depth@0ms``, ``@bookTicker``, ``@trade``
    and a REST depth snapshot line), one symbol.

    The book is rebuilt from the snapshot and the diffs by the U/u/pu procedure (:class:`_DiffBook`)
    in file order, and sampled on a grid of ``sample_ms`` of exchange time (the diffs' ``T``): the
    snapshot at grid time ``g`` is the book after every applied diff with ``T <= g``, from the first
    applied diff to the last (while the book is out of sync nothing is sampled, nor between the last
    diff before a gap and the gap). Each snapshot lists the book out to the REST snapshot's deepest
    bid and ask (``bid_known_to`` / ``ask_known_to``), the range the capture knows in full. A time
    grid weighs the book by time, as Hyperliquid's regular pushes do; 1 s keeps the ~2,000-level
    snapshots of a 6-minute capture small. ``bookTicker`` lines are counted, not used. Trades:
    ``T``, ``p``, ``q``; ``m`` (buyer is the maker) true means a taker sell."""
    if sample_ms <= 0:
        raise ValueError("sample_ms must be positive")
    counts: dict[str, int] = {k: 0 for k in ("lines", "snapshots", "snapshots_used", "snapshots_ignored", "depth",
                                             "depth_applied", "depth_dropped_before_snapshot", "depth_gaps",
                                             "bookTicker", "trades", "other")}
    book = _DiffBook(counts)
    books: list[BookSnapshot] = []
    trades: list[Trade] = []
    symbols: set[str] = set()
    next_grid: int | None = None  # the next sampling time; None while the book is out of sync
    last_ts = 0  # the last applied diff's time

    def apply(ev: dict[str, Any]) -> None:
        nonlocal next_grid, last_ts
        ts = int(ev.get("T") or ev["E"])
        if book.synced and next_grid is not None and ev.get("pu") == book.last_u:
            # the book before this diff held until ts (after a gap nobody knows when the missed diff came)
            while next_grid < ts:
                books.append(book.snapshot(next_grid))
                next_grid += sample_ms
        if book.on_diff(ev):
            if next_grid is None:
                next_grid = -(-ts // sample_ms) * sample_ms
        else:
            next_grid = None
        if next_grid is not None:
            last_ts = max(last_ts, ts)

    for raw in _lines(path):
        counts["lines"] += 1
        if '@bookTicker"' in raw[:48]:
            counts["bookTicker"] += 1
            continue
        msg = json.loads(raw)
        data = msg["data"] if "stream" in msg and "data" in msg else msg
        if "lastUpdateId" in data:
            counts["snapshots"] += 1
            for ev in book.on_snapshot(data):
                apply(ev)
            continue
        e = data.get("e")
        if e == "depthUpdate":
            counts["depth"] += 1
            symbols.add(data["s"])
            apply(data)
        elif e == "trade":
            counts["trades"] += 1
            symbols.add(data["s"])
            trades.append(Trade(int(data.get("T") or data["E"]), Decimal(data["p"]), Decimal(data["q"]),
                                "sell" if data["m"] else "buy"))
        elif e == "bookTicker":
            counts["bookTicker"] += 1
        else:
            counts["other"] += 1
    if book.synced and next_grid is not None:
        while next_grid <= last_ts:
            books.append(book.snapshot(next_grid))
            next_grid += sample_ms
    counts["depth_unsynced_at_end"] = len(book.buffer)
    trades.sort(key=lambda t: t.ts_ms)
    return Capture(venue="binance-usdm", symbol=",".join(sorted(symbols)), source=Path(path).name, books=books,
                   trades=trades, counts=counts,
                   book_sampling=f"rebuilt book (REST snapshot + depth diffs, U/u/pu) every {sample_ms} ms of "
                                 "exchange time, known out to the REST snapshot's deepest levels")


# --------------------------------------------------------------------------------------------------
# The statistics


@dataclass(frozen=True)
class SpreadStats:
    """Quoted spread in bps of mid, over book snapshots."""

    samples: int
    median_bps: float
    p90_bps: float
    mean_bps: float
    min_bps: float


@dataclass(frozen=True)
class DepthBand:
    """Median cumulative notional (USD) within ±``bps`` of mid, per side (see the module docstring)."""

    bps: float
    bid_usd: float
    """median over all snapshots (a lower bound when ``truncated``)"""
    ask_usd: float
    bid_known_share: float
    """share of snapshots whose known book reaches the band's far edge"""
    ask_known_share: float
    truncated: bool
    """a known share below 1 on either side: ``bid_usd`` / ``ask_usd`` are lower bounds"""
    bid_usd_known: float
    """median over the snapshots that know the band whole (nan: none does); not a bound, an estimate"""
    ask_usd_known: float


@dataclass(frozen=True)
class DepthStats:
    """The depth profile over book snapshots, and how far the known book reached."""

    samples: int
    reach_bid_bps: float
    reach_ask_bps: float
    bands: tuple[DepthBand, ...]

    def band(self, bps: float) -> DepthBand | None:
        return next((b for b in self.bands if b.bps == bps), None)


@dataclass(frozen=True)
class TradeStats:
    """Trade size (USD), rate, gaps and aggressor mix over a list of fills or prints."""

    count: int
    span_s: float
    per_s: float
    usd_p10: float
    usd_p50: float
    usd_p90: float
    usd_p99: float
    usd_mean: float
    ln_usd_mu: float
    ln_usd_sigma: float
    gap_p50_s: float
    gap_p90_s: float
    buy_share_count: float
    buy_share_notional: float


@dataclass(frozen=True)
class MarketStats:
    """What the agents must reproduce. ``trades`` per fill; ``prints`` per taker order (fills with
    the same millisecond and taker side merged). ``None``: the capture had no data for it."""

    spread: SpreadStats | None
    depth: DepthStats | None
    trades: TradeStats | None
    prints: TradeStats | None

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dicts (a TOML table per section, ``within_<b>bps`` per depth band)."""
        out: dict[str, Any] = {}
        if self.spread is not None:
            out["spread"] = _plain(self.spread)
        if self.depth is not None:
            d = self.depth
            out["depth"] = {"samples": d.samples, "reach_bid_bps": d.reach_bid_bps, "reach_ask_bps": d.reach_ask_bps,
                            **{band_key(b.bps): _plain(b) for b in d.bands}}
        if self.trades is not None:
            out["trades"] = _plain(self.trades)
        if self.prints is not None:
            out["prints"] = _plain(self.prints)
        return out

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> MarketStats:
        """The inverse of :meth:`to_dict`; keys other than the fields (``source``, ``method``) are ignored."""
        depth = None
        if "depth" in table:
            d = table["depth"]
            bands = tuple(_build(DepthBand, v) for k, v in d.items() if k.startswith("within_") and isinstance(v, dict))
            depth = DepthStats(int(d["samples"]), float(d["reach_bid_bps"]), float(d["reach_ask_bps"]),
                               tuple(sorted(bands, key=lambda b: b.bps)))
        return cls(spread=_build(SpreadStats, table["spread"]) if "spread" in table else None, depth=depth,
                   trades=_build(TradeStats, table["trades"]) if "trades" in table else None,
                   prints=_build(TradeStats, table["prints"]) if "prints" in table else None)

    def rounded(self, digits: int = SIG_DIGITS) -> MarketStats:
        """The same with every float rounded to ``digits`` significant digits (as stored)."""
        return MarketStats.from_dict(_round_tree(self.to_dict(), digits))


def band_key(bps: float) -> str:
    """``within_10bps`` for 10.0 (the TOML key of a depth band)."""
    return f"within_{bps:g}bps".replace(".", "_")


def _plain(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _build(kind: Any, table: Mapping[str, Any]) -> Any:
    args: dict[str, Any] = {}
    for f in fields(kind):
        v = table[f.name]
        args[f.name] = int(v) if f.type in ("int", int) else bool(v) if f.type in ("bool", bool) else float(v)
    return kind(**args)


def round_sig(x: float, digits: int = SIG_DIGITS) -> float:
    """``x`` rounded to ``digits`` significant digits (0, inf and nan unchanged)."""
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits}g}")


def _round_tree(tree: Any, digits: int) -> Any:
    if isinstance(tree, dict):
        return {k: _round_tree(v, digits) for k, v in tree.items()}
    if isinstance(tree, float):
        return round_sig(tree, digits)
    return tree


def _percentiles(values: Sequence[float], qs: Sequence[float]) -> list[float]:
    arr = np.asarray(values, dtype=np.float64)
    return [float(v) for v in np.percentile(arr, list(qs))]


def _mid(book: BookSnapshot) -> float | None:
    if not book.bids or not book.asks:
        return None
    return (float(book.bids[0][0]) + float(book.asks[0][0])) / 2


def spread_stats(books: Sequence[BookSnapshot]) -> SpreadStats | None:
    """Spread in bps of mid over the snapshots that have both sides (None if none has)."""
    values: list[float] = []
    for b in books:
        mid = _mid(b)
        if mid is not None and mid > 0:
            values.append((float(b.asks[0][0]) - float(b.bids[0][0])) / mid * 1e4)
    if not values:
        return None
    median, p90 = _percentiles(values, (50, 90))
    positive = [v for v in values if v > 0]
    return SpreadStats(len(values), median, p90, float(np.mean(values)), min(positive) if positive else 0.0)


def depth_stats(books: Sequence[BookSnapshot], bands_bps: Sequence[float] = BANDS_BPS) -> DepthStats | None:
    """The depth profile over the snapshots that have both sides (None if none has)."""
    bands = sorted(bands_bps)
    per: dict[str, list[list[float]]] = {s: [[] for _ in bands] for s in ("bid", "ask")}
    whole: dict[str, list[list[float]]] = {s: [[] for _ in bands] for s in ("bid", "ask")}
    reach: dict[str, list[float]] = {"bid": [], "ask": []}
    samples = 0
    for b in books:
        mid = _mid(b)
        if mid is None or mid <= 0:
            continue
        samples += 1
        for side, levels, edge, sign in (("bid", b.bids, b.bid_known_to, -1), ("ask", b.asks, b.ask_known_to, 1)):
            edge_px = float(edge if edge is not None else levels[-1][0])
            reach[side].append(sign * (edge_px - mid) / mid * 1e4)
            total, j, n = 0.0, 0, len(levels)
            for i, band in enumerate(bands):  # one pass out from the best level, the bands in increasing order
                bound = mid * (1 + sign * band / 1e4)
                while j < n:
                    px = float(levels[j][0])
                    if (px < bound) if sign < 0 else (px > bound):
                        break
                    total += px * float(levels[j][1])
                    j += 1
                per[side][i].append(total)
                if (edge_px <= bound) if sign < 0 else (edge_px >= bound):  # the known book reaches the far edge
                    whole[side][i].append(total)
    if not samples:
        return None
    out: list[DepthBand] = []
    for i, band in enumerate(bands):
        bid_share, ask_share = len(whole["bid"][i]) / samples, len(whole["ask"][i]) / samples
        bid_known, ask_known = (float(np.median(w[i])) if w[i] else math.nan for w in (whole["bid"], whole["ask"]))
        out.append(DepthBand(float(band), float(np.median(per["bid"][i])), float(np.median(per["ask"][i])),
                             bid_share, ask_share, bid_share < 1 or ask_share < 1, bid_known, ask_known))
    return DepthStats(samples, float(np.median(reach["bid"])), float(np.median(reach["ask"])), tuple(out))


def merge_prints(trades: Sequence[Trade]) -> list[Trade]:
    """Fills merged into taker prints: consecutive fills with the same ``ts_ms`` and taker side
    become one, its size the sum and its price the size-weighted mean (``float``)."""
    out: list[Trade] = []
    run: list[Trade] = []

    def flush() -> None:
        if run:
            sz = sum(float(t.sz) for t in run)
            usd = sum(float(t.px) * float(t.sz) for t in run)
            out.append(Trade(run[0].ts_ms, usd / sz if sz else float(run[0].px), sz, run[0].side))

    for t in trades:
        if run and (t.ts_ms != run[0].ts_ms or t.side != run[0].side):
            flush()
            run = []
        run.append(t)
    flush()
    return out


def trade_stats(trades: Sequence[Trade]) -> TradeStats | None:
    """Size, rate, gaps and aggressor mix of time-ordered trades (None if there are none)."""
    if not trades:
        return None
    usd = [float(t.px) * float(t.sz) for t in trades]
    p10, p50, p90, p99 = _percentiles(usd, (10, 50, 90, 99))
    logs = np.log(np.asarray([u for u in usd if u > 0], dtype=np.float64))
    span_s = (trades[-1].ts_ms - trades[0].ts_ms) / 1000
    gaps = [(b.ts_ms - a.ts_ms) / 1000 for a, b in pairwise(trades)]
    gap_p50, gap_p90 = _percentiles(gaps, (50, 90)) if gaps else (math.nan, math.nan)
    buys = [u for t, u in zip(trades, usd) if t.side == "buy"]
    total = sum(usd)
    return TradeStats(
        count=len(trades), span_s=span_s, per_s=(len(trades) - 1) / span_s if span_s > 0 else math.nan,
        usd_p10=p10, usd_p50=p50, usd_p90=p90, usd_p99=p99, usd_mean=float(np.mean(usd)),
        ln_usd_mu=float(logs.mean()) if logs.size else math.nan,
        ln_usd_sigma=float(logs.std()) if logs.size else math.nan,
        gap_p50_s=gap_p50, gap_p90_s=gap_p90,
        buy_share_count=len(buys) / len(trades), buy_share_notional=sum(buys) / total if total > 0 else math.nan)


def market_stats(capture: Capture, bands_bps: Sequence[float] = BANDS_BPS) -> MarketStats:
    """The calibration statistics of a capture (real or generated); see the module docstring."""
    trades = sorted(capture.trades, key=lambda t: t.ts_ms)
    return MarketStats(spread=spread_stats(capture.books), depth=depth_stats(capture.books, bands_bps),
                       trades=trade_stats(trades), prints=trade_stats(merge_prints(trades)))


# --------------------------------------------------------------------------------------------------
# Comparing a generated market with a reference


@dataclass(frozen=True)
class Tolerances:
    """How far a generated market may be from the reference: ``(lo, hi)`` ratios
    ``generated / reference``, ``buy_share_abs`` an absolute difference. ``None`` skips the check."""

    spread: tuple[float, float] | None = (0.5, 2.0)
    """median and p90 spread."""
    depth: tuple[float, float] | None = (1 / 3, 3.0)
    """each depth band and side; a lower bound (a truncated band's side) is held to one side only."""
    trade_size_p50: tuple[float, float] | None = (0.5, 2.0)
    trade_size_p90: tuple[float, float] | None = (1 / 3, 3.0)
    trade_rate: tuple[float, float] | None = (0.5, 2.0)
    """trades per second."""
    buy_share_abs: float | None = 0.1
    """share of taker buys by count."""


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _ratio_check(what: str, gen: float, ref: float, bounds: tuple[float, float], unit: str,
                 check_lo: bool = True, check_hi: bool = True) -> str | None:
    """A violation if ``gen / ref`` is outside ``bounds`` (only the sides asked for: a figure that is a
    lower bound can only be shown too big if it is the generated one, too small if it is the reference)."""
    lo, hi = bounds
    if not math.isfinite(ref) or ref <= 0:
        return None  # no reference to hold it to (e.g. a band inside the half-spread)
    if not math.isfinite(gen):
        return f"{what}: generated is {gen} against the reference {_fmt(ref)}{unit}"
    r = gen / ref
    if (check_lo and r < lo) or (check_hi and r > hi):
        allowed = (f"×{lo:.3g}–×{hi:.3g}" if check_lo and check_hi else
                   f"at least ×{lo:.3g}: the reference is a lower bound" if check_lo else
                   f"at most ×{hi:.3g}: the generated figure is a lower bound")
        return f"{what}: generated {_fmt(gen)}{unit} is ×{r:.3g} the reference {_fmt(ref)}{unit} (allowed {allowed})"
    return None


def compare(generated: MarketStats, reference: MarketStats, tolerances: Tolerances | None = None) -> list[str]:
    """Human-readable violations of ``tolerances`` by ``generated`` against ``reference`` (empty: within
    tolerance). Checked: spread median and p90; depth per band and side (bands in both; where the
    reference's figure is a lower bound only from below, where the generated one is only from above,
    where both are not at all); for fills (``trades``) and for ``prints`` each: USD size p50 and
    p90, trades per second, share of taker buys by count. A section the reference has and the
    generated market lacks is a violation."""
    tol = tolerances or Tolerances()
    out: list[str] = []

    def add(v: str | None) -> None:
        if v is not None:
            out.append(v)

    if reference.spread is not None and tol.spread is not None:
        if generated.spread is None:
            out.append("spread: the generated market has no two-sided book")
        else:
            g, r = generated.spread, reference.spread
            add(_ratio_check("spread median", g.median_bps, r.median_bps, tol.spread, " bps"))
            add(_ratio_check("spread p90", g.p90_bps, r.p90_bps, tol.spread, " bps"))
    if reference.depth is not None and tol.depth is not None:
        if generated.depth is None:
            out.append("depth: the generated market has no two-sided book")
        else:
            for rb in reference.depth.bands:
                gb = generated.depth.band(rb.bps)
                if gb is None:
                    continue
                for side, gv, rv, g_whole, r_whole in (
                        ("bid", gb.bid_usd, rb.bid_usd, gb.bid_known_share >= 1, rb.bid_known_share >= 1),
                        ("ask", gb.ask_usd, rb.ask_usd, gb.ask_known_share >= 1, rb.ask_known_share >= 1)):
                    if g_whole or r_whole:  # two lower bounds: nothing to conclude
                        add(_ratio_check(f"depth ±{rb.bps:g} bps {side}", gv, rv, tol.depth, " USD",
                                         check_lo=g_whole, check_hi=r_whole))
    for name, g_t, r_t in (("trades", generated.trades, reference.trades), ("prints", generated.prints,
                                                                            reference.prints)):
        if r_t is None:
            continue
        if g_t is None:
            out.append(f"{name}: the generated market has none")
            continue
        if tol.trade_size_p50 is not None:
            add(_ratio_check(f"{name} size p50", g_t.usd_p50, r_t.usd_p50, tol.trade_size_p50, " USD"))
        if tol.trade_size_p90 is not None:
            add(_ratio_check(f"{name} size p90", g_t.usd_p90, r_t.usd_p90, tol.trade_size_p90, " USD"))
        if tol.trade_rate is not None:
            add(_ratio_check(f"{name} per second", g_t.per_s, r_t.per_s, tol.trade_rate, "/s"))
        if tol.buy_share_abs is not None and abs(g_t.buy_share_count - r_t.buy_share_count) > tol.buy_share_abs:
            out.append(f"{name} buy share: generated {g_t.buy_share_count:.3f} vs reference "
                       f"{r_t.buy_share_count:.3f} (allowed ±{tol.buy_share_abs:g})")
    return out


# --------------------------------------------------------------------------------------------------
# The stored references: calibration.toml


@dataclass(frozen=True)
class _Source:
    key: str
    file: str
    reader: str
    venue: str
    symbol: str
    origin: str


SOURCES = (
    _Source("hyperliquid_btcusd_20250126", "hyperliquid_btcusd_20250126.gz", "read_hyperliquid_capture",
            "hyperliquid", "BTC", "github nkaz001/hftbacktest examples/hyperliquid/ (MIT)"),
    _Source("usdm_btcusdt_20240808", "usdm_btcusdt_20240808.gz", "read_binance_usdm_capture",
            "binance-usdm", "BTCUSDT", "github nkaz001/hftbacktest examples/usdm/ (MIT)"),
    _Source("usdm_ethusdt_20240808", "usdm_ethusdt_20240808.gz", "read_binance_usdm_capture",
            "binance-usdm", "ETHUSDT", "github nkaz001/hftbacktest examples/usdm/ (MIT)"),
)

METHOD = {
    "spread": "(best ask - best bid) / mid * 1e4 per book snapshot; median, p90 (numpy linear), mean; min_bps: "
              "smallest positive spread (one tick)",
    "depth": "per snapshot and side: sum(px * sz) in USD of the levels within ±b bps of mid; median over snapshots. "
             "*_known_share: share of snapshots whose book is known out to the band's far edge; truncated = a "
             "share below 1 on either side, the median then being a lower bound. *_usd_known: the median over the "
             "snapshots that know the band whole (an estimate, not a bound; nan if none). reach_*_bps: median "
             "distance from mid to the edge of the known book",
    "trades": "one row per fill as published (Hyperliquid trades deduplicated by tid; Binance @trade). USD size "
              "px * sz: p10/p50/p90/p99 (numpy linear) and mean; ln_usd_mu / ln_usd_sigma: mean and population "
              "std of ln(USD size) (lognormal MLE); per_s = (count - 1) / span_s, span_s first to last trade; "
              "gap_p50_s / gap_p90_s: gaps between consecutive rows; buy_share_*: share of taker buys by count "
              "and by notional (Hyperliquid side B; Binance m = false)",
    "prints": "as trades, after merging consecutive fills with the same millisecond and taker side (one taker "
              "order sweeping several makers, as near as public data tells)",
}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _read(src: _Source, data_dir: Path) -> Capture:
    path = data_dir / src.file
    return read_hyperliquid_capture(path) if src.reader == "read_hyperliquid_capture" else \
        read_binance_usdm_capture(path)


def _source_table(src: _Source, cap: Capture) -> dict[str, Any]:
    start = min(cap.start_ms, cap.trades[0].ts_ms) if cap.trades else cap.start_ms
    return {
        "file": f"../shared/data/hftbacktest/{src.file}", "origin": src.origin, "venue": src.venue,
        "symbol": src.symbol, "reader": f"perpbox.agents.calibration.{src.reader}",
        "capture_date_utc": _iso(cap.start_ms)[:10], "book_start_utc": _iso(cap.start_ms),
        "book_end_utc": _iso(cap.end_ms), "book_duration_s": (cap.end_ms - cap.start_ms) / 1000,
        "first_trade_utc": _iso(start) if cap.trades else "", "book_sampling": cap.book_sampling,
        "book_snapshots": len(cap.books), **{f"count_{k}": v for k, v in sorted(cap.counts.items())},
    }


def read_sources(data_dir: Path | str) -> dict[str, Capture]:
    """The captures behind ``calibration.toml``, by source key, from ``data_dir`` (``../shared/data/hftbacktest``)."""
    return {s.key: _read(s, Path(data_dir)) for s in SOURCES}


def calibration_tables(data_dir: Path | str, captures: Mapping[str, Capture] | None = None) -> dict[str, Any]:
    """Every table of ``calibration.toml`` (unrounded) from the captures in ``data_dir``
    (``../shared/data/hftbacktest``), or from ``captures`` as :func:`read_sources` returns them."""
    caps = dict(captures) if captures is not None else read_sources(data_dir)
    stats = {k: market_stats(c).to_dict() for k, c in caps.items()}
    hl, btc, eth = (s.key for s in SOURCES)

    def sections(key: str, names: Sequence[str]) -> dict[str, Any]:
        return {n: {"source": key, **stats[key][n]} for n in names if n in stats[key]}

    return {
        "sources": {s.key: _source_table(s, caps[s.key]) for s in SOURCES},
        "hyperliquid_btc": {
            "description": "the target for the BTC market of perpbox serve: spread and depth from the Hyperliquid "
                           "BTC capture; trades and prints from Binance USDⓈ-M BTCUSDT (the Hyperliquid capture "
                           f"holds only {caps[hl].counts['trades']} fills in {caps[hl].counts['trades_messages']} "
                           "messages, its own figures are in hl_trades / hl_prints)",
            **sections(hl, ("spread", "depth")), **sections(btc, ("trades", "prints")),
            "hl_trades": {"source": hl, **stats[hl]["trades"]}, "hl_prints": {"source": hl, **stats[hl]["prints"]},
        },
        "binance_btcusdt": {"description": "Binance USDⓈ-M BTCUSDT, every statistic from its own capture",
                            **sections(btc, ("spread", "depth", "trades", "prints"))},
        "binance_ethusdt": {"description": "Binance USDⓈ-M ETHUSDT, every statistic from its own capture",
                            **sections(eth, ("spread", "depth", "trades", "prints"))},
    }


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {type(v).__name__}")


def _toml_table(name: str, table: Mapping[str, Any], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    if name and scalars:  # a table of tables only needs no header of its own
        lines += ["", f"[{name}]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
    for k, v in table.items():
        if isinstance(v, dict):
            _toml_table(f"{name}.{k}" if name else k, v, lines)


def build_calibration(data_dir: Path | str) -> str:
    """The text of ``calibration.toml``: :func:`calibration_tables` with floats rounded to
    :data:`SIG_DIGITS` significant digits, and a header saying how to regenerate it."""
    tables = _round_tree(calibration_tables(data_dir), SIG_DIGITS)
    lines = [
        "# Calibration targets for perpbox's simulated market participants (issue 19), measured from real captures.",
        "# Generated by perpbox.agents.calibration.build_calibration; do not edit by hand. Regenerate with",
        "#   .venv/bin/python -m perpbox.agents.calibration ../shared/data/hftbacktest --write",
        "# tests/unit/test_agents_calibration.py recomputes every number from the captures and compares.",
        f"# Only derived statistics are stored (floats to {SIG_DIGITS} significant digits); the captures stay in",
        "# ../shared/data. Read a reference with perpbox.agents.calibration.load_reference(name). docs/calibration.md",
        "# explains the numbers and their caveats.",
        "",
        'generated_by = "perpbox.agents.calibration.build_calibration"',
        "format = 1",
        f"bands_bps = {_toml_value(list(BANDS_BPS))}",
        f"references = {_toml_value(list(REFERENCES))}",
    ]
    _toml_table("method", METHOD, lines)
    _toml_table("", tables, lines)
    return "\n".join(lines) + "\n"


def load_calibration() -> dict[str, Any]:
    """The parsed ``calibration.toml`` shipped with the package."""
    import tomllib

    text = resources.files("perpbox.agents").joinpath(CALIBRATION_RESOURCE).read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_reference(name: str = "hyperliquid_btc", *, own_trades: bool = False) -> MarketStats:
    """A stored reference (:data:`REFERENCES`) as :class:`MarketStats`, for :func:`compare`.

    ``hyperliquid_btc`` takes its trades and prints from Binance BTCUSDT (21,313 fills); with
    ``own_trades`` from the Hyperliquid capture's own 64 fills instead (``hl_trades`` / ``hl_prints``:
    Hyperliquid's pace, ~70 times slower than Binance's, but from a tiny sample)."""
    data = load_calibration()
    if name not in REFERENCES or name not in data:
        raise KeyError(f"no calibration reference {name!r}; there are {', '.join(REFERENCES)}")
    table = dict(data[name])
    if own_trades:
        if "hl_trades" not in table:
            raise KeyError(f"{name!r} has no trades of its own other than its trades table")
        table["trades"], table["prints"] = table["hl_trades"], table["hl_prints"]
    return MarketStats.from_dict(table)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m perpbox.agents.calibration DATA_DIR [--write | -o FILE]``: print (or write) the TOML."""
    parser = argparse.ArgumentParser(prog="python -m perpbox.agents.calibration", description=main.__doc__)
    parser.add_argument("data_dir", type=Path, help="the folder of the captures: ../shared/data/hftbacktest")
    parser.add_argument("-o", "--output", type=Path, help="write the TOML here")
    parser.add_argument("--write", action="store_true", help="write the package's agents/data/calibration.toml")
    args = parser.parse_args(argv)
    text = build_calibration(args.data_dir)
    out: Path | None = Path(__file__).parent / CALIBRATION_RESOURCE if args.write else args.output
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return 0


__all__ = [
    "BANDS_BPS", "REFERENCES", "BookSnapshot", "Capture", "DepthBand", "DepthStats", "MarketStats", "SpreadStats",
    "Tolerances", "Trade", "TradeStats", "band_key", "build_calibration", "calibration_tables", "compare",
    "depth_stats", "load_calibration", "load_reference", "market_stats", "merge_prints",
    "read_binance_usdm_capture", "read_hyperliquid_capture", "read_sources", "round_sig", "spread_stats", "trade_stats",
]

if __name__ == "__main__":
    raise SystemExit(main())

"""Loader for hftbacktest-style WebSocket captures: ``<local receive ns> <raw JSON>`` lines, gzip.

What each line can be, and the table it lands in:

* Hyperliquid ``{"channel":"l2Book"}`` → ``book`` (the venue sends full 20-level snapshots);
  ``{"channel":"trades"}`` → ``trades`` (``side`` "B" = buyer aggressor → +1, "A" → -1; duplicates
  by ``tid`` dropped, as a reconnect re-sends recent trades); ``{"channel":"bbo"}`` → ``bbo``;
  ``{"channel":"activeAssetCtx"}`` → ``prices`` (mark, oracle; local time, the message has none).
* Binance (combined-stream ``{"stream","data"}`` wrapper or bare events):
  ``depthUpdate`` diffs rebuilt into a book from the REST snapshot line (``{"lastUpdateId",
  "bids","asks"}``) → ``book`` (top ``depth`` levels per side after every applied diff, or with
  ``depth=None`` the whole book the capture knows, see below);
  ``bookTicker`` → ``bbo``; ``trade`` / ``aggTrade`` → ``trades`` with the aggressor from ``m``
  (``m`` = true means the buyer was the maker, so the seller initiated: -1); ``markPriceUpdate``
  → ``prices`` (mark ``p``, index ``i`` as the oracle).
  The venue is told apart from the payload: COIN-M events carry the pair ``ps``; USDⓈ-M depth
  events carry ``pu``; spot depth events carry neither (``binance-coinm`` / ``binance-usdm`` /
  ``binance-spot``).

Sequence checks when rebuilding a Binance book (Binance's "how to manage a local order book"):

1. Depth events that arrive before a usable snapshot are buffered.
2. On a snapshot with ``lastUpdateId = L``: buffered events with ``u < L`` are dropped (already in
   the snapshot). The first applied event must bridge the snapshot: ``U <= L + 1`` and ``u >= L``.
   (USDⓈ-M's page states ``U <= L <= u``, spot's ``U <= L + 1 <= u``; we accept either.) If the first
   remaining event starts after ``L + 1`` the snapshot is too old: a gap.
3. Each following event must continue the previous one: USDⓈ-M / COIN-M ``pu == previous u``;
   spot (no ``pu``) ``U == previous u + 1``.
4. A break counts one gap; the book is discarded and events are skipped until the next snapshot
   line, from which step 2 resyncs. While the book is in sync, later snapshot lines are ignored
   (the diff-maintained book is already newer). Nothing is invented for the skipped stretch.

The whole book (``depth=None``, what ``perpbox report`` uses on a raw capture): a REST snapshot
holds a limited number of levels (1,000 a side on USDⓈ-M: about ±24 bps of BTCUSDT, ±50 bps of
ETHUSDT), and the diff stream only tells about levels that change afterwards, so beyond the
snapshot's deepest bid and ask the rebuilt book is incomplete (Binance's own guide says so: you
won't learn the quantities outside the initial snapshot unless they change). Each snapshot row
therefore keeps every level from the best price out to the deepest price of the snapshot the book
was synced from (fixed in price: when the market moves towards it the known book gets shallower;
once the best price is past it, only the best level is kept); a band reaching past that edge shows
as cut (``truncated_share``), not as a smaller figure that looks whole. Hyperliquid ``l2Book``
messages are kept whole (the venue sends 20 levels).

Timestamps: ``ts_ns`` is the venue's transaction time ``T`` when the event has it, else its event
time ``E``, else the local receive time; all in ns. COIN-M sizes are contracts (100 USD for BTC,
10 USD for the other coins); they are converted to coin units (``contracts × contract_usd / px``)
so that ``px × sz`` is a USD notional in every table.
"""

from __future__ import annotations

import gzip
import io
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import polars as pl

from perpbox.venues.l2book import BookRows, L2Book
from perpbox.venues.tables import conform, empty

MS = 1_000_000


@dataclass
class LoadResult:
    """Tables loaded from one source, keyed by channel, plus counts of what happened."""

    frames: dict[str, pl.DataFrame]
    stats: dict[str, int] = field(default_factory=dict)
    venue: str = ""


def read_lines(path: Path | str, chunk_bytes: int = 1 << 24) -> Iterator[tuple[int, bytes]]:
    """Yield ``(local_ns, raw_json)`` from a capture file (gzip or plain), read in large chunks."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    tail = b""
    with opener(path, "rb") as fh:
        while True:
            chunk = fh.read(chunk_bytes)
            if not chunk:
                break
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            for line in lines:
                head, _, raw = line.partition(b" ")
                if raw:
                    yield int(head), raw.rstrip()
    head, _, raw = tail.strip().partition(b" ")
    if raw:
        yield int(head), raw


def _coinm_contract_usd(symbol: str) -> float:
    return 100.0 if symbol.upper().startswith("BTC") else 10.0


class _BinanceDepth:
    """The U/u/pu state machine for one symbol's diff stream (see the module docstring)."""

    def __init__(self, symbol: str, depth: int | None, rows: BookRows, stats: Counter) -> None:
        self.symbol = symbol
        self.depth = depth
        self.rows = rows
        self.stats = stats
        self.book = L2Book()
        self.synced = False
        self.snapshot_id: int | None = None  # set while waiting for the bridging event
        self.last_u = 0
        self.buffer: list[tuple[int, dict]] = []
        # depth=None: per side, the key (sign × price, see BookSide) of the snapshot's deepest
        # level; the book is known up to there (None: the snapshot side was empty, keep all)
        self.edge: tuple[float | None, float | None] = (None, None)

    def on_snapshot(self, local_ns: int, snap: dict) -> None:
        if self.synced:
            self.stats["snapshots_ignored"] += 1
            return
        self.stats["snapshots_used"] += 1
        self.book.load(snap["bids"], snap["asks"])
        self.edge = (self.book.bids.keys[-1] if self.book.bids.keys else None,
                     self.book.asks.keys[-1] if self.book.asks.keys else None)
        self.snapshot_id = int(snap["lastUpdateId"])
        pending, self.buffer = self.buffer, []
        for ev_local, ev in pending:
            self.on_event(ev_local, ev)

    def on_event(self, local_ns: int, ev: dict) -> None:
        stats = self.stats
        if not self.synced:
            lid = self.snapshot_id
            if lid is None:
                self.buffer.append((local_ns, ev))
                return
            first, last = ev["U"], ev["u"]
            if last < lid:
                stats["depth_dropped_before_snapshot"] += 1
                return
            if first > lid + 1:  # the snapshot is older than the stream: cannot bridge
                self._gap(local_ns, ev)
                return
            self.synced = True
            self.snapshot_id = None
            self._apply(local_ns, ev)
            return
        pu = ev.get("pu")
        ok = pu == self.last_u if pu is not None else ev["U"] == self.last_u + 1
        if ok:
            self._apply(local_ns, ev)
        else:
            self._gap(local_ns, ev)

    def _gap(self, local_ns: int, ev: dict) -> None:
        self.stats["depth_gaps"] += 1
        self.synced = False
        self.snapshot_id = None
        self.book.clear()
        self.buffer = [(local_ns, ev)]  # a later snapshot may still bridge from this event

    def _apply(self, local_ns: int, ev: dict) -> None:
        self.book.apply(ev["b"], ev["a"])
        self.last_u = ev["u"]
        self.stats["depth_applied"] += 1
        ts = ev.get("T") or ev.get("E")
        ts_ns = ts * MS if ts else local_ns
        if self.depth is not None:
            self.rows.add_book(ts_ns, local_ns, self.symbol, self.book, self.depth)
            return
        bp, bs = _known(self.book.bids, self.edge[0])
        ap, as_ = _known(self.book.asks, self.edge[1])
        self.rows.add(ts_ns, local_ns, self.symbol, bp, bs, ap, as_)

    def finish(self) -> None:
        if self.buffer:
            self.stats["depth_unsynced_at_end"] += len(self.buffer)
            self.buffer = []


def _known(side, edge_key: float | None) -> tuple[list[float], list[float]]:
    """The levels of ``side`` from the best price out to the snapshot's deepest one (inclusive).
    When the best price itself is past that edge (the market moved beyond the snapshot's range),
    the best level alone: the mid stays known and every band shows as cut."""
    n = len(side.keys) if edge_key is None else bisect_right(side.keys, edge_key)
    return side.top(max(n, 1))


class _Columns:
    """Column lists for a flat table (bbo, trades, prices)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.cols: dict[str, list] = {n: [] for n in names}

    def add(self, *values: object) -> None:
        for col, v in zip(self.cols.values(), values):
            col.append(v)

    def __len__(self) -> int:
        return len(next(iter(self.cols.values())))


def load_capture(path: Path | str, *, venue: str | None = None, coin: str | None = None,
                 depth: int | None = 20) -> LoadResult:
    """Load one hftbacktest-style capture file into the market-data tables.

    ``venue`` / ``coin`` override the names inferred from the payload (e.g. ``coin="BTC"`` to file
    Binance's ``BTCUSDT`` under the same coin as Hyperliquid's ``BTC``). ``depth`` is the number of
    levels per side kept in each book snapshot; ``None`` keeps the whole book the capture knows
    (Binance: out to the deepest level of the REST snapshot, see the module docstring).

    Only depth diffs go through the per-event loop (the book is sequential state); bookTicker,
    trade and markPrice lines are routed by their stream name without parsing and decoded in one
    vectorised NDJSON read at the end.
    """
    stats: Counter = Counter()
    rows = BookRows()
    bbo = _Columns(["ts_ns", "local_ns", "coin", "bid_px", "bid_sz", "ask_px", "ask_sz"])
    trades = _Columns(["ts_ns", "local_ns", "coin", "px", "sz", "side", "trade_id"])
    prices = _Columns(["ts_ns", "local_ns", "coin", "mark_px", "oracle_px"])
    routed: dict[str, tuple[list[int], list[bytes]]] = {k: ([], []) for k in _ROUTED}
    books: dict[str, _BinanceDepth] = {}
    pending_snapshots: list[tuple[int, dict]] = []
    seen_tids: set = set()
    kind = {"hyperliquid": False, "coinm": False, "usdm": False}
    loads = orjson.loads

    def depth_for(symbol: str) -> _BinanceDepth:
        d = books.get(symbol)
        if d is None:
            d = books[symbol] = _BinanceDepth(symbol, depth, rows, stats)
            for snap_local, snap in pending_snapshots:  # a snapshot line names no symbol on USDⓈ-M
                d.on_snapshot(snap_local, snap)
            pending_snapshots.clear()
        return d

    for local_ns, raw in read_lines(path):
        stats["lines"] += 1
        route = _route(raw)
        if route is not None:
            stats[route] += 1
            bucket = routed[route]
            bucket[0].append(local_ns)
            bucket[1].append(raw if raw.startswith(b'{"stream"') else b'{"data":' + raw + b"}")
            continue
        msg = loads(raw)
        if "channel" in msg:
            kind["hyperliquid"] = True
            _hyperliquid(msg, local_ns, rows, bbo, trades, prices, seen_tids, depth, stats)
            continue
        data = msg.get("data", msg) if "stream" in msg else msg
        if "lastUpdateId" in data:
            stats["snapshots"] += 1
            symbol = data.get("symbol")
            if symbol is None and len(books) == 1:
                symbol = next(iter(books))
            if symbol is None:
                pending_snapshots.append((local_ns, data))
            else:
                depth_for(symbol).on_snapshot(local_ns, data)
            continue
        e = data.get("e")
        if "ps" in data:
            kind["coinm"] = True
        if e == "depthUpdate":
            stats["depth"] += 1
            if "pu" in data:
                kind["usdm"] = True
            depth_for(data["s"]).on_event(local_ns, data)
        elif e in _EVENT_ROUTE or (e is None and "b" in data and "A" in data):  # bare spot bookTicker: no "e"
            # the fast path in _route missed it (non-compact JSON, bare event): re-serialise once
            name = _EVENT_ROUTE.get(e, "bookTicker")
            stats[name] += 1
            routed[name][0].append(local_ns)
            routed[name][1].append(orjson.dumps({"data": data}))
        else:
            stats["unknown"] += 1
    for d in books.values():
        d.finish()

    parsed = {name: _parse_routed(name, *routed[name]) for name in _ROUTED if routed[name][0]}
    if any("ps" in f.columns and f["ps"].is_not_null().any() for f in parsed.values()):
        kind["coinm"] = True
    if venue is None:
        if kind["hyperliquid"]:
            venue = "hyperliquid"
        elif kind["coinm"]:
            venue = "binance-coinm"
        elif kind["usdm"]:
            venue = "binance-usdm"
        else:
            venue = "binance-spot"
    inverse = kind["coinm"]
    frames = _frames(venue, rows, bbo, trades, prices, parsed, inverse)
    if coin is not None:
        frames = {ch: f.with_columns(pl.lit(coin, dtype=pl.Utf8).alias("coin")) for ch, f in frames.items()}
    return LoadResult(frames=frames, stats=dict(stats), venue=venue)


_ROUTED = ("bookTicker", "trade", "aggTrade", "markPrice")
_STREAM_SUFFIX = {b"bookTicker": "bookTicker", b"trade": "trade", b"aggTrade": "aggTrade"}
_EVENT_ROUTE = {"bookTicker": "bookTicker", "trade": "trade", "aggTrade": "aggTrade", "markPriceUpdate": "markPrice"}
_EVENT_TAG = {b'"e":"bookTicker"': "bookTicker", b'"e":"trade"': "trade", b'"e":"aggTrade"': "aggTrade",
              b'"e":"markPriceUpdate"': "markPrice"}


def _route(raw: bytes) -> str | None:
    """Which vectorised bucket a Binance line goes to, from its stream name / event tag (no parse)."""
    if raw.startswith(b'{"stream":"'):
        end = raw.find(b'"', 11)
        name = raw[11:end]
        at = name.find(b"@")
        suffix = name[at + 1:]
        if suffix in _STREAM_SUFFIX:
            return _STREAM_SUFFIX[suffix]
        if suffix.startswith(b"markPrice"):
            return "markPrice"
        return None
    if raw.startswith(b'{"e":"'):
        head = raw[:24]
        for tag, name in _EVENT_TAG.items():
            if head.startswith(b"{" + tag):
                return name
    return None


_DATA_SCHEMAS = {
    "bookTicker": {"s": pl.Utf8, "b": pl.Utf8, "B": pl.Utf8, "a": pl.Utf8, "A": pl.Utf8,
                   "T": pl.Int64, "E": pl.Int64, "ps": pl.Utf8},
    "trade": {"s": pl.Utf8, "p": pl.Utf8, "q": pl.Utf8, "T": pl.Int64, "E": pl.Int64, "t": pl.Int64,
              "m": pl.Boolean, "ps": pl.Utf8},
    "aggTrade": {"s": pl.Utf8, "p": pl.Utf8, "q": pl.Utf8, "T": pl.Int64, "E": pl.Int64, "a": pl.Int64,
                 "m": pl.Boolean, "ps": pl.Utf8},
    "markPrice": {"s": pl.Utf8, "p": pl.Utf8, "i": pl.Utf8, "E": pl.Int64, "ps": pl.Utf8},
}


def _parse_routed(name: str, local: list[int], raws: list[bytes]) -> pl.DataFrame:
    """Decode one bucket of ``{"data": {...}}`` lines in a single NDJSON read."""
    schema = {"data": pl.Struct(_DATA_SCHEMAS[name])}
    frame = pl.read_ndjson(io.BytesIO(b"\n".join(raws)), schema=schema).unnest("data")
    ts = pl.coalesce(pl.col("T"), pl.col("E")) * MS if "T" in frame.columns else pl.col("E") * MS
    return frame.with_columns(
        pl.Series("local_ns", local, dtype=pl.Int64),
    ).with_columns(pl.coalesce(ts, pl.col("local_ns")).alias("ts_ns"))


def _hyperliquid(msg: dict, local_ns: int, rows: BookRows, bbo: _Columns, trades: _Columns,
                 prices: _Columns, seen_tids: set, depth: int | None, stats: Counter) -> None:
    channel = msg["channel"]
    data = msg.get("data")
    if channel == "l2Book":
        stats["l2Book"] += 1
        bids, asks = data["levels"]
        bids, asks = bids[:depth], asks[:depth]
        rows.add(data["time"] * MS, local_ns, data["coin"],
                 [float(lv["px"]) for lv in bids], [float(lv["sz"]) for lv in bids],
                 [float(lv["px"]) for lv in asks], [float(lv["sz"]) for lv in asks])
    elif channel == "trades":
        for t in data:
            stats["trades"] += 1
            tid = t.get("tid")
            if tid is not None:
                if tid in seen_tids:
                    stats["trades_duplicate"] += 1
                    continue
                seen_tids.add(tid)
            trades.add(t["time"] * MS, local_ns, t["coin"], float(t["px"]), float(t["sz"]),
                       1 if t["side"] == "B" else -1, str(tid if tid is not None else t.get("hash", "")))
    elif channel == "bbo":
        stats["bbo"] += 1
        bid, ask = data["bbo"]
        if bid is None or ask is None:
            return
        bbo.add(data["time"] * MS, local_ns, data["coin"], float(bid["px"]), float(bid["sz"]),
                float(ask["px"]), float(ask["sz"]))
    elif channel == "activeAssetCtx":
        stats["activeAssetCtx"] += 1
        ctx = data["ctx"]
        mark = ctx.get("markPx")
        oracle = ctx.get("oraclePx")
        prices.add(local_ns, local_ns, data["coin"], float(mark) if mark else None,
                   float(oracle) if oracle else None)
    else:
        stats["unknown"] += 1


def _frames(venue: str, rows: BookRows, bbo: _Columns, trades: _Columns, prices: _Columns,
            parsed: dict[str, pl.DataFrame], inverse: bool) -> dict[str, pl.DataFrame]:
    f64 = pl.Float64
    parts: dict[str, list[pl.DataFrame]] = {"bbo": [], "trades": [], "prices": []}
    for channel, cols in (("bbo", bbo), ("trades", trades), ("prices", prices)):
        if len(cols):
            parts[channel].append(pl.DataFrame(cols.cols))
    if "bookTicker" in parsed:
        parts["bbo"].append(parsed["bookTicker"].select(
            "ts_ns", "local_ns", pl.col("s").alias("coin"), pl.col("b").cast(f64).alias("bid_px"),
            pl.col("B").cast(f64).alias("bid_sz"), pl.col("a").cast(f64).alias("ask_px"),
            pl.col("A").cast(f64).alias("ask_sz")))
    for name, id_col in (("trade", "t"), ("aggTrade", "a")):
        if name in parsed:
            parts["trades"].append(parsed[name].select(
                "ts_ns", "local_ns", pl.col("s").alias("coin"), pl.col("p").cast(f64).alias("px"),
                pl.col("q").cast(f64).alias("sz"),
                pl.when(pl.col("m")).then(-1).otherwise(1).cast(pl.Int8).alias("side"),
                pl.col(id_col).cast(pl.Utf8).alias("trade_id")))
    if "markPrice" in parsed:
        parts["prices"].append(parsed["markPrice"].select(
            "ts_ns", "local_ns", pl.col("s").alias("coin"), pl.col("p").cast(f64).alias("mark_px"),
            pl.col("i").cast(f64, strict=False).alias("oracle_px")))

    out: dict[str, pl.DataFrame] = {}
    if len(rows):
        scale = None
        if inverse:
            coins = set(rows.coin)
            if len(coins) != 1:
                raise ValueError("COIN-M capture with several symbols: load one symbol per file")
            scale = _coinm_contract_usd(next(iter(coins)))
        out["book"] = rows.frame(venue, size_scale=scale).sort("ts_ns", maintain_order=True)
    for channel, frames in parts.items():
        if not frames:
            continue
        frame = pl.concat([conform(channel, f.with_columns(pl.lit(venue).alias("venue"))) for f in frames])
        if inverse and channel in ("bbo", "trades"):
            scale = _coinm_contract_usd(frame["coin"][0])
            if channel == "bbo":
                frame = frame.with_columns((pl.col("bid_sz") * scale / pl.col("bid_px")).alias("bid_sz"),
                                           (pl.col("ask_sz") * scale / pl.col("ask_px")).alias("ask_sz"))
            else:
                frame = frame.with_columns((pl.col("sz") * scale / pl.col("px")).alias("sz"))
        out[channel] = frame.sort("ts_ns", maintain_order=True)
    return out


def frames_or_empty(result: LoadResult, channel: str) -> pl.DataFrame:
    """``result.frames[channel]`` or an empty table of that channel."""
    return result.frames.get(channel, empty(channel))


__all__ = ["LoadResult", "frames_or_empty", "load_capture", "read_lines"]

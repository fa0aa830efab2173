"""``perpbox record``: a Hyperliquid(-compatible) WebSocket recorder into the Parquet dataset.

Stream frames are turned into rows of the dataset tables (l2Book→book, bbo→bbo, trades→trades,
activeAssetCtx→prices; see :mod:`perpbox.venues.tables`), buffered, and appended with
:func:`perpbox.venues.dataset.write_chunk` every ``flush_seconds`` or ``flush_rows`` rows. Chunks are
immutable files named by their first timestamp, so a new run into the same directory resumes by
appending and nothing is ever overwritten. Stopping (Ctrl-C, SIGTERM, ``duration``) flushes what is
buffered. Gaps the stream reports (reconnects, silences, book time going backwards) are appended to
``OUT/gaps.jsonl`` so later analysis can exclude those windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from perpbox.venues.dataset import write_chunk
from perpbox.venues.hyperliquid import Gap, HyperliquidStream, WsMessage, subscriptions
from perpbox.venues.tables import SCHEMAS

#: Stream channel → dataset table.
CHANNEL_TABLE = {"l2Book": "book", "bbo": "bbo", "trades": "trades", "activeAssetCtx": "prices"}


def _px(level: dict[str, Any] | None, key: str) -> float | None:
    return float(level[key]) if level else None


def rows_for(msg: WsMessage, venue: str) -> tuple[str, list[dict[str, Any]]] | None:
    """(table, rows) for one stream frame; None for channels the dataset does not store."""
    d = msg.data
    ln = msg.local_ns
    if msg.channel == "l2Book":
        bids, asks = d["levels"]
        return "book", [{
            "ts_ns": int(d["time"]) * 1_000_000, "local_ns": ln, "venue": venue, "coin": d["coin"],
            "bid_px": [float(x["px"]) for x in bids], "bid_sz": [float(x["sz"]) for x in bids],
            "ask_px": [float(x["px"]) for x in asks], "ask_sz": [float(x["sz"]) for x in asks]}]
    if msg.channel == "bbo":
        bid, ask = d["bbo"]
        return "bbo", [{"ts_ns": int(d["time"]) * 1_000_000, "local_ns": ln, "venue": venue, "coin": d["coin"],
                        "bid_px": _px(bid, "px"), "bid_sz": _px(bid, "sz"),
                        "ask_px": _px(ask, "px"), "ask_sz": _px(ask, "sz")}]
    if msg.channel == "trades":
        return "trades", [{"ts_ns": int(t["time"]) * 1_000_000, "local_ns": ln, "venue": venue, "coin": t["coin"],
                           "px": float(t["px"]), "sz": float(t["sz"]), "side": 1 if t["side"] == "B" else -1,
                           "trade_id": str(t.get("tid", ""))} for t in d]
    if msg.channel == "activeAssetCtx":
        ctx = d["ctx"]
        return "prices", [{"ts_ns": ln, "local_ns": ln, "venue": venue, "coin": d["coin"],
                           "mark_px": _px(ctx, "markPx"), "oracle_px": _px(ctx, "oraclePx")}]
    return None


@dataclass
class RecorderStats:
    started: float = field(default_factory=time.monotonic)
    messages: Counter[str] = field(default_factory=Counter)     # per stream channel
    rows_written: Counter[str] = field(default_factory=Counter)  # per table
    files: int = 0
    flushes: int = 0
    gaps: list[Gap] = field(default_factory=list)
    reconnects: int = 0


class Recorder:
    def __init__(self, url: str, coins: Sequence[str], channels: Sequence[str], out: Path | str, *,
                 venue: str = "hyperliquid", flush_seconds: float = 10.0, flush_rows: int = 20_000,
                 stream_options: dict[str, Any] | None = None) -> None:
        unknown = [c for c in channels if c not in CHANNEL_TABLE]
        if unknown:
            raise ValueError(f"cannot record {unknown}; channels: {', '.join(CHANNEL_TABLE)}")
        self.out = Path(out)
        self.venue = venue
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self.stream = HyperliquidStream(url, subscriptions(coins, channels), **(stream_options or {}))
        self.buffers: dict[str, list[dict[str, Any]]] = {t: [] for t in SCHEMAS}
        self.stats = RecorderStats()

    @property
    def buffered(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    def handle(self, item: WsMessage | Gap) -> None:
        if isinstance(item, Gap):
            self.stats.gaps.append(item)
            if item.reason == "reconnect":
                self.stats.reconnects += 1
            self.out.mkdir(parents=True, exist_ok=True)
            with (self.out / "gaps.jsonl").open("ab") as f:
                f.write(orjson.dumps({"venue": self.venue, **item.__dict__}) + b"\n")
            return
        self.stats.messages[item.channel] += 1
        got = rows_for(item, self.venue)
        if got is not None:
            self.buffers[got[0]].extend(got[1])
        if self.buffered >= self.flush_rows:
            self.flush()

    def flush(self) -> list[Path]:
        written: list[Path] = []
        for table, rows in self.buffers.items():
            if not rows:
                continue
            self.buffers[table] = []
            frame = pl.DataFrame(rows, schema=SCHEMAS[table])
            written.extend(write_chunk(frame, table, self.out))
            self.stats.rows_written[table] += len(rows)
        self.stats.files += len(written)
        self.stats.flushes += 1
        return written

    async def run(self, duration: float | None = None, stop: asyncio.Event | None = None,
                  on_tick: Callable[[], None] | None = None, tick_seconds: float = 0.5) -> RecorderStats:
        """Record until ``stop`` is set or ``duration`` seconds pass, then flush and return the stats."""
        stop = stop or asyncio.Event()

        async def consume() -> None:
            async for item in self.stream:
                self.handle(item)

        async def ticker() -> None:
            last_flush = time.monotonic()
            while True:
                await asyncio.sleep(tick_seconds)
                if time.monotonic() - last_flush >= self.flush_seconds:
                    self.flush()
                    last_flush = time.monotonic()
                if on_tick is not None:
                    on_tick()

        tasks = [asyncio.create_task(consume()), asyncio.create_task(ticker())]
        waiter = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([tasks[0], waiter], timeout=duration, return_when=asyncio.FIRST_COMPLETED)
            if tasks[0] in done:
                tasks[0].result()  # surface a connection failure
        finally:
            await self.stream.close()
            for t in [*tasks, waiter]:
                t.cancel()
            for t in [*tasks, waiter]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self.flush()
            if on_tick is not None:
                on_tick()
        return self.stats


def render(rec: Recorder) -> Any:
    """A rich table of the recorder's progress."""
    from rich.table import Table

    s = rec.stats
    t = Table(title=f"perpbox record → {rec.out}  ({time.monotonic() - s.started:,.0f} s)")
    for col in ("channel", "table", "messages", "rows written", "buffered"):
        t.add_column(col, justify="right" if col not in ("channel", "table") else "left")
    for ch, table in CHANNEL_TABLE.items():
        if not any(sub.get("type") == ch for sub in rec.stream.subs):
            continue
        t.add_row(ch, table, f"{s.messages[ch]:,}", f"{s.rows_written[table]:,}", f"{len(rec.buffers[table]):,}")
    t.caption = (f"files {s.files}  flushes {s.flushes}  gaps {len(s.gaps)}  reconnects {s.reconnects}  "
                 f"errors {len(rec.stream.stats.errors)}")
    return t


def record(url: str, coins: Sequence[str], channels: Sequence[str], out: Path | str, *,
           duration: float | None = None, flush_seconds: float = 10.0, flush_rows: int = 20_000,
           live: bool = True, venue: str = "hyperliquid") -> RecorderStats:
    """Blocking entry point for the CLI: SIGINT/SIGTERM stop cleanly (buffered rows are flushed)."""
    rec = Recorder(url, coins, channels, out, venue=venue, flush_seconds=flush_seconds, flush_rows=flush_rows)

    async def main() -> RecorderStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if not live:
            return await rec.run(duration, stop)
        from rich.live import Live

        with Live(render(rec), refresh_per_second=4, transient=False) as view:
            return await rec.run(duration, stop, on_tick=lambda: view.update(render(rec)))

    return asyncio.run(main())

"""One entry point for every offline source: a dataset directory, a capture, an archive, a Tardis CSV.

``detect_format`` looks at the path (and the first bytes of a file); ``load_source`` returns the
tables it holds as ``{channel: DataFrame}``. Used by ``perpbox load`` (source → dataset) and by
``perpbox report`` (which accepts raw sources as well as a dataset directory).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from perpbox.venues import dataset
from perpbox.venues.archive import load_archive
from perpbox.venues.captures import load_capture
from perpbox.venues.tables import SCHEMAS
from perpbox.venues.tardis import load_tardis

FORMATS = ("auto", "dataset", "hftbacktest", "hl-archive", "tardis")


def detect_format(path: Path | str) -> str:
    """``dataset``, ``hftbacktest``, ``hl-archive`` or ``tardis`` for ``path``."""
    path = Path(path)
    if path.is_dir():
        if any(path.glob("venue=*")):
            return "dataset"
        if any(p.parent.name == "l2Book" for p in path.rglob("*.lz4")):
            return "hl-archive"
        raise ValueError(f"{path}: neither a dataset (venue=… folders) nor a Hyperliquid archive tree")
    if path.suffix == ".lz4":
        return "hl-archive"
    if path.name.endswith((".csv", ".csv.gz")):
        return "tardis"
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        head = fh.read(4096)
    first = head.split(b"\n", 1)[0]
    if first.startswith(b"exchange,symbol,"):
        return "tardis"
    ts, _, raw = first.partition(b" ")
    if ts.isdigit() and raw.startswith(b"{"):
        return "hftbacktest"
    if first.startswith(b'{"time"'):
        return "hl-archive"
    raise ValueError(f"{path}: unknown format (try --format)")


def load_source(path: Path | str, *, fmt: str = "auto", venue: str | None = None, coin: str | None = None,
                depth: int = 20, coins: Iterable[str] | None = None) -> tuple[dict[str, pl.DataFrame], dict]:
    """``({channel: frame}, stats)`` from one source of any supported format."""
    path = Path(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "dataset":
        frames = {}
        for channel in SCHEMAS:
            f = dataset.scan(path, channel, [venue] if venue else None, coins).collect()
            if f.height:
                frames[channel] = f
        return frames, {"format": fmt}
    if fmt == "hftbacktest":
        res = load_capture(path, venue=venue, coin=coin, depth=depth)
        return res.frames, {"format": fmt, "venue": res.venue, **res.stats}
    if fmt == "hl-archive":
        book = load_archive(path, coins=coins or ([coin] if coin else None), venue=venue or "hyperliquid",
                            depth=depth)
        if coin:
            book = book.with_columns(pl.lit(coin).alias("coin"))
        return ({"book": book} if book.height else {}), {"format": fmt, "book": book.height}
    if fmt == "tardis":
        channel, frame = load_tardis(path, venue=venue, coin=coin, depth=depth)
        return {channel: frame}, {"format": fmt, channel: frame.height}
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def merge(parts: Iterable[dict[str, pl.DataFrame]]) -> dict[str, pl.DataFrame]:
    """Concatenate several ``{channel: frame}`` maps channel by channel."""
    acc: dict[str, list[pl.DataFrame]] = {}
    for part in parts:
        for channel, frame in part.items():
            if frame.height:
                acc.setdefault(channel, []).append(frame)
    out = {}
    for ch, fs in acc.items():
        f = fs[0] if len(fs) == 1 else pl.concat(fs)
        out[ch] = f if f["ts_ns"].is_sorted() else f.sort("ts_ns", maintain_order=True)
    return out

"""The on-disk market-data dataset: Parquet files partitioned ``venue=/channel=/coin=/date=``.

Writers (the recorder, the capture/archive/Tardis loaders) append immutable chunk files; a chunk's
name carries its first timestamp and row count so re-running a load or resuming a recording never
overwrites earlier data, and a partial chunk is never visible (written to a temp name, then renamed).
Readers get a polars LazyFrame over one channel, optionally narrowed by venue and coin, which DuckDB
can also query directly (``read_parquet('DIR/**/*.parquet', hive_partitioning=true)``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, unquote

import polars as pl

from perpbox.venues.tables import SCHEMAS, conform


def _date_col() -> pl.Expr:
    return pl.from_epoch(pl.col("ts_ns"), time_unit="ns").dt.strftime("%Y-%m-%d").alias("date")


def partition_dir(root: Path, venue: str, channel: str, coin: str, date: str) -> Path:
    """Partition values are percent-encoded (``xyz:SILVER`` -> ``xyz%3ASILVER``) so every name is a
    portable directory name; the rows keep the real names."""
    return (Path(root) / f"venue={quote(venue, safe='')}" / f"channel={channel}" / f"coin={quote(coin, safe='')}"
            / f"date={date}")


def _value(part: str) -> str:
    return unquote(part.split("=", 1)[1])


def write_chunk(frame: pl.DataFrame, channel: str, root: Path | str) -> list[Path]:
    """Append ``frame`` (any column order; conformed to the channel's schema) to the dataset.

    Returns the files written (one per venue/coin/date present in the frame)."""
    if frame.height == 0:
        return []
    frame = conform(channel, frame).with_columns(_date_col())
    written: list[Path] = []
    for (venue, coin, date), part in frame.group_by(["venue", "coin", "date"], maintain_order=True):
        target = partition_dir(Path(root), str(venue), channel, str(coin), str(date))
        target.mkdir(parents=True, exist_ok=True)
        part = part.drop("date").sort("ts_ns", maintain_order=True)
        first = int(part["ts_ns"][0])
        name = f"part-{first:020d}-{part.height}"
        path = target / f"{name}.parquet"
        n = 1
        while path.exists():
            path = target / f"{name}-{n}.parquet"
            n += 1
        tmp = path.with_suffix(".parquet.tmp")
        part.write_parquet(tmp, compression="zstd")
        os.replace(tmp, path)
        written.append(path)
    return written


def files(root: Path | str, channel: str, venues: Iterable[str] | None = None,
          coins: Iterable[str] | None = None) -> list[Path]:
    """The dataset's chunk files for one channel, optionally narrowed by venue and coin."""
    root = Path(root)
    vset = set(venues) if venues else None
    cset = set(coins) if coins else None
    out: list[Path] = []
    for path in sorted(root.glob(f"venue=*/channel={channel}/coin=*/date=*/*.parquet")):
        venue = _value(path.parts[-5])
        coin = _value(path.parts[-3])
        if (vset is None or venue in vset) and (cset is None or coin in cset):
            out.append(path)
    return out


def scan(root: Path | str, channel: str, venues: Iterable[str] | None = None,
         coins: Iterable[str] | None = None) -> pl.LazyFrame:
    """One channel of the dataset as a LazyFrame with the channel's schema (empty if no files)."""
    paths = files(root, channel, venues, coins)
    if not paths:
        return pl.LazyFrame(schema=SCHEMAS[channel])
    return pl.scan_parquet(paths, hive_partitioning=False).select(list(SCHEMAS[channel]))


def channels(root: Path | str) -> dict[str, list[tuple[str, str]]]:
    """What the dataset holds: channel -> sorted (venue, coin) pairs."""
    out: dict[str, set[tuple[str, str]]] = {}
    for d in Path(root).glob("venue=*/channel=*/coin=*"):
        venue, channel, coin = _value(d.parts[-3]), _value(d.parts[-2]), _value(d.parts[-1])
        out.setdefault(channel, set()).add((venue, coin))
    return {k: sorted(v) for k, v in sorted(out.items())}

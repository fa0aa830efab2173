"""Recorded prices as the oracle feed (``perpbox serve --feed replay FILE``).

Accepted inputs:

* a CSV or Parquet file with a time column (``ts_ms``, ``ts_ns``, ``time`` or ``timestamp``; a
  bare number is read as ms below 10^14, ns above), a ``coin`` column and a ``px`` (or ``price``)
  column in USD;
* a perpbox market-data dataset directory (``perpbox record`` / ``perpbox load``): the oracle
  series of its ``prices`` channel where there is one, else the BBO mid, else trade prices.

Coins are matched to the exchange's markets by name after dropping a quote suffix (``BTCUSDT``,
``BTC-USD``, ``BTC/USDT:USDT`` and ``BTC-PERP`` all map to ``BTC``).  The recording is replayed in
real time from the server's start: the first record lands at start, later ones at their recorded
offsets.  After the last record a market holds its last price.  Markets the recording lacks keep
the seeded synthetic walk.  Floats are fine here: prices become integer price units before they
enter a command.
"""

from __future__ import annotations

import bisect
import re
from pathlib import Path

import polars as pl

from perpbox.config import ListedMarket
from perpbox.feeds.synthetic import SyntheticFeed
from perpbox.venues import dataset

_QUOTE = re.compile(r"([-/_]?(USDT|USDC|USD|PERP|SWAP)(:USDT|:USDC|:USD)?)+$", re.IGNORECASE)
_TIME_COLUMNS = ("ts_ms", "ts_ns", "time", "timestamp")


def base_coin(symbol: str) -> str:
    """``BTCUSDT`` / ``BTC-USD`` / ``BTC/USDT:USDT`` / ``BTC-PERP`` -> ``BTC`` (HIP-3 ``xyz:SILVER`` kept)."""
    if ":" in symbol and not _QUOTE.search(symbol):
        return symbol
    return _QUOTE.sub("", symbol) or symbol


def _ms(frame: pl.DataFrame) -> pl.Series:
    for name in _TIME_COLUMNS:
        if name in frame.columns:
            col = frame[name]
            if col.dtype.is_temporal():
                return col.dt.epoch("ms")
            col = col.cast(pl.Int64)
            if name == "ts_ns" or (name != "ts_ms" and col.max() > 10**14):
                return col // 1_000_000
            return col
    raise ValueError(f"no time column (one of {', '.join(_TIME_COLUMNS)})")


def _from_dataset(root: Path) -> pl.DataFrame:
    prices = dataset.scan(root, "prices").filter(pl.col("oracle_px").is_not_null()).collect()
    if prices.height:
        return prices.select(pl.col("ts_ns"), "coin", pl.col("oracle_px").alias("px"))
    bbo = dataset.scan(root, "bbo").collect()
    if bbo.height:
        return bbo.select("ts_ns", "coin", ((pl.col("bid_px") + pl.col("ask_px")) / 2).alias("px"))
    trades = dataset.scan(root, "trades").collect()
    if trades.height:
        return trades.select("ts_ns", "coin", "px")
    raise ValueError(f"{root}: no prices, bbo or trades in this dataset")


def load_series(path: Path) -> pl.DataFrame:
    """(``ts_ms``, ``coin``, ``px``) sorted by time, coins reduced to their base name."""
    path = Path(path)
    if path.is_dir():
        frame = _from_dataset(path)
    elif path.suffix == ".parquet":
        frame = pl.read_parquet(path)
    else:
        frame = pl.read_csv(path)
    px = "px" if "px" in frame.columns else "price"
    if "coin" not in frame.columns or px not in frame.columns:
        raise ValueError(f"{path}: needs 'coin' and 'px' (or 'price') columns")
    out = pl.DataFrame({"ts_ms": _ms(frame), "coin": frame["coin"].cast(pl.Utf8).map_elements(base_coin, pl.Utf8),
                        "px": frame[px].cast(pl.Float64)})
    return out.filter(pl.col("px") > 0).sort("ts_ms", maintain_order=True)


class ReplayFeed(SyntheticFeed):
    """The synthetic feed with recorded prices laid over the markets the recording covers."""

    def __init__(self, markets: list[ListedMarket], path: Path, seed: int, start_ts: int) -> None:
        super().__init__(markets, seed, start_ts)
        series = load_series(path)
        by_name = {m.spec.coin: m for m in markets}
        self.start_ts = start_ts
        self.t0 = int(series["ts_ms"].min()) if series.height else 0
        self.tracks: dict[int, tuple[list[int], list[float]]] = {}  # asset -> (offsets ms, price units)
        for (coin,), part in series.group_by(["coin"], maintain_order=True):
            m = by_name.get(str(coin))
            if m is None:
                continue
            scale = 10 ** m.spec.px_decimals
            self.tracks[m.spec.asset] = ((part["ts_ms"] - self.t0).to_list(), (part["px"] * scale).to_list())
        if not self.tracks:
            raise ValueError(f"{path}: no coin matches a market ({', '.join(sorted(by_name))})")
        self._apply(start_ts)

    @property
    def covered(self) -> list[int]:
        return sorted(self.tracks)

    def _apply(self, ts: int) -> None:
        offset = ts - self.start_ts
        for asset, (offsets, pxs) in self.tracks.items():
            i = bisect.bisect_right(offsets, offset) - 1
            self.px[asset] = pxs[max(i, 0)]

    def resume_from(self, prices: dict[int, int]) -> None:
        """A restart replays the recording from its start again; uncovered markets resume."""
        super().resume_from({a: p for a, p in prices.items() if a not in self.tracks})
        self._apply(self.ts)

    def step(self, ts: int) -> dict[int, float]:
        super().step(ts)
        self._apply(ts)
        return dict(self.px)

    def quote(self, asset: int) -> int:
        """Every source quotes the recorded price exactly (the recording is the market)."""
        if asset in self.tracks:
            return max(1, round(self.px[asset]))
        return super().quote(asset)

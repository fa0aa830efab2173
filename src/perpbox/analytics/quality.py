"""Market-quality metrics over the market-data tables (one venue/coin at a time), vectorised.

Every metric is a whole-column computation in polars or numpy; there is no Python loop per event
(loops run over bands, notional buckets, thresholds, regimes and weekends only). Quantiles are
numpy's ``percentile`` with linear interpolation; a statistic over no data is ``None``.

Definitions (``mid = (bid + ask) / 2``; bps = 1e-4):

* **Quoted spread** ``(ask − bid) / mid × 1e4`` over every top-of-book update (a ``bbo`` row).
* **Depth within ±b bps**: on each book snapshot, bid depth ``Σ px·sz`` over bid levels with
  ``px ≥ mid·(1 − b/1e4)``, ask depth over ask levels with ``px ≤ mid·(1 + b/1e4)``, both = sum;
  in USD (quote currency). ``truncated_share`` is the share of snapshots whose published levels all
  lie inside the band (the figure is then a lower bound: the book was cut at its depth).
  ``bid_ask_ratio`` = mean bid depth / mean ask depth.
* **Slippage** of a trade ``side × (px − mid) / mid × 1e4``, ``side`` = +1 buyer-initiated,
  −1 seller-initiated, ``mid`` from the last BBO strictly *before* the trade (an as-of join on
  ``ts_ns``; a quote stamped in the same instant as the trade may already reflect it). Positive =
  the aggressor paid away from mid. Trades with no earlier quote (or one older than
  ``max_quote_age_ns``) are counted as ``unmatched`` and left out. Notional buckets on
  ``px × sz`` in USD: ``lt_1k`` [0, 1k), ``1k_10k`` [1k, 10k), ``10k_50k`` [10k, 50k), ``gt_50k``
  [50k, ∞).
* **Basis** of series A against B: both sampled on a common grid (``step``; last value at or before
  each grid time), ``(A − B) / B × 1e4``. ``time_above.<t>`` = seconds with ``|basis| > t``;
  an *episode* is a maximal run of grid points above ``t``; ``time_to_revert_s`` = its duration
  (episodes still open at the end are excluded and counted in ``open_at_end``).
* **Sessions**: 5-minute bars (UTC-aligned). Weekend = from the weekend start to the weekend end
  of ``Weekend`` (default Sat 00:00 → Mon 00:00 UTC: crypto trades 24/7, so "weekend" is the
  calendar weekend when traditional markets are shut). Per class: mean/median notional per bar
  (bars with no trade count as 0) and realised 5-minute volatility of the mid's log return
  ``r`` per bar, equal-weighted ``sqrt(mean r²)`` and notional-weighted ``sqrt(Σ w r² / Σ w)``
  (``w`` = the bar's notional), in bps.
* **Reopen test**: for each weekend fully covered by the data, Friday's close = the last reference
  mid at or before the weekend start, the reopen = the first reference mid at or after the weekend
  end, the pre-open = the venue's last mid strictly before the weekend end. A weekend "predicts"
  when ``|pre_open − reopen| < |close − reopen|``. The reference is the benchmark (the market
  that closes) when one is given, else the venue itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from perpbox.venues.l2book import list_to_matrix
from perpbox.venues.tables import bbo_from_book

BANDS_BPS: tuple[float, ...] = (2, 5, 10, 25, 50)
NOTIONAL_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("lt_1k", 0.0, 1e3), ("1k_10k", 1e3, 1e4), ("10k_50k", 1e4, 5e4), ("gt_50k", 5e4, math.inf),
)
BASIS_THRESHOLDS_BPS: tuple[float, ...] = (5, 10, 25, 50, 100)
NS = 1_000_000_000
BAR_NS = 300 * NS
_EPS = 1e-9


# ----------------------------------------------------------------------------------------- helpers

def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _pct(x: np.ndarray, q: float) -> float | None:
    return _num(np.percentile(x, q)) if len(x) else None


def _pcts(x: np.ndarray, qs: Sequence[float]) -> list[float | None]:
    """Several percentiles with one partition of ``x`` (all ``None`` when empty)."""
    if not len(x):
        return [None] * len(qs)
    return [_num(v) for v in np.percentile(x, list(qs))]


def _mean(x: np.ndarray) -> float | None:
    return _num(x.mean()) if len(x) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def mids(bbo: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(ts_ns, mid)`` of valid quotes (both sides positive), sorted by time."""
    f = bbo.filter((pl.col("bid_px") > 0) & (pl.col("ask_px") > 0)).sort("ts_ns", maintain_order=True)
    ts = f["ts_ns"].to_numpy()
    mid = ((f["bid_px"] + f["ask_px"]) * 0.5).to_numpy()
    return ts, mid


def top_of_book(book: pl.DataFrame | None, bbo: pl.DataFrame | None) -> pl.DataFrame:
    """The quote series a venue's spread and slippage use: its ``bbo`` channel when it has one
    (every top-of-book update), else the top level of each book snapshot."""
    if bbo is not None and bbo.height:
        return bbo
    if book is not None and book.height:
        return bbo_from_book(book)
    return pl.DataFrame(schema={"ts_ns": pl.Int64, "bid_px": pl.Float64, "ask_px": pl.Float64})


# ------------------------------------------------------------------------------------------ spread

def spread_bps(bbo: pl.DataFrame) -> np.ndarray:
    """Quoted spread in bps of every valid quote."""
    f = bbo.filter((pl.col("bid_px") > 0) & (pl.col("ask_px") > 0))
    bid, ask = f["bid_px"].to_numpy(), f["ask_px"].to_numpy()
    return (ask - bid) / ((ask + bid) * 0.5) * 1e4


def spread_stats(bbo: pl.DataFrame) -> dict[str, Any]:
    return spread_summary(spread_bps(bbo))


def spread_summary(s: np.ndarray) -> dict[str, Any]:
    med, p90, p95, p99 = _pcts(s, (50, 90, 95, 99))
    return {
        "count": len(s), "mean": _mean(s), "median": med, "p90": p90, "p95": p95, "p99": p99,
        "share_le_5bps": _mean((s <= 5 + _EPS).astype(float)),
        "crossed": int((s < 0).sum()),
    }


# ------------------------------------------------------------------------------------------- depth

def depth_matrix(book: pl.DataFrame, bands: Sequence[float] = BANDS_BPS) -> dict[str, np.ndarray]:
    """Per snapshot: ``ts_ns``, ``mid`` and, per band, bid/ask depth in USD and whether the book was
    cut inside the band (``cut_bid``/``cut_ask``). Snapshots missing a side are dropped.

    Levels are best-first, so the levels inside a band are a prefix of the row: one comparison
    against the row's band edge counts them, and a row-wise cumulative notional gives the depth
    (``take_along_axis``), with no per-band multiply over the whole matrix."""
    bp = list_to_matrix(book["bid_px"])
    bs = list_to_matrix(book["bid_sz"], bp.shape[1])
    ap = list_to_matrix(book["ask_px"])
    asz = list_to_matrix(book["ask_sz"], ap.shape[1])
    ts = book["ts_ns"].to_numpy()
    out: dict[str, np.ndarray] = {}
    if bp.shape[1] == 0 or ap.shape[1] == 0:
        out["mid"] = out["ts_ns"] = np.empty(0)
        for b in bands:
            for k in ("bid", "ask", "cut_bid", "cut_ask"):
                out[f"{k}_{b}"] = np.empty(0)
        return out
    ok = ~np.isnan(bp[:, 0]) & ~np.isnan(ap[:, 0])
    if not ok.all():
        bp, bs, ap, asz, ts = bp[ok], bs[ok], ap[ok], asz[ok], ts[ok]
    mid = (bp[:, 0] + ap[:, 0]) * 0.5
    out["ts_ns"], out["mid"] = ts, mid
    for side, px, sz, sign in (("bid", bp, bs, -1.0), ("ask", ap, asz, 1.0)):
        notional = px * sz
        ragged = np.isnan(notional)
        if ragged.any():
            notional[ragged] = 0.0
        cum = np.cumsum(notional, axis=1)
        n_levels = np.count_nonzero(~np.isnan(px), axis=1) if ragged.any() else px.shape[1]
        for b in bands:
            edge = mid * (1.0 + sign * (b + _EPS) / 1e4)
            inside = (px >= edge[:, None]) if sign < 0 else (px <= edge[:, None])
            k = np.count_nonzero(inside, axis=1)
            depth = np.take_along_axis(cum, np.maximum(k - 1, 0)[:, None], axis=1)[:, 0]
            out[f"{side}_{b}"] = np.where(k > 0, depth, 0.0)
            out[f"cut_{side}_{b}"] = k >= n_levels
    return out


def depth_stats(book: pl.DataFrame, bands: Sequence[float] = BANDS_BPS) -> dict[str, Any]:
    return depth_summary(depth_matrix(book, bands), bands=bands)


def depth_summary(m: dict[str, np.ndarray], rows: slice = slice(None),
                  bands: Sequence[float] = BANDS_BPS) -> dict[str, Any]:
    """Statistics of ``depth_matrix`` output over ``rows`` (a time window is a slice)."""
    out: dict[str, Any] = {"snapshots": len(m["mid"][rows])}
    for b in bands:
        bid, ask = m[f"bid_{b}"][rows], m[f"ask_{b}"][rows]
        band: dict[str, Any] = {}
        for side, x in (("bid", bid), ("ask", ask), ("both", bid + ask)):
            p5, med, p95 = _pcts(x, (5, 50, 95))
            band[side] = {"median": med, "p5": p5, "p95": p95, "mean": _mean(x)}
        band["bid_ask_ratio"] = _ratio(_mean(bid), _mean(ask))
        band["truncated_share"] = _mean((m[f"cut_bid_{b}"][rows] | m[f"cut_ask_{b}"][rows]).astype(float))
        out[_band_key(b)] = band
    return out


def _band_key(b: float) -> str:
    return str(int(b)) if float(b).is_integer() else str(b)


# ---------------------------------------------------------------------------------------- slippage

def slippage_frame(trades: pl.DataFrame, bbo: pl.DataFrame, *, max_quote_age_ns: int | None = None,
                   exact_matches: bool = False) -> pl.DataFrame:
    """Trades with ``mid`` (last quote strictly before, or at if ``exact_matches``), ``notional``
    and ``slippage_bps``; ``mid`` is null when no quote qualifies."""
    quotes = bbo.filter((pl.col("bid_px") > 0) & (pl.col("ask_px") > 0)).select(
        pl.col("ts_ns").alias("quote_ns"), ((pl.col("bid_px") + pl.col("ask_px")) * 0.5).alias("mid"),
    ).sort("quote_ns", maintain_order=True)
    t = trades.select("ts_ns", "px", "sz", "side").sort("ts_ns", maintain_order=True)
    joined = t.join_asof(quotes, left_on="ts_ns", right_on="quote_ns", strategy="backward",
                         allow_exact_matches=exact_matches, tolerance=max_quote_age_ns)
    return joined.with_columns(
        (pl.col("px") * pl.col("sz")).alias("notional"),
        (pl.col("side").cast(pl.Float64) * (pl.col("px") - pl.col("mid")) / pl.col("mid") * 1e4)
        .alias("slippage_bps"),
    )


def _slip_block(s: np.ndarray) -> dict[str, Any]:
    a = np.abs(s)
    med, p95, p99 = _pcts(s, (50, 95, 99))
    med_a, p95_a, p99_a = _pcts(a, (50, 95, 99))
    return {
        "count": len(s),
        "mean": _mean(s), "median": med, "median_abs": med_a,
        "p95": p95, "p99": p99, "p95_abs": p95_a, "p99_abs": p99_a,
        "share_within_5bps": _mean((a <= 5 + _EPS).astype(float)),
        "share_within_10bps": _mean((a <= 10 + _EPS).astype(float)),
        "count_above_50bps": int((a > 50 + _EPS).sum()),
    }


def bucket_of(notional: np.ndarray) -> np.ndarray:
    """Index into ``NOTIONAL_BUCKETS`` of each notional (lower bound inclusive)."""
    edges = np.array([lo for _, lo, _ in NOTIONAL_BUCKETS[1:]])
    return np.searchsorted(edges, notional, side="right")


def slippage_stats(trades: pl.DataFrame, bbo: pl.DataFrame, *, max_quote_age_ns: int | None = None) -> dict:
    f = slippage_frame(trades, bbo, max_quote_age_ns=max_quote_age_ns)
    return slippage_summary(f["slippage_bps"].to_numpy(), f["notional"].to_numpy())


def slippage_summary(slip: np.ndarray, notional: np.ndarray) -> dict[str, Any]:
    """Slippage statistics; NaN entries (no usable quote) are counted as ``unmatched``."""
    ok = np.isfinite(slip)
    s, n = slip[ok], notional[ok]
    out = _slip_block(s)
    out["unmatched"] = int(len(slip) - len(s))
    b = bucket_of(n)
    out["by_notional"] = {name: _slip_block(s[b == i]) for i, (name, _, _) in enumerate(NOTIONAL_BUCKETS)}
    return out


def trade_size_stats(trades: pl.DataFrame) -> dict[str, Any]:
    if not trades.height:
        return trade_size_summary(np.empty(0), np.empty(0))
    return trade_size_summary((trades["px"] * trades["sz"]).to_numpy(), trades["side"].to_numpy())


def trade_size_summary(n: np.ndarray, side: np.ndarray) -> dict[str, Any]:
    b = bucket_of(n)
    med, p90 = _pcts(n, (50, 90))
    return {
        "count": len(n), "total_notional": _num(n.sum()) if len(n) else 0.0,
        "median_notional": med, "mean_notional": _mean(n), "p90_notional": p90,
        "buy_share": _mean((side == 1).astype(float)) if len(n) else None,
        "by_notional": {name: {"count": int((b == i).sum()), "notional": float(n[b == i].sum())}
                        for i, (name, _, _) in enumerate(NOTIONAL_BUCKETS)},
    }


# ------------------------------------------------------------------------------------------- basis

def asof_values(ts: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The last value at or before each time in ``at`` (NaN before the first)."""
    i = np.searchsorted(ts, at, side="right") - 1
    out = np.where(i >= 0, values[np.clip(i, 0, None)], np.nan) if len(ts) else np.full(len(at), np.nan)
    return out


def basis_series(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray],
                 step_ns: int = NS, max_stale_ns: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(grid_ns, basis_bps)`` of series ``a`` against ``b`` over their common span. Grid points
    where either series' last value is older than ``max_stale_ns`` are dropped (a benchmark that
    is closed for the weekend has no basis, not Friday's)."""
    (ta, va), (tb, vb) = a, b
    if not len(ta) or not len(tb):
        return np.empty(0, dtype=np.int64), np.empty(0)
    start, end = max(ta[0], tb[0]), min(ta[-1], tb[-1])
    if end < start:
        return np.empty(0, dtype=np.int64), np.empty(0)
    first = -(-start // step_ns) * step_ns
    grid = np.arange(first, end + 1, step_ns, dtype=np.int64)
    ia = np.searchsorted(ta, grid, side="right") - 1
    ib = np.searchsorted(tb, grid, side="right") - 1
    xa, xb = va[ia], vb[ib]  # the grid starts inside both spans: indices are >= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        basis = (xa - xb) / xb * 1e4
    keep = np.isfinite(basis)
    if max_stale_ns is not None:
        keep &= (grid - ta[ia] <= max_stale_ns) & (grid - tb[ib] <= max_stale_ns)
    return grid[keep], basis[keep]


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of the True runs of ``mask``."""
    if not len(mask):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return starts, ends - starts


def basis_stats(grid: np.ndarray, basis: np.ndarray, step_ns: int = NS,
                thresholds: Sequence[float] = BASIS_THRESHOLDS_BPS, reason: str | None = None) -> dict[str, Any]:
    if not len(basis):
        return {"samples": 0, "reason": reason or "no overlapping data"}
    step_s = step_ns / NS
    a = np.abs(basis)
    out: dict[str, Any] = {
        "samples": len(basis), "seconds": len(basis) * step_s, "step_s": step_s,
        "mean": _mean(basis), **dict(zip(("p5", "median", "p95"), _pcts(basis, (5, 50, 95)))),
        "min": _num(basis.min()), "max": _num(basis.max()), "max_abs": _num(a.max()),
        "time_above": {}, "time_to_revert_s": {},
    }
    for t in thresholds:
        above = a > t + _EPS
        starts, lengths = _runs(above)
        open_end = bool(len(starts)) and starts[-1] + lengths[-1] == len(a)
        closed = lengths[:-1] if open_end else lengths
        key = _band_key(t)
        out["time_above"][key] = {"seconds": float(above.sum() * step_s), "share": _mean(above.astype(float))}
        out["time_to_revert_s"][key] = {
            "episodes": len(lengths), "open_at_end": int(open_end),
            "median": _pct(closed * step_s, 50), "mean": _mean(closed * step_s * 1.0),
            "max": _num(closed.max() * step_s) if len(closed) else None,
        }
    return out


# -------------------------------------------------------------------------------- sessions, reopen

@dataclass(frozen=True)
class Weekend:
    """The weekly closed window, UTC: from ``start_dow`` ``start_hour`` to ``end_dow`` ``end_hour``
    (Monday = 0). Default Sat 00:00 → Mon 00:00."""

    start_dow: int = 5
    start_hour: float = 0.0
    end_dow: int = 0
    end_hour: float = 0.0

    @property
    def start_offset_ns(self) -> int:
        return int((self.start_dow * 24 + self.start_hour) * 3600 * NS)

    @property
    def end_offset_ns(self) -> int:
        return int((self.end_dow * 24 + self.end_hour) * 3600 * NS)

    def contains(self, ts_ns: np.ndarray) -> np.ndarray:
        """Whether each time falls inside the weekend window."""
        week = 7 * 86400 * NS
        off = (ts_ns + 3 * 86400 * NS) % week  # 1970-01-01 was a Thursday (Monday = 0)
        s, e = self.start_offset_ns, self.end_offset_ns
        return (off >= s) & (off < e) if s < e else (off >= s) | (off < e)

    def windows(self, start_ns: int, end_ns: int) -> list[tuple[int, int]]:
        """``(close, reopen)`` instants of every weekend overlapping ``[start, end]``."""
        week = 7 * 86400 * NS
        monday0 = (start_ns + 3 * 86400 * NS) // week * week - 3 * 86400 * NS - week
        dur = (self.end_offset_ns - self.start_offset_ns) % week
        out = []
        close = monday0 + self.start_offset_ns
        while close <= end_ns:
            if close + dur >= start_ns:
                out.append((close, close + dur))
            close += week
        return out


def _bars(trades: pl.DataFrame, ts: np.ndarray, mid: np.ndarray) -> dict[str, np.ndarray]:
    """5-minute bars over the quote span: start, notional (0 if no trade), log return of the mid."""
    if not len(ts):
        return {"start": np.empty(0, dtype=np.int64), "notional": np.empty(0), "ret": np.empty(0)}
    first, last = ts[0] // BAR_NS, ts[-1] // BAR_NS
    starts = np.arange(first, last + 1, dtype=np.int64) * BAR_NS
    notional = np.zeros(len(starts))
    if trades.height:
        tts = trades["ts_ns"].to_numpy()
        tn = (trades["px"] * trades["sz"]).to_numpy()
        idx = tts // BAR_NS - first
        ok = (idx >= 0) & (idx < len(starts))
        np.add.at(notional, idx[ok], tn[ok])
    close = asof_values(ts, mid, starts + BAR_NS - 1)
    open_ = asof_values(ts, mid, starts - 1)  # the previous bar's close
    with np.errstate(invalid="ignore", divide="ignore"):
        ret = np.log(close / open_)
    # a bar counts only if the quotes cover it fully (first and last bars are partial)
    full = (starts >= ts[0]) & (starts + BAR_NS - 1 <= ts[-1])
    return {"start": starts[full], "notional": notional[full], "ret": ret[full]}


def _bar_class(notional: np.ndarray, ret: np.ndarray) -> dict[str, Any]:
    ok = np.isfinite(ret)
    r, w = ret[ok], notional[ok]
    return {
        "bars": len(notional),
        "mean_notional": _mean(notional), "median_notional": _pct(notional, 50),
        "vol_5m_bps_equal": _num(np.sqrt(np.mean(r * r)) * 1e4) if len(r) else None,
        "vol_5m_bps_notional": _num(np.sqrt(np.sum(w * r * r) / w.sum()) * 1e4) if w.sum() > 0 else None,
    }


def session_stats(trades: pl.DataFrame, quotes: pl.DataFrame, weekend: Weekend = Weekend()) -> dict[str, Any]:
    """Weekend versus weekday 5-minute bars (see the module docstring)."""
    ts, mid = mids(quotes)
    bars = _bars(trades, ts, mid)
    wk = weekend.contains(bars["start"])
    out: dict[str, Any] = {
        "weekend": _bar_class(bars["notional"][wk], bars["ret"][wk]),
        "weekday": _bar_class(bars["notional"][~wk], bars["ret"][~wk]),
    }
    if not len(wk) or not wk.any() or wk.all():
        which = "" if not len(wk) else "weekend " if not wk.any() else "weekday "
        out["ratios"] = None
        out["reason"] = f"no complete 5-minute {which}bar in the data"
        return out
    out["ratios"] = {
        k: _ratio(out["weekend"][k], out["weekday"][k])
        for k in ("mean_notional", "median_notional", "vol_5m_bps_equal", "vol_5m_bps_notional")
    }
    return out


def reopen_test(venue_quotes: pl.DataFrame, reference_quotes: pl.DataFrame | None = None,
                weekend: Weekend = Weekend()) -> dict[str, Any]:
    """Share of weekends whose last pre-open venue mid was closer to the reopen than Friday's close."""
    vts, vmid = mids(venue_quotes)
    rts, rmid = mids(reference_quotes) if reference_quotes is not None else (vts, vmid)
    if not len(vts) or not len(rts):
        return {"share": None, "weekends": 0, "reason": "no quotes"}
    details = []
    for close_ns, reopen_ns in weekend.windows(int(min(vts[0], rts[0])), int(max(vts[-1], rts[-1]))):
        ci = np.searchsorted(rts, close_ns, side="right") - 1
        ri = np.searchsorted(rts, reopen_ns, side="left")
        pi = np.searchsorted(vts, reopen_ns, side="left") - 1
        if ci < 0 or ri >= len(rts) or pi < 0 or vts[pi] < close_ns:
            continue
        close, reopen, pre = float(rmid[ci]), float(rmid[ri]), float(vmid[pi])
        details.append({"close_ns": close_ns, "reopen_ns": reopen_ns, "close": close, "pre_open": pre,
                        "reopen": reopen, "closer": abs(pre - reopen) < abs(close - reopen)})
    if not details:
        return {"share": None, "weekends": 0,
                "reason": "the data covers no complete weekend (need quotes before the close and after the reopen)"}
    return {"share": sum(d["closer"] for d in details) / len(details), "weekends": len(details), "details": details}


# ------------------------------------------------------------------------------------------ regimes

@dataclass(frozen=True)
class Regime:
    """A named time window ``[start_ns, end_ns)``."""

    name: str
    start_ns: int
    end_ns: int

    @classmethod
    def parse(cls, text: str) -> Regime:
        """``NAME=START..END`` with ISO-8601 times (UTC if no zone) or integer ns."""
        name, _, span = text.partition("=")
        start, sep, end = span.partition("..")
        if not name or not sep:
            raise ValueError(f"regime must look like NAME=START..END, got {text!r}")
        return cls(name.strip(), _parse_time(start), _parse_time(end))


def _parse_time(text: str) -> int:
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    s = pl.Series([text]).str.to_datetime(time_unit="ns", time_zone="UTC", strict=True)
    return int(s.dt.epoch("ns")[0])


def window(frame: pl.DataFrame | None, start_ns: int, end_ns: int) -> pl.DataFrame | None:
    if frame is None:
        return None
    return frame.filter((pl.col("ts_ns") >= start_ns) & (pl.col("ts_ns") < end_ns))


RATIO_METRICS: tuple[tuple[str, ...], ...] = (
    ("spread_bps", "mean"), ("spread_bps", "median"), ("spread_bps", "p95"),
    ("depth_usd", "5", "both", "median"), ("depth_usd", "25", "both", "median"),
    ("slippage_bps", "median_abs"), ("slippage_bps", "p95"),
    ("trade_size", "count"), ("trade_size", "total_notional"),
)


def dig(d: dict | None, path: Sequence[str]) -> Any:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def regime_ratios(regimes: dict[str, dict], baseline: str) -> dict[str, dict[str, float | None]]:
    """``metric(regime) / metric(baseline)`` for each non-baseline regime (trade count and notional
    are first normalised per hour of the regime)."""
    base = regimes[baseline]
    out = {}
    for name, m in regimes.items():
        if name == baseline:
            continue
        r = {}
        for path in RATIO_METRICS:
            a, b = dig(m, path), dig(base, path)
            if path[0] == "trade_size":
                a = _ratio(a, dig(m, ("span", "hours")))
                b = _ratio(b, dig(base, ("span", "hours")))
            r[".".join(path)] = _ratio(a, b)
        out[name] = r
    return out

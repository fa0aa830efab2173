"""The market-quality report: metrics per venue/coin and regime, ``metrics.json`` and an HTML page.

``build_report(venue_data, benchmark=..., regimes=..., out="report.html")`` computes the metrics of
:mod:`perpbox.analytics.quality` for every (venue, coin) in ``venue_data`` and writes the HTML
report (plotly, with plotly.js embedded so it opens offline) and ``metrics.json`` beside it.

``metrics.json`` layout (dotted paths; ``<b>`` ∈ 2, 5, 10, 25, 50; ``<bucket>`` ∈ lt_1k, 1k_10k,
10k_50k, gt_50k; ``<t>`` ∈ 5, 10, 25, 50, 100)::

    meta.{generated_at, benchmark_sources, regimes, weekend, basis_step_s, definitions}
    venues.<venue>.<coin>.<scope>            scope = "all" or "regimes.<name>"
        span.{start, end, start_ns, end_ns, hours, book_snapshots, quotes, trades}
        spread_bps.{count, mean, median, p90, p95, p99, share_le_5bps, crossed}
        depth_usd.snapshots
        depth_usd.<b>.{bid, ask, both}.{median, p5, p95, mean}
        depth_usd.<b>.{bid_ask_ratio, truncated_share}
        slippage_bps.{count, unmatched, mean, median, median_abs, p95, p99, p95_abs, p99_abs,
                      share_within_5bps, share_within_10bps, count_above_50bps}
        slippage_bps.by_notional.<bucket>.{same keys as above, without unmatched}
        trade_size.{count, total_notional, median_notional, mean_notional, p90_notional, buy_share}
        trade_size.by_notional.<bucket>.{count, notional}
        basis.benchmark                                  "venue/coin" of the benchmark used, or null
        basis.{vs_benchmark, oracle_vs_benchmark, perp_vs_oracle}.{samples, seconds, step_s, mean,
              median, p5, p95, min, max, max_abs, reason}
        basis.<kind>.time_above.<t>.{seconds, share}
        basis.<kind>.time_to_revert_s.<t>.{episodes, open_at_end, median, mean, max}
    venues.<venue>.<coin>.all.sessions.{weekend, weekday}.{bars, mean_notional, median_notional,
              vol_5m_bps_equal, vol_5m_bps_notional}
    venues.<venue>.<coin>.all.sessions.ratios.<same four>     weekend / weekday (null + reason)
    venues.<venue>.<coin>.all.reopen_test.{share, weekends, details, reason}
    venues.<venue>.<coin>.regime_ratios.<regime>.<metric path>   regime / first regime

    warnings                                 one line per venue/coin whose book is cut inside a band

A statistic over no data is ``null``; a block that cannot be computed carries a ``reason``.

Raw files (captures, archives, Tardis CSV) are loaded with the whole book they hold (``depth=None``;
a Binance diff capture out to the deepest level of its REST snapshot), so the depth bands are not
cut by a level count. When a band still reaches past the end of the book data in some snapshots
(a dataset loaded with ``perpbox load --depth 20``, a venue that publishes 20 levels, a snapshot
that covers ±24 bps), its figure is a lower bound: ``depth_usd.<b>.truncated_share`` says how
often, and the report warns (``DepthTruncatedWarning``, ``warnings`` in ``metrics.json``, a banner
on the page, a red line from ``perpbox report``).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from perpbox.analytics import quality as q
from perpbox.analytics.quality import NS, Regime, Weekend

Frames = dict[str, pl.DataFrame]
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "USD")
WHOLE_BOOK = 1_000_000
"""Levels per side asked of the archive and Tardis loaders for "the whole book" (they take an int)."""


class DepthTruncatedWarning(UserWarning):
    """A depth band reaches past the end of the book data: its figure is a lower bound."""


def base_asset(coin: str) -> str:
    """``BTCUSDT`` / ``BTCUSD_PERP`` / ``BTC-PERP`` / ``BTC/USDC:USDC`` / ``BTC`` → ``BTC``."""
    c = re.split(r"[_\-/:]", coin.upper())[0]
    for quote in _QUOTES:
        if c.endswith(quote) and len(c) > len(quote):
            return c[: -len(quote)]
    return c


def _as_frames(source: Any, depth: int | None = None) -> Frames:
    """Frames as given, or loaded from a path or paths keeping ``depth`` levels a side of raw books
    (``None``: the whole book each source holds)."""
    if source is None:
        return {}
    if isinstance(source, dict):
        return source
    from perpbox.venues.sources import detect_format, load_source, merge

    def load(p: Any) -> Frames:
        fmt = detect_format(p)
        levels = depth if depth is not None else None if fmt == "hftbacktest" else WHOLE_BOOK
        return load_source(p, fmt=fmt, depth=levels)[0]  # type: ignore[arg-type]

    paths = [source] if isinstance(source, (str, Path)) else list(source)
    return merge(load(p) for p in paths)


def truncation_warnings(venues: dict[str, Any]) -> list[str]:
    """One line per venue/coin whose book data ends inside a depth band in some snapshots."""
    out = []
    for venue, coins in venues.items():
        for coin, entry in coins.items():
            depth = entry["all"].get("depth_usd", {})
            cut = [(b, depth[_k]["truncated_share"]) for b in q.BANDS_BPS
                   if (_k := q._band_key(b)) in depth and (depth[_k].get("truncated_share") or 0) > 0]
            if not cut:
                continue
            bands = ", ".join(f"±{q._band_key(b)} bps in {_pct(share)}" for b, share in cut)
            out.append(f"{venue}/{coin}: the book data ends inside the depth band in some of its "
                       f"{depth['snapshots']:,} book snapshots: {bands}. Those depth_usd figures are lower bounds "
                       "(truncated_share). A dataset from `perpbox load --depth N` keeps N levels a side: load it "
                       "again with --depth 0 (the whole book); a raw file is read whole, so the data itself holds "
                       "no more (a Binance diff capture knows the book only out to its REST snapshot's deepest levels)")
    return out


def _pct(share: float) -> str:
    return "all" if share >= 1 else f"{share * 100:.3g}%"


def _pairs(frames: Frames) -> list[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for channel in ("book", "bbo", "trades"):
        f = frames.get(channel)
        if f is not None and f.height:
            if f["venue"].n_unique() == 1 and f["coin"].n_unique() == 1:
                found.add((f["venue"][0], f["coin"][0]))
            else:
                found.update(f.select("venue", "coin").unique().iter_rows())
    return sorted(found)


def _select(frames: Frames, channel: str, venue: str, coin: str) -> pl.DataFrame | None:
    f = frames.get(channel)
    if f is None:
        return None
    if not (f["venue"].n_unique() == 1 and f["coin"].n_unique() == 1):
        f = f.filter((pl.col("venue") == venue) & (pl.col("coin") == coin))
    elif f.height and (f["venue"][0], f["coin"][0]) != (venue, coin):
        return None
    if not f["ts_ns"].is_sorted():
        f = f.sort("ts_ns", maintain_order=True)
    return f if f.height else None


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return dt.datetime.fromtimestamp(ns / NS, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Series:
    """Every per-event array of one venue/coin, computed once and sorted by time, so that the
    whole span and each regime are just slices (``np.searchsorted`` on the time columns)."""

    def __init__(self, book, quotes, trades, prices, bench_quotes, bench_name, step_ns, max_age_ns, stale_ns):
        self.bench_name = bench_name
        self.step_ns = step_ns
        self.book_n = book.height if book is not None else 0
        self.depth = q.depth_matrix(book) if self.book_n else None
        have_q = quotes is not None and quotes.height
        valid = quotes.filter((pl.col("bid_px") > 0) & (pl.col("ask_px") > 0)) if have_q else None
        self.q_ts = valid["ts_ns"].to_numpy() if have_q else np.empty(0, np.int64)
        self.spread = q.spread_bps(valid) if have_q else np.empty(0)
        self.n_quotes = quotes.height if have_q else 0
        vmid = q.mids(quotes) if have_q else (np.empty(0, np.int64), np.empty(0))
        self.vmid = vmid
        if trades is not None and trades.height:
            t = trades.sort("ts_ns", maintain_order=True)
            self.t_ts = t["ts_ns"].to_numpy()
            self.t_notional = (t["px"] * t["sz"]).to_numpy()
            self.t_side = t["side"].to_numpy()
            if have_q:
                f = q.slippage_frame(t, quotes, max_quote_age_ns=max_age_ns)
                self.slip = f["slippage_bps"].fill_null(float("nan")).to_numpy()
            else:
                self.slip = None
        else:
            self.t_ts = np.empty(0, np.int64)
            self.t_notional = self.t_side = np.empty(0)
            self.slip = None
        self.basis: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
        self.basis_reason: dict[str, str] = {}
        bmid = q.mids(bench_quotes) if bench_quotes is not None and bench_quotes.height else None
        if bmid is not None:
            self.basis["vs_benchmark"] = q.basis_series(vmid, bmid, step_ns, stale_ns)
            self.basis_reason["vs_benchmark"] = "the venue and the benchmark do not overlap in time"
        else:
            self.basis["vs_benchmark"] = None
            self.basis_reason["vs_benchmark"] = "no benchmark for this coin"
        if prices is not None and prices.height:
            p = prices.filter(pl.col("oracle_px").is_not_null() & (pl.col("oracle_px") > 0)).sort("ts_ns")
            omid = (p["ts_ns"].to_numpy(), p["oracle_px"].to_numpy())
            self.basis["perp_vs_oracle"] = q.basis_series(vmid, omid, step_ns, stale_ns)
            if bmid is not None:
                self.basis["oracle_vs_benchmark"] = q.basis_series(omid, bmid, step_ns, stale_ns)

    @staticmethod
    def _rows(ts: np.ndarray, lo: int | None, hi: int | None) -> slice:
        i = 0 if lo is None else int(np.searchsorted(ts, lo, side="left"))
        j = len(ts) if hi is None else int(np.searchsorted(ts, hi, side="left"))
        return slice(i, j)

    def metrics(self, lo: int | None = None, hi: int | None = None) -> dict[str, Any]:
        qr = self._rows(self.q_ts, lo, hi)
        tr = self._rows(self.t_ts, lo, hi)
        br = self._rows(self.depth["ts_ns"], lo, hi) if self.depth is not None else slice(0, 0)
        starts, ends = [], []
        for ts, r in ((self.q_ts, qr), (self.t_ts, tr)) + (
                ((self.depth["ts_ns"], br),) if self.depth is not None else ()):
            if r.stop > r.start:
                starts.append(int(ts[r.start]))
                ends.append(int(ts[r.stop - 1]))
        start, end = (min(starts), max(ends)) if starts else (None, None)
        m: dict[str, Any] = {"span": {
            "start": _iso(start), "end": _iso(end), "start_ns": start, "end_ns": end,
            "hours": (end - start) / 3600 / NS if starts else 0.0,
            "book_snapshots": br.stop - br.start, "quotes": qr.stop - qr.start, "trades": tr.stop - tr.start,
        }}
        m["spread_bps"] = q.spread_summary(self.spread[qr])
        if self.depth is not None:
            m["depth_usd"] = q.depth_summary(self.depth, br)
        else:
            m["depth_usd"] = {"snapshots": 0, "reason": "no book snapshots"}
        if self.slip is not None:
            m["slippage_bps"] = q.slippage_summary(self.slip[tr], self.t_notional[tr])
        else:
            m["slippage_bps"] = {"count": 0, "reason": "needs trades and quotes"}
        m["trade_size"] = q.trade_size_summary(self.t_notional[tr], self.t_side[tr])
        basis: dict[str, Any] = {"benchmark": self.bench_name}
        for kind, series in self.basis.items():
            if series is None:
                basis[kind] = {"samples": 0, "reason": self.basis_reason.get(kind, "no data")}
                continue
            g, b = series
            r = self._rows(g, lo, hi)
            basis[kind] = q.basis_stats(g[r], b[r], self.step_ns,
                                        reason=self.basis_reason.get(kind, "the series do not overlap in time"))
        m["basis"] = basis
        return m


def compute_metrics(venue_data: Any, benchmark: Any = None, regimes: Sequence[Regime | str] = (),
                    weekend: Weekend | None = None, basis_step_s: float = 1.0,
                    max_quote_age_s: float | None = None,
                    basis_max_stale_s: float | None = 300.0,
                    depth: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(metrics, plot_data)`` for every venue/coin in ``venue_data`` (frames, a path or paths;
    paths are loaded with ``depth`` levels a side, ``None`` = the whole book). Emits a
    ``DepthTruncatedWarning`` per venue/coin whose book is cut inside a depth band."""
    weekend = weekend or Weekend()
    frames = _as_frames(venue_data, depth)
    bench = _as_frames(benchmark, depth)
    regs = [r if isinstance(r, Regime) else Regime.parse(r) for r in regimes]
    step_ns = max(1, int(basis_step_s * NS))
    max_age_ns = int(max_quote_age_s * NS) if max_quote_age_s else None
    stale_ns = int(basis_max_stale_s * NS) if basis_max_stale_s else None
    bench_pairs = _pairs(bench)
    venues: dict[str, Any] = {}
    plots: dict[str, Any] = {}
    for venue, coin in _pairs(frames):
        book = _select(frames, "book", venue, coin)
        quotes = q.top_of_book(book, _select(frames, "bbo", venue, coin))
        trades = _select(frames, "trades", venue, coin)
        prices = _select(frames, "prices", venue, coin)
        bench_quotes, bench_name = None, None
        for bv, bc in bench_pairs:
            if base_asset(bc) == base_asset(coin) and (bv, bc) != (venue, coin):
                bench_quotes = q.top_of_book(_select(bench, "book", bv, bc), _select(bench, "bbo", bv, bc))
                bench_name = f"{bv}/{bc}"
                break
        series = _Series(book, quotes, trades, prices, bench_quotes, bench_name, step_ns, max_age_ns, stale_ns)
        allm = series.metrics()
        allm["sessions"] = q.session_stats(trades if trades is not None else pl.DataFrame(
            schema={"ts_ns": pl.Int64, "px": pl.Float64, "sz": pl.Float64}), quotes, weekend)
        allm["reopen_test"] = q.reopen_test(quotes, bench_quotes, weekend)
        entry: dict[str, Any] = {"all": allm}
        if regs:
            rm = {}
            for r in regs:
                rm[r.name] = series.metrics(r.start_ns, r.end_ns)
                rm[r.name]["window"] = {"start": _iso(r.start_ns), "end": _iso(r.end_ns)}
            entry["regimes"] = rm
            entry["regime_ratios"] = q.regime_ratios(rm, regs[0].name)
        venues.setdefault(venue, {})[coin] = entry
        plots[f"{venue}/{coin}"] = _plot_data(allm, series)
    metrics = {
        "meta": {
            "generated_at": _iso(int(dt.datetime.now(dt.UTC).timestamp() * NS)),
            "benchmark_sources": [f"{v}/{c}" for v, c in bench_pairs],
            "regimes": [{"name": r.name, "start": _iso(r.start_ns), "end": _iso(r.end_ns)} for r in regs],
            "weekend": asdict(weekend), "basis_step_s": basis_step_s, "basis_max_stale_s": basis_max_stale_s,
            "max_quote_age_s": max_quote_age_s,
            "bands_bps": list(q.BANDS_BPS), "notional_buckets": [b[0] for b in q.NOTIONAL_BUCKETS],
            "definitions": "see perpbox.analytics.quality (module docstring)",
        },
        "venues": venues,
    }
    metrics = _clean(metrics)
    metrics["warnings"] = truncation_warnings(metrics["venues"])
    for line in metrics["warnings"]:
        warnings.warn(line, DepthTruncatedWarning, stacklevel=2)
    return metrics, plots


def _clean(x: Any) -> Any:
    """JSON-safe: numpy scalars → Python, NaN/inf → None."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(x) or math.isinf(x) else float(x)
    return x


# ------------------------------------------------------------------------------------------- plots

def _hist(x: np.ndarray, bins: int = 60, lo_q: float = 0.5, hi_q: float = 99.5) -> dict[str, list]:
    x = x[np.isfinite(x)]
    if not len(x):
        return {"x": [], "y": []}
    lo, hi = np.percentile(x, [lo_q, hi_q])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(np.clip(x, lo, hi), bins=bins, range=(lo, hi))
    return {"x": ((edges[:-1] + edges[1:]) / 2).tolist(), "y": (counts / len(x)).tolist(),
            "width": float(edges[1] - edges[0])}


def _plot_data(allm: dict, series: _Series) -> dict[str, Any]:
    """Pre-binned, downsampled series for the figures (the page never embeds raw events)."""
    out: dict[str, Any] = {"spread": _hist(series.spread) if len(series.spread) else None}
    if series.slip is not None:
        out["slippage"] = _hist(series.slip)
    depth = allm.get("depth_usd", {})
    if depth.get("snapshots"):
        keys = [q._band_key(b) for b in q.BANDS_BPS]
        out["depth"] = {"bands": list(q.BANDS_BPS),
                        "bid": [depth[k]["bid"]["median"] for k in keys],
                        "ask": [depth[k]["ask"]["median"] for k in keys]}
    vs = series.basis.get("vs_benchmark")
    if vs is not None and len(vs[0]):
        g, b = vs
        stride = max(1, len(g) // 3000)
        out["basis"] = {"t": [_iso(int(t)) for t in g[::stride]], "bps": b[::stride].tolist()}
    return out


def _figure(name: str, pd: dict[str, Any]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=2, subplot_titles=(
        "Quoted spread (bps), share of quote updates", "Slippage vs prior mid (bps, + = paid), share of trades",
        "Median depth within ±band of mid (USD)", "Basis vs benchmark mid (bps)"))
    if pd.get("spread") and pd["spread"]["x"]:
        fig.add_trace(go.Bar(x=pd["spread"]["x"], y=pd["spread"]["y"], width=pd["spread"]["width"],
                             name="spread", marker_color="#4C78A8"), row=1, col=1)
    if pd.get("slippage") and pd["slippage"]["x"]:
        fig.add_trace(go.Bar(x=pd["slippage"]["x"], y=pd["slippage"]["y"], width=pd["slippage"]["width"],
                             name="slippage", marker_color="#F58518"), row=1, col=2)
    if pd.get("depth"):
        labels = [f"±{b} bps" for b in pd["depth"]["bands"]]
        fig.add_trace(go.Bar(x=labels, y=pd["depth"]["bid"], name="bid depth", marker_color="#54A24B"), row=2, col=1)
        fig.add_trace(go.Bar(x=labels, y=pd["depth"]["ask"], name="ask depth", marker_color="#E45756"), row=2, col=1)
    if pd.get("basis"):
        fig.add_trace(go.Scatter(x=pd["basis"]["t"], y=pd["basis"]["bps"], mode="lines", name="basis",
                                 line={"color": "#72B7B2"}), row=2, col=2)
    else:
        fig.add_annotation(text="no benchmark overlap", xref="x4 domain", yref="y4 domain", x=0.5, y=0.5,
                           showarrow=False)
    fig.update_layout(title=name, height=720, barmode="group", template="plotly_white",
                      legend={"orientation": "h", "y": -0.08})
    return fig


_SUMMARY = (
    ("median spread (bps)", ("spread_bps", "median")), ("mean spread (bps)", ("spread_bps", "mean")),
    ("p95 spread (bps)", ("spread_bps", "p95")),
    ("depth ±5 bps both, median (USD)", ("depth_usd", "5", "both", "median")),
    ("depth ±25 bps both, median (USD)", ("depth_usd", "25", "both", "median")),
    ("median |slippage| (bps)", ("slippage_bps", "median_abs")), ("p95 slippage (bps)", ("slippage_bps", "p95")),
    ("trades", ("trade_size", "count")), ("median trade (USD)", ("trade_size", "median_notional")),
    ("basis vs benchmark, mean (bps)", ("basis", "vs_benchmark", "mean")),
    ("hours", ("span", "hours")),
)


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    return html.escape(str(v))


def render_html(metrics: dict[str, Any], plots: dict[str, Any], title: str = "perpbox market-quality report") -> str:
    """The report page: summary table, one 2×2 figure per venue/coin, the metrics JSON; plotly.js
    is embedded once (no network needed to open it)."""
    from plotly.offline import get_plotlyjs

    names = [f"{v}/{c}" for v, coins in metrics["venues"].items() for c in coins]
    rows = []
    for label, path in _SUMMARY:
        cells = "".join(f"<td>{_fmt(q.dig(metrics['venues'][n.split('/')[0]][n.split('/', 1)[1]]['all'], path))}</td>"
                        for n in names)
        rows.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    figs = "".join(
        f"<section><h2>{html.escape(n)}</h2>"
        f"{_figure(n, plots.get(n, {})).to_html(full_html=False, include_plotlyjs=False)}</section>" for n in names)
    meta = metrics["meta"]
    banner = "".join(f'<p class="warn"><b>Warning:</b> {html.escape(w)}</p>' for w in metrics.get("warnings", []))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th:first-child{{text-align:left}}
details pre{{max-height:30em;overflow:auto;background:#f6f6f6;padding:1em}}
.warn{{background:#fde2e1;border:2px solid #c0392b;padding:.6em 1em;color:#7b1d14}}</style>
<script type="text/javascript">{get_plotlyjs()}</script></head><body>
<h1>{html.escape(title)}</h1>
{banner}
<p>Benchmark: {html.escape(", ".join(meta["benchmark_sources"]) or "none")}.
Regimes: {html.escape(", ".join(r["name"] for r in meta["regimes"]) or "none")}.
Definitions: spread = (ask − bid)/mid; depth = USD within ±band of mid per book snapshot;
slippage = side × (price − mid)/mid of the last quote before the trade; basis = (venue − benchmark)/benchmark.</p>
<table><tr><th></th>{head}</tr>{"".join(rows)}</table>
{figs}
<details><summary>metrics.json</summary><pre>{html.escape(json.dumps(metrics, indent=1))}</pre></details>
</body></html>"""


def build_report(venue_data: Any, benchmark: Any = None, regimes: Sequence[Regime | str] = (),
                 out: Path | str = "report.html", metrics_path: Path | str | None = None,
                 weekend: Weekend | None = None, basis_step_s: float = 1.0,
                 max_quote_age_s: float | None = None, basis_max_stale_s: float | None = 300.0,
                 depth: int | None = None) -> dict[str, Any]:
    """Compute the metrics, write ``out`` (HTML) and ``metrics.json`` (beside it unless
    ``metrics_path``), and return the metrics dict (see ``compute_metrics`` for ``depth``)."""
    metrics, plots = compute_metrics(venue_data, benchmark, regimes, weekend, basis_step_s, max_quote_age_s,
                                     basis_max_stale_s, depth)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(metrics, plots), encoding="utf-8")
    mpath = Path(metrics_path) if metrics_path else out.with_name("metrics.json")
    mpath.write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    return metrics

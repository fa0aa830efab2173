"""A lab run's files: ``metrics.json``, ``events.parquet`` (every event of every seed) and
``report.html`` (plotly, embedded: no network needed to open it)."""

from __future__ import annotations

import html
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import msgspec
import polars as pl

from perpbox.exchange import events as V
from perpbox.lab.run import MarketSeries, RunTrace
from perpbox.lab.scenario import Scenario


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, Fraction):  # exact ratios in market specs, as "num/den" (as the command log writes them)
        return f"{obj.numerator}/{obj.denominator}"
    raise TypeError(f"cannot encode {type(obj).__name__}")


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)
MAX_POINTS = 2_000  # per plotted series


def metrics_bytes(metrics: dict[str, Any]) -> bytes:
    """The canonical ``metrics.json``: sorted keys, two-space indent, a final newline."""
    return (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode()


def events_frame(traces: list[RunTrace]) -> pl.DataFrame:
    """One row per event: its seed, index in the run, time, type and the event as JSON."""
    seeds, idx, ts, kinds, payloads = [], [], [], [], []
    for tr in traces:
        for i, e in enumerate(tr.events):
            seeds.append(tr.seed)
            idx.append(i)
            ts.append(e.ts)
            kinds.append(type(e).__name__)
            payloads.append(_ENCODER.encode(e).decode())
    return pl.DataFrame({"seed": seeds, "index": idx, "ts": ts, "type": kinds, "event": payloads},
                        schema={"seed": pl.Int64, "index": pl.Int64, "ts": pl.Int64, "type": pl.String,
                                "event": pl.String})


def write_run(out: Path, scenario: Scenario, metrics: dict[str, Any], traces: list[RunTrace]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_bytes(metrics_bytes(metrics))
    events_frame(traces).write_parquet(out / "events.parquet", statistics=False)
    (out / "report.html").write_text(report_html(scenario, metrics, traces))


def _figures(scenario: Scenario, traces: list[RunTrace]) -> str:
    import plotly.graph_objects as go  # type: ignore[import-untyped]
    from plotly.subplots import make_subplots  # type: ignore[import-untyped]

    tr = traces[0]
    k = max(1, len(tr.ts) // MAX_POINTS)  # every k-th sample: the page stays a few MB at any horizon
    hours = [(t - scenario.start_ms) / 3_600_000 for t in tr.ts[::k]]
    parts = []
    for full in tr.markets.values():
        series = MarketSeries(full.name, full.px_decimals, oracle=full.oracle[::k], mark=full.mark[::k],
                              bid=full.bid[::k], ask=full.ask[::k], oi_ntl=full.oi_ntl[::k],
                              external=full.external[::k], oi_cap_ntl=full.oi_cap_ntl)
        kd = max(1, len(full.depth_ts) // MAX_POINTS)
        depth_hours = [(t - scenario.start_ms) / 3_600_000 for t in full.depth_ts[::kd]]
        scale = 10**series.px_decimals
        fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                            subplot_titles=(f"{series.name}: oracle, mark, best bid/ask (seed {tr.seed})",
                                            "basis (mark − oracle; book mid − the underlying) and spread, bps",
                                            "book depth, both sides, USD", "open interest, USD"))
        fig.add_trace(go.Scatter(x=hours, y=[o / scale for o in series.oracle], name="oracle"), row=1, col=1)
        fig.add_trace(go.Scatter(x=hours, y=[m / scale for m in series.mark], name="mark"), row=1, col=1)
        fig.add_trace(go.Scatter(x=hours, y=[None if b is None else b / scale for b in series.bid], name="bid",
                                 line={"width": 0.5}), row=1, col=1)
        fig.add_trace(go.Scatter(x=hours, y=[None if a is None else a / scale for a in series.ask], name="ask",
                                 line={"width": 0.5}), row=1, col=1)
        fig.add_trace(go.Scatter(x=hours, y=[(m - o) / o * 1e4 if o else None
                                             for m, o in zip(series.mark, series.oracle, strict=True)],
                                 name="basis bps"), row=2, col=1)
        if any(x is not None for x in series.external):
            fig.add_trace(go.Scatter(x=hours, y=[((a + b) / 2 - x) / x * 1e4 if a and b and x else None
                                                 for a, b, x in zip(series.ask, series.bid, series.external,
                                                                    strict=True)],
                                     name="book basis bps"), row=2, col=1)
        fig.add_trace(go.Scatter(x=hours, y=[(a - b) / ((a + b) / 2) * 1e4 if a and b else None
                                             for a, b in zip(series.ask, series.bid, strict=True)],
                                 name="spread bps"), row=2, col=1)
        for band, usd in sorted(full.depth.items()):
            fig.add_trace(go.Scatter(x=depth_hours, y=usd[::kd], name=f"depth ±{band} bps"), row=3, col=1)
        fig.add_trace(go.Scatter(x=hours, y=[n / 1e6 for n in series.oi_ntl], name="OI USD"), row=4, col=1)
        fig.update_xaxes(title_text="hours", row=4, col=1)
        fig.update_layout(height=960)
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("liquidated notional per hour, USD",
                                                        "backstop vault and insurance fund, USD"))
    by_hour: dict[int, float] = {}
    for e in tr.events:
        if isinstance(e, V.Liquidated):
            h = (e.ts - scenario.start_ms) // 3_600_000
            by_hour[h] = by_hour.get(h, 0.0) + e.notional / 1e6
    fig.add_trace(go.Bar(x=sorted(by_hour), y=[by_hour[h] for h in sorted(by_hour)], name="liquidated"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=hours, y=[v / 1e6 for v in tr.backstop_value[::k]], name="backstop vault"),
                  row=1, col=2)
    fig.add_trace(go.Scatter(x=hours, y=[v / 1e6 for v in tr.insurance_value[::k]], name="insurance fund"),
                  row=1, col=2)
    fig.update_layout(height=420)
    parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    if len(traces) > 1:
        liq = [sum(e.notional for e in t.events if isinstance(e, V.Liquidated)) / 1e6 for t in traces]
        bad = [sum(max(0, -e.account_value) for e in t.events if isinstance(e, V.Liquidated)) / 1e6 for t in traces]
        fig = make_subplots(rows=1, cols=2, subplot_titles=("liquidated USD across seeds", "bad debt USD across seeds"))
        fig.add_trace(go.Histogram(x=liq, name="liquidated"), row=1, col=1)
        fig.add_trace(go.Histogram(x=bad, name="bad debt"), row=1, col=2)
        fig.update_layout(height=380)
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    return "\n".join(f"<section>{p}</section>" for p in parts)


def report_html(scenario: Scenario, metrics: dict[str, Any], traces: list[RunTrace]) -> str:
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

    summary = {k: v for k, v in metrics.items() if k != "runs"}
    title = f"perpbox lab: {html.escape(scenario.name)}"
    style = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}pre{background:#f6f6f6;padding:1em}"
    seeds = html.escape(str(metrics["seeds"]))
    tunables = html.escape(json.dumps(scenario.tunables, sort_keys=True))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>{style}</style>
<script type="text/javascript">{get_plotlyjs()}</script></head><body>
<h1>{title}</h1>
<p>{html.escape(scenario.description)}</p>
<p>Horizon {scenario.horizon_ms / 3_600_000:g} h, step {scenario.step_ms / 1000:g} s, seeds {seeds};
config hash <code>{scenario.config_hash[:16]}</code>; tunables {tunables}.</p>
<pre>{html.escape(json.dumps(summary, indent=1, sort_keys=True))}</pre>
{_figures(scenario, traces)}
</body></html>"""

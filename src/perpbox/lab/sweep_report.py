"""``sweep.html``: what a sweep found, per point (means over seeds), with plotly embedded."""

from __future__ import annotations

import html
from typing import Any

import polars as pl

METRICS = ("liquidated_usd", "bad_debt_usd", "basis_bps.max", "spread_bps.max")


def _means(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    cols = [pl.col(m).cast(pl.Float64, strict=False).mean().alias(m) for m in METRICS if m in frame.columns]
    return frame.group_by(keys, maintain_order=True).agg(cols)


def sweep_html(title: str, frame: pl.DataFrame, grid: dict[str, list[Any]]) -> str:
    import plotly.graph_objects as go  # type: ignore[import-untyped]
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

    keys = [f"key.{k}" for k in grid]
    means = _means(frame, keys)
    parts = []
    for metric in (m for m in METRICS if m in means.columns):
        if len(keys) == 2:
            xs, ys = grid[keys[0][4:]], grid[keys[1][4:]]
            z = [[None] * len(xs) for _ in ys]
            for row in means.iter_rows(named=True):
                z[ys.index(row[keys[1]])][xs.index(row[keys[0]])] = row[metric]
            fig = go.Figure(go.Heatmap(x=[str(x) for x in xs], y=[str(y) for y in ys], z=z, colorbar={"title": metric}))
            fig.update_layout(xaxis_title=keys[0][4:], yaxis_title=keys[1][4:])
        else:
            labels = [", ".join(f"{k[4:]}={row[k]}" for k in keys) for row in means.iter_rows(named=True)]
            fig = go.Figure(go.Bar(x=labels, y=means[metric].to_list()))
        fig.update_layout(title=f"{metric} (mean over seeds)", height=420)
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    table = _table(means)
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
            f"<h1>{html.escape(title)}</h1><p>{frame.height} runs; means over seeds per point.</p>{table}"
            + "".join(f"<section>{p}</section>" for p in parts) + "</body></html>")


def _table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in frame.rows())
    return f"<table border=1 cellpadding=4><tr>{head}</tr>{rows}</table>"

"""Stress-lab runs on the exact engine: determinism, exact conservation, and a crash that liquidates
the leveraged longs it should (the expectations derived from the margin rules, not from a run)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from perpbox.cli import app
from perpbox.exchange import events as V
from perpbox.lab.metrics import run_metrics, summarise
from perpbox.lab.output import events_frame, metrics_bytes
from perpbox.lab.run import simulate
from perpbox.lab.scenario import builtin_text, load_scenario, parse_scenario

CRASH = builtin_text("calm").replace('name = "calm"', 'name = "crash-test"') + """
# BTC falls 30% in 20 minutes while the makers quote four times wider and thinner
[[shock]]
kind = "price"
market = "BTC"
path = [["5m", 1.0], ["25m", 0.7]]

[[shock]]
kind = "liquidity"
start = "5m"
end = "30m"
factor = 4.0
"""


def _crash(tmp_path: Path) -> Path:
    path = tmp_path / "crash.toml"
    path.write_text(CRASH)
    return path


def test_the_same_scenario_and_seed_give_byte_identical_metrics_and_events() -> None:
    sc = load_scenario("calm", horizon_ms=300_000)
    a, b = simulate(sc, 7), simulate(sc, 7)
    assert metrics_bytes(summarise(sc, [run_metrics(sc, a)])) == metrics_bytes(summarise(sc, [run_metrics(sc, b)]))
    assert events_frame([a]).equals(events_frame([b]))
    assert a.state_hash == b.state_hash
    c = simulate(sc, 8)
    assert c.state_hash != a.state_hash  # the seed matters


def test_a_calm_run_conserves_money_exactly_and_liquidates_nothing() -> None:
    sc = load_scenario("calm", horizon_ms=600_000)
    m = run_metrics(sc, simulate(sc, 1))
    assert m["conservation_residual_usd"] == "0"
    assert (m["liquidated_usd"], m["bad_debt_usd"], m["adl"]["count"]) == ("0", "0", 0)
    assert m["spread_bps"]["p50"] is not None and m["spread_bps"]["p50"] < 20


def test_a_30pct_crash_liquidates_the_longs_it_must_and_no_short(tmp_path: Path) -> None:
    """Each leveraged trader has $50,000 in a cross account and opens one BTC position of about
    $100k–$300k.  BTC's maintenance rate is 1/(2·40) = 1.25%, so a long of entry notional N is
    liquidated in a fall f once 50,000 − N·f < 1.25% · N·(1 − f): for f = 30%, N > $171.7k.  With a
    margin for the walk around the shock (and fees), a long above 50,000 / 0.27 = $185k must be
    liquidated and one under 50,000 / 0.33 = $151k must not; a short only gains."""
    sc = load_scenario(str(_crash(tmp_path)), horizon_ms=1_800_000)
    trace = simulate(sc, 3)
    capital = sc.population.lever_capital_usd
    entry: dict[str, float] = {}  # each leveraged trader's signed BTC entry notional, USD, from its fills
    for e in trace.events:
        if isinstance(e, V.Fill) and e.asset == 0 and e.taker.startswith("0xa9e10003") \
                and e.ts < sc.start_ms + 300_000:
            usd = e.px / 10 * e.sz / 1e5  # BTC: 1 price decimal, 5 size decimals
            entry[e.taker] = entry.get(e.taker, 0.0) + (usd if e.taker_is_buy else -usd)
    liquidated = {e.user for e in trace.events if isinstance(e, V.Liquidated)}
    must = {u for u, n in entry.items() if n > capital / 0.27}
    must_not = {u for u, n in entry.items() if n < capital / 0.33}  # small longs, and every short
    assert must and any(n > 0 for u, n in entry.items() if u in must_not)  # the seed has both cases
    assert must <= liquidated
    assert not (must_not & liquidated)
    m = run_metrics(sc, trace)
    assert m["conservation_residual_usd"] == "0"
    assert float(m["liquidated_usd"]) > 0 and m["liquidations"]["accounts"] >= len(must)
    calm = run_metrics(sc, simulate(load_scenario("calm", horizon_ms=1_800_000), 3))
    # makers quote 4x wider under the shock: the widest spread is at least twice the calm run's
    assert m["spread_bps"]["max"] >= 2 * calm["spread_bps"]["max"]


def test_lab_run_writes_metrics_report_and_events(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["lab", "run", str(_crash(tmp_path)), "--seeds", "2", "--horizon", "30m",
                                   "--set", "lever_leverage=20", "--out", str(out)])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seeds"] == [1, 2] and metrics["horizon_s"] == 1800
    assert metrics["tunables"]["lever_leverage"] == 20
    assert metrics["conservation_residual_usd"] == "0"
    assert [r["seed"] for r in metrics["runs"]] == [1, 2]
    liq = sorted(float(r["liquidated_usd"]) for r in metrics["runs"])
    assert float(metrics["liquidated_usd"]["p50"]) == liq[0] and float(metrics["liquidated_usd"]["p95"]) == liq[1]
    events = pl.read_parquet(out / "events.parquet")
    assert set(events["seed"].unique()) == {1, 2}
    assert events.filter(pl.col("type") == "Liquidated").height >= sum(r["liquidations"]["attempts"]
                                                                       for r in metrics["runs"])
    assert "plotly" in (out / "report.html").read_text()[:200_000]


def test_two_runs_write_byte_identical_files(tmp_path: Path) -> None:
    for out in ("a", "b"):
        res = CliRunner().invoke(app, ["lab", "run", "calm", "--horizon", "5m", "--seeds", "2",
                                       "--out", str(tmp_path / out)])
        assert res.exit_code == 0, res.output
    for name in ("metrics.json", "events.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_the_depth_samples_hold_the_makers_ladders_within_each_band() -> None:
    """calm's two makers each quote 8 levels a side, level ``lvl`` worth $10,000 × (1 + lvl) on
    average, ``half + 2 × lvl`` bps from the centre, the half spread 1–2 bps (maker 0) and 1.5–2.5
    (maker 1).  Within ±10 bps lie levels 0–4 (about $150k a side a maker: ~$600k in all); within
    ±50 bps the whole ladder ($360k a side a maker: ~$1.44M)."""
    sc = load_scenario("calm", horizon_ms=600_000)
    trace = simulate(sc, 1)
    series = next(s for s in trace.markets.values() if s.name == "BTC")
    assert len(series.depth_ts) == 60 and all(t % 10_000 == 0 for t in series.depth_ts)
    d10, d50 = sorted(series.depth[10])[30], sorted(series.depth[50])[30]
    assert 300_000 <= d10 <= 900_000
    assert 1_000_000 <= d50 <= 2_000_000
    assert all(a <= b for a, b in zip(series.depth[10], series.depth[50], strict=True))


def _funding(imbalance: float) -> dict[int, list[int]]:
    text = builtin_text("calm").replace("[population]\n", f"[population]\nimbalance = {imbalance}\n"
                                        "imbalance_halflife_s = 1800.0\ninventory_skew_bps = 15.0\n"
                                        "max_inventory_usd = 1000000.0\n")
    sc = parse_scenario(tomllib.loads(text), {}, horizon_ms=4 * 3_600_000)
    rates: dict[int, list[int]] = {}
    for e in simulate(sc, 1).events:
        if isinstance(e, V.FundingSettled):
            rates.setdefault(e.asset, []).append(e.rate)
    return rates


def test_flow_regimes_move_each_markets_funding_its_own_way() -> None:
    """Hyperliquid's hourly rate is (P + clamp(I − P, ±0.05%)) / 8 with I = 0.01% per 8 h: while the
    average premium P stays within 0.05% of I the rate is I / 8 = 0.00125% (1,250 in 1e-8) on every
    market, every hour — what a balanced flow gives.  Per-market flow regimes (a mean-reverting buy
    share, the makers skewing 15 bps at a $1M inventory) push some hours' premiums past that, on
    one market and not the other."""
    flat = _funding(0.0)
    assert all(r == 1_250 for rates in flat.values() for r in rates) and len(flat) == 2
    moved = _funding(0.3)
    assert any(r != 1_250 for rates in moved.values() for r in rates)
    btc, eth = moved.values()
    assert len(btc) == len(eth) == 4 and btc != eth

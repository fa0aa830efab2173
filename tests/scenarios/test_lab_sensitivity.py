"""Sobol indices (SALib) and the worst-case search (optuna) on the sweep machinery, on a relation we
know: the makers' half spread sets the spread; the leveraged traders' leverage does not."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from perpbox.cli import app
from perpbox.lab.metrics import run_metrics
from perpbox.lab.run import simulate
from perpbox.lab.scenario import load_scenario
from perpbox.lab.sensitivity import objective_value, parse_bounds, sobol_points, worst_case
from perpbox.lab.sweep import local_executor

HORIZON = 120_000


def test_sobol_points_are_saltelli_s_design_inside_the_box() -> None:
    box = parse_bounds(["half_spread_bps=0.5:4", "lever_leverage=3:20"])
    pts = sobol_points("calm", box, 8)
    assert len(pts) == 8 * (2 + 2)  # N × (D + 2) without second-order terms
    for p in pts:
        d = dict(p)
        assert 0.5 <= d["half_spread_bps"] <= 4
        assert isinstance(d["lever_leverage"], int) and 3 <= d["lever_leverage"] <= 20


def test_the_half_spread_explains_the_spread_and_the_leverage_does_not(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["lab", "sweep", "calm", "--sobol", "16", "--bounds", "half_spread_bps=0.5:4",
                                   "--bounds", "lever_leverage=3:20", "--metric", "spread_bps.p50", "--horizon", "2m",
                                   "--workers", "2", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    ix = json.loads((tmp_path / "sobol.json").read_text())["indices"]
    assert ix["half_spread_bps"]["S1"] > 0.7
    assert ix["lever_leverage"]["ST"] < 0.2


def test_the_worst_case_search_finds_the_widest_median_spread_and_it_is_that_run(tmp_path: Path) -> None:
    result = worst_case("calm", parse_bounds(["half_spread_bps=0.5:4"]), "spread_bps.p50.max", 6, 1, tmp_path,
                        local_executor(1), HORIZON)
    trials = result["trials"]
    assert len(trials) == 6
    best = result["best"]
    assert best["value"] == max(t["value"] for t in trials)
    # the median spread grows with the half spread: the worst trial is the one with the widest half spread
    assert best["point"]["half_spread_bps"] == max(t["point"]["half_spread_bps"] for t in trials)
    sc = load_scenario("calm", best["point"], horizon_ms=HORIZON)
    assert run_metrics(sc, simulate(sc, 1))["spread_bps"]["p50"] == best["value"]
    assert objective_value([{"m": "1.5"}, {"m": "3"}], "m.max") == 3.0

"""Sweeps: the cartesian product of the grids, each run equal to the same run done directly, a
restart that runs only what is missing, and the process pool and Ray giving the same rows as one
process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from perpbox.lab.metrics import run_metrics
from perpbox.lab.run import simulate
from perpbox.lab.scenario import ScenarioError, load_scenario
from perpbox.lab.sweep import Executor, Task, local_executor, parse_grid, ray_executor, sweep

GRID = {"half_spread_bps": [1.0, 3.0], "lever_leverage": [5, 20]}
HORIZON = 180_000  # three simulated minutes a run


def _counting(inner: Executor, seen: list[Task]) -> Executor:
    def run(tasks: list[Task], done: Any) -> None:
        seen.extend(tasks)
        inner(tasks, done)
    return run


def test_a_sweep_runs_the_cartesian_product_and_each_row_is_that_run(tmp_path: Path) -> None:
    frame = sweep("calm", GRID, 2, tmp_path, local_executor(1), HORIZON)
    combos = {(r["key.half_spread_bps"], r["key.lever_leverage"], r["seed"]) for r in frame.iter_rows(named=True)}
    assert combos == {(h, lev, s) for h in (1.0, 3.0) for lev in (5, 20) for s in (1, 2)}  # 2 × 2 × 2, not a zip
    row = frame.filter((pl.col("key.half_spread_bps") == 3.0) & (pl.col("key.lever_leverage") == 20)
                       & (pl.col("seed") == 2)).row(0, named=True)
    sc = load_scenario("calm", {"half_spread_bps": 3.0, "lever_leverage": 20}, horizon_ms=HORIZON)
    direct = run_metrics(sc, simulate(sc, 2))
    assert row["state_hash"] == direct["state_hash"]
    assert row["liquidated_usd"] == direct["liquidated_usd"] and row["spread_bps.max"] == direct["spread_bps"]["max"]
    assert (tmp_path / "results.parquet").exists()


def test_a_restarted_sweep_runs_only_what_is_missing(tmp_path: Path) -> None:
    first: list[Task] = []
    sweep("calm", {"half_spread_bps": [1.0, 2.0]}, 1, tmp_path, _counting(local_executor(1), first), HORIZON)
    before = pl.read_parquet(tmp_path / "results.parquet")
    again: list[Task] = []
    frame = sweep("calm", {"half_spread_bps": [1.0, 2.0, 4.0]}, 2, tmp_path, _counting(local_executor(1), again),
                  HORIZON)
    assert len(first) == 2 and len(again) == 4  # 3 points × 2 seeds, minus the 2 runs already there
    assert frame.height == 6
    kept = frame.filter(pl.col("seed") == 1).filter(pl.col("key.half_spread_bps") < 4)
    assert kept.select(before.columns).equals(before)


def test_the_process_pool_and_ray_give_the_same_rows_as_one_process(tmp_path: Path) -> None:
    one = sweep("calm", GRID, 1, tmp_path / "one", local_executor(1), HORIZON)
    pool = sweep("calm", GRID, 1, tmp_path / "pool", local_executor(2), HORIZON)
    assert pool.equals(one)
    ray = sweep("calm", GRID, 1, tmp_path / "ray", ray_executor(None, 2), HORIZON)  # a local Ray, two workers
    assert ray.equals(one)


def test_grids_that_do_not_parse_or_name_no_tunable_are_refused(tmp_path: Path) -> None:
    assert parse_grid(["a=1,2.5,true,x"]) == {"a": [1, 2.5, True, "x"]}
    for bad in (["a"], ["a="], ["=1"], ["a=1", "a=2"]):
        with pytest.raises(ScenarioError):
            parse_grid(bad)
    with pytest.raises(ScenarioError, match="not a tunable"):
        sweep("calm", {"nope": [1]}, 1, tmp_path, local_executor(1), HORIZON)
    assert not (tmp_path / "results.parquet").exists()  # refused before anything ran

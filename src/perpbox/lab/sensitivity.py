"""Sobol sensitivity of a metric to a scenario's tunables (SALib), and the worst case within bounds
(optuna): both run on the sweep machinery, so every evaluation is an ordinary run of the sweep.

* ``sobol_points(bounds, n, seed)`` — Saltelli's design for ``n`` base samples: ``n × (2D + 2)``
  points in the box ``bounds`` (``{key: (lo, hi)}``), integers rounded where the tunable's
  default is an integer; ``sobol_indices`` then gives each key's first-order (S1) and total (ST)
  index of a metric's mean over seeds, with SALib's confidence intervals.
* ``worst_case(...)`` — optuna's TPE sampler, seeded, maximising a metric over ``trials`` points
  of the box: an attacker's-eye view of a parameter set.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from perpbox.lab.metrics import nearest_rank
from perpbox.lab.scenario import ScenarioError, parse_scenario, scenario_text
from perpbox.lab.sweep import Executor, Point, point_id, sweep_points

Bounds = dict[str, tuple[float, float]]


def parse_bounds(items: list[str]) -> Bounds:
    """``KEY=LO:HI`` options."""
    out: Bounds = {}
    for item in items:
        key, sep, raw = item.partition("=")
        lo, sep2, hi = raw.partition(":")
        try:
            bounds = (float(lo), float(hi))
        except ValueError:
            bounds = (0.0, -1.0)
        if not sep or not sep2 or not key.strip() or not bounds[0] < bounds[1]:
            raise ScenarioError(f"--bounds/--search {item!r}: expected KEY=LO:HI with LO < HI")
        out[key.strip()] = bounds
    return out


def _kinds(name_or_path: str, keys: list[str]) -> dict[str, type]:
    """Each key's type (from the tunable's default); an unknown key is refused."""
    tunables = tomllib.loads(scenario_text(name_or_path)).get("tunables", {})
    unknown = [k for k in keys if k not in tunables]
    if unknown:
        raise ScenarioError(f"not tunables of this scenario: {unknown} (tunables: {sorted(tunables)})")
    bad = [k for k in keys if isinstance(tunables[k], bool) or not isinstance(tunables[k], int | float)]
    if bad:
        raise ScenarioError(f"only numeric tunables have bounds: {bad}")
    return {k: type(tunables[k]) for k in keys}


def _point(values: dict[str, float], kinds: dict[str, type]) -> Point:
    return tuple((k, round(v) if kinds[k] is int else round(v, 6)) for k, v in values.items())


def sobol_points(name_or_path: str, bounds: Bounds, n: int, seed: int = 0) -> list[Point]:
    from SALib.sample import sobol as sobol_sample  # type: ignore[import-untyped]

    kinds = _kinds(name_or_path, list(bounds))
    problem = {"num_vars": len(bounds), "names": list(bounds), "bounds": [list(b) for b in bounds.values()]}
    samples = sobol_sample.sample(problem, n, calc_second_order=False, seed=seed)
    return [_point(dict(zip(bounds, row, strict=True)), kinds) for row in samples.tolist()]


def _metric(frame: pl.DataFrame, metric: str) -> dict[str, float]:
    """The mean of ``metric`` over seeds, per point id."""
    means = frame.group_by("point").agg(pl.col(metric).cast(pl.Float64, strict=False).mean())
    return dict(zip(means["point"].to_list(), means[metric].to_list(), strict=True))


def sobol_indices(name_or_path: str, bounds: Bounds, pts: list[Point], frame: pl.DataFrame,
                  metric: str) -> dict[str, dict[str, float]]:
    import numpy as np
    from SALib.analyze import sobol as sobol_analyze  # type: ignore[import-untyped]

    problem = {"num_vars": len(bounds), "names": list(bounds), "bounds": [list(b) for b in bounds.values()]}
    by_point = _metric(frame, metric)
    y = np.array([by_point[point_id(p)] or 0.0 for p in pts])
    res = sobol_analyze.analyze(problem, y, calc_second_order=False, print_to_console=False)
    return {k: {"S1": float(res["S1"][i]), "S1_conf": float(res["S1_conf"][i]), "ST": float(res["ST"][i]),
                "ST_conf": float(res["ST_conf"][i])} for i, k in enumerate(bounds)}


def objective_value(rows: list[dict[str, Any]], objective: str) -> float:
    """``metric.pNN`` or ``metric.max`` (over the seeds' rows) of a flattened metric, e.g. ``bad_debt_usd.p95``."""
    metric, _, stat = objective.rpartition(".")
    if not metric or not (stat == "max" or (stat.startswith("p") and stat[1:].isdigit())):
        raise ScenarioError(f"--objective {objective!r}: METRIC.pNN or METRIC.max, e.g. bad_debt_usd.p95")
    values = [Decimal(str(r[metric])) for r in rows if r.get(metric) is not None]
    if not values:
        return 0.0
    return float(max(values) if stat == "max" else nearest_rank(values, int(stat[1:]) / 100))


def worst_case(name_or_path: str, search: Bounds, objective: str, trials: int, seeds: int, out: Path,
               executor: Executor, horizon_ms: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The point of ``search`` that maximises ``objective`` over ``trials`` optuna trials (seeded)."""
    import optuna

    kinds = _kinds(name_or_path, list(search))
    objective_value([], objective)  # the objective's form, before anything runs
    text = scenario_text(name_or_path)
    parse_scenario(tomllib.loads(text), {}, horizon_ms=horizon_ms)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    history: list[dict[str, Any]] = []

    def evaluate(trial: optuna.Trial) -> float:
        values = {k: (trial.suggest_int(k, int(lo), int(hi)) if kinds[k] is int else trial.suggest_float(k, lo, hi))
                  for k, (lo, hi) in search.items()}
        point = _point({k: float(v) for k, v in values.items()}, kinds)
        frame = sweep_points(name_or_path, [point], seeds, out, executor, horizon_ms)
        rows = [r for r in frame.iter_rows(named=True) if r["point"] == point_id(point)]
        value = objective_value(rows, objective)
        history.append({"trial": trial.number, "point": dict(point), "value": value})
        if progress is not None:
            progress(trial.number + 1, trials)
        return value

    study.optimize(evaluate, n_trials=trials)
    best = max(history, key=lambda h: (h["value"], -h["trial"]))
    return {"objective": objective, "best": best, "trials": history, "seeds": seeds}

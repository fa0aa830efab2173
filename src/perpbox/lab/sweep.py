"""Sweeps: one scenario over a grid of its tunables, one run per (point, seed).

The points are the **cartesian product** of the grids (``--grid a=1,2 --grid b=x,y`` is four points,
not two: radCAD's zip is the trap the reference warns of).  Each run is a pure function of
(scenario text, point, seed, horizon), so any executor gives the same rows:

* ``local`` — in this process with ``workers=1``, else a process pool of ``workers`` (started by a
  fork server);
* ``ray`` — ``ray.remote`` tasks (``pip install 'perpbox[ray]'``), on a local Ray started with
  ``workers`` CPUs or on the cluster at ``address``.

``DIR/results.parquet`` has one row per run: ``point`` (its id), ``seed``, the point's keys, every
metric of the run flattened with dots (money as exact decimal strings, as in ``metrics.json``),
and the run's state hash.  A sweep started again over the same directory runs only what is
missing: rows already there (same point id and seed) are kept as they are.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from perpbox.lab.metrics import run_metrics
from perpbox.lab.run import simulate
from perpbox.lab.scenario import ScenarioError, parse_override, parse_scenario, scenario_text

RESULTS = "results.parquet"


@dataclass(frozen=True)
class Task:
    """One run of a sweep: everything it needs, picklable."""

    text: str  # the scenario's TOML
    point: tuple[tuple[str, Any], ...]
    point_id: str
    seed: int
    horizon_ms: int | None


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``KEY=V1,V2,…`` options as ``{key: [values]}`` (each value a TOML value, as ``--set`` takes)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or not raw.strip():
            raise ScenarioError(f"--grid {item!r}: expected KEY=V1,V2,…")
        if key.strip() in grid:
            raise ScenarioError(f"--grid {key.strip()}: given twice")
        grid[key.strip()] = [parse_override(f"{key}={v}")[1] for v in raw.split(",")]
    return grid


def points(grid: dict[str, list[Any]]) -> list[tuple[tuple[str, Any], ...]]:
    """The cartesian product of the grids, in order (the first key varies slowest)."""
    keys = list(grid)
    return [tuple(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def point_id(point: tuple[tuple[str, Any], ...]) -> str:
    return hashlib.sha256(json.dumps(point, sort_keys=True).encode()).hexdigest()[:12]


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = value


def run_task(task: Task) -> dict[str, Any]:
    """One run, as a results row."""
    import tomllib

    sc = parse_scenario(tomllib.loads(task.text), dict(task.point), horizon_ms=task.horizon_ms)
    metrics = run_metrics(sc, simulate(sc, task.seed))
    row: dict[str, Any] = {"point": task.point_id, "seed": task.seed}
    row.update({f"key.{k}": v for k, v in task.point})
    _flatten("", {k: v for k, v in metrics.items() if k != "seed"}, row)
    return row


Executor = Callable[[list[Task], Callable[[dict[str, Any]], None]], None]


def local_executor(workers: int) -> Executor:
    def run(tasks: list[Task], done: Callable[[dict[str, Any]], None]) -> None:
        if workers <= 1:
            for t in tasks:
                done(run_task(t))
            return
        # forkserver, not fork: a process that has started threads (Ray, polars) is not safe to fork
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
            for row in pool.map(run_task, tasks):
                done(row)
    return run


def ray_executor(address: str | None, workers: int) -> Executor:
    """Ray tasks; a local Ray with ``workers`` CPUs unless ``address`` names a cluster."""
    try:
        import ray
    except ImportError:
        raise ScenarioError("--executor ray needs Ray: pip install 'perpbox[ray]'") from None

    def run(tasks: list[Task], done: Callable[[dict[str, Any]], None]) -> None:
        started = not ray.is_initialized()
        if started:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
        try:
            remote = ray.remote(run_task)
            pending = {remote.remote(t): t for t in tasks}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    pending.pop(ref)
                    done(ray.get(ref))
        finally:
            if started:
                ray.shutdown()
    return run


def read_results(out: Path) -> pl.DataFrame | None:
    path = out / RESULTS
    return pl.read_parquet(path) if path.exists() else None


def _frame(rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    rows = list(rows)
    columns = sorted({k for r in rows for k in r})
    first = ["point", "seed", *sorted(c for c in columns if c.startswith("key."))]
    ordered = first + [c for c in columns if c not in first]
    return pl.DataFrame({c: [r.get(c) for r in rows] for c in ordered}, strict=False)


Point = tuple[tuple[str, Any], ...]


def sweep(name_or_path: str, grid: dict[str, list[Any]], seeds: int, out: Path, executor: Executor,
          horizon_ms: int | None = None, progress: Callable[[int, int], None] | None = None) -> pl.DataFrame:
    """The grid's cartesian product (``sweep_points``)."""
    return sweep_points(name_or_path, points(grid), seeds, out, executor, horizon_ms, progress)


def sweep_points(name_or_path: str, pts: list[Point], seeds: int, out: Path, executor: Executor,
                 horizon_ms: int | None = None, progress: Callable[[int, int], None] | None = None) -> pl.DataFrame:
    """Run every (point, seed) not yet in ``out/results.parquet``; the whole table, sorted by point
    order then seed.  A point listed twice runs once."""
    text = scenario_text(name_or_path)
    import tomllib

    parse_scenario(tomllib.loads(text), {}, horizon_ms=horizon_ms)  # the scenario itself parses
    pts = list(dict.fromkeys(pts))
    for p in pts:  # every point's keys are tunables of the right type, before anything runs
        parse_scenario(tomllib.loads(text), dict(p), horizon_ms=horizon_ms)
    existing = read_results(out)
    have = set() if existing is None else set(zip(existing["point"].to_list(), existing["seed"].to_list(),
                                                  strict=True))
    rows = [] if existing is None else existing.to_dicts()
    tasks = [Task(text, p, point_id(p), seed, horizon_ms) for p in pts for seed in range(1, seeds + 1)
             if (point_id(p), seed) not in have]
    out.mkdir(parents=True, exist_ok=True)
    done_count = 0

    def done(row: dict[str, Any]) -> None:
        nonlocal done_count
        rows.append(row)
        done_count += 1
        _write(out, rows, pts)  # after every run: an interrupted sweep keeps what it did
        if progress is not None:
            progress(done_count, len(tasks))

    executor(tasks, done)
    return _write(out, rows, pts)


def _write(out: Path, rows: list[dict[str, Any]], pts: list[Point]) -> pl.DataFrame:
    order = {point_id(p): i for i, p in enumerate(pts)}
    rows.sort(key=lambda r: (order.get(r["point"], len(order)), r["point"], r["seed"]))
    frame = _frame(rows)
    tmp = out / f".{RESULTS}.tmp"
    frame.write_parquet(tmp, statistics=False)
    tmp.replace(out / RESULTS)
    return frame

"""Benchmark: the stress lab.

1. One seed of ``silver-crash-2026`` over its whole horizon (58 simulated hours, one-second
   steps: the crash, the weekend, the reopen): simulated hours per wall second, the engine's
   commands per second inside it, and the share of the wall time spent inside the engine's
   ``apply`` (the rest is the agents, the feed and the sampling).
2. A 32-run sweep of ``calm`` (a 4 × 4 grid of two tunables, two seeds, 30 simulated minutes a run)
   with the local executor (a process pool of ``--workers``) and with Ray (a local Ray of as many
   CPUs), taking turns for ``--rounds`` rounds: runs per minute of each, the median and range of
   the ratio Ray / local.  Ray is timed twice a round: on a Ray already running (as a cluster is;
   the figure on the last line) and starting its own local Ray (the start, several seconds, is
   then part of a 32-run sweep's time).  The machine is shared: read the medians and ranges, not one figure.

The last line printed is exactly::

    simulated_hours_per_s=<float> runs_per_min_local=<float> runs_per_min_ray=<float> engine_ops_per_s=<int>

(medians).  Run: ``.venv/bin/python bench/lab.py [--workers N] [--rounds R] [--no-ray]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

_SRC = Path(__file__).resolve().parents[1] / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

import perpbox.lab.run as lab_run  # noqa: E402
from perpbox.exchange import Exchange  # noqa: E402
from perpbox.lab.run import simulate  # noqa: E402
from perpbox.lab.scenario import load_scenario  # noqa: E402
from perpbox.lab.sweep import local_executor, ray_executor, sweep  # noqa: E402

SCENARIO = "silver-crash-2026"


class TimedExchange:
    """The engine, with the wall time spent in ``apply`` added up (a wrapper: the compiled
    ``Exchange`` cannot be subclassed)."""

    spent = 0.0

    def __init__(self) -> None:
        self._ex = Exchange()

    def apply(self, cmd):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return self._ex.apply(cmd)
        finally:
            TimedExchange.spent += time.perf_counter() - t

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._ex, name)


GRID = {"half_spread_bps": [0.5, 1.0, 2.0, 4.0], "lever_leverage": [3, 5, 10, 20]}
SEEDS, SWEEP_HORIZON_MS = 2, 1_800_000


def _sweep_runs_per_min(executor_name: str, workers: int) -> float:
    out = Path(tempfile.mkdtemp(prefix="perpbox-bench-lab-"))
    try:
        run = local_executor(workers) if executor_name == "local" else ray_executor(None, workers)
        t = time.perf_counter()
        frame = sweep("calm", GRID, SEEDS, out, run, SWEEP_HORIZON_MS)
        dt = time.perf_counter() - t
        assert frame.height == 32
        return 32 / dt * 60
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    args = ap.parse_args()

    sc = load_scenario(SCENARIO)
    t = time.perf_counter()
    trace = simulate(sc, 1)
    dt = time.perf_counter() - t
    hours = sc.horizon_ms / 3_600_000
    print(f"{SCENARIO}, seed 1: {hours:g} simulated hours in {dt:.1f} s "
          f"({hours / dt:.3f} h/s); {trace.commands:,} commands, {len(trace.events):,} events "
          f"({trace.commands / dt:,.0f} commands/s)")
    lab_run.Exchange = TimedExchange  # type: ignore[misc]
    t = time.perf_counter()
    simulate(sc, 1)
    timed = time.perf_counter() - t
    lab_run.Exchange = Exchange  # type: ignore[misc]
    print(f"  again with the engine timed: {timed:.1f} s, {TimedExchange.spent / timed:.0%} of it inside "
          f"Exchange.apply (the rest: agents, feed, samples)")

    local, cold, ray = [], [], []
    for r in range(args.rounds):
        local.append(_sweep_runs_per_min("local", args.workers))
        if not args.no_ray:
            cold.append(_sweep_runs_per_min("ray", args.workers))
            import ray as ray_module

            ray_module.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
            try:  # a running Ray, as a cluster is: the sweep pays only for its tasks
                ray.append(_sweep_runs_per_min("ray", args.workers))
            finally:
                ray_module.shutdown()
        tail = "" if args.no_ray else f", ray {ray[-1]:.1f} runs/min (starting its own Ray: {cold[-1]:.1f})"
        print(f"round {r + 1}: local {local[-1]:.1f} runs/min{tail}")
    for name, side in (("ray (running) / local", ray), ("ray (started by the sweep) / local", cold)):
        ratio = [b / a for a, b in zip(local, side, strict=False)]
        if ratio:
            print(f"{name}: median {statistics.median(ratio):.3f}, range {min(ratio):.3f}–{max(ratio):.3f}")
    print(f"simulated_hours_per_s={hours / dt:.4f} runs_per_min_local={statistics.median(local):.2f} "
          f"runs_per_min_ray={statistics.median(ray) if ray else 0:.2f} engine_ops_per_s={round(trace.commands / dt)}")


if __name__ == "__main__":
    main()

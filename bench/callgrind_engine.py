"""Instructions per op of perpbox's exchange engine under callgrind: a load-independent companion to
``bench/engine.py``.

The wall clock on the shared machine drifts by ±30%; an instruction count does not.  This script runs
``valgrind --tool=callgrind`` on a fixed replay of the first K ops (default 20,000) of
``bench/engine.py``'s seeded workload (same generator, same harness: ``EngineRunner`` builds each
command and applies it) through a given build of perpbox, and subtracts an *empty* run that imports
the same modules, generates the same workload and builds the same exchange (the markets and the
1,000 deposits: setup, not ops) but applies no op.  Both runs settle the heap as ``perpbox serve``
does (a collection, ``gc.freeze()``, ``perpbox.store.sequencer.GC_THRESHOLDS``; ``--cpython-gc`` keeps
CPython's (700, 10, 10)), and run with ``PYTHONHASHSEED=0``.  The counts still vary by a few million
instructions from run to run of the same build (most likely address-dependent hashing under ASLR), i.e.
by ~±150-300 instructions per op at 20,000 ops: ratios within ~2% of 1.0 are a tie.  The totals are
read from the ``summary:``/``totals:`` line of each run's ``--callgrind-out-file`` (in a temporary
directory).

``--src SRC`` picks the build (a perpbox ``src`` directory, put first on ``sys.path``; default: the
installed perpbox); ``--baseline SRC`` measures a second build the same way and prints both side by
side with the ratio engine/baseline (below 1: the engine runs fewer instructions per op).  Each run
prints where perpbox and ``perpbox.exchange.engine`` came from and whether the engine is compiled,
and stops if perpbox was not imported from the directory asked for.  It is slow: about two minutes per
build for 20,000 ops on the 2-core machine (valgrind runs ~50x slower); ``--ops`` sets K.

The last line printed is exactly::

    engine_instr_per_op=<int>

or, with ``--baseline``::

    engine_instr_per_op=<int> baseline_instr_per_op=<int> ratio=<float>

Run: ``.venv/bin/python bench/callgrind_engine.py [--ops K] [--seed S] [--src SRC] [--baseline SRC] [--cpython-gc]``,
e.g. ``.venv/bin/python bench/callgrind_engine.py --src src --baseline /tmp/before/src``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
_INFO = "callgrind_engine build: "  # prefix of the line a measured run prints about its build


def _child(mode: str, n_ops: int, seed: int, src: str | None, cpython_gc: bool) -> None:
    """The measured process: imports, generates, builds the exchange, settles the heap and, in
    ``full`` mode, replays the ops (``empty``: replays none)."""
    saved = list(sys.path)
    sys.path.insert(0, str(BENCH))
    import engine as bench  # bench/engine.py: the workload and the harness

    sys.path[:] = saved  # bench/engine.py puts this checkout's src first; the build is chosen here
    info = bench.import_perpbox_from(src)
    GC_THRESHOLDS, settle_heap = bench.serve_heap()

    ops, _ = bench.generate(n_ops, seed)
    runner = bench.EngineRunner(ops)
    settle_heap(bench.CPYTHON_GC_THRESHOLDS if cpython_gc else GC_THRESHOLDS)
    if mode == "full":
        runner.block(0, len(ops))
    print(_INFO + json.dumps({**info, "results": len(runner.results)}), flush=True)


def callgrind_total(mode: str, args: argparse.Namespace, src: str | None, tmp: Path) -> tuple[int, dict]:
    """Run the child under callgrind; returns (instructions, the child's build info)."""
    out_file = tmp / f"callgrind.{mode}.{len(list(tmp.iterdir()))}.out"
    cmd = ["valgrind", "--tool=callgrind", "-q", f"--callgrind-out-file={out_file}",
           sys.executable, str(Path(__file__).resolve()), "--child", mode,
           "--ops", str(args.ops), "--seed", str(args.seed)]
    if src is not None:
        cmd += ["--src", src]
    if args.cpython_gc:
        cmd.append("--cpython-gc")
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    if res.returncode != 0:
        raise SystemExit(f"callgrind run failed ({mode}, src {src}):\n{res.stdout}\n{res.stderr}")
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith(_INFO)), None)
    if line is None:
        raise SystemExit(f"no build line from the {mode} run:\n{res.stdout}\n{res.stderr}")
    info = json.loads(line[len(_INFO):])
    total = None
    for ln in out_file.read_text().splitlines():
        m = re.match(r"(summary|totals):\s+(\d+)", ln)
        if m:
            total = int(m.group(2))  # the first event is Ir (instructions)
            if m.group(1) == "summary":
                break
    if total is None:
        raise SystemExit(f"no summary/totals line in {out_file}")
    return total, info


def measure(label: str, args: argparse.Namespace, src: str | None) -> int:
    """Instructions per op of one build: (full - empty) / ops."""
    with tempfile.TemporaryDirectory(prefix="callgrind_engine.") as d:
        tmp = Path(d)
        empty, info = callgrind_total("empty", args, src, tmp)
        full, info_full = callgrind_total("full", args, src, tmp)
    if info_full["perpbox"] != info["perpbox"]:
        raise SystemExit(f"{label}: the two runs imported different builds: {info['perpbox']} / {info_full['perpbox']}")
    per_op = (full - empty) / args.ops
    print(f"{label}: perpbox.__file__={info['perpbox']}  perpbox.exchange.engine "
          f"{'compiled' if info['compiled'] else 'NOT compiled (pure Python)'}: {info['engine_module']}")
    print(f"  {'full':<7}{full:>16,} instructions ({info_full['results']} ops replayed)")
    print(f"  {'empty':<7}{empty:>16,} instructions (imports, workload, exchange set-up, no op)")
    print(f"  {'per op':<7}{per_op:>16,.0f}", flush=True)
    return round(per_op)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=20_000, help="ops replayed under callgrind (default 20000)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--src", metavar="SRC", default=None,
                    help="perpbox src directory to measure (default: the installed perpbox)")
    ap.add_argument("--baseline", metavar="SRC", default=None,
                    help="a second perpbox src directory, measured the same way and compared")
    ap.add_argument("--cpython-gc", action="store_true",
                    help="keep CPython's collection thresholds (700, 10, 10) instead of perpbox serve's")
    ap.add_argument("--child", choices=("full", "empty"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child, args.ops, args.seed, args.src, args.cpython_gc)
        return 0
    if args.ops < 1:
        ap.error("--ops must be at least 1")

    print(f"callgrind: {args.ops} ops of bench/engine.py's workload (seed {args.seed}), minus an empty run; "
          f"gc thresholds {'CPython default' if args.cpython_gc else 'as perpbox serve'}")
    eng = measure("engine", args, args.src)
    if args.baseline is None:
        print(f"engine_instr_per_op={eng}")
        return 0
    base = measure("baseline", args, args.baseline)
    print(f"{'':<12}{'engine':>12}{'baseline':>12}{'ratio':>8}")
    print(f"{'instr/op':<12}{eng:>12,}{base:>12,}{eng / base:>8.3f}")
    print(f"engine_instr_per_op={eng} baseline_instr_per_op={base} ratio={eng / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

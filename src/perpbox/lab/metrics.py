"""What a lab run measured (``metrics.json``), per seed and over seeds.

Per run, from its events and samples (``lab.run.RunTrace``); money in USD as exact decimal strings:

* ``liquidated_usd`` — Σ notional of every ``Liquidated`` event (book, backstop, insurance, ADL);
  ``liquidations`` — how many;
* ``bad_debt_usd`` — Σ max(0, −account value) at those liquidations: negative equity someone else
  (the book, the vault, the fund, the ADL counterparties) had to absorb;
* ``adl.count`` / ``adl.notional_usd`` — the liquidations that ended in auto-deleveraging;
* ``backstop.pnl_usd`` — the backstop vault's value at the end minus its starting capital;
* ``insurance_fund.drawdown_usd`` — the largest fall of the fund's value from a running peak;
  ``insurance_fund.exhausted`` — an ADL happened (neither the vault nor the fund took a bankrupt
  position);
* ``cascade_depth`` — liquidated notional over the notional liquidated at the first step that
  liquidated anything (1: no cascade; null: no liquidation);
* ``basis_bps.max`` — the largest |mark − oracle| / oracle × 1e4 over markets and steps;
  ``basis_bps.time_to_revert_s`` — from that peak until |basis| is back under 50 bps on that
  market (null: it never came back within the horizon);
* ``spread_bps.p50`` / ``spread_bps.max`` — (ask − bid) / mid × 1e4 over steps with both sides;
* ``oi.peak_over_cap`` — the largest open-interest notional over its cap (null: no market capped);
* ``conservation_residual_usd`` — the largest |cash − (deposits − withdrawals)| after any step:
  exactly 0 or the engine has a bug.

Over seeds, each of ``bad_debt_usd``, ``liquidated_usd``, ``backstop.pnl_usd``,
``insurance_fund.drawdown_usd``, ``cascade_depth``, ``basis_bps.max`` and ``spread_bps.max`` is
given as ``{p50, p95, p99, max}`` by the nearest-rank method (a value one of the runs had, no
interpolation): ``bad_debt_usd.p95`` is Gauntlet's VaR and ``liquidated_usd.p95`` its LaR over
the stated ``horizon_s``.  ``insurance_fund.exhausted_share`` is the share of seeds with an ADL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from perpbox import __version__
from perpbox.core.numbers import USD
from perpbox.exchange import events as V
from perpbox.lab.run import RunTrace
from perpbox.lab.scenario import Scenario

REVERT_BPS = 50.0
DISTRIBUTIONS = ("bad_debt_usd", "liquidated_usd", "backstop.pnl_usd", "insurance_fund.drawdown_usd",
                 "cascade_depth", "basis_bps.max", "spread_bps.max")


def usd(micro: int) -> str:
    """Micro-USDC as an exact USD decimal string."""
    return str(Decimal(micro).scaleb(-6).normalize() if micro else Decimal(0))


def _bps(x: float) -> float:
    return round(x, 4)


def run_metrics(scenario: Scenario, trace: RunTrace) -> dict[str, Any]:
    liqs = [e for e in trace.events if isinstance(e, V.Liquidated)]
    adl = [e for e in liqs if e.method == "adl"]
    liquidated = sum(e.notional for e in liqs)
    first = [e for e in liqs if e.ts == liqs[0].ts] if liqs else []
    first_ntl = sum(e.notional for e in first)
    peak, drawdown = -(10**30), 0
    for v in trace.insurance_value:
        peak = max(peak, v)
        drawdown = max(drawdown, peak - v)
    spreads: list[float] = []
    basis_max, revert_s = 0.0, None
    peak_over_cap: float | None = None
    for series in trace.markets.values():
        for b, a in zip(series.bid, series.ask, strict=True):
            if b is not None and a is not None and a + b > 0:
                spreads.append((a - b) / ((a + b) / 2) * 1e4)
        basis = [abs(m - o) / o * 1e4 if o > 0 else 0.0 for m, o in zip(series.mark, series.oracle, strict=True)]
        if basis:
            i = max(range(len(basis)), key=basis.__getitem__)
            if basis[i] > basis_max:
                basis_max = basis[i]
                back = next((j for j in range(i, len(basis)) if basis[j] < REVERT_BPS), None)
                revert_s = None if back is None else (trace.ts[back] - trace.ts[i]) / 1000
        if series.oi_cap_ntl > 0 and series.oi_ntl:
            over = max(series.oi_ntl) / series.oi_cap_ntl
            peak_over_cap = over if peak_over_cap is None else max(peak_over_cap, over)
    spreads.sort()
    backstop_end = trace.backstop_value[-1] if trace.backstop_value else trace.backstop_start
    return {
        "seed": trace.seed,
        "liquidated_usd": usd(liquidated),
        "liquidations": len(liqs),
        "bad_debt_usd": usd(sum(max(0, -e.account_value) for e in liqs)),
        "adl": {"count": len(adl), "notional_usd": usd(sum(e.notional for e in adl))},
        "backstop": {"pnl_usd": usd(backstop_end - trace.backstop_start)},
        "insurance_fund": {"drawdown_usd": usd(drawdown), "exhausted": bool(adl)},
        "cascade_depth": None if not liqs else round(liquidated / first_ntl, 4) if first_ntl else None,
        "basis_bps": {"max": _bps(basis_max), "time_to_revert_s": revert_s},
        "spread_bps": {"p50": _bps(spreads[len(spreads) // 2]) if spreads else None,
                       "max": _bps(spreads[-1]) if spreads else None},
        "oi": {"peak_over_cap": None if peak_over_cap is None else round(peak_over_cap, 4)},
        "conservation_residual_usd": usd(trace.max_residual),
        "state_hash": trace.state_hash,
    }


def _dig(d: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        d = d[part]
    return d


def nearest_rank(values: Sequence[Any], q: float) -> Any:
    """The ``q``-quantile by the nearest-rank method: the ⌈q·n⌉-th smallest value."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def _distribution(values: list[Any]) -> dict[str, Any] | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    money = isinstance(present[0], str)
    keyed = [Decimal(v) for v in present] if money else present
    out = {f"p{round(q * 100)}": nearest_rank(keyed, q) for q in (0.5, 0.95, 0.99)}
    out["max"] = max(keyed)
    return {k: (str(v) if money else v) for k, v in out.items()}


def summarise(scenario: Scenario, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """``metrics.json``: the scenario, its keys, the distributions over seeds, and every run."""
    out: dict[str, Any] = {
        "scenario": scenario.name,
        "config_hash": scenario.config_hash,
        "perpbox_version": __version__,
        "horizon_s": scenario.horizon_ms / 1000,
        "seeds": [r["seed"] for r in runs],
        "tunables": scenario.tunables,
    }
    for path in DISTRIBUTIONS:
        node = out
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _distribution([_dig(r, path) for r in runs])
    out["adl"] = {"count": sum(r["adl"]["count"] for r in runs),
                  "notional_usd": usd(sum(int(Decimal(r["adl"]["notional_usd"]) * USD) for r in runs))}
    exhausted = sum(r["insurance_fund"]["exhausted"] for r in runs)
    out.setdefault("insurance_fund", {})["exhausted_share"] = exhausted / len(runs)
    out["conservation_residual_usd"] = usd(max(int(Decimal(r["conservation_residual_usd"]) * USD) for r in runs))
    out["runs"] = runs
    return out

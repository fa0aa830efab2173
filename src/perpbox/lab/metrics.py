"""What a lab run measured (``metrics.json``), per seed and over seeds.

Per run, from its events and samples (``lab.run.RunTrace``); money in USD as exact decimal strings:

* ``liquidated_usd`` — what the liquidation engine actually moved: the notional of the fills of its
  orders to the book (a position above the partial threshold goes in slices) plus every position it
  handed over (``PositionTransferred``: backstop vault, insurance fund, ADL), each at its price;
  ``liquidations.accounts`` — the accounts liquidated at least once; ``liquidations.attempts`` —
  the liquidation engine's actions (a book liquidation whose orders find no bid within the
  bankruptcy limit is tried again every tick until it fills or the backstop takes over);
* ``bad_debt_usd`` — per account liquidated, its lowest account value while being liquidated, when
  negative, summed: the negative equity someone else (the book, the vault, the fund, the ADL
  counterparties) had to absorb;
* ``adl.count`` / ``adl.notional_usd`` — the liquidations that ended in auto-deleveraging;
* ``backstop.pnl_usd`` — the backstop vault's value at the end minus its starting capital;
* ``insurance_fund.drawdown_usd`` — the largest fall of the fund's value from a running peak;
  ``insurance_fund.exhausted`` — an ADL happened (neither the vault nor the fund took a bankrupt
  position);
* ``cascade_depth`` — liquidated notional over the notional moved at the first step that moved any
  (1: no cascade; null: no liquidation);
* ``basis_bps.max`` — the largest |mark − oracle| / oracle × 1e4 over markets and steps;
  ``basis_bps.time_to_revert_s`` — from that peak until |basis| is back under 50 bps on that
  market (null: it never came back within the horizon);
* ``book_basis_bps.max`` / ``.time_to_revert_s`` — the same for the book's mid against the
  underlying's price on its own market, over the steps that market trades (a session market's
  closed hours are left out): the perp-vs-COMEX basis of the silver study;
* ``spread_bps.p50`` / ``spread_bps.max`` — (ask − bid) / mid × 1e4 over steps with both sides;
* ``oi.peak_over_cap`` — the largest open-interest notional over its cap (null: no market capped);
* ``attacker.pnl_usd`` — the attacker actors' account values at the end minus their capital
  (null: the scenario has no attacker);
* ``conservation_residual_usd`` — the largest |cash − (deposits − withdrawals)| after any step:
  exactly 0 or the engine has a bug.

Over seeds, each of ``bad_debt_usd``, ``liquidated_usd``, ``backstop.pnl_usd``,
``insurance_fund.drawdown_usd``, ``cascade_depth``, ``basis_bps.max``, ``spread_bps.max`` and
``attacker.pnl_usd`` is
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
                 "cascade_depth", "basis_bps.max", "book_basis_bps.max", "spread_bps.max", "attacker.pnl_usd")


def usd(micro: int) -> str:
    """Micro-USDC as an exact USD decimal string, never in exponent form (-5000000, not -5E+6)."""
    return format(Decimal(micro).scaleb(-6).normalize(), "f") if micro else "0"


def _bps(x: float) -> float:
    return round(x, 4)


def _liquidations(scenario: Scenario, events: list[V.Event]) -> tuple[list[V.Liquidated], dict[int, int], int]:
    """The liquidations that acted, the notional they moved by time (micro-USDC), and the bad debt."""
    scale = {m.spec.asset: 10 ** (m.spec.px_decimals + m.spec.sz_decimals) for m in scenario.config.all_markets()}
    acting: list[V.Liquidated] = []
    moved: dict[int, int] = {}
    booking: set[tuple[str, int]] = set()  # (user, ts) of liquidations sending orders to the book
    lowest: dict[str, int] = {}
    for e in events:
        if isinstance(e, V.Liquidated):
            lowest[e.user] = min(lowest.get(e.user, e.account_value), e.account_value)
            if e.method == "market":  # its orders are sent, and filled, by the owner (no "dex:" prefix)
                booking.add((e.user.rpartition(":")[2], e.ts))
            if e.method not in ("partial", "adlShortfall"):
                acting.append(e)
        elif isinstance(e, V.Fill) and (e.taker, e.ts) in booking:
            moved[e.ts] = moved.get(e.ts, 0) + e.px * e.sz * USD // scale[e.asset]
        elif isinstance(e, V.PositionTransferred):
            moved[e.ts] = moved.get(e.ts, 0) + abs(e.sz) * e.px * USD // scale[e.asset]
    return acting, moved, sum(max(0, -v) for v in lowest.values())


def _peak(basis: list[float | None], ts: list[int]) -> tuple[float, float | None]:
    """The largest basis (bps) and the seconds from it until one under ``REVERT_BPS`` (None: never);
    ``None`` entries are steps with nothing to compare, skipped."""
    known = [i for i, b in enumerate(basis) if b is not None]
    if not known:
        return 0.0, None
    i = max(known, key=lambda j: basis[j] or 0.0)
    back = next((j for j in known if j >= i and (basis[j] or 0.0) < REVERT_BPS), None)
    return basis[i] or 0.0, None if back is None else (ts[back] - ts[i]) / 1000


def run_metrics(scenario: Scenario, trace: RunTrace) -> dict[str, Any]:
    liqs, moved, bad_debt = _liquidations(scenario, trace.events)
    adl = [e for e in liqs if e.method == "adl"]
    liquidated = sum(moved.values())
    first_ntl = moved[min(moved)] if moved else 0
    peak, drawdown = -(10**30), 0
    for v in trace.insurance_value:
        peak = max(peak, v)
        drawdown = max(drawdown, peak - v)
    spreads: list[float] = []
    basis_max, revert_s = 0.0, None
    book_max, book_revert_s = 0.0, None
    peak_over_cap: float | None = None
    for series in trace.markets.values():
        for b, a in zip(series.bid, series.ask, strict=True):
            if b is not None and a is not None and a + b > 0:
                spreads.append((a - b) / ((a + b) / 2) * 1e4)
        basis: list[float | None] = [abs(m - o) / o * 1e4 if o > 0 else 0.0
                                     for m, o in zip(series.mark, series.oracle, strict=True)]
        top, back_s = _peak(basis, trace.ts)
        if top > basis_max:
            basis_max, revert_s = top, back_s
        book: list[float | None] = [abs((b + a) / 2 - x) / x * 1e4 if x and b is not None and a is not None else None
                for b, a, x in zip(series.bid, series.ask, series.external, strict=True)]
        top, back_s = _peak(book, trace.ts)
        if top > book_max:
            book_max, book_revert_s = top, back_s
        if series.oi_cap_ntl > 0 and series.oi_ntl:
            over = max(series.oi_ntl) / series.oi_cap_ntl
            peak_over_cap = over if peak_over_cap is None else max(peak_over_cap, over)
    spreads.sort()
    backstop_end = trace.backstop_value[-1] if trace.backstop_value else trace.backstop_start
    return {
        "seed": trace.seed,
        "liquidated_usd": usd(liquidated),
        "liquidations": {"accounts": len({e.user for e in liqs}), "attempts": len(liqs)},
        "bad_debt_usd": usd(bad_debt),
        "adl": {"count": len(adl), "notional_usd": usd(sum(e.notional for e in adl))},
        "backstop": {"pnl_usd": usd(backstop_end - trace.backstop_start)},
        "insurance_fund": {"drawdown_usd": usd(drawdown), "exhausted": bool(adl)},
        "cascade_depth": round(liquidated / first_ntl, 4) if first_ntl else None,
        "basis_bps": {"max": _bps(basis_max), "time_to_revert_s": revert_s},
        "book_basis_bps": {"max": _bps(book_max), "time_to_revert_s": book_revert_s},
        "spread_bps": {"p50": _bps(spreads[len(spreads) // 2]) if spreads else None,
                       "max": _bps(spreads[-1]) if spreads else None},
        "oi": {"peak_over_cap": None if peak_over_cap is None else round(peak_over_cap, 4)},
        "attacker": {"pnl_usd": usd(trace.attacker_value - sum(c for _, c in trace.attackers))
                     if trace.attackers else None},
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

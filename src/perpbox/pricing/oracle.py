"""Oracle aggregation: weighted median of fresh sources with a deviation guard, and the
off-hours (session closed) oracle advanced from the book."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction

from perpbox.market.oracle import OffHours
from perpbox.pricing.ema import EXP_SCALE, exp_neg

Quote = tuple[int, int]  # (price units, ts ms)


def median(values: Iterable[int]) -> int:
    """Median; for an even count the mean of the two middle values, rounded down."""
    v = sorted(values)
    if not v:
        raise ValueError("median of nothing")
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) // 2


def weighted_median(pairs: Iterable[tuple[int, int]]) -> int:
    """Lower weighted median of ``(price, weight)``: the smallest price at which the cumulative
    weight reaches half the total."""
    items = sorted(pairs)
    total = sum(w for _, w in items)
    if total <= 0:
        raise ValueError("weighted median of nothing")
    acc = 0
    for px, w in items:
        acc += w
        if 2 * acc >= total:
            return px
    return items[-1][0]


def fresh_quotes(weights: Iterable[tuple[str, int]], quotes: Mapping[str, Quote], now: int,
                 max_age_ms: int) -> list[tuple[int, int]]:
    """``(price, weight)`` of the configured sources whose latest quote is at most ``max_age_ms``
    old (and not from the future)."""
    out = []
    for name, weight in weights:
        q = quotes.get(name)
        if q is not None and q[0] > 0 and 0 <= now - q[1] <= max_age_ms:
            out.append((q[0], weight))
    return out


def within_deviation(fresh: list[tuple[int, int]], max_deviation_bps: int) -> list[bool]:
    """For each of ``fresh`` (non-empty), whether it lies within ``max_deviation_bps`` of their
    weighted median (the deviation guard ``aggregate`` applies)."""
    first = weighted_median(fresh)
    return [abs(px - first) * 10_000 <= first * max_deviation_bps for px, _ in fresh]


def aggregate(fresh: list[tuple[int, int]], max_deviation_bps: int, min_sources: int) -> int | None:
    """Weighted median of ``fresh`` after dropping every source further than
    ``max_deviation_bps`` from the first median (Binance's index rule); None when fewer than
    ``min_sources`` remain."""
    if len(fresh) < min_sources or not fresh:
        return None
    kept = [q for q, ok in zip(fresh, within_deviation(fresh, max_deviation_bps)) if ok]
    if len(kept) < min_sources or not kept:
        return None
    return weighted_median(kept)


def off_hours_step(oracle: int, target: int | None, dt_ms: int, rules: OffHours, close_px: int) -> int:
    """One step of the internal oracle while the external market is closed, with nothing carried
    (``off_hours_advance``)."""
    return off_hours_advance(oracle, 0, target, dt_ms, rules, close_px)[0]


def off_hours_advance(oracle: int, carry: int, target: int | None, dt_ms: int, rules: OffHours,
                      close_px: int) -> tuple[int, int]:
    """Advance the internal oracle while the external market is closed (trade.xyz's rule):
    ``S ← S + (1 − β)·(target − S)`` with ``β = exp(−min(Δt, τ/10)/τ)``, where ``target`` is the
    book's impact mid (None: no move), then bounded to ``close_px ± band``.  The move is rounded
    toward the current oracle (the slow side) and the part rounded off is carried to the next step
    (``carry``, in 1/EXP_SCALE price units): without it a one-second tick under τ = 30 min would
    never move the oracle while the book is within 1,800 price units of it.  Returns the oracle and
    the new carry (0 when the band binds)."""
    if target is not None and dt_ms > 0:
        beta = exp_neg(min(dt_ms, rules.ema_tau_ms // 10), rules.ema_tau_ms)
        total = (target - oracle) * (EXP_SCALE - beta) + carry
        move = int(Fraction(total, EXP_SCALE))  # int() truncates toward zero: toward the current oracle
        oracle += move
        carry = total - move * EXP_SCALE
    if close_px > 0:
        band = close_px * rules.band_bps // 10_000
        bounded = min(max(oracle, close_px - band), close_px + band)
        if bounded != oracle:
            oracle, carry = bounded, 0
    return oracle, carry

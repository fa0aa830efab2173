"""A time-decayed EMA in integers (Hyperliquid's mark-price EMA).

Hyperliquid (reference §6.2): for a sample ``s`` held for ``t``::

    num = num · exp(−t/τ) + s · t,   den = den · exp(−t/τ) + t,   ema = num / den

``exp`` is computed here in fixed point with integer arithmetic only (``exp_neg``), so the EMA is
bit-for-bit the same on every machine — a float ``math.exp`` is not guaranteed to be.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

EXP_SCALE = 10**18
_GUARD = 10**12  # extra digits carried inside exp_neg


@lru_cache(maxsize=4096)
def exp_neg(num: int, den: int) -> int:
    """``floor(EXP_SCALE · exp(−num/den))`` to within one unit, for ``num ≥ 0, den > 0``.
    Cached: the engine asks for the same few (tick interval, τ) pairs every tick.

    Range reduction by halving (``exp(−x) = exp(−x/2^m)^(2^m)``) then a Taylor series for
    ``x/2^m < 1/16``, all in integers scaled by ``EXP_SCALE · _GUARD``."""
    if num < 0 or den <= 0:
        raise ValueError("exp_neg needs num >= 0 and den > 0")
    x = Fraction(num, den)
    if x == 0:
        return EXP_SCALE
    if x > 45:  # exp(-45) < 1e-19: below one unit
        return 0
    m = 0
    while x / (1 << m) >= Fraction(1, 16):
        m += 1
    y = x / (1 << m)
    scale = EXP_SCALE * _GUARD
    term = scale
    total = scale
    k = 1
    while term:
        term = term * y.numerator // (y.denominator * k)
        total += -term if k % 2 else term
        k += 1
    for _ in range(m):
        total = total * total // scale
    return total // _GUARD


def ema_update(num: int, den: int, sample: int, dt_ms: int, tau_ms: int) -> tuple[int, int]:
    """Fold ``sample`` held for ``dt_ms`` into an EMA kept as ``(num, den)``, both scaled by
    ``EXP_SCALE`` (so the decay's rounding, < 1 unit of 1e-18, cannot bias the ratio)."""
    if dt_ms <= 0:
        return num, den
    d = exp_neg(dt_ms, tau_ms)
    return num * d // EXP_SCALE + sample * dt_ms * EXP_SCALE, den * d // EXP_SCALE + dt_ms * EXP_SCALE


def ema_value(num: int, den: int) -> int | None:
    """The EMA rounded to the nearest unit (None before the first sample)."""
    if den <= 0:
        return None
    return (2 * num + den) // (2 * den)

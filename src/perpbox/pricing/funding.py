"""Funding arithmetic: premium samples, the interval rate, and exact payments.

Hyperliquid (reference hyperliquid-api.md §6.1)::

    premium sample  = (max(impactBid − oracle, 0) − max(oracle − impactAsk, 0)) / oracle   (every 5 s)
    P               = mean of the interval's samples
    F_8h            = P + clamp(interest − P, −clamp, +clamp)
    rate            = F_8h × multiplier × hours/8, |rate| ≤ cap_per_hour × hours
    payment         = size × oracle × rate          (longs pay when positive)

Binance uses the same formula for an N-hour interval (``F_8h × N/8``) with a time-weighted P.

Numbers: a premium sample is kept as an integer in units of 1e-12 (``PREMIUM_SCALE``), rounded
toward zero — four digits below the 1e-8 precision rates are published at.  The interval rate is
an integer in 1e-8 units (what the venue publishes and pays), rounded half-even from the exact
rational.  Payments are rounded in the system's favour: a payer pays the ceiling of what it owes,
a receiver receives the floor, and the difference (less than one micro-USDC per position) is
returned as the remainder for the caller to book, so nothing is created or lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import TypeVar

from perpbox.core.numbers import RATE_SCALE
from perpbox.market.funding import HOUR_MS, FundingParams, PremiumAverage, PremiumFormula

PREMIUM_SCALE = 10**12
K = TypeVar("K")


def premium_sample(formula: PremiumFormula, oracle: int, impact_bid: Fraction | None,
                   impact_ask: Fraction | None) -> int:
    """One premium sample in 1e-12 units (toward zero).  A side whose book cannot fill the impact
    notional has no impact price: under the validator formula it contributes nothing (dYdX's
    rule); the HIP-3 formula needs both sides and samples 0 without them."""
    if oracle <= 0:
        return 0
    if formula is PremiumFormula.HIP3:
        if impact_bid is None or impact_ask is None:
            return 0
        diff = (impact_bid + impact_ask) / 2 - oracle
    else:
        diff = Fraction(0)
        if impact_bid is not None and impact_bid > oracle:
            diff += impact_bid - oracle
        if impact_ask is not None and impact_ask < oracle:
            diff -= oracle - impact_ask
    return int(diff * PREMIUM_SCALE / oracle)  # int() truncates toward zero


def average_premium(total: int, n: int, average: PremiumAverage) -> Fraction:
    """The interval's premium as an exact rational from ``n`` samples (0 with none): ``total`` is
    Σ samples for a mean, Σ i·sample_i for a time-weighted average (weights 1..n)."""
    if n <= 0:
        return Fraction(0)
    if average is PremiumAverage.TIME_WEIGHTED:
        return Fraction(total, PREMIUM_SCALE * (n * (n + 1) // 2))
    return Fraction(total, PREMIUM_SCALE * n)


def funding_rate(params: FundingParams, premium: Fraction) -> int:
    """The rate for one funding interval, in 1e-8 units, from the interval's premium ``P``:
    ``(P + clamp(I − P, ±C)) × multiplier × hours/8``, capped at ``cap_per_hour × hours``, then
    rounded half-even to 1e-8."""
    interest = Fraction(params.interest_8h, RATE_SCALE)
    clamp = Fraction(params.clamp_8h, RATE_SCALE)
    f8 = premium + min(max(interest - premium, -clamp), clamp)
    hours = Fraction(params.interval_ms, HOUR_MS)
    rate = f8 * Fraction(params.multiplier, RATE_SCALE) * hours / 8
    cap = Fraction(params.cap_per_hour, RATE_SCALE) * hours
    rate = min(max(rate, -cap), cap)
    return round(rate * RATE_SCALE)


def split_payments(positions: Sequence[tuple[K, int]], px: int, rate: int) -> tuple[list[tuple[K, int]], int]:
    """Payments for ``(key, signed size in lots)`` at ``px`` (price units) and ``rate`` (1e-8):
    returns ``[(key, amount)]`` in micro-USDC, positive = paid, negative = received, and the
    remainder ``Σ paid − Σ received`` (≥ 0 when sizes net to zero, as they do per market)."""
    out: list[tuple[K, int]] = []
    remainder = 0
    if rate == 0 or px <= 0:
        return out, 0
    for key, szi in positions:
        if not szi:
            continue
        owed = szi * px * rate  # in 1e-8 micro-USDC; > 0 means this position pays
        amount = -((-owed) // RATE_SCALE)  # ceil: a payer pays up, a receiver gets floor(|owed|)
        out.append((key, amount))
        remainder += amount
    return out, remainder

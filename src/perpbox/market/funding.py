"""Funding parameters of a market (data only; the arithmetic is in ``perpbox.pricing.funding``).

Rates are integers in units of 1e-8 (``RATE_SCALE``), quoted on an **8-hour** basis as every venue
in the reference quotes them: Hyperliquid's defaults are interest 0.01%/8h (10_000), premium clamp
±0.05%/8h (50_000) and a hard cap of 4% per hour (4_000_000), paid hourly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from perpbox.core.numbers import RATE_SCALE, USD

HOUR_MS = 3_600_000


class PremiumFormula(str, Enum):
    """``validator``: ``(max(impactBid − oracle, 0) − max(oracle − impactAsk, 0)) / oracle``
    (Hyperliquid validator perps, Binance).  ``hip3``: ``((impactBid + impactAsk) / 2) / oracle − 1``
    (Hyperliquid builder-deployed perps)."""

    VALIDATOR = "validator"
    HIP3 = "hip3"


class PremiumAverage(str, Enum):
    """How the interval's samples are averaged: ``mean`` (Hyperliquid, dYdX) or
    ``time_weighted`` (Binance: sample i of n weighted i)."""

    MEAN = "mean"
    TIME_WEIGHTED = "time_weighted"


class FundingPrice(str, Enum):
    """The price a payment is computed at: ``oracle`` (Hyperliquid) or ``mark`` (Binance)."""

    ORACLE = "oracle"
    MARK = "mark"


@dataclass(frozen=True, slots=True)
class FundingParams:
    interval_ms: int = HOUR_MS  # how often funding is paid (1 h Hyperliquid; 8/4/1 h Binance)
    sample_ms: int = 5_000  # premium sampling period
    interest_8h: int = 10_000  # 0.01% per 8 h
    clamp_8h: int = 50_000  # |interest − premium| is clamped to this
    cap_per_hour: int = 4 * RATE_SCALE // 100  # |rate| per hour never exceeds this (4%)
    multiplier: int = RATE_SCALE  # HIP-3 funding multiplier (0..10), 1e-8 units
    impact_notional: int = 6_000 * USD  # micro-USDC; Hyperliquid: 20k for BTC/ETH, 6k others
    premium_formula: PremiumFormula = PremiumFormula.VALIDATOR
    average: PremiumAverage = PremiumAverage.MEAN
    pay_on: FundingPrice = FundingPrice.ORACLE

    def __post_init__(self) -> None:
        if self.interval_ms <= 0 or self.sample_ms <= 0 or self.interval_ms % self.sample_ms:
            raise ValueError("funding interval must be a positive multiple of the sample period")
        if self.interval_ms % HOUR_MS and HOUR_MS % self.interval_ms:
            raise ValueError("funding interval must divide or be a multiple of one hour")
        if self.clamp_8h < 0 or self.cap_per_hour < 0 or not 0 <= self.multiplier <= 10 * RATE_SCALE:
            raise ValueError("clamp and cap must be >= 0 and the multiplier within 0..10")
        if self.impact_notional <= 0:
            raise ValueError("impact notional must be positive")

    @classmethod
    def binance(cls, hours: int = 8, impact_notional: int = 25_000 * USD) -> FundingParams:
        """Binance USDⓈ-M: N-hour interval, time-weighted premium, paid on mark notional, with
        the per-interval rate scaled N/8 (since 2025-09) and a cap of 0.75 × (IMR − MMR) left to
        the caller (per symbol; [UNCONFIRMED] in the reference)."""
        return cls(interval_ms=hours * HOUR_MS, impact_notional=impact_notional,
                   average=PremiumAverage.TIME_WEIGHTED, pay_on=FundingPrice.MARK)

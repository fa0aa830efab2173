"""Funding arithmetic: normalise rates to one unit of time, compare venues, net carry of a pair.

Conventions (stated because every peer tool gets one of them wrong somewhere):

* a rate is a fraction paid **per funding interval** (``0.0001`` = 1 bp); positive ⇒ longs pay shorts;
* the canonical unit is the fraction per hour, ``r_h = rate / interval_hours``; the 8 h-equivalent is
  ``8 × r_h`` and the APR is ``8760 × r_h`` (simple, not compounded; 365-day year);
* a carry trade is long on the venue with the lower hourly rate and short on the higher one, so it
  earns ``r_h(short) − r_h(long)`` per hour per unit of notional;
* costs are fractions of notional: a taker fee on each leg at entry and at exit (4 fills) and half
  the quoted spread on each of those fills (crossing from mid); the round trip is amortised over
  the holding time, never charged against one funding period.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations

HOURS_PER_YEAR = 8760.0
BPS = 1e4


def per_hour(rate: float, interval_hours: float) -> float:
    """Fraction per hour from a rate paid every ``interval_hours`` hours."""
    if interval_hours <= 0:
        raise ValueError(f"interval_hours must be positive, got {interval_hours}")
    return rate / interval_hours


def per_8h(rate: float, interval_hours: float) -> float:
    """The 8 h-equivalent of a rate (Binance/Bybit/OKX's usual quoting unit)."""
    return per_hour(rate, interval_hours) * 8.0


def apr(rate: float, interval_hours: float) -> float:
    """Annualised (simple, 8,760 h) fraction from a per-interval rate."""
    return per_hour(rate, interval_hours) * HOURS_PER_YEAR


@dataclass(frozen=True)
class NormalisedRate:
    venue: str
    coin: str
    rate: float              # per interval, as published
    interval_hours: float
    interval_source: str = "given"

    @property
    def per_hour(self) -> float:
        return per_hour(self.rate, self.interval_hours)

    @property
    def per_8h(self) -> float:
        return per_8h(self.rate, self.interval_hours)

    @property
    def apr(self) -> float:
        return apr(self.rate, self.interval_hours)


def normalise(venue: str, rate: float, interval_hours: float, coin: str = "",
              interval_source: str = "given") -> NormalisedRate:
    return NormalisedRate(venue, coin, float(rate), float(interval_hours), interval_source)


@dataclass(frozen=True)
class Carry:
    """Long ``long_venue``, short ``short_venue``: earns ``per_hour`` (fraction of notional)."""

    coin: str
    long_venue: str
    short_venue: str
    per_hour: float

    @property
    def per_8h(self) -> float:
        return self.per_hour * 8.0

    @property
    def apr(self) -> float:
        return self.per_hour * HOURS_PER_YEAR


def carry(long: NormalisedRate, short: NormalisedRate) -> Carry:
    """Funding earned per hour by a long on ``long`` and a short on ``short`` (may be negative)."""
    return Carry(long.coin or short.coin, long.venue, short.venue, short.per_hour - long.per_hour)


def pairwise(rates: Iterable[NormalisedRate]) -> list[Carry]:
    """Every venue pair oriented to earn (long the lower hourly rate, short the higher), best first."""
    out = []
    for a, b in combinations(list(rates), 2):
        out.append(carry(a, b) if a.per_hour <= b.per_hour else carry(b, a))
    return sorted(out, key=lambda c: c.per_hour, reverse=True)


def round_trip_cost(taker_long: float, taker_short: float, half_spread_long: float = 0.0,
                    half_spread_short: float = 0.0) -> float:
    """Fraction of notional to open and close both legs with taker orders: 2 × (fees + half-spreads)."""
    return 2.0 * (taker_long + taker_short) + 2.0 * (half_spread_long + half_spread_short)


@dataclass(frozen=True)
class NetCarry:
    carry: Carry
    cost: float                 # round trip, fraction of notional
    break_even_hours: float     # inf if the carry does not earn
    hold_hours: float | None

    @property
    def net_apr(self) -> float | None:
        """APR after amortising the round trip over ``hold_hours`` (None without a horizon)."""
        if self.hold_hours is None or self.hold_hours <= 0:
            return None
        return (self.carry.per_hour * self.hold_hours - self.cost) / self.hold_hours * HOURS_PER_YEAR


def net_carry(c: Carry, taker_fee: Mapping[str, float], half_spread: Mapping[str, float] | None = None,
              hold_hours: float | None = None) -> NetCarry:
    """Net of taker fees (both legs, entry and exit) and half-spreads; break-even holding time.

    ``taker_fee`` and ``half_spread`` are fractions keyed by venue (a missing half-spread counts 0)."""
    hs = half_spread or {}
    cost = round_trip_cost(taker_fee[c.long_venue], taker_fee[c.short_venue],
                           hs.get(c.long_venue, 0.0), hs.get(c.short_venue, 0.0))
    be = cost / c.per_hour if c.per_hour > 0 else float("inf")
    return NetCarry(c, cost, be, hold_hours)


def half_spread(bid: float | None, ask: float | None) -> float | None:
    """Half the quoted spread as a fraction of mid (None without both sides)."""
    if not bid or not ask or ask <= 0 or bid <= 0:
        return None
    mid = (bid + ask) / 2.0
    return (ask - bid) / 2.0 / mid

"""Tiered margin tables.

One type serves Hyperliquid's tables (tiers by notional lower bound, each with a max leverage and
``mmr = 1 / (2 * maxLeverage)``) and Binance's brackets (floor, max leverage, an independent
maintenance rate, and the maintenance amount ``cum``).  Both define maintenance margin as

    MM(notional) = notional * mmr(tier) - deduction(tier)

with ``deduction(0) = 0`` and ``deduction(n) = deduction(n-1) + lower_bound(n) * (mmr(n) - mmr(n-1))``,
the rule that makes MM continuous in notional (Hyperliquid's "deduction", Binance's ``cum``).

Everything is exact: rates are ``Fraction``s, and for speed each table also keeps integer numerators
over one common denominator so that a requirement costs two multiplications and a division.
Maintenance margin rounds **up** (in the system's favour).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from math import lcm

from perpbox.core.numbers import USD, ceil_div, notional_cap


@dataclass(frozen=True, slots=True)
class MarginTier:
    lower_bound: int  # notional lower bound, micro-USDC
    max_leverage: int
    mmr: Fraction  # maintenance margin rate


@dataclass(frozen=True)
class MarginTable:
    tiers: tuple[MarginTier, ...]
    description: str = ""
    # derived, exact: deductions in micro-USDC as Fractions, and integer forms over `_den`
    deductions: tuple[Fraction, ...] = field(init=False, repr=False, compare=False)
    _den: int = field(init=False, repr=False, compare=False)
    _rows: tuple[tuple[int, int, int], ...] = field(init=False, repr=False, compare=False)
    _caps: tuple[int | None, ...] = field(init=False, repr=False, compare=False)  # by leverage

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ValueError("a margin table needs at least one tier")
        if self.tiers[0].lower_bound != 0:
            raise ValueError("the first tier must start at notional 0")
        bounds = [t.lower_bound for t in self.tiers]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError("tier lower bounds must be strictly increasing")
        for t in self.tiers:
            if t.max_leverage < 1 or not (0 < t.mmr < 1):
                raise ValueError(f"bad tier {t}")
        deds = [Fraction(0)]
        for prev, cur in zip(self.tiers, self.tiers[1:]):
            deds.append(deds[-1] + cur.lower_bound * (cur.mmr - prev.mmr))
        den = lcm(*(t.mmr.denominator for t in self.tiers), *(d.denominator for d in deds))
        # rows from the highest tier down: (lower_bound, mmr numerator, deduction numerator)
        rows = tuple(
            (t.lower_bound, int(t.mmr * den), int(d * den))
            for t, d in zip(reversed(self.tiers), reversed(deds))
        )
        object.__setattr__(self, "deductions", tuple(deds))
        object.__setattr__(self, "_den", den)
        object.__setattr__(self, "_rows", rows)
        caps = tuple(
            next((t.lower_bound for t in self.tiers if t.max_leverage < lev), None)
            for lev in range(self.tiers[0].max_leverage + 1)
        )
        object.__setattr__(self, "_caps", caps)

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def hyperliquid(cls, tiers: list[tuple[int, int]], description: str = "") -> MarginTable:
        """Tiers as ``(lower_bound_usd, max_leverage)``; ``mmr = 1 / (2 * max_leverage)``."""
        if any(lev < 1 for _, lev in tiers):
            raise ValueError("max leverage must be >= 1")
        return cls(tuple(MarginTier(lb * USD, lev, Fraction(1, 2 * lev)) for lb, lev in tiers), description)

    @classmethod
    def single(cls, max_leverage: int) -> MarginTable:
        """Hyperliquid's tables with id < 50: one tier at ``max_leverage``."""
        return cls.hyperliquid([(0, max_leverage)])

    @classmethod
    def from_brackets(cls, brackets: list[tuple[str | int, int, str]], description: str = "") -> MarginTable:
        """Binance-style brackets ``(notional_floor_usd, max_leverage, maint_margin_rate)`` with
        the floor and rate given as decimal strings (exact), e.g. ``("50000", 100, "0.005")``."""
        return cls(
            tuple(
                MarginTier(int(Fraction(str(floor)) * USD), lev, Fraction(str(rate)))
                for floor, lev, rate in brackets
            ),
            description,
        )

    # -- queries --------------------------------------------------------------------------------
    @property
    def max_leverage(self) -> int:
        return self.tiers[0].max_leverage

    def tier_index(self, notional: int) -> int:
        n = len(self.tiers)
        for i, row in enumerate(self._rows):
            if notional >= row[0]:
                return n - 1 - i
        return 0

    def maintenance_margin(self, notional: int) -> int:
        """Maintenance margin in micro-USDC for a position notional in micro-USDC, rounded up."""
        for lb, num, ded in self._rows:
            if notional >= lb:
                return ceil_div(notional * num - ded, self._den)
        raise AssertionError("unreachable: first tier starts at 0")

    def maintenance_amount(self, index: int) -> Fraction:
        """The tier's deduction (Binance ``cum``) in micro-USDC, exact."""
        return self.deductions[index]

    @property
    def caps(self) -> tuple[int | None, ...]:
        """``max_notional_at_leverage`` for every leverage from 0 to the table's maximum."""
        return self._caps

    def max_notional_at_leverage(self, leverage: int) -> int | None:
        """Largest position notional allowed at ``leverage``: the lower bound of the first tier
        whose max leverage is below it (Hyperliquid's PerpMaxPosition), or None if unlimited.
        A position may reach this notional but not exceed it; above every tier's max leverage
        nothing is allowed (the first tier's lower bound, 0)."""
        return notional_cap(self._caps, self.tiers[0].lower_bound, leverage)

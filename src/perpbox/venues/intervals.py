"""Funding intervals per venue and symbol, as data.

Comparing funding rates across venues is only meaningful per unit of time, and the classic bug is
comparing Hyperliquid's hourly rate with Binance's 8-hourly rate raw (an 8x error). So every rate
carries its interval, resolved in this order (first hit wins):

1. ``live``   — what the venue reports now (ccxt's ``interval`` field, Binance ``fundingInfo``,
   Bybit ``fundingInterval``, OKX ``nextFundingTime − fundingTime``, Hyperliquid
   ``predictedFundings.fundingIntervalHours``);
2. ``symbol`` — a per-symbol override in this table (venues move single symbols to 4 h or 1 h);
3. ``venue``  — the venue's default (1 h Hyperliquid/dYdX/Lighter, 8 h Binance/Bybit/OKX).

An unknown venue with no live interval raises: silently assuming 8 h is how the bug happens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Default funding interval in hours per venue (ccxt ids and perpbox's native names).
VENUE_DEFAULT_HOURS: dict[str, float] = {
    "hyperliquid": 1.0,
    "dydx": 1.0,
    "lighter": 1.0,
    "paradex": 8.0,
    "binanceusdm": 8.0,
    "binancecoinm": 8.0,
    "bybit": 8.0,
    "okx": 8.0,
    "bitget": 8.0,
    "gate": 8.0,
    "aster": 8.0,
}

#: Per-symbol overrides known ahead of the live value (the live value still wins). Keys are
#: (venue, ccxt unified symbol). Venues adjust these over time; treat as a fallback only.
SYMBOL_HOURS: dict[tuple[str, str], float] = {
    # ccxt's documented Binance fundingInfo example (adjusted symbol)
    ("binanceusdm", "BLZ/USDT:USDT"): 4.0,
}

#: User-facing venue names mapped to the ccxt id that lists their USDⓈ-margined perps.
VENUE_ALIASES: dict[str, str] = {
    "binance": "binanceusdm",
    "binance-usdm": "binanceusdm",
    "binanceusdm": "binanceusdm",
    "hl": "hyperliquid",
}


def canonical_venue(name: str) -> str:
    """``binance`` → ``binanceusdm``; other names lower-cased and passed through."""
    key = name.strip().lower()
    return VENUE_ALIASES.get(key, key)


_INTERVAL_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_HOURS = {"s": 1 / 3600, "m": 1 / 60, "h": 1.0, "d": 24.0, "": 1.0}


def parse_interval_hours(value: str | float | int | None) -> float | None:
    """``'8h'`` → 8.0, ``'30m'`` → 0.5, ``'1d'`` → 24.0, ``4`` → 4.0 (bare numbers are hours);
    ``None`` or an unparseable string → ``None``."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    m = _INTERVAL_RE.match(value)
    if not m:
        return None
    hours = float(m.group(1)) * _UNIT_HOURS[m.group(2)]
    return hours if hours > 0 else None


@dataclass(frozen=True)
class FundingInterval:
    hours: float
    source: str  # "live" | "symbol" | "venue"


@dataclass
class IntervalTable:
    """Venue defaults and per-symbol overrides; ``resolve`` applies the live → symbol → venue rule."""

    venues: dict[str, float] = field(default_factory=lambda: dict(VENUE_DEFAULT_HOURS))
    symbols: dict[tuple[str, str], float] = field(default_factory=lambda: dict(SYMBOL_HOURS))

    def set_symbol(self, venue: str, symbol: str, hours: float) -> None:
        self.symbols[(canonical_venue(venue), symbol)] = float(hours)

    def resolve(self, venue: str, symbol: str | None = None,
                live: str | float | int | None = None) -> FundingInterval:
        hours = parse_interval_hours(live)
        if hours is not None:
            return FundingInterval(hours, "live")
        v = canonical_venue(venue)
        if symbol is not None and (v, symbol) in self.symbols:
            return FundingInterval(self.symbols[(v, symbol)], "symbol")
        if v in self.venues:
            return FundingInterval(self.venues[v], "venue")
        raise KeyError(f"no funding interval known for venue {venue!r} (symbol {symbol!r}) and none reported live")

    def hours(self, venue: str, symbol: str | None = None, live: str | float | int | None = None) -> float:
        return self.resolve(venue, symbol, live).hours


DEFAULT_TABLE = IntervalTable()


def interval_hours(venue: str, symbol: str | None = None, live: str | float | int | None = None) -> float:
    """The funding interval in hours from the default table (live value first)."""
    return DEFAULT_TABLE.hours(venue, symbol, live)

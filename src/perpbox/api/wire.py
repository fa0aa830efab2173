"""Numbers and names on Hyperliquid's wire.

The engine holds integers (price units of ``10^-(6-szDecimals)``, lots of ``10^-szDecimals``,
micro-USDC, rates in 1e-8); the wire carries decimal strings.  Output follows what every recorded
venue response shows: the shortest exact decimal, with a trailing ``.0`` on whole numbers
(``"26951.0"``, ``"0.0"``).  Input is parsed exactly (``core.numbers.parse_units``): a price or size
with more decimals than its unit holds is refused, never rounded.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction

from perpbox.core.numbers import RATE_SCALE, USD, format_units, parse_units
from perpbox.market.spec import MarketSpec

USD_DECIMALS = 6


def fmt(units: int, decimals: int) -> str:
    """``units`` of ``10^-decimals`` as the venue prints it: ``"26951.0"``, ``"0.00015"``."""
    text = format_units(units, decimals)
    return text if "." in text else text + ".0"


def fmt_px(spec: MarketSpec, px: int) -> str:
    return fmt(px, spec.px_decimals)


def fmt_sz(spec: MarketSpec, sz: int) -> str:
    return fmt(sz, spec.sz_decimals)


def fmt_usd(micro: int) -> str:
    return fmt(micro, USD_DECIMALS)


def fmt_rate(rate_1e8: int) -> str:
    """A rate held in 1e-8 (fees, funding)."""
    return fmt(rate_1e8, 8)


def fmt_fraction(value: Fraction | float, digits: int = 8) -> str:
    """A derived ratio (return on equity, average prices of several fills), rounded half-even to
    ``digits`` decimals for display only."""
    q = Fraction(value)
    scaled = round(q * 10**digits)
    return fmt(scaled, digits)


def fmt_avg_px(spec: MarketSpec, ntl: int, sz: int) -> str:
    """Average fill price ``ntl / sz`` (micro-USDC over lots), shown with up to 8 decimals."""
    if sz == 0:
        return "0.0"
    return fmt_fraction(Fraction(ntl, USD) / Fraction(sz, 10**spec.sz_decimals), 8)


def parse_px(spec: MarketSpec, text: object) -> int | None:
    return parse_units(text, spec.px_decimals)


def parse_sz(spec: MarketSpec, text: object) -> int | None:
    return parse_units(text, spec.sz_decimals)


def rate_per_hour(rate_1e8: int, interval_ms: int) -> Fraction:
    """A per-interval rate as a per-hour fraction (Hyperliquid's ``funding`` field is hourly)."""
    return Fraction(rate_1e8, RATE_SCALE) * Fraction(3_600_000, interval_ms)


def coin_name(spec: MarketSpec) -> str:
    """``BTC`` on the first dex, ``xyz:XYZ100`` on a HIP-3 dex."""
    return spec.coin


def hex_hash(*parts: object) -> str:
    """A deterministic 32-byte ``0x`` hash standing in for the venue's transaction hash."""
    return "0x" + hashlib.blake2b(repr(parts).encode(), digest_size=32).hexdigest()

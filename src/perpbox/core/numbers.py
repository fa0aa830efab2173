"""Exact fixed-point arithmetic.

Units (design.md, "Numbers"), for a market with ``sz_decimals = k``:

* size in lots of ``10**-k`` base units;
* price in units of ``10**-(6 - k)`` USD;
* so ``price_units * size_lots`` is a notional in micro-USDC (1e-6), exactly.

USDC amounts (balances, fees, PnL, margin) are integers in micro-USDC.  Rates (fees, margin
fractions, funding) are integers scaled by ``RATE_SCALE`` (1e-8) unless a rational is needed, in
which case ``fractions.Fraction`` is used and converted to an integer once, rounding in the
system's favour.  Nothing in engine state is a float.
"""

from __future__ import annotations

import re
from typing import Final

from mypy_extensions import i64

USD = 10**6  # micro-USDC per USDC
RATE_SCALE: Final = 10**8  # rates are integers in units of 1e-8
MAX_PERP_DECIMALS = 6  # Hyperliquid: price decimals = 6 - szDecimals for perps


def iabs(x: int) -> int:
    """``abs`` for ints.  The compiled build calls this natively; its ``abs(x)`` boxes ``x`` into a
    Python int and calls the generic ``PyNumber_Absolute``, an allocation on the order path."""
    return x if x >= 0 else -x


_I31: Final = 2**31
_I62: Final = 2**62 - 1  # the largest int the compiled build holds unboxed


def mul(a: int, b: int) -> int:
    """``a * b``, exactly.  The compiled build's own ``int`` multiply takes its fast path only when
    both operands are in [0, 2**30): a negative operand (a short position, a negated notional) or a
    notional of $1,074 or more sends it to multiplying boxed Python ints, about 600 instructions
    and an allocation.  Here a product whose bounds are checked first to fit in 63 bits is computed
    in 64-bit machine arithmetic (so it cannot overflow), and any other as a Python int."""
    if -_I31 < a < _I31 and -_I31 < b < _I31:  # |a * b| < 2**62
        return int(i64(a) * i64(b))
    if 0 < b <= _I62 and -(_I62 // b) <= a <= _I62 // b:
        return int(i64(a) * i64(b))
    return a * b


def ceil_div(a: int, b: int) -> int:
    """Ceiling of a / b for integers (b > 0)."""
    return -((-a) // b)


def price_decimals(sz_decimals: int) -> int:
    return MAX_PERP_DECIMALS - sz_decimals


_DECIMAL = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")


def parse_units(text: object, decimals: int) -> int | None:
    """Parse a plain decimal string (``"-12.5"``, ``"0.001"``; no exponent, sign ``+``, spaces or
    underscores) into integer units of ``10**-decimals``, exactly, with pure integer arithmetic.

    Returns None when the text is not such a number, is longer than 80 characters, or has more
    decimals than the unit holds.  Never rounds: a value that does not fit is refused.
    """
    if not isinstance(text, str) or len(text) > 80 or not _DECIMAL.fullmatch(text):
        return None
    if decimals < 0:  # units of 10**-decimals > 1: the value must be a whole number of them
        whole_units = parse_units(text, 0)
        step = 10**-decimals
        return None if whole_units is None or whole_units % step else whole_units // step
    neg = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    frac = frac.rstrip("0")
    if len(frac) > decimals:
        return None
    units: int = int(whole or "0") * 10**decimals + int(frac.ljust(decimals, "0") or "0")
    return -units if neg else units


def format_units(units: int, decimals: int) -> str:
    """Format integer units of ``10**-decimals`` as the shortest exact decimal string."""
    if decimals <= 0:
        return str(units * 10 ** (-decimals))
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    frac_s = str(frac).rjust(decimals, "0").rstrip("0")
    return f"{sign}{whole}.{frac_s}" if frac_s else f"{sign}{whole}"


def significant_figures(units: int) -> int:
    """Number of significant digits of a positive integer once trailing zeros are dropped."""
    n = iabs(units)
    if n == 0:
        return 0
    while n % 10 == 0:
        n //= 10
    digits = 1
    while n >= 10:  # counted, not len(str(n)): no string per order in the compiled build
        n //= 10
        digits += 1
    return digits


def valid_price_units(px: int, whole: int, max_sig_figs: int) -> bool:
    """Hyperliquid's tick rule on an integer price (``whole`` units per dollar): positive, and at
    most ``max_sig_figs`` significant figures unless it is a whole number of dollars (decimals are
    bounded by the unit itself)."""
    if px <= 0:
        return False
    if px % whole == 0:
        return True
    return significant_figures(px) <= max_sig_figs


def fee_up(notional: int, rate: int) -> int:
    """Fee in micro-USDC for ``rate`` (1e-8 units), rounded up: fees charged round up and rebates
    paid round down (toward the system)."""
    return ceil_div(mul(notional, rate), RATE_SCALE)


def notional_cap(caps: tuple[int | None, ...], beyond: int, leverage: int) -> int | None:
    """The largest position notional at ``leverage`` from a margin table's caps by leverage
    (None: unlimited); ``beyond`` for a leverage past the table's range."""
    if 0 <= leverage < len(caps):
        return caps[leverage]
    return beyond


def round_price_sig(units: int, decimals: int, sig: int = 5, up: bool = False) -> int:
    """Round a price in units to Hyperliquid's rule: at most ``sig`` significant figures unless
    the price is a whole number of dollars.  Rounds down (or up when ``up``): callers choose the
    direction that favours the system (e.g. a market buy's slippage cap rounds down)."""
    if units <= 0:
        return units
    digits = len(str(units))
    if digits <= sig:
        return units
    # Whole-dollar prices are always allowed, so the step never exceeds one dollar.
    step: int = min(10 ** (digits - sig), 10**decimals)
    q, r = divmod(units, step)
    if r and up:
        q += 1
    return q * step

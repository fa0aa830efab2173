"""Estimates a venue shows its users: liquidation price and maximum trade size.

Pure functions over integers in the engine's units (``core.numbers``): sizes in lots, prices in
price units, so ``lots * price units`` is micro-USDC and ``micro-USDC / lots`` is price units.
They take what the caller reads from state (mark, size, margin available, the tier's maintenance
rate, leverage) and never see an account, a position or the engine.

The maths of liquidation itself (bankruptcy price and limit, deficit shares, ADL order) is in
``risk.liquidation``.
"""

from __future__ import annotations

from fractions import Fraction


def liquidation_price(mark: int, szi: int, margin_available: int, mmr: Fraction) -> Fraction | None:
    """Hyperliquid's documented liquidation price estimate (shared/reference/hyperliquid-api.md
    §6.4), in price units::

        liq = mark − side · margin_available / |szi| / (1 − mmr · side),   side = +1 long, −1 short

    ``margin_available`` (micro-USDC) is the cross account value minus the cross maintenance
    margin for a cross position, or the isolated value (bucket + ``szi · mark``) minus the
    position's maintenance margin for an isolated one (§6.3, §6.4); ``mmr`` is the maintenance
    rate of the position's tier (``1 / (2 · maxLeverage)`` on Hyperliquid tables).  A cross
    estimate so does not depend on the leverage setting; an isolated one does, through the bucket.

    Exact (a ``Fraction``, no rounding here: it is an estimate for display and the caller rounds
    for the wire; divide by ``10**px_decimals`` for USD).  None when no positive price liquidates
    the position (the result is ≤ 0, e.g. a long whose margin exceeds its notional) and for a zero
    size (no position).  ``margin_available`` may be negative (already liquidatable): the estimate
    then lies on the safe side of the mark."""
    if szi == 0:
        return None
    side = 1 if szi > 0 else -1
    px = mark - side * Fraction(margin_available, abs(szi)) / (1 - mmr * side)
    return px if px > 0 else None


def max_trade_size(available: int, leverage: int, mark: int) -> int:
    """The largest order size (lots) whose initial margin at the mark fits in ``available``
    (micro-USDC: cross account value minus the initial margin of the open cross positions, §6.3,
    ``MarginView.available_to_trade``) at ``leverage``::

        max_sz = floor(available · leverage / mark)

    Rounded down (the system's side: the size's margin never exceeds what is available).  0 when
    nothing is available (``available ≤ 0``) or there is no mark to price at (``mark ≤ 0``).  The
    same for either side: a reducing order needs no margin at all, so this is the size that opens
    (activeAssetData ``maxTradeSzs``, §2.2)."""
    if mark <= 0 or available <= 0:
        return 0
    return available * leverage // mark

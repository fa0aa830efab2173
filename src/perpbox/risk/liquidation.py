"""Liquidation arithmetic: exact shares of a deficit, liquidation-order limits, ADL ranking.

Bankruptcy (dYdX v4's rule, reference perp-mechanics §2.8): closing part of an account gives up a
share of its equity in proportion to the share of maintenance margin it removes.  So a position
``p`` of an account with equity ``E`` and total maintenance ``M`` carries ``E · mm_p / M`` of the
equity, and its bankruptcy price is ``mark − E · mm_p / (M · szi)``.  A book liquidation is
limited at that price, so it can never leave the account below zero; an insurance takeover
happens at it, which moves the deficit (or surplus) to the fund exactly.  ADL starts from it too,
but caps what each counterparty pays at what it can pay without going below zero
(``adl_charges``).  ADL reduces the opposite side in ``adl_order``.

Pure functions over integers (micro-USDC, lots, price units: ``core.numbers``) and ``Fraction``;
the estimates shown to users (liquidation price, max trade size) are in ``risk.estimates``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction

from perpbox.core.numbers import RATE_SCALE


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to non-negative ``weights``, exactly: each share is the
    difference of floored cumulative shares, so the parts sum to ``total`` (all weights zero:
    equal weights)."""
    if not weights:
        return []
    w = list(weights) if any(weights) else [1] * len(weights)
    whole = sum(w)
    out, acc, prev = [], 0, 0
    for x in w:
        acc += x
        cum = total * acc // whole
        out.append(cum - prev)
        prev = cum
    return out


def bankruptcy_price(mark: int, szi: int, equity_share: int) -> Fraction | None:
    """The price (price units, exact) at which the position ``szi`` carrying ``equity_share``
    (micro-USDC) of its account's equity leaves that share at zero (reference perp-mechanics
    §2.8, dYdX v4's rule; the share is ``E · mm_p / M``, split exactly by ``allocate``)::

        bankruptcy = mark − equity_share / szi

    (a long below the mark, a short above it when the share is positive; on the other side of the
    mark when the share is negative, an account already under water).  Exact, no rounding: an
    order limited at it rounds toward the mark (the system's side), as ``bankruptcy_limit``
    does.  None for a zero size and when the price is not positive (a long whose share is at
    least its notional cannot go bankrupt)."""
    if szi == 0:
        return None
    px = mark - Fraction(equity_share, szi)
    return px if px > 0 else None


def bankruptcy_limit(mark: int, szi: int, equity_share: int, fee_rate: int = 0) -> int:
    """The worst price a liquidation order closing all of ``szi`` may trade at without the
    position's ``equity_share`` (micro-USDC) going below zero once the order's taker fee
    (``fee_rate``, 1e-8) is paid: a long sells at ``px ≥ (mark·size − share) / (size·(1 − fee))``,
    a short buys at ``px ≤ (mark·size + share) / (size·(1 + fee))``; rounded toward the mark (the
    system's side), and never below one price unit.  Per-fill fee rounding (< 1 micro-USDC a fill)
    is the only slack left, covered by the backstop.  With ``fee_rate = 0`` this is
    ``bankruptcy_price`` rounded toward the mark (up for a long, at least 1; down for a short)."""
    size = abs(szi)
    if szi > 0:
        num = (mark * size - equity_share) * RATE_SCALE
        return max(1, -(-num // (size * (RATE_SCALE - fee_rate))))
    return (mark * size + equity_share) * RATE_SCALE // (size * (RATE_SCALE + fee_rate))


def adl_charges(nominal: Sequence[int], pool: Sequence[int], room: Sequence[int]) -> tuple[list[int], int]:
    """What each ADL fill's counterparty pays of a deficit, capped so none goes below zero.

    ``nominal[i]`` (≥ 0, micro-USDC) is fill ``i``'s share of the deficit at the bankruptcy price;
    ``pool[i]`` indexes ``room``, what the counterparty can pay in all (≥ 0; fills of one cross
    account share its pool).  In fill order each fill pays its share plus the deficit carried
    from the fills before it, up to its pool's room; what it cannot pay is carried to the next.
    What is still carried after the last fill is offered again, in the same order, to the room
    left.  Returns the payments and the shortfall nobody could pay:
    ``Σ payments + shortfall == Σ nominal`` exactly, and no pool pays more than its room."""
    left = [max(r, 0) for r in room]
    pays: list[int] = []
    carry = 0
    for d, k in zip(nominal, pool, strict=True):
        want = d + carry
        pay = min(want, left[k])
        left[k] -= pay
        carry = want - pay
        pays.append(pay)
    for i, k in enumerate(pool):
        if not carry:
            break
        extra = min(carry, left[k])
        pays[i] += extra
        left[k] -= extra
        carry -= extra
    return pays, carry


def adl_score(mark: int, szi: int, entry_ntl: int, value: int) -> Fraction:
    """Hyperliquid's ADL rank ``(mark / entry) × (notional / account value)``, for the profitable
    side of a short too (``entry / mark``, so profit ranks first either way); accounts with no
    positive value rank last (score 0)."""
    if value <= 0 or entry_ntl <= 0 or szi == 0:
        return Fraction(0)
    ntl = abs(szi) * mark
    pnl_ratio = Fraction(ntl, entry_ntl) if szi > 0 else Fraction(entry_ntl, ntl)
    return pnl_ratio * Fraction(ntl, value)


def adl_order(mark: int, entries: Iterable[tuple[str, int, int, int]]) -> list[str]:
    """The keys of one side's holders of a market in the order ADL reduces them (reference
    hyperliquid-api §6.4): ``entries`` are ``(key, szi, entry_ntl, value)`` — the position's
    signed size (lots), cost basis (micro-USDC, > 0) and the value at stake (micro-USDC: the
    cross account value for a cross position, the isolated value for an isolated one) — and
    ``mark`` the market's mark (price units).  Highest ``adl_score`` first (most profit × leverage);
    equal scores, including every holder with no positive value (score 0), by ascending key.
    Exact (scores are ``Fraction``s), so the order never depends on rounding.  The caller passes
    one side only; nothing is filtered out."""
    ranked = [(-adl_score(mark, szi, entry_ntl, value), key) for key, szi, entry_ntl, value in entries]
    ranked.sort()
    return [key for _, key in ranked]

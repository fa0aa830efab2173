"""Impact prices: the average fill price of a market order of a given notional, and the local mark.

Both work on plain levels too (``walk_impact``, ``local_mark_of``), so a client holding a venue's
``l2Book`` (the deployer's relay) prices it with exactly the engine's rules."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

from perpbox.book.book import OrderBook


def walk_impact(levels: Iterable[tuple[int, int]], notional: int) -> Fraction | None:
    """Average price (price units, exact) of filling ``notional`` micro-USDC against ``levels``,
    ``(price units, size lots)`` best first; None when they are too thin to fill it.  The last
    level is used fractionally, as the venues define it (size need not be whole lots)."""
    left = notional
    size = Fraction(0)
    for px, total in levels:
        level_ntl = px * total
        if level_ntl >= left:
            size += Fraction(left, px)
            return notional / size
        left -= level_ntl
        size += total
    return None


def impact_price(book: OrderBook, is_buy: bool, notional: int) -> Fraction | None:
    """Buying (``is_buy``, walking the asks) or selling (walking the bids) ``notional``."""
    side = book.asks if is_buy else book.bids
    return walk_impact(((px, side[px].total) for px in sorted(side, reverse=not is_buy)), notional)


def local_mark_of(bid: int | None, ask: int | None, last_px: int) -> int | None:
    """``median(best bid, best ask, last trade)``; with one input missing, the two that exist
    (their mean, rounded down) — bid and ask when no trade has printed, the last trade clamped
    into the one-sided book otherwise; None when there is neither a two-sided book nor a trade."""
    if bid is not None and ask is not None:
        if last_px:
            return sorted((bid, ask, last_px))[1]
        return (bid + ask) // 2
    if not last_px:
        return None
    if bid is not None:
        return max(bid, last_px)
    if ask is not None:
        return min(ask, last_px)
    return last_px


def local_mark(book: OrderBook, last_px: int) -> int | None:
    return local_mark_of(book.best_bid(), book.best_ask(), last_px)

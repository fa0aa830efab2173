"""Impact prices: the average fill price of a market order of a given notional."""

from __future__ import annotations

from fractions import Fraction

from perpbox.book.book import OrderBook


def impact_price(book: OrderBook, is_buy: bool, notional: int) -> Fraction | None:
    """Average price (price units, exact) of buying (``is_buy``, walking the asks) or selling
    (walking the bids) ``notional`` micro-USDC; None when the side is too thin to fill it.
    The last level is used fractionally, as the venues define it (size need not be whole lots)."""
    side = book.asks if is_buy else book.bids
    left = notional
    size = Fraction(0)
    for px in sorted(side, reverse=not is_buy):
        level_ntl = px * side[px].total
        if level_ntl >= left:
            size += Fraction(left, px)
            return notional / size
        left -= level_ntl
        size += side[px].total
    return None


def local_mark(book: OrderBook, last_px: int) -> int | None:
    """``median(best bid, best ask, last trade)``; with one input missing, the two that exist
    (their mean, rounded down) — bid and ask when no trade has printed, the last trade clamped
    into the one-sided book otherwise; None when there is neither a two-sided book nor a trade."""
    bid, ask = book.best_bid(), book.best_ask()
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

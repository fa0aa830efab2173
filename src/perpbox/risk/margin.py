"""Margin arithmetic at the mark price, in micro-USDC.

Hyperliquid's definitions (shared/reference/hyperliquid-api.md §6.3):

* initial margin of a position = ``|size| * mark / leverage``, rounded **up**;
* maintenance margin = the market's margin table at the position notional (rounded up);
* cross account value = cross cash + Σ cross ``size * mark``; an isolated position's value is its
  bucket + ``size * mark``;
* withdrawable (and any transfer out) = cross account value − ``max(cross initial margin,
  10% of cross notional)``, floored at 0 — the docs' ``transfer_margin_required`` rule;
* pre-trade check: the initial margin the order adds, priced at the worse of its limit price and
  the mark (``max`` for the notional), must fit in the cross account value left after the initial
  margin of the open cross positions.  Reduce-only orders and the reducing part of an order need
  none.  Open orders do not reserve margin: as on Hyperliquid the resting side is re-checked at
  each match (``marginCanceled`` when it fails).  Fees are not reserved.

``prices`` maps each asset to the price margin is computed at: the mark when the pricing layer
has set one, else the last trade price, else 0 (a market with neither has no exposure to value).
"""

from __future__ import annotations

from perpbox.core.numbers import ceil_div, iabs, mul
from perpbox.ledger.ledger import Account, Position
from perpbox.market.rules import MarketRules
from perpbox.market.spec import MarketSpec


class MarginView:
    """Reads account margin figures; never changes state.  Kept behind this narrow interface so a
    compiled implementation can be swapped in and checked against it call by call."""

    __slots__ = ("markets", "prices")

    def __init__(self, markets: dict[int, MarketSpec], prices: dict[int, int]) -> None:
        self.markets = markets
        self.prices = prices

    # -- per position -------------------------------------------------------------------------
    def position_value(self, pos: Position) -> int:
        return mul(iabs(pos.szi), self.prices[pos.asset])

    def initial_margin(self, pos: Position) -> int:
        return ceil_div(mul(iabs(pos.szi), self.prices[pos.asset]), pos.leverage)

    def maintenance_margin(self, pos: Position) -> int:
        return self.markets[pos.asset].margin_table.maintenance_margin(self.position_value(pos))

    def isolated_value(self, pos: Position) -> int:
        return pos.iso_raw + mul(pos.szi, self.prices[pos.asset])

    def unrealized_pnl(self, pos: Position) -> int:
        """``size * mark − cost basis`` (reporting; rounding of the cost basis documented in ledger)."""
        cost = pos.entry_ntl if pos.szi > 0 else -pos.entry_ntl
        return mul(pos.szi, self.prices[pos.asset]) - cost

    # -- per account (cross) --------------------------------------------------------------------
    def cross_value(self, acct: Account) -> int:
        mark = self.prices
        v = acct.raw_usd
        for p in acct.positions.values():
            if p.szi and p.is_cross:
                v += mul(p.szi, mark[p.asset])
        return v

    def cross_initial_margin(self, acct: Account) -> int:
        mark = self.prices
        return sum(
            ceil_div(mul(iabs(p.szi), mark[p.asset]), p.leverage)
            for p in acct.positions.values() if p.szi and p.is_cross
        )

    def cross_notional(self, acct: Account) -> int:
        mark = self.prices
        return sum(mul(iabs(p.szi), mark[p.asset]) for p in acct.positions.values() if p.szi and p.is_cross)

    def cross_maintenance_margin(self, acct: Account) -> int:
        return sum(self.maintenance_margin(p) for p in acct.positions.values() if p.szi and p.is_cross)

    def account_value(self, acct: Account) -> int:
        """Cross value plus every isolated position's value (Hyperliquid's marginSummary)."""
        return self.cross_value(acct) + sum(
            self.isolated_value(p) for p in acct.positions.values() if not p.is_cross and (p.szi or p.iso_raw)
        )

    def withdrawable(self, acct: Account) -> int:
        required = max(self.cross_initial_margin(acct), ceil_div(self.cross_notional(acct), 10))
        return max(0, self.cross_value(acct) - required)

    def available_to_trade(self, acct: Account) -> int:
        return self.cross_value(acct) - self.cross_initial_margin(acct)

    # -- pre-trade ----------------------------------------------------------------------------
    def order_margin_error(self, acct: Account, pos: Position | None, rules: MarketRules,
                           is_buy: bool, px: int, sz: int, leverage: int) -> str | None:
        """None if ``acct`` can margin an order (or fill) of ``sz`` at ``px``; else which rule it
        breaks: ``"margin"`` or ``"max_position"``.  ``pos`` is the account's position slot in
        the market (None when it has none)."""
        old = pos.szi if pos is not None else 0
        new = old + (sz if is_buy else -sz)
        if old and (old > 0) == (new > 0) and iabs(new) <= iabs(old):
            return None  # purely reducing
        if new == 0:
            return None
        flips = old != 0 and (old > 0) != (new > 0)
        open_qty = iabs(new) if (flips or old == 0) else iabs(new) - iabs(old)
        prices = self.prices
        mark = prices[rules.asset]
        price = px if px > mark else mark
        cap = rules.max_notional_at_leverage(leverage)
        if cap is not None and mul(iabs(new), price) > cap:
            return "max_position"
        required = ceil_div(mul(open_qty, price), leverage)
        # one pass over the cross positions: value − initial margin
        available = acct.raw_usd
        for p in acct.positions.values():
            szi = p.szi
            if szi and p.is_cross and not (flips and p is pos):  # a flipped position's margin is released
                value = mul(szi, prices[p.asset])  # prices are never negative: |value| = |szi| * price
                available += value - ceil_div(iabs(value), p.leverage)
            elif flips and p is pos and p.is_cross:
                available += mul(szi, prices[p.asset])
        return None if available >= required else "margin"

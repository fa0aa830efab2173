"""What one engine component may ask of another: small declared interfaces.

A component receives its dependencies in its constructor, typed by one of these Protocols or by
the class of a component it sits on (``MarketBoard``, ``MarketPricing``, …, and below the exchange
``Ledger`` and ``MarginView``), and calls nothing else of them.  The dependencies point one way:
markets ← prices ← holdings ← controls ← volume ← orders ← liquidations, and the Protocols are how
a lower one asks something back of a higher one (a halt closes orders; a trigger executes one).
The order path's dependencies are the concrete classes on purpose: a call through a Protocol is a
generic call in the compiled build, one through a compiled class a native one.  ``Exchange`` wires
them (``perpbox.exchange.engine``); mypy checks there that each object satisfies its Protocol.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from perpbox.book.order import Order
from perpbox.exchange.events import MarketConfig
from perpbox.market.margin import MarginTable
from perpbox.market.rules import MarketRules
from perpbox.market.spec import MarketSpec
from perpbox.pricing.pricer import PriceState


class OrderDesk(Protocol):
    """The order book side of the exchange, as account settings need it."""

    def close_orders_of(self, ts: int, user: str, status: str) -> None:
        """Close every live order of ``user`` (``status`` says why), oldest first."""

    def close_market_orders(self, ts: int, asset: int, status: str) -> None:
        """Close every live order in ``asset``, oldest first."""


class TriggerDesk(Protocol):
    """The order desk as trigger orders need it: find, re-check, close and execute an order."""

    def order(self, oid: int) -> Order | None:
        """The live order ``oid``, or None."""

    def reduce_capacity(self, order: Order) -> int:
        """How many lots ``order`` may still trade without increasing its owner's position."""

    def margin_check(self, user: str, rules: MarketRules, is_buy: bool, px: int, sz: int) -> tuple[str, str] | None:
        """(status, message) when ``user`` lacks the margin for the order, else None."""

    def close(self, ts: int, order: Order, status: str, arm_children: bool = False) -> None:
        """Take a live order out (``status`` says why)."""

    def execute(self, ts: int, order: Order) -> Any:
        """Match a pending order, then rest or finish it."""


class LiquidationDesk(Protocol):
    """The order desk as liquidations need it."""

    def order(self, oid: int) -> Order | None:
        """The live order ``oid``, or None."""

    def close(self, ts: int, order: Order, status: str, arm_children: bool = False) -> None:
        """Take a live order out (``status`` says why)."""

    def send_reducing_ioc(self, ts: int, user: str, asset: int, is_buy: bool, px: int, sz: int,
                          liquidation: bool) -> None:
        """An IOC reduce-only order the exchange sends for ledger account ``user``."""

    def after_fills(self, ts: int, asset: int, users: Iterable[str]) -> None:
        """Reduce-only upkeep for accounts whose position in ``asset`` changed."""


class MarketListing(Protocol):
    """The listed markets and their dexes, as dex deployment needs them."""

    def spec(self, asset: int) -> MarketSpec | None:
        """The market's spec, or None when ``asset`` is not listed."""

    def specs(self) -> list[MarketSpec]:
        """Every listed market's spec, by asset."""

    def dex_index(self, dex: str) -> int | None:
        """The dex's index (0: the first dex), or None when no market lists it yet."""

    def dex_count(self) -> int:
        """How many dexes exist (the index the next new dex gets)."""

    def deployer_error(self, user: str, dex: str) -> str | None:
        """Why ``user`` may not act as ``dex``'s deployer, or None."""

    def deployer_of(self, dex: str) -> str | None:
        """The dex's deployer, or None for a dex that does not exist."""

    def set_margin_table(self, asset: int, table: MarginTable) -> None:
        """Part of an applier: the market's spec now has ``table`` (its risk index is stale)."""


class FundingMarket(Protocol):
    """A market's state as funding settlement needs it."""

    def spec(self, asset: int) -> MarketSpec | None:
        """The market's spec, or None when ``asset`` is not listed."""

    def market_config(self, asset: int) -> MarketConfig:
        """The market's runtime controls (its funding overrides among them)."""

    def price_state(self, asset: int) -> PriceState:
        """The market's pricing state: oracle, mark, the interval's premium samples."""

    def margin_price(self, asset: int) -> int:
        """The price margin is computed at (mark, else last trade, else 0)."""

    def holder_sizes(self, asset: int) -> list[tuple[str, int]]:
        """(ledger account, signed size) of every non-zero position in the market, by account."""

    def interval_settled(self, asset: int, ts: int, rate: int) -> None:
        """Part of an applier: the interval ended at ``ts`` paying ``rate``; its samples restart."""

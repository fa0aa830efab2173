"""What one engine component may ask of another: small declared interfaces.

A component receives its dependencies in its constructor, typed by one of these Protocols (or,
below the exchange, by the lower layer's own class: ``Ledger``, ``MarginView``), and calls nothing
else of them.  ``Exchange`` wires them (``perpbox.exchange.engine``); mypy checks at that point that
each object it passes satisfies the Protocol.
"""

from __future__ import annotations

from typing import Protocol

from perpbox.exchange.events import MarketConfig
from perpbox.market.margin import MarginTable
from perpbox.market.spec import MarketSpec
from perpbox.pricing.pricer import PriceState


class OrderDesk(Protocol):
    """The order book side of the exchange, as account settings need it."""

    def close_orders_of(self, ts: int, user: str, status: str) -> None:
        """Close every live order of ``user`` (``status`` says why), oldest first."""


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

"""The ``Venue`` interface the bots trade through — small, exact and engine-independent, so the
Hyperliquid adapter, the ccxt adapters and the coming backtester all implement the same thing.

Sizes and prices are ``Decimal`` in the venue's units; sizes are signed where a side is implied
(a fill of −0.5 sold 0.5).  Every call that changes state returns what the venue answered as an
``OrderState``; none raises for a refusal (a refusal is a state: ``rejected`` with the venue's
text).  ``unknown`` means the venue's answer did not settle it — the caller must ask again
(``order_status``) before booking anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

TIFS = ("alo", "ioc", "gtc")  # post-only, immediate-or-cancel, good-till-cancel
OPEN, FILLED, CANCELED, REJECTED, UNKNOWN = "open", "filled", "canceled", "rejected", "unknown"
FINAL = frozenset({FILLED, CANCELED, REJECTED})


@dataclass(frozen=True, slots=True)
class MarketInfo:
    coin: str  # the venue's name for it (the symbol aliases map ours onto it)
    tick: Decimal  # the smallest price step at the current price
    lot: Decimal
    min_notional: Decimal  # USD
    funding_interval_h: int
    max_leverage: int
    sz_decimals: int = 0
    # what the minimum spares: "none"; "close", a reduce-only order that closes a whole position;
    # "reduce_only", every reduce-only order
    min_notional_spares: str = "none"


@dataclass(frozen=True, slots=True)
class Book:
    coin: str
    bids: tuple[tuple[Decimal, Decimal], ...]  # (px, sz), best first
    asks: tuple[tuple[Decimal, Decimal], ...]
    ts_ms: int  # the venue's time for this book

    def mid(self) -> Decimal | None:
        return None if not self.bids or not self.asks else (self.bids[0][0] + self.asks[0][0]) / 2


@dataclass(frozen=True, slots=True)
class OrderRequest:
    coin: str
    is_buy: bool
    size: Decimal  # > 0
    px: Decimal
    tif: str = "gtc"
    reduce_only: bool = False
    client_id: str | None = None  # 0x + 32 hex digits on Hyperliquid: makes a retried send idempotent


@dataclass(frozen=True, slots=True)
class OrderState:
    status: str  # open | filled | canceled | rejected | unknown
    order_id: str | None = None
    client_id: str | None = None
    filled: Decimal = Decimal(0)  # unsigned size filled so far
    avg_px: Decimal | None = None
    error: str = ""

    @property
    def final(self) -> bool:
        return self.status in FINAL


@dataclass(frozen=True, slots=True)
class Fill:
    fill_id: str  # unique per fill on the venue (the ledger counts each once)
    order_id: str
    coin: str
    size: Decimal  # signed: + bought
    px: Decimal
    fee: Decimal  # USD paid (negative: a rebate)
    ts_ms: int
    maker: bool


@dataclass(frozen=True, slots=True)
class Position:
    coin: str
    size: Decimal  # signed
    entry_px: Decimal
    unrealized_pnl: Decimal
    margin: Decimal
    liquidation_px: Decimal | None


@dataclass(frozen=True, slots=True)
class Account:
    equity: Decimal
    positions: Mapping[str, Position]
    ts_ms: int
    notional: Decimal = Decimal(0)  # Σ |size| × mark over the positions, as the venue counts it
    maintenance_margin: Decimal = Decimal(0)  # what the venue liquidates below (cross)

    @property
    def margin_ratio(self) -> Decimal | None:
        """Maintenance margin over equity: 1 is the liquidation line (None: no equity)."""
        return None if self.equity <= 0 else self.maintenance_margin / self.equity


@dataclass(frozen=True, slots=True)
class FundingRate:
    coin: str
    rate: Decimal  # per funding interval, the venue's sign: positive, longs pay shorts
    interval_h: int
    mark_px: Decimal | None
    ts_ms: int

    @property
    def hourly(self) -> Decimal:
        """The rate per hour: rates of venues with different intervals compare only this way."""
        return self.rate / self.interval_h


@dataclass(frozen=True, slots=True)
class FundingPayment:
    coin: str
    usd: Decimal  # signed: + received, − paid
    size: Decimal  # the signed position it was paid on
    rate: Decimal
    ts_ms: int


class Venue(Protocol):
    name: str

    async def markets(self) -> dict[str, MarketInfo]: ...

    async def book(self, coin: str) -> Book: ...

    async def place(self, order: OrderRequest) -> OrderState: ...

    async def cancel(self, coin: str, order_id: str) -> OrderState: ...

    async def order_status(self, coin: str, order_id: str) -> OrderState: ...

    async def modify(self, coin: str, order_id: str, order: OrderRequest) -> OrderState: ...

    async def fills(self, since_ms: int) -> list[Fill]: ...

    async def account(self) -> Account: ...

    async def funding(self, coin: str) -> FundingRate: ...

    async def funding_payments(self, since_ms: int) -> list[FundingPayment]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Recorded(Protocol):
    """A venue whose ``fills`` come partly from a fast feed (a stream) that is not the venue's record:
    ``history`` reads the record itself, and ``reconnects`` counts the feed's reconnections — after
    each one a bot reconciles against the venue (``bots.streamed_venue``)."""

    @property
    def reconnects(self) -> int: ...

    async def history(self, since_ms: int) -> list[Fill]: ...

"""Events: every state change the engine makes, in order.  Events are the truth: applying them
(``Exchange.replay``) rebuilds the state exactly, and read models (fills, order history, funding)
are folds over them.  Each event names what changed, never why it was decided; appliers in
``perpbox.exchange.engine`` are deterministic functions of (state, event)."""

from __future__ import annotations

import msgspec

from perpbox.market.spec import MarketSpec


class Event(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    ts: int


class MarketListed(Event, frozen=True, kw_only=True):
    spec: MarketSpec
    mark_px: int = 0


class Deposited(Event, frozen=True, kw_only=True):
    user: str
    usd: int


class Withdrew(Event, frozen=True, kw_only=True):
    user: str
    usd: int


class SubAccountCreated(Event, frozen=True, kw_only=True):
    master: str
    sub: str
    name: str


class Transferred(Event, frozen=True, kw_only=True):
    src: str
    dst: str
    usd: int


class LeverageUpdated(Event, frozen=True, kw_only=True):
    user: str
    asset: int
    is_cross: bool
    leverage: int


class IsolatedMarginMoved(Event, frozen=True, kw_only=True):
    """``usd`` moves from the user's cross balance into the isolated position (negative: back)."""

    user: str
    asset: int
    usd: int


class OrderPlaced(Event, frozen=True, kw_only=True):
    """An order was accepted and given ``oid``.  ``status`` is where it goes: ``pending`` (enters
    matching now), ``waitingForTrigger``, or ``waitingForFill`` (a TP/SL child of ``parent``)."""

    oid: int
    user: str
    asset: int
    is_buy: bool
    px: int
    sz: int
    tif: str
    reduce_only: bool = False
    cloid: str | None = None
    trigger_px: int = 0
    is_market: bool = False
    tpsl: str = ""
    parent: int = 0
    position_tpsl: bool = False
    status: str = "pending"


class OrderRejected(Event, frozen=True, kw_only=True):
    """An order refused at placement; it consumed ``oid`` but changed nothing else.  ``status`` is
    Hyperliquid's (``tickRejected``, ``perpMarginRejected``, ``iocCancelRejected``, ...)."""

    oid: int
    user: str
    asset: int
    is_buy: bool
    px: int
    sz: int
    tif: str
    reduce_only: bool
    cloid: str | None
    status: str
    error: str


class Fill(Event, frozen=True, kw_only=True):
    """A trade of ``sz`` lots at ``px`` between a taker and a resting maker.  Fees in micro-USDC
    (negative = rebate) go to the fee account.  ``tid`` is the trade id."""

    tid: int
    asset: int
    px: int
    sz: int
    taker_is_buy: bool
    taker: str
    maker: str
    taker_oid: int
    maker_oid: int
    taker_fee: int
    maker_fee: int


class OrderRested(Event, frozen=True, kw_only=True):
    """The pending order ``oid`` rests in the book with its remaining size."""

    oid: int


class OrderTriggered(Event, frozen=True, kw_only=True):
    """A trigger order fired at ``mark_px``: it becomes a pending order at ``px``."""

    oid: int
    mark_px: int
    px: int


class OrderArmed(Event, frozen=True, kw_only=True):
    """A TP/SL child whose parent filled now waits for its trigger, with size ``sz``."""

    oid: int
    sz: int


class OrderResized(Event, frozen=True, kw_only=True):
    """A reduce-only order shrunk to ``sz`` lots because the position shrank (keeps priority)."""

    oid: int
    sz: int


class OrderClosed(Event, frozen=True, kw_only=True):
    """The order ``oid`` left the book/engine.  ``status``: ``filled`` or a cancel reason
    (``canceled``, ``marginCanceled``, ``selfTradeCanceled``, ``reduceOnlyCanceled``,
    ``siblingFilledCanceled``, ...)."""

    oid: int
    status: str


class MarkUpdated(Event, frozen=True, kw_only=True):
    asset: int
    mark_px: int

"""Events: every state change the engine makes, in order.  Events are the truth: applying them
(``Exchange.replay``) rebuilds the state exactly, and read models (fills, order history, funding)
are folds over them.  Each event names what changed, never why it was decided; appliers in
``perpbox.exchange.engine`` are deterministic functions of (state, event)."""

from __future__ import annotations

import msgspec

from perpbox.market.margin import MarginTable
from perpbox.market.spec import MarketSpec
from perpbox.pricing.pricer import PriceState


class MarketConfig(msgspec.Struct, frozen=True, kw_only=True):
    """A market's runtime controls: status, open-interest caps (notional at the mark, lots; 0 =
    none) and HIP-3 funding overrides (1e-8; None = the spec's)."""

    status: str = "active"
    oi_cap_ntl: int = 0
    oi_cap_sz: int = 0
    funding_multiplier: int | None = None
    funding_interest: int | None = None


class Event(msgspec.Struct, tag=True, frozen=True, gc=False):
    """Events are immutable values holding no references back into the engine, so they are not
    tracked by the cycle collector (``gc=False``): the engine makes several per command.  The
    hottest (order placed, fill, rested, closed) take their fields positionally as well, in the
    order declared, ``ts`` first: the compiled engine builds them without a keyword dict."""

    ts: int


class MarketListed(Event, frozen=True, kw_only=True):
    """``table_id`` 0: derived at listing (a flat table's id is its leverage, a tiered one gets the
    next free id); ``full_name`` names a HIP-3 dex its first listing creates."""

    spec: MarketSpec
    mark_px: int = 0
    deployer: str = ""
    table_id: int = 0
    full_name: str = ""


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


class AssetSent(Event, frozen=True, kw_only=True):
    """``sendAsset``: ``usd`` from ledger account ``src`` to ``dst`` (an address on the first dex,
    ``<dex>:<address>`` on a HIP-3 dex, ``spot:<address>`` for a spot wallet; see
    ``ledger.dex_account``)."""

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


class OrderPlaced(Event, frozen=True):
    """An order was accepted and given ``oid``.  ``status`` is where it goes: ``pending`` (enters
    matching now), ``waitingForTrigger``, or ``waitingForFill`` (a TP/SL child of ``parent``)."""

    oid: int
    user: str
    asset: int
    is_buy: bool
    px: int
    sz: int
    tif: str
    status: str = "pending"
    reduce_only: bool = False
    cloid: str | None = None
    builder: str = ""
    builder_fee: int = 0
    trigger_px: int = 0
    is_market: bool = False
    tpsl: str = ""
    parent: int = 0
    position_tpsl: bool = False
    liquidation: bool = False  # sent by the liquidation engine (IOC, reduce-only)


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


class Fill(Event, frozen=True):
    """A trade of ``sz`` lots at ``px`` between a taker and a resting maker.  Fees in micro-USDC
    (negative = rebate) go to the fee account, except the builder-fee part of a side's fee
    (``*_builder_fee``, included in ``*_fee``), which goes to that side's builder.  ``tid`` is the
    trade id."""

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
    taker_builder: str = ""
    taker_builder_fee: int = 0
    maker_builder: str = ""
    maker_builder_fee: int = 0


class OrderRested(Event, frozen=True):
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


class OrderClosed(Event, frozen=True):
    """The order ``oid`` left the book/engine.  ``status``: ``filled`` or a cancel reason
    (``canceled``, ``marginCanceled``, ``selfTradeCanceled``, ``reduceOnlyCanceled``,
    ``siblingFilledCanceled``, ...)."""

    oid: int
    status: str


class QuotesFed(Event, frozen=True, kw_only=True):
    """External prices from ``source`` (spot, or perp mids when ``perp``) by asset, as of ``ts``."""

    source: str
    pxs: dict[int, int]
    perp: bool = False


class PricesUpdated(Event, frozen=True, kw_only=True):
    """A market's pricing state (oracle, mark, EMAs, premium samples, funding clock) is now ``state``."""

    asset: int
    state: PriceState


class FundingSettled(Event, frozen=True, kw_only=True):
    """Funding for the interval ending at ``ts``: ``rate`` (1e-8) from the average ``premium``
    (1e-12), paid at ``px``; ``payments`` are ``(user, signed size, amount)``, amount > 0 paid;
    ``remainder`` (Σ paid − Σ received, from rounding) goes to the fee account."""

    asset: int
    rate: int
    premium: int
    px: int
    payments: list[tuple[str, int, int]]
    remainder: int


class MarketConfigured(Event, frozen=True, kw_only=True):
    asset: int
    config: MarketConfig


class DexConfigured(Event, frozen=True, kw_only=True):
    dex: str
    deployer: str
    oi_cap_ntl: int = 0


class MarketSettled(Event, frozen=True, kw_only=True):
    """Every position in ``asset`` closed at ``px`` (a halt); the cash moved nets to zero."""

    asset: int
    px: int


class Liquidated(Event, frozen=True, kw_only=True):
    """The liquidation engine acted on ``user``: ``asset`` is the isolated position's asset or -1
    for the cross account; ``method`` is ``market`` (orders to the book), ``backstop`` (taken over
    by ``liquidator`` at the mark), ``insurance`` (taken over by the insurance fund at the
    bankruptcy price) or ``adl``.  Values are before the step, in micro-USDC."""

    user: str
    asset: int
    method: str
    liquidator: str
    account_value: int
    maintenance_margin: int
    notional: int


class PositionTransferred(Event, frozen=True, kw_only=True):
    """``src`` hands ``sz`` lots (signed: the change of ``dst``'s position) of ``asset`` to ``dst``
    at ``px`` with no fee, and ``usd`` moves from ``src`` to ``dst`` (negative: the other way)."""

    asset: int
    src: str
    dst: str
    sz: int
    px: int
    usd: int


class AgentApproved(Event, frozen=True, kw_only=True):
    user: str
    agent: str
    name: str = ""
    valid_until: int = 0


class BuilderFeeApproved(Event, frozen=True, kw_only=True):
    user: str
    builder: str
    max_fee: int


class CancelScheduled(Event, frozen=True, kw_only=True):
    """``time`` None: unset; ``fired``: the schedule ran (and counts toward the daily limit)."""

    user: str
    time: int | None = None
    fired: bool = False


class MarginTableInserted(Event, frozen=True, kw_only=True):
    dex: str
    table_id: int
    table: MarginTable


class MarginTableSet(Event, frozen=True, kw_only=True):
    """``asset`` now uses margin table ``table_id`` (existing positions keep their leverage; above
    the new table's limit they can only be reduced, see ``MarginTable.max_notional_at_leverage``)."""

    asset: int
    table_id: int

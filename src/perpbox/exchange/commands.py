"""Commands: the only inputs to the engine.  Each carries its own timestamp (ms); the engine never
reads a clock.  Addresses are lower-case hex strings; prices, sizes and USDC are integers in the
market's units (see perpbox.core.numbers)."""

from __future__ import annotations

import msgspec

from perpbox.market.margin import MarginTable
from perpbox.market.spec import MarketSpec


class Command(msgspec.Struct, tag=True, frozen=True, kw_only=True, gc=False):
    """Immutable values without references back into the engine: not tracked by the cycle
    collector (``gc=False``)."""

    ts: int


class AddMarket(Command, frozen=True, kw_only=True):
    spec: MarketSpec
    mark_px: int = 0  # optional initial mark (e.g. the deployer's oraclePx); 0 = none yet
    deployer: str = ""  # HIP-3: the dex's deployer (set by the dex's first listing)
    full_name: str = ""  # HIP-3: the dex's full name (first listing)


class Deposit(Command, frozen=True, kw_only=True):
    user: str
    usd: int


class Withdraw(Command, frozen=True, kw_only=True):
    user: str
    usd: int


class CreateSubAccount(Command, frozen=True, kw_only=True):
    master: str
    sub: str
    name: str = ""


class Transfer(Command, frozen=True, kw_only=True):
    """USDC between two perp accounts: master <-> its sub-account, or a plain send."""

    src: str
    dst: str
    usd: int


class SendAsset(Command, frozen=True, kw_only=True):
    """Hyperliquid ``sendAsset`` of USDC: ``usd`` from ``src``'s clearinghouse ``src_dex`` to
    ``dst``'s clearinghouse ``dst_dex`` (``""`` the first perp dex, a HIP-3 dex's name, or
    ``"spot"``).  ``user`` signed it; ``src`` is ``user`` or one of its sub-accounts."""

    user: str
    src: str
    dst: str
    src_dex: str
    dst_dex: str
    usd: int


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One order as Hyperliquid's wire describes it (``a,b,p,s,r,t,c``), in integer units.

    A trigger order has ``tpsl`` set ("tp" or "sl") and ``trigger_px``; ``is_market`` makes it
    execute as a market order when triggered.  A market order is ``tif=FrontendMarket``."""

    asset: int
    is_buy: bool
    px: int
    sz: int
    tif: str = "Gtc"
    reduce_only: bool = False
    cloid: str | None = None
    trigger_px: int = 0
    is_market: bool = False
    tpsl: str = ""
    builder: str = ""  # builder code: this address earns ``builder_fee`` (tenths of a bp) of each fill
    builder_fee: int = 0


# OrderRequest's field types in declared order: what ``msgspec.structs.astuple`` returns for one.
# The compiled engine unpacks a request with that one C call into locals of these native types.
OrderFields = tuple[int, bool, int, int, str, bool, str | None, int, bool, str, str, int]


class PlaceOrders(Command, frozen=True, kw_only=True):
    """A batch of orders; ``grouping`` is ``na``, ``normalTpsl`` (first order is the parent of
    the trigger orders after it) or ``positionTpsl`` (TP/SL attached to the position)."""

    user: str
    orders: list[OrderRequest]
    grouping: str = "na"


class Cancel(Command, frozen=True, kw_only=True):
    user: str
    asset: int
    oid: int


class CancelByCloid(Command, frozen=True, kw_only=True):
    user: str
    asset: int
    cloid: str


class CancelAll(Command, frozen=True, kw_only=True):
    """Cancel every open and waiting order of ``user`` (in one market when ``asset`` is set)."""

    user: str
    asset: int | None = None


class Modify(Command, frozen=True, kw_only=True):
    """Cancel-replace.  The replacement gets a new oid and joins the back of its price level
    (loses time priority, whatever changed), as on dYdX v4; ``oid`` may be an int or a cloid.
    A replacement that fails validation (tick, size, notional, reduce-only, trigger) is rejected
    and the original stays; one refused later by the book (ALO that would cross, IOC that cannot
    match) leaves the original cancelled, as a cancel followed by a refused order would."""

    user: str
    oid: int | str
    order: OrderRequest


class BatchModify(Command, frozen=True, kw_only=True):
    user: str
    modifies: list[Modify]


class UpdateLeverage(Command, frozen=True, kw_only=True):
    user: str
    asset: int
    is_cross: bool
    leverage: int


class UpdateIsolatedMargin(Command, frozen=True, kw_only=True):
    """Add (usd > 0) or remove (usd < 0) margin on an isolated position."""

    user: str
    asset: int
    usd: int


class Tick(Command, frozen=True, kw_only=True):
    """Periodic work, in this order: for each market (by asset) its session, oracle, EMAs and mark
    move and a premium sample is taken when due, then funding is paid when due; then trigger
    orders fire on the new marks; then the liquidation sweep runs (book, backstop/insurance, ADL).

    ``marks`` sets the mark directly for markets with a ``manual`` oracle (scripted price paths)."""

    marks: dict[int, int] = {}


class FeedPrices(Command, frozen=True, kw_only=True):
    """External prices from one ``source`` (e.g. "binance") by asset: spot prices for ``sources``
    oracles, or perp mids (``perp``) for the mark's external input."""

    source: str
    pxs: dict[int, int]
    perp: bool = False


class SetOracle(Command, frozen=True, kw_only=True):
    """HIP-3 ``perpDeploy.setOracle`` by the dex's deployer: oracle prices, up to two lists of mark
    inputs, external perp prices (all by asset)."""

    user: str
    dex: str
    oracle_pxs: dict[int, int]
    mark_pxs: list[dict[int, int]] = []
    external_perp_pxs: dict[int, int] = {}


class SetOpenInterestCaps(Command, frozen=True, kw_only=True):
    """HIP-3 ``setOpenInterestCaps`` (deployer), or an operator change when ``user`` is empty:
    notional caps by asset (micro-USDC; 0 removes) and optionally the dex total."""

    user: str = ""
    dex: str = ""
    caps: dict[int, int] = {}
    total_cap: int | None = None


class SetFundingMultipliers(Command, frozen=True, kw_only=True):
    """HIP-3 ``setFundingMultipliers`` (0..10, 1e-8 units) by the deployer."""

    user: str
    dex: str
    multipliers: dict[int, int]


class HaltTrading(Command, frozen=True, kw_only=True):
    """HIP-3 ``haltTrading``: halting cancels every order and settles every position at the mark;
    ``halted=False`` resumes.  ``user`` empty: the operator."""

    asset: int
    halted: bool
    user: str = ""


class SetMarketStatus(Command, frozen=True, kw_only=True):
    """Operator: ``active``, ``postOnly`` or ``reduceOnly`` (use HaltTrading to halt)."""

    asset: int
    status: str


def place(ts: int, user: str, asset: int, is_buy: bool, px: int, sz: int, **kw: object) -> PlaceOrders:
    """Shorthand for a single-order batch."""
    return PlaceOrders(ts=ts, user=user, orders=[OrderRequest(asset=asset, is_buy=is_buy, px=px, sz=sz, **kw)])  # type: ignore[arg-type]


def market_order(ts: int, user: str, spec: MarketSpec, ref_px: int, is_buy: bool, sz: int,
                 slippage_bps: int = 500, **kw: object) -> PlaceOrders:
    """A market order as Hyperliquid sends one: IOC (``FrontendMarket``) at ``ref_px`` (usually
    the mid or the mark) moved by ``slippage_bps`` against the taker (``MarketSpec.slippage_px``;
    the SDK's default is 5%).  What the book cannot fill within that price is cancelled."""
    px = spec.slippage_px(ref_px, is_buy, slippage_bps)
    return place(ts, user, spec.asset, is_buy, px, sz, tif="FrontendMarket", **kw)


class ApproveAgent(Command, frozen=True, kw_only=True):
    """Hyperliquid ``approveAgent``: ``agent`` (an API wallet) may sign L1 actions for ``user``.
    An unnamed agent replaces the previous unnamed one, a named one the agent of the same name;
    approving the zero address under a name removes that agent.  ``valid_until`` 0 = no expiry."""

    user: str
    agent: str
    name: str = ""
    valid_until: int = 0


class ApproveBuilderFee(Command, frozen=True, kw_only=True):
    """Hyperliquid ``approveBuilderFee``: the most ``builder`` may charge ``user``, in tenths of a
    basis point (``"0.01%"`` = 10)."""

    user: str
    builder: str
    max_fee: int


class ScheduleCancel(Command, frozen=True, kw_only=True):
    """Hyperliquid ``scheduleCancel`` (dead man's switch): at ``time`` every open order of ``user``
    is cancelled (``scheduledCancel``); ``time`` None unsets it."""

    user: str
    time: int | None = None


class Noop(Command, frozen=True, kw_only=True):
    """Hyperliquid ``noop`` (and actions perpbox accepts without effect, e.g. ``setReferrer``):
    logged so the signed action's nonce is durably used; changes nothing."""

    user: str


class RegisterAsset(Command, frozen=True, kw_only=True):
    """HIP-3 ``perpDeploy registerAsset2`` / ``registerAsset`` in dev mode (no stake, no auction):
    lists ``coin`` on ``dex``; the first listing creates the dex (``full_name`` from its schema) and
    makes ``user`` its deployer.  The engine allocates the asset id."""

    user: str
    dex: str
    coin: str
    sz_decimals: int
    oracle_px: int  # price units of the new asset (10^-(6 - sz_decimals) USDC)
    margin_table_id: int
    margin_mode: str = "normal"
    full_name: str = ""


class InsertMarginTable(Command, frozen=True, kw_only=True):
    """HIP-3 ``insertMarginTable``: a new margin table for ``dex`` (its id is allocated)."""

    user: str
    dex: str
    table: MarginTable


class SetMarginTableIds(Command, frozen=True, kw_only=True):
    """HIP-3 ``setMarginTableIds``: ``{asset: margin table id}`` for assets of ``dex``."""

    user: str
    dex: str
    ids: dict[int, int]

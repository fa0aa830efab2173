"""Orders as the book and the exchange see them."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perpbox.book.book import Level


class Tif(str, Enum):
    """Time in force, by Hyperliquid's wire names (orders store the plain string)."""

    GTC = "Gtc"
    IOC = "Ioc"
    ALO = "Alo"
    # Market orders are IOC limits with a slippage-bounded price; Hyperliquid reports them with
    # this TIF and uses "No liquidity available for market order." when nothing can match.
    MARKET = "FrontendMarket"


class Order:
    """A live order.  ``sz`` is the remaining size in lots, ``orig_sz`` the size at placement.

    ``status`` is one of ``open`` (resting), ``pending`` (being matched), ``waitingForTrigger`` or
    ``waitingForFill`` (a TP/SL child whose parent has not filled yet)."""

    __slots__ = (
        "asset",
        "builder",
        "builder_fee",
        "children",
        "cloid",
        "is_buy",
        "is_market",
        "level",
        "oid",
        "orig_sz",
        "parent",
        "position_tpsl",
        "px",
        "reduce_only",
        "status",
        "sz",
        "tif",
        "tpsl",
        "trigger_px",
        "triggered",
        "ts",
        "user",
    )

    def __init__(
        self,
        oid: int,
        user: str,
        asset: int,
        is_buy: bool,
        px: int,
        sz: int,
        ts: int,
        tif: str = "Gtc",
        reduce_only: bool = False,
        cloid: str | None = None,
        trigger_px: int = 0,
        is_market: bool = False,
        tpsl: str = "",
        parent: int = 0,
        position_tpsl: bool = False,
        orig_sz: int | None = None,
        builder: str = "",
        builder_fee: int = 0,
    ) -> None:
        self.oid = oid
        self.user = user
        self.asset = asset
        self.is_buy = is_buy
        self.px = px
        self.sz = sz
        self.orig_sz = sz if orig_sz is None else orig_sz
        self.ts = ts
        self.tif = tif
        self.reduce_only = reduce_only
        self.cloid = cloid
        self.trigger_px = trigger_px
        self.is_market = is_market
        self.tpsl = tpsl
        self.parent = parent
        self.children: tuple[int, ...] = ()  # TP/SL children's oids: rare, so no list per order
        self.position_tpsl = position_tpsl
        self.builder = builder
        self.builder_fee = builder_fee
        self.status = "pending"
        self.triggered = False
        self.level: Level | None = None  # set while resting

    @property
    def is_trigger(self) -> bool:
        return bool(self.tpsl)

    def __repr__(self) -> str:
        side = "B" if self.is_buy else "A"
        return f"Order(oid={self.oid}, {self.user[:8]}, a={self.asset}, {side} {self.sz}@{self.px}, {self.status})"


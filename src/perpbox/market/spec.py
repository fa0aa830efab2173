"""MarketSpec: everything static about one perp market."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from perpbox.core.numbers import USD, fee_up, price_decimals, round_price_sig, valid_price_units
from perpbox.market.funding import FundingParams
from perpbox.market.liquidation import LiquidationParams, MarketControls
from perpbox.market.margin import MarginTable
from perpbox.market.oracle import OracleDefinition


class MarginMode(str, Enum):
    """Hyperliquid's margin modes: ``normal`` (cross or isolated), ``noCross`` (isolated only,
    margin removable) and ``strictIsolated`` (isolated only, margin cannot be removed)."""

    NORMAL = "normal"
    NO_CROSS = "noCross"
    STRICT_ISOLATED = "strictIsolated"


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Fee rates in units of 1e-8 of notional; a negative maker rate is a rebate.
    Hyperliquid's base tier: taker 0.045% (45_000), maker 0.015% (15_000)."""

    maker: int = 15_000
    taker: int = 45_000

    def __post_init__(self) -> None:
        if self.taker < 0 or self.maker + self.taker < 0:
            raise ValueError("taker fee must be >= 0 and cover any maker rebate")


@dataclass(frozen=True)
class MarketSpec:
    name: str
    asset: int
    sz_decimals: int
    margin_table: MarginTable
    dex: str = ""
    fees: FeeSchedule = field(default_factory=FeeSchedule)
    margin_mode: MarginMode = MarginMode.NORMAL
    min_notional: int = 10 * USD  # micro-USDC; Hyperliquid's $10
    max_sig_figs: int = 5
    oracle: OracleDefinition = field(default_factory=OracleDefinition)
    funding: FundingParams = field(default_factory=FundingParams)
    liquidation: LiquidationParams = field(default_factory=LiquidationParams)
    controls: MarketControls = field(default_factory=MarketControls)
    _whole: int = field(init=False, repr=False, compare=False)  # price units per dollar

    px_decimals: int = field(init=False, repr=False, compare=False)  # 6 - szDecimals

    def __post_init__(self) -> None:
        if not 0 <= self.sz_decimals <= 6:
            raise ValueError("sz_decimals must be within 0..6")
        object.__setattr__(self, "px_decimals", price_decimals(self.sz_decimals))
        object.__setattr__(self, "_whole", 10 ** price_decimals(self.sz_decimals))

    @property
    def coin(self) -> str:
        """The venue's coin name: ``BTC`` on the first dex, ``xyz:XYZ100`` on a HIP-3 dex."""
        return f"{self.dex}:{self.name}" if self.dex else self.name

    @property
    def max_leverage(self) -> int:
        return self.margin_table.max_leverage

    @property
    def only_isolated(self) -> bool:
        return self.margin_mode is not MarginMode.NORMAL

    @property
    def default_leverage(self) -> int:
        """Hyperliquid opens accounts at 20x cross, or the market's maximum if lower."""
        return min(20, self.max_leverage)

    def valid_price(self, px: int) -> bool:
        """Hyperliquid's tick rule (``perpbox.core.numbers.valid_price_units``)."""
        return valid_price_units(px, self._whole, self.max_sig_figs)

    def slippage_px(self, ref_px: int, is_buy: bool, slippage_bps: int) -> int:
        """The limit price of a market order: ``ref_px`` moved ``slippage_bps`` against the taker
        (up for a buy, down for a sell), on the tick rule.  Hyperliquid has no unbounded market
        order: its SDK and front end send an IOC limit at mid ± slippage (5% by default) rounded to
        5 significant figures.  Here the rounding goes towards ``ref_px`` (a buy's cap down, a
        sell's floor up), so the order never accepts more than ``slippage_bps``; a sell's floor is
        at least one price unit."""
        if is_buy:
            return round_price_sig(ref_px * (10_000 + slippage_bps) // 10_000, self.px_decimals, self.max_sig_figs)
        floor = max(1, -(-ref_px * (10_000 - slippage_bps) // 10_000))
        return round_price_sig(floor, self.px_decimals, self.max_sig_figs, up=True)

    def fee(self, notional: int, rate: int) -> int:
        """Fee in micro-USDC for ``rate`` (1e-8 units), rounded up (``core.numbers.fee_up``)."""
        return fee_up(notional, rate)

"""Liquidation policy and market controls of a market (data only; logic in ``perpbox.risk`` and
the exchange)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from perpbox.core.numbers import USD


class LiquidationStyle(str, Enum):
    """``hyperliquid``: market orders to the book (large positions in 20% slices), then the
    backstop vault takes the account over at the mark when equity < 2/3 of maintenance; the
    trader keeps what is left after a book liquidation; no clearance fee.
    ``binance``: liquidation order at the bankruptcy price with a clearance fee to the insurance
    fund, which takes over what the book cannot absorb (at the bankruptcy price); the trader
    loses the margin.  Either way ADL at the bankruptcy price socialises what no one can cover."""

    HYPERLIQUID = "hyperliquid"
    BINANCE = "binance"


@dataclass(frozen=True, slots=True)
class LiquidationParams:
    style: LiquidationStyle = LiquidationStyle.HYPERLIQUID
    partial_above_ntl: int = 100_000 * USD  # positions above this go in slices (HL: $100k)
    partial_bps: int = 2_000  # slice: 20% of the position
    cooldown_ms: int = 30_000  # after a partial slice, the next liquidation within 30 s is whole
    backstop_num: int = 2  # backstop when equity < 2/3 of maintenance margin
    backstop_den: int = 3
    clearance_fee: int = 500_000  # Binance-style clearance fee, 1e-8 of notional (0.5%)
    max_ntl_per_tick: int = 0  # cascade control: book-liquidation notional per tick; 0 = no limit
    # what the backstop vault / insurance fund does with positions it took over: 0 holds them;
    # else each tick it sends a reduce-only IOC of up to this notional (at the mark) to the book,
    # limited to ``unwind_slippage_bps`` from the mark (HLP's liquidator unwinds into the book)
    unwind_ntl_per_tick: int = 0
    unwind_slippage_bps: int = 100

    def __post_init__(self) -> None:
        if not 0 < self.partial_bps <= 10_000 or not 0 < self.backstop_num <= self.backstop_den:
            raise ValueError("partial slice within (0, 100%] and backstop ratio within (0, 1]")
        if self.unwind_ntl_per_tick < 0 or not 0 <= self.unwind_slippage_bps < 10_000:
            raise ValueError("unwind notional >= 0 and slippage within [0, 100%)")


class MarketStatus(str, Enum):
    ACTIVE = "active"
    POST_ONLY = "postOnly"  # only ALO orders and cancels
    REDUCE_ONLY = "reduceOnly"  # only reduce-only orders and cancels
    HALTED = "halted"  # no orders; positions settled at the halt


@dataclass(frozen=True, slots=True)
class MarketControls:
    """Defaults of a market's runtime controls (a HIP-3 deployer changes them with
    ``setOpenInterestCaps`` / ``haltTrading``): caps on open interest (long side) in notional at
    the mark and in lots (0 = none), and the order price band around the oracle (Hyperliquid
    rejects orders more than 80% away from the reference price)."""

    oi_cap_ntl: int = 0
    oi_cap_sz: int = 0
    price_band_bps: int = 8_000

"""Hyperliquid's perp fee tiers, as data, and how a market's own fee schedule combines with them.

Source: shared/reference/hyperliquid-api.md §6.6 and the venue's fee page (docs trading/fees:
"Fees are based on your rolling 14 day volume and are assessed at the end of each day in UTC.
Sub-account volume counts toward the master account and all sub-accounts share the same fee tier.
Vault volume is treated separately from the master account.").  Rates are integers in 1e-8 of
notional (``core.numbers.RATE_SCALE``); volumes in micro-USDC.

* **Window.**  The rates a user pays on UTC day ``D`` come from the 14 *completed* UTC days before
  it, ``D − 14 … D − 1`` (the assessment "at the end of each day"); today's own trading counts from
  tomorrow.  A day is ``ts // DAY_MS`` of the command's timestamp.
* **Volume.**  The weighted volume is perps + 2 × spot; perpbox models no spot, so it is the perp
  notional traded, taker (``cross``) plus maker (``add``).  A sub-account's volume counts toward its
  master and every account of the group pays the group's tier (master + subs, summed); any other
  account (a vault, the backstop liquidator) stands alone.
* **VIP tiers** (``VIP_TIERS``): more than the cutoff of 14-day volume (the docs' "> $5M").
* **Maker rebates** (``MM_TIERS``): more than 0.5 % / 1.5 % / 3 % of the exchange's 14-day maker
  volume — every fill has exactly one maker, so that is the exchange's 14-day volume — gives a
  maker fee of −0.001 % / −0.002 % / −0.003 % instead of the VIP maker rate.  The group's share is
  its maker volume over the exchange's, over the same 14 days.
* **A market's own schedule** (``MarketSpec.fees``, e.g. a HIP-3 deployer's fee scale) is its fee at
  tier 0; a user in another tier pays it scaled by ``tier rate / tier-0 rate``, rounded up (so a
  rebate rounds toward zero).  That is how HIP-3 fees combine with tiers: trade.xyz's standard fees
  are 2× the validator perps' at every tier (0.090%/0.030% at tier 0, 0.080%/0.024% at tier 1) and
  its growth-mode table is 0.2× (0.0090%/0.0030%, 0.0080%/0.0024%), "rebates … also reduced by
  ≥90%" (docs.trade.xyz perp-mechanics/fees; reference §6.6: deployer fee share, growth mode).  At
  tier 0 a market's rates are used unchanged; a market configured with a maker fee ≤ 0 keeps it at
  every tier (a configured rebate is not scaled by a tier's).
* **Rebates** come out of the fill's own taker fee (the fee account takes the taker's fee and pays
  the maker's rebate in the same ``Fill``); ``Exchange._match`` caps a rebate at that taker fee,
  which only binds on a market whose maker rate is large against its taker rate, so the fee account
  never pays out more than the fill brought in.  Money is conserved to the unit either way.

Not modelled: staking and referral discounts, fee trials, aligned quote assets, growth mode's cut of
volume credit.
"""

from __future__ import annotations

from typing import Final

from perpbox.core.numbers import USD, ceil_div

DAY_MS: Final = 86_400_000
WINDOW_DAYS: Final = 14  # the completed UTC days before today that set today's rates

# (14-day volume the tier needs more than, micro-USDC; taker rate; maker rate), rates in 1e-8
VIP_TIERS: Final[tuple[tuple[int, int, int], ...]] = (
    (0, 45_000, 15_000),  # tier 0: 0.045% / 0.015%
    (5_000_000 * USD, 40_000, 12_000),  # > $5M
    (25_000_000 * USD, 35_000, 8_000),  # > $25M
    (100_000_000 * USD, 30_000, 4_000),  # > $100M
    (500_000_000 * USD, 28_000, 0),  # > $500M
    (2_000_000_000 * USD, 26_000, 0),  # > $2B
    (7_000_000_000 * USD, 24_000, 0),  # > $7B
)
# (14-day maker-volume share the tier needs more than, per mille of the exchange's; maker rate 1e-8)
MM_TIERS: Final[tuple[tuple[int, int], ...]] = (
    (5, -1_000),  # > 0.5%: -0.001%
    (15, -2_000),  # > 1.5%: -0.002%
    (30, -3_000),  # > 3%: -0.003%
)
# spot (taker, maker) by VIP tier, 1e-8: reported by ``userFees`` only (perpbox trades no spot); tier 0 and 6
# from reference §6.6, the rest from the venue's fee page as mirrored by third-party docs
SPOT_TIERS: Final[tuple[tuple[int, int], ...]] = (
    (70_000, 40_000), (60_000, 30_000), (50_000, 20_000), (40_000, 10_000), (35_000, 0), (30_000, 0), (25_000, 0))
TAKER_RATES: Final[tuple[int, ...]] = tuple(t for _, t, _ in VIP_TIERS)  # by taker index
MAKER_RATES: Final[tuple[int, ...]] = tuple(m for _, _, m in VIP_TIERS) + tuple(r for _, r in MM_TIERS)
BASE_TAKER: Final = VIP_TIERS[0][1]
BASE_MAKER: Final = VIP_TIERS[0][2]


def fee_tier(volume: int, maker_volume: int, exchange_volume: int) -> tuple[int, int]:
    """(taker index into ``TAKER_RATES``, maker index into ``MAKER_RATES``) for a fee group with
    ``volume`` (taker + maker) and ``maker_volume`` over the window, on an exchange that traded
    ``exchange_volume`` in it.  A maker index past the VIP tiers is a rebate tier."""
    taker = 0
    for i in range(1, len(VIP_TIERS)):
        if volume > VIP_TIERS[i][0]:
            taker = i
    maker = taker
    if exchange_volume > 0:
        for j, (per_mille, _) in enumerate(MM_TIERS):
            if maker_volume * 1000 > per_mille * exchange_volume:
                maker = len(VIP_TIERS) + j
    return taker, maker


def scaled_rate(market_rate: int, tier_rate: int, base_rate: int) -> int:
    """A tier's rate on a market whose own (tier-0) rate is ``market_rate`` (see the module
    docstring): unchanged at tier 0 and on a market with a rate ≤ 0, the tier's own on a market at
    the base rate, else ``market_rate × tier_rate / base_rate`` rounded up."""
    if tier_rate == base_rate or market_rate <= 0:
        return market_rate
    if market_rate == base_rate:
        return tier_rate
    return ceil_div(market_rate * tier_rate, base_rate)


def market_rates(taker: int, maker: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A market's (taker rates, maker rates), indexed like ``TAKER_RATES`` and ``MAKER_RATES``."""
    return (tuple(scaled_rate(taker, t, BASE_TAKER) for t in TAKER_RATES),
            tuple(scaled_rate(maker, m, BASE_MAKER) for m in MAKER_RATES))

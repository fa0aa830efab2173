"""MarginTable: Hyperliquid's worked examples (perp-mechanics.md §2.3, hyperliquid-api.md §6.3),
rounding, leverage limits, validation, and properties over random tables."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from math import ceil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpbox.core.numbers import USD
from perpbox.market.margin import MarginTable, MarginTier

M = 1_000_000  # one million (USD), for readability

# Mainnet BTC: 0-150M at 40x (mmr 1.25%), >150M at 20x (mmr 2.5%).
BTC = MarginTable.hyperliquid([(0, 40), (150 * M, 20)], "BTC")
# Mainnet ETH: 0-100M at 25x (mmr 2%), >100M at 15x (mmr 1/30, not a finite decimal).
ETH = MarginTable.hyperliquid([(0, 25), (100 * M, 15)], "ETH")
# Testnet BTC: 0-10k 40x, 10k-50k 25x, >50k 10x.
BTC_TESTNET = MarginTable.hyperliquid([(0, 40), (10_000, 25), (50_000, 10)], "BTC testnet")


# -- worked examples -----------------------------------------------------------------------------
def test_btc_tiers_and_rates():
    assert [t.lower_bound for t in BTC.tiers] == [0, 150 * M * USD]
    assert [t.mmr for t in BTC.tiers] == [Fraction(125, 10_000), Fraction(25, 1_000)]
    assert BTC.max_leverage == 40
    assert BTC.description == "BTC"


def test_btc_deduction():
    # deduction(1) = 150M * (2.5% - 1.25%) = 1.875M USD
    assert BTC.deductions == (0, 1_875_000 * USD)
    assert BTC.maintenance_amount(0) == 0
    assert BTC.maintenance_amount(1) == Fraction(1_875_000 * USD)


def test_btc_200m_position():
    # 200M * 2.5% - 1.875M = 3.125M = 150M * 1.25% + 50M * 2.5%
    assert BTC.maintenance_margin(200 * M * USD) == 3_125_000 * USD


def test_btc_continuity_at_150m():
    b = 150 * M * USD
    assert BTC.tier_index(b - 1) == 0 and BTC.tier_index(b) == 1
    lower_formula = b * Fraction(1, 80)
    upper_formula = b * Fraction(1, 40) - BTC.deductions[1]
    assert lower_formula == upper_formula == 1_875_000 * USD
    assert BTC.maintenance_margin(b) == 1_875_000 * USD
    # one micro below: 1.875e12 - 1/80, rounded up -> unchanged
    assert BTC.maintenance_margin(b - 1) == 1_875_000 * USD
    # one micro above: 1.875e12 + 1/40, rounded up
    assert BTC.maintenance_margin(b + 1) == 1_875_000 * USD + 1


def test_eth_fractional_deduction():
    # deduction(1) = 100M * (1/30 - 1/50) = 4M/3 USD: not a whole number of micro-USDC
    assert ETH.deductions[1] == Fraction(4 * M * USD, 3)
    # 200M: 200M/30 - 4M/3 = 16M/3 USD = 5,333,333.333333... -> rounded up
    assert ETH.maintenance_margin(200 * M * USD) == 5_333_333_333_334
    assert ETH.maintenance_margin(100 * M * USD) == 2 * M * USD  # 100M * 2%
    assert ETH.maintenance_margin(100 * M * USD - 1) == 2 * M * USD  # ceil(2e12 - 0.02)


def test_testnet_three_tiers():
    assert BTC_TESTNET.deductions == (0, 75 * USD, 1_575 * USD)
    # 60k: 10k*1.25% + 40k*2% + 10k*5% = 125 + 800 + 500 = 1425 = 60k*5% - 1575
    assert BTC_TESTNET.maintenance_margin(60_000 * USD) == 1_425 * USD
    assert BTC_TESTNET.maintenance_margin(10_000 * USD) == 125 * USD
    assert BTC_TESTNET.maintenance_margin(50_000 * USD) == 925 * USD


def test_binance_style_brackets():
    t = MarginTable.from_brackets([("0", 125, "0.004"), ("50000", 100, "0.005"), ("250000", 50, "0.01")])
    assert [x.lower_bound for x in t.tiers] == [0, 50_000 * USD, 250_000 * USD]
    assert [x.mmr for x in t.tiers] == [Fraction(4, 1000), Fraction(5, 1000), Fraction(1, 100)]
    # Binance cum: 0, 50000*0.001 = 50, 50 + 250000*0.005 = 1300
    assert [t.maintenance_amount(i) for i in range(3)] == [0, 50 * USD, 1_300 * USD]
    assert t.maintenance_margin(300_000 * USD) == 3_000 * USD - 1_300 * USD
    # integer floors are accepted too
    assert (
        MarginTable.from_brackets([(0, 20, "0.025"), (1000, 10, "0.05")]).tiers[1].lower_bound == 1000 * USD
    )


# -- rounding -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("notional", "expected"),
    [
        (0, 0),
        (1, 1),  # 1/80 -> 1
        (80, 1),  # exactly 1
        (81, 2),  # 1.0125 -> 2
        (100 * M + 1, 1_250_001),  # 1,250,000.0125 -> 1,250,001
        (200 * M * USD + 1, 3_125_000 * USD + 1),  # + 1/40 in the upper tier
    ],
)
def test_maintenance_margin_rounds_up_by_less_than_one_unit(notional, expected):
    mm = BTC.maintenance_margin(notional)
    assert mm == expected
    i = BTC.tier_index(notional)
    exact = notional * BTC.tiers[i].mmr - BTC.deductions[i]
    assert 0 <= mm - exact < 1


# -- queries --------------------------------------------------------------------------------------
def test_tier_index():
    assert BTC.tier_index(0) == 0
    assert BTC.tier_index(150 * M * USD - 1) == 0
    assert BTC.tier_index(150 * M * USD) == 1
    assert BTC.tier_index(10**30) == 1
    assert BTC_TESTNET.tier_index(9_999 * USD) == 0
    assert BTC_TESTNET.tier_index(10_000 * USD) == 1
    assert BTC_TESTNET.tier_index(50_000 * USD - 1) == 1
    assert BTC_TESTNET.tier_index(50_000 * USD) == 2


def test_max_notional_at_leverage():
    # Leverage above the lower tier's maximum is limited to the tiers that allow it.
    # NB: the returned value is the next tier's lower bound, where tier_index already reports the
    # lower-leverage tier; callers must treat it as an exclusive limit (or "must not exceed").
    for lev in (21, 30, 40):
        assert BTC.max_notional_at_leverage(lev) == 150 * M * USD
    for lev in (1, 10, 20):
        assert BTC.max_notional_at_leverage(lev) is None
    assert BTC.max_notional_at_leverage(41) == 0  # above the market's maximum: nothing allowed
    assert BTC_TESTNET.max_notional_at_leverage(40) == 10_000 * USD
    assert BTC_TESTNET.max_notional_at_leverage(26) == 10_000 * USD
    assert BTC_TESTNET.max_notional_at_leverage(25) == 50_000 * USD
    assert BTC_TESTNET.max_notional_at_leverage(11) == 50_000 * USD
    assert BTC_TESTNET.max_notional_at_leverage(10) is None


def test_single():
    t = MarginTable.single(50)
    assert len(t.tiers) == 1
    assert t.tiers[0] == MarginTier(0, 50, Fraction(1, 100))
    assert t.max_leverage == 50
    assert t.deductions == (0,)
    assert t.maintenance_margin(10_000 * USD) == 100 * USD
    assert t.maintenance_margin(101) == 2  # 1.01 -> 2
    assert t.max_notional_at_leverage(50) is None
    assert t.max_notional_at_leverage(51) == 0
    assert t.tier_index(10**20) == 0
    assert t == MarginTable.hyperliquid([(0, 50)])


def test_table_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        BTC.tiers = ()  # type: ignore[misc]


# -- validation -----------------------------------------------------------------------------------
def test_empty_table_refused():
    with pytest.raises(ValueError):
        MarginTable(())


def test_first_tier_must_start_at_zero():
    with pytest.raises(ValueError):
        MarginTable.hyperliquid([(1, 40), (100, 20)])
    with pytest.raises(ValueError):
        MarginTable.from_brackets([("5000", 50, "0.01")])


@pytest.mark.parametrize(
    "tiers",
    [
        [(0, 40), (200, 20), (100, 10)],  # unsorted
        [(0, 40), (100, 20), (100, 10)],  # duplicate bound
        [(0, 40), (0, 20)],  # duplicate zero
    ],
)
def test_bounds_must_be_strictly_increasing(tiers):
    with pytest.raises(ValueError):
        MarginTable.hyperliquid(tiers)


@pytest.mark.parametrize(
    "tier",
    [
        MarginTier(0, 0, Fraction(1, 100)),  # leverage 0
        MarginTier(0, -5, Fraction(1, 100)),  # negative leverage
        MarginTier(0, 10, Fraction(0)),  # zero maintenance rate
        MarginTier(0, 10, Fraction(-1, 100)),  # negative rate
        MarginTier(0, 10, Fraction(1)),  # rate of 100%
        MarginTier(0, 10, Fraction(3, 2)),  # rate above 100%
    ],
)
def test_bad_tier_refused(tier):
    with pytest.raises(ValueError):
        MarginTable((tier,))


def test_bad_leverage_refused_by_hyperliquid_constructor():
    with pytest.raises(ValueError):
        MarginTable.hyperliquid([(0, -1)])
    with pytest.raises(ValueError):
        MarginTable.hyperliquid([(0, 40), (100, -20)])


def test_zero_leverage_refused_by_hyperliquid_constructor_with_value_error():
    with pytest.raises(ValueError):
        MarginTable.hyperliquid([(0, 0)])


def test_bad_rates_refused_by_bracket_constructor():
    with pytest.raises(ValueError):
        MarginTable.from_brackets([("0", 10, "0")])
    with pytest.raises(ValueError):
        MarginTable.from_brackets([("0", 10, "1")])
    with pytest.raises(ValueError):
        MarginTable.from_brackets([("0", 0, "0.01")])


# -- properties -----------------------------------------------------------------------------------
@st.composite
def tables(draw) -> MarginTable:
    """Random valid tables: bounds strictly increasing from 0, rates non-decreasing in (0, 1),
    leverages non-increasing.  Either Hyperliquid-style or with arbitrary rational rates."""
    n = draw(st.integers(1, 6))
    bounds = [0, *sorted(draw(st.sets(st.integers(1, 10 ** 15), min_size=n - 1, max_size=n - 1)))]
    if draw(st.booleans()):
        levs = sorted(draw(st.lists(st.integers(1, 100), min_size=n, max_size=n)), reverse=True)
        return MarginTable(tuple(MarginTier(b, lev, Fraction(1, 2 * lev)) for b, lev in zip(bounds, levs)))
    den = draw(st.sampled_from([100, 10_000, 10**8, 3, 7 * 11 * 13, 30_000]))
    nums = sorted(draw(st.lists(st.integers(1, den - 1), min_size=n, max_size=n)))
    levs = sorted(draw(st.lists(st.integers(1, 125), min_size=n, max_size=n)), reverse=True)
    return MarginTable(tuple(MarginTier(b, lev, Fraction(k, den)) for b, lev, k in zip(bounds, levs, nums)))


def _piecewise_mm(table: MarginTable, notional: int) -> Fraction:
    """Independent oracle: integrate the marginal rate tier by tier (no deductions)."""
    total = Fraction(0)
    tiers = table.tiers
    for i, t in enumerate(tiers):
        hi = tiers[i + 1].lower_bound if i + 1 < len(tiers) else None
        if notional <= t.lower_bound:
            break
        top = notional if hi is None else min(notional, hi)
        total += (top - t.lower_bound) * t.mmr
    return total


@st.composite
def table_and_notional(draw):
    table = draw(tables())
    top = table.tiers[-1].lower_bound
    near_bound = st.builds(
        lambda b, d: max(0, b + d),
        st.sampled_from([t.lower_bound for t in table.tiers]),
        st.integers(-3, 3),
    )
    notional = draw(st.one_of(st.integers(0, 2 * top + 10**9), near_bound))
    return table, notional


@settings(max_examples=400)
@given(table_and_notional())
def test_mm_matches_piecewise_oracle_and_is_continuous(arg):
    table, n = arg
    mm = table.maintenance_margin(n)
    assert mm == ceil(_piecewise_mm(table, n))
    i = table.tier_index(n)
    assert table.tiers[i].lower_bound <= n
    assert i + 1 == len(table.tiers) or n < table.tiers[i + 1].lower_bound
    step = table.maintenance_margin(n + 1) - mm
    max_mmr = max(t.mmr for t in table.tiers)
    assert 0 <= step <= 1  # exact slope < 1, so the ceiling moves by at most one unit
    assert abs(step) <= 1 + ceil(max_mmr)


@settings(max_examples=300)
@given(tables(), st.integers(0, 10**16), st.integers(0, 10**16))
def test_mm_is_non_decreasing(table, a, b):
    lo, hi = min(a, b), max(a, b)
    assert 0 <= table.maintenance_margin(lo) <= table.maintenance_margin(hi)


@settings(max_examples=200)
@given(tables())
def test_deductions_make_every_boundary_continuous(table):
    assert table.maintenance_margin(0) == 0
    for k in range(1, len(table.tiers)):
        b = table.tiers[k].lower_bound
        prev, cur = table.tiers[k - 1], table.tiers[k]
        assert b * prev.mmr - table.deductions[k - 1] == b * cur.mmr - table.deductions[k]
        assert table.deductions[k] >= table.deductions[k - 1]

"""Pricing: integer EMA, impact prices and the local mark, oracle aggregation, off-hours oracle,
session calendars, and ``pricer.tick``/``push`` for every oracle kind and mark policy.

Units in this file (``sz_decimals = 2``): size in lots of 0.01, price in units of 1e-4 USD, so
``1_000_000`` is $100.00 and ``px * sz`` is micro-USDC.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from fractions import Fraction

import msgspec
import pytest

from perpbox.book.book import OrderBook
from perpbox.book.order import Order
from perpbox.core.numbers import USD
from perpbox.market.funding import FundingParams, PremiumFormula
from perpbox.market.oracle import (
    MarkPolicy,
    OffHours,
    OnInsufficient,
    OracleDefinition,
    OracleKind,
    SessionCalendar,
    minute_of_week,
)
from perpbox.pricing import pricer
from perpbox.pricing.ema import EXP_SCALE, ema_update, ema_value, exp_neg
from perpbox.pricing.funding import PREMIUM_SCALE
from perpbox.pricing.impact import impact_price, local_mark
from perpbox.pricing.oracle import aggregate, fresh_quotes, median, off_hours_advance, off_hours_step, weighted_median
from perpbox.pricing.pricer import PriceState

# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def ts(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> int:
    """Milliseconds since the epoch of a UTC wall-clock time."""
    return int(datetime(y, mo, d, h, mi, s, tzinfo=UTC).timestamp()) * 1000


MON_NOON = ts(2024, 1, 8, 12)  # Monday 2024-01-08 12:00 UTC
T0 = MON_NOON


def make_book(bids: Sequence[tuple[int, int]] = (), asks: Sequence[tuple[int, int]] = ()) -> OrderBook:
    """A book with one order per ``(px, size in lots)`` level."""
    book = OrderBook(0)
    oid = 1
    for is_buy, levels in ((True, bids), (False, asks)):
        for px, sz in levels:
            book.add(Order(oid, "mm", 0, is_buy, px, sz, 0))
            oid += 1
    return book


def two_sided(bid: int, ask: int, sz: int = 100_000) -> OrderBook:
    return make_book(bids=[(bid, sz)], asks=[(ask, sz)])


def quotes(now: int, **pxs: int) -> dict[str, tuple[int, int]]:
    """Fresh quotes (timestamped ``now``) by source name."""
    return {name: (px, now) for name, px in pxs.items()}


def exact_exp_floor(num: int, den: int) -> int:
    with localcontext() as ctx:
        ctx.prec = 60
        return int((Decimal(-num) / Decimal(den)).exp() * Decimal(EXP_SCALE))


# ------------------------------------------------------------------------------------------------
# ema
# ------------------------------------------------------------------------------------------------


def test_exp_neg_of_one_matches_e_inverse_to_within_one_unit() -> None:
    assert exact_exp_floor(1, 1) == 367_879_441_171_442_321
    assert abs(exp_neg(1, 1) - 367_879_441_171_442_321) <= 1


def test_exp_neg_of_two_hundredths_matches_to_within_one_unit() -> None:
    assert exact_exp_floor(2, 100) == 980_198_673_306_755_302
    assert abs(exp_neg(2, 100) - 980_198_673_306_755_302) <= 1
    # the same ratio given in milliseconds (3 s over 150 s)
    assert abs(exp_neg(3_000, 150_000) - 980_198_673_306_755_302) <= 1


@pytest.mark.parametrize("num,den", [(1, 10), (6_000, 150_000), (60_000, 3_600_000), (7, 3), (30, 1)])
def test_exp_neg_matches_high_precision_reference(num: int, den: int) -> None:
    assert abs(exp_neg(num, den) - exact_exp_floor(num, den)) <= 1


def test_exp_neg_of_zero_is_exactly_one_and_huge_arguments_are_zero() -> None:
    assert exp_neg(0, 1) == EXP_SCALE
    assert exp_neg(0, 150_000) == EXP_SCALE
    assert exp_neg(46, 1) == 0


def test_exp_neg_is_deterministic_and_decreasing() -> None:
    first = exp_neg(12_345, 150_000)
    assert all(exp_neg(12_345, 150_000) == first for _ in range(5))
    assert exp_neg(1, 100) > exp_neg(2, 100) > exp_neg(3, 100)


def test_exp_neg_rejects_negative_argument_and_zero_denominator() -> None:
    with pytest.raises(ValueError):
        exp_neg(-1, 10)
    with pytest.raises(ValueError):
        exp_neg(1, 0)


def test_ema_value_is_none_before_first_sample_and_update_ignores_non_positive_dt() -> None:
    assert ema_value(0, 0) is None
    assert ema_update(123, 456, 999, 0, 150_000) == (123, 456)
    assert ema_update(123, 456, 999, -5, 150_000) == (123, 456)




def test_ema_of_a_constant_sample_is_that_sample_at_every_step() -> None:
    num, den = 0, 0
    for _ in range(300):
        num, den = ema_update(num, den, 12_345, 3_000, 150_000)
        assert ema_value(num, den) == 12_345  # fails at step 2: 73_336_657 / 5_940 → 12_346


def test_ema_converges_to_a_new_constant_after_many_time_constants() -> None:
    num, den = 0, 0
    for _ in range(50):
        num, den = ema_update(num, den, 0, 3_000, 150_000)
    # 10 τ of the new value: the old samples (0) keep ≈ 3e-5 of the weight → ≈ 999_971;
    # an average of samples in [0, 1_000_000] can never exceed 1_000_000 (the code gives 1_000_285)
    for _ in range(500):
        num, den = ema_update(num, den, 1_000_000, 3_000, 150_000)
    assert 999_900 <= ema_value(num, den) <= 1_000_000


def test_ema_of_a_constant_sample_stays_near_it() -> None:
    """Within 5 bp of the sample, and converging."""
    num, den = 0, 0
    for _ in range(300):
        num, den = ema_update(num, den, 1_000_000, 3_000, 150_000)
        assert abs(ema_value(num, den) - 1_000_000) <= 500


def test_ema_after_one_sample_is_that_sample() -> None:
    num, den = ema_update(0, 0, 1_000_000, 3_000, 150_000)
    assert ema_value(num, den) == 1_000_000


def test_ema_follows_hyperliquid_formula_for_two_steps_with_tau_150s() -> None:
    # HL: num = num·e^(−t/τ) + s·t, den = den·e^(−t/τ) + t, ema = num / den, τ = 150 s
    # step 1: s = 1_000_000 held 3 s: num = 3e9, den = 3_000 → 1_000_000
    num, den = ema_update(0, 0, 1_000_000, 3_000, 150_000)
    assert ema_value(num, den) == 1_000_000
    # step 2: s = 4_000_000 held 6 s, e^(−6/150) = 0.960789439152323209...
    #   num = 3e9 · 0.9607894... + 4e6 · 6_000 = 2_882_368_317.46 + 24_000_000_000
    #   den = 3_000 · 0.9607894... + 6_000     = 2_882.3683 + 6_000
    #   ema = 26_882_368_317.46 / 8_882.3683 = 3_026_486.56 → 3_026_487
    # (the code floors den to 8_882 and gives 3_026_558)
    num, den = ema_update(num, den, 4_000_000, 6_000, 150_000)
    assert abs(ema_value(num, den) - 3_026_487) <= 1


# ------------------------------------------------------------------------------------------------
# impact prices and local mark
# ------------------------------------------------------------------------------------------------

IMPACT_20K = 20_000 * USD


def test_impact_ask_for_20k_spanning_two_levels_is_the_exact_average() -> None:
    # asks: $100.00 × 100 units ($10,000) then $101.00 × 200 units ($20,200)
    book = make_book(asks=[(1_000_000, 10_000), (1_010_000, 20_000), (1_050_000, 50_000)])
    # $10,000 fills 10_000 lots at 100; $10,000 more buys 10^10 / 1_010_000 lots at 101
    size = 10_000 + Fraction(10**10, 1_010_000)
    assert impact_price(book, True, IMPACT_20K) == Fraction(IMPACT_20K) / size == Fraction(202_000_000, 201)
    # ≈ $100.4975...
    assert int(impact_price(book, True, IMPACT_20K)) == 1_004_975


def test_impact_bid_walks_bids_from_the_best_down() -> None:
    book = make_book(bids=[(990_000, 5_000), (1_000_000, 10_000), (980_000, 100_000)])
    # $10,000 at 100.00, then $4,950 at 99.00 (5_000 lots, the whole level), then $5,050 at 98.00
    size = 10_000 + 5_000 + Fraction(5_050 * USD, 980_000)
    assert impact_price(book, False, IMPACT_20K) == Fraction(IMPACT_20K) / size


def test_impact_price_is_the_level_price_when_the_best_level_covers_it() -> None:
    book = make_book(asks=[(1_000_000, 20_000)])  # exactly $20,000
    assert impact_price(book, True, IMPACT_20K) == 1_000_000


def test_impact_price_is_none_when_depth_is_insufficient() -> None:
    book = make_book(bids=[(1_000_000, 10_000)], asks=[(1_010_000, 19_000)])  # $10,000 / $19,190
    assert impact_price(book, False, IMPACT_20K) is None
    assert impact_price(book, True, IMPACT_20K) is None
    assert impact_price(OrderBook(0), True, IMPACT_20K) is None


def test_local_mark_is_median_of_bid_ask_last() -> None:
    book = two_sided(1_000_000, 1_002_000)
    assert local_mark(book, 1_001_500) == 1_001_500  # last inside the spread
    assert local_mark(book, 1_005_000) == 1_002_000  # last above the ask: the ask
    assert local_mark(book, 990_000) == 1_000_000  # last below the bid: the bid


def test_local_mark_without_a_trade_is_the_mid_rounded_down() -> None:
    assert local_mark(two_sided(1_000_000, 1_002_001), 0) == 1_001_000


def test_local_mark_with_a_one_sided_book_clamps_the_last_trade_into_it() -> None:
    bids_only = make_book(bids=[(1_000_000, 10)])
    assert local_mark(bids_only, 990_000) == 1_000_000
    assert local_mark(bids_only, 1_010_000) == 1_010_000
    asks_only = make_book(asks=[(1_000_000, 10)])
    assert local_mark(asks_only, 1_010_000) == 1_000_000
    assert local_mark(asks_only, 990_000) == 990_000


def test_local_mark_is_none_without_a_two_sided_book_or_a_trade() -> None:
    assert local_mark(OrderBook(0), 0) is None
    assert local_mark(make_book(bids=[(1_000_000, 10)]), 0) is None
    assert local_mark(make_book(asks=[(1_000_000, 10)]), 0) is None
    assert local_mark(OrderBook(0), 1_234_000) == 1_234_000  # an empty book with a trade: the trade


# ------------------------------------------------------------------------------------------------
# oracle aggregation
# ------------------------------------------------------------------------------------------------

HL = OracleDefinition.hyperliquid_validators()


def test_median_odd_and_even() -> None:
    assert median([3, 1, 2]) == 2
    assert median([1, 2, 3, 6]) == 2  # (2 + 3) // 2
    with pytest.raises(ValueError):
        median([])


def test_weighted_median_with_hyperliquid_validator_weights() -> None:
    prices = {"binance": 1_003_000, "okx": 1_001_000, "bybit": 1_002_000, "kraken": 1_000_000,
              "kucoin": 1_000_000, "gate": 1_000_000, "mexc": 1_000_000, "hyperliquid": 1_000_000}
    pairs = [(prices[name], w) for name, w in HL.sources]
    assert sum(w for _, w in pairs) == 12
    # sorted: 1_000_000 ×5 (cum 5), okx 1_001_000 (cum 7 ≥ 6) → 1_001_000
    assert weighted_median(pairs) == 1_001_000


def test_weighted_median_binance_weight_decides_when_others_split() -> None:
    # binance (3) at 101, okx (2) + bybit (2) at 100, five weight-1 sources at 102 (total 12)
    pairs = [(1_010_000, 3), (1_000_000, 2), (1_000_000, 2)] + [(1_020_000, 1)] * 5
    # cumulative: 100 → 4, 101 → 7 ≥ 6
    assert weighted_median(pairs) == 1_010_000


def test_weighted_median_is_the_lower_one_at_an_exact_half() -> None:
    assert weighted_median([(200, 1), (100, 1)]) == 100
    assert weighted_median([(100, 3), (200, 2), (300, 1)]) == 100  # 3 of 6 is exactly half
    with pytest.raises(ValueError):
        weighted_median([])


def test_fresh_quotes_drops_stale_and_future_dated_sources() -> None:
    now = 100_000
    q = {
        "binance": (1_000_000, 90_000),  # exactly max_age old: kept
        "okx": (1_001_000, 89_999),  # 1 ms too old: dropped
        "bybit": (1_002_000, 100_001),  # from the future: dropped
        "kraken": (1_003_000, now),
        "kucoin": (0, now),  # no price: dropped
    }
    assert fresh_quotes(HL.sources, q, now, 10_000) == [(1_000_000, 3), (1_003_000, 1)]


def test_fresh_quotes_ignores_unconfigured_sources() -> None:
    q = {"binance": (1_000_000, 5), "somewhere": (2_000_000, 5)}
    assert fresh_quotes((("binance", 3),), q, 5, 10_000) == [(1_000_000, 3)]


def test_aggregate_drops_a_source_more_than_5pct_from_the_median() -> None:
    fresh = [(1_000_000, 1), (1_010_000, 1), (1_020_000, 1), (500_000, 1)]
    # first median (lower): sorted 50, 100, 101, 102 → 100.00; 50.00 is 50% off → dropped
    assert weighted_median(fresh) == 1_000_000
    assert aggregate(fresh, 500, 1) == 1_010_000  # median of 100, 101, 102


def test_aggregate_keeps_a_source_exactly_5pct_away() -> None:
    fresh = [(1_000_000, 3), (1_050_000, 1), (1_050_001, 1)]
    # median 1_000_000; 1_050_000 is exactly 5% (kept), 1_050_001 just over (dropped)
    assert aggregate(fresh, 500, 2) == 1_000_000
    assert aggregate(fresh, 500, 3) is None  # only two left after the drop


def test_aggregate_returns_none_below_min_sources() -> None:
    assert aggregate([(1_000_000, 3), (1_001_000, 2)], 500, 3) is None
    assert aggregate([], 500, 1) is None
    assert aggregate([(1_000_000, 3), (1_001_000, 2), (999_000, 1)], 500, 3) == 1_000_000


def test_off_hours_step_moves_toward_target_by_one_minus_beta() -> None:
    rules = OffHours(ema_tau_ms=3_600_000, band_bps=500)
    beta = exp_neg(60_000, 3_600_000)  # e^(−1/60) = 0.98347145382...
    assert abs(beta - 983_471_453_821_617_489) <= 1
    # up: 10_000 · (1 − β) = 165.285... → 165
    assert off_hours_step(1_000_000, 1_010_000, 60_000, rules, 0) == 1_000_165
    # down: −165.285... truncated toward the current oracle → −165
    assert off_hours_step(1_000_000, 990_000, 60_000, rules, 0) == 999_835


def test_off_hours_step_caps_dt_at_a_tenth_of_tau() -> None:
    rules = OffHours(ema_tau_ms=3_600_000, band_bps=500)
    # β = e^(−0.1): 10_000 · 0.0951625... = 951.6 → 951, for any Δt ≥ τ/10 = 6 min
    assert off_hours_step(1_000_000, 1_010_000, 360_000, rules, 0) == 1_000_951
    assert off_hours_step(1_000_000, 1_010_000, 86_400_000, rules, 0) == 1_000_951


def test_off_hours_oracle_carries_what_each_one_second_step_rounds_off() -> None:
    """A book 1,000 price units above the oracle, τ = 30 min, one tick a second: each step's move
    (1000 · (1 − e^(−1/1800)) ≈ 0.556 units) rounds to nothing, so without the carry the oracle would
    never move.  After 30 minutes the exact EMA has moved 1000 · (1 − e^(−1)) = 632.12 units."""
    rules = OffHours(ema_tau_ms=1_800_000, band_bps=500)
    oracle, carry = 1_000_000, 0
    for _ in range(1800):
        oracle, carry = off_hours_advance(oracle, carry, 1_001_000, 1_000, rules, 0)
    assert 631 <= oracle - 1_000_000 <= 632
    assert off_hours_step(1_000_000, 1_001_000, 1_000, rules, 0) == 1_000_000  # one step alone: nothing


def test_off_hours_carry_is_dropped_when_the_band_binds() -> None:
    rules = OffHours(ema_tau_ms=1_800_000, band_bps=100)  # ±1% of the close at 1,000,000
    oracle, carry = off_hours_advance(1_009_999, 0, 1_500_000, 1_000, rules, 1_000_000)
    assert (oracle, carry) == (1_010_000, 0)


def test_off_hours_step_without_target_or_time_does_not_move() -> None:
    rules = OffHours()
    assert off_hours_step(1_000_000, None, 60_000, rules, 0) == 1_000_000
    assert off_hours_step(1_000_000, 2_000_000, 0, rules, 0) == 1_000_000


def test_off_hours_step_is_clamped_to_the_discovery_band_around_close() -> None:
    rules = OffHours(ema_tau_ms=3_600_000, band_bps=500)
    close = 1_000_000  # band [950_000, 1_050_000]
    assert off_hours_step(1_049_900, 3_000_000, 360_000, rules, close) == 1_050_000
    assert off_hours_step(950_100, 100_000, 360_000, rules, close) == 950_000
    # an oracle already outside the band is brought back even without a target
    assert off_hours_step(1_200_000, None, 60_000, rules, close) == 1_050_000
    # inside the band the band does nothing
    assert off_hours_step(1_000_000, 1_010_000, 60_000, rules, close) == 1_000_165


# ------------------------------------------------------------------------------------------------
# session calendars
# ------------------------------------------------------------------------------------------------


def test_minute_of_week_counts_from_monday_midnight_utc() -> None:
    assert minute_of_week(ts(2024, 1, 8)) == 0  # Monday
    assert minute_of_week(ts(2024, 1, 14, 23, 59)) == 7 * 1440 - 1  # Sunday 23:59


@pytest.mark.parametrize("when,is_open", [
    (ts(2024, 1, 8, 12), True),  # Monday noon
    (ts(2024, 1, 8, 0), True),  # Monday 00:00 (the Sunday session continues)
    (ts(2024, 1, 13, 12), False),  # Saturday
    (ts(2024, 1, 12, 21, 59), True),  # Friday just before the close
    (ts(2024, 1, 12, 22), False),  # Friday close (end exclusive)
    (ts(2024, 1, 12, 22, 30), False),  # Friday 22:30
    (ts(2024, 1, 14, 22, 59), False),  # Sunday before the open
    (ts(2024, 1, 14, 23), True),  # Sunday open
    (ts(2024, 1, 14, 23, 30), True),  # Sunday 23:30
    (ts(2024, 1, 9, 22), False),  # Tuesday daily break
    (ts(2024, 1, 9, 22, 30), False),
    (ts(2024, 1, 9, 23), True),  # after the break
    (ts(2024, 1, 8, 22, 15), False),  # Monday break too
    (ts(2024, 1, 11, 22, 45), False),  # Thursday break
])
def test_comex_metals_session(when: int, is_open: bool) -> None:
    assert SessionCalendar.comex_metals().is_open(when) is is_open


@pytest.mark.parametrize("when,is_open", [
    (ts(2024, 1, 8, 14, 29), False),
    (ts(2024, 1, 8, 14, 30), True),
    (ts(2024, 1, 10, 18), True),
    (ts(2024, 1, 12, 20, 59), True),
    (ts(2024, 1, 12, 21), False),
    (ts(2024, 1, 13, 15), False),  # Saturday
    (ts(2024, 1, 14, 15), False),  # Sunday
])
def test_us_equities_session(when: int, is_open: bool) -> None:
    assert SessionCalendar.us_equities().is_open(when) is is_open


def test_closed_days_close_a_holiday_but_not_the_next_day() -> None:
    mlk = ts(2024, 1, 15) // 86_400_000  # Monday 2024-01-15
    cal = SessionCalendar("US equities + MLK", SessionCalendar.us_equities().open_windows, closed_days=(mlk,))
    assert not cal.is_open(ts(2024, 1, 15, 16))
    assert cal.is_open(ts(2024, 1, 16, 16))
    assert cal.is_open(ts(2024, 1, 8, 16))  # the Monday before


def test_session_calendar_rejects_bad_windows() -> None:
    with pytest.raises(ValueError):
        SessionCalendar("bad", ((100, 100),))
    with pytest.raises(ValueError):
        SessionCalendar("bad", ((0, 7 * 1440 + 1),))


# ------------------------------------------------------------------------------------------------
# pricer.tick: oracle kinds
# ------------------------------------------------------------------------------------------------

FUNDING = FundingParams()


def sources_defn(on_insufficient: OnInsufficient, **kw: object) -> OracleDefinition:
    return OracleDefinition(kind=OracleKind.SOURCES, sources=(("binance", 3), ("okx", 2)), min_sources=2,
                            on_insufficient=on_insufficient, **kw)  # type: ignore[arg-type]


def test_listed_state_sets_prices_day_and_next_funding() -> None:
    st = pricer.listed(T0 + 1_234, 1_000_000, FUNDING)
    assert (st.oracle, st.mark, st.day_px, st.ema_ts, st.push_ts) == (1_000_000, 1_000_000, 1_000_000, T0 + 1_234,
                                                                      T0 + 1_234)
    assert st.day == T0 // 86_400_000
    assert st.next_funding_ts == T0 + 3_600_000  # T0 is on the hour


def test_manual_mark_sets_oracle_and_mark() -> None:
    st = pricer.listed(T0, 1_000_000, FUNDING)
    st = pricer.tick(OracleDefinition(), FUNDING, st, T0 + 3_000, two_sided(990_000, 1_010_000), 0, {}, {},
                     1_023_400)
    assert (st.oracle, st.mark) == (1_023_400, 1_023_400)
    # no manual mark: both kept, whatever the book says
    st = pricer.tick(OracleDefinition(), FUNDING, st, T0 + 6_000, two_sided(1_100_000, 1_110_000), 0, {}, {}, None)
    assert (st.oracle, st.mark) == (1_023_400, 1_023_400)


def test_sources_oracle_is_weighted_median_of_fresh_sources() -> None:
    defn = sources_defn(OnInsufficient.HOLD)
    st = pricer.listed(T0, 1_000_000, FUNDING)
    st = pricer.tick(defn, FUNDING, st, T0 + 3_000, OrderBook(0), 0,
                     quotes(T0 + 3_000, binance=1_005_000, okx=1_001_000), {}, None)
    assert st.oracle == 1_005_000  # binance (3 of 5) decides
    assert not st.stale and not st.halted


def test_sources_hold_keeps_the_oracle_and_flags_stale() -> None:
    defn = sources_defn(OnInsufficient.HOLD)
    st = pricer.listed(T0, 1_000_000, FUNDING)
    st = pricer.tick(defn, FUNDING, st, T0 + 3_000, OrderBook(0), 0,
                     quotes(T0 + 3_000, binance=1_005_000, okx=1_004_000), {}, None)
    assert st.oracle == 1_005_000
    # 11 s later the quotes are 11 s old: none fresh
    old = quotes(T0 + 3_000, binance=1_005_000, okx=1_004_000)
    st = pricer.tick(defn, FUNDING, st, T0 + 14_000, two_sided(1_100_000, 1_102_000), 1_101_000, old, {}, None)
    assert st.oracle == 1_005_000 and st.stale and not st.halted
    # only one fresh source with min_sources = 2: still held
    st = pricer.tick(defn, FUNDING, st, T0 + 17_000, OrderBook(0), 0, quotes(T0 + 17_000, okx=1_200_000), {},
                     None)
    assert st.oracle == 1_005_000 and st.stale
    # both back: follows them and clears the flag
    st = pricer.tick(defn, FUNDING, st, T0 + 20_000, OrderBook(0), 0,
                     quotes(T0 + 20_000, binance=1_007_000, okx=1_006_000), {}, None)
    assert st.oracle == 1_007_000 and not st.stale


def test_sources_book_fallback_takes_the_local_mark() -> None:
    defn = sources_defn(OnInsufficient.BOOK)
    st = pricer.listed(T0, 1_000_000, FUNDING)
    st = pricer.tick(defn, FUNDING, st, T0 + 3_000, two_sided(1_010_000, 1_014_000), 1_011_000, {}, {}, None)
    assert st.oracle == 1_011_000 and st.stale and not st.halted
    # no two-sided book and no trade: nothing to fall back to, the oracle is held
    st = pricer.tick(defn, FUNDING, st, T0 + 6_000, make_book(bids=[(900_000, 10)]), 0, {}, {}, None)
    assert st.oracle == 1_011_000 and st.stale


def test_sources_halt_halts_and_recovers_when_sources_return() -> None:
    defn = sources_defn(OnInsufficient.HALT)
    st = pricer.listed(T0, 1_000_000, FUNDING)
    st = pricer.tick(defn, FUNDING, st, T0 + 3_000, two_sided(1_010_000, 1_014_000), 1_011_000,
                     quotes(T0 + 3_000, binance=1_002_000), {}, None)  # one source, min 2
    assert st.halted and st.stale and st.oracle == 1_000_000
    st = pricer.tick(defn, FUNDING, st, T0 + 6_000, OrderBook(0), 0,
                     quotes(T0 + 6_000, binance=1_002_000, okx=1_003_000), {}, None)
    assert not st.halted and not st.stale and st.oracle == 1_002_000


def test_sources_oracle_drops_outlier_before_the_median() -> None:
    defn = OracleDefinition(kind=OracleKind.SOURCES, sources=(("a", 1), ("b", 1), ("c", 1), ("d", 1)))
    st = pricer.listed(T0, 1_000_000, FUNDING)
    st = pricer.tick(defn, FUNDING, st, T0 + 3_000, OrderBook(0), 0,
                     quotes(T0 + 3_000, a=1_000_000, b=1_010_000, c=1_020_000, d=500_000), {}, None)
    assert st.oracle == 1_010_000


# ------------------------------------------------------------------------------------------------
# pricer.tick: mark policies
# ------------------------------------------------------------------------------------------------


def hl_defn() -> OracleDefinition:
    return OracleDefinition.hyperliquid_validators()


def test_hyperliquid_mark_is_median_of_ema_basis_local_and_perp_median() -> None:
    st = pricer.listed(T0, 1_000_000, FUNDING)
    now = T0 + 3_000
    book = two_sided(1_001_000, 1_003_000)  # mid 1_002_000: basis 2_000
    perp = quotes(now, binance=1_004_000, okx=1_005_000)  # weighted median 1_004_000
    st = pricer.tick(hl_defn(), FUNDING, st, now, book, 1_001_500, quotes(now, binance=1_000_000), perp, None)
    assert st.oracle == 1_000_000
    assert ema_value(st.ema_num, st.ema_den) == 2_000
    # median(1_000_000 + 2_000, median(1_001_000, 1_003_000, 1_001_500), 1_004_000)
    assert st.mark == 1_002_000


def test_hyperliquid_mark_picks_the_perp_median_when_it_is_the_middle() -> None:
    st = pricer.listed(T0, 1_000_000, FUNDING)
    now = T0 + 3_000
    # weights: binance 3 @ 1_001_800, okx 2 + bybit 2 @ 1_009_000 → total 7, cum 3 < 3.5 → 1_009_000
    perp = quotes(now, binance=1_001_800, okx=1_009_000, bybit=1_009_000)
    assert weighted_median(fresh_quotes(hl_defn().perp_sources, perp, now, 10_000)) == 1_009_000
    perp = quotes(now, binance=1_001_800, okx=1_009_000)  # binance 3 of 5 → 1_001_800
    st = pricer.tick(hl_defn(), FUNDING, st, now, two_sided(1_001_000, 1_003_000), 1_001_500,
                     quotes(now, binance=1_000_000), perp, None)
    # inputs 1_002_000, 1_001_500, 1_001_800 → 1_001_800
    assert st.mark == 1_001_800


def test_hyperliquid_mark_adds_30s_local_ema_when_only_two_inputs_exist() -> None:
    defn = hl_defn()
    st = pricer.listed(T0, 1_000_000, FUNDING)
    book = two_sided(1_001_000, 1_003_000)
    t1, t2 = T0 + 3_000, T0 + 6_000
    st = pricer.tick(defn, FUNDING, st, t1, book, 1_001_500, quotes(t1, binance=1_000_000), {}, None)
    # inputs: 1_002_000 (oracle + basis), 1_001_500 (local), 1_001_500 (local EMA, one sample)
    assert st.mark == 1_001_500
    st = pricer.tick(defn, FUNDING, st, t2, book, 1_002_800, quotes(t2, binance=1_000_000), {}, None)
    # local mark now 1_002_800; its 30 s EMA lies between the two local marks
    local_ema = ema_value(st.local_num, st.local_den)
    assert 1_002_000 < local_ema < 1_002_400  # true value 1_002_182.47
    assert ema_value(st.ema_num, st.ema_den) == 2_000  # the basis is unchanged
    # median(1_002_000, 1_002_800, local EMA) — not the two-input mean 1_002_400
    assert st.mark == local_ema


def test_hyperliquid_local_ema_after_two_ticks_matches_the_formula() -> None:
    st = pricer.listed(T0, 1_000_000, FUNDING)
    book = two_sided(1_001_000, 1_003_000)
    for now, last in ((T0 + 3_000, 1_001_500), (T0 + 6_000, 1_002_800)):
        st = pricer.tick(hl_defn(), FUNDING, st, now, book, last, quotes(now, binance=1_000_000), {}, None)
    # (1_001_500·3·e^−0.1 + 1_002_800·3) / (3·e^−0.1 + 3) = 1_001_500 + 1300 / (1 + e^−0.1) = 1_002_182.47
    # the code gives 1_002_272: den = floor(2714.51) + 3000 drops 0.51 ms of the old sample's weight
    assert abs(ema_value(st.local_num, st.local_den) - 1_002_182) <= 1


def test_hyperliquid_mark_adds_local_ema_when_the_book_empties_but_perp_quotes_exist() -> None:
    defn = hl_defn()
    st = pricer.listed(T0, 1_000_000, FUNDING)
    t1, t2 = T0 + 3_000, T0 + 6_000
    st = pricer.tick(defn, FUNDING, st, t1, two_sided(1_001_000, 1_003_000), 1_001_500,
                     quotes(t1, binance=1_000_000), {}, None)
    # no book and no trade now: inputs are oracle + basis (1_002_000) and the perp median (1_004_000),
    # plus the local EMA (1_001_500, one sample) → 1_002_000, not the two-input mean 1_003_000
    st = pricer.tick(defn, FUNDING, st, t2, OrderBook(0), 0, quotes(t2, binance=1_000_000),
                     quotes(t2, binance=1_004_000), None)
    assert ema_value(st.local_num, st.local_den) == 1_001_500
    assert st.mark == 1_002_000


def test_hyperliquid_mark_with_empty_book_and_no_trades_is_the_oracle() -> None:
    st = pricer.listed(T0, 1_000_000, FUNDING)
    now = T0 + 3_000
    st = pricer.tick(hl_defn(), FUNDING, st, now, OrderBook(0), 0, quotes(now, binance=1_010_000), {}, None)
    assert ema_value(st.ema_num, st.ema_den) is None and ema_value(st.local_num, st.local_den) is None
    assert st.oracle == 1_010_000 and st.mark == 1_010_000


def binance_setup(last_rate: int) -> tuple[OracleDefinition, FundingParams, PriceState, int]:
    defn = OracleDefinition(kind=OracleKind.SOURCES, sources=(("binance", 1),), mark=MarkPolicy.BINANCE)
    funding = FundingParams.binance(hours=8)
    listed_at = ts(2024, 1, 8, 3, 59, 57)
    st = msgspec.structs.replace(pricer.listed(listed_at, 1_000_000, funding), last_rate=last_rate)
    assert st.next_funding_ts == ts(2024, 1, 8, 8)
    return defn, funding, st, ts(2024, 1, 8, 4)  # 4 h to the next funding


def test_binance_mark_is_median_of_funding_basis_and_last_trade() -> None:
    defn, funding, st, now = binance_setup(last_rate=10_000)  # 0.01% last rate
    book = two_sided(1_000_100, 1_000_300)  # mid 1_000_200: basis 200 (30 s EMA, one sample)
    st = pricer.tick(defn, funding, st, now, book, 1_000_100, quotes(now, binance=1_000_000), {}, None)
    # p1 = 1_000_000 · (1 + 0.0001 · 4h/8h) = 1_000_050; p2 = 1_000_200; last 1_000_100
    assert ema_value(st.ema_num, st.ema_den) == 200
    assert st.mark == 1_000_100


def test_binance_mark_without_a_trade_is_the_mean_of_the_two_prices() -> None:
    defn, funding, st, now = binance_setup(last_rate=10_000)
    st = pricer.tick(defn, funding, st, now, two_sided(1_000_100, 1_000_300), 0, quotes(now, binance=1_000_000),
                     {}, None)
    assert st.mark == (1_000_050 + 1_000_200) // 2


def test_binance_mark_funding_term_uses_time_left_to_funding() -> None:
    defn, funding, st, now = binance_setup(last_rate=-2_000_000)  # −2%
    st = pricer.tick(defn, funding, st, now, OrderBook(0), 0, quotes(now, binance=1_000_000), {}, None)
    # no book: p2 = oracle; p1 = 1_000_000 · (1 − 0.02 · 1/2) = 990_000 → mean 995_000
    assert st.mark == 995_000


# ------------------------------------------------------------------------------------------------
# pricer.tick: premium samples
# ------------------------------------------------------------------------------------------------


def test_premium_sample_matches_the_docs_example_impact_bid_above_oracle() -> None:
    # docs: impact bid 10 100, oracle 10 000 → premium 1%
    oracle = 100_000_000  # $10,000.0000
    book = two_sided(101_000_000, 101_200_000, sz=1_000)  # $101,000 per side, impact $6,000
    st = pricer.listed(T0, oracle, FUNDING)
    st = pricer.tick(OracleDefinition(), FUNDING, st, T0, book, 0, {}, {}, oracle)
    assert st.prem_n == 1 and st.prem_sum == PREMIUM_SCALE // 100
    assert st.next_sample_ts == T0 + 5_000
    assert pricer.interval_premium(st, FUNDING) == Fraction(1, 100)


def test_premium_is_sampled_at_most_once_per_sample_period() -> None:
    oracle = 100_000_000
    book = two_sided(101_000_000, 101_200_000, sz=1_000)
    st = pricer.listed(T0, oracle, FUNDING)
    counts = []
    for dt in (0, 1_000, 3_000, 4_999, 5_000, 6_000, 9_999, 10_000, 16_000):
        st = pricer.tick(OracleDefinition(), FUNDING, st, T0 + dt, book, 0, {}, {}, oracle)
        counts.append(st.prem_n)
    assert counts == [1, 1, 1, 1, 2, 2, 2, 3, 4]
    assert st.prem_sum == 4 * PREMIUM_SCALE // 100
    assert st.prem_wsum == (1 + 2 + 3 + 4) * PREMIUM_SCALE // 100


def test_premium_sample_is_zero_inside_the_impact_spread_and_negative_below() -> None:
    oracle = 100_000_000
    st0 = pricer.listed(T0, oracle, FUNDING)
    st = pricer.tick(OracleDefinition(), FUNDING, st0, T0, two_sided(99_900_000, 100_100_000, 1_000), 0, {}, {},
                     oracle)
    assert st.prem_sum == 0 and st.prem_n == 1
    # impact ask 99.5% of the oracle: −0.5%
    st = pricer.tick(OracleDefinition(), FUNDING, st0, T0, two_sided(99_000_000, 99_500_000, 1_000), 0, {}, {},
                     oracle)
    assert st.prem_sum == -PREMIUM_SCALE * 5 // 1_000


# ------------------------------------------------------------------------------------------------
# HIP-3: push and the 10 s fallback
# ------------------------------------------------------------------------------------------------

HIP3_FUNDING = FundingParams(premium_formula=PremiumFormula.HIP3)


def test_hip3_push_mark_is_median_of_inputs_and_local_mark() -> None:
    defn = OracleDefinition.hip3()
    st = pricer.listed(T0, 1_000_000, HIP3_FUNDING)
    book = two_sided(1_001_000, 1_005_000)  # local mark 1_003_000 (no trade)
    st = pricer.push(defn, st, T0 + 3_000, 1_002_000, [1_004_000, 1_006_000], book, 0)
    assert st.oracle == 1_002_000 and st.push_ts == T0 + 3_000
    assert st.mark == 1_004_000  # median(1_004_000, 1_006_000, 1_003_000)
    st = pricer.push(defn, st, T0 + 6_000, 1_002_000, [1_009_000, 1_010_000], book, 1_002_000)
    assert st.mark == 1_009_000  # median(1_009_000, 1_010_000, local 1_002_000)


def test_hip3_push_mark_move_is_clamped_to_one_percent() -> None:
    defn = OracleDefinition.hip3()
    st = pricer.listed(T0, 1_000_000, HIP3_FUNDING)
    book = two_sided(1_050_000, 1_060_000)
    st = pricer.push(defn, st, T0 + 3_000, 1_055_000, [1_055_000, 1_056_000], book, 0)
    assert st.oracle == 1_055_000  # the oracle is not move-clamped
    assert st.mark == 1_010_000  # +1% of 1_000_000
    st = pricer.push(defn, st, T0 + 6_000, 1_055_000, [1_055_000, 1_056_000], book, 0)
    assert st.mark == 1_020_100  # +1% of 1_010_000
    st = pricer.push(defn, st, T0 + 9_000, 900_000, [900_000], two_sided(899_000, 901_000), 0)
    assert st.mark == 1_020_100 - 10_201


def test_hip3_push_prices_are_clamped_to_ten_times_start_of_day() -> None:
    defn = OracleDefinition.hip3()
    st = pricer.listed(T0, 1_000_000, HIP3_FUNDING)
    assert pricer.push(defn, st, T0 + 3_000, 20_000_000, [], OrderBook(0), 0).oracle == 10_000_000
    assert pricer.push(defn, st, T0 + 3_000, 50_000, [], OrderBook(0), 0).oracle == 100_000
    # a state with no mark yet: only the day clamp limits the mark inputs
    fresh = msgspec.structs.replace(st, mark=0)
    assert pricer.push(defn, fresh, T0 + 3_000, 1_000_000, [50_000_000], OrderBook(0), 0).mark == 10_000_000


def test_hip3_push_on_a_new_day_resets_the_start_of_day_price() -> None:
    defn = OracleDefinition.hip3()
    st = msgspec.structs.replace(pricer.listed(T0, 1_000_000, HIP3_FUNDING), oracle=2_000_000)
    next_day = T0 + 86_400_000
    st = pricer.push(defn, st, next_day, 30_000_000, [], OrderBook(0), 0)
    assert st.day == next_day // 86_400_000 and st.day_px == 2_000_000
    assert st.oracle == 20_000_000


def test_hip3_tick_falls_back_to_local_mark_after_10s_without_push() -> None:
    defn = OracleDefinition.hip3()
    st = pricer.listed(T0, 1_000_000, HIP3_FUNDING)
    book = two_sided(1_003_000, 1_005_000)  # local 1_004_000
    st = pricer.tick(defn, HIP3_FUNDING, st, T0 + 9_999, book, 0, {}, {}, None)
    assert st.mark == 1_000_000 and st.push_ts == T0
    st = pricer.tick(defn, HIP3_FUNDING, st, T0 + 10_000, book, 0, {}, {}, None)
    assert st.mark == 1_004_000 and st.push_ts == T0 + 10_000
    assert st.oracle == 1_000_000  # the deployer's oracle moves only on push
    # the fallback counted as an update: no new fallback 5 s later
    far = two_sided(1_100_000, 1_200_000)
    st = pricer.tick(defn, HIP3_FUNDING, st, T0 + 15_000, far, 0, {}, {}, None)
    assert st.mark == 1_004_000
    # 10 s after the fallback: again, clamped to 1% of the previous mark
    st = pricer.tick(defn, HIP3_FUNDING, st, T0 + 20_000, far, 0, {}, {}, None)
    assert st.mark == 1_004_000 + 10_040 and st.push_ts == T0 + 20_000


def test_hip3_tick_fallback_needs_a_local_mark() -> None:
    defn = OracleDefinition.hip3()
    st = pricer.listed(T0, 1_000_000, HIP3_FUNDING)
    st = pricer.tick(defn, HIP3_FUNDING, st, T0 + 30_000, OrderBook(0), 0, {}, {}, None)
    assert st.mark == 1_000_000 and st.push_ts == T0


# ------------------------------------------------------------------------------------------------
# sessions: a COMEX silver market over a weekend
# ------------------------------------------------------------------------------------------------


def silver_defn() -> OracleDefinition:
    return OracleDefinition(kind=OracleKind.SOURCES, sources=(("comex", 1),),
                            session=SessionCalendar.comex_metals(),
                            off_hours=OffHours(ema_tau_ms=3_600_000, band_bps=500))


def test_comex_silver_weekend_oracle_follows_book_slowly_within_band_and_snaps_back_at_reopen() -> None:
    defn = silver_defn()
    fri_21 = ts(2024, 1, 12, 21)
    close = ts(2024, 1, 12, 22)
    reopen = ts(2024, 1, 14, 23)
    step = 300_000  # 5 minutes
    st = pricer.listed(fri_21, 300_000, FUNDING)  # silver at $30.0000
    thin = OrderBook(0)
    # Friday evening: the oracle follows the source
    now = fri_21
    while now < close:
        px = 300_000 if now < fri_21 + 1_800_000 else 301_000
        st = pricer.tick(defn, FUNDING, st, now, thin, 0, quotes(now, comex=px), {}, None)
        assert st.oracle == px and st.session_open
        now += step
    assert st.oracle == 301_000
    # the weekend book bids the price up hard: impact mid $33.10, far above the +5% band
    book = two_sided(330_000, 332_000, sz=50_000)
    band_hi = 301_000 + 301_000 * 500 // 10_000
    assert band_hi == 316_050
    # first closed tick: the close is recorded and the oracle takes one slow step (Δt = 5 min)
    st = pricer.tick(defn, FUNDING, st, close, book, 0, quotes(close, comex=290_000), {}, None)
    assert not st.session_open and st.close_px == 301_000
    beta = exp_neg(300_000, 3_600_000)
    assert st.oracle == 301_000 + (331_000 - 301_000) * (EXP_SCALE - beta) // EXP_SCALE == 303_398
    # through the weekend: the source (fresh, at $29) is ignored; each step at most (1 − e^−0.1) of
    # the gap; never outside ±5% of the close; the mark is banded too
    now, prev = close + step, st.oracle
    max_frac = Fraction(EXP_SCALE - exp_neg(1, 10), EXP_SCALE)
    while now < reopen:
        st = pricer.tick(defn, FUNDING, st, now, book, 0, quotes(now, comex=290_000), {}, None)
        assert not st.session_open and st.close_px == 301_000
        assert prev <= st.oracle <= band_hi
        assert st.oracle - prev <= max_frac * (331_000 - prev)
        assert 301_000 - 15_050 <= st.mark <= band_hi
        prev = st.oracle
        now += step
    assert st.oracle == band_hi  # pinned at the top of the band by Sunday
    # the reopen with a fresh source quote: the oracle jumps back to the source
    st = pricer.tick(defn, FUNDING, st, reopen, book, 0, quotes(reopen, comex=302_000), {}, None)
    assert st.session_open and st.oracle == 302_000 and not st.stale


def test_comex_silver_weekend_without_book_holds_the_close() -> None:
    defn = silver_defn()
    st = pricer.listed(ts(2024, 1, 12, 21, 55), 301_000, FUNDING)
    for when in (ts(2024, 1, 12, 22), ts(2024, 1, 13, 12), ts(2024, 1, 14, 22, 55)):
        st = pricer.tick(defn, FUNDING, st, when, OrderBook(0), 0, quotes(when, comex=250_000), {}, None)
        assert st.oracle == 301_000 and st.close_px == 301_000 and not st.session_open


def test_comex_reopen_with_stale_source_holds_the_off_hours_oracle_and_flags_it() -> None:
    defn = silver_defn()
    st = pricer.listed(ts(2024, 1, 12, 21, 55), 301_000, FUNDING)
    st = pricer.tick(defn, FUNDING, st, ts(2024, 1, 12, 22), two_sided(330_000, 332_000, 50_000), 0, {}, {},
                     None)
    moved = st.oracle
    assert moved > 301_000
    reopen = ts(2024, 1, 14, 23)
    st = pricer.tick(defn, FUNDING, st, reopen, OrderBook(0), 0, {"comex": (302_000, ts(2024, 1, 12, 21, 59))},
                     {}, None)
    assert st.session_open and st.stale and st.oracle == moved

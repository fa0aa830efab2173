"""Fixed-point helpers (core/numbers.py) and MarketSpec's price and fee rules
(hyperliquid-api.md §4.6 tick/lot rules, §6.6 fees)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from math import ceil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpbox.core.numbers import (
    RATE_SCALE,
    USD,
    ceil_div,
    format_units,
    mul,
    parse_units,
    price_decimals,
    round_price_sig,
    significant_figures,
)
from perpbox.market.margin import MarginTable
from perpbox.market.spec import FeeSchedule, MarginMode, MarketSpec


def spec(sz_decimals: int = 0, **kw) -> MarketSpec:
    return MarketSpec("TEST", 0, sz_decimals, MarginTable.single(20), **kw)


# -- parse_units / format_units -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "decimals", "units"),
    [
        ("1234.5", 1, 12345),
        ("1234.5", 6, 1_234_500_000),
        ("1234.50", 1, 12345),  # trailing zeros are not extra precision
        ("0.000001", 6, 1),
        ("-0.25", 2, -25),
        ("-0", 2, 0),
        ("0", 0, 0),
        ("1200", -2, 12),  # negative decimals: units of 100
        ("26951.0", 0, 26951),
    ],
)
def test_parse_units_examples(text, decimals, units):
    assert parse_units(text, decimals) == units


@pytest.mark.parametrize(
    ("text", "decimals"),
    [
        ("1234.567", 2),  # over-precise: refused, never rounded
        ("0.0000001", 6),
        ("0.0012345", 6),
        ("1250", -2),
        ("1.5", 0),
        ("abc", 6),
        ("", 6),
        ("1.2.3", 6),
        ("NaN", 6),
        ("nan", 6),
        ("sNaN", 6),
        ("inf", 6),
        ("-Infinity", 6),
        ("+1.50", 2),  # the wire grammar is plain decimals: no sign "+", exponent, spaces or "_"
        ("1e2", 0),
        ("1.5E-3", 4),
        (" 1.5", 2),
        ("1_000", 0),
        ("1" * 81, 0),  # longer than any wire number
    ],
)
def test_parse_units_refuses(text, decimals):
    assert parse_units(text, decimals) is None


def test_parse_units_refuses_non_strings():
    assert parse_units(None, 6) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("units", "decimals", "text"),
    [
        (0, 6, "0"),
        (1, 6, "0.000001"),
        (-1, 6, "-0.000001"),
        (1_500_000, 6, "1.5"),
        (-1_500_000, 6, "-1.5"),
        (12345, 1, "1234.5"),
        (12340, 1, "1234"),
        (7, 0, "7"),
        (-7, 0, "-7"),
        (12, -2, "1200"),
    ],
)
def test_format_units_examples(units, decimals, text):
    assert format_units(units, decimals) == text


@given(st.integers(-(10**24), 10**24), st.integers(-3, 8))
def test_format_parse_round_trip(units, decimals):
    text = format_units(units, decimals)
    assert parse_units(text, decimals) == units
    assert Decimal(text) == Decimal(units).scaleb(-decimals)
    # shortest form: no exponent, no trailing zeros after the point, no "-0"
    assert "e" not in text.lower()
    assert not ("." in text and text.endswith("0"))
    assert not text.endswith(".")
    assert text != "-0"


@given(st.integers(-(10**20), 10**20), st.integers(0, 8), st.integers(1, 9))
def test_parse_refuses_one_more_digit(units, decimals, digit):
    # append a non-zero digit one place beyond the allowed precision
    text = format_units(units, decimals)
    if "." not in text:
        text += "."
    text += "0" * (decimals - len(text.split(".")[1])) + str(digit)
    assert parse_units(text, decimals) is None
    assert parse_units(text, decimals + 1) == units * 10 + (digit if units >= 0 else -digit)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**12), max_value=10**12))
def test_parse_decimal_text(d):
    for text in (format(d, "f"),):
        assert parse_units(text, 6) == int(d.scaleb(6))
        assert Decimal(format_units(parse_units(text, 6), 6)) == d


@pytest.mark.parametrize(
    ("text", "decimals", "expected"),
    [
        ("12345678901234567890123456789", 0, 12345678901234567890123456789),
        ("1234567890123456789012345.0000001", 0, None),
    ],
)
def test_parse_units_never_rounds_long_values(text, decimals, expected):
    assert parse_units(text, decimals) == expected


def test_parse_units_huge_exponent_refused():
    assert parse_units("1e1000000", 6) is None


# -- ceil_div, significant_figures, price_decimals ------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "q"),
    [
        (7, 2, 4),
        (8, 2, 4),
        (0, 5, 0),
        (1, 10**6, 1),
        (-7, 2, -3),
        (-8, 2, -4),
        (-1, 10**6, 0),
        (-(10**6) - 1, 10**6, -1),
    ],
)
def test_ceil_div_examples(a, b, q):
    assert ceil_div(a, b) == q


@given(st.integers(-(10**30), 10**30), st.integers(1, 10**18))
def test_ceil_div_matches_exact_ceiling(a, b):
    assert ceil_div(a, b) == ceil(Fraction(a, b))


# mul's two 64-bit branches end at 2**31 (both operands) and at |a * b| <= 2**62 - 1 (b > 0):
# products on either side of each bound, negative operands, and products far past 64 bits.
_EDGES = [0, 1, -1, 2**30 - 1, 2**30, 2**31 - 1, 2**31, -(2**31) + 1, -(2**31), 2**62 - 1, 2**62, -(2**62),
          2**63 - 1, 2**63, -(2**63), 3_037_000_499, 3_037_000_500, 10**30, -(10**30)]


def test_mul_is_exact_at_the_64_bit_bounds():
    for a in _EDGES:
        for b in _EDGES:
            assert mul(a, b) == a * b, (a, b)
            assert type(mul(a, b)) is int


@given(st.integers(-(2**64), 2**64), st.integers(-(2**64), 2**64))
def test_mul_is_exact(a, b):
    assert mul(a, b) == a * b


@given(st.integers(1, 2**62 - 1), st.integers(-(2**62), 2**62))
def test_mul_is_exact_beside_its_bound(b, k):
    """Operands at and one past ``(2**62 - 1) // b``, where the 64-bit branch stops."""
    bound = (2**62 - 1) // b
    for a in (bound, bound + 1, -bound, -bound - 1, k):
        assert mul(a, b) == a * b


@pytest.mark.parametrize(
    ("units", "sig"),
    [(0, 0), (1, 1), (9, 1), (10, 1), (100, 1), (1010, 3), (12345, 5), (1234500000, 5), (123456, 6), (-120, 2),
     (10**40 + 1, 41)],
)
def test_significant_figures(units, sig):
    assert significant_figures(units) == sig


def test_price_decimals():
    assert [price_decimals(k) for k in range(7)] == [6, 5, 4, 3, 2, 1, 0]


# -- round_price_sig ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("units", "decimals", "down", "up"),
    [
        (1_234_567_000, 6, 1_234_500_000, 1_234_600_000),  # 1234.567 -> 1234.5 / 1234.6
        (1_234_500_000, 6, 1_234_500_000, 1_234_500_000),  # already valid
        (1234, 6, 1234, 1234),  # 0.001234: few digits, untouched
        (12_345_678, 6, 12_345_000, 12_346_000),  # 12.345678 -> 12.345 / 12.346
        (123456, 2, 123450, 123460),  # 1234.56 -> 1234.5 / 1234.6
        # whole-dollar case: 123456.7 keeps its integer digits (integer prices are always valid)
        (123_456_700_000, 6, 123_456_000_000, 123_457_000_000),
        (1_234_567, 1, 1_234_560, 1_234_570),  # 123456.7 at 1 decimal
        (99_999_500_000, 6, 99_999_000_000, 100_000_000_000),  # 99999.5 -> 99999 / 100000
        (999_999, 6, 999_990, 1_000_000),  # 0.999999 -> 0.99999 / 1
        (123_456_789, 0, 123_456_789, 123_456_789),  # szDecimals 6: integer units, always valid
        (0, 6, 0, 0),
        (-5, 6, -5, -5),
    ],
)
def test_round_price_sig_examples(units, decimals, down, up):
    assert round_price_sig(units, decimals) == down
    assert round_price_sig(units, decimals, up=True) == up


@settings(max_examples=300)
@given(st.integers(0, 6), st.integers(1, 10**13))
def test_round_price_sig_yields_valid_prices_bracketing_the_input(sz_decimals, units):
    s = spec(sz_decimals)
    down = round_price_sig(units, s.px_decimals)
    up = round_price_sig(units, s.px_decimals, up=True)
    assert 0 <= down <= units <= up
    assert up > 0
    assert down == 0 or s.valid_price(down)
    assert s.valid_price(up)
    if s.valid_price(units):
        assert down == units == up


@settings(max_examples=200)
@given(st.integers(0, 3), st.integers(1, 10**8))
def test_round_price_sig_is_the_nearest_valid_price(px_decimals, units):
    # brute force over the gap (small decimals keep the step <= 1000 units)
    s = spec(6 - px_decimals)
    down = round_price_sig(units, px_decimals)
    up = round_price_sig(units, px_decimals, up=True)
    assert not any(s.valid_price(p) for p in range(down + 1, units))
    assert not any(s.valid_price(p) for p in range(units + 1, up))


# -- MarketSpec.valid_price (hyperliquid-api.md §4.6) ---------------------------------------------
def _valid(text: str, sz_decimals: int) -> bool:
    s = spec(sz_decimals)
    px = parse_units(text, s.px_decimals)
    return px is not None and s.valid_price(px)  # None: too many decimals -> invalid


@pytest.mark.parametrize(
    ("text", "sz_decimals", "ok"),
    [
        # perps, szDecimals 0 (6 price decimals)
        ("1234.5", 0, True),
        ("1234.56", 0, False),  # 6 significant figures
        ("0.001234", 0, True),
        ("0.0012345", 0, False),  # 7 decimals > 6
        ("0.000001", 0, True),
        ("123456", 0, True),  # integer prices always allowed
        ("12345.6", 0, False),  # 6 significant figures, not an integer
        ("12345", 0, True),
        ("123456.0", 0, True),
        ("1234567890", 0, True),
        # other szDecimals
        ("1234.5", 3, True),
        ("1234.5", 5, True),  # 1 price decimal left
        ("1234.56", 5, False),  # 2 decimals > 1
        ("1234.56", 4, False),  # 2 decimals allowed, but 6 significant figures
        ("0.01234", 1, True),
        ("0.012345", 1, False),  # 6 decimals > 5
        ("0.0001234", 1, False),  # 7 decimals > 5
        ("0.1", 5, True),
        ("0.01", 5, False),
        ("123456789", 6, True),  # szDecimals 6: whole dollars only, always valid
        ("1.5", 6, False),
        # non-positive prices
        ("0", 0, False),
        ("0.0", 3, False),
        ("-1234.5", 0, False),
        ("-123456", 0, False),
    ],
)
def test_valid_price_reference_examples(text, sz_decimals, ok):
    assert _valid(text, sz_decimals) is ok


def test_valid_price_integers_directly():
    s = spec(0)
    assert s.valid_price(1) and s.valid_price(10**6)
    assert not s.valid_price(0) and not s.valid_price(-1)
    assert s.valid_price(123_456 * USD) and not s.valid_price(12_345_600_000 + 1)


def test_valid_price_respects_max_sig_figs():
    s = spec(0, max_sig_figs=3)
    assert s.valid_price(1_230_000) and not s.valid_price(1_234_000)
    assert s.valid_price(1234 * USD)  # whole dollars still allowed


# -- MarketSpec basics ----------------------------------------------------------------------------
def test_spec_properties():
    s = spec(2)
    assert s.px_decimals == 4
    assert s.max_leverage == 20 and s.default_leverage == 20
    assert s.min_notional == 10 * USD
    assert not s.only_isolated
    assert MarketSpec("X", 1, 0, MarginTable.single(50)).default_leverage == 20
    assert MarketSpec("X", 1, 0, MarginTable.single(5)).default_leverage == 5
    for mode in (MarginMode.NO_CROSS, MarginMode.STRICT_ISOLATED):
        assert spec(0, margin_mode=mode).only_isolated


@pytest.mark.parametrize(
    "sz_decimals, ref, is_buy, bps, px",
    [
        (5, 1_000_000, True, 500, 1_050_000),  # BTC $100,000.0 +5% = $105,000.0
        (5, 1_000_000, False, 500, 950_000),  # -5% = $95,000.0
        (5, 1_234_567, True, 500, 1_296_290),  # $129,629.535 -> whole dollars, down: $129,629
        (5, 1_234_567, False, 500, 1_172_840),  # $117,283.865 -> up to a whole dollar: $117,284
        (2, 123_456, True, 100, 124_690),  # $1.234'56 +1% = $1.246'9056 -> 5 sig. figs, down: $1.2469
        (2, 123_456, False, 100, 122_230),  # -1% = $1.222'2144 -> up: $1.2223
        (4, 350_000, True, 1_000, 385_000),  # ETH $3,500.00 +10% (a market trigger's tolerance)
        (0, 1_000, False, 10_000, 1),  # -100%: the floor is the smallest positive price unit
    ],
)
def test_slippage_px_rounds_towards_the_reference(sz_decimals, ref, is_buy, bps, px):
    """A market order's limit: never more than ``bps`` away from ``ref``, and a valid price."""
    s = spec(sz_decimals)
    got = s.slippage_px(ref, is_buy, bps)
    assert got == px and s.valid_price(got)
    bound = Fraction(ref * (10_000 + (bps if is_buy else -bps)), 10_000)
    assert (got <= bound) if is_buy else (got >= bound)


@pytest.mark.parametrize("sz_decimals", [-1, 7])
def test_spec_refuses_bad_sz_decimals(sz_decimals):
    with pytest.raises(ValueError):
        spec(sz_decimals)


# -- fees -----------------------------------------------------------------------------------------
def test_fee_schedule_defaults_and_validation():
    f = FeeSchedule()
    assert (f.maker, f.taker) == (15_000, 45_000)
    assert FeeSchedule(maker=-2_000, taker=45_000).maker == -2_000  # maker rebate
    assert FeeSchedule(maker=-45_000, taker=45_000).taker == 45_000  # rebate exactly covered
    with pytest.raises(ValueError):
        FeeSchedule(maker=0, taker=-1)
    with pytest.raises(ValueError):
        FeeSchedule(maker=-45_001, taker=45_000)
    assert spec(0).fees == FeeSchedule()


@pytest.mark.parametrize(
    ("notional", "rate", "fee"),
    [
        (1_000_001, 45_000, 451),  # 450.00045 -> up
        (1_000_000, 45_000, 450),  # exact
        (1_000_001, 15_000, 151),  # 150.00015 -> up
        (1, 45_000, 1),  # tiny fee still charged
        (0, 45_000, 0),
        (1_000_001, 0, 0),
        (1_000_001, -2_000, -20),  # rebate 20.00002 -> paid 20 (toward zero)
        (1_000_000, -2_000, -20),  # exact rebate
        (49_999, -2_000, 0),  # 0.99998 rebate -> nothing
        (10**12, 45_000, 450_000_000),
    ],
)
def test_fee_rounding(notional, rate, fee):
    assert spec(0).fee(notional, rate) == fee


@given(st.integers(0, 10**16), st.integers(-(10**6), 10**6))
def test_fee_rounds_in_the_systems_favour(notional, rate):
    fee = spec(0).fee(notional, rate)
    exact = Fraction(notional * rate, RATE_SCALE)
    assert fee == ceil(exact)
    if rate >= 0:
        assert 0 <= fee - exact < 1  # charged fees round up
    else:
        assert fee <= 0 and 0 <= abs(exact) - abs(fee) < 1  # rebates round toward zero

"""The carry calculator and the points/wear estimators against the numbers hedging-bots.md §1
publishes, and examples worked by hand (the working is in the comments)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest

from perpbox.bots.carry import Carry, format_carry, funding_apr, percent, spread_funding_carry
from perpbox.bots.points import (
    farmers_wear_bps,
    lighter_maker_score,
    lighter_mm_points,
    lighter_mm_shares,
    wear_bps,
)


def _q(x: Decimal, step: str) -> Decimal:
    return x.quantize(Decimal(step), rounding=ROUND_HALF_UP)


# ---------------------------------------------------------------- carry: the reference's example
# Lighter ETH perp 0.1% below Binance, Lighter funding negative (7% APR paid to longs), Binance
# positive (9.1% APR paid to shorts) → long Lighter, short Binance, 3x, margin on both venues,
# spread converging in 2 days.  Published: 0.15% per trade (27.3% APR), 10.5%, 13.7%, total ≈ 51.5%.
REFERENCE = {
    "spread": "0.001",
    "days": "2",
    "leverage": "3",
    "long_funding_apr": "-0.07",  # Lighter, venue's sign: negative = shorts pay longs
    "short_funding_apr": "0.091",  # Binance, positive = longs pay shorts
    "capital": "10000",
}


def _ref(overrides: dict[str, str] | None = None, *, whole_trades: bool = False, year_days: str = "365") -> Carry:
    """The reference example, with some inputs replaced."""
    a = {**REFERENCE, **(overrides or {})}
    return spread_funding_carry(
        spread=a["spread"],
        days=a["days"],
        leverage=a["leverage"],
        long_funding_apr=a["long_funding_apr"],
        short_funding_apr=a["short_funding_apr"],
        capital=a["capital"],
        year_days=year_days,
        whole_trades=whole_trades,
    )


def test_the_reference_example_reproduces_every_published_number_with_whole_trades() -> None:
    c = _ref(whole_trades=True)
    # spread per trade: L/2 × s = 3/2 × 0.001 = 0.0015 (0.15%)
    assert c.spread_return == Fraction(15, 10_000)
    # floor(365 / 2) = 182 whole trades a year: 0.0015 × 182 = 0.273 → 27.3%
    assert c.spread_apr == Fraction(273, 1000)
    assert percent(c.spread_apr) == Decimal("27.3")
    # Lighter: 3/2 × 7% = 10.5%
    assert c.long_funding_apr == Fraction(105, 1000)
    assert percent(c.long_funding_apr) == Decimal("10.5")
    # Binance: 3 × 9.1% / 2 = 13.65% → 13.7% (half up)
    assert c.short_funding_apr == Fraction(1365, 10_000)
    assert percent(c.short_funding_apr) == Decimal("13.7")
    # total: 27.3 + 10.5 + 13.65 = 51.45% → 51.5%; the published parts' sum 27.3 + 10.5 + 13.7 = 51.5
    assert c.total_apr == Fraction(5145, 10_000)
    assert percent(c.total_apr) == Decimal("51.5")
    # capital 10,000: 5,000 margin on each venue, each leg 3 × 5,000 = 15,000 notional
    assert (c.margin_per_venue, c.notional_per_leg) == (Fraction(5_000), Fraction(15_000))


def test_plain_365_over_t_annualisation_gives_27_4_not_the_published_27_3() -> None:
    c = _ref()
    # 0.0015 × 365 / 2 = 0.0015 × 182.5 = 0.27375 → 27.4% (half up): the reference's 27.3% is not this
    assert c.spread_apr == Fraction(27_375, 100_000)
    assert percent(c.spread_apr) == Decimal("27.4")
    # funding unchanged; total 0.27375 + 0.105 + 0.1365 = 0.51525 → 51.5% all the same
    assert c.total_apr == Fraction(51_525, 100_000)
    assert percent(c.total_apr) == Decimal("51.5")


def test_a_364_day_year_is_the_other_reading_that_gives_27_3() -> None:
    # 0.0015 × 364 / 2 = 0.0015 × 182 = 0.273
    assert _ref(year_days="364").spread_apr == Fraction(273, 1000)


def test_the_text_literal_halving_is_not_what_the_published_numbers_use() -> None:
    c = _ref()
    # "3/2 × 7% / 2" taken literally is 5.25%; the published 10.5% is 3/2 × 7%
    assert c.long_funding_apr != Fraction(525, 10_000)
    assert c.long_funding_apr == Fraction(3, 2) * Fraction(7, 100)


def test_funding_flipping_makes_a_leg_pay() -> None:
    # Lighter's funding turns +7% (longs pay): the long leg pays 3/2 × 7% = 10.5% of capital
    c = _ref({"long_funding_apr": "0.07"}, whole_trades=True)
    assert c.long_funding_apr == Fraction(-105, 1000)
    assert percent(c.long_funding_apr) == Decimal("-10.5")
    # total 0.273 − 0.105 + 0.1365 = 0.3045 → 30.5% (half up, 30.45 → 30.5)
    assert percent(c.total_apr) == Decimal("30.5")


def test_leverage_and_days_scale_as_worked_by_hand() -> None:
    # 5x, spread 0.2% over 3 days, no funding: per trade 5/2 × 0.002 = 0.005;
    # APR 0.005 × 365 / 3 = 1.825 / 3 = 0.608333…; whole trades floor(365/3) = 121 → 0.605
    five_x = {"spread": "0.002", "days": "3", "leverage": "5", "long_funding_apr": "0", "short_funding_apr": "0"}
    c = _ref({**five_x, "capital": "1000"})
    assert c.spread_return == Fraction(5, 1000)
    assert c.spread_apr == Fraction(1825, 3000)
    assert c.notional_per_leg == 2500  # 5 × 1000 / 2
    w = _ref(five_x, whole_trades=True)
    assert w.spread_apr == Fraction(605, 1000)


def test_format_carry_rows() -> None:
    rows = dict(format_carry(_ref(whole_trades=True), places=1))
    assert rows["Leverage (each venue)"] == "3x"
    assert rows["Capital (both venues)"] == "$10,000.00"
    assert rows["Margin per venue"] == "$5,000.00"
    assert rows["Notional per leg"] == "$15,000.00"
    assert rows["Spread"] == "0.100% over 2 days"
    assert rows["Spread return per trade"] == "0.150%"
    assert rows["Spread APR"] == "27.3%"
    assert rows["Long-leg funding APR"] == "10.5%"
    assert rows["Short-leg funding APR"] == "13.7%"
    assert rows["Total APR"] == "51.5%"
    assert dict(format_carry(_ref()))["Spread APR"] == "27.38%"  # 27.375


def test_carry_refuses_floats_and_nonsense() -> None:
    with pytest.raises(TypeError):
        spread_funding_carry(
            spread=0.001,  # type: ignore[arg-type]
            days=2,
            leverage=3,
            long_funding_apr=0,
            short_funding_apr=0,
            capital=1,
        )
    for bad in ({"leverage": "0"}, {"days": "0"}, {"capital": "-1"}, {"spread": "abc"}, {"spread": "NaN"}):
        with pytest.raises(ValueError):
            _ref(bad)


# ---------------------------------------------------------------- funding intervals
def test_funding_apr_per_interval() -> None:
    # 0.01% per 8 h: 8,760 / 8 = 1,095 payments → 0.0001 × 1095 = 0.1095 (10.95% APR)
    assert funding_apr("0.0001", 8) == Fraction(1095, 10_000)
    # 4 h: 2,190 payments → 0.219; 1 h: 8,760 → 0.876
    assert funding_apr("0.0001", 4) == Fraction(219, 1000)
    assert funding_apr("0.0001", 1) == Fraction(876, 1000)
    # Lighter's 7% APR paid hourly is 0.07 / 8760 = 7/876000 an hour
    assert funding_apr(Fraction(7, 876_000), 1) == Fraction(7, 100)
    assert funding_apr("-0.00001", 1) == Fraction(-876, 10_000)  # the sign is kept


def test_raw_rates_across_intervals_misrank_by_the_interval_ratio() -> None:
    # the same raw 0.01% is 8× the APR on a 1 h venue as on an 8 h venue: 0.876 / 0.1095 = 8
    assert funding_apr("0.0001", 1) / funding_apr("0.0001", 8) == 8
    # raw 0.005%/1 h looks half of 0.01%/8 h, yet earns 0.00005 × 8760 = 0.438, 4× the 0.1095
    hourly, eight_hourly = funding_apr("0.00005", 1), funding_apr("0.0001", 8)
    assert hourly == Fraction(438, 1000) and hourly / eight_hourly == 4


def test_funding_apr_refuses_bad_intervals_and_floats() -> None:
    with pytest.raises(ValueError):
        funding_apr("0.0001", 0)
    with pytest.raises(TypeError):
        funding_apr(0.0001, 8)  # type: ignore[arg-type]


# ---------------------------------------------------------------- Lighter points
def test_lighter_maker_score_below_at_and_above_2_5b() -> None:
    assert lighter_maker_score(0) == 0
    assert lighter_maker_score("1000000000") == Decimal(1_000_000_000)  # under 2.5B: score = volume
    assert lighter_maker_score(2_500_000_000) == Decimal(2_500_000_000)  # at 2.5B: bonus 0
    # 4.5B: 4.5B + (4.5B − 2.5B) × 0.25 = 4.5B + 0.5B = 5B
    assert lighter_maker_score("4500000000") == Decimal(5_000_000_000)
    # 10B: 10B + 7.5B × 0.25 = 10B + 1.875B = 11.875B
    assert lighter_maker_score(10_000_000_000) == Decimal(11_875_000_000)
    # 2,500,000,004: 4 over → bonus 1 → 2,500,000,005
    assert lighter_maker_score("2500000004") == Decimal(2_500_000_005)
    with pytest.raises(ValueError):
        lighter_maker_score(-1)
    with pytest.raises(TypeError):
        lighter_maker_score(1e9)  # type: ignore[arg-type]


def test_lighter_mm_points_the_reference_example() -> None:
    # LLP 50%, A 30%, B 20% → A = 30% / (1 − 50%) × 50,000 = 30,000, B = 20,000
    pts = lighter_mm_points({"LLP": Decimal("0.5"), "A": Decimal("0.3"), "B": Decimal("0.2")})
    assert pts == {"A": Decimal(30_000), "B": Decimal(20_000)}


def test_lighter_mm_points_worked_by_hand() -> None:
    # LLP 20%, A 60%, B 20%: A = 0.6 / 0.8 × 50,000 = 37,500, B = 0.2 / 0.8 × 50,000 = 12,500
    assert lighter_mm_points({"LLP": "0.2", "A": "0.6", "B": "0.2"}) == {"A": 37_500, "B": 12_500}
    # no LLP entry: nothing removed, A 25% → 12,500, B 75% → 37,500
    assert lighter_mm_points({"A": "0.25", "B": "0.75"}) == {"A": 12_500, "B": 37_500}
    # only my account known: LLP 50%, me 10% → 0.1 / 0.5 × 50,000 = 10,000
    assert lighter_mm_points({"vault": "0.5", "me": "0.1"}, llp_key="vault") == {"me": 10_000}
    # another pool size: 0.3 / 0.5 × 1,000 = 600
    assert lighter_mm_points({"LLP": "0.5", "A": "0.3"}, pool=1000) == {"A": 600}


def test_lighter_mm_points_from_volumes() -> None:
    # volumes LLP 4.5B, A 3B, B 1.875B → scores 5B, 3B + 0.5B × 0.25 = 3.125B, 1.875B; total 10B
    # shares 0.5, 0.3125, 0.1875 → A = 0.3125 / 0.5 × 50,000 = 31,250, B = 18,750
    shares = lighter_mm_shares({"LLP": 4_500_000_000, "A": 3_000_000_000, "B": 1_875_000_000})
    assert shares == {"LLP": Decimal("0.5"), "A": Decimal("0.3125"), "B": Decimal("0.1875")}
    assert lighter_mm_points(shares) == {"A": 31_250, "B": 18_750}


def test_lighter_mm_points_refuses_impossible_shares() -> None:
    for bad in ({"LLP": "0.6", "A": "0.5"}, {"LLP": "1"}, {"A": "-0.1"}, {"A": "1.5"}):
        with pytest.raises(ValueError):
            lighter_mm_points(bad)


# ---------------------------------------------------------------- wear
def test_wear_the_published_extended_lighter_run() -> None:
    # $36.38 on $300k: 1e4 × 36.38 / 300,000 = 363,800 / 300,000 = 1.21266… bps = 0.0121266…%
    w = wear_bps("36.38", 300_000)
    assert _q(w, "0.01") == Decimal("1.21")
    assert _q(w / 100, "0.001") == Decimal("0.012")  # the reference's 0.012%


def test_wear_the_published_backpack_lighter_run_is_a_gain() -> None:
    # −$6.78 on $48,678: −67,800 / 48,678 = −1.39283… bps = −0.0139283…%
    w = wear_bps("-6.78", 48_678)
    assert _q(w, "0.01") == Decimal("-1.39")
    assert _q(w / 100, "0.001") == Decimal("-0.014")  # the reference's −0.014%


def test_farmers_wear_divides_both_venues_losses_by_one_venues_volume() -> None:
    # Extended $20.00 + Lighter $16.38 = $36.38 over ONE venue's $300k → 1.21 bps
    assert _q(farmers_wear_bps("20.00", "16.38", 300_000), "0.01") == Decimal("1.21")
    # dividing by both venues' $600k would halve it: 363,800 / 600,000 = 0.606… → 0.61 bps (wrong)
    assert _q(wear_bps("36.38", 600_000), "0.01") == Decimal("0.61")
    # a loss on one venue and a gain on the other net off: 10 − 4 = 6 on 60,000 → 1 bp exactly
    assert farmers_wear_bps(10, -4, 60_000) == 1


def test_wear_refuses_zero_volume_and_floats() -> None:
    with pytest.raises(ValueError):
        wear_bps(1, 0)
    with pytest.raises(TypeError):
        wear_bps(36.38, 300_000)  # type: ignore[arg-type]

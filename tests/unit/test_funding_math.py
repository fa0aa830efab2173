"""Funding normalisation and carry arithmetic with worked numbers."""

from __future__ import annotations

import pytest

from perpbox.analytics.funding import (
    HOURS_PER_YEAR,
    apr,
    carry,
    half_spread,
    net_carry,
    normalise,
    pairwise,
    per_8h,
    per_hour,
    round_trip_cost,
)


def test_issue_example_1bp_vs_half_bp_per_8h_is_547_5_bps_a_year() -> None:
    a = normalise("binanceusdm", 0.0001, 8, "BTC")   # 1 bp per 8 h
    b = normalise("bybit", 0.00005, 8, "BTC")        # 0.5 bp per 8 h
    [c] = pairwise([a, b])
    assert (c.long_venue, c.short_venue) == ("bybit", "binanceusdm")
    assert c.per_8h * 1e4 == pytest.approx(0.5)
    assert c.apr * 1e4 == pytest.approx(547.5)       # 0.5 bp × 3 × 365


def test_classic_bug_hourly_vs_8_hourly_compared_raw() -> None:
    # Hyperliquid's interest-only rate is 0.00125 %/h, Binance's is 0.01 % per 8 h: the same carry.
    hl = normalise("hyperliquid", 0.0000125, 1, "BTC")
    bn = normalise("binanceusdm", 0.0001, 8, "BTC")
    raw_diff_bps = (bn.rate - hl.rate) * 1e4
    assert raw_diff_bps == pytest.approx(0.875)      # the bug: "0.875 bp per period" → 95.8 % APR of nothing
    assert hl.per_hour == pytest.approx(bn.per_hour)
    assert hl.per_8h == pytest.approx(0.0001) and bn.per_8h == pytest.approx(0.0001)
    assert hl.apr == pytest.approx(0.1095) and bn.apr == pytest.approx(0.1095)  # 10.95 % APR each
    [c] = pairwise([hl, bn])
    assert c.apr == pytest.approx(0.0, abs=1e-15)


def test_unit_conversions() -> None:
    assert per_hour(0.0004, 4) == pytest.approx(0.0001)
    assert per_8h(0.0004, 4) == pytest.approx(0.0008)
    assert apr(0.0001, 1) == pytest.approx(0.876)
    assert apr(-0.0003, 8) == pytest.approx(-0.0003 / 8 * HOURS_PER_YEAR)
    with pytest.raises(ValueError):
        per_hour(0.0001, 0)


def test_pairwise_orders_pairs_by_earnings_and_orients_long_low_short_high() -> None:
    rates = [normalise("hyperliquid", 0.00002, 1, "ETH"),     # 0.2 bp/h
             normalise("binanceusdm", 0.0001, 8, "ETH"),      # 0.125 bp/h
             normalise("okx", -0.0002, 4, "ETH")]             # -0.5 bp/h
    out = pairwise(rates)
    assert [(c.long_venue, c.short_venue) for c in out] == [
        ("okx", "hyperliquid"), ("okx", "binanceusdm"), ("binanceusdm", "hyperliquid")]
    assert [round(c.per_hour * 1e4, 6) for c in out] == [0.7, 0.625, 0.075]
    assert out[0].apr == pytest.approx(0.7e-4 * 8760)  # 61.32 % a year


def test_net_carry_with_fees_spread_and_break_even() -> None:
    # long Bybit at 0.5 bp/8 h, short Binance at 3 bp/8 h → 2.5 bp per 8 h = 0.3125 bp/h.
    c = carry(normalise("bybit", 0.00005, 8, "BTC"), normalise("binanceusdm", 0.0003, 8, "BTC"))
    assert c.per_hour * 1e4 == pytest.approx(0.3125)
    fees = {"bybit": 0.00055, "binanceusdm": 0.0005}          # 5.5 bp and 5 bp taker
    spreads = {"bybit": 0.00001, "binanceusdm": 0.000005}     # half-spreads 0.1 bp and 0.05 bp
    n = net_carry(c, fees, spreads, hold_hours=24 * 30)
    # 2 × (5.5 + 5) + 2 × (0.1 + 0.05) = 21.3 bp round trip
    assert n.cost * 1e4 == pytest.approx(21.3)
    assert n.break_even_hours == pytest.approx(21.3 / 0.3125)  # 68.16 h
    # 30 days: earns 0.3125 × 720 = 225 bp, minus 21.3 = 203.7 bp over 720 h → ×8760/720
    assert n.net_apr == pytest.approx(203.7e-4 / 720 * 8760)
    assert net_carry(c, fees).cost * 1e4 == pytest.approx(21.0)
    assert net_carry(c, fees).net_apr is None


def test_a_losing_pair_never_breaks_even() -> None:
    c = carry(normalise("a", 0.0002, 8), normalise("b", 0.0001, 8))
    n = net_carry(c, {"a": 0.0004, "b": 0.0004}, hold_hours=100)
    assert c.per_hour < 0 and n.break_even_hours == float("inf") and n.net_apr < c.apr


def test_round_trip_and_half_spread() -> None:
    assert round_trip_cost(0.00045, 0.0005) == pytest.approx(0.0019)
    assert half_spread(99.0, 101.0) == pytest.approx(0.01)
    assert half_spread(None, 101.0) is None and half_spread(0.0, 1.0) is None

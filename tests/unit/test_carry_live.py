"""Live carry inputs (``bots.carry_live``) from two fake venues, with the numbers worked by hand:
the mids, the spread, the per-interval funding in the units ``carry.funding_apr`` takes, the
reference's Lighter/Binance example, and which way round the carry is positive."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from fractions import Fraction

import pytest

from perpbox.bots.carry import funding_apr, percent
from perpbox.bots.carry_live import LiveCarry, live_carry_inputs, recommend
from perpbox.bots.venue import Book, FundingRate

D = Decimal


class FakeVenue:
    """Just enough of a ``Venue``: a top of book and a funding rate per coin."""

    def __init__(self, name: str, quotes: dict[str, tuple[str | None, str | None]],
                 rates: dict[str, tuple[str, int]]) -> None:
        self.name = name
        self.quotes, self.rates = quotes, rates

    async def book(self, coin: str) -> Book:
        bid, ask = self.quotes[coin]
        return Book(coin=coin, bids=((D(bid), D(1)),) if bid else (), asks=((D(ask), D(1)),) if ask else (),
                    ts_ms=1_000)

    async def funding(self, coin: str) -> FundingRate:
        rate, hours = self.rates[coin]
        return FundingRate(coin=coin, rate=D(rate), interval_h=hours, mark_px=D(1), ts_ms=2_000)


def _live(long: FakeVenue, lc: str, short: FakeVenue, sc: str) -> LiveCarry:
    return asyncio.run(live_carry_inputs(long, lc, short, sc))  # type: ignore[arg-type]


def test_the_inputs_by_hand() -> None:
    hl = FakeVenue("hl", {"BTC": ("60000", "60001")}, {"BTC": ("0.0000125", 1)})
    bn = FakeVenue("binance", {"BTCUSDT": ("60030", "60032")}, {"BTCUSDT": ("0.0001", 8)})
    live = _live(hl, "BTC", bn, "BTCUSDT")
    # mids: (60,000 + 60,001) / 2 = 60,000.5 and (60,030 + 60,032) / 2 = 60,031
    assert (live.long.mid, live.short.mid) == (D("60000.5"), D("60031"))
    assert (live.long.venue, live.long.coin, live.short.venue, live.short.coin) == ("hl", "BTC", "binance", "BTCUSDT")
    # spread: 60,031 / 60,000.5 − 1 = 30.5 / 60,000.5 = 61 / 120,001 (exact), ≈ 0.0508%
    assert live.spread == Fraction(61, 120_001) and live.spread_pct == Fraction(6100, 120_001)
    # funding as carry takes it: a fraction per interval with the venue's sign, and the interval
    assert (live.long.rate, live.long.interval_h, live.short.rate, live.short.interval_h) == (
        D("0.0000125"), 1, D("0.0001"), 8)
    assert (live.long.rate_pct, live.short.rate_pct) == (D("0.00125"), D("0.01"))
    # APRs: 0.0000125 × 8,760 = 0.1095 and 0.0001 × 1,095 = 0.1095 — the same APR from rates 8× apart
    assert live.long_funding_apr == live.short_funding_apr == Fraction(1095, 10_000)
    assert live.long_funding_apr == funding_apr(live.long.rate, live.long.interval_h)
    # the carry at 2x over 1 day: L/2 = 1; spread 61/120,001 × 365; long pays 0.1095, short earns 0.1095
    c = live.carry(days=1, leverage=2, capital=1000)
    assert c.spread_apr == Fraction(61 * 365, 120_001)
    assert (c.long_funding_apr, c.short_funding_apr) == (Fraction(-1095, 10_000), Fraction(1095, 10_000))
    assert c.total_apr == c.spread_apr


def test_the_references_lighter_binance_example() -> None:
    # Lighter ETH 0.1% below Binance: mids 3,000 and 3,003 → 3,003 / 3,000 − 1 = 0.001 exactly.
    # Lighter pays every hour, Binance every 8 h.  −7% and +9.1% a year are no finite decimals per
    # interval (0.07 / 8,760, 0.091 / 1,095), so the venues quote rounded rates:
    #   Lighter −0.000008 an hour: × 8,760 = −0.07008 APR → 3/2 × 7.008% = 10.512% → 10.5%
    #   Binance 0.00008311 per 8 h: × 1,095 = 0.09100545 APR → 3/2 × 9.100545% = 13.6508…% → 13.7%
    #   spread (whole 2-day trades): 3/2 × 0.1% × 182 = 27.3%; total 51.4628…% → 51.5%
    # — the published 27.3%, 10.5%, 13.7% and 51.5% (carry's existing test of the same example).
    lighter = FakeVenue("lighter", {"ETH": ("2999.9", "3000.1")}, {"ETH": ("-0.000008", 1)})
    binance = FakeVenue("binance", {"ETHUSDT": ("3002.95", "3003.05")}, {"ETHUSDT": ("0.00008311", 8)})
    live = _live(lighter, "ETH", binance, "ETHUSDT")
    assert live.spread == Fraction(1, 1000)
    assert live.long_funding_apr == Fraction(-7008, 100_000)
    assert live.short_funding_apr == Fraction(9_100_545, 100_000_000)
    c = live.carry(days=2, leverage=3, capital=10_000, whole_trades=True)
    assert c.spread_return == Fraction(15, 10_000) and c.spread_apr == Fraction(273, 1000)
    assert c.long_funding_apr == Fraction(3, 2) * Fraction(7008, 100_000)  # 10.512%
    assert c.short_funding_apr == Fraction(3, 2) * Fraction(9_100_545, 100_000_000)  # 13.6508175%
    assert [percent(x) for x in (c.spread_apr, c.long_funding_apr, c.short_funding_apr, c.total_apr)] == [
        D("27.3"), D("10.5"), D("13.7"), D("51.5")]
    rec = recommend(live, days=2, leverage=3, whole_trades=True)
    assert (rec.best, rec.long_venue, rec.short_venue, rec.cheap_venue, rec.notes) == (
        "as given", "lighter", "binance", "lighter", ())


def test_the_exact_reference_rates_to_28_digits() -> None:
    # the rates as 28-digit decimals: −0.07 / 8,760 and 0.091 / 1,095 rounded to 28 significant digits
    lr, sr = D("-0.07") / D(8760), D("0.091") / D(1095)
    lighter = FakeVenue("lighter", {"ETH": ("2999.9", "3000.1")}, {"ETH": (str(lr), 1)})
    binance = FakeVenue("binance", {"ETHUSDT": ("3002.95", "3003.05")}, {"ETHUSDT": (str(sr), 8)})
    c = _live(lighter, "ETH", binance, "ETHUSDT").carry(days=2, leverage=3, capital=10_000, whole_trades=True)
    # carry's test: Lighter 3/2 × 7% = 10.5% and Binance 3 × 9.1% / 2 = 13.65% exactly; here to 1e-25
    assert abs(c.long_funding_apr - Fraction(105, 1000)) < Fraction(1, 10**25)
    assert abs(c.short_funding_apr - Fraction(1365, 10_000)) < Fraction(1, 10**25)
    assert percent(c.total_apr) == D("51.5")


def test_the_other_way_round_is_recommended() -> None:
    # given: long A (mid (100.1 + 100.3) / 2 = 100.2, +0.0001 an hour: longs pay) and short B
    # (mid 100, −0.0001 per 8 h: shorts pay) — wrong on all three counts.  At 2x (L/2 = 1), 2 days:
    a = FakeVenue("A", {"X": ("100.1", "100.3")}, {"X": ("0.0001", 1)})
    b = FakeVenue("B", {"X": ("99.9", "100.1")}, {"X": ("-0.0001", 8)})
    live = _live(a, "X", b, "X")
    rec = recommend(live, days=2, leverage=2)
    # as given: spread 100 / 100.2 − 1 = −1/501 → × 365/2; long A pays 0.876; short B pays 0.1095
    g = rec.as_given
    assert g.spread == Fraction(-1, 501) and g.spread_apr == Fraction(-365, 1002)
    assert (g.long_funding_apr, g.short_funding_apr) == (Fraction(-876, 1000), Fraction(-1095, 10_000))
    # reversed: spread 100.2 / 100 − 1 = 0.002 → 0.365; long B earns 0.1095, short A earns 0.876: 1.3505
    r = rec.reversed
    assert (r.spread_apr, r.long_funding_apr, r.short_funding_apr) == (
        Fraction(365, 1000), Fraction(1095, 10_000), Fraction(876, 1000))
    assert r.total_apr == Fraction(13_505, 10_000)
    assert (rec.best, rec.long_venue, rec.short_venue, rec.cheap_venue) == ("reversed", "B", "A", "B")
    assert rec.carry is r
    assert any("the cheap venue is B" in n for n in rec.notes)
    assert any("long B, short A" in n for n in rec.notes)


def test_spread_and_funding_pulling_apart_and_no_carry() -> None:
    # long the cheap venue (100 vs 100.1: spread 0.001), but its funding is +0.001 an hour (longs pay 8.76 a
    # year): the spread's 0.001 × 365 = 0.365 loses to it; reversed, the spread (−0.1/100.1 × 365) loses but
    # the funding wins: 8.76 − 0.3646… > 0
    cheap = FakeVenue("cheap", {"X": ("99.9", "100.1")}, {"X": ("0.001", 1)})
    dear = FakeVenue("dear", {"X": ("100", "100.2")}, {"X": ("0", 8)})
    rec = recommend(_live(cheap, "X", dear, "X"), days=1, leverage=2)
    assert rec.as_given.total_apr == Fraction(365, 1000) - Fraction(876, 100)
    assert rec.reversed.total_apr == Fraction(-1, 1001) * 365 + Fraction(876, 100)
    assert rec.best == "reversed" and rec.cheap_venue == "cheap"
    assert "the spread and the funding pull different ways" in rec.notes
    # equal mids, no funding: nothing to earn either way
    flat = FakeVenue("f", {"X": ("99", "101")}, {"X": ("0", 1)})
    rec = recommend(_live(flat, "X", flat, "X"), days=1, leverage=2)
    assert rec.best is None and rec.cheap_venue is None and rec.as_given.total_apr == 0
    assert "neither way round carries positively" in rec.notes and "equal mids: no spread to capture" in rec.notes


def test_a_book_with_no_mid_is_refused() -> None:
    one_sided = FakeVenue("o", {"X": ("100", None)}, {"X": ("0", 1)})
    crossed = FakeVenue("c", {"X": ("101", "100")}, {"X": ("0", 1)})
    ok = FakeVenue("k", {"X": ("99", "101")}, {"X": ("0", 1)})
    with pytest.raises(ValueError, match="one-sided"):
        _live(one_sided, "X", ok, "X")
    with pytest.raises(ValueError, match="crossed"):
        _live(ok, "X", crossed, "X")

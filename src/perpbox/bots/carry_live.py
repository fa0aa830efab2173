"""Live inputs for the spread + funding carry (``bots.carry``): each venue's book mid and funding
rate, read now, in the units ``carry.funding_apr`` and ``carry.spread_funding_carry`` take.

* ``spread = short_mid / long_mid − 1`` (a fraction of price, exact): how far the dear (short)
  venue's mid is above the cheap (long) venue's; negative when the "long" venue is in fact the
  dearer one (the trade then loses on the spread);
* each funding rate is the venue's rate per interval as a fraction (not in %), with the venue's
  sign (positive: longs pay shorts), and its interval in hours; ``funding_apr(rate, interval_h)``
  turns it into the APR ``spread_funding_carry`` takes.  The long leg earns when its venue's rate is
  negative, the short leg when its venue's rate is positive (``carry`` applies those signs).

``recommend`` values the trade both ways round (long A / short B, and long B / short A) and says
which one carries positively.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from perpbox.bots.carry import DAYS_PER_YEAR, Carry, Num, funding_apr, spread_funding_carry
from perpbox.bots.venue import Book, FundingRate, Venue


@dataclass(frozen=True, slots=True)
class LegQuote:
    """One venue's side of the carry, as read."""

    venue: str  # Venue.name
    coin: str  # the venue's name for the coin
    bid: Decimal
    ask: Decimal
    mid: Decimal  # (bid + ask) / 2
    book_ts_ms: int
    rate: Decimal  # funding per interval, a fraction, the venue's sign (positive: longs pay)
    interval_h: int
    mark_px: Decimal | None
    funding_ts_ms: int

    @property
    def rate_pct(self) -> Decimal:
        """The rate per interval in % (what ``perpbox carry --long-funding/--short-funding`` take)."""
        return self.rate * 100

    @property
    def apr(self) -> Fraction:
        """The rate as a simple APR of notional, the venue's sign: ``rate × 24 × 365 / interval_h``."""
        return funding_apr(self.rate, self.interval_h)


@dataclass(frozen=True, slots=True)
class LiveCarry:
    long: LegQuote
    short: LegQuote

    @property
    def spread(self) -> Fraction:
        """``short mid / long mid − 1``, a fraction of price (what ``spread_funding_carry`` takes)."""
        return Fraction(self.short.mid) / Fraction(self.long.mid) - 1

    @property
    def spread_pct(self) -> Fraction:
        """The spread in % (what ``perpbox carry --spread`` takes)."""
        return self.spread * 100

    @property
    def long_funding_apr(self) -> Fraction:
        return self.long.apr

    @property
    def short_funding_apr(self) -> Fraction:
        return self.short.apr

    def reversed(self) -> LiveCarry:
        """The same quotes the other way round (long the short venue, short the long one)."""
        return LiveCarry(long=self.short, short=self.long)

    def carry(self, *, days: Num, leverage: Num, capital: Num = 10_000, year_days: Num = DAYS_PER_YEAR,
              whole_trades: bool = False) -> Carry:
        """``spread_funding_carry`` of these inputs."""
        return spread_funding_carry(spread=self.spread, days=days, leverage=leverage,
                                    long_funding_apr=self.long_funding_apr, short_funding_apr=self.short_funding_apr,
                                    capital=capital, year_days=year_days, whole_trades=whole_trades)


def _quote(venue: Venue, coin: str, book: Book, rate: FundingRate) -> LegQuote:
    mid = book.mid()
    if mid is None:
        raise ValueError(f"{venue.name}: the {coin} book is one-sided (no mid)")
    bid, ask = book.bids[0][0], book.asks[0][0]
    if bid >= ask:
        raise ValueError(f"{venue.name}: the {coin} book is crossed or locked ({bid} ≥ {ask})")
    if rate.interval_h <= 0:
        raise ValueError(f"{venue.name}: {coin} funding interval {rate.interval_h} h")
    return LegQuote(venue=venue.name, coin=coin, bid=bid, ask=ask, mid=mid, book_ts_ms=book.ts_ms, rate=rate.rate,
                    interval_h=rate.interval_h, mark_px=rate.mark_px, funding_ts_ms=rate.ts_ms)


async def live_carry_inputs(long: Venue, long_coin: str, short: Venue, short_coin: str) -> LiveCarry:
    """Read both venues' book and funding (concurrently) into the carry's inputs.  A one-sided,
    crossed or locked book is a ValueError: there is no mid to price the spread on."""
    lb, lf, sb, sf = await asyncio.gather(long.book(long_coin), long.funding(long_coin), short.book(short_coin),
                                          short.funding(short_coin))
    return LiveCarry(long=_quote(long, long_coin, lb, lf), short=_quote(short, short_coin, sb, sf))


@dataclass(frozen=True, slots=True)
class Recommendation:
    as_given: Carry  # long the given long venue, short the given short venue
    reversed: Carry  # the other way round
    best: str | None  # "as given" | "reversed" | None (neither carries positively)
    long_venue: str  # of the best way round (the given one when neither is positive)
    short_venue: str
    cheap_venue: str | None  # the venue with the lower mid (None: equal mids)
    notes: tuple[str, ...]

    @property
    def carry(self) -> Carry:
        return self.reversed if self.best == "reversed" else self.as_given


def recommend(live: LiveCarry, *, days: Num, leverage: Num, capital: Num = 10_000,
              year_days: Num = DAYS_PER_YEAR, whole_trades: bool = False) -> Recommendation:
    """Which way round the carry is positive: both directions valued with ``spread_funding_carry``;
    the larger positive total wins.  Notes say when the cheap venue is not the one given as long,
    and when the spread and the funding pull different ways."""
    given, other = (x.carry(days=days, leverage=leverage, capital=capital, year_days=year_days,
                            whole_trades=whole_trades) for x in (live, live.reversed()))
    lv, sv = live.long.venue, live.short.venue
    notes: list[str] = []
    if live.long.mid > live.short.mid:
        cheap: str | None = sv
        notes.append(f"the cheap venue is {sv} ({live.short.coin} mid {live.short.mid} < {live.long.coin} mid "
                     f"{live.long.mid} on {lv}), not {lv}: long {lv} / short {sv} loses on the spread")
    elif live.long.mid < live.short.mid:
        cheap = lv
    else:
        cheap = None
        notes.append("equal mids: no spread to capture")
    if given.total_apr > 0 and given.total_apr >= other.total_apr:
        best: str | None = "as given"
    elif other.total_apr > 0:
        best = "reversed"
        notes.append(f"the carry is positive the other way round: long {sv}, short {lv}")
    else:
        best = None
        notes.append("neither way round carries positively")
    chosen = other if best == "reversed" else given
    funding = chosen.long_funding_apr + chosen.short_funding_apr
    if chosen.spread_apr * funding < 0:
        notes.append("the spread and the funding pull different ways")
    long_v, short_v = (sv, lv) if best == "reversed" else (lv, sv)
    return Recommendation(as_given=given, reversed=other, best=best, long_venue=long_v, short_venue=short_v,
                          cheap_venue=cheap, notes=tuple(notes))

"""The spread + funding carry of a two-venue trade: long the cheap venue, short the dear one.

Exact: every input is parsed (from ``str``, ``int``, ``Decimal`` or ``Fraction``; never a float) into
a ``fractions.Fraction`` and every result is a ``Fraction``; only ``percent``/``format_carry`` round,
and only for display.

The model (hedging-bots.md §1, "Spread + funding arbitrage")
------------------------------------------------------------
Capital ``C`` is split equally between the two venues as margin (``C/2`` each) and each venue runs
its leg at leverage ``L``, so each leg's notional is ``N = L·C/2`` and the notional per unit of
*total* capital is ``L/2`` (the reference's "3/2" at 3x).  Every return below is a fraction of the
total capital ``C``:

* spread: the dear venue trades ``s`` (a fraction of price) above the cheap one; when the gap
  closes the pair gains ``s·N``, i.e. ``(L/2)·s`` of capital per trade, in ``T`` days;
* funding: each leg earns its venue's funding on its own notional ``N``; a venue's rate ``r`` given
  as an APR of notional (the venue's sign: positive ⇒ longs pay shorts) is worth ``(L/2)·(−r)`` a
  year of capital to the long leg and ``(L/2)·r`` to the short leg;
* total APR = spread APR + long-leg funding APR + short-leg funding APR.

How this reproduces the reference's published numbers (3x, s = 0.1%, T = 2 days, Lighter −7% APR
long, Binance +9.1% APR short), each rounded half-up to 0.1 percentage point:

* spread per trade: ``3/2 × 0.1% = 0.15%`` (the reference writes "3/2 × 0.1% / 2 = 0.15%": the
  trailing "/ 2" is the 2 days of the convergence, not a factor — applied, it would be 0.075%);
* spread APR: ``0.15% × 182 = 27.3%`` — the trade repeated over the ``floor(365/2) = 182`` whole
  2-day periods of a year (``whole_trades=True``; a 364-day year, ``year_days=364``, gives the same
  here).  The plain ``0.15% × 365/2 = 27.375%`` (the default) rounds to 27.4%, not 27.3%;
* Lighter funding: ``3/2 × 7% = 10.5%`` (the reference's "3/2 × 7% / 2" halves twice; taken
  literally it is 5.25%, so its trailing "/ 2" is a slip — the halving is already the "3/2");
* Binance funding: ``3 × 9.1% / 2 = 13.65% → 13.7%`` — the same ``(L/2)·r`` written ``L·r/2``
  (half-up rounding is needed here: half-even would print 13.6%);
* total: ``27.3% + 10.5% + 13.65% = 51.45% → 51.5%`` (and ``51.525% → 51.5%`` with the plain
  ``365/T`` spread APR), the reference's "≈ 51.5%".

Rejected readings: returns on ONE venue's margin ``C/2`` double everything (Lighter funding
``L·r`` = 21%, spread 0.3% per trade = 54.75% APR); the text's arithmetic taken literally gives a
spread of 0.075% per trade and Lighter 5.25% (total 27.3 + 5.25 + 13.65 = 46.2% even with the
published spread APR).  Neither matches.

Funding rates published per interval convert with ``funding_apr``: venues pay every 1 h (Lighter),
4 h (some Aster symbols) or 8 h (GRVT, edgeX, Backpack, Paradex), so the same raw number is worth 8× more per
year on a 1 h venue than on an 8 h one; never compare raw per-interval rates.

Not modelled: fees and slippage of the four fills, funding changing or flipping sign, a spread that
never converges or widens, liquidation of a 3x leg in a gap (the risks the reference names).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

Num = str | int | Decimal | Fraction

DAYS_PER_YEAR = 365
HOURS_PER_DAY = 24


def to_fraction(value: Num, name: str = "value") -> Fraction:
    """Parse a number exactly; a float (or a bool) is refused, never rounded into the maths."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal | Fraction):
        raise TypeError(f"{name} must be str, int, Decimal or Fraction, not {type(value).__name__}")
    try:
        return Fraction(value.strip()) if isinstance(value, str) else Fraction(value)
    except (ValueError, ZeroDivisionError, OverflowError) as exc:  # "abc", "1/0", NaN, Infinity
        raise ValueError(f"{name} is not a finite number: {value!r}") from exc


def funding_apr(rate_per_interval: Num, interval_hours: Num, year_days: Num = DAYS_PER_YEAR) -> Fraction:
    """Simple (not compounded) APR of a funding rate paid every ``interval_hours`` hours, exactly:
    ``rate × 24 × year_days / interval_hours`` (× 8,760 for a 1 h venue, × 2,190 for 4 h, × 1,095
    for 8 h).  The sign is kept (positive ⇒ longs pay shorts)."""
    hours = to_fraction(interval_hours, "interval_hours")
    days = to_fraction(year_days, "year_days")
    if hours <= 0:
        raise ValueError(f"interval_hours must be positive, got {interval_hours!r}")
    if days <= 0:
        raise ValueError(f"year_days must be positive, got {year_days!r}")
    return to_fraction(rate_per_interval, "rate_per_interval") * HOURS_PER_DAY * days / hours


@dataclass(frozen=True, slots=True)
class Carry:
    """A carry estimate; every rate is a fraction of the total capital (both venues' margin)."""

    leverage: Fraction  # L on each venue
    spread: Fraction  # s, a fraction of price
    days: Fraction  # T, days for the spread to converge
    spread_return: Fraction  # (L/2)·s, per trade
    spread_apr: Fraction  # spread_return × 365/T (or × floor(365/T) whole trades)
    long_funding_apr: Fraction  # (L/2)·(−r_long): funding the long leg receives (negative: pays)
    short_funding_apr: Fraction  # (L/2)·r_short: funding the short leg receives (negative: pays)
    total_apr: Fraction
    capital: Fraction  # total, USD
    margin_per_venue: Fraction  # capital / 2
    notional_per_leg: Fraction  # L × capital / 2


def spread_funding_carry(
    *,
    spread: Num,
    days: Num,
    leverage: Num,
    long_funding_apr: Num,
    short_funding_apr: Num,
    capital: Num,
    year_days: Num = DAYS_PER_YEAR,
    whole_trades: bool = False,
) -> Carry:
    """The carry of long-cheap / short-dear with margin on both venues (see the module docstring).

    * ``spread``: how far the dear (short) venue's price is above the cheap (long) venue's, as a
      fraction of price (``"0.001"`` = 0.1%); negative if it is below (the trade loses on it);
    * ``days``: the days ``T`` the spread takes to converge (> 0);
    * ``leverage``: ``L``, each venue's leg notional over that venue's margin (> 0);
    * ``long_funding_apr`` / ``short_funding_apr``: the long venue's and the short venue's funding
      rate as an APR of notional, with the venue's sign (positive ⇒ longs pay shorts; the
      reference's Lighter is ``"-0.07"``, Binance ``"0.091"``); convert a per-interval rate with
      ``funding_apr`` first;
    * ``capital``: total USD posted across both venues (half on each, ≥ 0);
    * ``year_days``: days in the year of the APRs (365);
    * ``whole_trades``: annualise the spread over the ``floor(year_days / T)`` whole trades that fit
      in a year instead of ``year_days / T`` (this is what reproduces the reference's 27.3%).
    """
    lev = to_fraction(leverage, "leverage")
    t = to_fraction(days, "days")
    year = to_fraction(year_days, "year_days")
    cap = to_fraction(capital, "capital")
    if lev <= 0:
        raise ValueError(f"leverage must be positive, got {leverage!r}")
    if t <= 0:
        raise ValueError(f"days must be positive, got {days!r}")
    if year <= 0:
        raise ValueError(f"year_days must be positive, got {year_days!r}")
    if cap < 0:
        raise ValueError(f"capital must not be negative, got {capital!r}")
    s = to_fraction(spread, "spread")
    per_capital = lev / 2  # notional per unit of total capital
    spread_return = per_capital * s
    trades_a_year = Fraction(year // t) if whole_trades else year / t
    spread_apr = spread_return * trades_a_year
    long_apr = per_capital * -to_fraction(long_funding_apr, "long_funding_apr")
    short_apr = per_capital * to_fraction(short_funding_apr, "short_funding_apr")
    return Carry(
        leverage=lev,
        spread=s,
        days=t,
        spread_return=spread_return,
        spread_apr=spread_apr,
        long_funding_apr=long_apr,
        short_funding_apr=short_apr,
        total_apr=spread_apr + long_apr + short_apr,
        capital=cap,
        margin_per_venue=cap / 2,
        notional_per_leg=lev * cap / 2,
    )


def round_half_up(value: Fraction, places: int) -> Decimal:
    """``value`` rounded to ``places`` decimals, halves away from zero, exactly (no float)."""
    scaled = abs(value) * 10**places
    whole = int(scaled + Fraction(1, 2))  # floor(x + 1/2) for x ≥ 0
    return Decimal(-whole if value < 0 else whole).scaleb(-places)  # int −0 is 0: no "-0.0"


def percent(value: Fraction, places: int = 1) -> Decimal:
    """A fraction as percentage points rounded half-up (``Fraction(273, 1000)`` → ``27.3``)."""
    return round_half_up(value * 100, places)


def format_carry(result: Carry, places: int = 2) -> list[tuple[str, str]]:
    """(label, value) rows for a table; APRs rounded half-up to ``places`` decimals, the spread and
    the return per trade (fractions of a percent) to ``places + 2``."""

    def pct(x: Fraction) -> str:
        return f"{percent(x, places)}%"

    def usd(x: Fraction) -> str:
        return f"${round_half_up(x, 2):,}"

    def plain(x: Fraction) -> str:
        return f"{x.numerator}" if x.denominator == 1 else f"{round_half_up(x, 4).normalize()}"

    return [
        ("Leverage (each venue)", f"{plain(result.leverage)}x"),
        ("Capital (both venues)", usd(result.capital)),
        ("Margin per venue", usd(result.margin_per_venue)),
        ("Notional per leg", usd(result.notional_per_leg)),
        ("Spread", f"{percent(result.spread, places + 2)}% over {plain(result.days)} days"),
        ("Spread return per trade", f"{percent(result.spread_return, places + 2)}%"),
        ("Spread APR", pct(result.spread_apr)),
        ("Long-leg funding APR", pct(result.long_funding_apr)),
        ("Short-leg funding APR", pct(result.short_funding_apr)),
        ("Total APR", pct(result.total_apr)),
    ]

"""``perpbox carry``: the spread + funding carry of long-the-cheap / short-the-dear with margin on both
venues (``bots.carry``), from a spread and rates typed in (manual mode) or read now from two accounts'
venues (live mode: ``bots.carry_live`` — each venue's book mid and funding rate)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import httpx
import typer

from perpbox.bots.carry import Carry, format_carry, funding_apr, percent, spread_funding_carry

if TYPE_CHECKING:
    from perpbox.bots.carry_live import LegQuote, LiveCarry
    from perpbox.bots.venue import Book, FundingRate, Venue

T = TypeVar("T")

MANUAL, LIVE = "Manual mode (rates typed in)", "Live mode (read from two accounts' venues)"
JSON_PLACES = 18  # a fraction that does not terminate is written rounded half-up to this many places


class VenueFailed(Exception):
    """A venue did not answer a read of the carry's inputs (or answered something unusable)."""

    def __init__(self, venue: str, what: str, error: BaseException) -> None:
        text = str(error).strip().splitlines()
        reason = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
        if isinstance(error, httpx.HTTPError):
            with contextlib.suppress(RuntimeError):  # an httpx error made without its request has none
                reason += f" ({error.request.url})"
        super().__init__(f"venue {venue}: reading the {what} failed: {reason}")
        self.venue = venue


def _is_venue_error(error: BaseException) -> bool:
    """What a venue read raises when the venue did not answer, refused, or answered something the
    adapter cannot use: httpx's errors (the Hyperliquid adapter), the ccxt adapter's ``VenueReadError``
    (``VenueUnsupported`` is one) and ``NotListed`` (a ValueError), and the ValueError / KeyError /
    TypeError / IndexError of an answer that is not what the venue's API documents."""
    if isinstance(error, httpx.HTTPError | OSError | ValueError | KeyError | TypeError | IndexError):
        return True
    # the ccxt adapter (and ccxt, ~2 s to import) is loaded only when an account uses it; an
    # exception of its classes cannot exist before it is
    ccxt_venue = sys.modules.get("perpbox.bots.ccxt_venue")
    return ccxt_venue is not None and isinstance(error, ccxt_venue.VenueReadError)


class _Reads:
    """The two reads the carry makes of a venue (book, funding), each failure raised as
    ``VenueFailed`` naming the venue; the tasks reading are kept so a failure elsewhere can cancel them."""

    def __init__(self, venue: Venue, tasks: set[asyncio.Task[Any]]) -> None:
        self.venue = venue
        self.name = venue.name
        self.tasks = tasks

    async def book(self, coin: str) -> Book:
        return await self._read(f"{coin} book", self.venue.book(coin))

    async def funding(self, coin: str) -> FundingRate:
        return await self._read(f"{coin} funding", self.venue.funding(coin))

    async def _read(self, what: str, call: Awaitable[T]) -> T:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            return await call
        except Exception as e:
            if not _is_venue_error(e):
                raise
            raise VenueFailed(self.name, what, e) from None


# -- numbers as text --------------------------------------------------------------------------------

def _dec(x: Decimal) -> str:
    """A venue's decimal as written, never in exponent form."""
    return format(x, "f")


def _plain(x: Decimal) -> str:
    """A decimal worked out here (a rate × 100): no exponent, no trailing zeros."""
    text = format(x, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _frac(x: Fraction) -> str:
    """A fraction as a decimal string: exact when it terminates, else rounded half-up to
    ``JSON_PLACES`` places; no exponent, no trailing zeros."""
    den, twos, fives = x.denominator, 0, 0
    while den % 2 == 0:
        den, twos = den // 2, twos + 1
    while den % 5 == 0:
        den, fives = den // 5, fives + 1
    places = max(twos, fives) if den == 1 else JSON_PLACES
    whole = int(abs(x) * 10**places + Fraction(1, 2))  # floor(|x|·10^p + 1/2): half-up
    digits = str(whole).rjust(places + 1, "0")
    text = digits[: len(digits) - places] + ("." + digits[len(digits) - places:] if places else "")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return ("-" if x < 0 and whole else "") + text


def _carry_json(c: Carry) -> dict[str, str]:
    """A carry's numbers: rates as fractions of the total capital (0.01 = 1%), money in USD."""
    return {"leverage": _frac(c.leverage), "days": _frac(c.days), "capital": _frac(c.capital),
            "margin_per_venue": _frac(c.margin_per_venue), "notional_per_leg": _frac(c.notional_per_leg),
            "spread": _frac(c.spread), "spread_return": _frac(c.spread_return), "spread_apr": _frac(c.spread_apr),
            "long_funding_apr": _frac(c.long_funding_apr), "short_funding_apr": _frac(c.short_funding_apr),
            "total_apr": _frac(c.total_apr)}


def _leg_json(q: LegQuote) -> dict[str, object]:
    return {"account": q.venue, "coin": q.coin, "bid": _dec(q.bid), "ask": _dec(q.ask), "mid": _dec(q.mid),
            "rate": _dec(q.rate), "rate_pct": _plain(q.rate_pct), "interval_h": str(q.interval_h),
            "funding_apr": _frac(q.apr), "mark_px": None if q.mark_px is None else _dec(q.mark_px),
            "book_ts_ms": q.book_ts_ms, "funding_ts_ms": q.funding_ts_ms}


def _echo_json(obj: object) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def _print_carry(result: Carry, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("")
    table.add_column("", justify="right")
    for k, v in format_carry(result):
        table.add_row(k, v)
    Console(markup=False).print(table)


# -- the command ------------------------------------------------------------------------------------

def carry_command(
    ctx: typer.Context,
    days: Annotated[str, typer.Option(help="Days for the spread to converge.")],
    leverage: Annotated[str, typer.Option(help="Leverage on each venue.")],
    capital: Annotated[str, typer.Option(help="USD posted across both venues.")] = "10000",
    whole_trades: Annotated[bool, typer.Option(
        "--whole-trades", help="Annualise the spread over the whole trades that fit in a year, floor(365/days), "
        "instead of 365/days (how the reference gets 27.3%).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object (numbers as decimal strings: "
                                           "rates as fractions, 0.01 = 1%) instead of tables.")] = False,
    spread: Annotated[str | None, typer.Option(
        help="How far the dear (short) venue is above the cheap one, in %.", rich_help_panel=MANUAL)] = None,
    long_funding: Annotated[str | None, typer.Option(
        help="The long venue's funding rate per interval, in %.", rich_help_panel=MANUAL)] = None,
    short_funding: Annotated[str | None, typer.Option(
        help="The short venue's funding rate per interval, in %.", rich_help_panel=MANUAL)] = None,
    long_interval_h: Annotated[str, typer.Option(
        help="The long venue's funding interval (hours).", rich_help_panel=MANUAL)] = "1",
    short_interval_h: Annotated[str, typer.Option(
        help="The short venue's funding interval (hours).", rich_help_panel=MANUAL)] = "8",
    accounts: Annotated[Path | None, typer.Option(
        help="The accounts file (TOML): live mode, the spread and funding read now from the venues.",
        rich_help_panel=LIVE)] = None,
    long: Annotated[str | None, typer.Option(help="The account to go long on.", rich_help_panel=LIVE)] = None,
    short: Annotated[str | None, typer.Option(help="The account to go short on.", rich_help_panel=LIVE)] = None,
    coin: Annotated[str | None, typer.Option(help="The coin, as both venues name it.", rich_help_panel=LIVE)]
    = None,
    long_coin: Annotated[str | None, typer.Option(help="The long venue's name for the coin (default: --coin).",
                                                  rich_help_panel=LIVE)] = None,
    short_coin: Annotated[str | None, typer.Option(help="The short venue's name for the coin (default: --coin).",
                                                   rich_help_panel=LIVE)] = None,
    auto_direction: Annotated[bool, typer.Option(
        "--auto-direction", help="Value both ways round and show the one that carries positively (the larger).",
        rich_help_panel=LIVE)] = False,
) -> None:
    """Spread + funding carry of long-the-cheap / short-the-dear with margin on both venues: the APR
    of each part and the total (rates with the venue's sign: positive, longs pay).

    Manual mode: the spread and both venues' funding typed in.  Live mode (--accounts): each venue's
    book mid (best bid + best ask) / 2 and current funding rate read now, the spread
    short mid / long mid - 1; it prints the inputs read, the carry, and notes on the direction.

    Example, manual (the reference's Lighter/Binance case, rates per interval; prints 27.30% + 10.51% +
    13.65% = 51.46%, the reference's 27.3% + 10.5% + 13.7% = 51.5%):

      perpbox carry --spread 0.1 --days 2 --leverage 3 --long-funding -0.0008 --long-interval-h 1
      --short-funding 0.008311 --short-interval-h 8 --whole-trades

    Examples, live (accounts as perpbox hedge takes them):

      perpbox carry --accounts accounts.toml --long hl_a --short binance --coin BTC --short-coin BTC/USDT:USDT
      --days 2 --leverage 3

      perpbox carry --accounts accounts.toml --long hl_a --short hl_b --coin ETH --days 2 --leverage 3
      --capital 20000 --auto-direction --json

    Exit codes: 0 done; 1 an unusable accounts file, a venue that did not answer, or a one-sided or
    crossed book; 2 a bad option.
    """

    def given(name: str) -> bool:
        # by name: typer ships its own copy of click, whose ParameterSource is not click's
        source = ctx.get_parameter_source(name)
        return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")

    if accounts is not None:
        manual_only = [opt for opt, name in (("--spread", "spread"), ("--long-funding", "long_funding"),
                                             ("--short-funding", "short_funding"),
                                             ("--long-interval-h", "long_interval_h"),
                                             ("--short-interval-h", "short_interval_h")) if given(name)]
        if manual_only:
            raise typer.BadParameter(f"{', '.join(manual_only)}: manual-mode options, not allowed with --accounts "
                                     "(live mode reads the spread, the funding and its interval from the venues)")
        missing = [opt for opt, value in (("--long", long), ("--short", short)) if value is None]
        if coin is None and (long_coin is None or short_coin is None):
            missing.append("--coin")
        if missing:
            raise typer.BadParameter(f"live mode (--accounts) needs {', '.join(missing)}")
        assert long is not None and short is not None
        lc, sc = long_coin or coin, short_coin or coin
        assert lc is not None and sc is not None
        if long == short and lc == sc:
            raise typer.BadParameter(f"--long and --short are the same account and coin ({long}, {lc})")
        _check_numbers(days, leverage, capital)
        _live(accounts, long, lc, short, sc, days=days, leverage=leverage, capital=capital,
              whole_trades=whole_trades, auto_direction=auto_direction, json_out=json_out)
        return
    live_only = [opt for opt, name in (("--long", "long"), ("--short", "short"), ("--coin", "coin"),
                                       ("--long-coin", "long_coin"), ("--short-coin", "short_coin"),
                                       ("--auto-direction", "auto_direction")) if given(name)]
    if live_only:
        raise typer.BadParameter(f"{', '.join(live_only)}: live-mode options, they need --accounts FILE")
    missing = [opt for opt, value in (("--spread", spread), ("--long-funding", long_funding),
                                      ("--short-funding", short_funding)) if value is None]
    if missing:
        raise typer.BadParameter(f"manual mode needs {', '.join(missing)} (or --accounts FILE for live mode)")
    assert spread is not None and long_funding is not None and short_funding is not None
    _manual(spread, long_funding, short_funding, long_interval_h, short_interval_h, days=days, leverage=leverage,
            capital=capital, whole_trades=whole_trades, json_out=json_out)


def _check_numbers(days: str, leverage: str, capital: str) -> None:
    """--days, --leverage and --capital as the carry takes them (before any venue is asked)."""
    try:
        spread_funding_carry(spread=0, days=days, leverage=leverage, long_funding_apr=0, short_funding_apr=0,
                             capital=capital)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def _manual(spread: str, long_funding: str, short_funding: str, long_interval_h: str, short_interval_h: str, *,
            days: str, leverage: str, capital: str, whole_trades: bool, json_out: bool) -> None:
    def pct(text: str, name: str) -> Decimal:
        try:
            return Decimal(text) / 100
        except InvalidOperation:
            raise typer.BadParameter(f"{name}: {text!r} is not a number") from None

    try:
        s, long_rate, short_rate = pct(spread, "--spread"), pct(long_funding, "--long-funding"), pct(
            short_funding, "--short-funding")
        long_apr, short_apr = funding_apr(long_rate, long_interval_h), funding_apr(short_rate, short_interval_h)
        result = spread_funding_carry(spread=s, days=days, leverage=leverage, long_funding_apr=long_apr,
                                      short_funding_apr=short_apr, capital=capital, whole_trades=whole_trades)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    if json_out:
        _echo_json({"mode": "manual", "whole_trades": whole_trades, "inputs": {
            "spread": _frac(Fraction(s)),
            "long": {"rate": _dec(long_rate), "interval_h": long_interval_h.strip(), "funding_apr": _frac(long_apr)},
            "short": {"rate": _dec(short_rate), "interval_h": short_interval_h.strip(),
                      "funding_apr": _frac(short_apr)}}, "carry": _carry_json(result)})
        return
    _print_carry(result, "spread + funding carry")


def _live(accounts: Path, long: str, long_coin: str, short: str, short_coin: str, *, days: str, leverage: str,
          capital: str, whole_trades: bool, auto_direction: bool, json_out: bool) -> None:
    from perpbox.bots import accounts as accounts_file
    from perpbox.bots.carry_live import live_carry_inputs, recommend

    opened: list[Venue] = []
    try:
        specs = accounts_file.load_accounts(accounts)
        for name in (long, short):
            if name not in specs:
                raise accounts_file.AccountsError(f"{accounts}: no account [{name}]")
        for name in dict.fromkeys((long, short)):  # one venue when both legs trade on one account
            opened.append(accounts_file.open_venue(specs[name]))
    except accounts_file.AccountsError as e:
        if opened:
            asyncio.run(_close(opened))
        typer.echo(f"carry: {e}", err=True)
        raise typer.Exit(1) from None
    long_venue, short_venue = opened[0], opened[-1]

    async def read() -> LiveCarry:
        tasks: set[asyncio.Task[Any]] = set()
        try:
            return await live_carry_inputs(cast("Venue", _Reads(long_venue, tasks)), long_coin,
                                           cast("Venue", _Reads(short_venue, tasks)), short_coin)
        finally:  # a read that failed leaves the others running: stop them before closing their clients
            pending = [t for t in tasks if not t.done() and t is not asyncio.current_task()]
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await _close(opened)

    try:
        live = asyncio.run(read())
    except (VenueFailed, ValueError) as e:  # a venue's failure; a one-sided or crossed book
        typer.echo(f"carry: {e}", err=True)
        raise typer.Exit(1) from None
    rec = recommend(live, days=days, leverage=leverage, capital=capital, whole_trades=whole_trades)
    reverse = auto_direction and rec.best == "reversed"
    chosen, legs = (rec.reversed, live.reversed()) if reverse else (rec.as_given, live)
    if auto_direction:
        direction = {"as given": "recommended direction (as given)", "reversed":
                     "recommended direction (the reverse of the one given)"}.get(
            str(rec.best), "neither way round carries positively: the direction given")
    else:
        direction = "direction as given"
    direction += f": long {legs.long.venue} {legs.long.coin} / short {legs.short.venue} {legs.short.coin}"
    if json_out:
        _echo_json({"mode": "live", "whole_trades": whole_trades,
                    "inputs": {"long": _leg_json(live.long), "short": _leg_json(live.short),
                               "spread": _frac(live.spread)},
                    "direction": "reversed" if reverse else "as given", "auto_direction": auto_direction,
                    "recommended": rec.best, "cheap_venue": rec.cheap_venue,
                    "carry": {"long": legs.long.venue, "long_coin": legs.long.coin, "short": legs.short.venue,
                              "short_coin": legs.short.coin, **_carry_json(chosen)},
                    "as_given": _carry_json(rec.as_given), "reversed": _carry_json(rec.reversed),
                    "notes": list(rec.notes)})
        return
    _print_inputs(live)
    typer.echo(direction)
    _print_carry(chosen, f"spread + funding carry: long {legs.long.venue} / short {legs.short.venue}")
    if rec.notes:
        typer.echo("notes:")
        for note in rec.notes:
            typer.echo(f"  - {note}")


async def _close(venues: list[Venue]) -> None:
    for venue in venues:
        with contextlib.suppress(Exception):  # a close that fails changes nothing the carry read
            await venue.aclose()


def _print_inputs(live: LiveCarry) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="live inputs")
    table.add_column("")
    for role, q in (("long", live.long), ("short", live.short)):
        table.add_column(f"{role}: {q.venue}", justify="right")
    rows: list[tuple[str, str, str]] = [
        ("Coin", live.long.coin, live.short.coin),
        ("Bid", _dec(live.long.bid), _dec(live.short.bid)),
        ("Ask", _dec(live.long.ask), _dec(live.short.ask)),
        ("Mid", _dec(live.long.mid), _dec(live.short.mid)),
        ("Funding per interval", f"{_plain(live.long.rate_pct)}%", f"{_plain(live.short.rate_pct)}%"),
        ("Funding interval", f"{live.long.interval_h} h", f"{live.short.interval_h} h"),
        ("Funding APR", f"{percent(live.long.apr, 2)}%", f"{percent(live.short.apr, 2)}%"),
    ]
    for row in rows:
        table.add_row(*row, end_section=row[0] == "Mid")
    Console(markup=False).print(table)
    typer.echo(f"spread (short mid / long mid - 1): {percent(live.spread, 4)}%")


def register(app: typer.Typer) -> None:
    app.command("carry")(carry_command)

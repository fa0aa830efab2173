"""``perpbox carry`` (``perpbox.cli.carry``): the manual mode on the reference's Lighter/Binance example
(hedging-bots.md §1), the manual/live exclusivity, and the live mode on fake venues whose books and
funding are fixed here — every expected number worked by hand from the model in ``bots/carry.py``'s
docstring: notional per unit of total capital ``L/2``; spread return ``(L/2)·s`` per trade, ``× 365/T``
a year (``× floor(365/T)`` with --whole-trades); long leg ``(L/2)·(−r_long)``, short leg ``(L/2)·r_short``
with ``r`` a venue's funding APR, ``rate per interval × 24 × 365 / interval_h``."""

from __future__ import annotations

import json
import re
import socket
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from eth_account import Account
from typer.testing import CliRunner, Result

from perpbox.bots import accounts as accounts_file
from perpbox.bots.venue import Book, FundingRate
from perpbox.cli import carry

D = Decimal


def _app() -> typer.Typer:
    """The command as ``perpbox`` registers it (a callback keeps ``carry`` a subcommand)."""
    app = typer.Typer(add_completion=False)

    @app.callback()
    def _root() -> None:
        """perpbox (test app)"""

    carry.register(app)
    return app


def _run(*args: str) -> Result:
    return CliRunner().invoke(_app(), ["carry", *args])


def _flat(text: str) -> str:
    """Output with the boxes and wrapping of rich's panels and tables taken out."""
    return " ".join(re.sub(r"[│╭╮╰╯─┃┏┓┗┛━┡┩╇┳┻┣┫╋┃]", " ", text).split())


def _rows(text: str) -> dict[str, list[str]]:
    """A rich table's rows, label → the other cells."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0]:
            out[cells[0]] = cells[1:]
    return out


def _round1(x: Fraction) -> Decimal:
    """Percentage points to one decimal, halves up (how the reference rounds)."""
    return D(int(x * 10 + Fraction(1, 2))).scaleb(-1)


# ---------------------------------------------------------------------------------------- manual mode

# hedging-bots.md §1: "Lighter ETH perp 0.1% below Binance, Lighter funding negative, Binance positive →
# long Lighter, short Binance. At 3x with margin on both venues: spread convergence in 2 days = 0.15%
# (27.3% APR), Lighter funding 7% APR → 10.5%, Binance 9.1% → 13.7%; total ≈ 51.5% APR."
# Venues quote a rate per interval, and −7% / 8,760 h and 9.1% / 1,095 eight-hour periods do not
# terminate, so the example types Lighter's hourly rate −0.0008% (−0.0008% × 8,760 = −7.008% a year)
# and Binance's 8-hourly 0.008311% (0.008311% × 1,095 = 9.100545% a year).
REFERENCE = ["--spread", "0.1", "--days", "2", "--leverage", "3", "--long-funding", "-0.0008", "--long-interval-h",
             "1", "--short-funding", "0.008311", "--short-interval-h", "8"]
# by hand, in percentage points of the total capital (L/2 = 3/2):
SPREAD_PER_TRADE = Fraction(3, 2) * Fraction(1, 10)  # 0.15
SPREAD_APR_WHOLE = SPREAD_PER_TRADE * 182  # floor(365 / 2) = 182 trades: 27.3
SPREAD_APR_PLAIN = SPREAD_PER_TRADE * Fraction(365, 2)  # 27.375
LIGHTER = Fraction(3, 2) * Fraction(8, 10_000) * 8760  # the long leg receives −(−7.008%) × 3/2 = 10.512
BINANCE = Fraction(3, 2) * Fraction(8311, 1_000_000) * 1095  # 13.6508175
PUBLISHED = {"spread": D("27.3"), "lighter": D("10.5"), "binance": D("13.7"), "total": D("51.5")}


def test_the_references_example_with_whole_trades() -> None:
    res = _run(*REFERENCE, "--whole-trades")
    assert res.exit_code == 0, res.output
    # 3/2 × 0.1% × 182 = 27.3; 3/2 × 7.008% = 10.512; 3/2 × 9.100545% = 13.6508175
    assert Fraction("27.3") == SPREAD_APR_WHOLE
    assert Fraction("10.512") == LIGHTER and Fraction("13.6508175") == BINANCE
    total = SPREAD_APR_WHOLE + LIGHTER + BINANCE  # 51.4628175
    # the published numbers, each rounded to 0.1 point
    assert {"spread": _round1(SPREAD_APR_WHOLE), "lighter": _round1(LIGHTER), "binance": _round1(BINANCE),
            "total": _round1(total)} == PUBLISHED
    rows = _rows(res.stdout)
    assert rows["Leverage (each venue)"] == ["3x"]
    assert rows["Capital (both venues)"] == ["$10,000.00"] and rows["Notional per leg"] == ["$15,000.00"]
    assert rows["Spread"] == ["0.1000% over 2 days"] and rows["Spread return per trade"] == ["0.1500%"]
    assert rows["Spread APR"] == ["27.30%"]
    assert rows["Long-leg funding APR"] == ["10.51%"]  # 10.512
    assert rows["Short-leg funding APR"] == ["13.65%"]  # 13.6508…
    assert rows["Total APR"] == ["51.46%"]  # 51.4628…


def test_the_references_example_as_json_is_exact() -> None:
    res = _run(*REFERENCE, "--whole-trades", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    c = out["carry"]
    # fractions of the capital, exactly (percentage points / 100)
    assert Fraction(c["spread_apr"]) * 100 == SPREAD_APR_WHOLE
    assert Fraction(c["long_funding_apr"]) * 100 == LIGHTER
    assert Fraction(c["short_funding_apr"]) * 100 == BINANCE
    assert Fraction(c["total_apr"]) * 100 == SPREAD_APR_WHOLE + LIGHTER + BINANCE
    assert (c["spread"], c["spread_return"], c["capital"], c["notional_per_leg"]) == ("0.001", "0.0015", "10000",
                                                                                      "15000")
    assert out["inputs"]["long"] == {"rate": "-0.000008", "interval_h": "1", "funding_apr": "-0.07008"}
    assert out["inputs"]["short"] == {"rate": "0.00008311", "interval_h": "8", "funding_apr": "0.09100545"}


def test_the_references_example_without_whole_trades() -> None:
    """Today's defaults: 365/T trades a year, the spread APR 27.375%; the total still rounds to 51.5%."""
    res = _run(*REFERENCE)
    assert res.exit_code == 0, res.output
    total = SPREAD_APR_PLAIN + LIGHTER + BINANCE  # 51.5378175
    assert _round1(total) == PUBLISHED["total"]
    rows = _rows(res.stdout)
    assert rows["Spread APR"] == ["27.38%"] and rows["Total APR"] == ["51.54%"]


def test_the_short_funding_of_the_old_example_misses_the_published_binance_number() -> None:
    # 0.0083% × 1,095 × 3/2 = 13.63275% → 13.6%, not the published 13.7%
    assert _round1(Fraction(3, 2) * Fraction(83, 10_000) * 1095) == D("13.6") != PUBLISHED["binance"]
    res = _run(*[("0.0083" if a == "0.008311" else a) for a in REFERENCE])
    assert _rows(res.stdout)["Short-leg funding APR"] == ["13.63%"]


def test_the_help_has_both_modes_examples_and_the_manual_one_reproduces_the_reference() -> None:
    res = CliRunner().invoke(_app(), ["carry", "--help"], terminal_width=200)
    assert res.exit_code == 0
    doc = carry.carry_command.__doc__ or ""
    lines = [ln.strip() for ln in doc.splitlines()]
    examples: list[str] = []
    for i, ln in enumerate(lines):
        if ln.startswith("perpbox carry "):
            j = i + 1
            while j < len(lines) and lines[j].startswith("--"):
                j += 1
            examples.append(" ".join(lines[i:j]))
    manual = [e for e in examples if "--spread" in e]
    live = [e for e in examples if "--accounts" in e]
    assert len(manual) == 1 and live
    assert "--short-funding 0.008311" in manual[0]
    flat = _flat(res.output)
    for example in examples:
        assert example in flat  # the help shows them
    res = _run(*manual[0].split()[2:], "--json")
    assert res.exit_code == 0, res.output
    c = json.loads(res.stdout)["carry"]
    pts = {k: Fraction(c[k]) * 100 for k in ("spread_apr", "long_funding_apr", "short_funding_apr", "total_apr")}
    assert {"spread": _round1(pts["spread_apr"]), "lighter": _round1(pts["long_funding_apr"]),
            "binance": _round1(pts["short_funding_apr"]), "total": _round1(pts["total_apr"])} == PUBLISHED


def test_manual_bad_numbers_are_bad_parameters() -> None:
    res = _run(*REFERENCE[:-2], "--short-interval-h", "0")
    assert res.exit_code == 2 and "interval_hours must be positive" in _flat(res.output)
    res = _run("--spread", "abc", "--days", "2", "--leverage", "3", "--long-funding", "0", "--short-funding", "0")
    assert res.exit_code == 2 and "--spread: 'abc' is not a number" in _flat(res.output)


# ---------------------------------------------------------------------------------------- exclusivity

@pytest.mark.parametrize(("args", "message"), [
    (["--days", "2", "--leverage", "3"], "manual mode needs --spread, --long-funding, --short-funding"),
    (["--days", "2", "--leverage", "3", "--spread", "0.1", "--long-funding", "0"], "manual mode needs --short-funding"),
    ([*REFERENCE, "--long", "a"], "--long: live-mode options, they need --accounts FILE"),
    ([*REFERENCE, "--coin", "BTC", "--auto-direction"], "--coin, --auto-direction: live-mode options"),
    (["--accounts", "x.toml", "--long", "a", "--short", "b", "--coin", "BTC", "--days", "2", "--leverage", "3",
      "--spread", "0.1"], "--spread: manual-mode options, not allowed with --accounts"),
    (["--accounts", "x.toml", "--long", "a", "--short", "b", "--coin", "BTC", "--days", "2", "--leverage", "3",
      "--long-funding", "0", "--short-interval-h", "8"], "--long-funding, --short-interval-h: manual-mode options"),
    (["--accounts", "x.toml", "--short", "b", "--days", "2", "--leverage", "3"],
     "live mode (--accounts) needs --long, --coin"),
    (["--accounts", "x.toml", "--long", "a", "--short", "b", "--long-coin", "BTC", "--days", "2", "--leverage", "3"],
     "live mode (--accounts) needs --coin"),
    (["--accounts", "x.toml", "--long", "a", "--short", "a", "--coin", "BTC", "--days", "2", "--leverage", "3"],
     "--long and --short are the same account and coin"),
    (["--accounts", "x.toml", "--long", "a", "--short", "b", "--coin", "BTC", "--days", "2", "--leverage", "0"],
     "leverage must be positive"),
])
def test_manual_and_live_options_do_not_mix(args: list[str], message: str) -> None:
    res = _run(*args)
    assert res.exit_code == 2, res.output
    assert message in _flat(res.output)
    assert "Traceback" not in res.output


# ---------------------------------------------------------------------------------------- live mode

class FakeVenue:
    """A ``Venue`` as far as the carry reads it: a fixed top of book and funding rate per coin."""

    def __init__(self, name: str, quotes: dict[str, tuple[str | None, str | None]],
                 rates: dict[str, tuple[str, int]], fail: BaseException | None = None) -> None:
        self.name, self.quotes, self.rates, self.fail = name, quotes, rates, fail
        self.closed = 0

    async def book(self, coin: str) -> Book:
        if self.fail is not None:
            raise self.fail
        bid, ask = self.quotes[coin]
        return Book(coin=coin, bids=((D(bid), D(2)),) if bid else (), asks=((D(ask), D(3)),) if ask else (),
                    ts_ms=1_000)

    async def funding(self, coin: str) -> FundingRate:
        rate, hours = self.rates[coin]
        return FundingRate(coin=coin, rate=D(rate), interval_h=hours, mark_px=D("60010"), ts_ms=2_000)

    async def aclose(self) -> None:
        self.closed += 1


@pytest.fixture
def accounts_toml(tmp_path: Path) -> Path:
    path = tmp_path / "accounts.toml"
    path.write_text('[a]\nvenue = "hyperliquid:http://127.0.0.1:9"\nkey_file = "a.key"\n\n'
                    '[b]\nvenue = "hyperliquid:http://127.0.0.1:9"\nkey_file = "b.key"\n')
    return path


def _inject(monkeypatch: pytest.MonkeyPatch, *venues: FakeVenue) -> list[str]:
    """``open_venue`` of cli/carry.py answering the fakes by account name; returns the names opened."""
    by_name = {v.name: v for v in venues}
    opened: list[str] = []

    def open_venue(spec: accounts_file.AccountSpec) -> Any:
        opened.append(spec.name)
        return by_name[spec.name]

    monkeypatch.setattr(accounts_file, "open_venue", open_venue)
    return opened


# a: BTC 60,000 / 60,001, −0.001% an hour; b: BTC 60,030 / 60,032, +0.01% every 8 h
def _cheap_a() -> FakeVenue:
    return FakeVenue("a", {"BTC": ("60000", "60001")}, {"BTC": ("-0.00001", 1)})


def _dear_b() -> FakeVenue:
    return FakeVenue("b", {"BTC": ("60030", "60032")}, {"BTC": ("0.0001", 8)})


LIVE = ["--days", "2", "--leverage", "3", "--capital", "10000"]
# by hand: mids (60,000 + 60,001)/2 = 60,000.5 and (60,030 + 60,032)/2 = 60,031;
# spread = 60,031 / 60,000.5 − 1 = 30.5 / 60,000.5 = 61/120,001 (≈ 0.0508%)
# a's APR: −0.00001 × 24 × 365 / 1 = −0.0876; b's: 0.0001 × 24 × 365 / 8 = 0.1095
# at 3x (L/2 = 3/2) over 2 days: spread per trade 3/2 × 61/120,001 = 183/240,002, × 365/2 a year;
# the long leg on a receives 3/2 × 0.0876 = 0.1314, the short leg on b 3/2 × 0.1095 = 0.16425
SPREAD = Fraction(61, 120_001)
SPREAD_APR = Fraction(3, 2) * SPREAD * Fraction(365, 2)
LONG_LEG, SHORT_LEG = Fraction(3, 2) * Fraction(876, 10_000), Fraction(3, 2) * Fraction(1095, 10_000)
TOTAL = SPREAD_APR + LONG_LEG + SHORT_LEG  # ≈ 0.4348051: 13.9155% + 13.14% + 16.425%
HALF_ULP = Fraction(1, 2 * 10**18)  # a fraction that does not terminate is written to 18 places


def test_live_inputs_and_carry_as_given(monkeypatch: pytest.MonkeyPatch, accounts_toml: Path) -> None:
    a, b = _cheap_a(), _dear_b()
    opened = _inject(monkeypatch, a, b)
    res = _run("--accounts", str(accounts_toml), "--long", "a", "--short", "b", "--coin", "BTC", *LIVE)
    assert res.exit_code == 0, res.output
    assert opened == ["a", "b"] and (a.closed, b.closed) == (1, 1)
    out = res.stdout
    rows = _rows(out.split("direction as given")[0])
    assert rows["Coin"] == ["BTC", "BTC"]
    assert rows["Bid"] == ["60000", "60030"] and rows["Ask"] == ["60001", "60032"]
    assert rows["Mid"] == ["60000.5", "60031"]
    assert rows["Funding per interval"] == ["-0.001%", "0.01%"]  # the rates × 100
    assert rows["Funding interval"] == ["1 h", "8 h"]
    assert rows["Funding APR"] == ["-8.76%", "10.95%"]
    assert "long: a" in out and "short: b" in out
    assert "spread (short mid / long mid - 1): 0.0508%" in out  # 6,100/120,001 = 0.050832…%
    assert "direction as given: long a BTC / short b BTC" in out
    carry_rows = _rows(out.split("direction as given")[1])
    assert carry_rows["Spread"] == ["0.0508% over 2 days"]
    assert carry_rows["Spread return per trade"] == ["0.0762%"]  # 3/2 × 0.050832…% = 0.076248…%
    assert carry_rows["Spread APR"] == ["13.92%"]  # × 182.5 = 13.9155…%
    assert carry_rows["Long-leg funding APR"] == ["13.14%"] and carry_rows["Short-leg funding APR"] == ["16.43%"]
    assert carry_rows["Total APR"] == ["43.48%"]  # 13.9155 + 13.14 + 16.425 = 43.4805…
    assert carry_rows["Notional per leg"] == ["$15,000.00"]
    assert "notes:" not in out  # a is the cheap venue and the carry is positive as given


def test_live_json(monkeypatch: pytest.MonkeyPatch, accounts_toml: Path) -> None:
    _inject(monkeypatch, _cheap_a(), _dear_b())
    res = _run("--accounts", str(accounts_toml), "--long", "a", "--short", "b", "--coin", "BTC", *LIVE, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)

    def no_floats(x: object) -> None:
        assert not isinstance(x, float), x
        for v in x.values() if isinstance(x, dict) else x if isinstance(x, list) else ():
            no_floats(v)

    no_floats(out)
    long, short = out["inputs"]["long"], out["inputs"]["short"]
    assert (long["account"], long["coin"], long["bid"], long["ask"], long["mid"]) == ("a", "BTC", "60000", "60001",
                                                                                     "60000.5")
    assert (short["account"], short["bid"], short["ask"], short["mid"]) == ("b", "60030", "60032", "60031")
    assert (long["rate"], long["rate_pct"], long["interval_h"], long["funding_apr"]) == ("-0.00001", "-0.001", "1",
                                                                                         "-0.0876")
    assert (short["rate"], short["rate_pct"], short["interval_h"], short["funding_apr"]) == ("0.0001", "0.01", "8",
                                                                                             "0.1095")
    assert abs(Fraction(out["inputs"]["spread"]) - SPREAD) <= HALF_ULP
    assert (out["direction"], out["recommended"], out["cheap_venue"], out["notes"]) == ("as given", "as given", "a", [])
    c = out["carry"]
    assert (c["long"], c["long_coin"], c["short"], c["short_coin"]) == ("a", "BTC", "b", "BTC")
    assert abs(Fraction(c["spread_apr"]) - SPREAD_APR) <= HALF_ULP
    assert (Fraction(c["long_funding_apr"]), Fraction(c["short_funding_apr"])) == (LONG_LEG, SHORT_LEG)
    assert abs(Fraction(c["total_apr"]) - TOTAL) <= HALF_ULP
    assert (c["capital"], c["margin_per_venue"], c["notional_per_leg"], c["leverage"], c["days"]) == (
        "10000", "5000", "15000", "3", "2")
    assert out["as_given"] == {k: v for k, v in c.items() if k not in ("long", "long_coin", "short", "short_coin")}


def test_live_auto_direction_takes_the_positive_way_round(monkeypatch: pytest.MonkeyPatch,
                                                           accounts_toml: Path) -> None:
    # given the wrong way round: long a (now the dear one, +0.01% / 8 h), short b (−0.001% / h)
    a = FakeVenue("a", {"BTC": ("60030", "60032")}, {"BTC": ("0.0001", 8)})
    b = FakeVenue("b", {"BTC": ("60000", "60001")}, {"BTC": ("-0.00001", 1)})
    _inject(monkeypatch, a, b)
    args = ["--accounts", str(accounts_toml), "--long", "a", "--short", "b", "--coin", "BTC", *LIVE]
    res = _run(*args)  # as given: spread 60,000.5/60,031 − 1 < 0, and both legs pay
    assert res.exit_code == 0, res.output
    given = _rows(res.stdout.split("direction as given")[1])
    assert given["Long-leg funding APR"] == ["-16.43%"] and given["Short-leg funding APR"] == ["-13.14%"]
    assert given["Spread APR"] == ["-13.91%"]  # 3/2 × (−61/120,062) × 182.5 = −13.9084…%
    assert given["Total APR"] == ["-43.47%"]
    assert "the carry is positive the other way round: long b, short a" in res.stdout  # a note even so

    res = _run(*args, "--auto-direction")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "recommended direction (the reverse of the one given): long b BTC / short a BTC" in out
    rows = _rows(out.split("recommended direction")[1].split("notes:")[0])
    assert rows["Spread APR"] == ["13.92%"] and rows["Total APR"] == ["43.48%"]  # the case above, mirrored
    notes = out.split("notes:")[1]
    assert "the cheap venue is b (BTC mid 60000.5 < BTC mid 60031 on a), not a" in notes
    assert "the carry is positive the other way round: long b, short a" in notes
    # the inputs table still shows the legs as given
    assert _rows(out.split("recommended direction")[0])["Mid"] == ["60031", "60000.5"]
    assert (a.closed, b.closed) == (2, 2)

    res = _run(*args, "--auto-direction", "--json")
    data = json.loads(res.stdout)
    assert (data["direction"], data["recommended"], data["cheap_venue"]) == ("reversed", "reversed", "b")
    assert (data["carry"]["long"], data["carry"]["short"]) == ("b", "a")
    assert abs(Fraction(data["carry"]["total_apr"]) - TOTAL) <= HALF_ULP
    assert data["inputs"]["long"]["account"] == "a" and data["reversed"]["total_apr"] == data["carry"]["total_apr"]


def test_live_coin_names_per_venue(monkeypatch: pytest.MonkeyPatch, accounts_toml: Path) -> None:
    a = _cheap_a()
    b = FakeVenue("b", {"BTC/USDT:USDT": ("60030", "60032")}, {"BTC/USDT:USDT": ("0.0001", 8)})
    _inject(monkeypatch, a, b)
    res = _run("--accounts", str(accounts_toml), "--long", "a", "--short", "b", "--coin", "BTC", "--short-coin",
               "BTC/USDT:USDT", *LIVE, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["inputs"]["long"]["coin"], out["inputs"]["short"]["coin"]) == ("BTC", "BTC/USDT:USDT")
    assert abs(Fraction(out["carry"]["total_apr"]) - TOTAL) <= HALF_ULP


def test_live_one_sided_book_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, accounts_toml: Path) -> None:
    a, b = _cheap_a(), FakeVenue("b", {"BTC": ("60030", None)}, {"BTC": ("0.0001", 8)})
    _inject(monkeypatch, a, b)
    res = _run("--accounts", str(accounts_toml), "--long", "a", "--short", "b", "--coin", "BTC", *LIVE)
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert res.stdout == ""
    assert res.stderr.strip() == "carry: b: the BTC book is one-sided (no mid)"
    assert (a.closed, b.closed) == (1, 1)


def test_live_crossed_book_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, accounts_toml: Path) -> None:
    _inject(monkeypatch, FakeVenue("a", {"BTC": ("60002", "60001")}, {"BTC": ("0", 1)}), _dear_b())
    res = _run("--accounts", str(accounts_toml), "--long", "a", "--short", "b", "--coin", "BTC", *LIVE)
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert res.stderr.startswith("carry: a: the BTC book is crossed or locked")


@pytest.mark.parametrize("error", [httpx.ConnectError("All connection attempts failed"), KeyError("levels")])
def test_live_venue_error_names_the_venue(monkeypatch: pytest.MonkeyPatch, accounts_toml: Path,
                                          error: BaseException) -> None:
    a, b = _cheap_a(), FakeVenue("b", {}, {"BTC": ("0.0001", 8)}, fail=error)
    _inject(monkeypatch, a, b)
    res = _run("--accounts", str(accounts_toml), "--long", "a", "--short", "b", "--coin", "BTC", *LIVE)
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("carry: venue b: reading the BTC book failed: "), res.stderr
    assert type(error).__name__ in lines[0] and "Traceback" not in res.output
    assert (a.closed, b.closed) == (1, 1)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_live_against_no_server_names_the_account(tmp_path: Path) -> None:
    """The real accounts loader and Hyperliquid adapter, pointed at a port nothing listens on."""
    (tmp_path / "a.key").write_text("0x" + Account.create().key.hex().removeprefix("0x"))
    (tmp_path / "b.key").write_text("0x" + Account.create().key.hex().removeprefix("0x"))
    url = f"http://127.0.0.1:{_closed_port()}"
    path = tmp_path / "accounts.toml"
    path.write_text(f'[a]\nvenue = "hyperliquid:{url}"\nkey_file = "a.key"\n\n'
                    f'[b]\nvenue = "hyperliquid:{url}"\nkey_file = "b.key"\n')
    res = _run("--accounts", str(path), "--long", "a", "--short", "b", "--coin", "BTC", *LIVE)
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert re.match(r"carry: venue [ab]: reading the BTC (book|funding) failed: ConnectError: ", lines[0]), lines[0]
    assert url in lines[0] and "Traceback" not in res.output


def test_live_accounts_errors(tmp_path: Path, accounts_toml: Path) -> None:
    res = _run("--accounts", str(accounts_toml), "--long", "a", "--short", "nosuch", "--coin", "BTC", *LIVE)
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert res.stderr.strip() == f"carry: {accounts_toml}: no account [nosuch]"
    missing = tmp_path / "missing.toml"
    res = _run("--accounts", str(missing), "--long", "a", "--short", "b", "--coin", "BTC", *LIVE)
    assert res.exit_code == 1 and res.stderr.startswith(f"carry: {missing}: ") and "Traceback" not in res.output
    # a hyperliquid account whose key file is not there: open_venue's AccountsError
    res = _run("--accounts", str(accounts_toml), "--long", "a", "--short", "b", "--coin", "BTC", *LIVE)
    assert res.exit_code == 1 and res.stderr.strip().startswith("carry: [a].key_file: ")


def test_live_closes_the_first_venue_when_the_second_does_not_open(monkeypatch: pytest.MonkeyPatch,
                                                                    accounts_toml: Path) -> None:
    a = _cheap_a()

    def open_venue(spec: accounts_file.AccountSpec) -> Any:
        if spec.name == "b":
            raise accounts_file.AccountsError("[b].venue: no such exchange")
        return a

    monkeypatch.setattr(accounts_file, "open_venue", open_venue)
    res = _run("--accounts", str(accounts_toml), "--long", "a", "--short", "b", "--coin", "BTC", *LIVE)
    assert res.exit_code == 1 and res.stderr.strip() == "carry: [b].venue: no such exchange"
    assert a.closed == 1


def test_live_one_account_both_legs(monkeypatch: pytest.MonkeyPatch, accounts_toml: Path) -> None:
    """Two coins on one account: the venue opened and closed once."""
    a = FakeVenue("a", {"BTC": ("60000", "60001"), "xyz:BTC": ("60030", "60032")},
                  {"BTC": ("-0.00001", 1), "xyz:BTC": ("0.0001", 8)})
    opened = _inject(monkeypatch, a)
    res = _run("--accounts", str(accounts_toml), "--long", "a", "--short", "a", "--long-coin", "BTC", "--short-coin",
               "xyz:BTC", *LIVE, "--json")
    assert res.exit_code == 0, res.output
    assert opened == ["a"] and a.closed == 1
    assert abs(Fraction(json.loads(res.stdout)["carry"]["total_apr"]) - TOTAL) <= HALF_ULP

"""Wear accounting (``bots.wear``) and ``perpbox wear DIR``, against examples worked by hand (the
working is in the comments) and the reference's published Extended↔Lighter run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from perpbox.bots.venue import Fill, FundingPayment
from perpbox.bots.wear import (
    SCHEMA,
    RunMeta,
    WearBook,
    combine,
    fill_row,
    funding_row,
    read_dir,
    read_rows,
    render,
    render_runs,
    write_run,
)
from perpbox.cli.wear import register

D = Decimal
EXT, LIT = "extended", "lighter"


def _q(x: Decimal | None, step: str) -> Decimal:
    assert x is not None
    return x.quantize(Decimal(step), rounding=ROUND_HALF_UP)


class _Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return str(self.n)


_ids = _Ids()


def fill(run: str, leg: str, venue: str, size: str, px: str, fee: str = "0", mid: str | None = None,
         coin: str = "BTC", t: int = 0, oid: str | None = None, fid: str | None = None) -> dict[str, object]:
    f = Fill(fill_id=fid or _ids(), order_id=oid or _ids(), coin=coin, size=D(size), px=D(px), fee=D(fee), ts_ms=t,
             maker=leg == "maker")
    return fill_row(run, leg, venue, f, None if mid is None else D(mid))


def funding(run: str, leg: str, venue: str, usd: str, size: str, t: int, coin: str = "BTC") -> dict[str, object]:
    return funding_row(run, leg, venue, FundingPayment(coin=coin, usd=D(usd), size=D(size), rate=D("0.0001"),
                                                       ts_ms=t))


# ------------------------------------------------------------------------ the worked example
# Open: the maker buys 0.01 BTC at 60,000 on Extended (mid 60,001 when decided, no fee); the taker
# sells 0.01 at 59,990 on Lighter (decision mid 60,000), fee 0.00025 × 599.90 = 0.149975.
# Close: the maker sells 0.01 at 60,010 (mid 60,009, no fee); the taker buys 0.01 at 60,015
# (decision mid 60,010), fee 0.00025 × 600.15 = 0.1500375.
def _open_rows(run: str = "r1") -> list[dict[str, object]]:
    return [fill(run, "maker", EXT, "0.01", "60000", "0", "60001", t=1),
            fill(run, "taker", LIT, "-0.01", "59990", "0.149975", "60000", t=2)]


def _close_rows(run: str = "r1") -> list[dict[str, object]]:
    return [fill(run, "maker", EXT, "-0.01", "60010", "0", "60009", t=3),
            fill(run, "taker", LIT, "0.01", "60015", "0.1500375", "60010", t=4)]


def test_the_worked_round_trip() -> None:
    book = WearBook.from_rows(_open_rows() + _close_rows())
    res = book.result({})  # flat at the end: no mid needed
    m, t = res.leg("maker"), res.leg("taker")
    # maker: volume 0.01 × 60,000 + 0.01 × 60,010 = 600 + 600.10 = 1,200.10
    assert (m.venue, m.fills, m.volume_usd) == (EXT, 2, D("1200.10"))
    # slippage (px − mid) × size: (60,000 − 60,001) × 0.01 = −0.01; (60,010 − 60,009) × −0.01 = −0.01
    # → −0.02: the maker earned 2 cents against the mids (negative = a gain)
    assert m.slippage_usd == D("-0.02") and m.priced_fills == 2
    # realised: 0.01 × (60,010 − 60,000) = 0.10; no fees → pnl 0.10, loss −0.10
    assert (m.realised_pnl_usd, m.unrealised_pnl_usd, m.fees_usd, m.pnl_usd, m.loss_usd) == (
        D("0.10"), 0, 0, D("0.10"), D("-0.10"))
    # wear: 1e4 × −0.10 / 1,200.10 = −0.83326… bps
    assert m.wear_bps == D(-1000) / D("1200.10") and _q(m.wear_bps, "0.001") == D("-0.833")
    # taker: volume 599.90 + 600.15 = 1,200.05; fees 0.149975 + 0.1500375 = 0.3000125
    assert (t.venue, t.volume_usd, t.fees_usd, t.rebates_usd) == (LIT, D("1200.05"), D("0.3000125"), 0)
    # slippage: (59,990 − 60,000) × −0.01 = 0.10; (60,015 − 60,010) × 0.01 = 0.05 → 0.15 (a cost)
    assert t.slippage_usd == D("0.15")
    # realised: short 0.01 at 59,990, bought back at 60,015: −0.01 × 25 = −0.25
    # pnl −0.25 − 0.3000125 = −0.5500125; wear 1e4 × 0.5500125 / 1,200.05 = 4.5832… bps
    assert (t.realised_pnl_usd, t.pnl_usd, t.loss_usd) == (D("-0.25"), D("-0.5500125"), D("0.5500125"))
    assert t.wear_bps == D("5500.125") / D("1200.05") and _q(t.wear_bps, "0.001") == D("4.583")
    # both venues: loss 0.5500125 − 0.10 = 0.4500125; farmers' wear over the maker's 1,200.10 only:
    # 1e4 × 0.4500125 / 1,200.10 = 3.7497… bps
    assert res.total.loss_usd == D("0.4500125") and res.maker_volume_usd == D("1200.10")
    assert res.farmers_wear_bps == D("4500.125") / D("1200.10") and _q(res.farmers_wear_bps, "0.001") == D("3.750")
    assert res.total.volume_usd == D("2400.15") and res.total.slippage_usd == D("0.13")
    assert res.run_ids == ("r1",)


def test_an_open_position_is_marked_at_the_end_mids() -> None:
    book = WearBook.from_rows(_open_rows())
    # end mids Extended 60,005, Lighter 60,003
    res = book.result({EXT: D("60005"), LIT: D("60003")})
    m, t = res.leg("maker", EXT), res.leg("taker", LIT)
    # maker long 0.01 from 60,000: unrealised 0.01 × 5 = 0.05, nothing realised
    assert (m.realised_pnl_usd, m.unrealised_pnl_usd, m.end_mid, m.positions) == (0, D("0.05"), D("60005"),
                                                                                 (("BTC", D("0.01")),))
    # taker short 0.01 from 59,990: −0.01 × 60,003 + 599.90 = −0.13; pnl −0.13 − 0.149975 = −0.279975
    assert (t.unrealised_pnl_usd, t.pnl_usd) == (D("-0.13"), D("-0.279975"))
    # both: loss 0.279975 − 0.05 = 0.229975 over the maker's 600: 2,299.75 / 600 = 3.8329… bps
    assert res.total.loss_usd == D("0.229975")
    assert res.farmers_wear_bps == D("2299.75") / D(600)
    with pytest.raises(ValueError, match="no end mid for lighter"):
        book.result({EXT: D("60005")})


# ------------------------------------------------------------------------ the published run
def _published_rows(run: str = "pub") -> list[dict[str, object]]:
    """Extended (maker, no fee) ↔ Lighter (taker, no fee), 0.01 BTC an order, 250 round trips:
    * maker: buys 0.01 at 60,004 and sells 0.01 at 59,996 (mids 60,000): 600.04 + 599.96 = 1,200
      a trip → 250 × 1,200 = $300,000 exactly; it loses 0.01 × 8 = $0.08 a trip → $20.00;
    * taker: sells 0.01 at 59,997 and buys back at 60,004 (7 cents) on 138 trips and at 60,003
      (6 cents) on 112: 138 × 0.07 + 112 × 0.06 = 9.66 + 6.72 = $16.38.
    Both venues: $36.38 — the reference's trading wear."""
    rows = []
    t = 0
    for i in range(250):
        back = "60004" if i < 138 else "60003"
        for leg, venue, size, px in (("maker", EXT, "0.01", "60004"), ("taker", LIT, "-0.01", "59997"),
                                     ("maker", EXT, "-0.01", "59996"), ("taker", LIT, "0.01", back)):
            t += 1
            rows.append(fill(run, leg, venue, size, px, "0", "60000", t=t))
    return rows


def test_the_published_extended_lighter_wear() -> None:
    res = WearBook.from_rows(_published_rows()).result({})
    m, t = res.leg("maker", EXT), res.leg("taker", LIT)
    assert (m.fills, t.fills) == (500, 500)
    assert m.volume_usd == D(300_000) and (m.fees_usd, t.fees_usd) == (0, 0)
    assert (m.loss_usd, t.loss_usd, res.total.loss_usd) == (D("20.00"), D("16.38"), D("36.38"))
    # flat at the end: all of it realised, and all of it slippage against the 60,000 mids
    assert res.total.realised_pnl_usd == D("-36.38") and res.total.unrealised_pnl_usd == 0
    assert res.total.slippage_usd == D("36.38")
    # farmers' wear: 1e4 × 36.38 / 300,000 = 363,800 / 300,000 = 1.21266… bps = 0.0121266…%
    assert res.farmers_wear_bps == D(363_800) / D(300_000)
    assert _q(res.farmers_wear_bps, "0.0001") == D("1.2127")
    assert _q(res.farmers_wear_bps / 100, "0.001") == D("0.012")  # the reference's 0.012%
    # per venue: Extended 1e4 × 20 / 300,000 = 0.666… bps; Lighter's volume is
    # 250 × 599.97 + 138 × 600.04 + 112 × 600.03 = 149,992.50 + 82,805.52 + 67,203.36 = 300,001.38
    assert m.wear_bps == D(200_000) / D(300_000)
    assert t.volume_usd == D("300001.38") and t.wear_bps == D(163_800) / D("300001.38")


# ------------------------------------------------------------------------ partial fills, flips
def test_partial_fills_average_cost() -> None:
    rows = [
        # a maker sell of 0.03 filled in three parts (one order): 0.01 @ 60,000, 0.015 @ 60,002, 0.005 @ 60,004
        fill("p", "maker", EXT, "-0.01", "60000", oid="o1", t=1),
        fill("p", "maker", EXT, "-0.015", "60002", oid="o1", t=2),
        fill("p", "maker", EXT, "-0.005", "60004", oid="o1", t=3),
        # hedged in two partial buys: 0.01 @ 60,005, 0.02 @ 60,006
        fill("p", "taker", LIT, "0.01", "60005", t=4),
        fill("p", "taker", LIT, "0.02", "60006", t=5),
        # the maker buys back 0.02 @ 59,990, the taker sells 0.03 @ 59,995 in one fill
        fill("p", "maker", EXT, "0.02", "59990", t=6),
        fill("p", "taker", LIT, "-0.03", "59995", t=7),
    ]
    res = WearBook.from_rows(rows).result({EXT: D("60000")})
    m, t = res.leg("maker"), res.leg("taker")
    # maker short 0.03 at a cost of −(600 + 900.03 + 300.02) = −1,800.05 (average 60,001.666…);
    # buying 0.02 back at 59,990 realises −0.02 × 59,990 + 1,800.05 × 2/3 = −1,199.80 + 1,200.0333… = 7/30,
    # which has no finite decimal: rounded half-even to 18 places
    assert m.realised_pnl_usd == D("0.233333333333333333")
    # trading = cash + q × mid = (1,800.05 − 1,199.80) + (−0.01 × 60,000) = 600.25 − 600 = 0.25 exactly;
    # unrealised takes the rest: −600 + 1,800.05 / 3 = 0.01666… (so the two add up exactly)
    assert m.trading_pnl_usd == D("0.25") and m.unrealised_pnl_usd == D("0.016666666666666667")
    assert m.realised_pnl_usd + m.unrealised_pnl_usd == m.trading_pnl_usd
    assert m.positions == (("BTC", D("-0.01")),) and m.fills == 4
    # taker: long 0.03 at 600.05 + 1,200.12 = 1,800.17, sold at 59,995: 1,799.85 − 1,800.17 = −0.32
    assert t.realised_pnl_usd == D("-0.32") and t.positions == ()
    # maker volume: 600 + 900.03 + 300.02 + 1,199.80 = 2,999.85
    assert res.maker_volume_usd == D("2999.85")
    # the maker closes the rest at 59,995: realised 7/30 + (−599.95 + 600.01666…) = 9/30 = 0.3 exactly
    closed = WearBook.from_rows([*rows, fill("p", "maker", EXT, "0.01", "59995", t=8)]).result({})
    assert closed.leg("maker").realised_pnl_usd == D("0.3") and closed.leg("maker").unrealised_pnl_usd == 0


def test_a_fill_that_flips_the_position() -> None:
    rows = [fill("f", "taker", LIT, "0.01", "100", coin="ETH", t=1),
            fill("f", "taker", LIT, "-0.03", "110", coin="ETH", t=2),  # closes 0.01 (+0.10), opens −0.02 at 110
            fill("f", "taker", LIT, "0.02", "105", coin="ETH", t=3)]  # closes −0.02: −2.10 + 2.20 = +0.10
    t = WearBook.from_rows(rows).result({}).leg("taker")
    # realised 0.20 = the cash −1.00 + 3.30 − 2.10; volume 1.00 + 3.30 + 2.10 = 6.40
    assert t.realised_pnl_usd == D("0.20") and t.trading_pnl_usd == D("0.20") and t.volume_usd == D("6.40")


# ------------------------------------------------------------------------ rebates, funding
def test_a_rebate_is_shown_apart_from_the_fees() -> None:
    # maker: buy and sell 0.01 at 60,000 with a 0.01% rebate: −0.0001 × 600 = −0.06 each
    # taker: sell and buy 0.01 at 60,000, fee 0.15 once
    rows = [fill("b", "maker", EXT, "0.01", "60000", "-0.06", t=1),
            fill("b", "taker", LIT, "-0.01", "60000", "0.15", t=2),
            fill("b", "maker", EXT, "-0.01", "60000", "-0.06", t=3),
            fill("b", "taker", LIT, "0.01", "60000", "0", t=4)]
    res = WearBook.from_rows(rows).result({})
    m, t = res.leg("maker"), res.leg("taker")
    assert (m.fees_usd, m.rebates_usd, m.net_fees_usd) == (0, D("0.12"), D("-0.12"))
    # the rebate is the maker's only result: pnl +0.12, wear 1e4 × −0.12 / 1,200 = −1 bp exactly
    assert (m.pnl_usd, m.loss_usd, m.wear_bps) == (D("0.12"), D("-0.12"), D(-1))
    assert (t.fees_usd, t.rebates_usd, t.loss_usd) == (D("0.15"), 0, D("0.15"))
    # both: 0.15 − 0.12 = 0.03 over the maker's 1,200: 0.25 bps
    assert (res.total.fees_usd, res.total.rebates_usd) == (D("0.15"), D("0.12"))
    assert res.farmers_wear_bps == D("0.25")


def test_funding_paid_and_received() -> None:
    rows = [fill("u", "maker", EXT, "0.01", "60000", t=1), fill("u", "taker", LIT, "-0.01", "60000", t=2),
            funding("u", "taker", LIT, "0.05", "-0.01", 3_600_000),  # the short received 0.05
            funding("u", "taker", LIT, "-0.12", "-0.01", 7_200_000),  # then paid 0.12
            funding("u", "maker", EXT, "-0.02", "0.01", 3_600_000),  # the long paid 0.02
            fill("u", "maker", EXT, "-0.01", "60000", t=8_000_000),
            fill("u", "taker", LIT, "0.01", "60000", t=8_000_001)]
    book = WearBook.from_rows(rows)
    book.add_funding(rows[2])  # the same payment again: counted once
    res = book.result({})
    m, t = res.leg("maker"), res.leg("taker")
    # taker: paid 0.12 − received 0.05 = 0.07 net paid (positive = a loss); trades flat at one price
    assert (t.funding_usd, t.funding_payments, t.trading_pnl_usd, t.pnl_usd, t.loss_usd) == (
        D("0.07"), 2, 0, D("-0.07"), D("0.07"))
    assert (m.funding_usd, m.loss_usd) == (D("0.02"), D("0.02"))
    # both: 0.09 over the maker's 1,200: 1e4 × 0.09 / 1,200 = 0.75 bps
    assert res.total.funding_usd == D("0.09") and res.farmers_wear_bps == D("0.75")


def test_a_row_seen_twice_counts_once_and_a_conflict_is_refused() -> None:
    row = fill("d", "maker", EXT, "0.01", "60000", fid="same")
    book = WearBook()
    book.add_fill(row)
    book.add_fill(dict(row))
    assert book.result({EXT: D("60000")}).leg("maker").fills == 1
    with pytest.raises(ValueError, match="other contents"):
        book.add_fill({**row, "px": "60001"})
    with pytest.raises(TypeError):
        book.add_fill({**row, "fill_id": "x", "px": 60000.5})
    with pytest.raises(ValueError, match="leg"):
        fill("d", "hedger", EXT, "0.01", "1")


# ------------------------------------------------------------------------ Parquet
def _meta(run: str, mids: dict[str, Decimal]) -> RunMeta:
    return RunMeta(run_id=run, start_ms=1, end_ms=9, maker_venue=EXT, taker_venue=LIT, coin="BTC", end_mids=mids)


def test_parquet_round_trip_is_exact(tmp_path: Path) -> None:
    rows = [*_open_rows("rt"), fill("rt", "taker", LIT, "0.00000001", "60000.123456789", "-0.000000001", t=5),
            funding("rt", "taker", LIT, "-0.0000123456789", "-0.00999999", 6)]
    mids = {EXT: D("60005.5"), LIT: D("60003.25")}
    path = write_run(tmp_path, "rt", rows, _meta("rt", mids))
    assert path == tmp_path / "rt.parquet" and (tmp_path / "rt.json").exists()
    frame = pl.read_parquet(path)
    assert dict(frame.schema) == SCHEMA  # money as strings: no float column
    assert not any(dtype.is_float() for dtype in frame.schema.values())
    back = read_rows(path)
    assert back == rows  # the very strings written
    (run,) = read_dir(tmp_path)
    assert run.meta == _meta("rt", mids)
    assert run.result() == WearBook.from_rows(rows).result(mids)
    t = run.result().leg("taker")
    assert t.rebates_usd == D("0.000000001") and t.funding_usd == D("0.0000123456789")
    # a float in a money column is refused, written or read
    with pytest.raises(TypeError):
        write_run(tmp_path, "bad", [{**rows[0], "run_id": "bad", "px": 60000.0}], _meta("bad", {}))
    pl.DataFrame({"leg": ["maker"], "venue": [EXT], "coin": ["BTC"], "fill_id": ["1"], "order_id": ["1"],
                  "size": [0.01], "px": [60000.0], "fee": [0.0], "time": [1], "maker": [True]}).write_parquet(
        tmp_path / "floaty.parquet")
    with pytest.raises(ValueError, match="floats"):
        read_rows(tmp_path / "floaty.parquet")


def test_the_runners_older_rows_still_read(tmp_path: Path) -> None:
    # the runner's rows before this schema: no kind, no run_id, no decision mid (the run is the file)
    old = [{"leg": "maker", "venue": EXT, "coin": "BTC", "fill_id": "1", "order_id": "1", "size": "0.01",
            "px": "60000", "fee": "0", "time": 1, "maker": True},
           {"leg": "maker", "venue": EXT, "coin": "BTC", "fill_id": "2", "order_id": "2", "size": "-0.01",
            "px": "60003", "fee": "0", "time": 2, "maker": True}]
    pl.DataFrame(old).write_parquet(tmp_path / "hedge-BTC-1.parquet")
    (run,) = read_dir(tmp_path)
    assert run.run_id == "hedge-BTC-1" and run.meta is None
    m = run.result().leg("maker")
    assert m.realised_pnl_usd == D("0.03") and m.priced_fills == 0 and m.slippage_usd == 0


# ------------------------------------------------------------------------ tables, combine
def test_render_and_combine() -> None:
    a = WearBook.from_rows(_open_rows("a") + _close_rows("a")).result({})
    b = WearBook.from_rows(_open_rows("b")).result({EXT: D("60005"), LIT: D("60003")})
    total = combine([a, b])
    # maker volume 1,200.10 + 600 = 1,800.10; loss 0.4500125 + 0.229975 = 0.6799875
    assert total.maker_volume_usd == D("1800.10") and total.total.loss_usd == D("0.6799875")
    assert total.farmers_wear_bps == D("6799.875") / D("1800.10")
    assert total.leg("taker").fees_usd == D("0.3000125") + D("0.149975")
    assert total.run_ids == ("a", "b")
    table = render(a, title="live")
    assert table.row_count == 3 and "3.750" in str(table.caption)
    assert render_runs([("a", a), ("b", b)], total).row_count == 9


# ------------------------------------------------------------------------ perpbox wear DIR
@pytest.fixture
def cli() -> Iterator[typer.Typer]:
    app = typer.Typer()
    app.callback()(lambda: None)  # a group, so the command is called by its name
    register(app)
    yield app


def test_perpbox_wear_over_two_runs(tmp_path: Path, cli: typer.Typer) -> None:
    write_run(tmp_path / "runs", "a", _open_rows("a") + _close_rows("a"), _meta("a", {EXT: D("60010"),
                                                                                      LIT: D("60012")}))
    write_run(tmp_path / "runs" / "later", "b", _open_rows("b"), _meta("b", {EXT: D("60005"), LIT: D("60003")}))
    res = CliRunner().invoke(cli, ["wear", str(tmp_path / "runs"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    runs = {r["run_id"]: r for r in out["runs"]}
    assert set(runs) == {"a", "b"} and runs["b"]["meta"]["end_mids"] == {EXT: "60005", LIT: "60003"}
    # run a: the worked round trip (flat: the end mids do not matter)
    assert D(runs["a"]["total"]["loss_usd"]) == D("0.4500125")
    assert D(runs["a"]["farmers_wear_bps"]) == D("4500.125") / D("1200.10")
    legs_a = {x["leg"]: x for x in runs["a"]["legs"]}
    assert D(legs_a["taker"]["slippage_usd"]) == D("0.15") and D(legs_a["maker"]["slippage_usd"]) == D("-0.02")
    # run b: open, marked at its sidecar's mids
    assert D(runs["b"]["total"]["loss_usd"]) == D("0.229975")
    legs_b = {x["leg"]: x for x in runs["b"]["legs"]}
    assert D(legs_b["taker"]["unrealised_pnl_usd"]) == D("-0.13") and legs_b["taker"]["positions"] == {
        "BTC": "-0.01"}
    # in total: loss 0.6799875 over the makers' 1,800.10
    assert D(out["total"]["total"]["loss_usd"]) == D("0.6799875")
    assert D(out["total"]["maker_volume_usd"]) == D("1800.10")
    assert D(out["total"]["farmers_wear_bps"]) == D("6799.875") / D("1800.10")
    assert D(out["total"]["total"]["volume_usd"]) == D("2400.15") + D("1199.90")
    table = CliRunner().invoke(cli, ["wear", str(tmp_path / "runs")])
    assert table.exit_code == 0 and "all runs" in table.output and "3.777" in table.output  # 3.7775 bps


def test_perpbox_wear_refuses_what_it_cannot_value(tmp_path: Path, cli: typer.Typer) -> None:
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(cli, ["wear", str(tmp_path / "empty")])
    assert res.exit_code == 1 and "no hedge runs" in res.output
    # an open position with no end mid for its venue
    write_run(tmp_path / "open", "o", _open_rows("o"), _meta("o", {EXT: D("60000")}))
    res = CliRunner().invoke(cli, ["wear", str(tmp_path / "open")])
    assert res.exit_code == 1 and "no end mid for lighter" in res.output
    # a sidecar missing a field
    (tmp_path / "open" / "o.json").write_text('{"schema": "perpbox.wear.run/1", "run_id": "o"}')
    res = CliRunner().invoke(cli, ["wear", str(tmp_path / "open")])
    assert res.exit_code == 1 and "sidecar has no 'start_ms'" in res.output
    # a Parquet file that is no hedge run's (a market-data file) is skipped, and said so
    write_run(tmp_path / "mixed", "a", _open_rows("a") + _close_rows("a"), _meta("a", {}))
    pl.DataFrame({"ts": [1], "px": ["1"]}).write_parquet(tmp_path / "mixed" / "prices.parquet")
    res = CliRunner().invoke(cli, ["wear", str(tmp_path / "mixed"), "--json"])
    assert res.exit_code == 0 and "skipped" in res.output and "prices.parquet" in res.output


def test_perpbox_wear_help_has_an_example(cli: typer.Typer) -> None:
    res = CliRunner().invoke(cli, ["wear", "--help"])
    assert res.exit_code == 0 and "perpbox wear runs/" in res.output and "farmers" in res.output


def test_exactness_of_the_realised_fraction() -> None:
    # thirds: buy 0.01 at 1 twice and at 2 once (average 4/3), sell 0.01 at 2: realised 0.01 × 2/3
    rows = [fill("x", "taker", LIT, "0.01", "1", t=1), fill("x", "taker", LIT, "0.01", "1", t=2),
            fill("x", "taker", LIT, "0.01", "2", t=3), fill("x", "taker", LIT, "-0.01", "2", t=4)]
    t = WearBook.from_rows(rows).result({LIT: D("2")}).leg("taker")
    assert Fraction(t.realised_pnl_usd) != Fraction(2, 300)  # rounded to 18 places…
    assert abs(Fraction(t.realised_pnl_usd) - Fraction(2, 300)) < Fraction(1, 10**18)
    assert t.realised_pnl_usd + t.unrealised_pnl_usd == t.trading_pnl_usd == D("0.02")  # …the sum exact

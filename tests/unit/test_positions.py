"""``perpbox positions``'s monitor (perpbox.bots.positions) against fake venues and a fake clock: the
grouping rule, reconciliation of positions against fills, the volatility estimator, the snapshot's
numbers (computed by hand), every alert rule with its hold time, the metrics and the CLI's refusals."""

from __future__ import annotations

import asyncio
import itertools
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from perpbox.bots.positions import (
    AuditLog,
    PositionsMonitor,
    Reconciler,
    Thresholds,
    hourly_volatility,
    parse_aliases,
    underlying_of,
)
from perpbox.bots.venue import (
    Account,
    Book,
    Fill,
    FundingPayment,
    FundingRate,
    MarketInfo,
    OrderRequest,
    OrderState,
    Position,
)
from perpbox.cli.positions import register
from perpbox.monitor.alerts import Alert, Alerter

D = Decimal


@dataclass
class FakeVenue:
    """A venue whose state the test sets: positions, fills, books, rates; reads can be made to fail."""

    name: str
    positions: dict[str, Decimal] = field(default_factory=dict)
    liq: dict[str, Decimal] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)
    rates: dict[str, Decimal] = field(default_factory=dict)
    interval_h: int = 1
    fills_list: list[Fill] = field(default_factory=list)
    equity: Decimal = Decimal("10000")
    maintenance: Decimal = Decimal("100")
    ts: int = 1_000_000
    fail: set[str] = field(default_factory=set)
    placed: list[OrderRequest] = field(default_factory=list)
    known_cloids: dict[str, OrderState] = field(default_factory=dict)
    spread: Decimal = Decimal("2")
    depth: Decimal = Decimal("100")
    closed: bool = False

    def _check(self, kind: str) -> None:
        if kind in self.fail:
            raise ConnectionError(f"{kind} down")

    def fill(self, coin: str, size: str, fid: str, ts: int | None = None, px: str = "100") -> None:
        """A fill: the position moves and the fill is in the history."""
        self.positions[coin] = self.positions.get(coin, D(0)) + D(size)
        self.fills_list.append(Fill(fid, "1", coin, D(size), D(px), D(0), self.ts if ts is None else ts, False))

    async def markets(self) -> dict[str, MarketInfo]:
        self._check("markets")
        return {c: MarketInfo(c, D("0.1"), D("0.001"), D(10), self.interval_h, 20, 3) for c in self.marks}

    async def book(self, coin: str) -> Book:
        self._check("book")
        m = self.marks[coin]
        h = self.spread / 2
        return Book(coin, ((m - h, self.depth),), ((m + h, self.depth),), self.ts)

    async def place(self, order: OrderRequest) -> OrderState:
        self.placed.append(order)
        signed = order.size if order.is_buy else -order.size
        self.positions[order.coin] = self.positions.get(order.coin, D(0)) + signed
        st = OrderState("filled", order_id=str(len(self.placed)), client_id=order.client_id, filled=order.size,
                        avg_px=order.px)
        if order.client_id:
            self.known_cloids[order.client_id] = st
        return st

    async def cancel(self, coin: str, order_id: str) -> OrderState:
        return OrderState("canceled", order_id=order_id)

    async def order_status(self, coin: str, order_id: str) -> OrderState:
        return self.known_cloids.get(order_id, OrderState("unknown", error="unknownOid"))

    async def modify(self, coin: str, order_id: str, order: OrderRequest) -> OrderState:
        return OrderState("rejected")

    async def fills(self, since_ms: int) -> list[Fill]:
        self._check("fills")
        return [f for f in self.fills_list if f.ts_ms >= since_ms]

    async def account(self) -> Account:
        self._check("account")
        pos = {c: Position(c, s, self.marks.get(c, D(100)), D(0), D(0), self.liq.get(c))
               for c, s in self.positions.items() if s != 0}
        return Account(equity=self.equity, positions=pos, ts_ms=self.ts, maintenance_margin=self.maintenance)

    async def funding(self, coin: str) -> FundingRate:
        self._check("funding")
        return FundingRate(coin, self.rates.get(coin, D(0)), self.interval_h, self.marks[coin], self.ts)

    async def funding_payments(self, since_ms: int) -> list[FundingPayment]:
        return []

    async def aclose(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class ListSink:
    name = "list"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def send(self, alert: Alert) -> None:
        self.alerts.append(alert)


def _monitor(venues: Mapping[str, FakeVenue | str], clock: Clock, sink: ListSink | None = None,
             **thresholds: Any) -> PositionsMonitor:
    alerter = Alerter([sink]) if sink is not None else None
    return PositionsMonitor({n: (f"fake:{n}", v) for n, v in venues.items()}, Thresholds(**thresholds),
                            alerter=alerter, clock=clock, wall_ms=lambda: int(clock() * 1000))


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- grouping --------------------------------------------------------------------------------------------


def test_coins_group_by_their_base_name() -> None:
    assert underlying_of("BTC") == "BTC"
    assert underlying_of("xyz:SILVER") == "SILVER"
    assert underlying_of("BTC/USDT:USDT") == "BTC"
    assert underlying_of("eth-perp") == "ETH"
    assert underlying_of("SOL-USD") == "SOL"
    aliases = parse_aliases(["EURUSD=eur", "kPEPE=PEPE1000"])
    assert underlying_of("EURUSD", aliases) == "EUR"
    assert underlying_of("abc:EURUSD", aliases) == "EUR"  # the alias applies to the base name too
    assert underlying_of("kPEPE", aliases) == "PEPE1000"
    with pytest.raises(ValueError, match="COIN=UNDERLYING"):
        parse_aliases(["BTC"])


# -- reconciliation --------------------------------------------------------------------------------------


def _acct(ts: int, **sizes: str) -> Account:
    return Account(D(1000), {c: Position(c, D(s), D(1), D(0), D(0), None) for c, s in sizes.items()}, ts)


def _fill(fid: str, coin: str, size: str, ts: int) -> Fill:
    return Fill(fid, "o", coin, D(size), D(1), D(0), ts, False)


def test_a_fill_explains_a_position_change_and_the_baseline_moves_up() -> None:
    r = Reconciler(overlap_ms=1000)
    old = _fill("f0", "BTC", "1", 90)  # before the baseline: in it
    assert r.update(_acct(100, BTC="1"), [old]) == {}
    assert r.since_ms(0) == 100 - 1000
    assert r.update(_acct(200, BTC="1.5"), [old, _fill("f1", "BTC", "0.5", 150)]) == {}
    assert r.base == {"BTC": D("1.5")} and r.base_ts == 200 and r.counted == {}


def test_a_position_change_without_a_fill_is_unexplained_until_the_venue_agrees_again() -> None:
    r = Reconciler()
    assert r.update(_acct(100, BTC="2"), []) == {}
    assert r.update(_acct(200), []) == {"BTC": D(-2)}  # the reported zero
    assert r.update(_acct(300, BTC="2"), []) == {}


def test_a_fill_newer_than_the_positions_counts_at_the_next_read() -> None:
    r = Reconciler()
    assert r.update(_acct(100, ETH="1"), []) == {}
    late = _fill("f1", "ETH", "1", 250)
    assert r.update(_acct(200, ETH="1"), [late]) == {}  # the read at 200 does not hold it yet
    assert r.update(_acct(300, ETH="2"), [late]) == {}
    assert r.update(_acct(400, ETH="2"), [late]) == {}  # counted once


def test_a_delayed_fill_leaves_the_difference_until_it_shows_up() -> None:
    r = Reconciler()
    r.update(_acct(100), [])
    assert r.update(_acct(200, SOL="-3"), []) == {"SOL": D(-3)}
    assert r.update(_acct(300, SOL="-3"), [_fill("f", "SOL", "-3", 150)]) == {}


def test_lost_fills_a_rollback_stay_unexplained() -> None:
    r = Reconciler()
    r.update(_acct(100), [])
    fills = [_fill("a", "ETH", "-127", 150)]
    assert r.update(_acct(200, ETH="-127"), fills) == {}
    # the venue rolls back: the fill is gone from its history and its position jumps
    assert r.update(_acct(300, ETH="114"), []) == {"ETH": D(241)}


def test_no_baseline_from_a_read_a_fill_shares_its_millisecond_with() -> None:
    r = Reconciler()
    assert r.update(_acct(100, BTC="1"), [_fill("f", "BTC", "1", 100)]) is None
    assert r.base is None
    assert r.update(_acct(101, BTC="1"), [_fill("f", "BTC", "1", 100)]) == {}


# -- volatility ------------------------------------------------------------------------------------------


def test_volatility_is_the_stdev_of_log_returns_scaled_to_one_hour() -> None:
    mids = [100.0, 101.0, 100.5, 102.0, 101.0, 100.0, 99.0, 100.0, 101.5, 101.0, 100.0, 100.5]
    every_10s = [(10.0 * i, m) for i, m in enumerate(mids)]
    rets = [math.log(b / a) for a, b in itertools.pairwise(mids)]
    assert hourly_volatility(every_10s, 10) == pytest.approx(statistics.stdev(rets) * math.sqrt(360))
    every_40s = [(40.0 * i, m) for i, m in enumerate(mids)]
    assert hourly_volatility(every_10s, 10) == pytest.approx(2 * hourly_volatility(every_40s, 10))  # type: ignore
    assert hourly_volatility(every_10s[:5], 10) is None  # too few returns


# -- the snapshot ----------------------------------------------------------------------------------------


def _pair() -> tuple[FakeVenue, FakeVenue]:
    a = FakeVenue("a", positions={"BTC": D("0.3"), "xyz:SILVER": D(10)}, marks={"BTC": D(100_000), "xyz:SILVER":
                  D(32)}, rates={"BTC": D("0.0000125"), "xyz:SILVER": D("0.0001")}, liq={"BTC": D(90_000)})
    b = FakeVenue("b", positions={"BTC": D("-0.1")}, marks={"BTC": D(100_100)}, rates={"BTC": D("0.0008")},
                  interval_h=8, equity=D(5000), maintenance=D(2000))
    return a, b


def test_the_snapshot_numbers_by_hand() -> None:
    a, b = _pair()
    clock = Clock()
    m = _monitor({"a": a, "b": b}, clock)
    snap = _run(m.step())
    btc = snap.exposure("BTC")
    assert btc is not None
    assert (btc.net_size, btc.gross_size, btc.imbalance) == (D("0.2"), D("0.4"), D("0.5"))
    assert btc.net_usd == D("0.3") * 100_000 - D("0.1") * 100_100  # 19990
    assert btc.gross_usd == D(30000) + D(10010)
    # funding: −size × mark × rate per hour; b's 8 h rate 0.0008 is 0.0001 per hour
    fa, fb = -(D("0.3") * 100_000 * D("0.0000125")), -(D("-0.1") * 100_100 * D("0.0001"))
    assert (fa, fb) == (D("-0.375"), D("1.001"))
    assert btc.funding_usd_per_h == fa + fb
    leg_a = next(g for g in btc.legs if g.account == "a")
    assert leg_a.liq_distance_pct == D(10)  # |100000 − 90000| / 100000
    assert leg_a.vol_1h is None and leg_a.liq_distance_sigma is None  # one sample only
    silver = snap.exposure("SILVER")
    assert silver is not None and silver.legs[0].coin == "xyz:SILVER" and silver.imbalance == 1
    accts = {x["account"]: x for x in snap.to_json()["accounts"]}
    assert accts["b"]["margin_ratio"] == "0.4"
    assert accts["a"]["streams"]["account"] == {"age_s": 0.0, "failures": 0, "error": ""}
    clock.t += 7
    b.fail.add("account")
    snap = _run(m.step())
    accts = {x["account"]: x for x in snap.to_json()["accounts"]}
    assert accts["b"]["streams"]["account"]["failures"] == 1
    assert accts["b"]["streams"]["account"]["age_s"] == 7.0  # since the last good read
    assert accts["b"]["stale"] and "account down" in accts["b"]["streams"]["account"]["error"]
    btc = snap.exposure("BTC")
    assert btc is not None and btc.net_size == D("0.2")  # b's last known position still counts (stale)
    assert next(g for g in btc.legs if g.account == "b").stale


def test_liquidation_distance_in_volatility_units_once_there_are_samples() -> None:
    a = FakeVenue("a", positions={"BTC": D(1)}, marks={"BTC": D(100)}, liq={"BTC": D(90)})
    clock = Clock()
    m = _monitor({"a": a}, clock, vol_min_returns=3, liq_distance_min_pct=D(1), liq_distance_min_sigma=0.0)
    for px in ("100", "101", "100", "102", "100"):
        a.marks["BTC"] = D(px)
        snap = _run(m.step())
        clock.t += 60
    leg = snap.exposures[0].legs[0]
    mids = [100.0, 101.0, 100.0, 102.0, 100.0]
    vol = statistics.stdev(math.log(y / x) for x, y in itertools.pairwise(mids)) * math.sqrt(60)
    assert leg.vol_1h == pytest.approx(vol)
    assert leg.liq_distance_pct == D(10)
    assert leg.liq_distance_sigma == pytest.approx(0.10 / vol)


# -- the rules -------------------------------------------------------------------------------------------


async def _rounds(m: PositionsMonitor, clock: Clock, times: list[float]) -> list[list[Alert]]:
    out = []
    for t in times:
        clock.t = t
        out.append(list((await m.step()).fired))
    return out


def test_imbalance_fires_after_its_hold_time_once_and_clears() -> None:
    a, b = _pair()
    clock, sink = Clock(), ListSink()
    m = _monitor({"a": a, "b": b}, clock, sink, imbalance_hold_s=30)

    async def go() -> list[list[Alert]]:
        rounds = await _rounds(m, clock, [0, 29, 30, 40])
        b.positions["BTC"] = D("-0.3")  # hedged again
        a.positions.pop("xyz:SILVER")
        rounds += await _rounds(m, clock, [41])
        assert m.alerter is not None
        await m.alerter.flush(5)
        return rounds

    rounds = _run(go())
    imb = [[x for x in r if x.rule == "imbalance" and x.market == "BTC"] for r in rounds]
    assert [len(r) for r in imb] == [0, 0, 1, 0, 1]
    raised, cleared = imb[2][0], imb[4][0]
    assert (raised.market, raised.level, raised.previous_level, raised.mode, raised.action) == ("BTC", 1, 0, "alert",
                                                                                              None)
    assert raised.measured["imbalance"] == "0.5" and raised.measured["net_size"] == "0.2"
    assert raised.measured["held_s"] == "30.000"
    assert (cleared.level, cleared.previous_level) == (0, 1)
    assert [(x.rule, x.market, x.level) for x in sink.alerts if x.market == "BTC"] == [
        ("imbalance", "BTC", 1), ("imbalance", "BTC", 0)]  # both went through the Alerter


def test_a_small_net_does_not_count_as_imbalance() -> None:
    a = FakeVenue("a", positions={"BTC": D("0.0001")}, marks={"BTC": D(100_000)})  # $10 unhedged
    m = _monitor({"a": a}, Clock(), imbalance_hold_s=0)
    assert not [x for x in _run(m.step()).fired if x.rule == "imbalance"]


def test_a_position_change_without_a_fill_alerts_and_one_with_a_fill_does_not() -> None:
    a = FakeVenue("a", positions={"ETH": D(-127)}, marks={"ETH": D(3500)})
    clock = Clock()
    m = _monitor({"a": a}, clock, unexplained_hold_s=5, imbalance_max=D(1))

    async def go() -> list[list[Alert]]:
        out = await _rounds(m, clock, [0])
        a.ts += 1000
        a.fill("ETH", "-1", "f1")  # traded, and the fill is there
        a.ts += 1
        out += await _rounds(m, clock, [1, 2])
        a.positions["ETH"] = D(114)  # the rollback: no fill
        a.ts += 1000
        out += await _rounds(m, clock, [3, 7, 8, 9])
        a.positions["ETH"] = D(-128)  # resynced
        a.ts += 1000
        out += await _rounds(m, clock, [10])
        return out

    rounds = _run(go())
    unexplained = [[x for x in r if x.rule == "unexplained_position"] for r in rounds]
    assert [len(r) for r in unexplained] == [0, 0, 0, 0, 0, 1, 0, 1]
    alert = unexplained[5][0]
    assert alert.market == "ETH" and alert.level == 1
    assert alert.measured["account"] == "a" and alert.measured["unexplained"] == "242"  # 114 − (−128)
    assert alert.measured["venue_size"] == "114"
    assert unexplained[7][0].level == 0


def test_margin_ratio_liquidation_distance_and_funding_rules() -> None:
    a = FakeVenue("a", positions={"BTC": D(1)}, marks={"BTC": D(100)}, liq={"BTC": D(97)}, rates={"BTC": D("0.001")},
                  equity=D(1000), maintenance=D(600))
    m = _monitor({"a": a}, Clock(), margin_hold_s=0, liq_hold_s=0, funding_hold_s=0, imbalance_max=D(1))
    fired = {x.rule: x for x in _run(m.step()).fired}
    assert set(fired) == {"margin_ratio", "liq_distance", "funding_spike"}
    assert fired["margin_ratio"].market == "*" and fired["margin_ratio"].measured["margin_ratio"] == "0.6"
    assert fired["liq_distance"].market == "BTC" and fired["liq_distance"].measured["distance_pct"] == "3"
    assert fired["funding_spike"].measured["hourly"] == "0.001"


def test_venue_errors_after_n_failed_reads_and_an_account_that_did_not_open() -> None:
    a = FakeVenue("a", positions={"BTC": D(1)}, marks={"BTC": D(100)}, fail={"fills"})
    clock = Clock()
    m = _monitor({"a": a, "cx": "AccountsError: [cx]: ccxt venues are not built in"}, clock, venue_error_count=3,
                 imbalance_max=D(1))

    async def go() -> list[list[Alert]]:
        out = await _rounds(m, clock, [0, 1, 2])
        a.fail.clear()
        out += await _rounds(m, clock, [3])
        return out

    rounds = _run(go())
    errs = [[(x.measured["account"], x.measured["kind"], x.level) for x in r if x.rule == "venue_error"]
            for r in rounds]
    assert errs == [[("cx", "account", 1)], [], [("a", "fills", 1)], [("a", "fills", 0)]]
    assert "ccxt venues" in rounds[0][0].measured["error"]


def test_one_shot_takes_every_hold_as_met() -> None:
    a, b = _pair()
    b.fail.add("book")
    m = PositionsMonitor({"a": ("x", a), "b": ("y", b)}, Thresholds(), one_shot=True)
    snap = _run(m.step())
    assert {(x["rule"], x["scope"]) for x in snap.alerts} == {("imbalance", "BTC"), ("imbalance", "SILVER"),
                                                              ("venue_error", "b/book")}


def test_the_metrics_follow_the_positions() -> None:
    from prometheus_client import generate_latest

    a, b = _pair()
    m = _monitor({"a": a, "b": b}, Clock(), imbalance_hold_s=0)
    _run(m.step())
    text = generate_latest(m.metrics.registry).decode()
    assert 'perpbox_positions_net_size{underlying="BTC"} 0.2' in text
    assert 'perpbox_positions_imbalance{underlying="BTC"} 0.5' in text
    assert 'perpbox_positions_margin_ratio{account="b"} 0.4' in text
    assert 'perpbox_positions_liquidation_distance_pct{account="a",coin="BTC"} 10.0' in text
    assert 'perpbox_positions_funding_usd_per_hour{account="b",coin="BTC"} 1.001' in text
    assert 'perpbox_positions_stream_age_seconds{account="a",kind="account"} 0.0' in text
    assert 'perpbox_positions_alerts_active{rule="imbalance"} 2.0' in text
    assert 'perpbox_positions_alerts_total{rule="imbalance"} 2.0' in text
    a.positions.pop("xyz:SILVER")
    _run(m.step())
    text = generate_latest(m.metrics.registry).decode()
    assert 'underlying="SILVER"' not in text  # a closed position leaves no stale series


def test_the_audit_log_gets_the_alerts_and_redacts_secrets(tmp_path: Path) -> None:
    token = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ0123"
    audit = AuditLog(tmp_path / "audit.jsonl", [token])
    a, b = _pair()
    m = PositionsMonitor({"a": ("x", a), "b": ("y", b)}, Thresholds(imbalance_hold_s=0), audit=audit)
    _run(m.step())
    audit({"event": "note", "text": f"token {token} and https://api.telegram.org/bot{token}/getMe"})
    records = audit.records()
    assert {r["rule"] for r in records if r["event"] == "alert"} == {"imbalance"}
    assert token not in (tmp_path / "audit.jsonl").read_text()


# -- the command line ------------------------------------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    return app


def test_the_command_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.toml"
    bad.write_text('[x]\nvenue = "nowhere"\n')
    res = runner.invoke(_cli(), ["positions", "--accounts", str(bad), "--once"])
    assert res.exit_code == 2 and "venue" in res.output
    res = runner.invoke(_cli(), ["positions", "--accounts", str(bad), "--json"])
    assert res.exit_code == 2
    res = runner.invoke(_cli(), ["positions", "--accounts", str(bad), "--allow-chat", "1"])
    assert res.exit_code == 2
    res = runner.invoke(_cli(), ["positions", "--help"])
    assert res.exit_code == 0 and "--imbalance-hold-s" in res.output and "Exit codes" in res.output


def test_once_json_with_an_account_that_cannot_open(tmp_path: Path) -> None:
    (tmp_path / "accounts.toml").write_text('[hl]\nvenue = "hyperliquid:http://127.0.0.1:9"\nkey_file = "no.key"\n')
    res = CliRunner().invoke(_cli(), ["positions", "--accounts", str(tmp_path / "accounts.toml"), "--once", "--json"])
    assert res.exit_code == 1, res.output  # the venue error fires
    import json

    snap = json.loads(res.stdout)
    assert snap["accounts"][0]["open_error"] and snap["alerts"][0]["rule"] == "venue_error"


def test_the_live_table_renders_a_snapshot() -> None:
    from rich.console import Console

    from perpbox.cli.positions import render

    a, b = _pair()
    m = _monitor({"a": a, "b": b, "cx": "AccountsError: no"}, Clock(), imbalance_hold_s=0)
    console = Console(record=True, width=200)
    console.print(render(_run(m.step())))
    text = console.export_text()
    assert "positions" in text and "BTC" in text and "xyz:SILVER" in text and "0.5000" in text
    assert "alerts firing" in text and "imbalance" in text and "AccountsError: no" in text


def test_log_records_lose_the_token() -> None:
    import logging

    from perpbox.cli.positions import _RedactFilter

    token = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ0123"
    record = logging.LogRecord("telegram", logging.WARNING, __file__, 1, "POST %s failed", (
        f"https://api.telegram.org/bot{token}/getUpdates",), None)
    assert _RedactFilter([token]).filter(record)
    assert token not in record.getMessage() and "bot***/getUpdates" in record.getMessage()

"""``userFees``: the venue's fee table, the user's rates from its 14-day tier, and its daily volume
(shape: reference hyperliquid-api.md §2 ``userFees`` and the venue's documented sample)."""

from __future__ import annotations

from datetime import UTC, datetime

from perpbox.api.info import InfoAPI
from perpbox.exchange import Exchange
from perpbox.exchange import commands as C
from perpbox.exchange.results import Filled, Resting
from perpbox.market import MarginTable, MarketSpec
from perpbox.store.readmodels import ReadModels

USD = 10**6
DAY_MS = 86_400_000
D0 = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp() * 1000)
ALICE, CAROL, NOBODY = "0x" + "a1" * 20, "0x" + "c4" * 20, "0x" + "99" * 20
PX = 1_000_000  # $100,000 in BTC's $0.1 price units


def _exchange() -> Exchange:
    """Alice takes $6M from Carol on 2026-03-02 (30 BTC bought and sold back at $100,000)."""
    ex = Exchange()
    ts = D0 - 1
    ex.apply(C.AddMarket(ts=ts, spec=MarketSpec("BTC", 0, 5, MarginTable.single(40)), mark_px=PX))
    for user in (ALICE, CAROL):
        ex.apply(C.Deposit(ts=ts, user=user, usd=10_000_000 * USD))
    ts = D0 + 3_600_000
    for is_buy in (True, False):
        assert isinstance(ex.execute(C.place(ts, CAROL, 0, not is_buy, PX, 3_000_000)).response[0], Resting)
        assert isinstance(ex.execute(C.place(ts, ALICE, 0, is_buy, PX, 3_000_000, tif="Ioc")).response[0], Filled)
    return ex


def test_user_fees_reports_the_tier_the_last_fourteen_days_earned() -> None:
    ex = _exchange()
    api = InfoAPI(ex, ReadModels(), now=lambda: D0 + DAY_MS + 12 * 3_600_000)  # 2026-03-03 12:00
    alice = api.handle({"type": "userFees", "user": ALICE})
    assert (alice["userCrossRate"], alice["userAddRate"]) == ("0.0004", "0.00012")  # > $5M: tier 1
    assert (alice["userSpotCrossRate"], alice["userSpotAddRate"]) == ("0.0006", "0.0003")
    daily = alice["dailyUserVlm"]
    assert len(daily) == 15 and daily[0]["date"] == "2026-02-17"
    assert daily[-2:] == [
        {"date": "2026-03-02", "userCross": "6000000.0", "userAdd": "0.0", "exchange": "6000000.0"},
        {"date": "2026-03-03", "userCross": "0.0", "userAdd": "0.0", "exchange": "0.0"},
    ]
    sched = alice["feeSchedule"]
    assert (sched["cross"], sched["add"], sched["spotCross"], sched["spotAdd"]) == (
        "0.00045", "0.00015", "0.0007", "0.0004")
    assert sched["tiers"]["vip"][0] == {"ntlCutoff": "5000000.0", "cross": "0.0004", "add": "0.00012",
                                        "spotCross": "0.0006", "spotAdd": "0.0003"}
    assert [(t["ntlCutoff"], t["cross"], t["add"]) for t in sched["tiers"]["vip"]] == [
        ("5000000.0", "0.0004", "0.00012"), ("25000000.0", "0.00035", "0.00008"),
        ("100000000.0", "0.0003", "0.00004"), ("500000000.0", "0.00028", "0.0"),
        ("2000000000.0", "0.00026", "0.0"), ("7000000000.0", "0.00024", "0.0")]
    assert sched["tiers"]["mm"] == [{"makerFractionCutoff": "0.005", "add": "-0.00001"},
                                    {"makerFractionCutoff": "0.015", "add": "-0.00002"},
                                    {"makerFractionCutoff": "0.03", "add": "-0.00003"}]
    # Carol made all of the exchange's maker volume: tier 1 taker and the top maker rebate
    carol = api.handle({"type": "userFees", "user": CAROL})
    assert (carol["userCrossRate"], carol["userAddRate"]) == ("0.0004", "-0.00003")
    assert carol["dailyUserVlm"][-2]["userAdd"] == "6000000.0"
    # an address that never traded: the base rates, and the exchange's volume beside its zeros
    nobody = api.handle({"type": "userFees", "user": NOBODY})
    assert (nobody["userCrossRate"], nobody["userAddRate"]) == ("0.00045", "0.00015")
    assert nobody["dailyUserVlm"][-2] == {"date": "2026-03-02", "userCross": "0.0", "userAdd": "0.0",
                                          "exchange": "6000000.0"}


def test_user_fees_on_the_day_of_the_volume_is_still_tier_0() -> None:
    api = InfoAPI(_exchange(), ReadModels(), now=lambda: D0 + 23 * 3_600_000)  # same UTC day
    alice = api.handle({"type": "userFees", "user": ALICE})
    assert (alice["userCrossRate"], alice["userAddRate"]) == ("0.00045", "0.00015")
    assert alice["dailyUserVlm"][-1]["userCross"] == "6000000.0"

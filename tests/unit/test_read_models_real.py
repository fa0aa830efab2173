"""Read models computed from the engine's events, not placeholders: ``cumFunding``'s three totals,
``portfolio`` (account value and PnL history, volume per window), ``referral``'s ``cumVlm`` and
``perpDexLimits`` from the dex's configured caps.

Numbers by hand.  BTC: szDecimals 5, a price unit $0.1, no fees; the default hourly funding on a
flat book is the interest rate, 0.00125% per hour on size × oracle: 0.1 BTC at $100,000 pays
$0.125 an hour.  XYZ100 (HIP-3 dex ``xyz``): szDecimals 4, a price unit $0.01.
"""

from __future__ import annotations

from typing import Any

from perpbox.api.info import InfoAPI
from perpbox.core.numbers import USD
from perpbox.exchange import commands as C
from perpbox.exchange.engine import Exchange
from perpbox.exchange.results import OK, Filled, Resting
from perpbox.market.funding import HOUR_MS
from perpbox.market.margin import MarginTable
from perpbox.market.spec import FeeSchedule, MarketSpec
from perpbox.store.readmodels import ReadModels

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
DEPLOYER = "0x" + "de" * 20
BTC, XYZ = 0, 110_000
MINUTE = 60_000
NO_FEES = FeeSchedule(maker=0, taker=0)
BTC_SPEC = MarketSpec("BTC", BTC, 5, MarginTable.single(40), fees=NO_FEES)
XYZ_SPEC = MarketSpec("XYZ100", XYZ, 4, MarginTable.single(20), dex="xyz", fees=NO_FEES)


class Venue:
    """The engine and the read models, folded after every command as the sequencer does."""

    def __init__(self) -> None:
        self.ex, self.rm = Exchange(), ReadModels()
        self.ts = (1_700_000_000_000 // HOUR_MS + 1) * HOUR_MS  # an hour boundary
        self.start = self.ts
        self.now: int | None = None  # the API's clock: the last command's time unless set
        self.info = InfoAPI(self.ex, self.rm, lambda: self.ts if self.now is None else self.now)

    def do(self, cmd_type: type, **kw: Any) -> Any:
        self.ts += 1
        outcome = self.ex.execute(cmd_type(ts=self.ts, **kw))
        self.rm.apply(outcome.events, self.ex.pricing.prices, self.ex)
        return outcome.response

    def order(self, user: str, is_buy: bool, px: int, sz: str, asset: int = BTC) -> Any:
        spec = BTC_SPEC if asset == BTC else XYZ_SPEC
        lots = int(float(sz) * 10**spec.sz_decimals + 0.5)
        req = C.OrderRequest(asset=asset, is_buy=is_buy, px=px * 10**spec.px_decimals, sz=lots)
        (status,) = self.do(C.PlaceOrders, user=user, orders=[req])
        return status

    def trade(self, buyer: str, seller: str, px: int, sz: str, asset: int = BTC) -> None:
        """``seller`` rests, ``buyer`` takes: the book is empty again after it."""
        assert isinstance(self.order(seller, False, px, sz, asset), Resting)
        assert isinstance(self.order(buyer, True, px, sz, asset), Filled)

    def funding(self, asset: int = BTC, mark: int = 100_000) -> None:
        """Tick at the next hour: one funding settlement at ``mark``."""
        spec = BTC_SPEC if asset == BTC else XYZ_SPEC
        self.ts = (self.ts // HOUR_MS + 1) * HOUR_MS - 1
        self.tick(asset, mark, spec)

    def tick(self, asset: int, mark: int, spec: MarketSpec = BTC_SPEC) -> None:
        assert self.do(C.Tick, marks={asset: mark * 10**spec.px_decimals}) == OK

    def cum_funding(self, user: str, dex: str = "") -> dict[str, str]:
        state = self.info.handle({"type": "clearinghouseState", "user": user, "dex": dex})
        (pos,) = state["assetPositions"]
        return pos["position"]["cumFunding"]


def _btc_venue() -> Venue:
    v = Venue()
    assert v.do(C.AddMarket, spec=BTC_SPEC, mark_px=100_000 * 10) == OK
    for u in (ALICE, BOB):
        assert v.do(C.Deposit, user=u, usd=1_000_000 * USD) == OK
    return v


def test_cum_funding_all_time_since_open_and_since_change_differ() -> None:
    v = _btc_venue()
    v.trade(ALICE, BOB, 100_000, "0.1")  # open long 0.1
    v.funding()  # pays 0.125
    assert v.cum_funding(ALICE) == {"allTime": "0.125", "sinceOpen": "0.125", "sinceChange": "0.125"}
    assert v.cum_funding(BOB) == {"allTime": "-0.125", "sinceOpen": "-0.125", "sinceChange": "-0.125"}
    v.trade(ALICE, BOB, 100_000, "0.1")  # add: 0.2
    assert v.cum_funding(ALICE) == {"allTime": "0.125", "sinceOpen": "0.125", "sinceChange": "0.0"}
    v.funding()  # 0.2 pays 0.25
    assert v.cum_funding(ALICE) == {"allTime": "0.375", "sinceOpen": "0.375", "sinceChange": "0.25"}
    v.trade(BOB, ALICE, 100_000, "0.2")  # close
    assert v.info.handle({"type": "clearinghouseState", "user": ALICE})["assetPositions"] == []
    v.trade(ALICE, BOB, 100_000, "0.05")  # reopen: sinceOpen and sinceChange start again, allTime stays
    assert v.cum_funding(ALICE) == {"allTime": "0.375", "sinceOpen": "0.0", "sinceChange": "0.0"}
    v.funding()  # 0.05 pays 0.0625
    v.trade(ALICE, BOB, 100_000, "0.05")  # add: 0.1
    v.funding()  # pays 0.125
    assert v.cum_funding(ALICE) == {"allTime": "0.5625", "sinceOpen": "0.1875", "sinceChange": "0.125"}
    assert v.cum_funding(BOB) == {"allTime": "-0.5625", "sinceOpen": "-0.1875", "sinceChange": "-0.125"}


def test_cum_funding_of_a_hip3_position_is_filed_under_its_owner() -> None:
    v = Venue()
    assert v.do(C.AddMarket, spec=BTC_SPEC, mark_px=100_000 * 10) == OK
    assert v.do(C.AddMarket, spec=XYZ_SPEC, mark_px=10_000 * 100, deployer=DEPLOYER) == OK
    for u in (ALICE, BOB):
        assert v.do(C.Deposit, user=u, usd=100_000 * USD) == OK
        assert v.do(C.SendAsset, user=u, src=u, dst=u, src_dex="", dst_dex="xyz", usd=50_000 * USD) == OK
    v.trade(ALICE, BOB, 10_000, "1", XYZ)
    v.funding(XYZ, 10_000)  # 1 × 10,000 × 0.0000125
    assert v.cum_funding(ALICE, "xyz") == {"allTime": "0.125", "sinceOpen": "0.125", "sinceChange": "0.125"}
    # the sends between Alice's own dexes are no inflow; her perp value is both dexes' sum
    assert v.rm.net_inflow[ALICE] == 100_000 * USD
    (_, day), *_ = v.info.handle({"type": "portfolio", "user": ALICE})
    assert day["accountValueHistory"][-1][1] == "99999.875"


def _value(point: list[Any]) -> str:
    return str(point[1])


def test_portfolio_account_value_pnl_and_volume_per_window() -> None:
    v = Venue()
    h = v.start
    assert v.do(C.AddMarket, spec=BTC_SPEC, mark_px=100_000 * 10) == OK
    assert v.do(C.Deposit, user=BOB, usd=1_000_000 * USD) == OK
    assert v.do(C.Deposit, user=ALICE, usd=10_000 * USD) == OK
    t_deposit = v.ts
    v.trade(ALICE, BOB, 100_000, "0.1")  # long 0.1 at 100,000: value unchanged
    t_buy = v.ts
    v.ts = h + 20 * MINUTE  # the next 15-minute bucket: the tick samples the holders
    v.tick(BTC, 101_000)
    t_tick = v.ts
    assert v.ex.pricing.mark(BTC) == 101_000 * 10
    v.ts = h + 40 * MINUTE
    assert v.do(C.Deposit, user=ALICE, usd=1_000 * USD) == OK
    t_deposit2 = v.ts
    v.trade(BOB, ALICE, 101_000, "0.1")  # close at 101,000: +100 realized
    t_sell = v.ts
    v.now = h + 50 * MINUTE
    out = dict(v.info.handle({"type": "portfolio", "user": ALICE}))
    assert list(out) == ["day", "week", "month", "allTime", "perpDay", "perpWeek", "perpMonth", "perpAllTime"]
    day = out["day"]
    # a 15-minute bucket keeps its first and newest samples; the value now closes the history
    assert day["accountValueHistory"] == [
        [t_deposit, "10000.0"], [t_buy, "10000.0"], [t_tick, "10100.0"], [t_deposit2, "11100.0"],
        [t_sell, "11100.0"], [h + 50 * MINUTE, "11100.0"]]
    assert [p[1] for p in day["pnlHistory"]] == ["0.0", "0.0", "100.0", "100.0", "100.0", "100.0"]
    assert day["vlm"] == "20100.0"  # 0.1 × 100,000 + 0.1 × 101,000
    # an hour keeps two samples: the first (the deposit) and the newest (the sell)
    week = out["week"]
    assert week["accountValueHistory"] == [[t_deposit, "10000.0"], [t_sell, "11100.0"],
                                           [h + 50 * MINUTE, "11100.0"]]
    assert [p[1] for p in week["pnlHistory"]] == ["0.0", "100.0", "100.0"]
    assert out["perpDay"] == day and out["perpAllTime"] == out["allTime"]
    assert out["month"]["vlm"] == out["allTime"]["vlm"] == "20100.0"
    # two days later: the day window holds only the value now and no volume; the week still has both
    v.now = h + 2 * 86_400_000
    out = dict(v.info.handle({"type": "portfolio", "user": ALICE}))
    assert out["day"] == {"accountValueHistory": [[v.now, "11100.0"]], "pnlHistory": [[v.now, "0.0"]],
                          "vlm": "0.0"}
    assert out["week"]["vlm"] == "20100.0"
    assert [p[1] for p in out["week"]["pnlHistory"]] == ["0.0", "100.0", "100.0"]
    # an address with no account: empty histories
    nobody = "0x" + "99" * 20
    empty = dict(v.info.handle({"type": "portfolio", "user": nobody}))
    assert empty["allTime"] == {"accountValueHistory": [], "pnlHistory": [], "vlm": "0.0"}


def test_portfolio_withdrawal_and_transfer_out_are_not_losses() -> None:
    v = _btc_venue()
    assert v.do(C.Withdraw, user=ALICE, usd=1_000 * USD) == OK
    assert v.do(C.Transfer, src=ALICE, dst=BOB, usd=500 * USD) == OK
    (_, day), *_ = v.info.handle({"type": "portfolio", "user": ALICE})
    assert _value(day["accountValueHistory"][-1]) == "998500.0"
    assert {p[1] for p in day["pnlHistory"]} == {"0.0"}
    (_, bob_day), *_ = v.info.handle({"type": "portfolio", "user": BOB})
    assert _value(bob_day["accountValueHistory"][-1]) == "1000500.0"
    assert {p[1] for p in bob_day["pnlHistory"]} == {"0.0"}


def test_referral_cum_vlm_is_the_users_traded_notional() -> None:
    v = _btc_venue()
    v.trade(ALICE, BOB, 100_000, "0.1")  # 10,000
    v.trade(BOB, ALICE, 101_000, "0.03")  # 3,030
    v.trade(ALICE, BOB, 99_500, "0.02")  # 1,990
    ref = v.info.handle({"type": "referral", "user": ALICE})
    assert ref == {"referredBy": None, "cumVlm": "15020.0", "unclaimedRewards": "0.0", "claimedRewards": "0.0",
                   "builderRewards": "0.0", "referrerState": None, "rewardHistory": []}
    assert v.info.handle({"type": "referral", "user": "0x" + "99" * 20})["cumVlm"] == "0.0"


def test_perp_dex_limits_reflect_set_open_interest_caps() -> None:
    v = Venue()
    assert v.do(C.AddMarket, spec=BTC_SPEC, mark_px=100_000 * 10) == OK
    assert v.do(C.AddMarket, spec=XYZ_SPEC, mark_px=10_000 * 100, deployer=DEPLOYER) == OK
    limits = v.info.handle({"type": "perpDexLimits", "dex": "xyz"})
    assert limits == {"totalOiCap": "0.0", "oiSzCapPerPerp": None, "maxTransferNtl": None,
                      "coinToOiCap": [["xyz:XYZ100", "0.0"]]}
    assert v.do(C.SetOpenInterestCaps, user=DEPLOYER, dex="xyz", caps={XYZ: 50_000 * USD},
                total_cap=200_000 * USD) == OK
    limits = v.info.handle({"type": "perpDexLimits", "dex": "xyz"})
    assert limits["totalOiCap"] == "200000.0"
    assert limits["coinToOiCap"] == [["xyz:XYZ100", "50000.0"]]
    assert v.info.handle({"type": "perpDexLimits", "dex": ""}) is None

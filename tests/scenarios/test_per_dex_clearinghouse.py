"""Per-dex clearinghouses (Hyperliquid's standard accounts): each perp dex keeps its own balance,
cross margin and positions; a deposit lands on the first dex and ``sendAsset`` moves USDC between
dexes, the spot wallet, users and sub-accounts.  So a HIP-3 dex's crash liquidates (and
auto-deleverages) only on that dex: the trader's first-dex balance, positions and orders, and the
first dex's backstop vault, are untouched.

Numbers by hand, fees set to zero so every cent is visible.  XYZ100 (dex ``xyz``, asset 110000):
szDecimals 4, so a lot is 0.0001 and a price unit $0.01; one flat 20x table, so maintenance is
1/40 of the notional.  BTC (first dex): szDecimals 5, 40x.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from scenario_kit import ALICE, BOB, BTC_ID, CAROL, SUB, P, S, Sim, btc_spec, usd

from perpbox.api.actions import USDC_SEND_TOKEN, ActionError, ExchangeAPI
from perpbox.api.info import BadRequest, InfoAPI
from perpbox.core import errors as E
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.deploy import INVALID_DEX_NAME
from perpbox.exchange.engine import Exchange
from perpbox.exchange.liquidation import MAIN_BACKSTOP, backstop_address
from perpbox.exchange.results import OK, Error, Filled, OrderError, Resting
from perpbox.ledger.ledger import FEE_ACCOUNT, spot_wallet
from perpbox.market.margin import MarginTable
from perpbox.market.spec import FeeSchedule, MarketSpec
from perpbox.store.readmodels import ReadModels

XYZ = 110_000
DEPLOYER = "0x" + "de" * 20
BOB_SUB = "0x" + "bb" * 20
NO_FEES = FeeSchedule(maker=0, taker=0)


def _markets(sim: Sim) -> MarketSpec:
    sim.list_market(btc_spec(fees=NO_FEES), 100_000)
    spec = MarketSpec("XYZ100", XYZ, 4, MarginTable.single(20), dex="xyz", fees=NO_FEES)
    assert sim.do(C.AddMarket, spec=spec, mark_px=P(spec, 10_000), deployer=DEPLOYER) == OK
    sim.specs[XYZ] = spec
    return spec


def _cash(sim: Sim, key: str) -> int:
    acct = sim.ex.ledger.accounts.get(key)
    return 0 if acct is None else acct.raw_usd


def _info(sim: Sim) -> InfoAPI:
    rm = ReadModels()
    rm.apply(sim.events, sim.ex.pricing.prices)
    return InfoAPI(sim.ex, rm, lambda: sim.ts)


def _positions_on_both_dexes(sim: Sim) -> None:
    """Alice: $10,000 deposited, $1,000 sent to xyz; long 0.1 BTC at $100,000 and 1 XYZ100 at
    $10,000 (both from Bob), a BTC bid at $90,000 and an XYZ100 bid at $7,000 resting.  Bob: $100,000
    deposited, half sent to xyz; the two shorts."""
    _markets(sim)
    sim.fund(ALICE, 10_000)
    assert sim.send(ALICE, "", "xyz", usd(1_000)) == OK
    sim.fund(BOB, 100_000)
    assert sim.send(BOB, "", "xyz", usd(50_000)) == OK
    sim.fund(MAIN_BACKSTOP, 1_000_000)  # the first dex's backstop: never touched by xyz
    assert isinstance(sim.order(BOB, BTC_ID, False, 100_000, "0.1"), Resting)
    assert isinstance(sim.order(ALICE, BTC_ID, True, 100_000, "0.1"), Filled)
    assert isinstance(sim.order(BOB, XYZ, False, 10_000, "1"), Resting)
    assert isinstance(sim.order(ALICE, XYZ, True, 10_000, "1"), Filled)
    assert isinstance(sim.order(ALICE, BTC_ID, True, 90_000, "0.01"), Resting)
    assert isinstance(sim.order(ALICE, XYZ, True, 7_000, "0.1"), Resting)


def test_deposit_lands_on_the_first_dex() -> None:
    sim = Sim()
    _markets(sim)
    assert sim.deposit(ALICE, 500) == OK
    assert sim.cash(ALICE) == usd(500)
    assert "xyz:" + ALICE not in sim.ex.ledger.accounts and spot_wallet(ALICE) not in sim.ex.ledger.accounts
    info = _info(sim)
    main = info.clearinghouse_state({"type": "clearinghouseState", "user": ALICE})
    xyz = info.clearinghouse_state({"type": "clearinghouseState", "user": ALICE, "dex": "xyz"})
    assert main["marginSummary"]["accountValue"] == "500.0" and main["withdrawable"] == "500.0"
    assert xyz["marginSummary"]["accountValue"] == "0.0" and xyz["withdrawable"] == "0.0"
    # no collateral on xyz: an order there is refused for margin, whatever the first dex holds
    assert sim.order(ALICE, XYZ, True, 10_000, "0.01") == OrderError(E.order_error(E.PERP_MARGIN, XYZ))
    sim.audit()


def test_each_dex_has_its_own_balance_and_clearinghouse_state() -> None:
    sim = Sim()
    _positions_on_both_dexes(sim)
    a_main, a_xyz = sim.ex.ledger.accounts[ALICE], sim.ex.ledger.accounts["xyz:" + ALICE]
    # first dex: 9,000 − 10,000 for 0.1 BTC = −1,000 cash, value −1,000 + 0.1 × 100,000 = 9,000
    assert a_main.raw_usd == usd(-1_000) and set(a_main.positions) == {BTC_ID}
    assert sim.ex.margin.cross_value(a_main) == usd(9_000)
    # xyz: 1,000 − 10,000 = −9,000 cash, value 1,000; withdrawable 1,000 − max(IM 500, 10% × 10,000) = 0
    assert a_xyz.raw_usd == usd(-9_000) and set(a_xyz.positions) == {XYZ}
    assert sim.ex.margin.cross_value(a_xyz) == usd(1_000) and sim.ex.margin.withdrawable(a_xyz) == 0
    assert sim.ex.holdings.position(ALICE, XYZ) is a_xyz.positions[XYZ] and sim.szi(ALICE, XYZ) == S(sim.specs[XYZ], 1)
    info = _info(sim)
    main = info.clearinghouse_state({"type": "clearinghouseState", "user": ALICE})
    xyz = info.clearinghouse_state({"type": "clearinghouseState", "user": ALICE, "dex": "xyz"})
    assert [p["position"]["coin"] for p in main["assetPositions"]] == ["BTC"]
    assert [p["position"]["coin"] for p in xyz["assetPositions"]] == ["xyz:XYZ100"]
    assert main["crossMarginSummary"] == {"accountValue": "9000.0", "totalNtlPos": "10000.0",
                                          "totalRawUsd": "-1000.0", "totalMarginUsed": "500.0"}
    assert xyz["crossMarginSummary"] == {"accountValue": "1000.0", "totalNtlPos": "10000.0",
                                         "totalRawUsd": "-9000.0", "totalMarginUsed": "500.0"}
    assert (main["withdrawable"], xyz["withdrawable"]) == ("8000.0", "0.0")
    assert xyz["crossMaintenanceMarginUsed"] == "250.0"
    # the xyz position's liquidation price uses xyz's equity only: 10,000 − 750 / (1 − 1/40) = 9,230.77
    assert xyz["assetPositions"][0]["position"]["liquidationPx"] == "9230.76923077"
    sim.audit()


def test_hip3_crash_adl_stays_on_its_dex_and_leaves_the_first_dex_whole() -> None:
    """XYZ100 crashes to $8,000.  Alice's xyz account: −9,000 + 8,000 = −$1,000 against maintenance
    8,000 / 40 = $200 — bankrupt, while her first-dex account holds $9,000 of value: before per-dex
    clearinghouses that balance kept the xyz position alive.  Now her xyz orders are cancelled, the
    book is skipped (value < 0), xyz has no backstop vault, so ADL closes her long against Bob's xyz
    short at the $8,000 mark and charges Bob's xyz account the $1,000 deficit (it closes, in effect,
    at the $9,000 bankruptcy price).  Alice's xyz account ends at exactly 0; her BTC position, her
    BTC bid, her −$1,000 first-dex cash, Bob's first-dex account and the first dex's backstop vault
    do not move."""
    sim = Sim()
    _positions_on_both_dexes(sim)
    btc_bid, xyz_bid = (o.oid for o in sorted(sim.ex.orders.orders.values(), key=lambda o: o.oid) if o.user == ALICE)
    before = {k: _cash(sim, k) for k in (ALICE, BOB, MAIN_BACKSTOP)}
    sim.tick(XYZ, 8_000)
    liq = sim.of(V.Liquidated)
    assert [(e.user, e.asset, e.method, e.account_value, e.maintenance_margin) for e in liq] == [
        ("xyz:" + ALICE, -1, "adl", usd(-1_000), usd(200))]
    assert [(e.src, e.dst, e.sz, e.px, e.usd) for e in sim.of(V.PositionTransferred)] == [
        ("xyz:" + ALICE, "xyz:" + BOB, S(sim.specs[XYZ], 1), P(sim.specs[XYZ], 8_000), usd(-1_000))]
    assert sim.closed() == {xyz_bid: "liquidatedCanceled"}
    assert btc_bid in sim.ex.orders.orders
    # xyz: Alice −9,000 + 8,000 + 1,000 = 0 and flat; Bob 60,000 − 8,000 − 1,000 = 51,000 and flat
    assert (_cash(sim, "xyz:" + ALICE), sim.szi(ALICE, XYZ)) == (0, 0)
    assert (_cash(sim, "xyz:" + BOB), sim.szi(BOB, XYZ)) == (usd(51_000), 0)
    # the first dex did not move
    assert {k: _cash(sim, k) for k in before} == before == {ALICE: usd(-1_000), BOB: usd(60_000),
                                                             MAIN_BACKSTOP: usd(1_000_000)}
    btc = S(sim.specs[BTC_ID], "0.1")
    assert (sim.szi(ALICE, BTC_ID), sim.szi(BOB, BTC_ID)) == (btc, -btc)
    assert not sim.ex.holdings.holders.get(XYZ)
    rm = _info(sim)
    ledger = [r.delta for r in rm.rm.ledger[ALICE]]
    assert [d["type"] for d in ledger] == ["deposit", "send"]  # ADL is a fill, not a liquidation entry
    assert [f.dir for f in rm.rm.fills[ALICE]][-1] == "Auto-Deleveraging"
    assert rm.liquidations({})[0] | {"time": 0} == {
        "time": 0, "user": ALICE, "dex": "xyz", "coin": "cross", "method": "adl", "liquidator": None,
        "notional": "8000.0", "accountValue": "-1000.0", "maintenanceMargin": "200.0"}
    sim.audit()


def test_hip3_backstop_takeover_uses_the_dex_vault_only() -> None:
    """XYZ100 at $9,100: Alice's xyz value −9,000 + 9,100 = $100 < maintenance 9,100 / 40 = $227.50.
    Her xyz bid is cancelled, the IOC to the book finds no bid, and $100 is below 2/3 of $227.50:
    xyz's own backstop vault (``0x4…01``, funded on xyz) takes the long over at the mark with the
    $100 of equity.  The vault's xyz account: 100,000 − 9,100 + 100 = $91,000 cash, long 1."""
    sim = Sim()
    _positions_on_both_dexes(sim)
    vault = backstop_address(sim.ex.board.dexes["xyz"])
    sim.fund(vault, 100_000, dex="xyz")
    sim.tick(XYZ, 9_100)
    assert [(e.user, e.method, e.liquidator) for e in sim.of(V.Liquidated)] == [
        ("xyz:" + ALICE, "market", ""), ("xyz:" + ALICE, "backstop", "xyz:" + vault)]
    assert [(e.src, e.dst, e.usd) for e in sim.of(V.PositionTransferred)] == [
        ("xyz:" + ALICE, "xyz:" + vault, usd(100))]
    assert (_cash(sim, "xyz:" + ALICE), sim.szi(ALICE, XYZ)) == (0, 0)
    assert (_cash(sim, "xyz:" + vault), sim.szi(vault, XYZ)) == (usd(91_000), S(sim.specs[XYZ], 1))
    assert _cash(sim, vault) == 0  # its first-dex account only passed the deposit on
    assert (_cash(sim, ALICE), _cash(sim, MAIN_BACKSTOP)) == (usd(-1_000), usd(1_000_000))
    assert sim.szi(ALICE, BTC_ID) == S(sim.specs[BTC_ID], "0.1")
    sim.audit()


def test_send_asset_moves_exact_amounts_between_dexes_spot_sub_accounts_and_users() -> None:
    sim = Sim()
    _markets(sim)
    sim.fund(ALICE, 1_000)
    assert sim.do(C.CreateSubAccount, master=ALICE, sub=SUB, name="s1") == OK
    total = usd(1_000)
    steps: list[tuple[dict[str, Any], tuple[str, str]]] = [
        (dict(user=ALICE, src_dex="", dst_dex="xyz", micro=usd("250.5")), (ALICE, "xyz:" + ALICE)),
        (dict(user=ALICE, src_dex="xyz", dst_dex="spot", micro=1), ("xyz:" + ALICE, "spot:" + ALICE)),
        (dict(user=ALICE, src_dex="spot", dst_dex="", micro=1), ("spot:" + ALICE, ALICE)),
        (dict(user=ALICE, src_dex="", dst_dex="xyz", micro=usd(100), dst=SUB), (ALICE, "xyz:" + SUB)),
        (dict(user=ALICE, src=SUB, src_dex="xyz", dst_dex="", micro=usd(40)), ("xyz:" + SUB, ALICE)),
        (dict(user=ALICE, src_dex="xyz", dst_dex="xyz", micro=usd("10.5"), dst=BOB), ("xyz:" + ALICE, "xyz:" + BOB)),
    ]
    for kw, (src, dst) in steps:
        micro = kw["micro"]
        cash = {k: _cash(sim, k) for k in (src, dst)}
        assert sim.send(**kw) == OK, kw
        assert [(e.src, e.dst, e.usd) for e in sim.last] == [(src, dst, micro)]
        assert (_cash(sim, src), _cash(sim, dst)) == (cash[src] - micro, cash[dst] + micro)
        assert sim.ex.ledger.total_cash() == total and sim.fees() == 0
    expected = {ALICE: usd("689.500001"), "xyz:" + ALICE: usd("239.999999"), "spot:" + ALICE: 0,
                "xyz:" + SUB: usd(60), "xyz:" + BOB: usd("10.5"), BOB: 0}
    assert {k: _cash(sim, k) for k in expected} == expected
    assert sum(expected.values()) == total
    assert BOB in sim.ex.ledger.accounts  # a receiver becomes a user, as a deposit would make it
    info = _info(sim)
    assert info.clearinghouse_state({"user": SUB, "dex": "xyz"})["withdrawable"] == "60.0"
    assert info.spot_clearinghouse_state({"user": ALICE}) == {"balances": []}
    sends = [r.delta for r in info.rm.ledger[BOB]]
    assert sends == [{"type": "send", "user": ALICE, "destination": BOB, "sourceDex": "xyz", "destinationDex": "xyz",
                      "token": "USDC", "amount": usd("10.5"), "usdcValue": usd("10.5"), "fee": 0, "nativeTokenFee": 0,
                      "nonce": None}]
    assert info.user_non_funding_ledger_updates({"user": BOB})[0]["delta"]["amount"] == "10.5"
    sim.audit()


def _refusals(sim: Sim) -> list[tuple[dict[str, Any], str]]:
    return [
        (dict(user=ALICE, src_dex="", dst_dex="xyz", micro=0), E.INVALID_AMOUNT),
        (dict(user=ALICE, src_dex="", dst_dex="xyz", micro=-5), E.INVALID_AMOUNT),
        (dict(user=ALICE, src_dex="", dst_dex="abc", micro=1), E.UNKNOWN_DEX.format(dex="abc")),
        (dict(user=ALICE, src_dex="nope", dst_dex="", micro=1), E.UNKNOWN_DEX.format(dex="nope")),
        (dict(user=ALICE, src_dex="", dst_dex="", micro=1), E.INVALID_SEND),  # to the same clearinghouse
        (dict(user=ALICE, src_dex="", dst_dex="", micro=1, dst=FEE_ACCOUNT), E.INVALID_SEND),
        (dict(user=ALICE, src_dex="", dst_dex="xyz", micro=1, src="xyz:" + ALICE), E.INVALID_SEND),
        (dict(user=ALICE, src_dex="", dst_dex="xyz", micro=1, src=BOB_SUB),
         E.INVALID_SUBACCOUNT_TRANSFER.format(src=ALICE, dst=BOB_SUB)),
        # Alice's xyz account: value 1,000 against max(IM 500, 10% of 10,000): nothing withdrawable
        (dict(user=ALICE, src_dex="xyz", dst_dex="", micro=1), E.INSUFFICIENT_TRANSFER),
        # her first dex: 9,000 of value, 8,000 withdrawable (10% of the 10,000 BTC notional stays)
        (dict(user=ALICE, src_dex="", dst_dex="xyz", micro=usd(8_000) + 1), E.INSUFFICIENT_TRANSFER),
        (dict(user=ALICE, src_dex="spot", dst_dex="", micro=1), E.INSUFFICIENT_TRANSFER),
        (dict(user=CAROL, src_dex="xyz", dst_dex="", micro=1), E.INSUFFICIENT_TRANSFER),  # no xyz account
    ]


def test_send_asset_refusals_change_nothing() -> None:
    sim = Sim()
    _positions_on_both_dexes(sim)
    sim.fund(CAROL, 10)
    assert sim.do(C.CreateSubAccount, master=BOB, sub=BOB_SUB, name="b") == OK
    for kw, error in _refusals(sim):
        h = sim.ex.state_hash()
        assert sim.send(**kw) == Error(error), kw
        assert sim.last == [] and sim.ex.state_hash() == h, kw
    # the limits are exact: 8,000 from the first dex is allowed
    assert sim.send(ALICE, "", "xyz", usd(8_000)) == OK
    # and a HIP-3 dex may not be named after the spot wallet
    h = sim.ex.state_hash()
    assert sim.do(C.RegisterAsset, user=BOB, dex="spot", coin="AAA", sz_decimals=2, oracle_px=1000,
                  margin_table_id=10, full_name="x") == Error(INVALID_DEX_NAME)
    spot_dex = MarketSpec("AAA", 120_000, 2, MarginTable.single(10), dex="spot")
    assert isinstance(sim.do(C.AddMarket, spec=spot_dex, deployer=DEPLOYER), Error)
    assert sim.ex.state_hash() == h
    sim.audit()


def test_replay_rebuilds_sends_and_the_per_dex_liquidation() -> None:
    sim = Sim()
    _positions_on_both_dexes(sim)
    sim.send(ALICE, "", "spot", usd(5))
    sim.tick(XYZ, 8_000)
    replayed = Exchange.replay(sim.events)
    assert replayed.state_hash() == sim.ex.state_hash()
    assert replayed.ledger.accounts["xyz:" + BOB].raw_usd == usd(51_000)
    assert replayed.ledger.accounts[spot_wallet(ALICE)].raw_usd == usd(5)
    sim.audit()


# -- the signed action's checks, before the engine -----------------------------------------------------------------
def _api(sim: Sim) -> ExchangeAPI:
    async def submit(cmds: list[C.Command], signer: str | None, nonce: int | None) -> tuple[list[Any], str | None]:
        raise AssertionError("not reached")

    return ExchangeAPI(sim.ex, submit, lambda: sim.ts)


def _action(**kw: Any) -> dict[str, Any]:
    base = {"type": "sendAsset", "destination": ALICE, "sourceDex": "", "destinationDex": "xyz",
            "token": USDC_SEND_TOKEN, "amount": "1.5", "fromSubAccount": "", "nonce": 1,
            "hyperliquidChain": "Testnet", "signatureChainId": "0x66eee"}
    return base | kw


@pytest.mark.parametrize(("kw", "error"), [
    ({"token": "USDC"}, E.INVALID_TOKEN.format(token=USDC_SEND_TOKEN)),
    ({"token": "PURR:0xc4bf3f870c0e9465323c0b6ed28096c2"}, E.INVALID_TOKEN.format(token=USDC_SEND_TOKEN)),
    ({"token": "USDC:0x6d1e7cde53ba9467b783cb7c530ce055"}, E.INVALID_TOKEN.format(token=USDC_SEND_TOKEN)),
    ({"amount": "1e3"}, E.INVALID_AMOUNT),
    ({"amount": "-1"}, E.INVALID_AMOUNT),
    ({"amount": "0.0000001"}, E.INVALID_AMOUNT),  # USDC on a perp dex has 6 decimals: no rounding
    ({"amount": "0"}, E.INVALID_AMOUNT),
    ({"amount": " 1"}, E.INVALID_AMOUNT),
    ({"amount": "99999999999999999999"}, E.INVALID_AMOUNT),
    ({"destinationDex": "abc"}, E.UNKNOWN_DEX.format(dex="abc")),
    ({"fromSubAccount": BOB}, E.INVALID_SUBACCOUNT_TRANSFER.format(src=ALICE, dst=BOB)),
    ({"amount": "20000"}, E.INSUFFICIENT_TRANSFER),
])
def test_send_asset_action_refusals_are_answered_before_the_log(kw: dict[str, Any], error: str) -> None:
    sim = Sim()
    _markets(sim)
    sim.fund(ALICE, 10_000)
    sim.fund(BOB, 10)
    with pytest.raises(ActionError, match="^" + re.escape(error) + "$"):
        _api(sim)._plan(_action(**kw), ALICE, ALICE)


@pytest.mark.parametrize("kw", [{"destination": "0x12"}, {"amount": 1.5}, {"sourceDex": None},
                                {"fromSubAccount": "nope"}, {"destination": "xyz:" + ALICE}])
def test_malformed_send_asset_is_unprocessable(kw: dict[str, Any]) -> None:
    sim = Sim()
    _markets(sim)
    sim.fund(ALICE, 10)
    with pytest.raises(BadRequest):
        _api(sim)._plan(_action(**kw), ALICE, ALICE)


def test_send_asset_action_becomes_an_exact_command_and_agent_sends_stay_with_the_user() -> None:
    sim = Sim()
    _markets(sim)
    sim.fund(ALICE, 100)
    assert sim.do(C.CreateSubAccount, master=ALICE, sub=SUB, name="s1") == OK
    plan = _api(sim)._plan(_action(amount="12.345678", token=USDC_SEND_TOKEN.upper().replace("0X", "0x")),
                           ALICE, ALICE)
    assert plan.commands == [C.SendAsset(ts=0, user=ALICE, src=ALICE, dst=ALICE, src_dex="", dst_dex="xyz",
                                         usd=12_345_678)]
    agent = {k: v for k, v in _action(destination=SUB).items() if k not in ("hyperliquidChain", "signatureChainId")}
    agent["type"] = "agentSendAsset"
    assert _api(sim)._plan(agent, ALICE, "0x" + "ae" * 20).commands[0].dst == SUB
    with pytest.raises(ActionError, match=E.AGENT_SEND):
        _api(sim)._plan(agent | {"destination": BOB}, ALICE, "0x" + "ae" * 20)


def test_shared_collateral_modes_are_refused_and_standard_is_a_no_op() -> None:
    """Unified account, portfolio margin and dex abstraction share collateral across dexes: not
    implemented, so asking for one is refused (perpbox wording) and asking for standard changes nothing."""
    sim = Sim()
    _markets(sim)
    sim.fund(ALICE, 10)
    api = _api(sim)
    for mode in ("unifiedAccount", "portfolioMargin", "dexAbstraction"):
        with pytest.raises(ActionError, match="not supported"):
            api._plan({"type": "userSetAbstraction", "user": ALICE, "abstraction": mode, "nonce": 1}, ALICE, ALICE)
    with pytest.raises(ActionError, match="not supported"):
        api._plan({"type": "userDexAbstraction", "user": ALICE, "enabled": True, "nonce": 1}, ALICE, ALICE)
    assert api._plan({"type": "userSetAbstraction", "user": ALICE, "abstraction": "disabled", "nonce": 1},
                     ALICE, ALICE).commands == [C.Noop(ts=0, user=ALICE)]
    assert api._plan({"type": "userDexAbstraction", "user": ALICE, "enabled": False, "nonce": 1},
                     ALICE, ALICE).commands == [C.Noop(ts=0, user=ALICE)]
    assert _info(sim).user_abstraction({"user": ALICE}) == "disabled"

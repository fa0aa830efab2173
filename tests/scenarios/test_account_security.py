"""The engine's own defences against one user moving another's money (issue 17, §1): each attack
reproduced as it was reported, refused by the engine even when no API pre-check stands in front."""

from __future__ import annotations

from scenario_kit import ALICE, BOB, BTC_ID, CAROL, DAVE, SUB, Sim, btc_spec, usd

from perpbox.core import errors as E
from perpbox.exchange import commands as C
from perpbox.exchange.access import (
    AGENT_ALREADY_USED,
    AGENT_EXPIRED,
    AGENT_IS_USER,
    AGENT_NAME_INVALID,
    AGENT_TOO_LATE,
    TOO_MANY_AGENTS,
    TOO_MANY_BUILDERS,
)
from perpbox.exchange.results import CANCELED, OK, Error, OrderError, Resting, Statuses

DAY_MS = 86_400_000
ATTACKER_AGENT = "0x" + "ae" * 20
BYSTANDER = CAROL


def _market(sim: Sim) -> None:
    sim.list_market(btc_spec(), 60_000)
    for user in (ALICE, BOB, BYSTANDER):
        sim.deposit(user, 300_000)


def test_negative_builder_fee_naming_a_bystander_takes_nothing_from_the_bystander(sim: Sim) -> None:
    """The reported theft: a trader named a bystander as builder with f = -20,000,000 (tenths of a
    bp, i.e. -200,000%) and, on a $10,000 fill, took $200,000 out of the bystander's account."""
    _market(sim)
    assert sim.order(BOB, BTC_ID, False, 60_000, "1") == Resting(1)
    before = sim.cash(BYSTANDER)
    status = sim.order(ALICE, BTC_ID, True, 60_000, "1", tif="Ioc", builder=BYSTANDER, builder_fee=-20_000_000)
    assert status == OrderError(E.BUILDER_FEE_NOT_APPROVED)
    assert sim.cash(BYSTANDER) == before == usd(300_000)
    assert sim.szi(ALICE, BTC_ID) == 0
    sim.audit()


def test_builder_fees_need_the_order_users_own_approval_and_stay_within_a_tenth_of_a_percent(sim: Sim) -> None:
    _market(sim)
    assert sim.do(C.ApproveBuilderFee, user=ALICE, builder=BYSTANDER, max_fee=200) == OK  # 0.2%: allowed as
    assert sim.order(BOB, BTC_ID, False, 60_000, "1") == Resting(1)          # an approval (spot cap)
    for fee in (101, 200):  # above 0.1% on perps, even though approved
        assert sim.order(ALICE, BTC_ID, True, 60_000, "0.1", tif="Ioc", builder=BYSTANDER,
                         builder_fee=fee) == OrderError(E.BUILDER_FEE_NOT_APPROVED)
    # Bob never approved the bystander: Alice's approval is no use to Bob
    assert sim.order(BOB, BTC_ID, True, 50_000, "0.1", builder=BYSTANDER, builder_fee=10) == OrderError(
        E.BUILDER_FEE_NOT_APPROVED)
    # naming oneself as builder earns nothing
    assert sim.do(C.ApproveBuilderFee, user=ALICE, builder=ALICE, max_fee=10) == OK
    assert sim.order(ALICE, BTC_ID, True, 60_000, "0.1", tif="Ioc", builder=ALICE, builder_fee=10) == OrderError(
        E.BUILDER_FEE_NOT_APPROVED)
    # within the approval and the cap, the fee moves from Alice to the builder: 1 bp of $6,000 = $0.60
    cash = sim.cash(BYSTANDER)
    res = sim.order(ALICE, BTC_ID, True, 60_000, "0.1", tif="Ioc", builder=BYSTANDER, builder_fee=10)
    assert res.total_sz == 10_000
    assert sim.cash(BYSTANDER) - cash == 600_000
    sim.audit()


def test_at_most_ten_builders_approved_per_user(sim: Sim) -> None:
    _market(sim)
    builders = [f"0x{i:040x}" for i in range(1, 12)]
    for b in builders:
        sim.deposit(b, 100)
    for b in builders[:10]:
        assert sim.do(C.ApproveBuilderFee, user=ALICE, builder=b, max_fee=10) == OK
    assert sim.do(C.ApproveBuilderFee, user=ALICE, builder=builders[10], max_fee=10) == Error(TOO_MANY_BUILDERS)
    assert sim.do(C.ApproveBuilderFee, user=ALICE, builder=builders[0], max_fee=0) == OK  # revoke one
    assert sim.do(C.ApproveBuilderFee, user=ALICE, builder=builders[10], max_fee=10) == OK


def test_another_users_agent_cannot_be_approved(sim: Sim) -> None:
    """The reported takeover: Bob approved Alice's API wallet as his own, and Alice's bot then traded
    on Bob's account.  The wallet stays Alice's."""
    _market(sim)
    assert sim.do(C.ApproveAgent, user=ALICE, agent=ATTACKER_AGENT, name="") == OK
    hash_before = sim.ex.state_hash()
    assert sim.do(C.ApproveAgent, user=BOB, agent=ATTACKER_AGENT, name="") == Error(AGENT_ALREADY_USED)
    assert sim.do(C.ApproveAgent, user=BOB, agent=ATTACKER_AGENT, name="bot") == Error(AGENT_ALREADY_USED)
    assert sim.ex.state_hash() == hash_before
    assert sim.ex.access.agent_master(ATTACKER_AGENT, sim.ts) == ALICE


def test_a_retired_agent_is_never_approved_again(sim: Sim) -> None:
    """What a removed agent signed could be replayed: the address stays used (Alice's too)."""
    _market(sim)
    assert sim.do(C.ApproveAgent, user=ALICE, agent=ATTACKER_AGENT, name="bot") == OK
    assert sim.do(C.ApproveAgent, user=ALICE, agent="0x" + "0" * 40, name="bot") == OK  # removal
    assert sim.ex.access.agent_master(ATTACKER_AGENT, sim.ts) is None
    assert sim.do(C.ApproveAgent, user=BOB, agent=ATTACKER_AGENT, name="") == Error(AGENT_ALREADY_USED)
    assert sim.do(C.ApproveAgent, user=ALICE, agent=ATTACKER_AGENT, name="bot") == Error(AGENT_ALREADY_USED)


def test_an_account_cannot_become_an_agent(sim: Sim) -> None:
    _market(sim)
    assert sim.do(C.CreateSubAccount, master=BOB, sub=SUB, name="desk") == OK
    for target in (ALICE, BOB, SUB):  # another user, oneself, one's own sub-account
        assert sim.do(C.ApproveAgent, user=BOB, agent=target, name="") == Error(AGENT_IS_USER)


def test_agent_renewal_and_limits_follow_the_reference(sim: Sim) -> None:
    """1 unnamed + 3 named per master, +2 named per sub-account; valid_until in the future and at
    most 180 days ahead; a name of at most 16 characters."""
    _market(sim)
    now = sim.ts
    agents = [f"0x{0xa9000 + i:040x}" for i in range(8)]
    assert sim.do(C.ApproveAgent, user=ALICE, agent=agents[0], name="") == OK
    for i, name in enumerate(("one", "two", "three"), start=1):
        assert sim.do(C.ApproveAgent, user=ALICE, agent=agents[i], name=name) == OK
    assert sim.do(C.ApproveAgent, user=ALICE, agent=agents[4], name="four") == Error(
        TOO_MANY_AGENTS.format(limit=3))
    assert sim.do(C.CreateSubAccount, master=ALICE, sub=SUB, name="desk") == OK
    assert sim.do(C.ApproveAgent, user=ALICE, agent=agents[4], name="four") == OK
    assert sim.do(C.ApproveAgent, user=ALICE, agent=agents[5], name="five") == OK
    assert sim.do(C.ApproveAgent, user=ALICE, agent=agents[6], name="six") == Error(
        TOO_MANY_AGENTS.format(limit=5))
    # renewing one's own agent under its own name is allowed, with a new expiry
    until = now + 30 * DAY_MS
    assert sim.do(C.ApproveAgent, user=ALICE, agent=agents[1], name="one", valid_until=until) == OK
    assert sim.ex.access.agents_of(ALICE)[1] == (agents[1], "one", until)
    assert sim.do(C.ApproveAgent, user=ALICE, agent=agents[2], name="two", valid_until=sim.ts) == Error(
        AGENT_EXPIRED)
    assert sim.do(C.ApproveAgent, user=ALICE, agent=agents[2], name="two",
                  valid_until=sim.ts + 181 * DAY_MS) == Error(AGENT_TOO_LATE)
    for name in ("x" * 17, "a valid_until b", "tab\there"):
        assert sim.do(C.ApproveAgent, user=ALICE, agent=agents[7], name=name) == Error(AGENT_NAME_INVALID)
    assert sim.do(C.ApproveAgent, user=ALICE, agent=agents[7], name="x" * 16) == Error(
        TOO_MANY_AGENTS.format(limit=5))


def test_open_orders_are_limited_to_a_thousand_then_one_more_per_five_million_traded(sim: Sim) -> None:
    """Reference §6.7: 1,000 open orders + 1 per $5M of volume (at most 5,000); from 1,000 open
    orders on, new reduce-only and trigger orders are refused."""
    _market(sim)
    for user in (BOB, DAVE):
        sim.deposit(user, 10_000_000)
    too_many = OrderError(E.order_error(E.TOO_MANY_OPEN_ORDERS, BTC_ID))
    # Dave buys 100 BTC from Bob at $60,000 and sells it back: $12M of volume for each of them
    for is_buy in (True, False):
        assert isinstance(sim.order(BOB, BTC_ID, not is_buy, 60_000, "100"), Resting)
        assert sim.order(DAVE, BTC_ID, is_buy, 60_000, "100", tif="Ioc").total_sz == 100 * 10**5
    assert sim.ex.volume.traded[DAVE] == usd(12_000_000)  # so Dave's limit is 1,000 + 2
    first = sim.order(DAVE, BTC_ID, True, 40_000, "0.001").oid
    for i in range(1, 1000):
        assert isinstance(sim.order(DAVE, BTC_ID, True, 40_000 - i, "0.001"), Resting)
    assert sim.order(DAVE, BTC_ID, True, 30_000, "0.001", reduce_only=True) == too_many
    assert sim.order(DAVE, BTC_ID, False, 90_000, "0.001", trigger_px=90_000, tpsl="tp", reduce_only=True,
                     is_market=True) == too_many
    assert isinstance(sim.order(DAVE, BTC_ID, True, 30_000, "0.001"), Resting)
    assert isinstance(sim.order(DAVE, BTC_ID, True, 30_001, "0.001"), Resting)
    assert sim.order(DAVE, BTC_ID, True, 30_002, "0.001") == too_many
    assert sim.cancel(DAVE, BTC_ID, first) == Statuses((CANCELED,))  # a cancel frees a slot
    assert isinstance(sim.order(DAVE, BTC_ID, True, 30_003, "0.001"), Resting)
    sim.audit()


def test_sub_account_names_and_counts_are_bounded(sim: Sim) -> None:
    _market(sim)
    assert sim.do(C.CreateSubAccount, master=ALICE, sub=SUB, name="x" * 5_000_000) == Error(
        "Invalid sub-account name.")
    assert sim.do(C.CreateSubAccount, master=ALICE, sub=SUB, name="") == Error("Invalid sub-account name.")
    for i in range(10):
        assert sim.do(C.CreateSubAccount, master=ALICE, sub=f"0x{0x5000 + i:040x}", name=f"s{i}") == OK
    assert sim.do(C.CreateSubAccount, master=ALICE, sub=f"0x{0x6000:040x}", name="s10") == Error(
        "Too many sub-accounts. Limit is 10")

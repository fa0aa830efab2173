"""Accounts and money movements: deposits, withdrawals, sub-accounts and transfers
(hyperliquid-api.md §3.8, §3.10 strings; §6.3: removing margin keeps
``max(initial_margin_required, 10% of total position value)``).  Every scenario ends with the
conservation check ``total_cash == deposits − withdrawals`` and a replay of its events."""

from __future__ import annotations

from scenario_kit import ALICE, BOB, BTC_ID, CAROL, SUB, Sim, btc_spec, usd

from perpbox.exchange import commands as C
from perpbox.exchange.results import OK, Error, Filled
from perpbox.ledger.ledger import FEE_ACCOUNT

NO_WITHDRAW = Error("Insufficient balance for withdrawal")
NO_TRANSFER = Error("Insufficient balance for token transfer")


def test_sub_account_creation_and_transfers_between_master_and_sub(sim: Sim) -> None:
    sim.list_market(btc_spec(), 100_000)
    assert sim.do(C.CreateSubAccount, master=ALICE, sub=SUB, name="desk") == Error(
        f"Must deposit before performing actions. User: {ALICE}")
    sim.deposit(ALICE, 1_000)
    sim.deposit(BOB, 10_000)
    assert sim.do(C.CreateSubAccount, master=ALICE, sub=SUB, name="desk") == OK
    assert sim.acct(SUB).master == ALICE and sim.acct(ALICE).subs == [SUB]
    assert sim.do(C.CreateSubAccount, master=ALICE, sub=SUB, name="again") == Error("Invalid sub-account.")
    assert sim.do(C.CreateSubAccount, master=SUB, sub=CAROL, name="nested") == Error("Invalid sub-account.")

    # master → sub and back
    assert sim.transfer(ALICE, SUB, usd(400)) == OK
    assert (sim.cash(ALICE), sim.cash(SUB)) == (usd(600), usd(400))
    assert sim.transfer(SUB, ALICE, usd(400) + 1) == NO_TRANSFER
    assert sim.transfer(SUB, ALICE, 0) == NO_TRANSFER
    assert sim.transfer(SUB, SUB, usd(1)) == NO_TRANSFER
    assert sim.transfer(SUB, FEE_ACCOUNT, usd(1)) == NO_TRANSFER
    assert sim.transfer(SUB, ALICE, usd(100)) == OK
    assert (sim.cash(ALICE), sim.cash(SUB)) == (usd(700), usd(300))

    # the sub trades: 0.01 BTC at 100,000 = $1,000 at 20x → IM 50; taker fee 0.45
    sim.order(BOB, BTC_ID, False, 100_000, "0.01")
    assert isinstance(sim.order(SUB, BTC_ID, True, 100_000, "0.01"), Filled)
    # value = 300 − 1,000 − 0.45 + 1,000 = 299.55; transfers keep max(IM 50, 10% × 1,000 = 100) → 199.55
    assert sim.ex.margin.withdrawable(sim.acct(SUB)) == usd("199.55")
    assert sim.transfer(SUB, ALICE, usd("199.55") + 1) == NO_TRANSFER
    assert sim.transfer(SUB, ALICE, usd("199.55")) == OK
    assert sim.ex.margin.account_value(sim.acct(SUB)) == usd(100)
    assert sim.ex.margin.withdrawable(sim.acct(SUB)) == 0

    # withdrawals from the master: 700 + 199.55 = 899.55 available
    assert sim.cash(ALICE) == usd("899.55")
    assert sim.withdraw(ALICE, usd("899.55") + 1) == NO_WITHDRAW
    assert sim.withdraw(ALICE, 0) == NO_WITHDRAW
    assert sim.withdraw(CAROL, usd(1)) == NO_WITHDRAW  # never deposited
    assert sim.withdraw(ALICE, usd("899.55")) == OK
    assert sim.cash(ALICE) == 0
    led = sim.ex.ledger
    assert (led.deposits, led.withdrawals) == (usd(11_000), usd("899.55"))
    assert led.total_cash() == usd(11_000) - usd("899.55")
    sim.audit()


def test_withdrawal_at_high_leverage_keeps_ten_percent_of_notional(sim: Sim) -> None:
    """At 40x the initial margin is 2.5% of notional, but a withdrawal must leave 10%."""
    sim.list_market(btc_spec(), 100_000)
    sim.deposit(ALICE, 2_000)
    sim.deposit(BOB, 10_000)
    sim.leverage(ALICE, BTC_ID, 40)
    sim.order(BOB, BTC_ID, False, 100_000, "0.1")
    assert isinstance(sim.order(ALICE, BTC_ID, True, 100_000, "0.1"), Filled)
    # value 2,000 − 4.5 = 1,995.5; IM 250; 10% × 10,000 = 1,000 → withdrawable 995.5 (not 1,745.5)
    m = sim.ex.margin
    assert m.cross_initial_margin(sim.acct(ALICE)) == usd(250)
    assert m.available_to_trade(sim.acct(ALICE)) == usd("1745.5")
    assert m.withdrawable(sim.acct(ALICE)) == usd("995.5")
    assert sim.withdraw(ALICE, usd("995.5") + 1) == NO_WITHDRAW
    assert sim.withdraw(ALICE, usd("995.5")) == OK
    assert m.account_value(sim.acct(ALICE)) == usd(1_000)
    # mark to 90,000: value −9,000 + 9,000 = 0, nothing to withdraw (floored at 0, never negative)
    sim.tick(BTC_ID, 90_000)
    assert m.account_value(sim.acct(ALICE)) == 0
    assert m.withdrawable(sim.acct(ALICE)) == 0
    assert sim.withdraw(ALICE, 1) == NO_WITHDRAW
    sim.audit()


def test_deposit_must_be_positive_and_money_is_conserved_through_trading(sim: Sim) -> None:
    sim.list_market(btc_spec(), 100_000)
    assert sim.deposit(ALICE, 0) == Error("Deposit amount must be positive.")
    for u in (ALICE, BOB, CAROL):
        sim.deposit(u, 50_000)
    # a little round trip: fees go to the fee account, cash moves between traders, nothing is lost
    sim.order(BOB, BTC_ID, False, 100_000, "0.2")
    sim.order(CAROL, BTC_ID, True, 99_000, "0.2")
    sim.order(ALICE, BTC_ID, True, 100_000, "0.2")
    sim.tick(BTC_ID, 99_500)
    sim.order(ALICE, BTC_ID, False, 99_000, "0.2", tif="Ioc")
    # fees: 0.2 × 100,000 → taker 9 + maker 3; 0.2 × 99,000 → taker 8.91 + maker 2.97
    assert sim.fees() == usd("23.88")
    assert sim.szi(ALICE, BTC_ID) == 0
    assert sim.cash(ALICE) == usd(50_000) - usd(200) - usd(9) - usd("8.91")
    led = sim.ex.ledger
    assert led.total_cash() == usd(150_000) == led.deposits - led.withdrawals
    sim.audit()

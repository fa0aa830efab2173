"""The ledger's choke point (issue 18): ``Ledger.can_update`` / ``Ledger.update`` validate a whole
batch of cash and position changes and apply all of it or none, refusing with coded errors.

Units as in test_ledger.py: price in 0.01 USD, size in lots of 0.0001 ETH, ``px * sz`` in
micro-USDC.  Every expected value below is worked out by hand in the comment next to it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perpbox.ledger import errors as E
from perpbox.ledger.ledger import (
    FEE_ACCOUNT,
    Account,
    Batch,
    CashChange,
    Ledger,
    LedgerError,
    Position,
    PositionChange,
    SettingChange,
    spot_wallet,
)

USD = 10**6
ONE = 10_000  # 1 ETH in lots


def PX(usd: int) -> int:
    return usd * 100


def dump(led: Ledger) -> tuple[Any, ...]:
    """Everything the ledger holds, in a comparable form."""
    return (led.deposits, led.withdrawals, led.total_cash(),
            tuple((a, acct.raw_usd, acct.master, tuple(acct.subs),
                   tuple(p.state() for _, p in sorted(acct.positions.items())))
                  for a, acct in sorted(led.accounts.items())))


def funded() -> Ledger:
    led = Ledger()
    led.deposit("alice", 10_000 * USD)
    led.deposit("bob", 10_000 * USD)
    led.transfer("alice", spot_wallet("alice"), 100 * USD)
    return led


def open_pair(led: Ledger, is_cross: bool = True, leverage: int = 10) -> tuple[Account, Position, Account, Position]:
    """alice buys 1 ETH at 2,000 from bob (no fees); alice cross or isolated, bob cross."""
    a, b = led.account("alice"), led.account("bob")
    pa, pb = led.position(a, 1, is_cross, leverage), led.position(b, 1, True, 20)
    led.apply_fill(a, pa, True, PX(2_000), ONE, 0)
    led.apply_fill(b, pb, False, PX(2_000), ONE, 0)
    return a, pa, b, pb


def refused(led: Ledger, batch: Batch, err: type[LedgerError]) -> None:
    """``batch`` is refused with ``err`` by both entry points and leaves the ledger as it was."""
    before = dump(led)
    found = led.can_update(batch)
    assert type(found) is err, found
    with pytest.raises(err) as info:
        led.update(batch)
    assert info.value.code == err.code and str(err.code) in str(info.value)
    assert dump(led) == before


# -- the registry ----------------------------------------------------------------------------------
def test_every_rule_has_a_distinct_registered_code_and_a_docstring() -> None:
    classes = [c for c in vars(E).values()
               if isinstance(c, type) and issubclass(c, LedgerError) and c is not LedgerError]
    assert sorted(c.code for c in classes) == sorted(E.REGISTRY)
    assert len({c.name for c in classes}) == len(classes)
    for c in classes:
        assert E.REGISTRY[c.code] is c and c.__doc__
    assert {100: E.NonPositiveAmount, 200: E.UnknownAccount, 201: E.AccountExists,
                          202: E.NegativeSpotBalance, 300: E.UnknownPosition, 301: E.EntryInconsistent,
                          302: E.BucketOnFlatPosition, 303: E.BucketOnCrossPosition, 304: E.BadLeverage,
                          305: E.ModeSwitchOnOpenPosition, 400: E.NotConserved, 500: E.BadFill} == E.REGISTRY


# -- each code, by hand ------------------------------------------------------------------------------
def test_100_non_positive_amounts() -> None:
    led = funded()
    before = dump(led)
    for bad in (0, -1):
        with pytest.raises(E.NonPositiveAmount):
            led.deposit("alice", bad)
        with pytest.raises(E.NonPositiveAmount):
            led.withdraw("alice", bad)
        with pytest.raises(E.NonPositiveAmount):
            led.transfer("alice", "bob", bad)
    assert dump(led) == before
    # a negative external flow, even balanced: −5 "deposited" and −5 of cash
    refused(led, Batch(cash=[CashChange("alice", -5)], deposits=-5), E.NonPositiveAmount)


def test_200_cash_is_taken_only_from_an_existing_account() -> None:
    led = funded()
    with pytest.raises(E.UnknownAccount):
        led.withdraw("ghost", 1)
    with pytest.raises(E.UnknownAccount):
        led.transfer("ghost", "alice", 1)
    assert "ghost" not in led.accounts
    # a position change on an account object that is not this ledger's
    stranger = Account("alice")
    pos = led.position(stranger, 1, True, 20)
    refused(led, Batch(positions=[PositionChange(stranger, pos)]), E.UnknownAccount)
    # a credit may create the account
    led.transfer("alice", "carol", 1)
    assert led.accounts["carol"].raw_usd == 1


def test_201_sub_account_name_taken() -> None:
    led = funded()
    led.create_sub_account("alice", "sub")
    for taken in ("sub", "bob", FEE_ACCOUNT):
        with pytest.raises(E.AccountExists) as info:
            led.create_sub_account("alice", taken)
        assert info.value.code == 201
    assert led.accounts["alice"].subs == ["sub"]


def test_202_spot_wallet_never_negative_perp_cash_may_be() -> None:
    led = funded()
    spot = spot_wallet("alice")  # holds 100
    with pytest.raises(E.NegativeSpotBalance):
        led.transfer(spot, "alice", 100 * USD + 1)
    led.transfer(spot, "alice", 100 * USD)  # exactly to zero is fine
    assert led.accounts[spot].raw_usd == 0
    with pytest.raises(E.NegativeSpotBalance):
        led.transfer(spot, "bob", 1)
    # cross cash of a perp account may go negative (its positions back it): alice holds
    # 10,000 − 2,000 (bought 1 ETH) = 8,000 and sends 8,100
    a, _, _, _ = open_pair(led)
    led.transfer("alice", "bob", 8_100 * USD)
    assert a.raw_usd == -100 * USD


def test_300_position_change_names_the_accounts_own_slot() -> None:
    led = funded()
    a = led.account("alice")
    loose = Position(1, True, 20)  # never put in alice's positions
    refused(led, Batch(positions=[PositionChange(a, loose)]), E.UnknownPosition)
    refused(led, Batch(settings=[SettingChange(a, loose, False, 5)]), E.UnknownPosition)


def test_301_entry_is_non_negative_and_zero_exactly_when_flat() -> None:
    led = funded()
    a, pa, _, _ = open_pair(led)  # alice long 1 ETH, cost basis 2,000
    # size without cost basis: closing the size but keeping the basis
    refused(led, Batch(positions=[PositionChange(a, pa, szi=-ONE)]), E.EntryInconsistent)
    # cost basis without size: a flat slot given a basis
    c = led.account("carol")
    pc = led.position(c, 1, True, 20)
    refused(led, Batch(positions=[PositionChange(c, pc, entry_ntl=1)]), E.EntryInconsistent)
    # negative basis: 2,000 − 2,000.000001
    refused(led, Batch(positions=[PositionChange(a, pa, entry_ntl=-2_000 * USD - 1)]), E.EntryInconsistent)
    # the fill fast path refuses to trade on an inconsistent position, before changing anything
    pc.entry_ntl = 5  # corrupted by hand (only a test does this)
    before = dump(led)
    with pytest.raises(E.EntryInconsistent):
        led.apply_fill(c, pc, True, PX(2_000), ONE, 0)
    assert dump(led) == before


def test_302_a_flat_position_keeps_no_bucket() -> None:
    led = funded()
    a = led.account("alice")
    pos = led.position(a, 1, False, 10)  # isolated, flat
    with pytest.raises(E.BucketOnFlatPosition):
        led.move_isolated(a, pos, 5 * USD)
    # an isolated long at 10x: IM 200 in, bucket 200 − 2,000 = −1,800; dropping the size and
    # basis but not the bucket is refused
    a, pa, b, pb = open_pair(led, is_cross=False)
    assert pa.iso_raw == -1_800 * USD
    refused(led, Batch(positions=[PositionChange(a, pa, szi=-ONE, entry_ntl=-2_000 * USD),
                                  PositionChange(b, pb, szi=ONE, entry_ntl=-2_000 * USD)]), E.BucketOnFlatPosition)


def test_303_a_cross_position_has_no_bucket() -> None:
    led = funded()
    a, pa, _, _ = open_pair(led)
    with pytest.raises(E.BucketOnCrossPosition):
        led.move_isolated(a, pa, 5 * USD)
    assert pa.iso_raw == 0 and a.raw_usd == 7_900 * USD  # 10,000 − 100 (to spot) − 2,000 (bought)


def test_304_leverage_at_least_one() -> None:
    led = funded()
    a = led.account("alice")
    pos = led.position(a, 1, True, 20)
    for bad in (0, -3):
        with pytest.raises(E.BadLeverage):
            led.set_leverage(a, pos, False, bad)
    assert (pos.is_cross, pos.leverage) == (True, 20)
    led.set_leverage(a, pos, False, 3)
    assert (pos.is_cross, pos.leverage) == (False, 3)
    assert "alice" in led.touched
    # the fill fast path refuses an isolated position with no leverage (it divides by it)
    bad = led.position(a, 2, False, 0)
    with pytest.raises(E.BadLeverage):
        led.apply_fill(a, bad, True, PX(2_000), ONE, 0)
    assert bad.state() == (2, 0, 0, False, 0, 0, 0, 0)


def test_305_no_mode_switch_while_open_but_leverage_may_change() -> None:
    led = funded()
    a, pa, _, _ = open_pair(led)
    with pytest.raises(E.ModeSwitchOnOpenPosition):
        led.set_leverage(a, pa, False, 10)
    led.set_leverage(a, pa, True, 5)  # same mode, new leverage: allowed
    assert (pa.is_cross, pa.leverage) == (True, 5)


def test_400_batch_cash_sums_to_its_external_flow() -> None:
    led = funded()
    refused(led, Batch(cash=[CashChange("alice", 5)]), E.NotConserved)  # 5 from nowhere
    refused(led, Batch(cash=[CashChange("alice", -5), CashChange("bob", 4)]), E.NotConserved)  # 1 lost
    refused(led, Batch(cash=[CashChange("alice", 5)], deposits=4), E.NotConserved)
    a = led.account("alice")
    pos = led.position(a, 1, False, 10)
    led.apply_fill(a, pos, True, PX(2_000), ONE, 0)
    # a bucket change counts as cash: +7 into the bucket with only 6 out of cross
    refused(led, Batch(cash=[CashChange("alice", -6)], positions=[PositionChange(a, pos, iso_raw=7)]), E.NotConserved)
    # balanced ones apply: a deposit of 5 split over two accounts
    led.update(Batch(cash=[CashChange("alice", 2), CashChange("bob", 3)], deposits=5))
    assert led.deposits == 20_000 * USD + 5
    assert (a.raw_usd, led.accounts["bob"].raw_usd) == (9_700 * USD + 2, 10_000 * USD + 3)  # 9,900 − 200 (IM) + 2


def test_500_fill_size_and_price_positive() -> None:
    led = funded()
    a = led.account("alice")
    pos = led.position(a, 1, True, 20)
    before = dump(led)
    for px, sz in ((PX(2_000), 0), (PX(2_000), -1), (0, ONE), (-1, ONE)):
        with pytest.raises(E.BadFill) as info:
            led.apply_fill(a, pos, True, px, sz, 0)
        assert info.value.code == 500
    assert dump(led) == before


# -- all or none ------------------------------------------------------------------------------------
def test_one_bad_change_applies_nothing() -> None:
    led = funded()
    a, pa, b, _ = open_pair(led)
    spot = spot_wallet("alice")
    good = [CashChange("alice", -50 * USD), CashChange("bob", 30 * USD), CashChange(FEE_ACCOUNT, 20 * USD)]
    bad = CashChange(spot, -101 * USD)  # the spot wallet holds 100
    refused(led, Batch(cash=[*good, bad, CashChange("bob", 101 * USD)]), E.NegativeSpotBalance)
    # flat but keeping the 2,000 basis
    refused(led, Batch(cash=good, positions=[PositionChange(a, pa, szi=-ONE)]), E.EntryInconsistent)
    led.update(Batch(cash=good))
    assert (a.raw_usd, b.raw_usd, led.accounts[FEE_ACCOUNT].raw_usd) == (7_850 * USD, 12_030 * USD, 20 * USD)


def test_a_refused_transfer_of_a_position_moves_nothing() -> None:
    led = funded()
    a, pa, b, pb = open_pair(led)
    before = dump(led)
    with pytest.raises(E.BadFill):  # price 0
        led.transfer_position(a, pa, b, pb, -ONE, 0, 10 * USD)
    with pytest.raises(E.UnknownAccount):
        led.transfer_position(a, pa, Account("bob"), pb, -ONE, PX(2_000), 10 * USD)
    assert dump(led) == before
    # a valid one: bob takes alice's long back at 2,100 and pays her 10
    led.transfer_position(a, pa, b, pb, ONE, PX(2_100), -10 * USD)
    assert (pa.szi, pb.szi, pa.entry_ntl, pb.entry_ntl) == (0, 0, 0, 0)
    # alice: 7,900 + 2,100 + 10 = 10,010; bob: 12,000 − 2,100 − 10 = 9,890
    assert (a.raw_usd, b.raw_usd) == (10_010 * USD, 9_890 * USD)
    assert led.total_cash() == led.deposits - led.withdrawals


# -- conservation through funding and settlement: one batch per round -------------------------------
def test_a_funding_round_is_one_batch_that_nets_to_zero() -> None:
    led = funded()
    a, pa, b, pb = open_pair(led, is_cross=False)  # alice isolated long, bob cross short
    # alice pays 7 (rounded up), bob receives 6 (rounded down), the system keeps 7 − 6
    led.settle_funding([(a, pa, 7), (b, pb, -6)], 1)
    assert led.total_cash() == led.deposits - led.withdrawals
    assert (pa.iso_raw, pa.cum_funding, pb.cum_funding) == (-1_800 * USD - 7, 7, -6)
    assert led.accounts[FEE_ACCOUNT].raw_usd == 1


def test_a_funding_round_that_does_not_net_to_zero_is_refused_whole() -> None:
    led = funded()
    a, pa, b, pb = open_pair(led, is_cross=False)
    before = dump(led)
    with pytest.raises(E.NotConserved):
        led.settle_funding([(a, pa, 7), (b, pb, -6)], 0)  # the remainder left out: 1 unit would vanish
    assert dump(led) == before  # alice's payment was not applied either


def test_market_settlement_is_one_batch_that_nets_to_zero() -> None:
    led = funded()
    a, pa, b, pb = open_pair(led, is_cross=False)
    # alice: bucket −1,800 + proceeds 2,100 = 300 → cross; bob pays 2,100 for his short
    led.settle_market([(a, pa), (b, pb)], PX(2_100))
    assert led.total_cash() == led.deposits - led.withdrawals
    # alice: 9,900 − 200 (IM) + 300 = 10,000, pnl +100; bob: 12,000 − 2,100 = 9,900, pnl −100
    assert (a.raw_usd, pa.realized_pnl, b.raw_usd, pb.realized_pnl) == (10_000 * USD, 100 * USD, 9_900 * USD,
                                                                         -100 * USD)
    assert pa.state()[1:3] == (0, 0) and pa.iso_raw == 0


def test_settling_one_side_of_a_market_alone_is_refused_whole() -> None:
    led = funded()
    a, pa, _, _ = open_pair(led, is_cross=False)
    before = dump(led)
    with pytest.raises(E.NotConserved):
        led.settle_market([(a, pa)], PX(2_100))  # alice's 2,100 of proceeds would come from nowhere
    assert dump(led) == before


# -- properties ----------------------------------------------------------------------------------------
USERS = ["u0", "u1", "u2", "u3"]
PROPS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

amount = st.integers(min_value=1, max_value=5_000 * USD)
op = st.one_of(
    st.tuples(st.just("deposit"), st.sampled_from(USERS), amount),
    st.tuples(st.just("withdraw"), st.sampled_from(USERS), amount),
    st.tuples(st.just("transfer"), st.sampled_from(USERS), st.sampled_from(USERS), amount),
    st.tuples(st.just("to_spot"), st.sampled_from(USERS), amount),
    st.tuples(st.just("from_spot"), st.sampled_from(USERS), st.integers(0, 100)),
    st.tuples(st.just("fill"), st.sampled_from(USERS), st.sampled_from(USERS), st.booleans(),
              st.integers(1, 3_000), st.integers(1, 3 * ONE), st.integers(-500, 5_000), st.booleans()),
    st.tuples(st.just("margin"), st.sampled_from(USERS), st.integers(-50 * USD, 50 * USD)),
    st.tuples(st.just("funding"), st.lists(st.integers(-1_000, 1_000), min_size=4, max_size=4)),
    st.tuples(st.just("builder"), st.sampled_from(USERS), st.integers(1, 1_000)),
    st.tuples(st.just("batch"), st.lists(st.tuples(st.sampled_from(USERS), st.integers(-10**9, 10**9)), max_size=5),
              st.integers(0, 10**9), st.integers(0, 10**9)),
)


def run(led: Ledger, step: tuple[Any, ...]) -> None:
    """Apply one random but valid operation."""
    kind = step[0]
    if kind == "deposit":
        led.deposit(str(step[1]), int(step[2]))
    elif kind == "withdraw" and step[1] in led.accounts:
        led.withdraw(str(step[1]), int(step[2]))
    elif kind == "transfer" and step[1] in led.accounts:
        led.transfer(str(step[1]), str(step[2]), int(step[3]))
    elif kind == "to_spot" and step[1] in led.accounts:
        led.transfer(str(step[1]), spot_wallet(str(step[1])), int(step[2]))
    elif kind == "from_spot":
        spot = led.accounts.get(spot_wallet(str(step[1])))
        if spot is not None and spot.raw_usd > 0:
            led.transfer(spot.address, str(step[1]), max(1, spot.raw_usd * int(step[2]) // 100))
    elif kind == "fill":
        _, t, m, buys, px, sz, fee, iso = step
        if t == m:
            return
        ta, ma = led.account(str(t)), led.account(str(m))
        tp = ta.positions.get(1) or led.position(ta, 1, not iso, 5)
        mp = ma.positions.get(1) or led.position(ma, 1, True, 20)
        led.apply_fill(ta, tp, bool(buys), int(px), int(sz), int(fee))
        led.apply_fill(ma, mp, not buys, int(px), int(sz), -int(fee) // 3)
    elif kind == "margin":
        acct = led.accounts.get(str(step[1]))
        pos = None if acct is None else acct.positions.get(1)
        if acct is not None and pos is not None and not pos.is_cross and pos.szi and step[2]:
            led.move_isolated(acct, pos, int(step[2]))
    elif kind == "funding":
        payments = []
        for user, amt in zip(USERS, step[1], strict=True):
            acct = led.accounts.get(user)
            pos = None if acct is None else acct.positions.get(1)
            if acct is not None and pos is not None and pos.szi:
                payments.append((acct, pos, amt))
        led.settle_funding(payments, sum(amt for _, _, amt in payments))
    elif kind == "builder":
        led.pay_builder(str(step[1]), int(step[2]))
    elif kind == "batch":
        _, moves, dep, wd = step
        cash = [CashChange(u, v) for u, v in moves if u in led.accounts or v >= 0]
        if not cash:
            return
        flow = sum(c.usd for c in cash)
        cash.append(CashChange(FEE_ACCOUNT, int(dep) - int(wd) - flow))  # the balancing change
        led.update(Batch(cash=cash, deposits=int(dep), withdrawals=int(wd)))  # valid by construction


@PROPS
@given(st.lists(op, max_size=30))
def test_valid_operations_conserve_cash(steps: list[tuple[Any, ...]]) -> None:
    led = Ledger()
    for step in steps:
        run(led, step)
        assert led.total_cash() == led.deposits - led.withdrawals
        for acct in led.accounts.values():
            if acct.address.startswith("spot:"):
                assert acct.raw_usd >= 0
            for p in acct.positions.values():
                assert p.entry_ntl >= 0 and (p.szi == 0) == (p.entry_ntl == 0)
                assert p.iso_raw == 0 or (p.szi and not p.is_cross)


def _bad(led: Ledger, kind: int, v: int) -> tuple[list[CashChange], list[PositionChange]]:
    """One invalid change (with any cash needed to keep the batch otherwise balanced)."""
    a = led.account("u0")
    if kind == 0:  # debit of an unknown account
        return [CashChange("ghost", -v), CashChange("u0", v)], []
    if kind == 1:  # spot wallet below zero
        spot = spot_wallet("u0")
        have = led.accounts[spot].raw_usd if spot in led.accounts else 0
        return [CashChange(spot, -have - v), CashChange("u0", have + v)], []
    if kind == 2:  # money from nowhere
        return [CashChange("u0", v)], []
    pos = a.positions.get(7) or led.position(a, 7, False, 5)  # a flat slot nobody trades
    if kind == 3:  # size without cost basis
        return [], [PositionChange(a, pos, szi=v)]
    return [CashChange("u0", -v)], [PositionChange(a, pos, iso_raw=v)]  # a bucket on a flat position


@PROPS
@given(st.lists(op, max_size=15), st.lists(st.tuples(st.sampled_from(USERS), st.integers(-10**6, 10**6)), max_size=4),
       st.integers(0, 4), st.integers(1, 10**6), st.integers(0, 4))
def test_a_batch_with_one_invalid_change_applies_nothing(steps: list[tuple[Any, ...]],
                                                         moves: list[tuple[str, int]], kind: int, v: int,
                                                         at: int) -> None:
    led = Ledger()
    for user in USERS:
        led.deposit(user, 1_000 * USD)
    for step in steps:
        run(led, step)
    cash = [CashChange(u, m) for u, m in moves]
    cash.append(CashChange("u1", -sum(m for _, m in moves)))
    bad_cash, bad_pos = _bad(led, kind, v)
    cash[at % len(cash):at % len(cash)] = bad_cash
    batch = Batch(cash=cash, positions=bad_pos)
    before = dump(led)
    assert led.can_update(batch) is not None
    with pytest.raises(LedgerError):
        led.update(batch)
    assert dump(led) == before

"""Ledger: cash, positions, entry price and realised PnL per fill (Hyperliquid §6.10: entry is the
size-weighted average of opening trades and does not move on closes), isolated buckets, fees and
conservation.

Units (an ETH-like market, sz_decimals 4): price in 0.01 USD, size in lots of 0.0001, so
``px * sz`` is micro-USDC.  ``PX(2000)`` = 200_000, ``ONE`` = 1 ETH = 10_000 lots.
"""

from __future__ import annotations

import pytest

from perpbox.ledger.ledger import FEE_ACCOUNT, Ledger, LedgerError

USD = 10**6
ONE = 10_000  # 1 ETH in lots


def PX(usd: int) -> int:
    return usd * 100


class TwoSided:
    """A ledger whose ``apply_fill`` also settles the other side of the trade with a cross
    counterparty, ``bob`` (no fee), so that conservation can be checked after every fill; the
    returned PnL and every assertion are about the side under test."""

    def __init__(self) -> None:
        # composition, not inheritance: the ledger may be a compiled (mypyc) class
        self.ledger = Ledger()

    def __getattr__(self, name):
        return getattr(self.ledger, name)

    def apply_fill(self, acct, pos, is_buy, px, sz, fee):
        if acct.address != "bob":
            bob = self.ledger.account("bob")
            self.ledger.apply_fill(bob, self.ledger.position(bob, pos.asset, True, 20), not is_buy, px, sz, 0)
        return self.ledger.apply_fill(acct, pos, is_buy, px, sz, fee)


def setup(cash_usd: int = 10_000, is_cross: bool = True, leverage: int = 20):
    led = TwoSided()
    led.deposit("alice", cash_usd * USD)
    led.deposit("bob", 1_000_000 * USD)
    acct = led.account("alice")
    pos = led.position(acct, 1, is_cross, leverage)
    return led, acct, pos


def conserved(led: Ledger) -> bool:
    return led.total_cash() == led.deposits - led.withdrawals


# -- cross ---------------------------------------------------------------------------------------
def test_opening_fill_moves_notional_and_fee_and_sets_entry() -> None:
    led, acct, pos = setup()
    pnl = led.apply_fill(acct, pos, True, PX(2_000), ONE, 900_000)  # fee 0.90
    assert pnl == 0
    assert (pos.szi, pos.entry_ntl, pos.realized_pnl) == (ONE, 2_000 * USD, 0)
    assert acct.raw_usd == 10_000 * USD - 2_000 * USD - 900_000
    assert led.accounts[FEE_ACCOUNT].raw_usd == 900_000
    assert conserved(led)


def test_adding_to_a_position_averages_the_entry() -> None:
    led, acct, pos = setup()
    led.apply_fill(acct, pos, True, PX(2_000), ONE, 0)
    led.apply_fill(acct, pos, True, PX(2_300), 2 * ONE, 0)
    # entry = (1 × 2,000 + 2 × 2,300) / 3 = 2,200
    assert pos.szi == 3 * ONE
    assert pos.entry_ntl == 6_600 * USD
    assert pos.entry_ntl // pos.szi == PX(2_200)
    assert acct.raw_usd == (10_000 - 6_600) * USD
    assert conserved(led)


def test_partial_close_realises_pnl_and_keeps_entry() -> None:
    led, acct, pos = setup()
    led.apply_fill(acct, pos, True, PX(2_000), ONE, 0)
    led.apply_fill(acct, pos, True, PX(2_300), 2 * ONE, 0)  # 3 ETH at 2,200
    pnl = led.apply_fill(acct, pos, False, PX(2_500), ONE, 1_125_000)  # sell 1 at 2,500, fee 1.125
    # closed pnl = 1 × (2,500 − 2,200) = 300, fee excluded
    assert pnl == 300 * USD and pos.realized_pnl == 300 * USD
    assert pos.szi == 2 * ONE and pos.entry_ntl == 4_400 * USD  # entry still 2,200
    assert acct.raw_usd == (10_000 - 6_600 + 2_500) * USD - 1_125_000
    assert conserved(led)


def test_flip_closes_the_old_side_and_opens_the_rest_at_the_fill_price() -> None:
    led, acct, pos = setup()
    led.apply_fill(acct, pos, True, PX(2_000), 2 * ONE, 0)
    pnl = led.apply_fill(acct, pos, False, PX(1_900), 5 * ONE, 0)
    # closes 2 at a loss of 2 × 100 = 200, then opens a 3 ETH short at 1,900
    assert pnl == -200 * USD
    assert pos.szi == -3 * ONE and pos.entry_ntl == 5_700 * USD
    assert acct.raw_usd == (10_000 - 4_000 + 9_500) * USD
    # the short closes 1 at 1,800: pnl = 1 × (1,900 − 1,800) = +100
    assert led.apply_fill(acct, pos, True, PX(1_800), ONE, 0) == 100 * USD
    assert pos.realized_pnl == -100 * USD
    assert pos.szi == -2 * ONE and pos.entry_ntl == 3_800 * USD
    assert conserved(led)


def test_closing_part_of_an_uneven_cost_basis_floors_and_the_rest_stays_in_the_basis() -> None:
    led, acct, pos = setup()
    led.apply_fill(acct, pos, True, 7, 3, 0)  # cost 21 over 3 lots
    led.apply_fill(acct, pos, True, 8, 1, 0)  # cost 29 over 4 lots
    pnl = led.apply_fill(acct, pos, False, 10, 3, 0)
    # removed = 29 × 3 // 4 = 21 (floor); pnl = 30 − 21 = 9; 8 stays as the basis of 1 lot
    assert pnl == 9 and pos.entry_ntl == 8 and pos.szi == 1
    pnl = led.apply_fill(acct, pos, False, 10, 1, 0)
    assert pnl == 2 and pos.entry_ntl == 0 and pos.szi == 0
    assert pos.realized_pnl == 11  # = 40 sold − 29 bought, exactly
    assert conserved(led)


def test_maker_rebate_is_paid_by_the_fee_account() -> None:
    led, acct, pos = setup()
    led.apply_fill(acct, pos, True, PX(2_000), ONE, -20_000)  # rebate 0.02
    assert acct.raw_usd == 8_000 * USD + 20_000
    assert led.accounts[FEE_ACCOUNT].raw_usd == -20_000
    assert conserved(led)


# -- isolated ------------------------------------------------------------------------------------
def test_isolated_open_moves_initial_margin_into_the_bucket_and_pays_fee_from_it() -> None:
    led, acct, pos = setup(1_000, is_cross=False, leverage=20)
    led.apply_fill(acct, pos, True, PX(2_000), ONE, 900_000)
    # IM = 2,000 / 20 = 100 from cross; bucket = 100 − 2,000 − 0.9 = −1,900.9
    assert acct.raw_usd == 900 * USD
    assert pos.iso_raw == -1_900_900_000
    assert pos.iso_raw + pos.szi * PX(2_000) == 99_100_000  # isolated value at 2,000
    assert conserved(led)


def test_isolated_initial_margin_rounds_up() -> None:
    led, acct, pos = setup(1_000, is_cross=False, leverage=3)
    led.apply_fill(acct, pos, True, PX(2_000), ONE, 0)  # 2,000 / 3 = 666.666666… → 666.666667
    assert acct.raw_usd == 1_000 * USD - 666_666_667
    assert pos.iso_raw == 666_666_667 - 2_000 * USD
    assert conserved(led)


def test_isolated_short_open_and_margin_moves() -> None:
    led, acct, pos = setup(1_000, is_cross=False, leverage=10)
    led.apply_fill(acct, pos, False, PX(2_000), ONE, 0)
    # IM 200; the sale's 2,000 lands in the bucket: 2,200
    assert acct.raw_usd == 800 * USD and pos.iso_raw == 2_200 * USD
    led.move_isolated(acct, pos, 50 * USD)
    assert acct.raw_usd == 750 * USD and pos.iso_raw == 2_250 * USD
    led.move_isolated(acct, pos, -30 * USD)
    assert acct.raw_usd == 780 * USD and pos.iso_raw == 2_220 * USD
    assert conserved(led)


def test_isolated_partial_close_releases_that_share_of_equity_at_the_fill_price() -> None:
    led, acct, pos = setup(1_000, is_cross=False, leverage=20)
    led.apply_fill(acct, pos, True, PX(2_000), ONE, 900_000)
    pnl = led.apply_fill(acct, pos, False, PX(2_100), ONE // 2, 0)
    # equity at 2,100 = −1,900.9 + 2,100 = 199.1 → half (99.55) to cross
    assert pnl == 50 * USD
    assert acct.raw_usd == 900 * USD + 99_550_000
    assert pos.iso_raw == -1_900_900_000 + 1_050 * USD - 99_550_000
    assert pos.iso_raw + pos.szi * PX(2_100) == 99_550_000
    assert conserved(led)


def test_isolated_full_close_without_fee_empties_the_bucket() -> None:
    led, acct, pos = setup(1_000, is_cross=False, leverage=20)
    led.apply_fill(acct, pos, True, PX(2_000), ONE, 0)
    led.apply_fill(acct, pos, False, PX(2_100), ONE, 0)
    assert pos.szi == 0 and pos.iso_raw == 0
    assert acct.raw_usd == 1_100 * USD
    assert conserved(led)


def test_isolated_full_close_pays_the_closing_fee_and_leaves_an_empty_bucket() -> None:
    """Closing a whole isolated position hands its bucket back to cross; the closing fee is paid out
    of it, so the flat position is left with nothing (not a negative bucket with the fee in cross)."""
    led, acct, pos = setup(1_000, is_cross=False, leverage=20)
    led.apply_fill(acct, pos, True, PX(2_000), ONE, 900_000)
    led.apply_fill(acct, pos, False, PX(2_100), ONE, 945_000)
    # cross = 900 + (−1,900.9 + 2,100) − 0.945 = 1,098.155
    assert pos.szi == 0
    assert pos.iso_raw == 0
    assert acct.raw_usd == 1_098_155_000
    assert conserved(led)


def test_isolated_flip_releases_the_old_bucket_and_margins_the_new_side() -> None:
    led, acct, pos = setup(1_000, is_cross=False, leverage=20)
    led.apply_fill(acct, pos, True, PX(2_000), ONE, 0)  # bucket −1,900
    pnl = led.apply_fill(acct, pos, False, PX(2_100), 3 * ONE, 0)
    # close 1: bucket −1,900 + 2,100 = 200 → cross; open 2 short at 2,100: IM 210, bucket 210 + 4,200
    assert pnl == 100 * USD
    assert pos.szi == -2 * ONE and pos.entry_ntl == 4_200 * USD
    assert pos.iso_raw == 4_410 * USD
    assert acct.raw_usd == (900 + 200 - 210) * USD
    assert pos.iso_raw + pos.szi * PX(2_100) == 210 * USD
    assert conserved(led)


# -- money in and out ----------------------------------------------------------------------------
def test_deposits_withdrawals_transfers_and_sub_accounts() -> None:
    led = Ledger()
    led.deposit("alice", 100 * USD)
    led.create_sub_account("alice", "sub")
    assert led.accounts["sub"].master == "alice" and led.accounts["alice"].subs == ["sub"]
    with pytest.raises(LedgerError):
        led.create_sub_account("alice", "sub")
    led.transfer("alice", "sub", 40 * USD)
    led.withdraw("sub", 15 * USD)
    assert (led.accounts["alice"].raw_usd, led.accounts["sub"].raw_usd) == (60 * USD, 25 * USD)
    assert (led.deposits, led.withdrawals) == (100 * USD, 15 * USD)
    for bad in (0, -1):
        with pytest.raises(LedgerError):
            led.deposit("alice", bad)
        with pytest.raises(LedgerError):
            led.withdraw("alice", bad)
        with pytest.raises(LedgerError):
            led.transfer("alice", "sub", bad)
    assert conserved(led)

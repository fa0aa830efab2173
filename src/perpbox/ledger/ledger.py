"""The ledger: the only code that moves USDC or changes a position.

Money model (dYdX v4's, and Hyperliquid's ``rawUsd``): each account holds a USDC cash balance,
``raw_usd``, in micro-USDC.  A trade moves ``px * sz`` of cash from buyer to seller, exactly, and
changes the two position sizes by ``sz``; nothing is "realised" as money on close, because
account value is ``raw_usd + size * mark`` at all times.  An isolated position keeps its own cash
bucket, ``iso_raw``, moved in and out of the account's cross cash.  So conservation is a sum of
integers:

    Σ raw_usd + Σ iso_raw + fee account == deposits − withdrawals      (always, to the unit)

The entry price (size-weighted average of opening trades, Hyperliquid's rule) and realised PnL are
kept for reporting only, as an integer cost basis ``entry_ntl``; when part of a position closes the
cost removed is ``entry_ntl * closed // size`` (floor; the rounding stays in the remaining cost
basis and moves no money).
"""

from __future__ import annotations

from typing import Final

from perpbox.core.numbers import ceil_div, iabs, mul
from perpbox.ledger.entry import close_split

FEE_ACCOUNT: Final = "0x00000000000000000000000000000000000fee00"


class LedgerError(Exception):
    """A money movement the ledger refuses (the exchange validates first; this is a backstop)."""


class Position:
    __slots__ = ("asset", "cum_funding", "entry_ntl", "is_cross", "iso_raw", "leverage", "realized_pnl", "szi")

    def __init__(self, asset: int, is_cross: bool, leverage: int) -> None:
        self.asset = asset
        self.szi = 0  # signed size in lots
        self.entry_ntl = 0  # cost basis of the open size, micro-USDC (reporting only)
        self.is_cross = is_cross
        self.leverage = leverage
        self.iso_raw = 0  # isolated cash bucket, micro-USDC (0 for cross)
        self.realized_pnl = 0  # reporting only, micro-USDC, fees excluded
        self.cum_funding = 0  # funding paid (+) / received (-), micro-USDC (issue: perp mechanics)

    def state(self) -> tuple[int, int, int, bool, int, int, int, int]:
        return (self.asset, self.szi, self.entry_ntl, self.is_cross, self.leverage, self.iso_raw,
                self.realized_pnl, self.cum_funding)


class Account:
    __slots__ = ("address", "cloids", "master", "n_reduce_only", "orders", "positions", "raw_usd", "subs")

    def __init__(self, address: str, master: str | None = None) -> None:
        self.address = address
        self.raw_usd = 0  # cross cash, micro-USDC
        self.positions: dict[int, Position] = {}  # by asset: leverage settings live here too
        self.master = master
        self.subs: list[str] = []
        # live orders (resting, pending or waiting) and the cloid index; maintained by the exchange
        self.orders: dict[int, object] = {}
        self.cloids: dict[str, int] = {}
        self.n_reduce_only = 0


def spot_wallet(user: str) -> str:
    """The ledger account holding ``user``'s spot USDC (moved in and out by ``usdClassTransfer``);
    perpbox models no spot trading, so this is all a spot balance is."""
    return SPOT_PREFIX + user


SPOT_PREFIX = "spot:"
SPOT: Final = "spot"  # sendAsset's name for the spot wallet (a dex may not take it)


def dex_account(dex: str, user: str) -> str:
    """The ledger account of ``user``'s clearinghouse on perp dex ``dex``: the address itself on the
    first dex (``""``), ``"<dex>:<address>"`` on a HIP-3 dex (standard accounts keep a separate
    balance, cross margin and positions per dex; dex names are letters, never ``spot``)."""
    return dex + ":" + user if dex else user


def wallet_owner(address: str) -> str:
    """The user a ledger account belongs to (a spot wallet's or dex account's owner, else the
    address itself)."""
    return address.rpartition(":")[2]


def wallet_dex(address: str) -> str:
    """Which clearinghouse a ledger account is: ``""`` (first dex), a HIP-3 dex name, or ``spot``."""
    return address.rpartition(":")[0]


class Ledger:
    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {FEE_ACCOUNT: Account(FEE_ACCOUNT)}
        self.deposits = 0
        self.withdrawals = 0
        # accounts whose cash or positions changed since the liquidation index last read them
        # (derived bookkeeping: not part of the state hash)
        self.touched: set[str] = set()

    # -- accounts -------------------------------------------------------------------------------
    def account(self, address: str) -> Account:
        acct = self.accounts.get(address)
        if acct is None:
            acct = self.accounts[address] = Account(address)
        return acct

    def pay_builder(self, builder: str, amount: int) -> None:
        """Move a fill's builder fee (already collected into the fee account) to the builder."""
        if amount:
            self.accounts[FEE_ACCOUNT].raw_usd -= amount
            self.account(builder).raw_usd += amount
            self.touched.add(builder)

    def position(self, acct: Account, asset: int, is_cross: bool, leverage: int) -> Position:
        """The account's position slot in ``asset``, created with the given default settings."""
        pos = acct.positions.get(asset)
        if pos is None:
            pos = acct.positions[asset] = Position(asset, is_cross, leverage)
        return pos

    def create_sub_account(self, master: str, sub: str) -> None:
        if sub in self.accounts:
            raise LedgerError(f"account {sub} exists")
        self.account(master).subs.append(sub)
        self.accounts[sub] = Account(sub, master=master)

    # -- money in, out and across --------------------------------------------------------------
    def deposit(self, address: str, usd: int) -> None:
        if usd <= 0:
            raise LedgerError("deposit must be positive")
        self.account(address).raw_usd += usd
        self.deposits += usd
        self.touched.add(address)

    def withdraw(self, address: str, usd: int) -> None:
        if usd <= 0:
            raise LedgerError("withdrawal must be positive")
        self.account(address).raw_usd -= usd
        self.withdrawals += usd
        self.touched.add(address)

    def transfer(self, src: str, dst: str, usd: int) -> None:
        if usd <= 0:
            raise LedgerError("transfer must be positive")
        self.account(src).raw_usd -= usd
        self.account(dst).raw_usd += usd
        self.touched.add(src)
        self.touched.add(dst)

    def move_isolated(self, acct: Account, pos: Position, usd: int) -> None:
        """Move ``usd`` from cross cash into the isolated bucket (negative: back to cross)."""
        acct.raw_usd -= usd
        pos.iso_raw += usd
        self.touched.add(acct.address)

    # -- trades ---------------------------------------------------------------------------------
    def apply_fill(self, acct: Account, pos: Position, is_buy: bool, px: int, sz: int, fee: int) -> int:
        """Settle one side of a fill: cash, position size, entry and the fee.  Returns the closed
        PnL of the fill (reporting only, fee excluded).

        Isolated positions: opening ``q`` lots moves ``ceil(q * px / leverage)`` (the initial
        margin, rounded up) from cross cash into the position's bucket; closing part of a position
        releases the same share of the bucket's equity at the fill price (rounded down, so the
        position keeps any remainder); closing all of it releases the whole bucket, whatever its
        sign.  The position pays its own fees from its bucket."""
        self.touched.add(acct.address)
        old = pos.szi
        signed = sz if is_buy else -sz
        close_qty, removed, closed_pnl = close_split(old, pos.entry_ntl, is_buy, px, sz)
        open_qty = sz - close_qty
        if close_qty:
            pos.entry_ntl -= removed
            pos.realized_pnl += closed_pnl
        if pos.is_cross:
            acct.raw_usd -= mul(signed, px) + fee
            pos.szi = old + signed
        else:
            pos.iso_raw -= fee  # paid first, so a full close releases exactly what is left
            if close_qty:
                equity = pos.iso_raw + mul(old, px)
                step = close_qty if old > 0 else -close_qty
                pos.iso_raw += mul(step, px)  # the closing trade's cash
                if close_qty == iabs(old):
                    release = pos.iso_raw
                else:
                    release = mul(equity, close_qty) // iabs(old) if equity > 0 else 0
                pos.iso_raw -= release
                acct.raw_usd += release
                pos.szi = old - step
            if open_qty:
                margin = ceil_div(mul(open_qty, px), pos.leverage)
                acct.raw_usd -= margin
                step = open_qty if is_buy else -open_qty
                pos.iso_raw += margin - mul(step, px)
                pos.szi += step
        if open_qty:
            pos.entry_ntl += mul(px, open_qty)
        self.accounts[FEE_ACCOUNT].raw_usd += fee
        return closed_pnl

    # -- funding, transfers of positions, settlement ---------------------------------------
    def pay_funding(self, acct: Account, pos: Position, amount: int) -> None:
        """``amount`` > 0 is paid by the position, < 0 received; from/to its isolated bucket or
        the account's cross cash."""
        if pos.is_cross:
            acct.raw_usd -= amount
        else:
            pos.iso_raw -= amount
        pos.cum_funding += amount
        self.touched.add(acct.address)

    def book_remainder(self, usd: int) -> None:
        """A rounding remainder kept by the system (funding pays ceil, receives floor)."""
        self.accounts[FEE_ACCOUNT].raw_usd += usd

    def transfer_position(self, src: Account, src_pos: Position, dst: Account, dst_pos: Position, sz: int,
                          px: int, usd: int) -> None:
        """``src`` hands ``sz`` lots (signed: the change of *dst*'s position) to ``dst`` at ``px``,
        feeless, and ``usd`` of cash moves from ``src``'s cross cash to ``dst``'s (negative: the
        other way).  Used by backstop takeovers, insurance-fund takeovers and ADL."""
        self.apply_fill(dst, dst_pos, sz > 0, px, abs(sz), 0)
        self.apply_fill(src, src_pos, sz < 0, px, abs(sz), 0)
        src.raw_usd -= usd
        dst.raw_usd += usd

    def settle_position(self, acct: Account, pos: Position, px: int) -> None:
        """Close the whole position at ``px`` with no counterparty (a halted market's settlement:
        the market's positions net to zero, so the cash moved over all of them sums to zero)."""
        if pos.szi:
            self.touched.add(acct.address)
            closed = pos.szi
            pos.realized_pnl += closed * px - (pos.entry_ntl if closed > 0 else -pos.entry_ntl)
            pos.entry_ntl = 0
            if pos.is_cross:
                acct.raw_usd += closed * px
            else:
                acct.raw_usd += pos.iso_raw + closed * px
                pos.iso_raw = 0
            pos.szi = 0

    # -- audits ---------------------------------------------------------------------------------
    def total_cash(self) -> int:
        """Σ cross cash + Σ isolated buckets + fee account: equals deposits − withdrawals."""
        return sum(a.raw_usd + sum(p.iso_raw for p in a.positions.values()) for a in self.accounts.values())

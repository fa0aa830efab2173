"""The ledger: the only code that moves USDC or changes a position.

What this module is for: every change to money or to a position goes through one of its
operations (``deposit``, ``withdraw``, ``transfer``, ``move_isolated``, ``apply_fill``,
``settle_funding``, ``pay_builder``, ``transfer_position``, ``settle_market``,
``set_leverage``).  Each operation but the fill describes its change as a
``Batch`` and hands it to ``Ledger.update``, the one choke point (dYdX v4's
``UpdateSubaccounts``): ``can_update`` checks the whole batch against the current state and
``update`` applies all of it or, on the first broken rule, raises that rule's coded error
(``perpbox.ledger.errors``) having changed nothing.  Outside ``_apply`` (the batch's apply step)
and the ``apply_fill`` fast path, nothing here assigns ``raw_usd``, ``szi``, ``entry_ntl`` or
``iso_raw`` (the exchange only reads them).

Money model (dYdX v4's, and Hyperliquid's ``rawUsd``): each account holds a USDC cash balance,
``raw_usd``, in micro-USDC.  A trade moves ``px * sz`` of cash from buyer to seller, exactly, and
changes the two position sizes by ``sz``; nothing is "realised" as money on close, because
account value is ``raw_usd + size * mark`` at all times.  An isolated position keeps its own cash
bucket, ``iso_raw``, moved in and out of the account's cross cash.  So conservation is a sum of
integers:

    Σ raw_usd + Σ iso_raw + fee account == deposits − withdrawals      (always, to the unit)

A funding round and a market settlement are each one batch (``settle_funding``,
``settle_market``): a single payment or settled position creates or destroys cash, but the whole
round nets to zero (the funding remainder booked to the fee account included), so it is checked
and applied whole.

Rules checked by ``can_update`` (codes in ``errors``): stated amounts (deposit, withdrawal,
transfer) are positive; cash is taken only from an existing account; a spot wallet never goes
negative (perp cross cash may: positions back it, and an ADL shortfall stays there); a position
change names a registered account and its own slot; after the batch every changed position has
``entry_ntl >= 0``, zero exactly when its size is zero, no isolated bucket if flat or cross, a
leverage >= 1, and no cross/isolated switch while open; the batch's cash changes sum to its
external flow (deposits − withdrawals).  ``apply_fill`` checks its own: size and price
positive, an isolated leverage >= 1, and a consistent entry before the fill (the fill's arithmetic
keeps it so).

Rounding: the entry price (size-weighted average of opening trades, Hyperliquid's rule) and
realised PnL are kept for reporting only, as an integer cost basis ``entry_ntl``; when part of a
position closes the cost removed is ``entry_ntl * closed // size`` (floor; the rounding stays in
the remaining cost basis and moves no money).  Isolated initial margin rounds up (the account
pays), a partial isolated close releases its share of the bucket's equity rounded down (the
position keeps the remainder); funding pays ceil and receives floor, the remainder kept by the
system.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from perpbox.core.numbers import ceil_div, iabs, mul
from perpbox.ledger.entry import close_split
from perpbox.ledger.errors import (
    AccountExists,
    BadFill,
    BadLeverage,
    BucketOnCrossPosition,
    BucketOnFlatPosition,
    EntryInconsistent,
    LedgerError,
    ModeSwitchOnOpenPosition,
    NegativeSpotBalance,
    NonPositiveAmount,
    NotConserved,
    UnknownAccount,
    UnknownPosition,
)

FEE_ACCOUNT: Final = "0x00000000000000000000000000000000000fee00"

__all__ = ["FEE_ACCOUNT", "SPOT", "SPOT_PREFIX", "Account", "Batch", "CashChange", "Ledger", "LedgerError", "Position",
           "PositionChange", "SettingChange", "dex_account", "spot_wallet", "wallet_dex", "wallet_owner"]


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


# -- the change batch ------------------------------------------------------------------------------
class CashChange:
    """Add ``usd`` (signed, micro-USDC) to the cross cash of the account at ``address``; a credit
    to an address the ledger does not hold creates the account."""

    __slots__ = ("address", "usd")

    def __init__(self, address: str, usd: int) -> None:
        self.address = address
        self.usd = usd


class PositionChange:
    """Add the given deltas to position ``pos`` of account ``acct`` (both registered in the
    ledger): size in lots, cost basis, isolated bucket, realised PnL and cumulative funding."""

    __slots__ = ("acct", "cum_funding", "entry_ntl", "iso_raw", "pos", "realized_pnl", "szi")

    def __init__(self, acct: Account, pos: Position, szi: int = 0, entry_ntl: int = 0, iso_raw: int = 0,
                 realized_pnl: int = 0, cum_funding: int = 0) -> None:
        self.acct = acct
        self.pos = pos
        self.szi = szi
        self.entry_ntl = entry_ntl
        self.iso_raw = iso_raw
        self.realized_pnl = realized_pnl
        self.cum_funding = cum_funding


class SettingChange:
    """Set position ``pos`` of ``acct`` to cross (``is_cross``) or isolated at ``leverage``."""

    __slots__ = ("acct", "is_cross", "leverage", "pos")

    def __init__(self, acct: Account, pos: Position, is_cross: bool, leverage: int) -> None:
        self.acct = acct
        self.pos = pos
        self.is_cross = is_cross
        self.leverage = leverage


class Batch:
    """Changes applied together or not at all.  ``amounts`` are the operation's stated amounts
    (each must be > 0); ``deposits`` and ``withdrawals`` the money entering and leaving the
    ledger.  Conservation: Σ cash + Σ bucket deltas == deposits − withdrawals."""

    __slots__ = ("amounts", "cash", "deposits", "positions", "settings", "withdrawals")

    def __init__(self, cash: Sequence[CashChange] = (), positions: Sequence[PositionChange] = (),
                 settings: Sequence[SettingChange] = (), amounts: Sequence[int] = (), deposits: int = 0,
                 withdrawals: int = 0) -> None:
        self.cash: list[CashChange] = list(cash)
        self.positions: list[PositionChange] = list(positions)
        self.settings: list[SettingChange] = list(settings)
        self.amounts: list[int] = list(amounts)
        self.deposits = deposits
        self.withdrawals = withdrawals


class _After:
    """A position's state after a batch (``can_update``'s scratch)."""

    __slots__ = ("entry_ntl", "is_cross", "iso_raw", "leverage", "pos", "switched", "szi")

    def __init__(self, pos: Position) -> None:
        self.pos = pos
        self.szi = pos.szi
        self.entry_ntl = pos.entry_ntl
        self.iso_raw = pos.iso_raw
        self.is_cross = pos.is_cross
        self.leverage = pos.leverage
        self.switched = False


def _after(states: dict[int, _After], pos: Position) -> _After:
    st = states.get(id(pos))
    if st is None:
        st = states[id(pos)] = _After(pos)
    return st


class Ledger:
    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {FEE_ACCOUNT: Account(FEE_ACCOUNT)}
        self.deposits = 0
        self.withdrawals = 0
        # accounts whose cash or positions changed since the liquidation index last read them
        # (derived bookkeeping: not part of the state hash)
        self.touched: set[str] = set()

    # -- the choke point ------------------------------------------------------------------------
    def can_update(self, batch: Batch) -> LedgerError | None:
        """The first rule ``batch`` breaks against the current state, or None if it may apply."""
        if batch.deposits < 0 or batch.withdrawals < 0:
            return NonPositiveAmount(f"external flows must be >= 0: {batch.deposits}, {batch.withdrawals}")
        for usd in batch.amounts:
            if usd <= 0:
                return NonPositiveAmount(f"amount must be positive: {usd}")
        accounts = self.accounts
        flow = 0
        balances: dict[str, int] = {}
        for c in batch.cash:
            acct = accounts.get(c.address)
            if acct is None and c.usd < 0:
                return UnknownAccount(f"cannot take {-c.usd} from {c.address}: no such account")
            bal = balances.get(c.address)
            if bal is None:
                bal = 0 if acct is None else acct.raw_usd
            balances[c.address] = bal + c.usd
            flow += c.usd
        for address, bal in balances.items():
            if bal < 0 and address.startswith(SPOT_PREFIX):
                return NegativeSpotBalance(f"{address} would hold {bal}")
        states: dict[int, _After] = {}  # by id(position): a round's batch holds many positions
        for pc in batch.positions:
            err = self._check_slot(pc.acct, pc.pos)
            if err is not None:
                return err
            st = _after(states, pc.pos)
            st.szi += pc.szi
            st.entry_ntl += pc.entry_ntl
            st.iso_raw += pc.iso_raw
            flow += pc.iso_raw
        for sc in batch.settings:
            err = self._check_slot(sc.acct, sc.pos)
            if err is not None:
                return err
            if sc.leverage < 1:
                return BadLeverage(f"{sc.acct.address} asset {sc.pos.asset}: leverage {sc.leverage}")
            st = _after(states, sc.pos)
            if sc.is_cross != st.is_cross:
                st.switched = True
            st.is_cross = sc.is_cross
            st.leverage = sc.leverage
        for st in states.values():
            where = f"asset {st.pos.asset}"
            if st.entry_ntl < 0 or (st.szi == 0) != (st.entry_ntl == 0):
                return EntryInconsistent(f"{where}: size {st.szi} with cost basis {st.entry_ntl}")
            if st.iso_raw and st.szi == 0:
                return BucketOnFlatPosition(f"{where}: flat with bucket {st.iso_raw}")
            if st.iso_raw and st.is_cross:
                return BucketOnCrossPosition(f"{where}: cross with bucket {st.iso_raw}")
            if st.leverage < 1:
                return BadLeverage(f"{where}: leverage {st.leverage}")
            if st.switched and (st.szi or st.pos.szi):
                return ModeSwitchOnOpenPosition(f"{where}: open size {st.pos.szi} -> {st.szi}")
        external = batch.deposits - batch.withdrawals
        if flow != external:
            return NotConserved(f"cash changes sum to {flow}, external flow is {external}")
        return None

    def update(self, batch: Batch) -> None:
        """Apply ``batch`` whole, or raise the first rule it breaks and change nothing."""
        err = self.can_update(batch)
        if err is not None:
            raise err
        self._apply(batch)

    def _check_slot(self, acct: Account, pos: Position) -> LedgerError | None:
        if self.accounts.get(acct.address) is not acct:
            return UnknownAccount(f"{acct.address} is not an account of this ledger")
        if acct.positions.get(pos.asset) is not pos:
            return UnknownPosition(f"{acct.address} has no such position slot in asset {pos.asset}")
        return None

    def _apply(self, batch: Batch) -> None:
        """The apply step: the one place (with ``apply_fill``) that assigns balances and positions.
        Only called on a batch ``can_update`` accepted."""
        touched = self.touched
        for c in batch.cash:
            self.account(c.address).raw_usd += c.usd
            if c.address != FEE_ACCOUNT:
                touched.add(c.address)
        for pc in batch.positions:
            pos = pc.pos
            pos.szi += pc.szi
            pos.entry_ntl += pc.entry_ntl
            pos.iso_raw += pc.iso_raw
            pos.realized_pnl += pc.realized_pnl
            pos.cum_funding += pc.cum_funding
            touched.add(pc.acct.address)
        for sc in batch.settings:
            sc.pos.is_cross = sc.is_cross
            sc.pos.leverage = sc.leverage
            touched.add(sc.acct.address)
        self.deposits += batch.deposits
        self.withdrawals += batch.withdrawals

    # -- accounts -------------------------------------------------------------------------------
    def account(self, address: str) -> Account:
        acct = self.accounts.get(address)
        if acct is None:
            acct = self.accounts[address] = Account(address)
        return acct

    def pay_builder(self, builder: str, amount: int) -> None:
        """Move a fill's builder fee (already collected into the fee account) to the builder."""
        if amount:
            self.update(Batch(cash=[CashChange(FEE_ACCOUNT, -amount), CashChange(builder, amount)]))

    def position(self, acct: Account, asset: int, is_cross: bool, leverage: int) -> Position:
        """The account's position slot in ``asset``, created with the given default settings."""
        pos = acct.positions.get(asset)
        if pos is None:
            pos = acct.positions[asset] = Position(asset, is_cross, leverage)
        return pos

    def set_leverage(self, acct: Account, pos: Position, is_cross: bool, leverage: int) -> None:
        """Set the position's margin mode and leverage (the mode only while it is flat)."""
        self.update(Batch(settings=[SettingChange(acct, pos, is_cross, leverage)]))

    def create_sub_account(self, master: str, sub: str) -> None:
        if sub in self.accounts:
            raise AccountExists(f"account {sub} exists")
        self.account(master).subs.append(sub)
        self.accounts[sub] = Account(sub, master=master)

    # -- money in, out and across --------------------------------------------------------------
    def deposit(self, address: str, usd: int) -> None:
        self.update(Batch(cash=[CashChange(address, usd)], amounts=[usd], deposits=usd))

    def withdraw(self, address: str, usd: int) -> None:
        self.update(Batch(cash=[CashChange(address, -usd)], amounts=[usd], withdrawals=usd))

    def transfer(self, src: str, dst: str, usd: int) -> None:
        self.update(Batch(cash=[CashChange(src, -usd), CashChange(dst, usd)], amounts=[usd]))

    def move_isolated(self, acct: Account, pos: Position, usd: int) -> None:
        """Move ``usd`` from cross cash into the isolated bucket (negative: back to cross)."""
        self.update(Batch(cash=[CashChange(acct.address, -usd)], positions=[PositionChange(acct, pos, iso_raw=usd)]))

    # -- trades ---------------------------------------------------------------------------------
    def check_fill(self, pos: Position, px: int, sz: int) -> LedgerError | None:
        """``apply_fill``'s own rules: size and price positive, an isolated position's leverage
        >= 1, and a consistent entry before the fill (the fill's arithmetic keeps it so after)."""
        if sz <= 0 or px <= 0:
            return BadFill(f"asset {pos.asset}: size {sz} at price {px}")
        entry = pos.entry_ntl
        if entry < 0 or (pos.szi == 0) != (entry == 0):
            return EntryInconsistent(f"asset {pos.asset}: size {pos.szi} with cost basis {entry}")
        if not pos.is_cross and pos.leverage < 1:
            return BadLeverage(f"asset {pos.asset}: leverage {pos.leverage}")
        return None

    def apply_fill(self, acct: Account, pos: Position, is_buy: bool, px: int, sz: int, fee: int) -> int:
        """Settle one side of a fill: cash, position size, entry and the fee.  Returns the closed
        PnL of the fill (reporting only, fee excluded).

        The hot path (two calls per trade): it checks its own rules (``check_fill``) before
        changing anything, and assigns directly rather than through a ``Batch`` (no allocation).
        It conserves cash by construction: ``px * sz`` and the fee move between this account, its
        bucket and the fee account (the other side's call moves the notional back).

        Isolated positions: opening ``q`` lots moves ``ceil(q * px / leverage)`` (the initial
        margin, rounded up) from cross cash into the position's bucket; closing part of a position
        releases the same share of the bucket's equity at the fill price (rounded down, so the
        position keeps any remainder); closing all of it releases the whole bucket, whatever its
        sign.  The position pays its own fees from its bucket."""
        old = pos.szi
        entry = pos.entry_ntl
        if sz <= 0 or px <= 0 or entry < 0 or (old == 0) != (entry == 0) or (pos.leverage < 1 and not pos.is_cross):
            err = self.check_fill(pos, px, sz)  # the slow path only builds the error
            if err is not None:
                raise err
        self.touched.add(acct.address)
        signed = sz if is_buy else -sz
        close_qty, removed, closed_pnl = close_split(old, entry, is_buy, px, sz)
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
    def settle_funding(self, payments: Sequence[tuple[Account, Position, int]], remainder: int) -> None:
        """One funding round, as one batch: each ``(account, position, amount)`` pays ``amount``
        (> 0) or receives it (< 0), from / to its isolated bucket or its account's cross cash, and
        the rounding ``remainder`` (payers pay up, receivers get down) goes to the fee account.  The
        round conserves cash exactly, so it is checked and applied whole."""
        cash = [CashChange(FEE_ACCOUNT, remainder)] if remainder else []
        changes = []
        for acct, pos, amount in payments:
            if pos.is_cross:
                cash.append(CashChange(acct.address, -amount))
                changes.append(PositionChange(acct, pos, cum_funding=amount))
            else:
                changes.append(PositionChange(acct, pos, iso_raw=-amount, cum_funding=amount))
        self.update(Batch(cash=cash, positions=changes))

    def transfer_position(self, src: Account, src_pos: Position, dst: Account, dst_pos: Position, sz: int,
                          px: int, usd: int) -> None:
        """``src`` hands ``sz`` lots (signed: the change of *dst*'s position) to ``dst`` at ``px``,
        feeless, and ``usd`` of cash moves from ``src``'s cross cash to ``dst``'s (negative: the
        other way).  Used by backstop takeovers, insurance-fund takeovers and ADL.  Everything is
        checked before anything moves: both fills' rules and the cash batch (which the fills do not
        affect)."""
        cash = Batch(cash=[CashChange(src.address, -usd), CashChange(dst.address, usd)])
        err = self.can_update(cash)
        if err is None:
            err = self._check_slot(src, src_pos) or self._check_slot(dst, dst_pos)
        if err is None and sz:
            err = self.check_fill(dst_pos, px, iabs(sz))
            if err is None and src_pos is not dst_pos:
                err = self.check_fill(src_pos, px, iabs(sz))
        if err is not None:
            raise err
        if sz:
            self.apply_fill(dst, dst_pos, sz > 0, px, iabs(sz), 0)
            self.apply_fill(src, src_pos, sz < 0, px, iabs(sz), 0)
        self._apply(cash)

    def settle_market(self, positions: Sequence[tuple[Account, Position]], px: int) -> None:
        """Close every position of a market at ``px`` with no counterparty (a halted market's
        settlement), as one batch: each position's isolated bucket and proceeds go to its account's
        cross cash.  A market's positions net to zero, so the proceeds sum to zero and the batch
        conserves cash; a set of positions that does not net to zero is refused whole."""
        cash = []
        changes = []
        for acct, pos in positions:
            closed = pos.szi
            if not closed:
                continue
            proceeds = mul(closed, px)
            pnl = proceeds - (pos.entry_ntl if closed > 0 else -pos.entry_ntl)
            iso = 0 if pos.is_cross else pos.iso_raw
            cash.append(CashChange(acct.address, iso + proceeds))
            changes.append(PositionChange(acct, pos, szi=-closed, entry_ntl=-pos.entry_ntl, iso_raw=-iso,
                                          realized_pnl=pnl))
        self.update(Batch(cash=cash, positions=changes))

    # -- audits ---------------------------------------------------------------------------------
    def total_cash(self) -> int:
        """Σ cross cash + Σ isolated buckets + fee account: equals deposits − withdrawals."""
        return sum(a.raw_usd + sum(p.iso_raw for p in a.positions.values()) for a in self.accounts.values())

"""Accounts and money: deposits, withdrawals, transfers between accounts and between
clearinghouses (``sendAsset``), sub-accounts, and each position's margin settings (leverage,
cross or isolated, isolated margin moved in or out).

Every refusal is checked before anything is emitted; the ledger validates and applies each move
(``Ledger.update``).  A source always keeps what its margin needs: it may move at most its
withdrawable (``MarginView.withdrawable``).
"""

from __future__ import annotations

from perpbox.core import errors as E
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.controls import MarketControls
from perpbox.exchange.holdings import Holdings
from perpbox.exchange.markets import MarketBoard, position_slot
from perpbox.exchange.results import OK, Error, Handler, Response
from perpbox.exchange.sink import Applier, EventSink
from perpbox.ledger.ledger import FEE_ACCOUNT, SPOT, Ledger, dex_account, spot_wallet, wallet_owner
from perpbox.risk.margin import MarginView

MAX_SUB_ACCOUNT_NAME = 16  # characters; nktkas/hyperliquid's schema checks 1..16 (the venue's limit is unrecorded)
MAX_SUB_ACCOUNTS = 10  # per master: the venue's number is unrecorded, so a safe bound of ours


def sub_account_error(name: str, existing: int) -> str | None:
    """Why a master with ``existing`` sub-accounts may not create one named ``name``, or None
    (shared with the API's pre-check; both strings are perpbox wording)."""
    if not 1 <= len(name) <= MAX_SUB_ACCOUNT_NAME or not name.isprintable():
        return "Invalid sub-account name."  # perpbox wording
    if existing >= MAX_SUB_ACCOUNTS:
        return f"Too many sub-accounts. Limit is {MAX_SUB_ACCOUNTS}"
    return None




class Accounts:
    """Owns the money and margin-setting commands and their events (no state of its own: the
    balances are the ledger's)."""

    def __init__(self, sink: EventSink, ledger: Ledger, margin: MarginView, board: MarketBoard,
                 holdings: Holdings, controls: MarketControls) -> None:
        self.sink = sink
        self.ledger = ledger
        self.margin = margin
        self.board = board
        self.holdings = holdings
        self.controls = controls

    def handlers(self) -> dict[type, Handler]:
        return {C.Deposit: self._cmd_deposit, C.Withdraw: self._cmd_withdraw,
                C.CreateSubAccount: self._cmd_create_sub_account, C.Transfer: self._cmd_transfer,
                C.SendAsset: self._cmd_send_asset, C.UpdateLeverage: self._cmd_update_leverage,
                C.UpdateIsolatedMargin: self._cmd_update_isolated_margin}

    def appliers(self) -> dict[type, Applier]:
        return {V.Deposited: self._on_deposited, V.Withdrew: self._on_withdrew,
                V.SubAccountCreated: self._on_sub_account_created, V.Transferred: self._on_transferred,
                V.AssetSent: self._on_asset_sent, V.LeverageUpdated: self._on_leverage_updated,
                V.IsolatedMarginMoved: self._on_isolated_margin_moved}

    def _cmd_deposit(self, cmd: C.Deposit) -> Response:
        if cmd.usd <= 0:
            return Error("Deposit amount must be positive.")  # perpbox wording
        self.sink.emit(V.Deposited(ts=cmd.ts, user=cmd.user, usd=cmd.usd))
        return OK

    def _cmd_withdraw(self, cmd: C.Withdraw) -> Response:
        acct = self.ledger.accounts.get(cmd.user)
        if cmd.usd <= 0 or acct is None or self.margin.withdrawable(acct) < cmd.usd:
            return Error(E.INSUFFICIENT_WITHDRAW)
        self.sink.emit(V.Withdrew(ts=cmd.ts, user=cmd.user, usd=cmd.usd))
        return OK

    def _cmd_create_sub_account(self, cmd: C.CreateSubAccount) -> Response:
        if cmd.master not in self.ledger.accounts:
            return Error(E.MUST_DEPOSIT.format(user=cmd.master))
        if cmd.sub in self.ledger.accounts or self.ledger.accounts[cmd.master].master is not None:
            return Error("Invalid sub-account.")  # perpbox wording
        bad = sub_account_error(cmd.name, len(self.ledger.accounts[cmd.master].subs))
        if bad is not None:
            return Error(bad)
        self.sink.emit(V.SubAccountCreated(ts=cmd.ts, master=cmd.master, sub=cmd.sub, name=cmd.name))
        return OK

    def _cmd_transfer(self, cmd: C.Transfer) -> Response:
        src = self.ledger.accounts.get(cmd.src)
        if cmd.usd <= 0 or src is None or cmd.src == cmd.dst or cmd.dst == FEE_ACCOUNT:
            return Error(E.INSUFFICIENT_TRANSFER)
        if self.margin.withdrawable(src) < cmd.usd:
            return Error(E.INSUFFICIENT_TRANSFER)
        self.sink.emit(V.Transferred(ts=cmd.ts, src=cmd.src, dst=cmd.dst, usd=cmd.usd))
        return OK

    def clearinghouse(self, user: str, dex: str) -> str | None:
        """The ledger account of ``user``'s clearinghouse ``dex`` (``""`` the first perp dex, a
        listed HIP-3 dex, or ``"spot"``), or None for a dex that does not exist."""
        if dex == SPOT:
            return spot_wallet(user)
        if dex and self.board.dex_index(dex) is None:
            return None
        return dex_account(dex, user)

    def send_asset_error(self, user: str, src: str, dst: str, src_dex: str, dst_dex: str, usd: int) -> str | None:
        """Why ``user`` may not ``sendAsset`` ``usd`` from ``src``'s ``src_dex`` to ``dst``'s
        ``dst_dex``, or None.  The source keeps what its margin needs: at most its withdrawable
        (``MarginView.withdrawable``; a spot wallet's whole balance)."""
        if usd <= 0:
            return E.INVALID_AMOUNT
        if ":" in src or ":" in dst or not dst or dst == FEE_ACCOUNT:
            return E.INVALID_SEND
        if src != user:
            sub = self.ledger.accounts.get(src)
            if sub is None or sub.master != user:
                return E.INVALID_SUBACCOUNT_TRANSFER.format(src=user, dst=src)
        src_key, dst_key = self.clearinghouse(src, src_dex), self.clearinghouse(dst, dst_dex)
        if src_key is None or dst_key is None:
            return E.UNKNOWN_DEX.format(dex=src_dex if src_key is None else dst_dex)
        if src_key == dst_key:
            return E.INVALID_SEND
        acct = self.ledger.accounts.get(src_key)
        if acct is None or self.margin.withdrawable(acct) < usd:
            return E.INSUFFICIENT_TRANSFER
        return None

    def _cmd_send_asset(self, cmd: C.SendAsset) -> Response:
        bad = self.send_asset_error(cmd.user, cmd.src, cmd.dst, cmd.src_dex, cmd.dst_dex, cmd.usd)
        if bad is not None:
            return Error(bad)
        src, dst = self.clearinghouse(cmd.src, cmd.src_dex), self.clearinghouse(cmd.dst, cmd.dst_dex)
        assert src is not None and dst is not None
        self.sink.emit(V.AssetSent(ts=cmd.ts, src=src, dst=dst, usd=cmd.usd))
        return OK

    def _cmd_update_leverage(self, cmd: C.UpdateLeverage) -> Response:
        spec = self.board.spec(cmd.asset)
        if spec is None:
            return Error(E.UNKNOWN_ASSET)
        if not 1 <= cmd.leverage <= spec.max_leverage:
            return Error(E.INVALID_LEVERAGE)
        if cmd.leverage > self.controls.leverage_cap(cmd.asset):
            return Error(E.INVALID_LEVERAGE)  # a session market's off-hours cap
        if cmd.is_cross and spec.only_isolated:
            return Error(E.CROSS_NOT_ALLOWED)
        if cmd.user not in self.ledger.accounts:
            return Error(E.MUST_DEPOSIT.format(user=cmd.user))
        acct = self.holdings.margin_acct(cmd.user, cmd.asset)  # the account on the asset's dex (may not exist yet)
        pos = None if acct is None else acct.positions.get(cmd.asset)
        if acct is not None and pos is not None and pos.szi:
            if pos.is_cross != cmd.is_cross:
                return Error(E.SWITCH_LEVERAGE_TYPE)
            cap = spec.margin_table.max_notional_at_leverage(cmd.leverage)
            if cap is not None and self.margin.position_value(pos) > cap:
                return Error(E.order_error(E.PERP_MAX_POSITION, cmd.asset))
            if cmd.leverage < pos.leverage:
                new_im = -(-self.margin.position_value(pos) // cmd.leverage)
                if pos.is_cross:
                    others = self.margin.cross_initial_margin(acct) - self.margin.initial_margin(pos)
                    if self.margin.cross_value(acct) < others + new_im:
                        return Error(E.CROSS_DECREASE_LEVERAGE)
                elif self.margin.isolated_value(pos) < new_im:
                    return Error(E.ISO_DECREASE_LEVERAGE)
        self.sink.emit(V.LeverageUpdated(ts=cmd.ts, user=cmd.user, asset=cmd.asset, is_cross=cmd.is_cross,
                                     leverage=cmd.leverage))
        return OK

    def _cmd_update_isolated_margin(self, cmd: C.UpdateIsolatedMargin) -> Response:
        spec = self.board.spec(cmd.asset)
        if spec is None:
            return Error(E.UNKNOWN_ASSET)
        acct = self.holdings.margin_acct(cmd.user, cmd.asset)
        pos = None if acct is None else acct.positions.get(cmd.asset)
        if acct is None or pos is None or pos.is_cross or not pos.szi:
            return Error(E.NOT_ISOLATED)
        if cmd.usd == 0:
            return OK
        if cmd.usd > 0:
            if self.margin.available_to_trade(acct) < cmd.usd or acct.raw_usd < cmd.usd:
                return Error(E.PERP_MARGIN)
        else:
            if spec.margin_mode.value == "strictIsolated":
                return Error(E.INSUFFICIENT_ISO_REMOVE)
            ntl = self.margin.position_value(pos)
            required = max(self.margin.initial_margin(pos), -(-ntl // 10))
            if self.margin.isolated_value(pos) + cmd.usd < required:
                return Error(E.INSUFFICIENT_ISO_REMOVE)
        self.sink.emit(V.IsolatedMarginMoved(ts=cmd.ts, user=cmd.user, asset=cmd.asset, usd=cmd.usd))
        return OK

    # -- appliers ----------------------------------------------------------------------------------
    def _on_deposited(self, ev: V.Deposited) -> None:
        self.ledger.deposit(ev.user, ev.usd)

    def _on_withdrew(self, ev: V.Withdrew) -> None:
        self.ledger.withdraw(ev.user, ev.usd)

    def _on_sub_account_created(self, ev: V.SubAccountCreated) -> None:
        self.ledger.create_sub_account(ev.master, ev.sub)

    def _on_transferred(self, ev: V.Transferred) -> None:
        self.ledger.transfer(ev.src, ev.dst, ev.usd)

    def _on_asset_sent(self, ev: V.AssetSent) -> None:
        self.ledger.transfer(ev.src, ev.dst, ev.usd)
        self.ledger.account(wallet_owner(ev.dst))  # the receiver is a user now, as a deposit would make it

    def _on_leverage_updated(self, ev: V.LeverageUpdated) -> None:
        acct = self.ledger.account(self.board.margin_key(ev.user, ev.asset))
        pos = position_slot(self.ledger, self.board.rules_of(ev.asset), acct)
        self.ledger.set_leverage(acct, pos, ev.is_cross, ev.leverage)

    def _on_isolated_margin_moved(self, ev: V.IsolatedMarginMoved) -> None:
        acct = self.ledger.account(self.board.margin_key(ev.user, ev.asset))
        self.ledger.move_isolated(acct, acct.positions[ev.asset], ev.usd)


"""Who holds what in each market: open interest, the holder index, and a user's position found
through the account of the market's dex.

``Holdings`` keeps open interest (the long side, in lots) and the holders of each market in step
with every position change (``track``, called by the appliers that move positions), so that
funding, settlement, ADL and the open-interest caps never scan the ledger.
"""

from __future__ import annotations

from typing import ClassVar

from perpbox.exchange.markets import MarketBoard
from perpbox.exchange.prices import MarketPricing
from perpbox.ledger.ledger import Account, Ledger, Position


class Holdings:
    STATE: ClassVar[tuple[str, ...]] = ("oi", "holders")

    def __init__(self, ledger: Ledger, board: MarketBoard, pricing: MarketPricing) -> None:
        self.ledger = ledger
        self.board = board
        self.pricing = pricing
        self.oi: dict[int, int] = {}  # open interest (long side), lots
        self.holders: dict[int, dict[str, None]] = {}  # asset -> ledger accounts with a non-zero position

    def track(self, asset: int, user: str, old: int, new: int) -> None:
        """Keep open interest and the holder index in step with one position change."""
        if old == new:
            return
        self.oi[asset] = self.oi.get(asset, 0) + max(new, 0) - max(old, 0)
        holders = self.holders.get(asset)
        if holders is None:  # (setdefault would build a dict on every call)
            holders = self.holders[asset] = {}
        if new:
            holders[user] = None
        else:
            holders.pop(user, None)

    # -- reads -------------------------------------------------------------------------------------
    def open_interest(self, asset: int) -> int:
        """Open interest in lots (the long side)."""
        return self.oi.get(asset, 0)

    def open_interest_ntl(self, asset: int) -> int:
        return self.oi.get(asset, 0) * self.pricing.mark(asset)

    def holders_of(self, asset: int) -> list[str]:
        """The ledger accounts holding a position in ``asset``, by address."""
        return sorted(self.holders.get(asset, ()))

    def has_holders(self, asset: int) -> bool:
        return bool(self.holders.get(asset))

    def holder_sizes(self, asset: int) -> list[tuple[str, int]]:
        return [(u, self.ledger.accounts[u].positions[asset].szi) for u in self.holders_of(asset)]

    def margin_acct(self, user: str, asset: int) -> Account | None:
        """The account holding ``user``'s margin in ``asset`` (``MarketBoard.margin_key``), if any."""
        return self.ledger.accounts.get(self.board.margin_key(user, asset))

    def position(self, user: str, asset: int) -> Position | None:
        """``user``'s position in ``asset``, held by its account on the asset's dex (an unlisted
        asset: ``user``'s own account)."""
        key = self.board.margin_key(user, asset) if self.board.has(asset) else user
        acct = self.ledger.accounts.get(key)
        return None if acct is None else acct.positions.get(asset)

    def szi(self, user: str, asset: int) -> int:
        pos = self.position(user, asset)
        return 0 if pos is None else pos.szi

    def opens(self, user: str, asset: int, is_buy: bool) -> bool:
        """Whether a buy (sell) by ``user`` would open or add to a position rather than reduce one."""
        pos = self.position(user, asset)
        return pos is None or pos.szi == 0 or (pos.szi > 0) == is_buy

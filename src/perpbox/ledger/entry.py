"""Entry price bookkeeping shared by the ledger and the read models (Hyperliquid's rule: an
opening trade averages into the entry; a closing trade leaves it unchanged and realises PnL)."""

from __future__ import annotations

from perpbox.core.numbers import iabs, mul


def close_split(szi: int, entry_ntl: int, is_buy: bool, px: int, sz: int) -> tuple[int, int, int]:
    """For a trade of ``sz`` lots at ``px`` against a position of ``szi`` lots with cost basis
    ``entry_ntl`` (micro-USDC): (lots closed, cost basis removed, closed PnL, fee excluded).
    The cost removed is ``entry_ntl * closed // |szi|`` (floor; the rounding stays in the basis)."""
    close_qty = min(sz, iabs(szi)) if szi and (szi > 0) != is_buy else 0
    if not close_qty:
        return 0, 0, 0
    removed = entry_ntl if close_qty == iabs(szi) else mul(entry_ntl, close_qty) // iabs(szi)
    closed_pnl = (mul(px, close_qty) - removed) if szi > 0 else (removed - mul(px, close_qty))
    return close_qty, removed, closed_pnl

"""Hyperliquid's error strings, exactly as the venue returns them.

Per-order errors get the `` asset=<id>`` suffix the live venue appends (see
shared/reference/hyperliquid-api.md §3.10); :func:`order_error` adds it.  The few strings marked
"perpbox wording" have no recorded venue string (not in the reference's catalogue): they are written
in the venue's style and may differ from what Hyperliquid says.
"""

from __future__ import annotations

TICK = "Price must be divisible by tick size."
BUILDER_FEE_NOT_APPROVED = "Builder fee has not been approved."
MIN_TRADE_NTL = "Order must have minimum value of $10."
PERP_MARGIN = "Insufficient margin to place order."
REDUCE_ONLY = "Reduce only order would increase position."
BAD_ALO_PX = "Post only order would have immediately matched, bbo was {bbo}."
IOC_CANCEL = "Order could not immediately match against any resting orders."
BAD_TRIGGER_PX = "Invalid TP/SL price."
MARKET_NO_LIQUIDITY = "No liquidity available for market order."
PERP_MAX_POSITION = "Order would cause position to exceed margin tier limit at current leverage"
MISSING_ORDER = "Order was never placed, already canceled, or filled."
INVALID_SIZE = "Order has invalid size."
ZERO_SIZE = "Order has zero size."
INVALID_PRICE = "Order has invalid price."
CANNOT_MODIFY = "Cannot modify canceled or filled order"
SWITCH_LEVERAGE_TYPE = "Cannot switch leverage type with open position."
NOT_ISOLATED = "Position does not use isolated margin."
CROSS_NOT_ALLOWED = "Cross margin is not allowed for this asset."
ISO_DECREASE_LEVERAGE = "Isolated position does not have sufficient margin available to decrease leverage."
CROSS_DECREASE_LEVERAGE = "Cross position does not have sufficient margin available to decrease leverage."
# perpbox wording for a leverage outside 1..max (off hours: above a session market's cap): the venue's text
# is not recorded (reference hyperliquid-api.md §9: "Exact text for leverage/margin errors" unconfirmed)
INVALID_LEVERAGE = "Invalid leverage value."
INSUFFICIENT_WITHDRAW = "Insufficient balance for withdrawal"
INSUFFICIENT_TRANSFER = "Insufficient balance for token transfer"
INSUFFICIENT_ISO_REMOVE = "Insufficient margin available to remove from isolated position."  # perpbox wording
UNKNOWN_ASSET = "Unknown asset."  # perpbox wording
DUPLICATE_CLOID = "Duplicate client order id."  # perpbox wording
TRIGGER_NOT_REDUCE_ONLY = "Trigger order is not reduce only."
TRADING_HALTED = "Trading is halted."
TOO_MANY_OPEN_ORDERS = "Too many open orders"  # reference §3.10: from a reverse-engineered binary, unconfirmed
INVALID_SUBACCOUNT_TRANSFER = "Invalid sub-account transfer from {src} to {dst}"
MUST_DEPOSIT = "Must deposit before performing actions. User: {user}"
INVALID_SEND = "Invalid send"  # reference §3.10 (observed; used here for a send to the same clearinghouse)
UNKNOWN_DEX = "Invalid sendAsset: unknown dex {dex}."  # perpbox wording
INVALID_AMOUNT = "Invalid amount: a positive decimal with at most 6 decimals."  # perpbox wording
INVALID_TOKEN = "Invalid token: perp dexes take USDC only ({token})."  # perpbox wording
AGENT_SEND = "Agent can only send asset to same user or their sub-accounts."


def order_error(message: str, asset: int) -> str:
    """A per-order error as the live venue formats it (``<message> asset=<id>``)."""
    return f"{message} asset={asset}"


# market controls (perp mechanics)
OI_CAPPED = "Order would increase open interest while open interest is capped"
PRICE_TOO_FAR = "Order price cannot be more than {pct}% away from the reference price"
MARKET_REDUCE_ONLY = "Market is reduce-only: only reduce-only orders are accepted."  # perpbox wording
MARKET_POST_ONLY = "Market is post-only: only post-only (Alo) orders are accepted."  # perpbox wording

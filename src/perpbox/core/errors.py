"""Hyperliquid's error strings, exactly as the venue returns them.

Every public constant names where its text comes from, in a comment on its line or on the comment
line(s) directly above it (``tests/unit/test_error_sources.py`` checks this):

* ``[REF §3.10 DOCS]`` and the like: shared/reference/hyperliquid-api.md, its section and the tag of
  the source it gives there (DOCS, CCXT, T1, T2, RE — RE strings are unconfirmed hints);
* ``[owner/repo path]`` or ``[github issue owner/repo#N]``: a public test, capture or thread that
  shows the venue's answer;
* ``perpbox wording``: no venue string is recorded; ours, written in the venue's style (it may
  differ from what Hyperliquid says).

Per-order errors get the `` asset=<id>`` suffix the live venue appends (reference §3.10, and the
cancel captures cited at ``MISSING_ORDER``); :func:`order_error` adds it.  The asset is the one the
request names.

Prices (reference §4.6): a perp price with more decimals than ``6 - szDecimals`` does not parse into
the market's price unit and is answered bare ``INVALID_PRICE``; a price that parses but has more
than 5 significant figures and is not a whole number (BTC at 100000.5) breaks the tick rule and is
answered ``order_error(TICK, asset)``.  Evidence for both at ``TICK`` and ``INVALID_PRICE``.
"""

from __future__ import annotations

# [REF §3.10 DOCS Tick]; >5 significant figures within the allowed decimals: BTC 12345.6 -> "... asset=3"
# [choosemycoins/hftbacktest docs/design-hyperliquid-connector.md §11.5 (testnet)]; spot BTC 117365.5
# [github issue hyperliquid-dex/hyperliquid-python-sdk#179]; XRP 1.23457 [github issue ccxt/ccxt#26132]
TICK = "Price must be divisible by tick size."
BUILDER_FEE_NOT_APPROVED = "Builder fee has not been approved."  # [REF §3.3 third-party clients]
MIN_TRADE_NTL = "Order must have minimum value of $10."  # [REF §3.10 DOCS MinTradeNtl]
PERP_MARGIN = "Insufficient margin to place order."  # [REF §3.10 DOCS PerpMargin]
REDUCE_ONLY = "Reduce only order would increase position."  # [REF §3.10 DOCS ReduceOnly; T1]
BAD_ALO_PX = "Post only order would have immediately matched, bbo was {bbo}."  # [REF §3.10 DOCS BadAloPx]
IOC_CANCEL = "Order could not immediately match against any resting orders."  # [REF §3.10 DOCS IocCancel]
BAD_TRIGGER_PX = "Invalid TP/SL price."  # [REF §3.10 DOCS BadTriggerPx]
MARKET_NO_LIQUIDITY = "No liquidity available for market order."  # [REF §3.10 DOCS MarketOrderNoLiquidity]
# [REF §3.10 DOCS PerpMaxPosition]
PERP_MAX_POSITION = "Order would cause position to exceed margin tier limit at current leverage"
# [REF §3.10 DOCS Cancel MissingOrder]; live with " asset=<a>": "... filled. asset=0"
# [nktkas/hyperliquid tests/api/exchange/_common.ts.test.ts], "... filled. asset=4" for a filled and a made-up
# oid [MarcosACH/tickwright docs/research/hyperliquid-reduce-only-cancel-market-probes.md P4]
MISSING_ORDER = "Order was never placed, already canceled, or filled."
INVALID_SIZE = "Order has invalid size."  # [REF §3.10 CCXT]
ZERO_SIZE = "Order has zero size."  # [REF §3.10 CCXT; nktkas/hyperliquid tests/api/exchange/_common.ts.test.ts]
# [REF §3.10 CCXT; T2]; bare, for more decimals than the price unit: ARB 0.094605 (szDecimals 1)
# [github PR hummingbot/hummingbot#8356]; compared whole [JKorf/HyperLiquid.Net HyperLiquid.Net/HyperLiquidErrors.cs]
INVALID_PRICE = "Order has invalid price."
CANNOT_MODIFY = "Cannot modify canceled or filled order"  # [REF §3.5 T1]
SWITCH_LEVERAGE_TYPE = "Cannot switch leverage type with open position."  # [REF §3.7 T1]
NOT_ISOLATED = "Position does not use isolated margin."  # [REF §3.7 T1]
CROSS_NOT_ALLOWED = "Cross margin is not allowed for this asset."  # [REF §3.7 third-party code, unconfirmed]
# [REF §3.7 third-party code, unconfirmed]
ISO_DECREASE_LEVERAGE = "Isolated position does not have sufficient margin available to decrease leverage."
# [REF §3.7 third-party code, unconfirmed]
CROSS_DECREASE_LEVERAGE = "Cross position does not have sufficient margin available to decrease leverage."
# perpbox wording for a leverage outside 1..max (off hours: above a session market's cap): the venue's text
# is not recorded (reference hyperliquid-api.md §9: "Exact text for leverage/margin errors" unconfirmed)
INVALID_LEVERAGE = "Invalid leverage value."
INSUFFICIENT_WITHDRAW = "Insufficient balance for withdrawal"  # [REF §3.10 CCXT]
INSUFFICIENT_TRANSFER = "Insufficient balance for token transfer"  # [REF §3.10 CCXT]
INSUFFICIENT_ISO_REMOVE = "Insufficient margin available to remove from isolated position."  # perpbox wording
UNKNOWN_ASSET = "Unknown asset."  # perpbox wording
DUPLICATE_CLOID = "Duplicate client order id."  # perpbox wording
TRIGGER_NOT_REDUCE_ONLY = "Trigger order is not reduce only."  # [REF §3.10 RE, unconfirmed]
TRADING_HALTED = "Trading is halted."  # [REF §3.10 RE, unconfirmed]
TOO_MANY_OPEN_ORDERS = "Too many open orders"  # [REF §3.10 RE, unconfirmed]
INVALID_SUBACCOUNT_TRANSFER = "Invalid sub-account transfer from {src} to {dst}"  # [REF §3.10 T1]
MUST_DEPOSIT = "Must deposit before performing actions. User: {user}"  # [REF §3.8 T1; §3.10 DOCS signing, CCXT]

# the /exchange envelope and authentication (api/auth.py)
WRONG_CHAIN = "Invalid hyperliquidChain: this exchange accepts {chains}."  # perpbox wording
UNKNOWN_SIGNER = "User or API Wallet {addr} does not exist."  # [REF §3.10 DOCS signing; CCXT; T1]
EXPIRED = "Action already expired"  # [REF §3.1 T1]
USER_SIGNED_WITH_VAULT = "Vault address is not allowed for this action."  # perpbox wording
# perpbox wording (after the venue's "Invalid nonce: " prefix, REF §3.10)
NONCE_MISMATCH = "Invalid nonce: the action's nonce must equal the request's nonce"
VAULT_NOT_REGISTERED = "Vault not registered: {vault}"  # [REF §3.10 T1]

# whole-action refusals of an action's contents (api/actions.py)
ORDERS_EMPTY = "Orders are empty"  # [REF §3.10 RE, unconfirmed]
INVALID_BUILDER_FEE = "Invalid builder fee."  # perpbox wording
# perpbox wording; the venue refused 201 cancels with "Signed action over weight limit of 200."
# [MarcosACH/tickwright docs/research/hyperliquid-reduce-only-cancel-market-probes.md P4]
TOO_MANY_ITEMS = "Too many items in one action: at most {limit}."
UNSUPPORTED_PERP_DEPLOY = "Unsupported perpDeploy action."  # perpbox wording
UNKNOWN_COIN = "Unknown asset {coin}."  # perpbox wording
INVALID_FUNDING_MULTIPLIER = "Invalid funding multiplier."  # perpbox wording

# sendAsset between clearinghouses (exchange/engine.py, api/actions.py)
INVALID_SEND = "Invalid send"  # [REF §3.10 T1] (observed; its context unknown: used for a send to the same place)
UNKNOWN_DEX = "Invalid sendAsset: unknown dex {dex}."  # perpbox wording
INVALID_AMOUNT = "Invalid amount: a positive decimal with at most 6 decimals."  # perpbox wording
INVALID_TOKEN = "Invalid token: perp dexes take USDC only ({token})."  # perpbox wording
AGENT_SEND = "Agent can only send asset to same user or their sub-accounts."  # [REF §3.10 T1]


def order_error(message: str, asset: int) -> str:
    """A per-order error as the live venue formats it (``<message> asset=<id>``)."""
    return f"{message} asset={asset}"


# market controls (perp mechanics)
OI_CAPPED = "Order would increase open interest while open interest is capped"  # [REF §3.10 DOCS; §6.8]
# [REF §3.10 CCXT; T2]
PRICE_TOO_FAR = "Order price cannot be more than {pct}% away from the reference price"
MARKET_REDUCE_ONLY = "Market is reduce-only: only reduce-only orders are accepted."  # perpbox wording
MARKET_POST_ONLY = "Market is post-only: only post-only (Alo) orders are accepted."  # perpbox wording

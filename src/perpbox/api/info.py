"""``POST /info``: Hyperliquid's read API over the engine's state and the read models.

Shapes and field names follow ../shared/reference/hyperliquid-api.md §2 (recorded venue responses);
engine state is read through the engine's read surface (``Exchange.reads``, ``exchange.reads``) and
numbers are formatted by ``api.wire``.  Where the venue keeps data perpbox does not model (spot
tokens other than USDC, staking, vaults, referrals) the answer is the venue's answer for an
account that has none of it.  An unknown request type raises ``BadRequest`` (HTTP 422, as the
venue's deserialiser does).

Every request is hostile until checked: fields are type-checked before use (an address is ``0x`` and
40 hex digits, times and ids are JSON integers, ``dex`` and ``coin`` strings, ``nSigFigs`` and
``mantissa`` from the venue's short lists), and a wrong one is a ``BadRequest``, never an exception
from deeper down.  Every view does work linear in what it answers: a user's open orders are read
once per request (children come from the read model's parent index, not a rescan per order), the
newest fills, funding and ledger rows are read from the end or from a bisected start time, and
the day's statistics read the day's candles only (``store.readmodels``).
"""

from __future__ import annotations

import bisect
import datetime
import re
from collections.abc import Callable, Reversible, Sequence
from fractions import Fraction
from itertools import islice
from typing import Any, TypeGuard, TypeVar

from perpbox.api.ratelimit import AddressLimiter
from perpbox.api.wire import (
    coin_name,
    fmt,
    fmt_fraction,
    fmt_px,
    fmt_rate,
    fmt_sz,
    fmt_usd,
    hex_hash,
    rate_per_hour,
)
from perpbox.core.numbers import USD
from perpbox.exchange import Exchange
from perpbox.exchange.reads import PositionView
from perpbox.ledger.ledger import dex_account, wallet_dex, wallet_owner
from perpbox.market.fees import MAKER_RATES, MM_TIERS, SPOT_TIERS, TAKER_RATES, VIP_TIERS
from perpbox.market.margin import MarginTable
from perpbox.market.spec import MarketSpec
from perpbox.pricing.funding import PREMIUM_SCALE
from perpbox.risk.estimates import liquidation_price, max_trade_size
from perpbox.store.readmodels import (
    PORTFOLIO_WINDOWS,
    FillRec,
    FundingRec,
    OrderRec,
    ReadModels,
    TradeRec,
    venue_status,
)

ZERO_HASH = "0x" + "0" * 64
L2_LEVELS = 20
MAX_FILLS = 2_000
MAX_CANDLES = 5_000
INTERVALS_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000,
                "2h": 7_200_000, "4h": 14_400_000, "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000,
                "3d": 259_200_000, "1w": 604_800_000, "1M": 2_592_000_000}
MAX_ECHO = 64  # characters of a client's value repeated in an error message
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
T = TypeVar("T")
USDC_TOKEN = {"name": "USDC", "szDecimals": 8, "weiDecimals": 8, "index": 0,
              "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054", "isCanonical": True, "evmContract": None,
              "fullName": None}


class BadRequest(Exception):
    """A body the venue could not deserialise: HTTP 422 with this text."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("Failed to deserialize the JSON body into the target type" + (f": {detail}" if detail else ""))


def _addr(body: dict[str, Any], key: str = "user") -> str:
    """``0x`` and exactly 40 ASCII hex digits (no sign, spaces, underscores or other digits), lower-cased."""
    user = body.get(key)
    if not isinstance(user, str) or not _ADDRESS.fullmatch(user):
        raise BadRequest(f"{key}: invalid address")
    return user.lower()


def echo(value: object) -> str:
    """A client's value for an error message, cut to ``MAX_ECHO`` characters."""
    text = value if isinstance(value, str) else type(value).__name__
    return text if len(text) <= MAX_ECHO else text[:MAX_ECHO] + "…"


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def time_window(rows: Sequence[T], start: int, end: int, key: Callable[[T], int], limit: int) -> list[T]:
    """The first ``limit`` of ``rows`` (in time order, oldest first) with ``start <= key(row) <= end``;
    finds the first by bisection, then reads only what it returns."""
    i = bisect.bisect_left(rows, start, key=key)
    out: list[T] = []
    for k in range(i, min(len(rows), i + limit)):
        row = rows[k]
        if key(row) > end:
            break
        out.append(row)
    return out


def newest(rows: Reversible[T], limit: int) -> list[T]:
    """The last ``limit`` rows, newest first (reads only those)."""
    return list(islice(reversed(rows), limit))


def margin_table_json(table: MarginTable) -> dict[str, Any]:
    return {"description": table.description or "", "marginTiers": [
        {"lowerBound": fmt_usd(t.lower_bound), "maxLeverage": t.max_leverage} for t in table.tiers]}


def _utc_date(day: int) -> str:
    """Days since 1970-01-01 as the venue's ``YYYY-MM-DD``."""
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=day)).isoformat()


def _int(body: dict[str, Any], key: str, default: int | None = None) -> int:
    v = body.get(key, default)
    if v is None and default is not None:
        return default
    if not _is_int(v):
        raise BadRequest(f"{key}: expected an integer")
    return v


class InfoAPI:
    """Answers /info requests.  ``now`` gives the server's time in ms (for default end times).
    Engine state is read through ``ex.reads`` only (``perpbox.exchange.reads``)."""

    def __init__(self, ex: Exchange, rm: ReadModels, now: Callable[[], int],
                 seq: Callable[[], int] = lambda: 0) -> None:
        self.seq = seq
        self.address_limiter: AddressLimiter | None = None  # set by the server when limits are on
        self.ex = ex
        self.reads = ex.reads
        self.rm = rm
        self.now = now
        self._coins: tuple[int, dict[str, int]] = (-1, {})  # (number of markets, coin -> asset)
        self.handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "meta": self.meta, "metaAndAssetCtxs": self.meta_and_asset_ctxs, "allPerpMetas": self.all_perp_metas,
            "spotMeta": self.spot_meta, "spotMetaAndAssetCtxs": self.spot_meta_and_asset_ctxs,
            "perpDexs": self.perp_dexs, "allMids": self.all_mids, "l2Book": self.l2_book,
            "candleSnapshot": self.candle_snapshot, "clearinghouseState": self.clearinghouse_state,
            "spotClearinghouseState": self.spot_clearinghouse_state, "openOrders": self.open_orders,
            "frontendOpenOrders": self.frontend_open_orders, "orderStatus": self.order_status,
            "historicalOrders": self.historical_orders, "userFills": self.user_fills,
            "userFillsByTime": self.user_fills_by_time, "userFunding": self.user_funding,
            "userNonFundingLedgerUpdates": self.user_non_funding_ledger_updates,
            "fundingHistory": self.funding_history, "predictedFundings": self.predicted_fundings,
            "userFees": self.user_fees, "userRateLimit": self.user_rate_limit, "userRole": self.user_role,
            "exchangeStatus": self.exchange_status, "userAbstraction": self.user_abstraction,
            "extraAgents": self.extra_agents, "maxBuilderFee": self.max_builder_fee,
            "recentTrades": self.recent_trades, "activeAssetData": self.active_asset_data,
            "subAccounts": self.sub_accounts, "marginTable": self.margin_table,
            "perpsAtOpenInterestCap": self.perps_at_oi_cap, "webData2": self.web_data2,
            "perpDexLimits": self.perp_dex_limits, "referral": self.referral, "portfolio": self.portfolio,
            "userVaultEquities": lambda b: [], "delegations": lambda b: [], "userTwapSliceFills": lambda b: [],
            "userDexAbstraction": lambda b: False, "vaultSummaries": lambda b: [],
            "liquidations": self.liquidations,
            "perpboxState": lambda b: {"seq": self.seq(), "stateHash": self.ex.state_hash(), "time": self.now()},
        }

    def handle(self, body: Any) -> Any:
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            raise BadRequest("missing field `type`")
        handler = self.handlers.get(body["type"])
        if handler is None:
            raise BadRequest(f"unknown variant `{echo(body['type'])}`")
        return handler(body)

    # -- markets -------------------------------------------------------------------------------------
    def specs(self, dex: str = "") -> tuple[MarketSpec, ...]:
        return self.reads.markets(dex)

    def spec(self, asset: int) -> MarketSpec:
        """A listed market's spec (``KeyError`` otherwise: the asset came from the engine's own records)."""
        s = self.reads.market(asset)
        if s is None:
            raise KeyError(asset)
        return s

    @property
    def dexes(self) -> list[str]:
        """HIP-3 dex names in index order (index 1, 2, ...), including dexes deployed at run time."""
        return [d for d in self.reads.dex_names() if d]

    def spec_by_coin(self, coin: object) -> MarketSpec | None:
        """The market named ``coin``; None for an unknown name or a value that is not a string.
        Coin names never change once listed, so the name index is rebuilt only when one is added."""
        if not isinstance(coin, str):
            return None
        reads = self.reads
        n = reads.market_count()
        if self._coins[0] != n:
            self._coins = (n, {coin_name(s): s.asset for s in reads.markets()})
        asset = self._coins[1].get(coin)
        return None if asset is None else reads.market(asset)

    def _dex(self, body: dict[str, Any]) -> str:
        dex = body.get("dex")
        if dex is None or dex == "":
            return ""
        if not isinstance(dex, str) or self.reads.dex(dex) is None:
            raise BadRequest("dex: unknown perp dex")
        return dex

    def meta(self, body: dict[str, Any]) -> dict[str, Any]:
        dex = self._dex(body)
        specs = self.specs(dex)
        universe = []
        tables = {}
        for s in specs:
            entry: dict[str, Any] = {"szDecimals": s.sz_decimals, "name": coin_name(s), "maxLeverage": s.max_leverage,
                                     "marginTableId": self.reads.table_id(s.asset)}
            if s.only_isolated:
                entry["onlyIsolated"] = True
                entry["marginMode"] = s.margin_mode.value
            if self.reads.status(s.asset) == "halted":
                entry["isDelisted"] = True
            universe.append(entry)
            tables[self.reads.table_id(s.asset)] = s.margin_table
        for table_id in self.reads.dex_tables(dex):  # inserted by the deployer, maybe unused yet
            tables[table_id] = self.reads.margin_table(table_id)
        return {"universe": universe, "marginTables": [[i, margin_table_json(t)] for i, t in sorted(tables.items())],
                "collateralToken": 0}

    def margin_table(self, body: dict[str, Any]) -> dict[str, Any]:
        table = self.reads.margin_table(_int(body, "id"))
        if table is None:
            raise BadRequest("id: unknown margin table")
        return margin_table_json(table)

    def asset_ctx(self, s: MarketSpec) -> dict[str, Any]:
        reads, a = self.reads, s.asset
        bid, ask = reads.best_bid_ask(a)
        funding = reads.funding(a)
        imp_bid, imp_ask = reads.impact_prices(a, funding.impact_notional)
        vol, ntl, prev = self.rm.day_stats(a, self.now())
        px = reads.prices(a)
        return {
            "funding": fmt_fraction(rate_per_hour(funding.predicted_rate, funding.interval_ms), 8),
            "openInterest": fmt_sz(s, reads.open_interest(a).size),
            "prevDayPx": fmt_px(s, prev or px.mark),
            "dayNtlVlm": fmt(ntl, 6),
            "premium": None if funding.premium is None else fmt_fraction(funding.premium, 8),
            "oraclePx": fmt_px(s, px.oracle),
            "markPx": fmt_px(s, px.mark),
            "midPx": self.mid(s) if bid is not None and ask is not None else None,
            "impactPxs": None if imp_bid is None or imp_ask is None else
            [fmt_fraction(imp_bid / 10**s.px_decimals, 8), fmt_fraction(imp_ask / 10**s.px_decimals, 8)],
            "dayBaseVlm": fmt_sz(s, vol),
        }

    def meta_and_asset_ctxs(self, body: dict[str, Any]) -> list[Any]:
        dex = self._dex(body)
        return [self.meta(body), [self.asset_ctx(s) for s in self.specs(dex)]]

    def all_perp_metas(self, body: dict[str, Any]) -> list[Any]:
        return [self.meta_and_asset_ctxs({"dex": d}) for d in ["", *self.dexes]]  # each reads its own dex

    def spot_meta(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"universe": [], "tokens": [USDC_TOKEN]}

    def spot_meta_and_asset_ctxs(self, body: dict[str, Any]) -> list[Any]:
        return [self.spot_meta(body), []]

    def perp_dexs(self, body: dict[str, Any]) -> list[Any]:
        out: list[Any] = [None]
        reads = self.reads
        for dex in self.dexes:
            specs = self.specs(dex)
            view = reads.dex(dex)
            assert view is not None  # a name from the engine's own list
            out.append({
                "name": dex, "fullName": view.full_name,
                "deployer": view.deployer,
                "oracleUpdater": None, "feeRecipient": None,
                "assetToStreamingOiCap": [[coin_name(s), fmt_usd(reads.open_interest(s.asset).cap_ntl)] for s in specs],
                "assetToFundingMultiplier": [[coin_name(s), fmt_rate(reads.funding_params(s.asset).multiplier)]
                                             for s in specs],
            })
        return out

    def all_mids(self, body: dict[str, Any]) -> dict[str, str]:
        out = {}
        for s in self.specs(self._dex(body)):
            mid = self.mid(s)
            if mid is not None:
                out[coin_name(s)] = mid
        return out

    def mid(self, s: MarketSpec) -> str | None:
        """Book mid; the last trade (then the mark) when a side is empty, as the venue does."""
        bid, ask = self.reads.best_bid_ask(s.asset)
        if bid is not None and ask is not None:
            return fmt_fraction(Fraction(bid + ask, 2 * 10**s.px_decimals), 8)
        prices = self.reads.prices(s.asset)
        px = prices.last or prices.mark
        return fmt_px(s, px) if px else None

    def l2_book(self, body: dict[str, Any]) -> dict[str, Any] | None:
        s = self.spec_by_coin(body.get("coin"))
        if s is None:
            return None
        sig, mantissa = body.get("nSigFigs"), body.get("mantissa")
        if (sig is not None and not (_is_int(sig) and sig in (2, 3, 4, 5))) or (
                mantissa is not None and (sig != 5 or not (_is_int(mantissa) and mantissa in (1, 2, 5)))):
            raise BadRequest("invalid nSigFigs/mantissa")
        return self.book_snapshot(s, sig, mantissa)

    def book_snapshot(self, s: MarketSpec, sig: int | None = None, mantissa: int | None = None,
                      levels: int = L2_LEVELS) -> dict[str, Any]:
        sides = []
        for is_buy in (True, False):
            rows = aggregate_levels(self.reads.book_levels(s.asset, is_buy, 10_000 if sig else levels), is_buy, sig,
                                    mantissa)[:levels]
            sides.append([{"px": fmt_px(s, px), "sz": fmt_sz(s, sz), "n": n} for px, sz, n in rows])
        return {"coin": coin_name(s), "time": self.now(), "levels": sides}

    def candle_snapshot(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        req = body.get("req")
        if not isinstance(req, dict):
            raise BadRequest("missing field `req`")
        s = self.spec_by_coin(req.get("coin"))
        interval = req.get("interval")
        if not isinstance(interval, str) or interval not in INTERVALS_MS:
            raise BadRequest("interval: unknown variant")
        start, end = _int(req, "startTime"), _int(req, "endTime", self.now())
        if s is None:
            return []
        step = INTERVALS_MS[interval]
        out = []
        for c in self.rm.candles_between(s.asset, step, start, end, MAX_CANDLES):
            out.append({"t": c.t, "T": c.t + step - 1, "s": coin_name(s), "i": interval, "o": fmt_px(s, c.o),
                        "c": fmt_px(s, c.c), "h": fmt_px(s, c.h), "l": fmt_px(s, c.l), "v": fmt_sz(s, c.v), "n": c.n})
        return out

    # -- accounts ------------------------------------------------------------------------------------
    def position_json(self, address: str, pos: PositionView, cross_available: int | None = None) -> dict[str, Any]:
        """One ``assetPositions`` row of the account ``address`` (a ledger account: the user's own
        or its account on a HIP-3 dex)."""
        s = self.spec(pos.asset)
        value = pos.value
        upnl = pos.unrealized_pnl
        entry = Fraction(pos.entry_ntl, abs(pos.szi))  # micro-USDC per lot
        entry_px = entry * 10**s.sz_decimals / USD
        margin_at_entry = Fraction(pos.entry_ntl, pos.leverage)
        if pos.is_cross:
            lev: dict[str, Any] = {"type": "cross", "value": pos.leverage}
            used = -(-value // pos.leverage)
        else:
            lev = {"type": "isolated", "value": pos.leverage, "rawUsd": fmt_usd(pos.iso_raw)}
            used = pos.isolated_value
        liq = self.liquidation_px(address, pos, cross_available)
        all_time, since_open, since_change = self.rm.funding_totals(wallet_owner(address), pos.asset)
        return {"type": "oneWay", "position": {
            "coin": coin_name(s), "szi": fmt_sz(s, pos.szi), "leverage": lev,
            "entryPx": fmt_fraction(entry_px, 8),
            "positionValue": fmt_usd(value), "unrealizedPnl": fmt_usd(upnl),
            "returnOnEquity": fmt_fraction(Fraction(upnl) / margin_at_entry if margin_at_entry else 0, 10),
            "liquidationPx": None if liq is None else fmt_fraction(liq, 8),
            "marginUsed": fmt_usd(used), "maxLeverage": s.max_leverage,
            # positive = paid (the engine's sign; the venue's is unconfirmed): ``ReadModels.cum_funding``
            "cumFunding": {"allTime": fmt_usd(all_time), "sinceOpen": fmt_usd(since_open),
                           "sinceChange": fmt_usd(since_change)},
        }}

    def liquidation_px(self, address: str, pos: PositionView, cross_available: int | None = None) -> Fraction | None:
        """Hyperliquid's documented estimate (``risk.estimates.liquidation_price``) in USD, with the
        maintenance rate of the position's tier at its notional at the mark; None when no positive
        price liquidates it.
        ``cross_available`` (the account's cross value minus its maintenance margin) is computed
        once per account by callers that show several positions."""
        s = self.spec(pos.asset)
        if pos.is_cross:
            if cross_available is None:
                summary = self.reads.margin_summary(address)  # a ledger account: its own dex
                cross_available = 0 if summary is None else summary.cross_value - summary.cross_maintenance_margin
            available = cross_available
        else:
            available = pos.isolated_value - pos.maintenance_margin
        mmr = s.margin_table.tiers[s.margin_table.tier_index(pos.value)].mmr
        px = liquidation_price(self.reads.mark(pos.asset), pos.szi, available, mmr)
        return None if px is None else px / 10**s.px_decimals

    def clearinghouse_state(self, body: dict[str, Any]) -> dict[str, Any]:
        """One perp dex's clearinghouse (``dex``, default the first): standard accounts keep a
        separate balance, cross margin and positions per dex (``Accounts.clearinghouse``)."""
        user, dex = _addr(body), self._dex(body)
        m = self.reads.margin_summary(user, dex)
        now = self.now()
        empty = {"accountValue": "0.0", "totalNtlPos": "0.0", "totalRawUsd": "0.0", "totalMarginUsed": "0.0"}
        if m is None:
            return {"marginSummary": empty, "crossMarginSummary": dict(empty), "crossMaintenanceMarginUsed": "0.0",
                    "withdrawable": "0.0", "assetPositions": [], "time": now}
        address = dex_account(dex, user)
        cross_available = m.cross_value - m.cross_maintenance_margin
        asset_positions = [self.position_json(address, p, cross_available)
                           for p in self.reads.positions(user, dex) if p.szi]
        return {
            "marginSummary": {"accountValue": fmt_usd(m.account_value),
                              "totalNtlPos": fmt_usd(m.cross_notional + m.isolated_notional),
                              "totalRawUsd": fmt_usd(m.raw_usd + m.isolated_raw),
                              "totalMarginUsed": fmt_usd(m.cross_initial_margin + m.isolated_value)},
            "crossMarginSummary": {"accountValue": fmt_usd(m.cross_value), "totalNtlPos": fmt_usd(m.cross_notional),
                                   "totalRawUsd": fmt_usd(m.raw_usd),
                                   "totalMarginUsed": fmt_usd(m.cross_initial_margin)},
            "crossMaintenanceMarginUsed": fmt_usd(m.cross_maintenance_margin),
            "withdrawable": fmt_usd(m.withdrawable),
            "assetPositions": asset_positions,
            "time": now,
        }

    def spot_clearinghouse_state(self, body: dict[str, Any]) -> dict[str, Any]:
        """USDC only: what ``usdClassTransfer`` moved to the spot wallet."""
        balance = self.reads.spot_balance(_addr(body))
        if not balance:
            return {"balances": []}
        return {"balances": [{"coin": "USDC", "token": 0, "hold": "0.0", "total": fmt_usd(balance),
                              "entryNtl": "0.0"}]}

    # -- orders --------------------------------------------------------------------------------------
    def _live_orders(self, user: str, dex: str) -> list[OrderRec]:
        out = []
        for order in reversed(self.reads.open_orders(user)):  # newest first, as the venue lists them
            rec = self.rm.orders.get(order.oid)
            if rec is not None and self.spec(rec.asset).dex == dex:
                out.append(rec)
        return out

    def order_basic(self, rec: OrderRec) -> dict[str, Any]:
        s = self.spec(rec.asset)
        out: dict[str, Any] = {"coin": coin_name(s), "side": "B" if rec.is_buy else "A", "limitPx": fmt_px(s, rec.px),
                               "sz": fmt_sz(s, rec.sz), "oid": rec.oid, "timestamp": rec.ts,
                               "origSz": fmt_sz(s, rec.orig_sz)}
        if rec.cloid is not None:
            out["cloid"] = rec.cloid
        return out

    def order_frontend(self, rec: OrderRec, children: bool = True) -> dict[str, Any]:
        """The frontend's order row; with ``children``, a parent's live TP/SL children inside it
        (from the read model's parent index: the work is the row's own children)."""
        s = self.spec(rec.asset)
        out = self.order_basic(rec)
        is_trigger = bool(rec.tpsl)
        if is_trigger:
            above = (rec.tpsl == "tp") != rec.is_buy
            cond = f"Price {'above' if above else 'below'} {fmt_px(s, rec.trigger_px)}"
            kind = ("Take Profit" if rec.tpsl == "tp" else "Stop") + (" Market" if rec.is_market else " Limit")
        else:
            cond, kind = "N/A", "Market" if rec.tif in ("FrontendMarket", "LiquidationMarket") else "Limit"
        kids = [self.order_frontend(k, False) for k in self._children(rec)] if children else []
        out.update({"triggerCondition": cond, "isTrigger": is_trigger,
                    "triggerPx": fmt_px(s, rec.trigger_px) if is_trigger else "0.0", "children": kids,
                    "isPositionTpsl": rec.position_tpsl, "reduceOnly": rec.reduce_only, "orderType": kind,
                    "tif": None if is_trigger else ("LiquidationMarket" if rec.liquidation else rec.tif),
                    "cloid": rec.cloid})
        return out

    def _children(self, rec: OrderRec) -> list[OrderRec]:
        """The parent's children that are live orders of its user, by oid."""
        if rec.tpsl:
            return []
        user, reads = rec.user, self.reads
        out = []
        for c in self.rm.children_of(rec.oid):
            live = reads.order(c.oid) if c.parent == rec.oid else None
            if live is not None and live.user == user:
                out.append(c)
        return sorted(out, key=lambda c: c.oid)

    def open_orders(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for rec in self._live_orders(_addr(body), self._dex(body)):
            j = self.order_basic(rec)
            if rec.reduce_only:
                j["reduceOnly"] = True
            out.append(j)
        return out

    def frontend_open_orders(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return [self.order_frontend(r) for r in self._live_orders(_addr(body), self._dex(body))
                if not r.parent or r.status != "waitingForFill"]

    def order_status(self, body: dict[str, Any]) -> dict[str, Any]:
        user = _addr(body)
        ref = body.get("oid")
        rec = None
        if isinstance(ref, int) and not isinstance(ref, bool):
            rec = self.rm.orders.get(ref)
        elif isinstance(ref, str):
            oid = self.reads.order_id_by_cloid(user, ref.lower())
            if oid is not None:
                rec = self.rm.orders.get(oid)
            else:  # a closed order: the newest kept order with that cloid
                rec = self.rm.order_by_cloid(user, ref.lower())
        else:
            raise BadRequest("oid: expected an integer or a cloid")
        if rec is None or rec.user != user:
            return {"status": "unknownOid"}
        return {"status": "order", "order": {"order": self.order_frontend(rec), "status": venue_status(rec.status),
                                             "statusTimestamp": rec.status_ts}}

    def historical_orders(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        user = _addr(body)
        out = []
        for oid in reversed(self.rm.user_orders.get(user, ())):
            rec = self.rm.orders.get(oid)
            if rec is not None:
                out.append({"order": self.order_frontend(rec), "status": venue_status(rec.status),
                            "statusTimestamp": rec.status_ts})
                if len(out) == MAX_FILLS:
                    break
        return out

    # -- fills, funding, ledger ----------------------------------------------------------------------
    def fill_json(self, f: FillRec) -> dict[str, Any]:
        s = self.spec(f.asset)
        out: dict[str, Any] = {
            "coin": coin_name(s), "px": fmt_px(s, f.px), "sz": fmt_sz(s, f.sz), "side": "B" if f.is_buy else "A",
            "time": f.time, "startPosition": fmt_sz(s, f.start), "dir": f.dir or fill_dir(f.start, f.is_buy, f.sz),
            "closedPnl": fmt_usd(f.closed_pnl), "hash": hex_hash("fill", f.tid, f.oid, f.time), "oid": f.oid,
            "crossed": f.crossed, "fee": fmt_usd(f.fee), "tid": f.tid, "feeToken": "USDC",
        }
        if f.cloid is not None:
            out["cloid"] = f.cloid
        if f.builder_fee:
            out["builderFee"] = fmt_usd(f.builder_fee)
        if f.liquidation is not None:
            liq = dict(f.liquidation)
            liq["markPx"] = fmt_px(s, liq["markPx"])
            out["liquidation"] = liq
        return out

    def user_fills(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return [self.fill_json(f) for f in newest(self.rm.fills.get(_addr(body), ()), MAX_FILLS)]

    def user_fills_by_time(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        user = _addr(body)
        start, end = _int(body, "startTime"), _int(body, "endTime", self.now())
        fills = time_window(self.rm.fills.get(user, ()), start, end, _fill_time, MAX_FILLS)
        return [self.fill_json(f) for f in fills]

    def funding_item(self, r: FundingRec) -> dict[str, Any]:
        """One funding payment as the WebSocket sends it (``userFundings``, ``userEvents``)."""
        s = self.spec(r.asset)
        return {"time": r.time, "coin": coin_name(s), "usdc": fmt_usd(r.usdc), "szi": fmt_sz(s, r.szi),
                "fundingRate": fmt_fraction(rate_per_hour(r.rate, self.reads.funding_params(r.asset).interval_ms), 8),
                "nSamples": None}

    def user_funding(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        user = _addr(body)
        start, end = _int(body, "startTime", 0), _int(body, "endTime", self.now())
        out = []
        for r in time_window(self.rm.funding.get(user, ()), start, end, _row_time, 500):
            item = self.funding_item(r)
            del item["time"]
            out.append({"time": r.time, "hash": ZERO_HASH, "delta": {"type": "funding", **item}})
        return out

    def user_non_funding_ledger_updates(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        user = _addr(body)
        start, end = _int(body, "startTime", 0), _int(body, "endTime", self.now())
        return [{"time": r.time, "hash": hex_hash("ledger", user, r.time, r.delta["type"]),
                 "delta": self._ledger_delta(r.delta)}
                for r in time_window(self.rm.ledger.get(user, ()), start, end, _row_time, 500)]

    def _ledger_delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        out = dict(delta)
        for key in ("usdc", "fee", "accountValue", "amount", "usdcValue", "nativeTokenFee"):
            if key in out:
                out[key] = fmt_usd(out[key])
        if "liquidatedPositions" in out:
            out["liquidatedPositions"] = [{"coin": coin_name(self.spec(a)), "szi": fmt_sz(self.spec(a), z)}
                                          for a, z in out["liquidatedPositions"]]
        return out

    def funding_history(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        s = self.spec_by_coin(body.get("coin"))
        start, end = _int(body, "startTime"), _int(body, "endTime", self.now())
        if s is None:
            return []
        interval = self.reads.funding_params(s.asset).interval_ms
        return [{"coin": coin_name(s), "fundingRate": fmt_fraction(rate_per_hour(r.rate, interval), 8),
                 "premium": fmt_fraction(Fraction(r.premium, PREMIUM_SCALE), 8), "time": r.ts}
                for r in self.reads.funding_history(s.asset, start, end, 500)]

    def predicted_fundings(self, body: dict[str, Any]) -> list[Any]:
        out = []
        for s in self.specs(""):
            funding = self.reads.funding(s.asset)
            out.append([coin_name(s), [["HlPerp", {
                "fundingRate": fmt_fraction(rate_per_hour(funding.predicted_rate, funding.interval_ms), 8),
                "nextFundingTime": funding.next_funding_ts,
                "fundingIntervalHours": funding.interval_ms // 3_600_000}]]])
        return out

    def user_fees(self, body: dict[str, Any]) -> dict[str, Any]:
        """The venue's fee schedule (``market.fees``) and the user's rates today: its fee group's
        tier from the 14 completed UTC days before today; ``dailyUserVlm`` lists those days and
        today, oldest first, with the account's own taker (``userCross``) and maker (``userAdd``)
        notional and the exchange's.  Spot rates follow the same tier (perpbox trades no spot)."""
        user = _addr(body)
        now = self.now()
        taker, maker = self.reads.fee_rates(user, now)
        spot_taker, spot_maker = SPOT_TIERS[TAKER_RATES.index(taker)]
        daily = [{"date": _utc_date(day), "userCross": fmt_usd(cross), "userAdd": fmt_usd(add),
                  "exchange": fmt_usd(total)} for day, cross, add, total in self.reads.daily_volume(user, now)]
        vip = [{"ntlCutoff": fmt_usd(cutoff), "cross": fmt_rate(t), "add": fmt_rate(m),
                "spotCross": fmt_rate(st), "spotAdd": fmt_rate(sm)}
               for (cutoff, t, m), (st, sm) in zip(VIP_TIERS[1:], SPOT_TIERS[1:], strict=True)]
        mm = [{"makerFractionCutoff": fmt(per_mille, 3), "add": fmt_rate(rate)} for per_mille, rate in MM_TIERS]
        return {"dailyUserVlm": daily,
                "feeSchedule": {"cross": fmt_rate(TAKER_RATES[0]), "add": fmt_rate(MAKER_RATES[0]),
                                "spotCross": fmt_rate(SPOT_TIERS[0][0]), "spotAdd": fmt_rate(SPOT_TIERS[0][1]),
                                "tiers": {"vip": vip, "mm": mm}, "referralDiscount": "0.0",
                                "stakingDiscountTiers": []},
                "userCrossRate": fmt_rate(taker), "userAddRate": fmt_rate(maker),
                "userSpotCrossRate": fmt_rate(spot_taker), "userSpotAddRate": fmt_rate(spot_maker),
                "activeReferralDiscount": "0.0", "trial": None,
                "feeTrialReward": "0.0", "nextTrialAvailableTimestamp": None, "stakingLink": None,
                "activeStakingDiscount": {"bpsOfMaxSupply": "0.0", "discount": "0.0"}}

    def user_rate_limit(self, body: dict[str, Any]) -> dict[str, Any]:
        user = _addr(body)
        vlm = self.rm.volume.get(user, 0)
        limiter = self.address_limiter
        used, cap = (0, 10_000 + vlm // USD) if limiter is None else (limiter.used.get(user, 0), limiter.cap(user))
        return {"cumVlm": fmt_usd(vlm), "nRequestsUsed": used, "nRequestsCap": cap, "nRequestsSurplus": 0}

    def user_role(self, body: dict[str, Any]) -> dict[str, Any]:
        user = _addr(body)
        master = self.reads.agent_master(user, self.now())
        if master is not None:
            return {"role": "agent", "data": {"user": master}}
        acct = self.reads.account(user)
        if acct is None:
            return {"role": "missing"}
        if acct.master is not None:
            return {"role": "subAccount", "data": {"master": acct.master}}
        return {"role": "user"}

    def exchange_status(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"time": self.now(), "specialStatuses": None}

    def user_abstraction(self, body: dict[str, Any]) -> str:
        _addr(body)
        return "disabled"

    def extra_agents(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"name": n, "address": a, "validUntil": v or None}
                for a, n, v in self.reads.agents_of(_addr(body)) if n]

    def max_builder_fee(self, body: dict[str, Any]) -> int:
        return self.reads.max_builder_fee(_addr(body), _addr(body, "builder"))

    def recent_trades(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        s = self.spec_by_coin(body.get("coin"))
        if s is None:
            return []
        return [self.trade_json(s, t) for t in reversed(newest(self.rm.trades.get(s.asset, ()), 100))]

    def trade_json(self, s: MarketSpec, t: TradeRec) -> dict[str, Any]:
        return {"coin": coin_name(s), "side": "B" if t.taker_is_buy else "A", "px": fmt_px(s, t.px),
                "sz": fmt_sz(s, t.sz), "time": t.time, "hash": hex_hash("trade", t.tid, t.time), "tid": t.tid,
                "users": [t.buyer, t.seller]}

    def active_asset_data(self, body: dict[str, Any]) -> dict[str, Any]:
        user = _addr(body)
        s = self.spec_by_coin(body.get("coin"))
        if s is None:
            raise BadRequest("coin: unknown")
        summary = self.reads.margin_summary(user, s.dex)
        pos = None if summary is None else self.reads.position(user, s.asset)
        lev = pos.leverage if pos is not None else s.default_leverage
        cross = pos.is_cross if pos is not None else not s.only_isolated
        avail = summary.available_to_trade if summary is not None else 0
        mark = self.reads.mark(s.asset)
        max_sz = max_trade_size(avail, lev, mark)
        leverage: dict[str, Any] = {"type": "cross" if cross else "isolated", "value": lev}
        if not cross:
            leverage["rawUsd"] = fmt_usd(pos.iso_raw if pos is not None else 0)
        return {"user": user, "coin": coin_name(s), "leverage": leverage,
                "maxTradeSzs": [fmt_sz(s, max_sz), fmt_sz(s, max_sz)],
                "availableToTrade": [fmt_usd(max(avail, 0)), fmt_usd(max(avail, 0))], "markPx": fmt_px(s, mark)}

    def sub_accounts(self, body: dict[str, Any]) -> list[dict[str, Any]] | None:
        acct = self.reads.account(_addr(body))
        if acct is None or not acct.subs:
            return None
        return [{"name": "", "subAccountUser": sub, "master": acct.address,
                 "clearinghouseState": self.clearinghouse_state({"user": sub}), "spotState": {"balances": []}}
                for sub in acct.subs]

    def perps_at_oi_cap(self, body: dict[str, Any]) -> list[str]:
        out = []
        for s in self.specs(self._dex(body)):
            oi = self.reads.open_interest(s.asset)
            if oi.cap_ntl and oi.notional >= oi.cap_ntl:
                out.append(coin_name(s))
        return out

    def web_data2(self, body: dict[str, Any]) -> dict[str, Any]:
        """The frontend's aggregate for one user (first dex).  No vaults, TWAPs or spot assets here:
        those fields are empty; ``cumLedger`` is the user's deposits − withdrawals; ``agentAddress``
        is the user's most recently approved unnamed API wallet, if any."""
        user = _addr(body)
        ctxs = self.meta_and_asset_ctxs({})
        agents = [(a, v) for a, n, v in self.reads.agents_of(user) if not n]
        return {"clearinghouseState": self.clearinghouse_state({"user": user}), "leadingVaults": [],
                "totalVaultEquity": "0.0", "openOrders": self.frontend_open_orders({"user": user}),
                "agentAddress": agents[-1][0] if agents else None,
                "agentValidUntil": (agents[-1][1] or None) if agents else None,
                "cumLedger": fmt_usd(self.rm.net_deposits.get(user, 0)), "meta": ctxs[0], "assetCtxs": ctxs[1],
                "serverTime": self.now(), "isVault": False, "user": user, "twapStates": [],
                "spotState": self.spot_clearinghouse_state({"user": user}), "spotAssetCtxs": [],
                "perpsAtOpenInterestCap": self.perps_at_oi_cap({})}

    def perp_dex_limits(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """A HIP-3 dex's configured caps (``setOpenInterestCaps``; 0 = uncapped): the dex total and
        each market's notional cap.  ``oiSzCapPerPerp`` and ``maxTransferNtl`` are not modelled
        (perpbox has no dex-wide size cap or transfer limit): null.  The first dex: null."""
        dex = self._dex(body)
        if not dex:
            return None
        specs = self.specs(dex)
        view = self.reads.dex(dex)
        assert view is not None  # checked by _dex
        return {"totalOiCap": fmt_usd(view.oi_cap_ntl), "oiSzCapPerPerp": None,
                "maxTransferNtl": None,
                "coinToOiCap": [[coin_name(s), fmt_usd(self.reads.open_interest(s.asset).cap_ntl)] for s in specs]}

    def liquidations(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """perpbox's own request type (the venue has none): recent liquidation steps, newest first."""
        out = []
        for ev in reversed(self.rm.liquidations):
            spec = self.reads.market(ev.asset)
            out.append({"time": ev.ts, "user": wallet_owner(ev.user), "dex": wallet_dex(ev.user),
                        "coin": coin_name(spec) if spec is not None else "cross",
                        "method": ev.method, "liquidator": ev.liquidator or None, "notional": fmt_usd(ev.notional),
                        "accountValue": fmt_usd(ev.account_value), "maintenanceMargin": fmt_usd(ev.maintenance_margin)})
        return out

    def referral(self, body: dict[str, Any]) -> dict[str, Any]:
        """``cumVlm``: the user's traded notional (all fills, as ``userRateLimit``).  Referrals are not
        modelled: no referrer (null), no referrer state (null), no rewards ever paid ("0.0", []),
        as the README lists."""
        user = _addr(body)
        return {"referredBy": None, "cumVlm": fmt_usd(self.rm.volume.get(user, 0)), "unclaimedRewards": "0.0",
                "claimedRewards": "0.0", "builderRewards": "0.0", "referrerState": None, "rewardHistory": []}

    def portfolio(self, body: dict[str, Any]) -> list[Any]:
        """Per window (day, week, month, allTime): the kept account value samples in the window
        (``ReadModels`` module doc: cadence and bounds) and the value now; ``pnlHistory`` is each
        sample's value minus net inflow, relative to the window's first sample; ``vlm`` the user's
        traded notional in the window (to the hour; allTime: every fill).  Spot is not modelled, so
        ``perpDay`` … ``perpAllTime`` equal ``day`` … ``allTime``."""
        user = _addr(body)
        now = self.now()
        current = self.reads.perp_value(user)
        series = self.rm.value_history.get(user)
        inflow = self.rm.net_inflow.get(user, 0)
        out: list[Any] = []
        for k, (name, _, horizon) in enumerate(PORTFOLIO_WINDOWS):
            points = [] if series is None else [p for p in series[k] if not horizon or p[0] >= now - horizon]
            if current is not None and (not points or points[-1][0] < now):
                points.append((now, current, inflow))
            base = points[0][1] - points[0][2] if points else 0
            vlm = self.rm.volume.get(user, 0) if not horizon else self.rm.window_volume(user, now - horizon)
            out.append([name, {"accountValueHistory": [[t, fmt_usd(v)] for t, v, _ in points],
                               "pnlHistory": [[t, fmt_usd(v - n - base)] for t, v, n in points],
                               "vlm": fmt_usd(vlm)}])
        return out + [["perp" + name[0].upper() + name[1:], window] for name, window in out]


def _fill_time(f: FillRec) -> int:
    return f.time


def _row_time(r: Any) -> int:
    return int(r.time)


def _ts(r: Any) -> int:
    return int(r.ts)


def fill_dir(start: int, is_buy: bool, sz: int) -> str:
    end = start + (sz if is_buy else -sz)
    if start == 0 or (start > 0) == is_buy:
        return "Open Long" if is_buy else "Open Short"
    if end == 0 or (end > 0) == (start > 0):
        return "Close Short" if is_buy else "Close Long"
    return "Short > Long" if is_buy else "Long > Short"


def aggregate_levels(levels: Sequence[tuple[int, int, int]], is_buy: bool, sig: int | None,
                     mantissa: int | None) -> Sequence[tuple[int, int, int]]:
    """Hyperliquid's ``nSigFigs``/``mantissa`` bucketing (reference: the order_book_server): bucket
    width ``mantissa × 10^(digits(px) − nSigFigs)`` in price units; bids round down, asks up;
    consecutive levels in one bucket merge (sizes and order counts summed)."""
    if sig is None:
        return levels
    out: list[tuple[int, int, int]] = []
    for px, sz, n in levels:
        inc = (mantissa or 1) * 10 ** max(len(str(px)) - sig, 0)
        b = px // inc * inc if is_buy else -(-px // inc) * inc
        if out and out[-1][0] == b:
            out[-1] = (b, out[-1][1] + sz, out[-1][2] + n)
        else:
            out.append((b, sz, n))
    return out


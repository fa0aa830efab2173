"""The ``Venue`` interface over Hyperliquid's API — the real venue by URL, or any compatible server
(``perpbox serve`` is a venue).  REST only in this module: ``/info`` reads, signed ``/exchange``
actions (signed as the official SDK signs them).

Order prices follow the venue's rule (at most 5 significant figures and ``6 − szDecimals``
decimals; integers always allowed), so ``MarketInfo.tick`` is the step at the current price.
Hyperliquid's minimum order value is $10, reduce-only orders included, except one that closes a
whole position (as SDKs that close dust positions rely on; not in the venue's docs).  A send whose answer does
not settle the order (a timeout, an HTTP error) comes back ``unknown``; the caller asks again by
``order_status`` (by client id when it gave one) before booking anything.
"""

from __future__ import annotations

import contextlib
import time
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from eth_account import Account as EthAccount

from perpbox.api import signing
from perpbox.bots.venue import (
    CANCELED,
    FILLED,
    OPEN,
    REJECTED,
    UNKNOWN,
    Account,
    Book,
    Fill,
    FundingPayment,
    FundingRate,
    MarketInfo,
    OrderRequest,
    OrderState,
    Position,
)

MAINNET_URL = "https://api.hyperliquid.xyz"
MIN_NOTIONAL = Decimal(10)  # Hyperliquid: "Order must have minimum value of $10."
FUNDING_INTERVAL_H = 1
_TIF = {"alo": "Alo", "ioc": "Ioc", "gtc": "Gtc"}
_STATUS = {"open": OPEN, "filled": FILLED, "canceled": CANCELED, "rejected": REJECTED}


def _d(x: Any) -> Decimal:
    try:
        return Decimal(str(x))
    except InvalidOperation:
        raise ValueError(f"not a decimal: {x!r}") from None


def wire(x: Decimal) -> str:
    """A decimal as the venue's wire string: no exponent, no trailing zeros."""
    text = format(x.normalize(), "f")
    return text if text != "-0" else "0"


def tick_at(px: Decimal, sz_decimals: int) -> Decimal:
    """The price step at ``px``: 5 significant figures, at most ``6 − szDecimals`` decimals, and
    integers always allowed."""
    digits = px.adjusted() + 1  # integer digits (≤ 0 below 1)
    sig = Decimal(1).scaleb(digits - 5)
    return min(max(sig, Decimal(1).scaleb(-(6 - sz_decimals))), Decimal(1))


class HyperliquidVenue:
    def __init__(self, url: str, key_hex: str, *, account: str | None = None, dex: str = "",
                 timeout: float = 10.0, name: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.key_hex = key_hex
        self.signer = EthAccount.from_key(key_hex).address.lower()
        self.user = (account or self.signer).lower()  # an API wallet signs for its account
        self.dex = dex
        self.name = name or f"hyperliquid:{self.url}" + (f":{dex}" if dex else "")
        self.is_mainnet = self.url == MAINNET_URL
        self.client = httpx.AsyncClient(timeout=timeout)
        self._assets: dict[str, tuple[int, int]] = {}  # coin -> (asset id, szDecimals)
        self._nonce = 0

    async def _info(self, body: dict[str, Any]) -> Any:
        r = await self.client.post(self.url + "/info", json=body)
        r.raise_for_status()
        return r.json()

    async def _exchange(self, action: dict[str, Any]) -> Any:
        self._nonce = max(time.time_ns() // 1_000_000, self._nonce + 1)
        # an API wallet trading for its account signs with no vault address (the venue knows whose
        # agent it is)
        sig = signing.sign_l1_action(self.key_hex, action, None, self._nonce, None, self.is_mainnet)
        r = await self.client.post(self.url + "/exchange", json={"action": action, "nonce": self._nonce,
                                                                 "signature": sig, "vaultAddress": None,
                                                                 "expiresAfter": None})
        r.raise_for_status()
        return r.json()

    async def _dex_index(self) -> int:
        if not self.dex:
            return 0
        dexes = await self._info({"type": "perpDexs"})
        names = [d["name"] if isinstance(d, dict) else None for d in dexes]
        if self.dex not in names:
            raise ValueError(f"no perp dex {self.dex!r} at {self.url}")
        return names.index(self.dex)

    # -- reads ----------------------------------------------------------------------------------------
    async def markets(self) -> dict[str, MarketInfo]:
        meta, ctxs = await self._info({"type": "metaAndAssetCtxs", "dex": self.dex})
        base = 0 if not self.dex else 100_000 + (await self._dex_index()) * 10_000
        out = {}
        for i, (u, ctx) in enumerate(zip(meta["universe"], ctxs)):
            coin, szd = u["name"], int(u["szDecimals"])
            self._assets[coin] = (base + i, szd)
            px = _d(ctx.get("markPx") or ctx.get("oraclePx") or "1")
            out[coin] = MarketInfo(coin=coin, tick=tick_at(px, szd), lot=Decimal(1).scaleb(-szd),
                                   min_notional=MIN_NOTIONAL, funding_interval_h=FUNDING_INTERVAL_H,
                                   max_leverage=int(u.get("maxLeverage", 1)), sz_decimals=szd,
                                   min_notional_spares="close")
        return out

    async def _asset(self, coin: str) -> tuple[int, int]:
        if coin not in self._assets:
            await self.markets()
        if coin not in self._assets:
            raise ValueError(f"{coin} is not listed at {self.name}")
        return self._assets[coin]

    async def book(self, coin: str) -> Book:
        raw = await self._info({"type": "l2Book", "coin": coin})
        sides = [tuple((_d(lv["px"]), _d(lv["sz"])) for lv in side) for side in raw["levels"]]
        return Book(coin=coin, bids=sides[0], asks=sides[1], ts_ms=int(raw["time"]))

    async def order_status(self, coin: str, order_id: str) -> OrderState:
        ref: int | str = int(order_id) if order_id.isdigit() else order_id
        try:
            raw = await self._info({"type": "orderStatus", "user": self.user, "oid": ref})
        except httpx.HTTPError as e:
            return OrderState(UNKNOWN, order_id=order_id, error=f"{type(e).__name__}: {e}")
        if raw.get("status") != "order":
            return OrderState(UNKNOWN, order_id=order_id, error=str(raw.get("status")))
        o, status = raw["order"]["order"], raw["order"]["status"]
        filled = _d(o["origSz"]) - _d(o["sz"])
        return OrderState(_STATUS.get(status, CANCELED if status.endswith("Canceled") else REJECTED
                                      if status.endswith("Rejected") else UNKNOWN),
                          order_id=str(o["oid"]), client_id=o.get("cloid"), filled=filled,
                          error="" if status in _STATUS else status)

    async def fills(self, since_ms: int) -> list[Fill]:
        raw = await self._info({"type": "userFillsByTime", "user": self.user, "startTime": since_ms})
        out = []
        for f in raw:
            if self.dex and not str(f["coin"]).startswith(f"{self.dex}:"):
                continue
            size = _d(f["sz"]) * (1 if f["side"] == "B" else -1)
            out.append(Fill(fill_id=str(f["tid"]), order_id=str(f["oid"]), coin=f["coin"], size=size, px=_d(f["px"]),
                            fee=_d(f.get("fee", "0")), ts_ms=int(f["time"]), maker=not f.get("crossed", False)))
        return out

    async def account(self) -> Account:
        raw = await self._info({"type": "clearinghouseState", "user": self.user, "dex": self.dex})
        positions = {}
        for row in raw.get("assetPositions", []):
            p = row["position"]
            liq = p.get("liquidationPx")
            positions[p["coin"]] = Position(coin=p["coin"], size=_d(p["szi"]), entry_px=_d(p["entryPx"]),
                                            unrealized_pnl=_d(p["unrealizedPnl"]), margin=_d(p["marginUsed"]),
                                            liquidation_px=None if liq is None else _d(liq))
        summary = raw["marginSummary"]
        return Account(equity=_d(summary["accountValue"]), positions=positions, ts_ms=int(raw["time"]),
                       notional=_d(summary.get("totalNtlPos", "0")),
                       maintenance_margin=_d(raw.get("crossMaintenanceMarginUsed", "0")))

    async def funding(self, coin: str) -> FundingRate:
        """The venue's current (hourly) rate for ``coin``: Hyperliquid settles every hour."""
        meta, ctxs = await self._info({"type": "metaAndAssetCtxs", "dex": self.dex})
        for u, ctx in zip(meta["universe"], ctxs):
            if u["name"] == coin:
                mark = ctx.get("markPx")
                return FundingRate(coin=coin, rate=_d(ctx.get("funding", "0")), interval_h=FUNDING_INTERVAL_H,
                                   mark_px=None if mark is None else _d(mark), ts_ms=int(time.time() * 1000))
        raise ValueError(f"{coin} is not listed at {self.name}")

    async def funding_payments(self, since_ms: int) -> list[FundingPayment]:
        raw = await self._info({"type": "userFunding", "user": self.user, "startTime": since_ms})
        out = []
        for row in raw:
            d = row.get("delta", {})
            if d.get("type") != "funding" or (self.dex and not str(d.get("coin", "")).startswith(f"{self.dex}:")):
                continue
            out.append(FundingPayment(coin=d["coin"], usd=_d(d["usdc"]), size=_d(d["szi"]),
                                      rate=_d(d["fundingRate"]), ts_ms=int(row["time"])))
        return out

    # -- orders ---------------------------------------------------------------------------------------
    async def _wire(self, order: OrderRequest) -> dict[str, Any]:
        asset, _ = await self._asset(order.coin)
        out: dict[str, Any] = {"a": asset, "b": order.is_buy, "p": wire(order.px), "s": wire(order.size),
                               "r": order.reduce_only, "t": {"limit": {"tif": _TIF[order.tif]}}}
        if order.client_id is not None:
            out["c"] = order.client_id
        return out

    async def place(self, order: OrderRequest) -> OrderState:
        try:
            answer = await self._exchange({"type": "order", "orders": [await self._wire(order)], "grouping": "na"})
        except httpx.HTTPError as e:
            return OrderState(UNKNOWN, client_id=order.client_id, error=f"{type(e).__name__}: {e}")
        return self._order_answer(answer, order.client_id)

    @staticmethod
    def _order_answer(answer: Any, client_id: str | None) -> OrderState:
        if not isinstance(answer, dict) or answer.get("status") != "ok":
            text = answer.get("response") if isinstance(answer, dict) else answer
            return OrderState(REJECTED, client_id=client_id, error=str(text))
        st = answer["response"]["data"]["statuses"][0]
        if "resting" in st:
            return OrderState(OPEN, order_id=str(st["resting"]["oid"]), client_id=client_id)
        if "filled" in st:
            f = st["filled"]
            return OrderState(FILLED, order_id=str(f["oid"]), client_id=client_id, filled=_d(f["totalSz"]),
                              avg_px=_d(f["avgPx"]))
        if "error" in st:  # an IOC with nothing to take says so here too
            return OrderState(REJECTED, client_id=client_id, error=str(st["error"]))
        return OrderState(UNKNOWN, client_id=client_id, error=str(st))

    async def cancel(self, coin: str, order_id: str) -> OrderState:
        """Cancel, then read the order's final state: a fill may have raced the cancel."""
        asset, _ = await self._asset(coin)
        with contextlib.suppress(httpx.HTTPError):  # whatever happened, the status read says where it stands
            await self._exchange({"type": "cancel", "cancels": [{"a": asset, "o": int(order_id)}]})
        return await self.order_status(coin, order_id)

    async def modify(self, coin: str, order_id: str, order: OrderRequest) -> OrderState:
        try:
            answer = await self._exchange({"type": "modify", "oid": int(order_id), "order": await self._wire(order)})
        except httpx.HTTPError as e:
            return OrderState(UNKNOWN, order_id=order_id, error=f"{type(e).__name__}: {e}")
        if not isinstance(answer, dict) or answer.get("status") != "ok":
            return OrderState(REJECTED, order_id=order_id, error=str(answer.get("response") if isinstance(
                answer, dict) else answer))
        return await self.order_status(coin, order_id)

    async def aclose(self) -> None:
        await self.client.aclose()

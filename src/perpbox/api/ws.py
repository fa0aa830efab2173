"""``/ws``: Hyperliquid's WebSocket API — subscriptions, pushes, ``post`` and ping.

Subscriptions are normalised to a key (``("l2Book", "BTC", None, None)``) and acknowledged with the
normalised subscription echoed, as the venue does.  A push is built and serialised once per key
and queued to every subscriber.

Pushes: trades, fills, order updates, fundings, ledger updates and liquidations go out after
every sequencer batch; books, bbo, mids, candles and asset contexts of the markets that changed go
out at most every ``BOOK_PUSH_S`` (the venue pushes books per block, ≥ 0.5 s apart).

Slow consumers never stall the engine: each connection has a bounded queue
(``QUEUE_LIMIT`` messages).  A connection whose queue is full is closed (code 1008, "slow
consumer") and its queue dropped; the client reconnects and resubscribes, and the snapshots sent on
subscribe resynchronise it (drop-and-resync).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from perpbox.api.info import BadRequest, InfoAPI
from perpbox.api.readmodels import FundingRec, TradeRec, venue_status
from perpbox.api.wire import coin_name, fmt_px, fmt_sz, fmt_usd
from perpbox.exchange import events as V
from perpbox.ledger.ledger import wallet_owner

QUEUE_LIMIT = 2_000
BOOK_PUSH_S = 0.5
MAX_SUBSCRIPTIONS = 1_000
Key = tuple[Any, ...]

USER_CHANNELS = ("orderUpdates", "userEvents", "userFills", "userFundings", "userNonFundingLedgerUpdates",
                 "notification")
ACCOUNT_VIEWS = ("webData2", "spotState")  # whole views, re-sent when the user's account changes


class Conn:
    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_LIMIT)
        self.keys: set[Key] = set()
        self.closed = False

    def send(self, text: str) -> bool:
        if self.closed:
            return False
        try:
            self.queue.put_nowait(text)
            return True
        except asyncio.QueueFull:
            self.closed = True
            return False


class WsHub:
    def __init__(self, info: InfoAPI, handle_action: Callable[[Any], Any]) -> None:
        self.info = info
        self.handle_action = handle_action
        self.subs: dict[Key, set[Conn]] = defaultdict(set)
        self.dirty_assets: set[int] = set()
        self.dirty_users: set[str] = set()
        self.sent = 0

    # -- connection lifecycle -----------------------------------------------------------------------
    async def serve(self, ws: WebSocket) -> None:
        await ws.accept()
        conn = Conn(ws)
        writer = asyncio.create_task(self._writer(conn))
        try:
            while not conn.closed:
                raw = await ws.receive_text()
                await self._on_message(conn, raw)
        except WebSocketDisconnect:
            pass
        finally:
            conn.closed = True
            for key in conn.keys:
                self.subs[key].discard(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    async def _writer(self, conn: Conn) -> None:
        while True:
            if conn.closed and conn.queue.empty():
                await conn.ws.close(code=1008, reason="slow consumer")
                return
            text = await conn.queue.get()
            if text is None:
                continue
            await conn.ws.send_text(text)
            self.sent += 1

    def _push(self, conn: Conn, channel: str, data: Any) -> None:
        if not conn.send(orjson.dumps({"channel": channel, "data": data}).decode()):
            self._drop(conn)

    def _drop(self, conn: Conn) -> None:
        for key in conn.keys:
            self.subs[key].discard(conn)
        with contextlib.suppress(asyncio.QueueFull):
            conn.queue.put_nowait(None)

    def publish(self, key: Key, channel: str, data: Any) -> None:
        conns = self.subs.get(key)
        if not conns:
            return
        text = orjson.dumps({"channel": channel, "data": data}).decode()
        for conn in list(conns):
            if not conn.send(text):
                self._drop(conn)

    # -- requests -----------------------------------------------------------------------------------
    async def _on_message(self, conn: Conn, raw: str) -> None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            msg = None
        if not isinstance(msg, dict) or msg.get("method") not in ("subscribe", "unsubscribe", "ping", "post"):
            self._push(conn, "error", f"Error parsing JSON into valid websocket request: {raw}")
            return
        method = msg["method"]
        if method == "ping":
            conn.send('{"channel":"pong"}')
            return
        if method == "post":
            await self._post(conn, msg)
            return
        sub = msg.get("subscription")
        try:
            key, echo = self.normalise(sub)
        except (BadRequest, KeyError, TypeError, ValueError):
            self._push(conn, "error", f"Invalid subscription: {orjson.dumps(sub).decode()}")
            return
        if method == "subscribe":
            if key in conn.keys:
                self._push(conn, "error", f"Already subscribed: {orjson.dumps(sub).decode()}")
                return
            if len(conn.keys) >= MAX_SUBSCRIPTIONS:
                self._push(conn, "error", "Cannot subscribe to more than 1000 subscriptions.")
                return
            conn.keys.add(key)
            self.subs[key].add(conn)
            self._push(conn, "subscriptionResponse", {"method": "subscribe", "subscription": echo})
            self._snapshot(conn, key)
        else:
            if key not in conn.keys:
                self._push(conn, "error", f"Already unsubscribed: {orjson.dumps(sub).decode()}")
                return
            conn.keys.discard(key)
            self.subs[key].discard(conn)
            self._push(conn, "subscriptionResponse", {"method": "unsubscribe", "subscription": echo})

    async def _post(self, conn: Conn, msg: dict[str, Any]) -> None:
        pid = msg.get("id")
        req = msg.get("request")
        try:
            if not isinstance(req, dict) or req.get("type") not in ("info", "action"):
                raise BadRequest("request.type")
            payload = req.get("payload")
            if req["type"] == "info":
                data = self.info.handle(payload)
                resp = {"type": "info", "payload": {"type": payload.get("type"), "data": data}}
            else:
                resp = {"type": "action", "payload": await self.handle_action(payload)}
        except BadRequest as e:
            resp = {"type": "error", "payload": f"422 Unprocessable Entity: {e}"}
        self._push(conn, "post", {"id": pid, "response": resp})

    def normalise(self, sub: Any) -> tuple[Key, dict[str, Any]]:
        """The subscription's key and the normalised echo the venue acknowledges with."""
        if not isinstance(sub, dict):
            raise BadRequest("subscription")
        kind = sub["type"]
        info = self.info
        if kind == "allMids":
            dex = sub.get("dex") or ""
            if dex and dex not in info.dexes:
                raise BadRequest("dex")
            return ("allMids", dex), ({"type": "allMids", "dex": dex} if dex else {"type": "allMids"})
        if kind in ("l2Book", "trades", "bbo", "candle", "activeAssetCtx"):
            coin = sub["coin"]
            if info.spec_by_coin(coin) is None:
                raise BadRequest("coin")
            if kind == "l2Book":
                sig, mantissa = sub.get("nSigFigs"), sub.get("mantissa")
                if (sig is not None and sig not in (2, 3, 4, 5)) or (
                        mantissa is not None and (sig != 5 or mantissa not in (1, 2, 5))):
                    raise BadRequest("nSigFigs")
                return (kind, coin, sig, mantissa), {"type": kind, "coin": coin, "nSigFigs": sig, "mantissa": mantissa}
            if kind == "candle":
                if sub["interval"] not in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d",
                                           "3d", "1w", "1M"):
                    raise BadRequest("interval")
                return (kind, coin, sub["interval"]), {"type": kind, "coin": coin, "interval": sub["interval"]}
            return (kind, coin), {"type": kind, "coin": coin}
        if kind in USER_CHANNELS or kind in ("activeAssetData", "clearinghouseState", "openOrders", *ACCOUNT_VIEWS):
            user = sub["user"]
            if not isinstance(user, str) or len(user) != 42:
                raise BadRequest("user")
            user = user.lower()
            if kind == "activeAssetData":
                if info.spec_by_coin(sub["coin"]) is None:
                    raise BadRequest("coin")
                return (kind, user, sub["coin"]), {"type": kind, "user": user, "coin": sub["coin"]}
            if kind in ("clearinghouseState", "openOrders"):
                dex = sub.get("dex") or ""
                return (kind, user, dex), {"type": kind, "user": user, "dex": dex}
            return (kind, user), {"type": kind, "user": user}
        raise BadRequest("type")

    # -- snapshots on subscribe -----------------------------------------------------------------------
    def _snapshot(self, conn: Conn, key: Key) -> None:
        kind = key[0]
        info = self.info
        if kind == "l2Book":
            self._push(conn, "l2Book", info.book_snapshot(info.spec_by_coin(key[1]), key[2], key[3]))
        elif kind == "allMids":
            self._push(conn, "allMids", self._mids(key[1]))
        elif kind == "bbo":
            self._push(conn, "bbo", self._bbo(key[1]))
        elif kind == "activeAssetCtx":
            spec = info.spec_by_coin(key[1])
            self._push(conn, "activeAssetCtx", {"coin": key[1], "ctx": info.asset_ctx(spec)})
        elif kind == "activeAssetData":
            self._push(conn, "activeAssetData", info.active_asset_data({"user": key[1], "coin": key[2]}))
        elif kind == "userFills":
            fills = [info.fill_json(f) for f in list(info.rm.fills.get(key[1], ()))[-100:]]
            self._push(conn, "userFills", {"isSnapshot": True, "user": key[1], "fills": fills})
        elif kind == "userFundings":
            fundings = [info.funding_item(r) for r in list(info.rm.funding.get(key[1], ()))[-500:]]
            self._push(conn, "userFundings", {"isSnapshot": True, "user": key[1], "fundings": fundings})
        elif kind == "userNonFundingLedgerUpdates":
            updates = info.user_non_funding_ledger_updates({"user": key[1]})
            self._push(conn, kind, {"isSnapshot": True, "user": key[1], "nonFundingLedgerUpdates": updates})
        elif kind == "clearinghouseState":
            self._push(conn, kind, {"dex": key[2], "user": key[1],
                                    "clearinghouseState": info.clearinghouse_state({"user": key[1], "dex": key[2]})})
        elif kind == "openOrders":
            self._push(conn, kind, {"dex": key[2], "user": key[1],
                                    "orders": info.frontend_open_orders({"user": key[1], "dex": key[2]})})
        elif kind in ACCOUNT_VIEWS:
            self._push(conn, kind, self._account_view(kind, key[1]))

    def _mids(self, dex: str) -> dict[str, Any]:
        data: dict[str, Any] = {"mids": self.info.all_mids({"dex": dex})}
        if dex:
            data["dex"] = dex
        return data

    def _bbo(self, coin: str) -> dict[str, Any]:
        spec = self.info.spec_by_coin(coin)
        book = self.info.ex.books[spec.asset]
        sides = []
        for is_buy in (True, False):
            lvl = book.depth(is_buy, 1)
            top = {"px": fmt_px(spec, lvl[0][0]), "sz": fmt_sz(spec, lvl[0][1]), "n": lvl[0][2]} if lvl else None
            sides.append(top)
        return {"coin": coin, "time": self.info.now(), "bbo": sides}

    # -- pushes after each batch ----------------------------------------------------------------------
    def on_events(self, events: list[V.Event]) -> None:
        info = self.info
        ex = info.ex
        trades: dict[int, list[dict[str, Any]]] = defaultdict(list)
        fills: dict[str, list[dict[str, Any]]] = defaultdict(list)
        orders: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for ev in events:
            t = type(ev)
            if t is V.Fill:
                spec = ex.markets[ev.asset]
                buyer, seller = (ev.taker, ev.maker) if ev.taker_is_buy else (ev.maker, ev.taker)
                trades[ev.asset].append(info.trade_json(spec, TradeRec(ev.ts, ev.asset, ev.px, ev.sz, ev.taker_is_buy,
                                                                       buyer, seller, ev.tid)))
                for oid in (ev.taker_oid, ev.maker_oid):
                    rec = info.rm.orders.get(oid)
                    if rec is not None and rec.sz == 0 and ("orderUpdates", rec.user) in self.subs:
                        orders[rec.user].append({"order": info.order_basic(rec), "status": "filled",
                                                 "statusTimestamp": ev.ts})
                for user in (ev.taker, ev.maker):
                    if ("userFills", user) in self.subs or ("userEvents", user) in self.subs:
                        rec = next((f for f in reversed(info.rm.fills.get(user, ())) if f.tid == ev.tid), None)
                        if rec is not None:
                            fills[user].append(info.fill_json(rec))
                    self.dirty_users.add(user)
                self.dirty_assets.add(ev.asset)
            elif t in (V.OrderPlaced, V.OrderRested, V.OrderClosed, V.OrderTriggered, V.OrderRejected):
                rec = info.rm.orders.get(ev.oid)
                if rec is not None:
                    status = getattr(ev, "status", "open")
                    if t is V.OrderTriggered:
                        status = "triggered"
                    elif t is V.OrderRested:
                        status = "" if rec.status == "triggered" else "open"  # "triggered" was sent already
                    elif t is V.OrderPlaced:
                        status = "open" if status == "pending" else venue_status(status)
                    if status and ("orderUpdates", rec.user) in self.subs:
                        orders[rec.user].append({"order": info.order_basic(rec), "status": status,
                                                 "statusTimestamp": ev.ts})
                    self.dirty_assets.add(rec.asset)
                    self.dirty_users.add(rec.user)
            elif t is V.FundingSettled:
                for account, szi, amount in ev.payments:
                    user = wallet_owner(account)  # a HIP-3 dex account pays for its owner
                    item = info.funding_item(FundingRec(ev.ts, ev.asset, -amount, szi, ev.rate))
                    self.publish(("userFundings", user), "userFundings", {"user": user, "fundings": [item]})
                    self.publish(("userEvents", user), "user", {"funding": item})
                self.dirty_assets.add(ev.asset)
            elif t is V.Liquidated:
                user = wallet_owner(ev.user)
                self.publish(("userEvents", user), "user", {"liquidation": {
                    "lid": ev.ts, "liquidator": wallet_owner(ev.liquidator) if ev.liquidator else "0x" + "0" * 40,
                    "liquidated_user": user, "liquidated_ntl_pos": fmt_usd(ev.notional),
                    "liquidated_account_value": fmt_usd(ev.account_value)}})
                self.dirty_users.add(user)
            elif t is V.PricesUpdated:
                self.dirty_assets.add(ev.asset)
            elif t in (V.Deposited, V.Withdrew):
                self.dirty_users.add(ev.user)
            elif t is V.Transferred or t is V.AssetSent:  # incl. usdClassTransfer, sends between dexes
                self.dirty_users.update((wallet_owner(ev.src), wallet_owner(ev.dst)))
        for asset, items in trades.items():
            self.publish(("trades", coin_name(ex.markets[asset])), "trades", items)
        for user, items in fills.items():
            self.publish(("userFills", user), "userFills", {"user": user, "fills": items})
            self.publish(("userEvents", user), "user", {"fills": items})
        for user, items in orders.items():
            self.publish(("orderUpdates", user), "orderUpdates", items)

    def flush_books(self) -> None:
        """The periodic pushes: books, bbo, mids, candles, contexts and account views that changed."""
        info = self.info
        assets, self.dirty_assets = self.dirty_assets, set()
        users, self.dirty_users = self.dirty_users, set()
        dexes = set()
        for asset in sorted(assets):
            spec = info.ex.markets[asset]
            coin = coin_name(spec)
            dexes.add(spec.dex)
            for key in [k for k in self.subs if k[0] == "l2Book" and k[1] == coin and self.subs[k]]:
                self.publish(key, "l2Book", info.book_snapshot(spec, key[2], key[3]))
            if self.subs.get(("bbo", coin)):
                self.publish(("bbo", coin), "bbo", self._bbo(coin))
            if self.subs.get(("activeAssetCtx", coin)):
                self.publish(("activeAssetCtx", coin), "activeAssetCtx", {"coin": coin, "ctx": info.asset_ctx(spec)})
            for key in [k for k in self.subs if k[0] == "candle" and k[1] == coin and self.subs[k]]:
                candles = info.candle_snapshot({"req": {"coin": coin, "interval": key[2],
                                                        "startTime": info.now() - 2 * 2_592_000_000}})
                if candles:
                    self.publish(key, "candle", candles[-1])
        for dex in sorted(dexes):
            if self.subs.get(("allMids", dex)):
                self.publish(("allMids", dex), "allMids", self._mids(dex))
        for user in sorted(users):
            for key in [k for k in self.subs if len(k) > 1 and k[1] == user and self.subs[k]]:
                if key[0] == "clearinghouseState":
                    self.publish(key, key[0], {"dex": key[2], "user": user, "clearinghouseState":
                                               info.clearinghouse_state({"user": user, "dex": key[2]})})
                elif key[0] == "openOrders":
                    self.publish(key, key[0], {"dex": key[2], "user": user,
                                               "orders": info.frontend_open_orders({"user": user, "dex": key[2]})})
                elif key[0] == "activeAssetData":
                    self.publish(key, key[0], info.active_asset_data({"user": user, "coin": key[2]}))
                elif key[0] in ACCOUNT_VIEWS:
                    self.publish(key, key[0], self._account_view(key[0], user))

    def _account_view(self, kind: str, user: str) -> dict[str, Any]:
        if kind == "spotState":
            return {"user": user, "spotState": self.info.spot_clearinghouse_state({"user": user})}
        return self.info.web_data2({"user": user})

    async def run_flusher(self) -> None:
        while True:
            await asyncio.sleep(BOOK_PUSH_S)
            self.flush_books()


"""``/ws``: Hyperliquid's WebSocket API — subscriptions, pushes, ``post`` and ping.

Subscriptions are normalised to a key (``("l2Book", "BTC", None, None)``, ``api.subscriptions``) and
acknowledged with the normalised subscription echoed, as the venue does.  A push is built and serialised once per key
and queued to every subscriber.

Pushes: trades, fills, order updates, fundings, ledger updates and liquidations go out after
every sequencer batch; books, bbo, mids, candles and asset contexts of the markets that changed go
out at most every ``BOOK_PUSH_S`` (the venue pushes books per block, ≥ 0.5 s apart).

Every message is hostile until checked.  A request that does not deserialise (not JSON: NaN,
Infinity, a number beyond a double such as ``1e400``, a lone surrogate; nested over ``MAX_DEPTH``
deep, as HTTP bodies may not be; not an object; an unknown method or subscription type; a field of
the wrong JSON type, ``"nSigFigs": 3.0``; a user that is not a 42-character hex address; an unknown
candle interval) is answered ``Error parsing JSON into valid websocket request: <the request>``; a
well-typed subscription the venue refuses (unknown coin or dex, ``nSigFigs`` outside 2..5,
``mantissa`` other than 1/2/5 or without ``nSigFigs`` 5) is answered ``Invalid subscription:
<json>``.  Neither is registered, and the connection stays open.  Binary frames are answered with
an error too.

One subscription never affects another: each push is built and serialised inside its own guard,
so a view that fails for one key (logged once, with its traceback) is skipped for that key's
subscribers only; the per-batch listener never raises into the sequencer.

Slow consumers never stall the engine: each connection has a bounded outgoing queue
(``QUEUE_LIMIT`` messages, and at most ``QUEUE_BYTES`` characters).  Only the connection's writer
task writes to the socket, and uvicorn's ``send`` waits while the transport is above its
high-water mark, so the queue holds exactly what the client has not taken yet: a client that stops
reading blocks its writer, its queue fills, and the hub then drops it (logged as ``slow
consumer``), forgets its subscriptions, discards the queue and closes the connection with code 1008,
"slow consumer" (the close frame waits up to ``CLOSE_GRACE_S`` for the client to read what was
already in flight; then the socket is closed without it).  The client reconnects and
resubscribes, and the snapshots sent on subscribe resynchronise it (drop-and-resync).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from starlette.websockets import WebSocket

from perpbox.api.info import BadRequest, InfoAPI
from perpbox.api.nesting import too_deep
from perpbox.api.subscriptions import ACCOUNT_VIEWS, Invalid, Key, Unparsable, normalise
from perpbox.api.wire import coin_name, fmt_px, fmt_sz, fmt_usd
from perpbox.exchange import events as V
from perpbox.ledger.ledger import wallet_owner
from perpbox.store.readmodels import FundingRec, TradeRec, venue_status

log = logging.getLogger("perpbox.ws")

QUEUE_LIMIT = 2_000
QUEUE_BYTES = 16 * 2**20  # perpbox: a few huge answers must not pin memory either
BOOK_PUSH_S = 0.5
MAX_SUBSCRIPTIONS = 1_000
ECHO_LIMIT = 2_000  # perpbox: errors echo at most this many characters of the request
CLOSE_GRACE_S = 10.0  # how long a dropped connection's close frame may wait for the client to read
PARSE_ERROR = "Error parsing JSON into valid websocket request: "
INVALID = "Invalid subscription: "
BINARY_ERROR = PARSE_ERROR + "binary frame of {n} bytes (requests are JSON text frames)"  # perpbox wording
SNAPSHOT_ERROR = "Unable to grab snapshot for subscription: "  # perpbox wording (order_book_server's style)
U64 = 2**64


def _clip(text: str) -> str:
    return text if len(text) <= ECHO_LIMIT else text[:ECHO_LIMIT] + "…"


def _echo(value: Any, raw: str) -> str:
    """``value`` as JSON for an error message (the raw request if it cannot be serialised)."""
    try:
        return _clip(orjson.dumps(value).decode())
    except (TypeError, ValueError):
        return _clip(raw)




def _message(channel: str, data: Any) -> str:
    return orjson.dumps({"channel": channel, "data": data}).decode()


class Conn:
    """One client: its subscriptions and its bounded outgoing queue (emptied by its writer only)."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.out: deque[str] = deque()
        self.out_chars = 0
        self.wake = asyncio.Event()  # set when the queue gains a message
        self.done = asyncio.Event()  # set when the connection must end (client left, send failed, dropped)
        self.keys: set[Key] = set()
        self.closed = False
        self.reason = ""  # why the hub ended the connection; "" when the client did

    def send(self, text: str) -> bool:
        """Queue ``text``; False when closed or when the queue is full (the caller drops the connection)."""
        if self.closed or len(self.out) >= QUEUE_LIMIT or self.out_chars + len(text) > QUEUE_BYTES:
            return False
        self.out.append(text)
        self.out_chars += len(text)
        self.wake.set()
        return True

    @property
    def peer(self) -> str:
        client = self.ws.client
        return f"{client[0]}:{client[1]}" if client else "?"


class WsHub:
    def __init__(self, info: InfoAPI, handle_action: Callable[[Any], Any]) -> None:
        self.info = info
        self.handle_action = handle_action
        self.subs: dict[Key, set[Conn]] = {}
        self.conns: set[Conn] = set()
        self.dirty_assets: set[int] = set()
        self.dirty_users: set[str] = set()
        self.sent = 0
        self.dropped = 0  # connections cut by the queue rule
        self.failures = 0  # pushes or snapshots that could not be built (each logged)
        self._failing: set[Key] = set()  # keys whose last build failed (logged once until they recover)

    # -- connection lifecycle -----------------------------------------------------------------------
    async def serve(self, ws: WebSocket) -> None:
        await ws.accept()
        conn = Conn(ws)
        self.conns.add(conn)
        writer = asyncio.create_task(self._writer(conn))
        reader = asyncio.create_task(self._reader(conn))
        try:
            await conn.done.wait()
        finally:
            conn.closed = True
            self._forget(conn)
            self.conns.discard(conn)
            for task in (reader, writer):
                task.cancel()
            for task in (reader, writer):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if conn.reason:  # the writer is gone, so this is still the only write to the socket
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=1008, reason=conn.reason), CLOSE_GRACE_S)

    async def _reader(self, conn: Conn) -> None:
        ws = conn.ws
        try:
            while not conn.closed:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message["type"] != "websocket.receive":
                    continue
                text = message.get("text")
                if text is None:
                    self._error(conn, BINARY_ERROR.format(n=len(message.get("bytes") or b"")))
                else:
                    try:
                        await self._on_message(conn, text)
                    except Exception:  # a bug here must not end the connection or reach uvicorn
                        log.exception("ws request failed: %.300r", text)
                        self._error(conn, PARSE_ERROR + _clip(text))
                await asyncio.sleep(0)  # let the writer drain between requests
        except Exception:  # the transport failed under us: the client is gone
            return
        finally:
            conn.done.set()

    async def _writer(self, conn: Conn) -> None:
        """The only task that writes to this socket; ``send_text`` waits while the socket is full."""
        ws = conn.ws
        try:
            while not conn.closed:
                if not conn.out:
                    conn.wake.clear()
                    await conn.wake.wait()
                    continue
                text = conn.out.popleft()
                conn.out_chars -= len(text)
                await ws.send_text(text)
                self.sent += 1
        except Exception:  # the client went away
            return
        finally:
            conn.done.set()

    def _send(self, conn: Conn, text: str) -> None:
        if not conn.send(text) and not conn.closed:
            self._drop(conn, "slow consumer")

    def _push(self, conn: Conn, channel: str, data: Any) -> None:
        self._send(conn, _message(channel, data))

    def _error(self, conn: Conn, text: str) -> None:
        self._send(conn, _message("error", text))

    def _drop(self, conn: Conn, reason: str) -> None:
        """The queue rule: forget the connection's subscriptions, discard its queue, end it."""
        queued = len(conn.out)
        self._end(conn, reason)
        self.dropped += 1
        log.warning(
            "ws %s dropped (%s): outgoing queue full at %d messages (limit %d messages, %d chars)",
            conn.peer,
            reason,
            queued,
            QUEUE_LIMIT,
            QUEUE_BYTES,
        )

    def drop_all(self, reason: str) -> int:
        """End every connection (a dev fault: the venue drops its WebSockets); how many."""
        conns = list(self.conns)
        for conn in conns:
            self._end(conn, reason)
        return len(conns)

    def _end(self, conn: Conn, reason: str) -> None:
        """Forget the connection's subscriptions, discard its queue, and let its tasks end it."""
        conn.closed = True
        conn.reason = reason
        self._forget(conn)
        conn.out.clear()
        conn.out_chars = 0
        conn.done.set()
        conn.wake.set()

    def _forget(self, conn: Conn) -> None:
        for key in conn.keys:
            self._unsubscribe(conn, key)
        conn.keys = set()

    def _unsubscribe(self, conn: Conn, key: Key) -> None:
        conns = self.subs.get(key)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.subs[key]
                self._failing.discard(key)

    def _failed(self, what: Key) -> None:
        """Log a build failure once (with its traceback) until that key builds again."""
        self.failures += 1
        if what in self._failing:
            log.debug("ws: %r still fails", what)
            return
        self._failing.add(what)
        log.exception("ws: could not build %r; skipped for its subscribers only", what)

    def publish(self, key: Key, channel: str, data: Any) -> None:
        conns = self.subs.get(key)
        if not conns:
            return
        try:
            text = _message(channel, data)
        except Exception:
            self._failed(key)
            return
        for conn in list(conns):
            self._send(conn, text)

    def _publish_view(self, key: Key, channel: str, build: Callable[[], Any]) -> None:
        """Build and serialise one key's push inside its own guard; ``build`` may return None (no push)."""
        conns = self.subs.get(key)
        if not conns:
            return
        try:
            data = build()
            if data is None:
                return
            text = _message(channel, data)
        except Exception:
            self._failed(key)
            return
        self._failing.discard(key)
        for conn in list(conns):
            self._send(conn, text)

    # -- requests -----------------------------------------------------------------------------------
    async def _on_message(self, conn: Conn, raw: str) -> None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            msg = None
        # each level of nesting opens a bracket: a request with few brackets cannot be deep (no walk)
        if msg is not None and too_deep(raw, msg):
            msg = None
        method = msg.get("method") if isinstance(msg, dict) else None
        if method == "ping":
            self._send(conn, '{"channel":"pong"}')
            return
        if method == "post":
            await self._post(conn, msg, raw)
            return
        if method not in ("subscribe", "unsubscribe") or not isinstance(msg, dict):
            self._error(conn, PARSE_ERROR + _clip(raw))
            return
        sub = msg.get("subscription")
        try:
            key, echo = normalise(sub, self.info)
        except Unparsable:
            self._error(conn, PARSE_ERROR + _clip(raw))
            return
        except (Invalid, BadRequest):
            self._error(conn, INVALID + _echo(sub, raw))
            return
        if method == "subscribe":
            if key in conn.keys:
                self._error(conn, f"Already subscribed: {_echo(sub, raw)}")
                return
            if len(conn.keys) >= MAX_SUBSCRIPTIONS:
                self._error(conn, "Cannot subscribe to more than 1000 subscriptions.")
                return
            try:
                snapshot = self._snapshot(key)
            except Exception:
                self._failed(key)
                self._error(conn, SNAPSHOT_ERROR + _echo(sub, raw))
                return
            conn.keys.add(key)
            self.subs.setdefault(key, set()).add(conn)
            self._push(conn, "subscriptionResponse", {"method": "subscribe", "subscription": echo})
            if snapshot is not None:
                self._send(conn, snapshot)
        else:
            if key not in conn.keys:
                self._error(conn, f"Already unsubscribed: {_echo(sub, raw)}")
                return
            conn.keys.discard(key)
            self._unsubscribe(conn, key)
            self._push(conn, "subscriptionResponse", {"method": "unsubscribe", "subscription": echo})

    async def _post(self, conn: Conn, msg: dict[str, Any], raw: str) -> None:
        pid = msg.get("id")
        if type(pid) is not int or not 0 <= pid < U64:  # the answer is routed by id: it must be one
            self._error(conn, PARSE_ERROR + _clip(raw))
            return
        req = msg.get("request")
        try:
            if not isinstance(req, dict) or req.get("type") not in ("info", "action"):
                raise BadRequest("request.type")
            payload = req.get("payload")
            if req["type"] == "info":
                data = self.info.handle(payload)
                resp: dict[str, Any] = {"type": "info", "payload": {"type": payload.get("type"), "data": data}}
            else:
                # shielded: a connection dropped mid-request must not cancel the sequencer's future
                task = asyncio.ensure_future(self.handle_action(payload))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
                resp = {"type": "action", "payload": await asyncio.shield(task)}
        except BadRequest as e:
            resp = {"type": "error", "payload": f"422 Unprocessable Entity: {e}"}
        except Exception as e:  # as POST /info and /exchange do: answered 422, logged
            log.exception("ws post failed: %.300r", raw)
            resp = {"type": "error", "payload": f"422 Unprocessable Entity: {BadRequest(f'{type(e).__name__}: {e}')}"}
        try:
            text = _message("post", {"id": pid, "response": resp})
        except Exception as e:
            log.exception("ws post answer not serialisable: %.300r", raw)
            text = _message(
                "post",
                {
                    "id": pid,
                    "response": {
                        "type": "error",
                        "payload": f"422 Unprocessable Entity: {BadRequest(f'{type(e).__name__}: {e}')}",
                    },
                },
            )
        self._send(conn, text)

    # -- snapshots on subscribe -----------------------------------------------------------------------
    def _snapshot(self, key: Key) -> str | None:
        """The serialised message sent right after the ack, or None for channels without one."""
        kind = key[0]
        info = self.info
        data: Any
        if kind == "l2Book":
            data = info.book_snapshot(info.spec_by_coin(key[1]), key[2], key[3])
        elif kind == "allMids":
            data = self._mids(key[1])
        elif kind == "bbo":
            data = self._bbo(key[1])
        elif kind == "activeAssetCtx":
            data = {"coin": key[1], "ctx": info.asset_ctx(info.spec_by_coin(key[1]))}
        elif kind == "activeAssetData":
            data = info.active_asset_data({"user": key[1], "coin": key[2]})
        elif kind == "userFills":
            fills = [info.fill_json(f) for f in list(info.rm.fills.get(key[1], ()))[-100:]]
            data = {"isSnapshot": True, "user": key[1], "fills": fills}
        elif kind == "userFundings":
            fundings = [info.funding_item(r) for r in list(info.rm.funding.get(key[1], ()))[-500:]]
            data = {"isSnapshot": True, "user": key[1], "fundings": fundings}
        elif kind == "userNonFundingLedgerUpdates":
            updates = info.user_non_funding_ledger_updates({"user": key[1]})
            data = {"isSnapshot": True, "user": key[1], "nonFundingLedgerUpdates": updates}
        elif kind == "clearinghouseState":
            data = self._clearinghouse(key[1], key[2])
        elif kind == "openOrders":
            data = self._open_orders(key[1], key[2])
        elif kind in ACCOUNT_VIEWS:
            data = self._account_view(kind, key[1])
        else:
            return None
        return _message(kind, data)

    def _mids(self, dex: str) -> dict[str, Any]:
        data: dict[str, Any] = {"mids": self.info.all_mids({"dex": dex})}
        if dex:
            data["dex"] = dex
        return data

    def _bbo(self, coin: str) -> dict[str, Any]:
        spec = self.info.spec_by_coin(coin)
        sides = []
        for is_buy in (True, False):
            lvl = self.info.reads.book_levels(spec.asset, is_buy, 1)
            top = {"px": fmt_px(spec, lvl[0][0]), "sz": fmt_sz(spec, lvl[0][1]), "n": lvl[0][2]} if lvl else None
            sides.append(top)
        return {"coin": coin, "time": self.info.now(), "bbo": sides}

    def _clearinghouse(self, user: str, dex: str) -> dict[str, Any]:
        state = self.info.clearinghouse_state({"user": user, "dex": dex})
        return {"dex": dex, "user": user, "clearinghouseState": state}

    def _open_orders(self, user: str, dex: str) -> dict[str, Any]:
        return {"dex": dex, "user": user, "orders": self.info.frontend_open_orders({"user": user, "dex": dex})}

    def _account_view(self, kind: str, user: str) -> dict[str, Any]:
        if kind == "spotState":
            return {"user": user, "spotState": self.info.spot_clearinghouse_state({"user": user})}
        return self.info.web_data2({"user": user})

    def _candle(self, coin: str, interval: str) -> dict[str, Any] | None:
        info = self.info
        candles = info.candle_snapshot(
            {"req": {"coin": coin, "interval": interval, "startTime": info.now() - 2 * 2_592_000_000}}
        )
        return candles[-1] if candles else None

    # -- pushes after each batch ----------------------------------------------------------------------
    def on_events(self, events: list[V.Event]) -> None:
        """The sequencer's listener: never raises.  What an event changed is marked first (that cannot
        fail); then each push item is built in its own guard, so one that fails (logged) is left out
        of its own subscribers' push only."""
        trades: dict[Key, list[dict[str, Any]]] = {}
        fills: dict[str, list[dict[str, Any]]] = {}
        orders: dict[str, list[dict[str, Any]]] = {}
        for ev in events:
            try:
                self._on_event(ev, trades, fills, orders)
            except Exception:
                self._failed(("event", type(ev).__name__))
        for key, items in trades.items():
            self.publish(key, "trades", items)
        for user, items in fills.items():
            self.publish(("userFills", user), "userFills", {"user": user, "fills": items})
            self.publish(("userEvents", user), "user", {"fills": items})
        for user, items in orders.items():
            self.publish(("orderUpdates", user), "orderUpdates", items)

    def _collect(self, out: dict[Any, list[Any]], group: Any, key: Key, build: Callable[[], Any]) -> None:
        """Append ``build()`` to ``out[group]``; a build that fails is logged and left out."""
        try:
            item = build()
        except Exception:
            self._failed(key)
            return
        out.setdefault(group, []).append(item)

    def _on_event(
        self,
        ev: V.Event,
        trades: dict[Key, list[dict[str, Any]]],
        fills: dict[str, list[dict[str, Any]]],
        orders: dict[str, list[dict[str, Any]]],
    ) -> None:
        info = self.info
        subs = self.subs
        t = type(ev)
        if t is V.Fill:
            self.dirty_assets.add(ev.asset)
            self.dirty_users.update((ev.taker, ev.maker))
            spec = info.spec(ev.asset)
            key = ("trades", coin_name(spec))
            if key in subs:
                buyer, seller = (ev.taker, ev.maker) if ev.taker_is_buy else (ev.maker, ev.taker)
                rec = TradeRec(ev.ts, ev.asset, ev.px, ev.sz, ev.taker_is_buy, buyer, seller, ev.tid)
                self._collect(trades, key, key, lambda: info.trade_json(spec, rec))
            for oid in (ev.taker_oid, ev.maker_oid):
                order = info.rm.orders.get(oid)
                if order is not None and order.sz == 0 and ("orderUpdates", order.user) in subs:
                    self._collect(
                        orders,
                        order.user,
                        ("orderUpdates", order.user),
                        lambda o=order: {"order": info.order_basic(o), "status": "filled", "statusTimestamp": ev.ts},
                    )
            for user in (ev.taker, ev.maker):
                if ("userFills", user) in subs or ("userEvents", user) in subs:
                    frec = next((f for f in reversed(info.rm.fills.get(user, ())) if f.tid == ev.tid), None)
                    if frec is not None:
                        self._collect(fills, user, ("userFills", user), lambda f=frec: info.fill_json(f))
        elif t in (V.OrderPlaced, V.OrderRested, V.OrderClosed, V.OrderTriggered, V.OrderRejected):
            order = info.rm.orders.get(ev.oid)
            if order is not None:
                self.dirty_assets.add(order.asset)
                self.dirty_users.add(order.user)
                status = getattr(ev, "status", "open")
                if t is V.OrderTriggered:
                    status = "triggered"
                elif t is V.OrderRested:
                    status = "" if order.status == "triggered" else "open"  # "triggered" was sent already
                elif t is V.OrderPlaced:
                    status = "open" if status == "pending" else venue_status(status)
                if status and ("orderUpdates", order.user) in subs:
                    self._collect(
                        orders,
                        order.user,
                        ("orderUpdates", order.user),
                        lambda: {"order": info.order_basic(order), "status": status, "statusTimestamp": ev.ts},
                    )
        elif t is V.FundingSettled:
            self.dirty_assets.add(ev.asset)
            for account, szi, amount in ev.payments:
                user = wallet_owner(account)  # a HIP-3 dex account pays for its owner
                if ("userFundings", user) in subs or ("userEvents", user) in subs:
                    got: dict[str, list[dict[str, Any]]] = {}
                    self._collect(
                        got,
                        user,
                        ("userFundings", user),
                        lambda u=user, z=szi, a=amount: info.funding_item(FundingRec(ev.ts, ev.asset, -a, z, ev.rate)),
                    )
                    for item in got.get(user, ()):
                        self.publish(("userFundings", user), "userFundings", {"user": user, "fundings": [item]})
                        self.publish(("userEvents", user), "user", {"funding": item})
        elif t is V.Liquidated:
            owner = wallet_owner(ev.user)  # the liquidated account may be a HIP-3 dex account
            self.dirty_users.add(owner)
            key = ("userEvents", owner)
            self._publish_view(
                key,
                "user",
                lambda: {
                    "liquidation": {
                        "lid": ev.ts,
                        "liquidator": wallet_owner(ev.liquidator) if ev.liquidator else "0x" + "0" * 40,
                        "liquidated_user": owner,
                        "liquidated_ntl_pos": fmt_usd(ev.notional),
                        "liquidated_account_value": fmt_usd(ev.account_value),
                    }
                },
            )
        elif t is V.PricesUpdated:
            self.dirty_assets.add(ev.asset)
        elif t in (V.Deposited, V.Withdrew):
            self.dirty_users.add(ev.user)
        elif t is V.Transferred or t is V.AssetSent:  # incl. usdClassTransfer, sends between dexes
            self.dirty_users.update((wallet_owner(ev.src), wallet_owner(ev.dst)))

    def flush_books(self) -> None:
        """The periodic pushes: books, bbo, mids, candles, contexts and account views that changed.
        Each key is built in its own guard: one that fails is skipped, the others still go out."""
        info = self.info
        assets, self.dirty_assets = self.dirty_assets, set()
        users, self.dirty_users = self.dirty_users, set()
        by_coin: dict[tuple[str, str], list[Key]] = {}
        by_user: dict[str, list[Key]] = {}
        for key in self.subs:
            if key[0] in ("l2Book", "candle"):
                by_coin.setdefault((key[0], key[1]), []).append(key)
            elif key[0] in ("clearinghouseState", "openOrders", "activeAssetData", *ACCOUNT_VIEWS):
                by_user.setdefault(key[1], []).append(key)
        dexes = set()
        for asset in sorted(assets):
            spec = info.reads.market(asset)
            if spec is None:
                continue
            coin = coin_name(spec)
            dexes.add(spec.dex)
            for key in by_coin.get(("l2Book", coin), ()):
                self._publish_view(key, "l2Book", lambda k=key, s=spec: info.book_snapshot(s, k[2], k[3]))
            self._publish_view(("bbo", coin), "bbo", lambda c=coin: self._bbo(c))
            self._publish_view(
                ("activeAssetCtx", coin), "activeAssetCtx", lambda c=coin, s=spec: {"coin": c, "ctx": info.asset_ctx(s)}
            )
            for key in by_coin.get(("candle", coin), ()):
                self._publish_view(key, "candle", lambda k=key: self._candle(k[1], k[2]))
        for dex in sorted(dexes):
            self._publish_view(("allMids", dex), "allMids", lambda d=dex: self._mids(d))
        for user in sorted(users):
            for key in by_user.get(user, ()):
                kind = key[0]
                if kind == "clearinghouseState":
                    self._publish_view(key, kind, lambda k=key: self._clearinghouse(k[1], k[2]))
                elif kind == "openOrders":
                    self._publish_view(key, kind, lambda k=key: self._open_orders(k[1], k[2]))
                elif kind == "activeAssetData":
                    self._publish_view(key, kind, lambda k=key: info.active_asset_data({"user": k[1], "coin": k[2]}))
                else:
                    self._publish_view(key, kind, lambda k=key: self._account_view(k[0], k[1]))

    async def run_flusher(self) -> None:
        while True:
            await asyncio.sleep(BOOK_PUSH_S)
            self.flush_books()

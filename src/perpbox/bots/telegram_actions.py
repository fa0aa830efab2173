"""The position monitor's Telegram commands: ``/status``, ``/positions``, ``/reduce COIN PCT [ACCOUNT]``,
``/flatten COIN [ACCOUNT]`` — the outage night's wish ("a one-click reduce by half in the bot"), made
safe the way a mis-tap cannot trade:

1. A destructive command only *previews*: per account holding the underlying (or only ``ACCOUNT``),
   the order it would send — side, size (the percentage of the venue's current position, rounded
   down to the lot), a reduce-only IOC limit ``band_bps`` through the touch of the current book, and
   the slippage estimated by walking that book for the size — with Confirm and Abort buttons.
2. Confirm sends exactly the previewed orders through ``Venue.place`` (reduce-only: a position that
   shrank meanwhile cannot be flipped; IOC: nothing rests) and answers with what the venue said.
3. Each order's client id is derived from (chat, command message id, command, account, coin): a
   double tap, a re-delivered update or a restarted bot produce the same id.  An id is booked as
   executed before its order is sent (and, in the audit log, survives a restart); before sending,
   the venue is asked whether it already knows the id, and the same id goes to the venue, which
   refuses a duplicate of an open one.
4. Only allow-listed chats are answered (any other gets a refusal and an audit line); one executed
   Confirm per ``rate_limit_s`` per chat; a preview expires after ``ttl_s`` (Confirm then does
   nothing); Abort ends a preview; in dry-run Confirm shows what would be sent and sends nothing.
5. Every command, preview, confirm, abort, refusal and venue answer is a JSON line in the audit log.

The decisions (:func:`parse_command`, :func:`plan_order`, :func:`preview_id`, :class:`ActionDesk`)
are pure; :class:`ActionService` adds the venue reads and sends, still without Telegram;
:class:`TelegramBot` is the python-telegram-bot transport.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from perpbox.bots.positions import PositionsMonitor, Snapshot, dec, underlying_of
from perpbox.bots.venue import UNKNOWN, Book, MarketInfo, OrderRequest, OrderState
from perpbox.monitor.alerts import TELEGRAM_MAX_TEXT, redact

log = logging.getLogger("perpbox.positions.telegram")
DESTRUCTIVE = ("reduce", "flatten")
BPS = Decimal(10_000)
HUNDRED = Decimal(100)
HELP = ("Commands:\n/status — accounts, streams and alerts\n/positions — exposure per underlying\n"
        "/reduce COIN PCT [ACCOUNT] — preview reducing every COIN position (or ACCOUNT's) by PCT %\n"
        "/flatten COIN [ACCOUNT] — preview closing them\nA preview trades nothing until you tap Confirm.")


class CommandError(ValueError):
    """A command that does not parse; the message says how it should read."""


@dataclass(frozen=True)
class Command:
    name: str  # status | positions | reduce | flatten | help
    coin: str = ""
    pct: Decimal | None = None
    account: str | None = None

    def canonical(self) -> str:
        pct = "" if self.pct is None else format(self.pct.normalize(), "f")
        return f"{self.name} {self.coin} {pct} {self.account or '*'}".strip()

    @property
    def destructive(self) -> bool:
        return self.name in DESTRUCTIVE


def parse_command(text: str) -> Command:
    """``/reduce BTC 50``, ``/reduce@perpbox_bot xyz:SILVER 25% hl_b``, ``/flatten ETH`` …"""
    parts = text.strip().split()
    if not parts or not parts[0].startswith("/"):
        raise CommandError("not a command\n" + HELP)
    name, args = parts[0][1:].split("@", 1)[0].lower(), parts[1:]
    if name in ("status", "positions", "help", "start"):
        if args:
            raise CommandError(f"/{name} takes no arguments")
        return Command("help" if name == "start" else name)
    if name == "reduce":
        if len(args) not in (2, 3):
            raise CommandError("usage: /reduce COIN PCT [ACCOUNT], e.g. /reduce BTC 50")
        return Command("reduce", args[0], _pct(args[1]), args[2] if len(args) == 3 else None)
    if name == "flatten":
        if len(args) not in (1, 2):
            raise CommandError("usage: /flatten COIN [ACCOUNT], e.g. /flatten BTC")
        return Command("flatten", args[0], HUNDRED, args[1] if len(args) == 2 else None)
    raise CommandError(f"unknown command /{name}\n" + HELP)


def _pct(text: str) -> Decimal:
    try:
        pct = Decimal(text.removesuffix("%"))
    except InvalidOperation:
        raise CommandError(f"PCT: {text!r} is not a number") from None
    if not pct.is_finite() or not 0 < pct <= 100:
        raise CommandError("PCT: more than 0 and at most 100")
    return pct


def preview_id(chat_id: int, message_id: int, command: Command) -> str:
    """The preview's id: the same command message (a re-delivered update) gives the same id."""
    raw = f"perpbox-positions|{chat_id}|{message_id}|{command.canonical()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def client_order_id(pid: str, account: str, coin: str) -> str:
    """The order's client id (Hyperliquid's cloid shape: 0x + 32 hex digits), one per preview and leg."""
    return "0x" + hashlib.sha256(f"{pid}|{account}|{coin}".encode()).hexdigest()[:32]


def callback_data(action: str, pid: str) -> str:
    return f"{action}:{pid}"  # ≤ 64 bytes, Telegram's limit


def parse_callback(data: str | None) -> tuple[str, str] | None:
    action, sep, pid = (data or "").partition(":")
    if not sep or action not in ("confirm", "abort") or not pid:
        return None
    return action, pid


# -- planning an order --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LegInput:
    """What a preview needs of one account's position, read fresh from its venue."""

    account: str
    venue: str
    coin: str
    position: Decimal  # signed
    book: Book | None
    market: MarketInfo | None
    error: str = ""


@dataclass(frozen=True)
class PlannedOrder:
    account: str
    venue: str
    coin: str
    position: Decimal
    is_buy: bool
    size: Decimal
    limit_px: Decimal
    touch_px: Decimal
    mid: Decimal
    est_filled: Decimal  # what the book holds within the limit, up to size
    est_avg_px: Decimal | None
    slippage_bps: Decimal | None  # est. average price vs the mid, + = cost
    band_bps: int
    client_id: str
    warnings: tuple[str, ...] = ()

    def request(self) -> OrderRequest:
        return OrderRequest(self.coin, self.is_buy, self.size, self.limit_px, tif="ioc", reduce_only=True,
                            client_id=self.client_id)

    def order_text(self) -> str:
        return (f"{'BUY' if self.is_buy else 'SELL'} {dec(self.size)} {self.coin} reduce-only IOC limit "
                f"{dec(self.limit_px)}")

    def text(self) -> str:
        side = "long" if self.position > 0 else "short"
        touch = "ask" if self.is_buy else "bid"
        lines = [f"{self.account} ({self.venue}): {side} {dec(abs(self.position))} {self.coin}",
                 f"  → {self.order_text()} ({self.band_bps} bps through the {touch} {dec(self.touch_px)})"]
        if self.est_avg_px is None:
            lines.append("  book: nothing within the band")
        else:
            within = "all within the band" if self.est_filled == self.size else f"only {dec(self.est_filled)} " \
                "within the band"
            lines.append(f"  book: est. avg {dec(self.est_avg_px)} for {dec(self.est_filled)} ({within}), "
                         f"slippage {dec(self.slippage_bps)} bps vs mid {dec(self.mid)}")
        lines += [f"  ! {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, "venue": self.venue, "coin": self.coin, "position": dec(self.position),
                "side": "buy" if self.is_buy else "sell", "size": dec(self.size), "limit_px": dec(self.limit_px),
                "tif": "ioc", "reduce_only": True, "touch_px": dec(self.touch_px), "mid": dec(self.mid),
                "est_filled": dec(self.est_filled), "est_avg_px": dec(self.est_avg_px),
                "slippage_bps": dec(self.slippage_bps), "client_id": self.client_id, "warnings": list(self.warnings)}


def round_to_step(x: Decimal, step: Decimal, up: bool) -> Decimal:
    return (x / step).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR) * step


def walk_book(levels: Sequence[tuple[Decimal, Decimal]], size: Decimal, limit_px: Decimal,
              is_buy: bool) -> tuple[Decimal, Decimal | None]:
    """What taking ``size`` from ``levels`` (best first) up to ``limit_px`` fills, and its average price."""
    left, cost = size, Decimal(0)
    for px, sz in levels:
        if left <= 0 or (px > limit_px if is_buy else px < limit_px):
            break
        take = min(sz, left)
        cost += take * px
        left -= take
    filled = size - left
    return filled, (cost / filled if filled > 0 else None)


def plan_order(leg: LegInput, pct: Decimal, band_bps: int, client_id: str) -> PlannedOrder | str:
    """The order reducing ``leg`` by ``pct`` %, or why there is none."""
    if leg.error:
        return f"{leg.account} {leg.coin}: {leg.error}"
    if leg.position == 0:
        return f"{leg.account} {leg.coin}: flat now"
    if leg.market is None or leg.book is None:
        return f"{leg.account} {leg.coin}: no market data"
    lot, tick = leg.market.lot, leg.market.tick
    whole = abs(leg.position)
    size = whole if pct == HUNDRED else min(whole, round_to_step(whole * pct / HUNDRED, lot, up=False))
    if size <= 0:
        return f"{leg.account} {leg.coin}: {pct}% of {dec(whole)} rounds to nothing (lot {dec(lot)})"
    book = leg.book
    if not book.bids or not book.asks:
        return f"{leg.account} {leg.coin}: one-sided or empty book, not priced"
    bid, ask = book.bids[0][0], book.asks[0][0]
    if bid >= ask:
        return f"{leg.account} {leg.coin}: crossed or locked book ({dec(bid)} / {dec(ask)}), not priced"
    is_buy = leg.position < 0
    mid = (bid + ask) / 2
    band = Decimal(band_bps) / BPS
    if is_buy:
        touch, limit = ask, round_to_step(ask * (1 + band), tick, up=False)
    else:
        touch, limit = bid, round_to_step(bid * (1 - band), tick, up=True)
    filled, avg = walk_book(book.asks if is_buy else book.bids, size, limit, is_buy)
    slip = None if avg is None else ((avg - mid) if is_buy else (mid - avg)) / mid * BPS
    warnings = []
    if filled < size:
        warnings.append(f"the book holds only {dec(filled)} within the band: the rest will not fill (IOC)")
    if size * touch < leg.market.min_notional:
        warnings.append(f"${dec((size * touch).quantize(Decimal('0.01')))} is under the venue's minimum "
                        f"${dec(leg.market.min_notional)}: it may refuse the order")
    return PlannedOrder(account=leg.account, venue=leg.venue, coin=leg.coin, position=leg.position, is_buy=is_buy,
                        size=size, limit_px=limit, touch_px=touch, mid=mid, est_filled=filled, est_avg_px=avg,
                        slippage_bps=None if slip is None else slip.quantize(Decimal("0.01")), band_bps=band_bps,
                        client_id=client_id, warnings=tuple(warnings))


# -- the desk: previews and the decisions on them ------------------------------------------------------

PENDING, EXECUTING, DONE, ABORTED, EXPIRED = "pending", "executing", "done", "aborted", "expired"


@dataclass
class Preview:
    id: str
    chat_id: int
    message_id: int
    command: Command
    orders: tuple[PlannedOrder, ...]
    skipped: tuple[str, ...]
    created: float
    expires: float
    dry_run: bool
    state: str = PENDING

    def text(self) -> str:
        c = self.command
        what = f"flatten {c.coin}" if c.name == "flatten" else f"reduce {c.coin} by {dec(c.pct)}%"
        lines = [f"PREVIEW {what}{' on ' + c.account if c.account else ''} — id {self.id}"]
        lines += [o.text() for o in self.orders]
        lines += [f"skipped: {s}" for s in self.skipped]
        if not self.orders:
            lines.append("nothing to send")
        elif self.state == DONE:
            lines.append("this command was executed already: Confirm sends nothing")
        else:
            if self.dry_run:
                lines.append("DRY-RUN: Confirm shows what would be sent and sends nothing.")
            lines.append(f"Confirm or Abort within {self.expires - self.created:g} s.")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"preview_id": self.id, "chat": self.chat_id, "message_id": self.message_id,
                "command": self.command.canonical(), "orders": [o.to_json() for o in self.orders],
                "skipped": list(self.skipped), "dry_run": self.dry_run}


@dataclass(frozen=True)
class Decision:
    ok: bool
    reason: str  # ok | not_allowed | unknown | wrong_chat | executed | aborted | expired | empty | rate_limited
    text: str
    preview: Preview | None = None


class ActionDesk:
    """Allow-list, previews, expiry, idempotency and the rate limit — no I/O, the clock passed in."""

    def __init__(self, allow_chats: Iterable[int], *, ttl_s: float = 60.0, rate_limit_s: float = 10.0,
                 band_bps: int = 50, dry_run: bool = False, executed: Iterable[str] = ()) -> None:
        self.allow = frozenset(allow_chats)
        self.ttl_s, self.rate_limit_s, self.band_bps, self.dry_run = ttl_s, rate_limit_s, band_bps, dry_run
        self.executed: set[str] = set(executed)  # preview ids confirmed (their orders sent or being sent)
        self.previews: dict[str, Preview] = {}
        self.last_exec: dict[int, float] = {}

    def allowed(self, chat_id: int) -> bool:
        return chat_id in self.allow

    def open_preview(self, chat_id: int, message_id: int, command: Command, legs: Sequence[LegInput],
                     now: float) -> Preview:
        if not self.allowed(chat_id) or not command.destructive or command.pct is None:
            raise ValueError("a preview is for a destructive command from an allowed chat")
        pid = preview_id(chat_id, message_id, command)
        known = self.previews.get(pid)
        if known is not None:  # the same update again: the same preview, nothing re-planned
            return known
        orders, skipped = [], []
        for leg in legs:
            planned = plan_order(leg, command.pct, self.band_bps, client_order_id(pid, leg.account, leg.coin))
            if isinstance(planned, str):
                skipped.append(planned)
            else:
                orders.append(planned)
        preview = Preview(pid, chat_id, message_id, command, tuple(orders), tuple(skipped), now, now + self.ttl_s,
                          self.dry_run, state=DONE if pid in self.executed else PENDING)
        self.previews[pid] = preview
        self._prune(now)
        return preview

    def _prune(self, now: float) -> None:
        keep = max(self.ttl_s * 10, 600.0)
        for pid, p in list(self.previews.items()):
            if now - p.expires > keep:
                del self.previews[pid]

    def _find(self, chat_id: int, pid: str) -> Decision | Preview:
        if not self.allowed(chat_id):
            return Decision(False, "not_allowed", "This chat is not allowed to trade here; nothing done.")
        p = self.previews.get(pid)
        if p is None:
            if pid in self.executed:
                return Decision(False, "executed", "Already executed: nothing sent again.")
            return Decision(False, "unknown", "Unknown or forgotten preview (expired, or from before a restart): "
                                              "nothing sent.")
        if p.chat_id != chat_id:
            return Decision(False, "wrong_chat", "That preview belongs to another chat: nothing sent.", p)
        return p

    def confirm(self, chat_id: int, pid: str, now: float) -> Decision:
        """Whether the preview's orders go now; an ``ok`` decision books them as executed at once."""
        found = self._find(chat_id, pid)
        if isinstance(found, Decision):
            return found
        p = found
        if p.state in (EXECUTING, DONE) or pid in self.executed:
            return Decision(False, "executed", "Already executed: nothing sent again.", p)
        if p.state == ABORTED:
            return Decision(False, "aborted", "That preview was aborted: nothing sent.", p)
        if p.state == EXPIRED or now >= p.expires:
            p.state = EXPIRED
            return Decision(False, "expired", f"That preview expired ({self.ttl_s:g} s): nothing sent. "
                                              "Send the command again for a fresh one.", p)
        if not p.orders:
            return Decision(False, "empty", "Nothing to send.", p)
        last = self.last_exec.get(chat_id)
        if last is not None and now - last < self.rate_limit_s:
            wait = self.rate_limit_s - (now - last)
            return Decision(False, "rate_limited", f"Rate limited: one confirmed action per {self.rate_limit_s:g} s "
                                                   f"per chat; tap Confirm again in {wait:.0f} s.", p)
        p.state = EXECUTING
        self.executed.add(pid)
        self.last_exec[chat_id] = now
        return Decision(True, "ok", "", p)

    def abort(self, chat_id: int, pid: str, now: float) -> Decision:
        found = self._find(chat_id, pid)
        if isinstance(found, Decision):
            return found
        p = found
        if p.state in (EXECUTING, DONE):
            return Decision(False, "executed", "Too late: that preview was executed already.", p)
        p.state = ABORTED
        return Decision(True, "ok", "Aborted: nothing sent.", p)

    def finish(self, pid: str) -> None:
        p = self.previews.get(pid)
        if p is not None:
            p.state = DONE


# -- the service: the desk plus venue reads and sends, no Telegram -------------------------------------


@dataclass(frozen=True)
class Reply:
    text: str
    buttons: tuple[tuple[str, str], ...] = ()  # (label, callback data)
    edit: str | None = None  # new text for the message the tapped button was on (its buttons removed)
    toast: str = ""  # the callback query's answer


def fmt_fixed(x: Decimal | None, places: int = 2) -> str:
    """For people: ``places`` decimals (``n/a`` for None)."""
    if x is None:
        return "n/a"
    text = format(x.quantize(Decimal(1).scaleb(-places)), "f")
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def status_text(snap: Snapshot | None, dry_run: bool) -> str:
    if snap is None:
        return "No read yet."
    lines = [f"perpbox positions{' (DRY-RUN)' if dry_run else ''}"]
    for a in snap.accounts:
        if a["open_error"]:
            lines.append(f"{a['account']}: NOT OPEN — {a['open_error']}")
            continue
        mr = a["margin_ratio"]
        ages = ", ".join(f"{k} {'never' if s['age_s'] is None else format(s['age_s'], '.1f') + ' s'}"
                         + (f" ({s['failures']} failed)" if s["failures"] else "") for k, s in a["streams"].items())
        equity = fmt_fixed(Decimal(a["equity"])) if a["equity"] else "n/a"
        ratio = fmt_fixed(Decimal(mr), 4) if mr is not None else "n/a"
        lines.append(f"{a['account']}: equity {equity}, margin ratio {ratio}; ages: {ages}")
    if snap.alerts:
        lines.append("Alerts firing:")
        for al in snap.alerts:
            measured = ", ".join(f"{k}={v}" for k, v in al["measured"].items() if v)
            lines.append(f"  {al['rule']} {al['market']} ({al['scope']}): {measured}")
    else:
        lines.append("No alert firing.")
    return "\n".join(lines)


def positions_text(snap: Snapshot | None) -> str:
    if snap is None:
        return "No read yet."
    if not snap.exposures:
        return "No open position."
    lines = []
    for e in snap.exposures:
        lines.append(f"{e.underlying}: net {dec(e.net_size)} (${fmt_fixed(e.net_usd)}), gross {dec(e.gross_size)}, "
                     f"imbalance {fmt_fixed(e.imbalance, 4)}, funding ${fmt_fixed(e.funding_usd_per_h, 4)}/h")
        for g in e.legs:
            dist = f"{fmt_fixed(g.liq_distance_pct)}%" if g.liq_distance_pct is not None else "n/a"
            lines.append(f"  {g.account} {g.coin}: {dec(g.size)} @ {dec(g.mark)}, liq distance {dist}, "
                         f"funding ${fmt_fixed(g.funding_usd_per_h, 4)}/h{' (stale)' if g.stale else ''}")
    return "\n".join(lines)


@dataclass
class ActionService:
    monitor: PositionsMonitor
    desk: ActionDesk
    audit: Callable[[dict[str, Any]], None] = field(default=lambda record: None)
    clock: Callable[[], float] = time.monotonic
    markets: dict[str, dict[str, MarketInfo]] = field(default_factory=dict)

    def _count(self, result: str) -> None:
        self.monitor.metrics.actions.labels(result).inc()

    async def on_message(self, chat_id: int, user_id: int | None, message_id: int, text: str) -> Reply | None:
        self.audit({"event": "command", "chat": chat_id, "user": user_id, "message_id": message_id, "text": text})
        if not self.desk.allowed(chat_id):
            self.audit({"event": "refused", "reason": "not_allowed", "chat": chat_id, "user": user_id,
                        "message_id": message_id})
            self._count("not_allowed")
            return Reply(f"This chat ({chat_id}) is not allowed to use this bot.")
        if not text.strip().startswith("/"):
            return None
        try:
            cmd = parse_command(text)
        except CommandError as e:
            return Reply(str(e))
        if cmd.name == "help":
            return Reply(HELP)
        if cmd.name == "status":
            return Reply(status_text(self.monitor.last, self.desk.dry_run))
        if cmd.name == "positions":
            return Reply(positions_text(self.monitor.last))
        if cmd.account is not None and cmd.account not in self.monitor.views:
            return Reply(f"No account {cmd.account!r}; accounts: {', '.join(self.monitor.views)}")
        underlying = underlying_of(cmd.coin, self.monitor.aliases)
        legs = await self._legs(underlying, cmd.account)
        if not legs:
            return Reply(f"No open {underlying} position{' on ' + cmd.account if cmd.account else ''} "
                         "(as of the last read).")
        preview = self.desk.open_preview(chat_id, message_id, cmd, legs, self.clock())
        self.audit({"event": "preview", **preview.to_json()})
        if preview.state != PENDING or not preview.orders:
            return Reply(preview.text())
        return Reply(preview.text(), buttons=(("Confirm", callback_data("confirm", preview.id)),
                                              ("Abort", callback_data("abort", preview.id))))

    async def _legs(self, underlying: str, account: str | None) -> list[LegInput]:
        out = []
        for view, coin in self.monitor.holders(underlying, account):
            venue = view.venue
            assert venue is not None
            try:
                acct = await venue.account()
                if view.name not in self.markets or coin not in self.markets[view.name]:
                    self.markets[view.name] = await venue.markets()
                book = await venue.book(coin)
            except Exception as e:  # a failed read: that leg is skipped, with the reason
                out.append(LegInput(view.name, view.venue_label, coin, Decimal(0), None, None,
                                    error=redact(f"read failed: {type(e).__name__}: {e}")[:200]))
                continue
            pos = acct.positions.get(coin)
            out.append(LegInput(view.name, view.venue_label, coin, pos.size if pos else Decimal(0), book,
                                self.markets[view.name].get(coin)))
        return out

    async def on_callback(self, chat_id: int, user_id: int | None, data: str | None) -> Reply:
        parsed = parse_callback(data)
        if parsed is None:
            self.audit({"event": "refused", "reason": "bad_button", "chat": chat_id, "user": user_id, "data": data})
            return Reply("Unknown button: nothing done.", toast="unknown button")
        action, pid = parsed
        self.audit({"event": action, "chat": chat_id, "user": user_id, "preview_id": pid})
        now = self.clock()
        decision = self.desk.confirm(chat_id, pid, now) if action == "confirm" else self.desk.abort(chat_id, pid, now)
        preview = decision.preview
        if action == "abort":
            self._count("aborted" if decision.ok else decision.reason)
            if not decision.ok:
                self.audit({"event": "refused", "reason": decision.reason, "chat": chat_id, "preview_id": pid})
            edit = None if preview is None or not decision.ok else preview.text() + "\n\nABORTED: nothing sent."
            return Reply(decision.text, edit=edit, toast=decision.text[:190])
        if not decision.ok:
            self._count(decision.reason)
            self.audit({"event": "refused", "reason": decision.reason, "chat": chat_id, "user": user_id,
                        "preview_id": pid})
            edit = preview.text() + f"\n\n{decision.text}" if preview is not None and decision.reason in (
                "expired",) else None
            return Reply(decision.text, edit=edit, toast=decision.text[:190])
        assert preview is not None
        self.audit({"event": "execute", **preview.to_json()})  # booked before anything is sent
        if preview.dry_run:
            self.desk.finish(pid)
            self._count("dry_run")
            self.audit({"event": "dry_run", "preview_id": pid, "orders": [o.to_json() for o in preview.orders]})
            text = "DRY-RUN: would send (nothing sent):\n" + "\n".join(
                f"{o.account}: {o.order_text()} client id {o.client_id}" for o in preview.orders)
            return Reply(text, edit=preview.text() + "\n\nDRY-RUN: nothing sent.", toast="dry-run: nothing sent")
        results = []
        for order in preview.orders:
            results.append(await self._execute(order))
        self.desk.finish(pid)
        self._count("sent")
        self.audit({"event": "sent", "preview_id": pid, "results": results})
        lines = [r["text"] for r in results]
        return Reply("\n".join(lines), edit=preview.text() + "\n\nCONFIRMED: sent.", toast="sent")

    async def _execute(self, order: PlannedOrder) -> dict[str, Any]:
        view = self.monitor.views[order.account]
        venue = view.venue
        assert venue is not None
        head = f"{order.account}: {order.order_text()}"
        out: dict[str, Any] = {"account": order.account, "coin": order.coin, "client_id": order.client_id,
                               "order": order.to_json()}
        try:
            known = await venue.order_status(order.coin, order.client_id)
        except Exception:  # could not tell: send; the venue refuses a duplicate id it knows
            known = OrderState(UNKNOWN, client_id=order.client_id)
        if known.status != UNKNOWN:
            out.update(sent=False, status=known.status, filled=dec(known.filled),
                       text=f"{head} → not sent: the venue already has this client id ({known.status}, "
                            f"filled {dec(known.filled)})")
            return out
        try:
            st = await venue.place(order.request())
        except Exception as e:
            st = OrderState(UNKNOWN, client_id=order.client_id, error=redact(f"{type(e).__name__}: {e}"))
        if st.status == UNKNOWN:
            try:
                st = await venue.order_status(order.coin, order.client_id)
            except Exception as e:
                st = OrderState(UNKNOWN, client_id=order.client_id, error=redact(f"{type(e).__name__}: {e}"))
        out.update(sent=True, status=st.status, order_id=st.order_id, filled=dec(st.filled), avg_px=dec(st.avg_px),
                   error=st.error)
        if st.status == "filled" or st.filled > 0:
            answer = f"filled {dec(st.filled)}" + (f" at avg {dec(st.avg_px)}" if st.avg_px is not None else "")
        elif st.status == "rejected":
            answer = f"refused by the venue: {st.error}"
        elif st.status == UNKNOWN:
            answer = f"unknown (ask /status; the venue did not settle it): {st.error}"
        else:
            answer = f"{st.status}, nothing filled within the band" + (f": {st.error}" if st.error else "")
        try:
            now = await venue.account()
            pos = now.positions.get(order.coin)
            answer += f"; position now {dec(pos.size) if pos else '0'}"
            out["position_after"] = dec(pos.size) if pos else "0"
        except Exception:  # the answer stands without it
            pass
        out["text"] = f"{head} → {answer}"
        return out


def executed_ids(records: Iterable[dict[str, Any]]) -> set[str]:
    """Preview ids an audit log shows as executed (so a restarted bot refuses them too)."""
    return {str(r["preview_id"]) for r in records if r.get("event") == "execute" and r.get("preview_id")}


# -- the transport: python-telegram-bot ----------------------------------------------------------------


class TelegramBot:
    """Long-polls the Bot API for commands and button taps and answers them through :class:`ActionService`.
    ``base_url`` as python-telegram-bot takes it (``…/bot``: the token is appended)."""

    def __init__(self, token: str, service: ActionService, base_url: str | None = None,
                 poll_timeout_s: int = 10) -> None:
        self._token = token
        self.service = service
        self.base_url = base_url
        self.poll_timeout_s = poll_timeout_s
        self._app: Any = None

    def _redact(self, text: str) -> str:
        return redact(text, [self._token])

    async def start(self) -> None:
        from telegram.ext import Application, CallbackQueryHandler, MessageHandler, filters

        builder = Application.builder().token(self._token)
        if self.base_url is not None:
            builder = builder.base_url(self.base_url)
        app = builder.build()
        app.add_handler(MessageHandler(filters.TEXT, self._on_message))
        app.add_handler(CallbackQueryHandler(self._on_callback))
        app.add_error_handler(self._on_error)
        try:
            await app.initialize()
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(timeout=self.poll_timeout_s, allowed_updates=["message", "callback_query"],
                                            error_callback=self._on_poll_error)
        except Exception as e:
            raise RuntimeError(self._redact(f"telegram: {type(e).__name__}: {e}")) from None
        self._app = app

    async def stop(self) -> None:
        app, self._app = self._app, None
        if app is None:
            return
        try:
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            await app.shutdown()
        except Exception as e:
            log.warning("telegram shutdown: %s", self._redact(f"{type(e).__name__}: {e}"))

    def _on_poll_error(self, error: Exception) -> None:
        log.warning("telegram polling: %s", self._redact(f"{type(error).__name__}: {error}"))

    async def _on_error(self, update: object, context: Any) -> None:
        err = getattr(context, "error", None)
        log.warning("telegram handler failed: %s", self._redact(f"{type(err).__name__}: {err}"))

    @staticmethod
    def _markup(buttons: tuple[tuple[str, str], ...]) -> Any:
        from telegram import InlineKeyboardButton, InlineKeyboardMarkup

        if not buttons:
            return None
        return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data) for label, data in buttons]])

    async def _on_message(self, update: Any, context: Any) -> None:
        msg, chat = update.effective_message, update.effective_chat
        if msg is None or chat is None or msg.text is None:
            return
        user = update.effective_user
        reply = await self.service.on_message(chat.id, user.id if user else None, msg.message_id, msg.text)
        if reply is not None:
            await msg.reply_text(reply.text[:TELEGRAM_MAX_TEXT], reply_markup=self._markup(reply.buttons))

    async def _on_callback(self, update: Any, context: Any) -> None:
        query = update.callback_query
        if query is None:
            return
        message = query.message
        chat_id = message.chat.id if message is not None else None
        user = query.from_user
        if chat_id is None:  # an inaccessible message: no chat to check against the allow-list
            await query.answer("not allowed")
            self.service.audit({"event": "refused", "reason": "no_chat", "user": user.id if user else None})
            return
        reply = await self.service.on_callback(chat_id, user.id if user else None, query.data)
        try:
            await query.answer(reply.toast or None)
        except Exception as e:  # a late answer is only cosmetic
            log.info("telegram answer: %s", self._redact(f"{type(e).__name__}: {e}"))
        if reply.edit is not None:
            try:
                await query.edit_message_text(reply.edit[:TELEGRAM_MAX_TEXT])
            except Exception as e:
                log.info("telegram edit: %s", self._redact(f"{type(e).__name__}: {e}"))
        await context.bot.send_message(chat_id=chat_id, text=reply.text[:TELEGRAM_MAX_TEXT])

"""The Telegram commands' decisions (perpbox.bots.telegram_actions), without Telegram: parsing, order
planning from a book (numbers by hand), deterministic ids, the allow-list, expiry, idempotency, the
rate limit, dry-run, and the service's venue calls against a fake venue."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_positions import FakeVenue  # tests/unit is on the path (rootdir import mode)

from perpbox.bots.positions import AuditLog, PositionsMonitor, Thresholds
from perpbox.bots.telegram_actions import (
    ActionDesk,
    ActionService,
    Command,
    CommandError,
    LegInput,
    PlannedOrder,
    client_order_id,
    executed_ids,
    parse_callback,
    parse_command,
    plan_order,
    preview_id,
    walk_book,
)
from perpbox.bots.venue import Book, MarketInfo, OrderState

D = Decimal
CHAT, OTHER = 4242, 777
MARKET = MarketInfo("BTC", D("0.1"), D("0.001"), D(10), 1, 20, 3)
BOOK = Book("BTC", bids=((D(100), D("0.01")), (D("99.9"), D("0.01")), (D(99), D(1))),
            asks=((D("100.2"), D("0.004")), (D("100.4"), D(1))), ts_ms=1)


# -- parsing ---------------------------------------------------------------------------------------------


def test_commands_parse() -> None:
    assert parse_command("/reduce BTC 50") == Command("reduce", "BTC", D(50), None)
    assert parse_command("/reduce@perpbox_bot xyz:SILVER 25% hl_b") == Command("reduce", "xyz:SILVER", D(25), "hl_b")
    assert parse_command("/flatten ETH") == Command("flatten", "ETH", D(100), None)
    assert parse_command("/STATUS") == Command("status")
    assert parse_command("/positions").name == "positions"
    for bad, why in (("/reduce BTC", "usage"), ("/reduce BTC 0", "PCT"), ("/reduce BTC 150", "PCT"),
                     ("/reduce BTC x", "not a number"), ("/reduce BTC nan", "PCT"), ("/flatten", "usage"),
                     ("/buy BTC 1", "unknown command"), ("/status now", "no arguments"), ("hello", "not a command")):
        with pytest.raises(CommandError, match=why):
            parse_command(bad)


def test_ids_are_deterministic_and_differ_by_chat_message_and_command() -> None:
    cmd = parse_command("/reduce BTC 50")
    pid = preview_id(CHAT, 10, cmd)
    assert pid == preview_id(CHAT, 10, parse_command("/reduce   BTC 50%"))  # the same command
    assert len({pid, preview_id(CHAT, 11, cmd), preview_id(OTHER, 10, cmd),
                preview_id(CHAT, 10, parse_command("/reduce BTC 25"))}) == 4
    cloid = client_order_id(pid, "a", "BTC")
    assert re.fullmatch(r"0x[0-9a-f]{32}", cloid) and cloid != client_order_id(pid, "b", "BTC")
    assert parse_callback(f"confirm:{pid}") == ("confirm", pid)
    assert parse_callback("sell:everything") is None and parse_callback(None) is None
    assert len(f"confirm:{pid}".encode()) <= 64  # Telegram's callback data limit


# -- planning --------------------------------------------------------------------------------------------


def test_walk_the_book_for_the_size() -> None:
    assert walk_book(BOOK.bids, D("0.015"), D("99.5"), is_buy=False) == (D("0.015"), (D("0.01") * 100 + D(
        "0.005") * D("99.9")) / D("0.015"))
    assert walk_book(BOOK.bids, D(5), D("99.5"), is_buy=False)[0] == D("0.02")  # the band stops it
    assert walk_book(BOOK.asks, D(1), D(100), is_buy=True) == (D(0), None)


def test_a_long_is_sold_half_inside_the_band() -> None:
    o = plan_order(LegInput("a", "v", "BTC", D("0.03"), BOOK, MARKET), D(50), 50, "0xabc")
    assert isinstance(o, PlannedOrder)
    assert (o.is_buy, o.size, o.touch_px) == (False, D("0.015"), D(100))
    assert o.limit_px == D("99.5")  # 100 × (1 − 0.005), on the 0.1 tick
    avg = (D(1) + D("0.005") * D("99.9")) / D("0.015")
    mid = (D(100) + D("100.2")) / 2
    assert o.est_avg_px == avg and o.est_filled == D("0.015")
    assert o.slippage_bps == ((mid - avg) / mid * 10_000).quantize(D("0.01"))
    req = o.request()
    assert (req.tif, req.reduce_only, req.client_id, req.px, req.size) == ("ioc", True, "0xabc", D("99.5"), D("0.015"))
    # and the minimum notional: $1.50 is under $10
    assert any("minimum" in w for w in o.warnings)


def test_a_short_is_bought_rounded_down_to_the_lot_and_the_band_is_rounded_inside() -> None:
    o = plan_order(LegInput("b", "v", "BTC", D("-0.0333"), BOOK, MARKET), D(50), 30, "0x1")
    assert isinstance(o, PlannedOrder)
    assert (o.is_buy, o.size) == (True, D("0.016"))  # 0.01665 → down to the 0.001 lot
    assert o.limit_px == D("100.5")  # 100.2 × 1.003 = 100.5006 → floored onto the tick
    assert o.est_filled == D("0.016") and any("only" not in w for w in o.warnings)
    flat = plan_order(LegInput("b", "v", "BTC", D("-0.0333"), BOOK, MARKET), D(100), 30, "0x1")
    assert isinstance(flat, PlannedOrder) and flat.size == D("0.0333")  # 100%: all of it, whatever the lot


def test_unpriceable_legs_are_skipped_with_the_reason() -> None:
    def why(leg: LegInput, pct: str = "50") -> str:
        out = plan_order(leg, D(pct), 50, "0x1")
        assert isinstance(out, str)
        return out

    assert "rounds to nothing" in why(LegInput("a", "v", "BTC", D("0.001"), BOOK, MARKET), "10")
    assert "one-sided" in why(LegInput("a", "v", "BTC", D(1), Book("BTC", BOOK.bids, (), 1), MARKET))
    crossed = Book("BTC", ((D(101), D(1)),), ((D(100), D(1)),), 1)
    assert "crossed" in why(LegInput("a", "v", "BTC", D(1), crossed, MARKET))
    assert "flat now" in why(LegInput("a", "v", "BTC", D(0), BOOK, MARKET))
    assert "read failed" in why(LegInput("a", "v", "BTC", D(0), None, None, error="read failed: boom"))


def test_what_the_band_cannot_fill_is_said() -> None:
    o = plan_order(LegInput("a", "v", "BTC", D(2), BOOK, MARKET), D(100), 50, "0x1")
    assert isinstance(o, PlannedOrder) and o.est_filled == D("0.02")
    assert any("only 0.02 within the band" in w for w in o.warnings)


# -- the desk --------------------------------------------------------------------------------------------

LEGS = [LegInput("a", "v", "BTC", D("0.03"), BOOK, MARKET)]


def _desk(**kw: Any) -> ActionDesk:
    return ActionDesk([CHAT], **kw)


def test_confirm_once_then_nothing() -> None:
    desk = _desk()
    p = desk.open_preview(CHAT, 10, parse_command("/reduce BTC 50"), LEGS, now=0)
    assert p.state == "pending" and len(p.orders) == 1
    assert p.orders[0].client_id == client_order_id(p.id, "a", "BTC")
    first = desk.confirm(CHAT, p.id, now=1)
    assert first.ok and p.id in desk.executed
    for t in (1, 2, 100):  # a double tap, a later one
        again = desk.confirm(CHAT, p.id, now=t)
        assert (again.ok, again.reason) == (False, "executed")
    # the same update delivered again: the same preview, still executed
    assert desk.open_preview(CHAT, 10, parse_command("/reduce BTC 50"), LEGS, now=3) is p


def test_a_restart_remembers_what_was_executed(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "a.jsonl")
    pid = preview_id(CHAT, 10, parse_command("/reduce BTC 50"))
    audit({"event": "execute", "preview_id": pid})
    desk = _desk(executed=executed_ids(audit.records()))
    p = desk.open_preview(CHAT, 10, parse_command("/reduce BTC 50"), LEGS, now=0)
    assert p.state == "done" and "executed already" in p.text()
    assert desk.confirm(CHAT, p.id, now=1).reason == "executed"


def test_only_allowed_chats_and_only_their_own_previews() -> None:
    desk = _desk()
    with pytest.raises(ValueError):
        desk.open_preview(OTHER, 10, parse_command("/reduce BTC 50"), LEGS, now=0)
    p = desk.open_preview(CHAT, 10, parse_command("/reduce BTC 50"), LEGS, now=0)
    assert desk.confirm(OTHER, p.id, now=1).reason == "not_allowed"
    two = ActionDesk([CHAT, OTHER])
    q = two.open_preview(CHAT, 10, parse_command("/reduce BTC 50"), LEGS, now=0)
    assert two.confirm(OTHER, q.id, now=1).reason == "wrong_chat"
    assert two.abort(OTHER, q.id, now=1).reason == "wrong_chat"
    assert desk.confirm(CHAT, "feedfeed", now=1).reason == "unknown"


def test_expiry_abort_and_the_rate_limit() -> None:
    desk = _desk(ttl_s=60, rate_limit_s=10)
    p = desk.open_preview(CHAT, 1, parse_command("/reduce BTC 50"), LEGS, now=0)
    assert desk.confirm(CHAT, p.id, now=60).reason == "expired"
    assert desk.confirm(CHAT, p.id, now=1).reason == "expired"  # stays expired
    q = desk.open_preview(CHAT, 2, parse_command("/reduce BTC 50"), LEGS, now=100)
    assert desk.abort(CHAT, q.id, now=101).ok
    assert desk.confirm(CHAT, q.id, now=102).reason == "aborted"
    r = desk.open_preview(CHAT, 3, parse_command("/reduce BTC 50"), LEGS, now=200)
    s = desk.open_preview(CHAT, 4, parse_command("/flatten BTC"), LEGS, now=200)
    assert desk.confirm(CHAT, r.id, now=201).ok
    limited = desk.confirm(CHAT, s.id, now=205)
    assert limited.reason == "rate_limited" and "6 s" in limited.text
    assert desk.confirm(CHAT, s.id, now=211).ok  # the preview waited; now it goes
    assert desk.abort(CHAT, s.id, now=212).reason == "executed"


# -- the service -----------------------------------------------------------------------------------------


def _service(tmp_path: Path, dry_run: bool = False, **desk: Any) -> tuple[ActionService, FakeVenue, FakeVenue,
                                                                            AuditLog]:
    a = FakeVenue("a", positions={"BTC": D("0.3")}, marks={"BTC": D(100)}, depth=D(10))
    b = FakeVenue("b", positions={"BTC": D("-0.1")}, marks={"BTC": D(100)}, depth=D(10))
    audit = AuditLog(tmp_path / "audit.jsonl")
    monitor = PositionsMonitor({"a": ("fake:a", a), "b": ("fake:b", b)}, Thresholds())
    service = ActionService(monitor, ActionDesk([CHAT], dry_run=dry_run, **desk), audit=audit, clock=lambda: 0.0)
    asyncio.run(monitor.step())
    return service, a, b, audit


def _confirm_data(reply: Any) -> str:
    (confirm, abort) = reply.buttons
    assert confirm[0] == "Confirm" and abort[0] == "Abort"
    return str(confirm[1])


def test_reduce_previews_then_confirm_sends_reduce_only_iocs_once(tmp_path: Path) -> None:
    service, a, b, audit = _service(tmp_path)

    async def go() -> None:
        reply = await service.on_message(CHAT, 1, 10, "/reduce BTC 50")
        assert reply is not None and "PREVIEW reduce BTC by 50%" in reply.text
        assert "a (fake:a): long 0.3 BTC" in reply.text and "SELL 0.15 BTC reduce-only IOC limit 98.6" in reply.text
        assert "b (fake:b): short 0.1 BTC" in reply.text and "BUY 0.05 BTC" in reply.text
        data = _confirm_data(reply)
        done = await service.on_callback(CHAT, 1, data)
        assert "filled 0.15" in done.text and "position now 0.15" in done.text
        assert "position now -0.05" in done.text
        again = await service.on_callback(CHAT, 1, data)
        assert "Already executed" in again.text
        # the same update re-delivered: no second preview to confirm
        redelivered = await service.on_message(CHAT, 1, 10, "/reduce BTC 50")
        assert redelivered is not None and not redelivered.buttons

    asyncio.run(go())
    assert [(o.coin, o.is_buy, o.size, o.tif, o.reduce_only) for o in a.placed] == [("BTC", False, D("0.15"), "ioc",
                                                                                      True)]
    assert [(o.is_buy, o.size) for o in b.placed] == [(True, D("0.05"))]
    assert a.positions["BTC"] == D("0.15") and b.positions["BTC"] == D("-0.05")
    events = [r["event"] for r in audit.records()]
    assert events == ["command", "preview", "confirm", "execute", "sent", "confirm", "refused", "command", "preview"]


def test_the_venue_knowing_the_client_id_means_nothing_is_sent_again(tmp_path: Path) -> None:
    service, a, _, _ = _service(tmp_path)

    async def go() -> str:
        reply = await service.on_message(CHAT, 1, 10, "/reduce BTC 50 a")
        assert reply is not None
        pid = _confirm_data(reply).split(":")[1]
        a.known_cloids[client_order_id(pid, "a", "BTC")] = OrderState("filled", filled=D("0.15"))
        return (await service.on_callback(CHAT, 1, _confirm_data(reply))).text

    text = asyncio.run(go())
    assert "not sent: the venue already has this client id" in text and a.placed == []


def test_refusals_abort_and_dry_run_send_nothing(tmp_path: Path) -> None:
    service, a, b, audit = _service(tmp_path)

    async def go() -> None:
        refused = await service.on_message(OTHER, 9, 1, "/flatten BTC")
        assert refused is not None and "not allowed" in refused.text and not refused.buttons
        assert "not allowed" in (await service.on_message(OTHER, 9, 2, "/status") or refused).text
        reply = await service.on_message(CHAT, 1, 11, "/flatten BTC")
        assert reply is not None
        data = _confirm_data(reply)
        stranger = await service.on_callback(OTHER, 9, data)
        assert "not allowed" in stranger.text
        aborted = await service.on_callback(CHAT, 1, data.replace("confirm:", "abort:"))
        assert aborted.text == "Aborted: nothing sent." and aborted.edit is not None
        assert "Already" not in (await service.on_callback(CHAT, 1, data)).text
        bogus = await service.on_callback(CHAT, 1, "sell:all")
        assert "Unknown button" in bogus.text
        nothing = await service.on_message(CHAT, 1, 12, "/reduce ETH 50")
        assert nothing is not None and "No open ETH position" in nothing.text

    asyncio.run(go())
    assert a.placed == [] and b.placed == []
    refusals = [r for r in audit.records() if r["event"] == "refused"]
    assert [r["reason"] for r in refusals] == ["not_allowed", "not_allowed", "not_allowed", "aborted", "bad_button"]

    dry, a2, b2, audit2 = _service(tmp_path / "dry" if (tmp_path / "dry").mkdir() is None else tmp_path, True)

    async def go_dry() -> str:
        reply = await dry.on_message(CHAT, 1, 10, "/reduce BTC 50")
        assert reply is not None and "DRY-RUN" in reply.text
        return (await dry.on_callback(CHAT, 1, _confirm_data(reply))).text

    text = asyncio.run(go_dry())
    assert "DRY-RUN: would send (nothing sent)" in text and "SELL 0.15 BTC reduce-only IOC limit 98.6" in text
    assert a2.placed == [] and b2.placed == []
    assert any(r["event"] == "dry_run" for r in audit2.records())


def test_status_and_positions_answer_from_the_last_read(tmp_path: Path) -> None:
    service, _, _, _ = _service(tmp_path)

    async def go() -> tuple[str, str]:
        s = await service.on_message(CHAT, 1, 1, "/status")
        p = await service.on_message(CHAT, 1, 2, "/positions")
        assert s is not None and p is not None
        return s.text, p.text

    status, positions = asyncio.run(go())
    assert "a: equity 10000.00, margin ratio 0.0100" in status and "account 0.0 s" in status
    assert "BTC: net 0.2" in positions and "imbalance 0.5000" in positions
    assert "a BTC: 0.3 @ 100" in positions

"""``perpbox positions`` between two ``perpbox serve`` instances (simulated makers, dev faults): the
snapshot's numbers against positions opened by hand, the imbalance alert after its hold time, a
position change without a fill (the ``zero_positions`` fault) alerting where one with a fill does
not, and the Telegram ``/reduce`` flow end to end against a fake Bot API server — preview, Confirm
halving the positions on the venues, a second Confirm trading nothing, a stranger refused, Abort,
expiry and dry-run sending nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from eth_account import Account

from perpbox.bots.hyperliquid_venue import HyperliquidVenue
from perpbox.bots.venue import OrderRequest

from .conftest import Server, free_port, wait_until

D = Decimal
TOKEN = "987654:FAKE-token-for-the-tests-only"
CHAT, STRANGER = 4242, 777
# the lead registers the command in perpbox.cli; until then the tests build their own typer app
CLI = ("import typer\nfrom perpbox.cli.positions import register\napp = typer.Typer()\n"
       "app.callback()(lambda: None)\nregister(app)\napp()\n")


@pytest.fixture(scope="module")
def venues(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    root = tmp_path_factory.mktemp("positions")
    a = Server(root / "a", "--seed", "9", "--dev-faults").start()
    b = Server(root / "b", "--seed", "9", "--dev-faults").start()
    yield a, b
    a.stop()
    b.stop()


class FakeBotApi:
    """A Bot API server: answers getMe, getUpdates (long polling the updates the test pushes),
    sendMessage, editMessageText, answerCallbackQuery; also records webhook POSTs to /hook."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []  # method, body, result
        self.updates: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.next_id = 5000
        self.polls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if "json" in self.headers.get("Content-Type", ""):
                    body: dict[str, Any] = json.loads(raw or b"{}")
                else:
                    body = dict(parse_qsl(raw.decode()))
                status, answer = outer.answer(self.path, body)
                out = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a long poll given up on
                    self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _message(self, chat: int, text: str, message_id: int | None = None, bot: bool = True) -> dict[str, Any]:
        if message_id is None:
            self.next_id += 1
            message_id = self.next_id
        sender = {"id": 1, "is_bot": True, "first_name": "perpbox"} if bot else {
            "id": chat, "is_bot": False, "first_name": "trader"}
        return {"message_id": message_id, "date": int(time.time()), "chat": {"id": chat, "type": "private"},
                "from": sender, "text": text}

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path == "/hook":
            with self.cond:
                self.calls.append(("hook", body, None))
            return 200, {"ok": True}
        prefix = f"/bot{TOKEN}/"
        if not path.startswith(prefix):
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        method = path[len(prefix):]
        result: Any = True
        if method == "getMe":
            result = {"id": 1, "is_bot": True, "first_name": "perpbox", "username": "perpbox_bot"}
        elif method == "getUpdates":
            self.polls += 1
            offset = int(body.get("offset", 0) or 0)
            deadline = time.monotonic() + min(float(body.get("timeout", 0) or 0), 1.0)
            with self.cond:
                while True:
                    result = [u for u in self.updates if u["update_id"] >= offset]
                    left = deadline - time.monotonic()
                    if result or left <= 0:
                        break
                    self.cond.wait(left)
        elif method in ("sendMessage", "editMessageText"):
            with self.cond:
                mid = int(body["message_id"]) if method == "editMessageText" else None
                result = self._message(int(body["chat_id"]), body["text"], mid)
        if method != "getUpdates":
            with self.cond:
                self.calls.append((method, body, result if isinstance(result, dict) else None))
                self.cond.notify_all()
        return 200, {"ok": True, "result": result}

    def _push(self, update: dict[str, Any]) -> None:
        with self.cond:
            update["update_id"] = len(self.updates) + 1
            self.updates.append(update)
            self.cond.notify_all()

    def command(self, chat: int, text: str) -> int:
        with self.cond:
            msg = self._message(chat, text, bot=False)
        self._push({"message": msg})
        return int(msg["message_id"])

    def tap(self, chat: int, message_id: int, data: str) -> None:
        cb = {"id": f"cb{len(self.updates)}", "from": {"id": chat, "is_bot": False, "first_name": "trader"},
              "chat_instance": "ci", "data": data, "message": self._message(chat, "preview", message_id)}
        self._push({"callback_query": cb})

    def sent(self, chat: int | None = None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        with self.cond:
            return [(b, r) for m, b, r in self.calls if m == "sendMessage" and r is not None
                    and (chat is None or int(b["chat_id"]) == chat)]

    def reply_after(self, count: int, chat: int = CHAT, contains: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
        """The first message sent to ``chat`` after the first ``count`` ones that contains ``contains``."""
        def found() -> tuple[dict[str, Any], dict[str, Any]] | None:
            return next(((b, r) for b, r in self.sent(chat)[count:] if contains in b["text"]), None)
        return wait_until(found, timeout=60)  # type: ignore[no-any-return]

    def hooks(self) -> list[dict[str, Any]]:
        with self.cond:
            return [b for m, b, _ in self.calls if m == "hook"]


@pytest.fixture
def bot_api() -> Iterator[FakeBotApi]:
    api = FakeBotApi()
    yield api
    api.server.shutdown()


def _position(server: Server, user: str, coin: str = "BTC") -> Decimal:
    state = server.info({"type": "clearinghouseState", "user": user})
    for row in state["assetPositions"]:  # type: ignore[index]
        if row["position"]["coin"] == coin:
            return D(row["position"]["szi"])
    return D(0)


def _fills(server: Server, user: str) -> int:
    return len(server.info({"type": "userFills", "user": user}))  # type: ignore[arg-type]


async def _ioc(url: str, key: str, is_buy: bool, size: str) -> None:
    venue = HyperliquidVenue(url, key)
    try:
        book = await venue.book("BTC")
        px = (book.asks[0][0] * D("1.01") if is_buy else book.bids[0][0] * D("0.99")).quantize(D(1))
        st = await venue.place(OrderRequest("BTC", is_buy, D(size), px, tif="ioc"))
        assert st.status == "filled" and st.filled == D(size), st
    finally:
        await venue.aclose()


def _accounts(a: Server, b: Server, tmp_path: Path, long_a: str = "0.03", short_b: str = "0.01") -> dict[str, Any]:
    """Account m on ``a`` long ``long_a`` BTC, account t on ``b`` short ``short_b``; the accounts file."""
    m, t = Account.create(), Account.create()
    a.fund(m.address, "100000")
    b.fund(t.address, "100000")
    (tmp_path / "m.key").write_text(m.key.hex())
    (tmp_path / "t.key").write_text(t.key.hex())
    (tmp_path / "accounts.toml").write_text(f'[m]\nvenue = "hyperliquid:{a.url}"\nkey_file = "m.key"\n'
                                            f'[t]\nvenue = "hyperliquid:{b.url}"\nkey_file = "t.key"\n')
    asyncio.run(_ioc(a.url, m.key.hex(), True, long_a))
    asyncio.run(_ioc(b.url, t.key.hex(), False, short_b))
    return {"m": m.address.lower(), "t": t.address.lower(), "m_key": m.key.hex(), "accounts": tmp_path /
            "accounts.toml"}


def _cmd(accounts: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", CLI, "positions", "--accounts", str(accounts), *extra]


def _live(accounts: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(_cmd(accounts, "--interval", "0.3", *extra), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    return text


def _metric(port: int, start: str) -> float | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    return next((float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(start)), None)


def _rounds(port: int) -> float:
    return _metric(port, "perpbox_positions_rounds_total") or 0.0


def _funding(server: Server) -> Decimal:
    meta, ctxs = server.info({"type": "metaAndAssetCtxs"})  # type: ignore[misc]
    i = [u["name"] for u in meta["universe"]].index("BTC")
    return D(ctxs[i]["funding"])


def _audit(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- the snapshot and the alerts ---------------------------------------------------------------------------


def test_once_json_the_numbers_by_hand(venues: tuple[Server, Server], tmp_path: Path) -> None:
    a, b = venues
    acc = _accounts(a, b, tmp_path)
    rates_before = {_funding(a), _funding(b)}
    out = subprocess.run(_cmd(acc["accounts"], "--once", "--json"), capture_output=True, timeout=120)
    rates_after = {_funding(a), _funding(b)}
    assert out.returncode == 1, out.stderr.decode()[-3000:]  # the imbalance fires: exit 1
    snap = json.loads(out.stdout)
    (btc,) = snap["underlyings"]
    assert btc["underlying"] == "BTC"
    # opened by hand: +0.03 on m, −0.01 on t
    assert (D(btc["net_size"]), D(btc["gross_size"]), D(btc["imbalance"])) == (D("0.02"), D("0.04"), D("0.5"))
    legs = {g["account"]: g for g in btc["legs"]}
    assert (D(legs["m"]["size"]), D(legs["t"]["size"])) == (D("0.03"), D("-0.01"))
    assert D(btc["net_usd"]) == sum(D(g["size"]) * D(g["mark"]) for g in legs.values())
    for g in legs.values():
        assert D(g["usd"]) == D(g["size"]) * D(g["mark"])
        assert D(g["funding_hourly"]) in rates_before | rates_after  # Hyperliquid's rate is hourly
        assert D(g["funding_usd_per_h"]) == -D(g["size"]) * D(g["mark"]) * D(g["funding_hourly"])
    assert D(btc["funding_usd_per_h"]) == sum(D(g["funding_usd_per_h"]) for g in legs.values())
    accounts = {x["account"]: x for x in snap["accounts"]}
    for x in accounts.values():
        assert D(x["margin_ratio"]) == D(x["maintenance_margin"]) / D(x["equity"])
        assert x["streams"]["account"]["failures"] == 0 and x["streams"]["account"]["age_s"] is not None
    t_leg = legs["t"]
    liq = D(t_leg["liquidation_px"])
    assert D(t_leg["liq_distance_pct"]) == abs(D(t_leg["mark"]) - liq) / D(t_leg["mark"]) * 100
    assert [x["rule"] for x in snap["alerts"]] == ["imbalance"]
    calm = subprocess.run(_cmd(acc["accounts"], "--once", "--json", "--imbalance-max", "0.6"), capture_output=True,
                          timeout=120)
    assert calm.returncode == 0 and json.loads(calm.stdout)["alerts"] == []


def test_the_imbalance_alert_after_its_hold_time(venues: tuple[Server, Server], tmp_path: Path,
                                                 bot_api: FakeBotApi) -> None:
    a, b = venues
    acc = _accounts(a, b, tmp_path)
    port = free_port()
    proc = _live(acc["accounts"], "--imbalance-hold-s", "2", "--webhook", bot_api.url + "/hook", "--metrics-port",
                 str(port), "--audit-log", str(tmp_path / "audit.jsonl"), "--telegram-token", TOKEN,
                 "--telegram-chat", str(CHAT), "--telegram-api", bot_api.url + "/bot")  # alerts only: no --allow-chat
    try:
        wait_until(lambda: _metric(port, 'perpbox_positions_net_size{underlying="BTC"}') == 0.02, timeout=60)
        assert _metric(port, 'perpbox_positions_imbalance{underlying="BTC"}') == 0.5
        assert _metric(port, 'perpbox_positions_size{account="t",coin="BTC",underlying="BTC"}') == -0.01
        assert _metric(port, 'perpbox_positions_stream_age_seconds{account="m",kind="account"}') is not None
        hook = wait_until(lambda: next((h for h in bot_api.hooks() if h["rule"] == "imbalance"), None), timeout=60)
        assert wait_until(lambda: _metric(port, 'perpbox_positions_alerts_active{rule="imbalance"}') == 1.0)
        message = wait_until(lambda: next((m for m, _ in bot_api.sent(CHAT) if "rule imbalance" in m["text"]), None))
    finally:
        _stop(proc)
    assert (hook["market"], hook["level"], hook["previous_level"], hook["action"]) == ("BTC", 1, 0, None)
    assert hook["measured"]["imbalance"] == "0.5" and hook["measured"]["net_size"] == "0.02"
    assert float(hook["measured"]["held_s"]) >= 2  # held at least its hold time before it fired
    assert "rule imbalance" in hook["text"]
    assert message["text"] == hook["text"]  # the same alert, as Telegram text
    assert bot_api.polls == 0  # no --allow-chat: no commands taken
    assert [r["rule"] for r in _audit(tmp_path / "audit.jsonl") if r["event"] == "alert"] == ["imbalance"]


def test_a_position_change_without_a_fill_alerts_and_one_with_a_fill_does_not(
        venues: tuple[Server, Server], tmp_path: Path, bot_api: FakeBotApi) -> None:
    a, b = venues
    acc = _accounts(a, b, tmp_path)
    port = free_port()
    proc = _live(acc["accounts"], "--unexplained-hold-s", "1", "--imbalance-max", "1", "--webhook",
                 bot_api.url + "/hook", "--metrics-port", str(port))

    def unexplained() -> list[dict[str, Any]]:
        return [h for h in bot_api.hooks() if h["rule"] == "unexplained_position"]

    try:
        wait_until(lambda: _rounds(port) >= 3, timeout=60)
        # a second client trading with the same key: the monitor sees the fill, no alert
        asyncio.run(_ioc(a.url, acc["m_key"], True, "0.005"))
        wait_until(lambda: _metric(port, 'perpbox_positions_size{account="m",coin="BTC",underlying="BTC"}')
                   == 0.035, timeout=60)
        seen = _rounds(port)
        wait_until(lambda: _rounds(port) >= seen + 8, timeout=60)  # well past the hold time
        assert unexplained() == []
        # the reported-zero bug: the venue shows no position, and no fill says why
        r = httpx.post(a.url + "/dev/fault", json={"kind": "zero_positions", "seconds": 4}, timeout=30)
        assert r.status_code == 200, r.text
        raised = wait_until(lambda: next((h for h in unexplained() if h["level"] == 1), None), timeout=60)
        cleared = wait_until(lambda: next((h for h in unexplained() if h["level"] == 0), None), timeout=60)
    finally:
        _stop(proc)
    assert raised["market"] == "BTC"
    assert (raised["measured"]["account"], raised["measured"]["coin"]) == ("m", "BTC")
    assert D(raised["measured"]["unexplained"]) == D("-0.035") and raised["measured"]["venue_size"] == "0"
    assert cleared["measured"]["unexplained"] == "0"  # the venue agrees with the fills again
    assert len(unexplained()) == 2


# -- Telegram --------------------------------------------------------------------------------------------


def _telegram(accounts: Path, api: FakeBotApi, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = _live(accounts, "--telegram-token", TOKEN, "--telegram-api", api.url + "/bot", "--allow-chat", str(CHAT),
                 "--audit-log", str(tmp_path / "audit.jsonl"), "--metrics-port", str(port), "--imbalance-max", "1",
                 *extra)
    wait_until(lambda: _metric(port, 'perpbox_positions_net_size{underlying="BTC"}') is not None, timeout=60)
    wait_until(lambda: any(m == "getMe" for m, _, _ in api.calls), timeout=60)
    return proc, port


def _preview(api: FakeBotApi, text: str) -> tuple[str, int, str, str]:
    """Send ``text``; the preview's text, message id and its Confirm and Abort data."""
    before = len(api.sent(CHAT))
    api.command(CHAT, text)
    body, result = api.reply_after(before, contains="PREVIEW")
    markup = json.loads(body["reply_markup"])
    (confirm, abort), = markup["inline_keyboard"]
    assert (confirm["text"], abort["text"]) == ("Confirm", "Abort")
    return body["text"], int(result["message_id"]), confirm["callback_data"], abort["callback_data"]


def _tap(api: FakeBotApi, message_id: int, data: str, contains: str) -> str:
    before = len(api.sent(CHAT))
    api.tap(CHAT, message_id, data)
    return str(api.reply_after(before, contains=contains)[0]["text"])


def test_reduce_by_half_from_telegram(venues: tuple[Server, Server], tmp_path: Path, bot_api: FakeBotApi) -> None:
    a, b = venues
    acc = _accounts(a, b, tmp_path)
    proc, _ = _telegram(acc["accounts"], bot_api, tmp_path)
    try:
        n = len(bot_api.sent(CHAT))
        bot_api.command(CHAT, "/status")
        assert "margin ratio" in bot_api.reply_after(n, contains="perpbox positions")[0]["text"]
        n = len(bot_api.sent(CHAT))
        bot_api.command(CHAT, "/positions")
        assert "BTC: net 0.02" in bot_api.reply_after(n, contains="BTC")[0]["text"]

        text, mid, confirm, _ = _preview(bot_api, "/reduce BTC 50")
        assert "m (hyperliquid:" in text and "long 0.03 BTC" in text and "SELL 0.015 BTC reduce-only IOC" in text
        assert "t (hyperliquid:" in text and "short 0.01 BTC" in text and "BUY 0.005 BTC reduce-only IOC" in text
        assert "50 bps through the bid" in text and "slippage" in text
        assert _position(a, acc["m"]) == D("0.03")  # a preview trades nothing
        done = _tap(bot_api, mid, confirm, "filled")
        assert "m: SELL 0.015 BTC" in done and "t: BUY 0.005 BTC" in done
        assert _position(a, acc["m"]) == D("0.015") and _position(b, acc["t"]) == D("-0.005")  # halved, exactly
        fills_m, fills_t = _fills(a, acc["m"]), _fills(b, acc["t"])

        again = _tap(bot_api, mid, confirm, "Already executed")
        assert "nothing sent" in again

        n = len(bot_api.sent(STRANGER))
        bot_api.command(STRANGER, "/reduce BTC 50")
        refusal = bot_api.reply_after(n, chat=STRANGER, contains="not allowed")[0]
        assert "reply_markup" not in refusal

        text2, mid2, confirm2, abort2 = _preview(bot_api, "/reduce BTC 50")
        assert "SELL 0.0075 BTC" in text2 and "BUY 0.0025 BTC" in text2  # half of what is left
        assert _tap(bot_api, mid2, abort2, "Aborted") == "Aborted: nothing sent."
        assert "aborted: nothing sent" in _tap(bot_api, mid2, confirm2, "aborted")
        assert _position(a, acc["m"]) == D("0.015") and _position(b, acc["t"]) == D("-0.005")
        assert (_fills(a, acc["m"]), _fills(b, acc["t"])) == (fills_m, fills_t)  # nothing traded since
        err = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    records = _audit(tmp_path / "audit.jsonl")
    events = [r["event"] for r in records]
    for event in ("command", "preview", "confirm", "execute", "sent", "refused", "abort"):
        assert event in events
    (sent,) = [r for r in records if r["event"] == "sent"]
    assert {(x["account"], x["status"], x["filled"]) for x in sent["results"]} == {("m", "filled", "0.015"),
                                                                                  ("t", "filled", "0.005")}
    cloids = {x["client_id"] for x in sent["results"]}
    assert all(c.startswith("0x") and len(c) == 34 for c in cloids)
    orders = a.info({"type": "historicalOrders", "user": acc["m"]})
    assert [o["order"]["cloid"] for o in orders if o["order"].get("cloid")] == [  # type: ignore[union-attr]
        x["client_id"] for x in sent["results"] if x["account"] == "m"]  # one order with the cloid, not two
    reasons = [r["reason"] for r in records if r["event"] == "refused"]
    assert reasons == ["executed", "not_allowed", "aborted"]
    assert any(r["event"] == "command" and r["chat"] == STRANGER for r in records)
    log_text = (tmp_path / "audit.jsonl").read_text() + err
    assert TOKEN not in log_text and TOKEN.split(":")[1] not in log_text


def test_an_expired_preview_sends_nothing(venues: tuple[Server, Server], tmp_path: Path,
                                          bot_api: FakeBotApi) -> None:
    a, b = venues
    acc = _accounts(a, b, tmp_path)
    proc, _ = _telegram(acc["accounts"], bot_api, tmp_path, "--preview-ttl-s", "1")
    try:
        _, mid, confirm, _ = _preview(bot_api, "/flatten BTC")
        time.sleep(1.5)  # past the preview's life (not a timing assert: any longer wait is the same)
        assert "expired" in _tap(bot_api, mid, confirm, "expired")
        _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _position(a, acc["m"]) == D("0.03") and _position(b, acc["t"]) == D("-0.01")
    assert [r["reason"] for r in _audit(tmp_path / "audit.jsonl") if r["event"] == "refused"] == ["expired"]


def test_dry_run_shows_the_orders_and_sends_nothing(venues: tuple[Server, Server], tmp_path: Path,
                                                    bot_api: FakeBotApi) -> None:
    a, b = venues
    acc = _accounts(a, b, tmp_path)
    proc, _ = _telegram(acc["accounts"], bot_api, tmp_path, "--dry-run")
    try:
        text, mid, confirm, _ = _preview(bot_api, "/reduce BTC 50 m")
        assert "DRY-RUN" in text and "SELL 0.015 BTC" in text and "t (" not in text  # only account m
        shown = _tap(bot_api, mid, confirm, "DRY-RUN: would send")
        assert "m: SELL 0.015 BTC reduce-only IOC limit" in shown and "client id 0x" in shown
        _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _position(a, acc["m"]) == D("0.03") and _position(b, acc["t"]) == D("-0.01")
    assert a.info({"type": "historicalOrders", "user": acc["m"]}) and all(
        not o["order"].get("cloid") for o in a.info({"type": "historicalOrders", "user": acc["m"]}))  # type: ignore
    (dry,) = [r for r in _audit(tmp_path / "audit.jsonl") if r["event"] == "dry_run"]
    assert dry["orders"][0]["size"] == "0.015" and dry["orders"][0]["reduce_only"] is True

"""perpbox.monitor.alerts: the alert's text and payload, the webhook and Telegram sinks against local servers
this test runs (nothing leaves 127.0.0.1), and the Alerter's retries, queues and redaction.

Plain functions around asyncio.run (no pytest-asyncio).  No timing asserts: ordering is shown with events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from perpbox.monitor.alerts import Alert, Alerter, DeliveryError, TelegramSink, WebhookSink, redact

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # the Bot API's documented token shape, not a real one
CHAT = 4242
WAIT = 10.0  # upper bound on any wait, so a broken test fails instead of hanging (never asserted on)


def silver_alert(**over: Any) -> Alert:
    fields: dict[str, Any] = {
        "time_ms": 1_700_000_000_123,
        "market": "xyz:SILVER",
        "rule": "feed_silent_level2",
        "level": 2,
        "previous_level": 1,
        "measured": {"feed_silent_s": "12.4"},
        "condition": "feed silent > 10 s",
        "action": {"type": "perpDeploy", "setOpenInterestCaps": [["xyz:SILVER", 1000000]]},
        "mode": "auto",
        "answer": {"status": "ok", "response": {"type": "default"}},
    }
    fields.update(over)
    return Alert(**fields)


# ---------------------------------------------------------------------------------------------- local servers


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


Responder = Callable[[Request], tuple[int, Any]]


@dataclass
class Server:
    url: str
    requests: list[Request] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # what the handlers did, in order


@contextlib.contextmanager
def serve(respond: Responder) -> Iterator[Server]:
    """An HTTP server on a free 127.0.0.1 port, in a thread; ``respond`` runs in the handler's own thread."""
    lock = threading.Lock()
    server: Server

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            req = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with lock:
                server.requests.append(req)
                server.events.append(f"received {self.path}")
            status, answer = respond(req)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            with lock:
                server.events.append(f"answered {self.path} {status}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server = Server(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(WAIT)


def answers(*statuses: int) -> Responder:
    """Answer with these statuses in turn, then 200 for ever."""
    todo = list(statuses)
    lock = threading.Lock()

    def respond(req: Request) -> tuple[int, Any]:
        with lock:
            status = todo.pop(0) if todo else 200
        return status, {"status": status}

    return respond


def fake_bot_api(token: str = TOKEN, get_me_status: int = 200) -> Responder:
    def respond(req: Request) -> tuple[int, Any]:
        if req.path == f"/bot{token}/getMe":
            if get_me_status != 200:
                return get_me_status, {"ok": False, "error_code": get_me_status, "description": "Unauthorized"}
            return 200, {"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "perpbox", "username": "pb_bot"}}
        if req.path == f"/bot{token}/sendMessage":
            form = req.form()
            chat = {"id": int(form["chat_id"]), "type": "private", "first_name": "deployer"}
            message = {"message_id": len(req.path), "date": 1_700_000_000, "chat": chat, "text": form["text"]}
            return 200, {"ok": True, "result": message}
        return 404, {"ok": False, "error_code": 404, "description": "Not Found"}

    return respond


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ListSink:
    """An in-process sink: records, optionally waits on an event first, optionally raises."""

    def __init__(self, gate: asyncio.Event | None = None, error: Exception | None = None) -> None:
        self.name = "list"
        self.gate = gate
        self.error = error
        self.got: list[Alert] = []
        self.closed = False

    async def send(self, alert: Alert) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        self.got.append(alert)

    async def aclose(self) -> None:
        self.closed = True


# ---------------------------------------------------------------------------------------------- the alert


def test_text_says_market_level_change_rule_measure_and_action() -> None:
    # written out by hand from the spec, not from the code
    expected = (
        "xyz:SILVER: level 1 → 2\n"
        "rule feed_silent_level2: feed silent > 10 s\n"
        "measured: feed_silent_s=12.4\n"
        'action sent: setOpenInterestCaps [["xyz:SILVER",1000000]]\n'
        'answer: {"status":"ok","response":{"type":"default"}}\n'
        "mode auto · 2023-11-14T22:13:20.123Z"
    )
    assert silver_alert().text() == expected


def test_text_for_proposed_no_action_unchanged_and_dex_wide() -> None:
    proposed = silver_alert(mode="alert", answer=None).text()
    assert 'action proposed: setOpenInterestCaps [["xyz:SILVER",1000000]] (not sent)' in proposed
    assert "action sent" not in proposed and "answer" not in proposed
    dry = silver_alert(mode="dry-run", answer=None).text()
    assert "action proposed: setOpenInterestCaps" in dry and "(dry-run, not sent)" in dry
    quiet = silver_alert(action=None, answer=None, level=1, previous_level=1, market="*").text()
    assert quiet.startswith("* (dex-wide): level 1 (unchanged)\n")
    assert "\nno action\n" in quiet
    back = silver_alert(level=0, previous_level=2, action=None).text()
    assert "level 2 → 0 (normal)" in back
    other = silver_alert(action={"type": "somethingElse", "x": 1}).text()
    assert 'action sent: {"type":"somethingElse","x":1}' in other


def test_payload_has_every_field_and_the_text() -> None:
    alert = silver_alert()
    payload = alert.payload()
    assert payload == {
        "time_ms": 1_700_000_000_123,
        "market": "xyz:SILVER",
        "rule": "feed_silent_level2",
        "level": 2,
        "previous_level": 1,
        "measured": {"feed_silent_s": "12.4"},
        "condition": "feed silent > 10 s",
        "action": {"type": "perpDeploy", "setOpenInterestCaps": [["xyz:SILVER", 1000000]]},
        "mode": "auto",
        "answer": {"status": "ok", "response": {"type": "default"}},
        "text": alert.text(),
    }
    json.dumps(payload)  # JSON as it stands


# ---------------------------------------------------------------------------------------------- redact


def test_redact_masks_tokens_userinfo_query_and_given_secrets() -> None:
    assert (
        redact("POST https://user:pass@hook.example/x?key=secret failed")
        == "POST https://***@hook.example/x?*** failed"
    )
    assert redact(f"https://api.telegram.org/bot{TOKEN}/sendMessage") == "https://api.telegram.org/bot***/sendMessage"
    assert redact(f"token `{TOKEN}` rejected") == "token `***` rejected"
    assert redact(TOKEN.replace(":", "%3A")) == "***"
    assert redact("short 1:abc and plain words stay") == "short 1:abc and plain words stay"
    assert redact("http://h.example:8080/p#frag") == "http://h.example:8080/p#***"
    assert redact("my pw is hunter2", ["hunter2"]) == "my pw is ***"
    assert redact("no secrets here, http://127.0.0.1:9/ok") == "no secrets here, http://127.0.0.1:9/ok"


def test_sink_names_hold_no_secret() -> None:
    hook = WebhookSink("https://user:pass@hooks.example:8443/services/T0/B0/XXXX?key=secret")
    assert hook.name == "webhook https://***@hooks.example:8443/…"
    assert "secret" not in repr(hook) and "pass" not in repr(hook) and "XXXX" not in repr(hook)
    bot = TelegramSink(TOKEN, CHAT, base_url="http://127.0.0.1:9/bot")
    assert TOKEN not in bot.name and TOKEN not in repr(bot)
    alerter = Alerter([hook, bot])
    assert [s.name for s in alerter.sinks] == [hook.name, bot.name]


# ---------------------------------------------------------------------------------------------- webhook


def test_webhook_receives_exactly_the_payload() -> None:
    alert = silver_alert()

    async def main(url: str) -> Alerter:
        alerter = Alerter([WebhookSink(url + "/hook")], backoff_s=0)
        await alerter.send(alert)
        assert await alerter.flush(WAIT)
        await alerter.aclose()
        return alerter

    with serve(answers()) as server:
        alerter = asyncio.run(main(server.url))
    assert [r.path for r in server.requests] == ["/hook"]
    req = server.requests[0]
    assert req.headers["content-type"] == "application/json"
    got = req.json()
    assert got == alert.payload()
    assert got["market"] == "xyz:SILVER" and got["rule"] == "feed_silent_level2"
    assert (got["level"], got["previous_level"], got["mode"]) == (2, 1, "auto")
    assert got["measured"] == {"feed_silent_s": "12.4"}
    assert got["action"] == {"type": "perpDeploy", "setOpenInterestCaps": [["xyz:SILVER", 1000000]]}
    text = got["text"]
    for part in ("xyz:SILVER", "level 1 → 2", "feed silent > 10 s", "feed_silent_s=12.4", "12.4"):
        assert part in text
    assert 'action sent: setOpenInterestCaps [["xyz:SILVER",1000000]]' in text
    assert '"status":"ok"' in text  # the venue's answer
    stats = alerter.sinks[0]
    assert (stats.delivered, stats.failed, stats.dropped, stats.attempts) == (1, 0, 0, 1)


def test_webhook_500_twice_then_200_is_delivered_once() -> None:
    async def main(url: str) -> Alerter:
        alerter = Alerter([WebhookSink(url)], retries=2, backoff_s=0)
        await alerter.send(silver_alert())
        assert await alerter.flush(WAIT)
        await alerter.aclose()
        return alerter

    with serve(answers(500, 500)) as server:
        alerter = asyncio.run(main(server.url + "/hook"))
    assert [e.split()[-1] for e in server.events if e.startswith("answered")] == ["500", "500", "200"]
    stats = alerter.sinks[0]
    assert (stats.delivered, stats.failed, stats.attempts) == (1, 0, 3)


def test_webhook_that_always_fails_counts_one_failure_and_send_never_raises() -> None:
    async def main(url: str) -> Alerter:
        broken = ListSink(error=RuntimeError("boom"))  # a sink raising something that is not DeliveryError
        alerter = Alerter([WebhookSink(url), broken], retries=2, backoff_s=0)
        await alerter.send(silver_alert())  # must not raise
        assert await alerter.flush(WAIT)
        await alerter.aclose()
        assert broken.closed
        return alerter

    with serve(lambda req: (503, {"error": "down"})) as server:
        alerter = asyncio.run(main(server.url + "/hook"))
    assert len(server.requests) == 3  # one try and two retries
    for stats in alerter.sinks:
        assert (stats.delivered, stats.failed, stats.attempts) == (0, 1, 3)
    assert (alerter.delivered, alerter.failed, alerter.dropped) == (0, 2, 0)


def test_webhook_sink_raises_on_non_2xx() -> None:
    async def main(url: str) -> None:
        sink = WebhookSink(url)
        try:
            with pytest.raises(DeliveryError, match="HTTP 404"):
                await sink.send(silver_alert())
        finally:
            await sink.aclose()

    with serve(lambda req: (404, {})) as server:
        asyncio.run(main(server.url + "/nope"))


def test_a_hanging_sink_does_not_delay_send() -> None:
    release = threading.Event()
    reached = threading.Event()

    def hang(req: Request) -> tuple[int, Any]:
        reached.set()
        release.wait(WAIT)
        return 200, {}

    async def main(server: Server) -> Alerter:
        alerter = Alerter([WebhookSink(server.url + "/slow", timeout_s=WAIT * 2)], backoff_s=0)
        await alerter.send(silver_alert())
        server.events.append("send returned")
        assert await asyncio.to_thread(reached.wait, WAIT)  # the worker's request is at the server, unanswered
        await alerter.send(silver_alert(rule="second"))  # and a second send still returns at once
        server.events.append("second send returned")
        assert not any(e.startswith("answered") for e in server.events)
        release.set()
        assert await alerter.flush(WAIT)
        await alerter.aclose()
        return alerter

    with serve(hang) as server:
        try:
            alerter = asyncio.run(main(server))
        finally:
            release.set()
    assert server.events[:3] == ["send returned", "received /slow", "second send returned"]
    assert server.events[3] == "answered /slow 200"
    assert alerter.sinks[0].delivered == 2


# ---------------------------------------------------------------------------------------------- queues


def test_a_full_queue_drops_its_oldest() -> None:
    async def main() -> tuple[ListSink, Alerter]:
        gate = asyncio.Event()
        sink = ListSink(gate=gate)
        alerter = Alerter([sink], queue_size=2, backoff_s=0)
        for i in range(5):  # no await in between: the worker has not taken any yet
            alerter.send_nowait(silver_alert(rule=f"r{i}"))
        gate.set()
        assert await alerter.flush(WAIT)
        await alerter.aclose()
        return sink, alerter

    sink, alerter = asyncio.run(main())
    assert [a.rule for a in sink.got] == ["r3", "r4"]
    assert (alerter.sinks[0].delivered, alerter.sinks[0].dropped) == (2, 3)


def test_aclose_gives_up_on_a_stuck_sink_and_closes_it() -> None:
    async def main() -> tuple[ListSink, Alerter]:
        sink = ListSink(gate=asyncio.Event())  # never opens
        alerter = Alerter([sink], backoff_s=0, attempt_timeout_s=None)
        await alerter.send(silver_alert(rule="a"))
        await alerter.send(silver_alert(rule="b"))
        assert not await alerter.flush(0.01)
        await alerter.aclose(timeout=0.01)
        await alerter.send(silver_alert(rule="after close"))  # neither raises nor queues
        return sink, alerter

    sink, alerter = asyncio.run(main())
    assert sink.closed and sink.got == []
    stats = alerter.sinks[0]
    assert (stats.delivered, stats.failed, stats.dropped) == (0, 0, 3)


# ---------------------------------------------------------------------------------------------- Telegram


def test_telegram_sink_sends_the_text_to_the_chat() -> None:
    first, second = silver_alert(), silver_alert(mode="dry-run", answer=None, rule="oi_level2")

    async def main(url: str) -> Alerter:
        alerter = Alerter([TelegramSink(TOKEN, CHAT, base_url=url + "/bot")], backoff_s=0)
        await alerter.send(first)
        await alerter.send(second)
        assert await alerter.flush(WAIT)
        await alerter.aclose()
        return alerter

    with serve(fake_bot_api()) as server:
        alerter = asyncio.run(main(server.url))
    paths = [r.path for r in server.requests]
    assert paths == [f"/bot{TOKEN}/getMe", f"/bot{TOKEN}/sendMessage", f"/bot{TOKEN}/sendMessage"]  # getMe once
    sent = [r.form() for r in server.requests[1:]]
    assert [s["chat_id"] for s in sent] == [str(CHAT), str(CHAT)]
    assert [s["text"] for s in sent] == [first.text(), second.text()]
    assert all("parse_mode" not in s for s in sent)  # plain text
    assert "level 1 → 2" in sent[0]["text"] and "action sent: setOpenInterestCaps" in sent[0]["text"]
    assert (alerter.sinks[0].delivered, alerter.sinks[0].failed) == (2, 0)


def test_telegram_sink_truncates_to_the_bot_api_limit() -> None:
    long = silver_alert(condition="x" * 5000)

    async def main(url: str) -> None:
        sink = TelegramSink(TOKEN, CHAT, base_url=url + "/bot")
        try:
            await sink.send(long)
        finally:
            await sink.aclose()

    with serve(fake_bot_api()) as server:
        asyncio.run(main(server.url))
    assert server.requests[-1].form()["text"] == long.text()[:4096]


# ---------------------------------------------------------------------------------------------- redaction


def test_failed_deliveries_log_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="perpbox.monitor.alerts")
    errors: list[BaseException] = []

    async def main(hook_url: str, bot_url: str, dead_url: str) -> Alerter:
        bot = TelegramSink(TOKEN, CHAT, base_url=bot_url)
        try:  # the library's InvalidToken message names the token: what the sink raises must not
            await bot.send(silver_alert())
        except DeliveryError as exc:
            errors.append(exc)
        sinks = [
            WebhookSink(hook_url),
            WebhookSink(dead_url),
            TelegramSink(TOKEN, CHAT, base_url=bot_url),
            TelegramSink(TOKEN, CHAT, base_url=dead_url + "/bot"),
        ]
        alerter = Alerter(sinks, retries=1, backoff_s=0)
        await alerter.send(silver_alert())
        assert await alerter.flush(WAIT)
        await alerter.aclose()
        await bot.aclose()
        return alerter

    with serve(answers(500, 500)) as hook, serve(fake_bot_api(get_me_status=401)) as tg:
        hook_url = hook.url.replace("http://", "http://user:pass@") + "/hook?key=secret"
        dead_url = f"http://user:pass@127.0.0.1:{closed_port()}/dead?key=secret"
        alerter = asyncio.run(main(hook_url, tg.url + "/bot", dead_url))

    assert [s.failed for s in alerter.sinks] == [1, 1, 1, 1]
    assert len(errors) == 1 and "InvalidToken" in str(errors[0])
    shown = "".join(traceback.format_exception(errors[0]))
    assert TOKEN not in shown and TOKEN.split(":")[1] not in shown
    logged = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert "failed after 2 attempts" in logged and "retrying" in logged
    for secret in (TOKEN, TOKEN.split(":")[1], "key=secret", "=secret", "user:pass", "pass@"):
        assert secret not in logged, secret

"""The monitor's alerts: what one decision looks like (:class:`Alert`), where it goes (webhook, Telegram) and
the :class:`Alerter` that fans it out without ever slowing the monitor down.

Every sink gets its own bounded queue and worker task, so a slow or dead endpoint only delays its own
alerts; :meth:`Alerter.send` only enqueues and never raises.  A delivery is retried with exponential
backoff; what finally fails is logged (logger ``perpbox.monitor.alerts``) under the sink's *redacted* name
and counted.  Secrets -- a Telegram bot token, a webhook URL's userinfo, query string or fragment -- are
kept out of every log line and of every exception this module raises (:func:`redact`).

Not ours to control: httpx logs each request's full URL at INFO (logger ``httpx``), and
python-telegram-bot logs its API URL at DEBUG (logger ``telegram``); both contain the bot token.  An
application that turns those loggers up should filter them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import httpx

__all__ = [
    "Alert",
    "Alerter",
    "DeliveryError",
    "Sink",
    "SinkStats",
    "TelegramSink",
    "WebhookSink",
    "redact",
]

log = logging.getLogger("perpbox.monitor.alerts")

MODES = ("auto", "alert", "dry-run")
TELEGRAM_MAX_TEXT = 4096  # Bot API sendMessage: 1-4096 characters after entity parsing
_ACTION_TEXT_MAX = 1500  # the action's rendering in text(); the payload always carries it whole
REDACTED = "***"

# A Telegram bot token: "<bot id>:<35-ish url-safe characters>" (also when its colon is percent-encoded).
_TOKEN_RE = re.compile(r"(?<![0-9])[0-9]{5,}(?::|%3[Aa])[A-Za-z0-9_-]{20,}")  # also inside ".../bot<token>/..."
_URL_RE = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return REDACTED
    netloc = host if ":" not in host else f"[{host}]"
    if port is not None:
        netloc += f":{port}"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        netloc = f"{REDACTED}@{netloc}"
    query = REDACTED if parts.query else ""
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with secrets masked: each of ``secrets`` (and its percent-encoded form), anything shaped like
    a Telegram bot token, and in every URL its userinfo (``user:pass@``), query string and fragment.

    >>> redact("POST https://u:p@hook.example/x?key=s3cret failed")
    'POST https://***@hook.example/x?*** failed'
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED).replace(secret.replace(":", "%3A"), REDACTED)
    text = _TOKEN_RE.sub(REDACTED, text)
    return _URL_RE.sub(lambda m: _redact_url(m.group(0)), text)


def _compact(value: Any, limit: int) -> str:
    try:
        rendered = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        rendered = repr(value)
    return rendered if len(rendered) <= limit else rendered[: limit - 1] + "…"


def describe_action(action: dict[str, Any]) -> str:
    """A perpDeploy action in words: its variant and the variant's arguments, e.g.
    ``setOpenInterestCaps [["xyz:SILVER",1000000]]``; any other dict as compact JSON."""
    keys = [k for k in action if k != "type"]
    if action.get("type") == "perpDeploy" and len(keys) == 1:
        return f"{keys[0]} {_compact(action[keys[0]], _ACTION_TEXT_MAX)}"
    return _compact(action, _ACTION_TEXT_MAX)


@dataclass(frozen=True)
class Alert:
    """One decision of the monitor about one market (or ``"*"``: the whole dex)."""

    time_ms: int  # when the monitor decided
    market: str  # coin, e.g. "xyz:SILVER" (or "*" for dex-wide)
    rule: str  # the rule's id, e.g. "feed_silent_level2"
    level: int  # the market's level after this decision (0 = normal)
    previous_level: int
    measured: dict[str, str]  # what was measured, values as strings (e.g. {"feed_silent_s": "12.4"})
    condition: str  # the rule in words, e.g. "feed silent > 10 s"
    action: dict[str, Any] | None  # the perpDeploy action sent (mode auto) or proposed; None: alert only
    mode: str  # "auto" | "alert" | "dry-run"
    answer: Any = None  # the venue's answer when the action was sent

    def _level_text(self) -> str:
        if self.level == self.previous_level:
            change = f"level {self.level} (unchanged)"
        else:
            change = f"level {self.previous_level} → {self.level}"
        return change + (" (normal)" if self.level == 0 and self.previous_level != 0 else "")

    def _action_text(self) -> str:
        if self.action is None:
            return "no action"
        if self.mode == "auto":
            line = f"action sent: {describe_action(self.action)}"
            if self.answer is not None:
                line += f"\nanswer: {_compact(self.answer, _ACTION_TEXT_MAX)}"
            return line
        note = " (dry-run, not sent)" if self.mode == "dry-run" else " (not sent)"
        return f"action proposed: {describe_action(self.action)}{note}"

    def text(self) -> str:
        """One human message, plain text (sent without a parse mode, so any character is safe)."""
        market = "* (dex-wide)" if self.market == "*" else self.market
        measured = ", ".join(f"{k}={v}" for k, v in self.measured.items()) or "nothing measured"
        when = dt.datetime.fromtimestamp(self.time_ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")
        return (
            f"{market}: {self._level_text()}\n"
            f"rule {self.rule}: {self.condition}\n"
            f"measured: {measured}\n"
            f"{self._action_text()}\n"
            f"mode {self.mode} · {when.replace('+00:00', 'Z')}"
        )

    def payload(self) -> dict[str, Any]:
        """The JSON object a webhook receives: every field, plus ``text``."""
        return {
            "time_ms": self.time_ms,
            "market": self.market,
            "rule": self.rule,
            "level": self.level,
            "previous_level": self.previous_level,
            "measured": dict(self.measured),
            "condition": self.condition,
            "action": self.action,
            "mode": self.mode,
            "answer": self.answer,
            "text": self.text(),
        }


class DeliveryError(Exception):
    """A sink could not deliver an alert.  Its message is already redacted; ``retry_after`` (seconds) is the
    endpoint's own request to wait (Telegram flood control)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@runtime_checkable
class Sink(Protocol):
    """Where alerts go.  ``send`` raises on failure; ``name`` must hold no secret.  An ``async aclose()``
    is called, when the sink has one, by :meth:`Alerter.aclose`."""

    @property
    def name(self) -> str: ...

    async def send(self, alert: Alert) -> None: ...


class WebhookSink:
    """POSTs :meth:`Alert.payload` as JSON; any answer outside 2xx is a failure."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self._url = url
        self._timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None
        self.name = f"webhook {_url_origin(url)}"

    def __repr__(self) -> str:
        return f"WebhookSink({self.name!r})"

    async def send(self, alert: Alert) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout_s, follow_redirects=False)
        body = json.dumps(alert.payload(), ensure_ascii=False, default=str).encode()
        try:
            response = await self._client.post(self._url, content=body, headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:
            # from None: httpx's exception holds the request, whose URL holds the secrets
            raise DeliveryError(f"{self.name}: {type(exc).__name__}: {redact(str(exc), [self._url])}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"{self.name}: HTTP {response.status_code}")

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


class TelegramSink:
    """Sends :meth:`Alert.text` to one chat with python-telegram-bot (no parse mode: plain text).

    ``base_url`` is python-telegram-bot's: the token is appended to it (or put in place of ``{token}``),
    so ``base_url="http://127.0.0.1:8081/bot"`` reaches ``/bot<TOKEN>/sendMessage`` there."""

    def __init__(self, token: str, chat_id: int | str, base_url: str | None = None) -> None:
        from telegram import Bot

        self._token = token
        self.chat_id = chat_id
        self.name = f"telegram chat {chat_id}"
        try:
            self._bot = Bot(token=token) if base_url is None else Bot(token=token, base_url=base_url)
        except Exception as exc:  # InvalidToken and friends: keep the token out of what we raise
            raise DeliveryError(f"{self.name}: {type(exc).__name__}: {self._redact(str(exc))}") from None
        self._initialized = False
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"TelegramSink({self.name!r})"

    def _redact(self, text: str) -> str:
        return redact(text, [self._token])

    async def send(self, alert: Alert) -> None:
        from telegram.error import RetryAfter

        try:
            async with self._lock:
                if not self._initialized:
                    await self._bot.initialize()  # calls getMe: also checks the token
                    self._initialized = True
            await self._bot.send_message(chat_id=self.chat_id, text=alert.text()[:TELEGRAM_MAX_TEXT])
        except RetryAfter as exc:
            wait = exc.retry_after
            seconds = wait.total_seconds() if isinstance(wait, dt.timedelta) else float(wait)
            raise DeliveryError(f"{self.name}: flood control, retry in {seconds:g} s", retry_after=seconds) from None
        except Exception as exc:
            # from None: InvalidToken's message and the chained httpx error can hold the token
            raise DeliveryError(f"{self.name}: {type(exc).__name__}: {self._redact(str(exc))}") from None

    async def aclose(self) -> None:
        self._initialized = False
        with contextlib.suppress(Exception):
            await self._bot.shutdown()


@dataclass(eq=False)
class SinkStats:
    """One sink inside an :class:`Alerter`: its queue, its worker and its counters."""

    sink: Sink
    name: str
    queue: asyncio.Queue[Alert]
    delivered: int = 0
    failed: int = 0  # alerts given up on after every retry
    dropped: int = 0  # alerts pushed out of a full queue (the oldest goes), or sent after aclose
    attempts: int = 0  # every try, retries included
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Alerter:
    """Fans alerts out to sinks.  ``send`` never raises and never waits on a sink; each delivery is tried
    once and then retried ``retries`` times, waiting ``backoff_s``, 2·``backoff_s``, 4·``backoff_s``…"""

    def __init__(
        self,
        sinks: Sequence[Sink],
        retries: int = 2,
        backoff_s: float = 0.5,
        queue_size: int = 1000,
        attempt_timeout_s: float | None = 30.0,
    ) -> None:
        self.retries = max(0, retries)
        self.backoff_s = max(0.0, backoff_s)
        self.attempt_timeout_s = attempt_timeout_s
        self.sinks: list[SinkStats] = [
            SinkStats(sink=s, name=redact(_sink_name(s)), queue=asyncio.Queue(maxsize=max(1, queue_size)))
            for s in sinks
        ]
        self._closed = False

    def __repr__(self) -> str:
        return f"Alerter({[s.name for s in self.sinks]!r})"

    @property
    def delivered(self) -> int:
        return sum(s.delivered for s in self.sinks)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.sinks)

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self.sinks)

    async def send(self, alert: Alert) -> None:
        """Queue ``alert`` for every sink and return at once."""
        self.send_nowait(alert)

    def send_nowait(self, alert: Alert) -> None:
        """:meth:`send` for synchronous callers (inside the running event loop)."""
        for stats in self.sinks:
            try:
                if self._closed:
                    stats.dropped += 1
                    log.warning("alert %s/%s not queued for %s: alerter closed", alert.market, alert.rule, stats.name)
                    continue
                self._ensure_worker(stats)
                if stats.queue.full():
                    stats.queue.get_nowait()
                    stats.queue.task_done()
                    stats.dropped += 1
                    log.warning(
                        "alert queue for %s full: dropped its oldest alert (%d so far)", stats.name, stats.dropped
                    )
                stats.queue.put_nowait(alert)
            except Exception:  # never let the monitor fall over because of its alerts
                stats.dropped += 1
                log.exception("alert %s/%s not queued for %s", alert.market, alert.rule, stats.name)

    def _ensure_worker(self, stats: SinkStats) -> None:
        if stats.task is None or stats.task.done():
            stats.task = asyncio.get_running_loop().create_task(self._work(stats), name=f"alerts: {stats.name}")

    async def _work(self, stats: SinkStats) -> None:
        while True:
            alert = await stats.queue.get()
            try:
                await self._deliver(stats, alert)
            except asyncio.CancelledError:  # aclose gave up on it
                stats.dropped += 1
                raise
            except Exception:  # _deliver catches what sinks raise; this is for our own bugs
                stats.failed += 1
                log.exception("alert delivery to %s crashed", stats.name)
            finally:
                stats.queue.task_done()

    async def _deliver(self, stats: SinkStats, alert: Alert) -> None:
        tries = self.retries + 1
        for attempt in range(tries):
            stats.attempts += 1
            try:
                if self.attempt_timeout_s is None:
                    await stats.sink.send(alert)
                else:
                    await asyncio.wait_for(stats.sink.send(alert), self.attempt_timeout_s)
            except Exception as exc:
                if isinstance(exc, TimeoutError):
                    reason = f"no answer within {self.attempt_timeout_s:g} s"
                else:
                    reason = redact(f"{type(exc).__name__}: {exc}")
                if attempt + 1 >= tries:
                    stats.failed += 1
                    log.error(
                        "alert %s/%s to %s failed after %d attempts: %s",
                        alert.market, alert.rule, stats.name, tries, reason,
                    )  # fmt: skip
                    return
                delay = self.backoff_s * 2**attempt
                retry_after = exc.retry_after if isinstance(exc, DeliveryError) else None
                if retry_after is not None:
                    delay = max(delay, min(retry_after, 60.0))
                log.warning(
                    "alert %s/%s to %s failed (attempt %d/%d), retrying in %g s: %s",
                    alert.market, alert.rule, stats.name, attempt + 1, tries, delay, reason,
                )  # fmt: skip
                await asyncio.sleep(delay)
            else:
                stats.delivered += 1
                return

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued alert has been delivered or given up on; False if ``timeout`` came first."""
        joins = [s.queue.join() for s in self.sinks]
        try:
            await asyncio.wait_for(asyncio.gather(*joins), timeout)
        except TimeoutError:
            return False
        return True

    async def aclose(self, timeout: float = 5.0) -> None:
        """Stop taking alerts, drain the queues for at most ``timeout`` seconds, then stop the workers and
        close the sinks.  Alerts still queued then are counted as dropped."""
        self._closed = True
        if not await self.flush(timeout):
            log.warning("alerts not drained within %g s", timeout)
        for stats in self.sinks:
            if stats.task is not None:
                stats.task.cancel()
                await asyncio.wait({stats.task})
                stats.task = None
            while not stats.queue.empty():
                stats.queue.get_nowait()
                stats.queue.task_done()
                stats.dropped += 1
            close = getattr(stats.sink, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:
                    log.warning("closing %s failed: %s", stats.name, redact(f"{type(exc).__name__}: {exc}"))


def _url_origin(url: str) -> str:
    """``scheme://host:port`` and, when the URL has more, ``/…``: a webhook's path can be its secret
    (Slack's and Discord's are), so a sink's name shows none of it."""
    redacted = _redact_url(url)
    parts = urlsplit(redacted)
    origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    return origin + ("/…" if parts.path.strip("/") or parts.query or parts.fragment else "")


def _sink_name(sink: object) -> str:
    name = getattr(sink, "name", None)
    return name if isinstance(name, str) else type(sink).__name__

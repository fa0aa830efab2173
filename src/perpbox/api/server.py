"""``perpbox serve``: the HTTP/WebSocket service around a ``Venue``, and its background jobs.

Routes: ``POST /info``, ``POST /exchange``, ``WS /ws``, ``GET /`` (the live page), and in dev mode
``POST /dev/fund`` (the faucet behind ``perpbox fund``).  Malformed bodies are HTTP 422 with the
venue's text; business errors HTTP 200 envelopes; no client input yields a 500 (unexpected
exceptions in a handler are answered 422 with their message, and logged).

Every body is hostile until checked: at most ``MAX_BODY_BYTES`` (else HTTP 413), JSON that
``orjson`` reads (so no NaN, Infinity or a number that overflows a double, like ``1e400``), nested
at most ``MAX_DEPTH`` deep (serde_json's recursion limit, which the venue's deserialiser has);
anything else is a 422 ``Failed to deserialize the JSON body into the target type: …``.  The
faucet's amount is an exact decimal (``core.numbers.parse_units``), never a float.  A failed
request is logged with the first bytes of its body, never the parsed value's ``repr`` (which
recurses into a deep body).

Background jobs, all feeding the one sequencer: a ``Tick`` every second; the synthetic oracle feed
every 3 s (``FeedPrices`` from three CEX-like sources for the first dex); the HIP-3 deployer, which
signs ``perpDeploy setOracle`` every ~3 s with its own key and sends it through the same
``/exchange`` handler a client's request goes through; the simulated participants; the WebSocket
book flusher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from eth_account import Account
from eth_utils import keccak
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from perpbox.agents.simulated import Agents, funding_commands
from perpbox.api import signing
from perpbox.api.actions import ExchangeAPI
from perpbox.api.faults import FaultError, Faults
from perpbox.api.info import BadRequest, InfoAPI
from perpbox.api.nesting import MAX_DEPTH, too_deep
from perpbox.api.page import plotly_bundle
from perpbox.api.ratelimit import ADDRESS_BUFFER, AddressLimiter, RateLimiter
from perpbox.api.ws import WsHub
from perpbox.config import Dex, ExchangeConfig
from perpbox.core.numbers import USD, parse_units
from perpbox.deployer.attestlog import AttestLog
from perpbox.deployer.builtin import FEED_SOURCE, builtin_definition
from perpbox.deployer.relay import InProcessVenue, Relay
from perpbox.deployer.sources import CallbackSource, Source
from perpbox.exchange import commands as C
from perpbox.exchange.results import Error, Ok
from perpbox.feeds.replay import ReplayFeed
from perpbox.feeds.synthetic import SyntheticFeed
from perpbox.store.sequencer import SNAPSHOT_EVERY, Venue, backstop_deposits, bootstrap_commands

log = logging.getLogger("perpbox.serve")
TICK_S = 1.0
FEED_S = 3.0
DEPLOYER_S = 3.0
SPOT_SOURCES = ("binance", "okx", "bybit")
PERP_SOURCES = ("binance", "okx")
FAUCET_MAX = 10_000_000 * USD
MAX_BODY_BYTES = 1 << 20  # an /info or /exchange body; a batch of 1,000 orders is ~150 kB
LOGGED_BODY_BYTES = 300
MAX_ERROR_CHARS = 300


@dataclass
class ServeOptions:
    data_dir: Path
    config: ExchangeConfig
    seed: int = 1
    agents: bool = True
    dev: bool = True
    fsync: bool = True
    rate_limits: bool = True
    network: str = "both"
    feed: str = "synthetic"  # synthetic | replay | none
    feed_file: Path | None = None  # the recording, for feed "replay"
    request_buffer: int = ADDRESS_BUFFER  # address-based limit: initial requests before volume counts
    snapshot_every: int = SNAPSHOT_EVERY  # commands between snapshots (and one on a clean stop)
    tick_s: float = TICK_S  # seconds between Ticks; 0: no ticker (the state changes only on requests)
    dev_faults: bool = False  # POST /dev/fault (api/faults.py): faults on demand, for testing bots


def deployer_key(seed: int, dex: str) -> str:
    """The built-in deployer's private key: fixed by the seed, so a restart keeps the same deployer."""
    return "0x" + keccak(text=f"perpbox deployer {seed} {dex}").hex()


class Service:
    def __init__(self, opts: ServeOptions) -> None:
        self.opts = opts
        self.venue = Venue(opts.data_dir, fsync=opts.fsync, snapshot_every=opts.snapshot_every)
        self.limiter = RateLimiter(enabled=opts.rate_limits)
        self.deployers = {d.name: Account.from_key(deployer_key(opts.seed, d.name)) for d in opts.config.dexes}
        self.address_limiter = None if not opts.rate_limits else AddressLimiter(
            lambda user: self.venue.rm.volume.get(user, 0), opts.request_buffer,
            exempt={a.address.lower() for a in self.deployers.values()})
        self._bind_views()
        self.hub = WsHub(self.info, self.actions.handle)
        self.venue.listeners.append(self.hub.on_events)
        if opts.feed == "replay":
            assert opts.feed_file is not None
            self.feed: SyntheticFeed = ReplayFeed(opts.config.all_markets(), opts.feed_file, opts.seed,
                                                  self.venue.now())
        else:
            self.feed = SyntheticFeed(opts.config.all_markets(), opts.seed, self.venue.now())
        self.faults = Faults(self.venue.now) if opts.dev_faults else None
        self.relays: list[Relay] = []  # the built-in deployers, one per dex (started with the feed)
        self.attest_logs: list[AttestLog] = []
        self.tasks: list[asyncio.Task[Any]] = []

    def _bind_views(self) -> None:
        """The request handlers and agents over the venue's current state (again after a rollback)."""
        self.info = InfoAPI(self.venue.ex, self.venue.rm, self.venue.now, lambda: self.venue.applied_seq)
        self.actions = ExchangeAPI(self.venue.ex, self.venue.submit, self.venue.now, network=self.opts.network)
        self.actions.address_limiter = self.info.address_limiter = self.address_limiter
        self.agents = Agents(self.venue.ex, self.venue.submit, self.opts.seed)

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.tasks.append(asyncio.create_task(self.venue.run(), name="sequencer"))
        await asyncio.sleep(0)
        if not self.venue.ex.reads.market_count():
            deployers = {n: a.address.lower() for n, a in self.deployers.items()}
            await self.venue.submit(bootstrap_commands(self.opts.config, deployers))
            await self.venue.submit([C.Deposit(ts=0, user=a, usd=1_000_000 * USD) for a in deployers.values()]
                                    + backstop_deposits(self.opts.config))
        else:
            reads = self.venue.ex.reads
            self.feed.resume_from({s.asset: reads.oracle(s.asset) for s in reads.markets()})
        if self.opts.tick_s > 0:
            self._every(self.opts.tick_s, self._tick, "ticker")
        if self.opts.feed != "none":
            self._every(FEED_S, self._feed, "feed")
            self._every(DEPLOYER_S, self._deploy_oracles, "deployer")
        self._every(0.5, self._flush, "ws-flusher")
        if self.opts.agents:
            await self.venue.submit(funding_commands(self.venue.ex))
            self._every(2.0, lambda: self.agents.requote(), "makers")
            self._every(0.7, lambda: self.agents.take(), "takers")
            self._every(5.0, lambda: self.agents.lever(), "levered")

    def _every(self, period: float, job: Callable[[], Awaitable[None]], name: str) -> None:
        async def loop() -> None:
            while True:
                try:
                    await job()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a background job's failure is logged, never fatal
                    log.exception("background job %s failed", name)
                await asyncio.sleep(period)

        self.tasks.append(asyncio.create_task(loop(), name=name))

    async def stop(self) -> None:
        for t in reversed(self.tasks):
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for relay in self.relays:
            relay.checkpoint()
        for attest in self.attest_logs:
            attest.close()
        self.venue.snapshot()
        self.venue.close()

    # -- jobs -------------------------------------------------------------------------------------------
    async def _tick(self) -> None:
        await self.venue.submit([C.Tick(ts=0)])

    async def _flush(self) -> None:
        self.hub.flush_books()

    async def _feed(self) -> None:
        self.feed.step(self.venue.now())
        main = [m.spec.asset for m in self.opts.config.markets]
        cmds: list[C.Command] = [C.FeedPrices(ts=0, source=s, pxs={a: self.feed.quote(a) for a in main})
                                 for s in SPOT_SOURCES]
        cmds += [C.FeedPrices(ts=0, source=s, pxs={a: self.feed.quote(a) for a in main}, perp=True)
                 for s in PERP_SOURCES]
        await self.venue.submit(cmds)

    async def _deploy_oracles(self) -> None:
        """The HIP-3 deployer's job, done as a deployer would, by the relay ``perpbox deployer run``
        is (``deployer.relay``): a signed ``perpDeploy setOracle`` through the same ``/exchange``
        handler a client's request goes through, each attempt attested under ``DATA/attest/<dex>``."""
        if not self.relays:
            self.relays = [await self._relay(dex) for dex in self.opts.config.dexes]
        for relay in self.relays:
            record = await relay.update()
            if record["result"] != "ok":
                log.debug("setOracle for %s: %s", relay.defn.dex, record["setOracle"]["answer"])

    async def _relay(self, dex: Dex) -> Relay:
        attest_dir = self.opts.data_dir / "attest" / dex.name
        log_ = AttestLog.open(attest_dir, dex.name, self.opts.data_dir / "attest-keys" / f"{dex.name}.key")
        self.attest_logs.append(log_)
        feed = {m.spec.coin: self._feed_source(m.spec.asset, m.spec.px_decimals) for m in dex.markets}
        relay = Relay(builtin_definition(dex, attest_dir), InProcessVenue(
            lambda body: self.info.handle(body), lambda body: self.actions.handle(body)),
                      self.deployers[dex.name].key.hex(), attest=log_, clock=self.venue.now, extra_sources=feed)
        await relay.start()
        return relay

    def _feed_source(self, asset: int, px_decimals: int) -> list[Source]:
        def price(_now: int) -> Decimal:
            return Decimal(max(1, round(self.feed.px[asset]))).scaleb(-px_decimals)

        return [CallbackSource(FEED_SOURCE, price)]

    # -- HTTP -------------------------------------------------------------------------------------------
    async def answer_info(self, ip: str, raw: bytes) -> Answer:
        return await self._answer(ip, raw, self.limiter.info_weight, self._info_handle)

    async def answer_exchange(self, ip: str, raw: bytes) -> Answer:
        return await self._answer(ip, raw, self.limiter.action_weight, self._exchange_handle)

    async def _info_handle(self, body: Any) -> Any:
        if self.faults is None:
            return self.info.handle(body)
        await self.faults.gate()
        return self.faults.on_info(body, self.info.handle(body))

    async def _exchange_handle(self, body: Any) -> Any:
        if self.faults is not None:
            await self.faults.gate()
            refusal = self.faults.on_exchange(body)
            if refusal is not None:
                return refusal
        return await self.actions.handle(body)

    async def http_fault(self, request: Request) -> Response:
        """``POST /dev/fault`` (``--dev-faults`` only): arm a fault (``api/faults.py``)."""
        assert self.faults is not None
        raw = await _read_body(request)
        if raw is None:
            return _response(TOO_LARGE)
        try:
            armed = self.faults.arm(decode_body(raw))
        except (BadRequest, FaultError) as e:
            return _response(_unprocessable(BadRequest(str(e))))
        kind = armed["kind"]
        if kind in ("ws_drop", "freeze", "rollback"):
            self.hub.drop_all(f"fault {kind}")
        if kind == "rollback":
            kept, dropped = await self.venue.rollback(armed["to"])
            self._bind_views()
            self.hub.info, self.hub.handle_action = self.info, self.actions.handle
            self.faults.history.clear()
            armed = {**armed, "kept_seq": kept, "dropped": dropped}
        elif kind == "halt":
            spec = next((m for m in self.venue.ex.reads.markets() if m.coin == self.faults.params["halt_coin"]), None)
            if spec is None:
                return _response(_unprocessable(BadRequest(f"coin: no market {self.faults.params['halt_coin']}")))
            await self.venue.submit([C.HaltTrading(ts=0, asset=spec.asset, halted=True)])
            self.tasks.append(asyncio.create_task(self._resume(spec.asset, armed["until"]), name="fault-resume"))
        log.warning("dev fault armed: %s", armed)
        return _response(_json({"status": "ok", "fault": armed}))

    async def _resume(self, asset: int, until_ms: int) -> None:
        await asyncio.sleep(max(0, until_ms - self.venue.now()) / 1000)
        await self.venue.submit([C.HaltTrading(ts=0, asset=asset, halted=False)])

    async def _answer(self, ip: str, raw: bytes, weight: Callable[[Any], int],
                      handle: Callable[[Any], Awaitable[Any]]) -> Answer:
        """Decode, rate-limit by IP, answer; malformed input and handler failures are HTTP 422
        (never a 500 for client input)."""
        try:
            body = decode_body(raw)
        except BadRequest as e:
            return _unprocessable(e)
        if self.limiter.enabled:
            try:
                w = weight(body)
            except Exception:  # a weight function must not fail on a body; if it does, the heaviest
                log.exception("rate-limit weight failed for %s", _excerpt(raw))
                w = 60
            if not self.limiter.allow(ip, w):
                return TOO_MANY
        try:
            return _json(await handle(body))
        except BadRequest as e:
            return _unprocessable(e)
        except Exception as e:
            with contextlib.suppress(Exception):
                log.exception("request failed: %s", _excerpt(raw))
            return _unprocessable(BadRequest(_error_text(e)))

    async def http_fund(self, request: Request) -> Response:
        """Dev faucet: ``{"user": "0x…", "usd": "1000"}`` deposits USDC; ``usd`` is a decimal
        string (or a JSON integer) of at most 6 decimals, within (0, 10,000,000]."""
        raw = await _read_body(request)
        if raw is None:
            return _response(TOO_LARGE)
        try:
            body = decode_body(raw)
            if not isinstance(body, dict):
                raise BadRequest("expected an object")
            given = body.get("user")
            user = signing.normalise_address(given) if isinstance(given, str) else None
            if user is None:
                raise BadRequest("user: invalid address")
            usd = faucet_amount(body.get("usd"))
        except BadRequest as e:
            return _response(_unprocessable(e))
        except ValueError:  # normalise_address on a string that is no address
            return _response(_unprocessable(BadRequest("user: invalid address")))
        responses, _ = await self.venue.submit([C.Deposit(ts=0, user=user, usd=usd)])
        if responses and isinstance(responses[0], Ok):
            return _response(_json({"status": "ok", "user": user, "usd": body["usd"]}))
        refused = responses[0].message if responses and isinstance(responses[0], Error) else str(responses)
        return _response(_json({"status": "err", "response": refused}))

    async def page(self, request: Request) -> Response:
        html = resources.files("perpbox").joinpath("web/index.html").read_text()
        return HTMLResponse(html)

    async def plotly_js(self, request: Request) -> Response:
        return Response(plotly_bundle(), media_type="application/javascript",
                        headers={"Cache-Control": "max-age=86400"})

    async def websocket(self, ws: WebSocket) -> None:
        if self.faults is not None and self.faults.active("freeze"):
            await ws.accept()
            await ws.close(code=1013)  # try again later: the venue is frozen
            return
        await self.hub.serve(ws)

    def app(self) -> HotPaths:
        routes = [WebSocketRoute("/ws", self.websocket),
                  Route("/", self.page, methods=["GET"]),
                  Route("/static/plotly.min.js", self.plotly_js, methods=["GET"])]
        if self.opts.dev:
            routes.append(Route("/dev/fund", self.http_fund, methods=["POST"]))
        if self.faults is not None:
            routes.append(Route("/dev/fault", self.http_fault, methods=["POST"]))

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> Any:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        return HotPaths(self, Starlette(routes=routes, lifespan=lifespan))


Answer = tuple[int, bytes, bytes]  # HTTP status, content type, body
TOO_MANY: Answer = (429, b"text/plain; charset=utf-8", b"Too many requests")  # perpbox wording (the 429 is the venue's)
# perpbox wording
TOO_LARGE: Answer = (413, b"text/plain; charset=utf-8", f"Request body over {MAX_BODY_BYTES} bytes".encode())


def decode_body(raw: bytes) -> Any:
    """The JSON body, or ``BadRequest`` (HTTP 422): not JSON (orjson refuses NaN, Infinity, numbers
    beyond a double such as ``1e400``, lone surrogates, invalid UTF-8) or nested over ``MAX_DEPTH``."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise BadRequest(str(e)) from None
    if too_deep(raw, body):
        raise BadRequest(f"recursion limit exceeded (nesting over {MAX_DEPTH})")
    return body




def faucet_amount(value: object) -> int:
    """The faucet's ``usd`` in micro-USDC, exactly: a decimal string (``"1000"``, ``"0.5"``) or a
    JSON integer; floats, exponents, ``inf``/``nan`` and amounts outside (0, FAUCET_MAX] are refused."""
    usd: int | None
    if isinstance(value, int) and not isinstance(value, bool):
        usd = value * USD
    elif isinstance(value, str) and value.isascii():  # parse_units' \d would take other scripts' digits
        usd = parse_units(value.strip(), 6)
    else:
        usd = None
    if usd is None or not 0 < usd <= FAUCET_MAX:
        raise BadRequest(f"usd: expected a decimal string within (0, {FAUCET_MAX // USD}] with at most 6 decimals")
    return usd


async def _read_body(request: Request) -> bytes | None:
    """The request body, or None when it is over ``MAX_BODY_BYTES`` (the rest is read and dropped)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= MAX_BODY_BYTES:
            chunks.append(chunk)
    return None if size > MAX_BODY_BYTES else b"".join(chunks)


def _excerpt(raw: bytes) -> str:
    """The first bytes of a body for the log (a bytes repr: flat, whatever the body holds)."""
    head = repr(raw[:LOGGED_BODY_BYTES])
    return f"{len(raw)} bytes: {head}{'…' if len(raw) > LOGGED_BODY_BYTES else ''}"


def _error_text(e: BaseException) -> str:
    try:
        text = f"{type(e).__name__}: {e}"
    except Exception:
        text = type(e).__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "…"


class HotPaths:
    """``POST /info`` and ``POST /exchange`` answered straight on ASGI — the bench's hot path, where
    Starlette's middleware stack, Request and Response objects cost about a fifth of the CPU per
    order; everything else (lifespan, the page, /ws, the faucet, wrong methods) goes to Starlette."""

    def __init__(self, service: Service, app: Starlette) -> None:
        self.service = service
        self.app = app
        self.paths = {"/info": service.answer_info, "/exchange": service.answer_exchange}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        handler = self.paths.get(scope.get("path", "")) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= MAX_BODY_BYTES:  # past the limit the rest is read and dropped, then a 413
                chunks.append(chunk)
            if not message.get("more_body"):
                break
        client = scope.get("client")
        if size > MAX_BODY_BYTES:
            status, ctype, payload = TOO_LARGE
        else:
            status, ctype, payload = await handler(client[0] if client else "?", b"".join(chunks))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype), (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


def _json(data: Any) -> Answer:
    return 200, b"application/json", orjson.dumps(data)


def _unprocessable(e: BadRequest) -> Answer:
    return 422, b"text/plain; charset=utf-8", str(e).encode()


def _response(answer: Answer) -> Response:
    return Response(answer[2], status_code=answer[0], media_type=answer[1].decode().split(";")[0])


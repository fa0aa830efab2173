"""The monitor's live dashboard (``perpbox monitor --dashboard-port``): one page over the monitor's
state, pushed to the browser as Server-Sent Events after every round.

* ``GET /`` — the page (``perpbox/web/monitor.html``);
* ``GET /state`` — the state as JSON: ``Monitor.state()`` plus what the page needs beside it (see
  :func:`dashboard_state`);
* ``GET /events`` — Server-Sent Events: the state on connect, then one event per round, and a
  comment line every 15 s so proxies keep the stream open;
* ``GET /plotly.js`` — the plotly.js bundle shipped inside the ``plotly`` package (no CDN).

Each client has its own bounded queue: a client that reads too slowly loses its oldest states, never
the monitor's time (the monitor's listeners only enqueue).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from perpbox.api.page import plotly_bundle
from perpbox.deployer import note
from perpbox.deployer.attestlog import LATEST

log = logging.getLogger("perpbox.monitor.dashboard")
KEEPALIVE_S = 15.0
QUEUE_SIZE = 32  # states a slow client may fall behind before its oldest are dropped
POLL_S = 1.0  # how often a waiting stream looks at the server's should_exit
def _checkpoint(directory: Path) -> dict[str, Any]:
    """Whether the log has a checkpoint, and its tree size (the note's second line)."""
    path = directory / LATEST
    try:
        signed = path.read_text()
    except FileNotFoundError:
        return {"exists": False, "size": None}
    except (OSError, UnicodeDecodeError):
        return {"exists": True, "size": None}
    try:  # the note's text (before its signatures) is the checkpoint
        _, size, _ = note.parse_checkpoint(signed.partition("\n\n")[0] + "\n")
    except note.NoteError:
        return {"exists": True, "size": None}
    return {"exists": True, "size": size}


def attestation_state(monitor: Any) -> dict[str, Any]:
    """The relay's attestation log as the monitor follows it (``monitor.attest``, an ``AttestTail``)."""
    tail = getattr(monitor, "attest", None)
    if tail is None:
        return {"dir": None, "records_read": 0, "checkpoint": None, "feeds": {}}
    directory = Path(tail.path).parent
    feeds = {coin: {"last_ok_ms": st.last_ok_ms,
                    "external": None if st.external is None else str(st.external),
                    "pinned_since_ms": st.pinned_since_ms}
             for coin, st in sorted(tail.status.items())}
    return {"dir": str(directory), "records_read": tail.records,
            "checkpoint": _checkpoint(directory), "feeds": feeds}


def _limits(monitor: Any) -> dict[str, list[dict[str, Any]]]:
    """Every rule's threshold per measurement, structured (``state()["thresholds"]`` as data)."""
    out: dict[str, list[dict[str, Any]]] = {}
    rules = monitor.rules
    for r in rules.rules:
        if r.mode == "signals":
            pairs = [(rules.signals[s].condition, s, rules.signals[s].for_ms) for s in r.signals]
        else:
            pairs = [(c, None, r.for_ms) for c in r.conditions]
        for c, signal, for_ms in pairs:
            out.setdefault(c.metric, []).append({"op": c.op, "threshold": str(c.threshold), "rule": r.id,
                                                 "level": r.level, "signal": signal, "for_s": for_ms / 1000})
    return out


def _over(monitor: Any, coin: str) -> dict[str, list[str]]:
    """Per measurement, the rules whose threshold the market's current value crosses."""
    view = monitor.markets.get(coin)
    values: dict[str, Decimal | None] = view.values if view is not None else {}
    out: dict[str, list[str]] = {}
    rules = monitor.rules
    for r in rules.rules:
        conds = r.conditions or tuple(rules.signals[s].condition for s in r.signals)
        for c in conds:
            if c.holds(values.get(c.metric)) and r.id not in out.get(c.metric, []):
                out.setdefault(c.metric, []).append(r.id)
    return out


def extend_state(monitor: Any, state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (a ``Monitor.state()``) with the attestation status, the thresholds as data
    (``limits``) and, per market, the measurements over a rule's threshold (``over``)."""
    out = dict(state)
    out["attestation"] = attestation_state(monitor)
    out["limits"] = _limits(monitor)
    out["markets"] = [{**m, "over": _over(monitor, m["coin"])} for m in state.get("markets", [])]
    return out


def dashboard_state(monitor: Any) -> dict[str, Any]:
    """What ``GET /state`` answers and each event carries."""
    return extend_state(monitor, monitor.state())


def _dumps(state: dict[str, Any]) -> str:
    return json.dumps(state, default=str, separators=(",", ":"))


class _Client:
    """One ``/events`` stream: a bounded queue fed by the monitor's listener (each state extended
    when the round ends, so a client that lags still sees each round's own values)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, monitor: Any) -> None:
        self.loop, self.monitor = loop, monitor
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = 0

    def _put(self, state: dict[str, Any]) -> None:
        while self.queue.full():  # a slow client: its oldest state goes
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
                self.dropped += 1
        self.queue.put_nowait(state)

    def listener(self, state: dict[str, Any]) -> None:
        """Called by the monitor after every round (on the loop's thread, or from another one)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        try:  # never the monitor's round that fails for the dashboard
            state = extend_state(self.monitor, state)
            if running is self.loop:
                self._put(state)
            elif not self.loop.is_closed():
                self.loop.call_soon_threadsafe(self._put, state)
        except Exception:
            log.exception("dashboard: a state not pushed")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves the process's signals to its host (the monitor's own loop
    handles SIGINT/SIGTERM and stops the dashboard with ``should_exit``)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def dashboard_app(monitor: Any, should_exit: Callable[[], bool] = lambda: False) -> Starlette:
    async def page(request: Request) -> Response:
        return HTMLResponse(resources.files("perpbox").joinpath("web/monitor.html").read_text())

    async def state(request: Request) -> Response:
        return Response(_dumps(dashboard_state(monitor)), media_type="application/json",
                        headers={"Cache-Control": "no-store"})

    async def plotly_js(request: Request) -> Response:
        return Response(plotly_bundle(), media_type="application/javascript",
                        headers={"Cache-Control": "max-age=86400"})

    async def events(request: Request) -> Response:
        client = _Client(asyncio.get_running_loop(), monitor)
        monitor.listeners.append(client.listener)

        async def stream() -> AsyncIterator[str]:
            loop = asyncio.get_running_loop()
            try:
                yield "retry: 2000\n\n"
                yield f"data: {_dumps(dashboard_state(monitor))}\n\n"
                last_sent = loop.time()
                while not should_exit():
                    try:
                        st = await asyncio.wait_for(client.queue.get(), POLL_S)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        if loop.time() - last_sent >= KEEPALIVE_S:
                            yield ": keepalive\n\n"
                            last_sent = loop.time()
                        continue
                    yield f"data: {_dumps(st)}\n\n"
                    last_sent = loop.time()
            finally:
                with contextlib.suppress(ValueError):
                    monitor.listeners.remove(client.listener)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return Starlette(routes=[Route("/", page, methods=["GET"]), Route("/state", state, methods=["GET"]),
                             Route("/events", events, methods=["GET"]),
                             Route("/plotly.js", plotly_js, methods=["GET"])])


async def serve_dashboard(monitor: Any, port: int, host: str = "127.0.0.1") -> uvicorn.Server:
    """Start the dashboard on ``host:port`` as a task on the running loop; the server, once it
    accepts connections (stop it with ``server.should_exit = True``).  A port that cannot be bound
    raises ``OSError`` here (uvicorn's own bind would exit the process)."""
    holder: list[uvicorn.Server] = []
    app = dashboard_app(monitor, lambda: bool(holder) and holder[0].should_exit)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False,
                            timeout_graceful_shutdown=5)
    server = _Server(config)
    holder.append(server)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]), name=f"perpbox-dashboard:{port}")
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    while not server.started:
        if task.done():
            sock.close()
            exc = task.exception()
            raise OSError(f"the dashboard did not start on {host}:{port}") from exc
        await asyncio.sleep(0.02)
    return server


_tasks: set[asyncio.Task[None]] = set()  # the running servers' tasks, kept referenced

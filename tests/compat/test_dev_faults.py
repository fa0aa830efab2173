"""``perpbox serve --dev-faults``: each fault ``POST /dev/fault`` arms does what it says at the API,
a bad request arms nothing, and without the flag the route does not exist."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from eth_account import Account
from hyperliquid.exchange import Exchange

from .conftest import Server, wait_until


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # no clock: only requests change the state, so a refusal can be checked against the state hash
    srv = Server(tmp_path_factory.mktemp("faults") / "data", "--no-agents", "--feed", "none", "--seed", "8",
                 "--dev-faults", "--tick-interval", "0").start()
    yield srv
    srv.stop()


def _fault(srv: Server, **body: Any) -> httpx.Response:
    return httpx.post(srv.url + "/dev/fault", json=body, timeout=30)


def _traded(srv: Server) -> tuple[Exchange, Exchange, str]:
    """Two accounts that traded 0.01 BTC at 100000 (the taker is long)."""
    a, b = Account.create(), Account.create()
    for w in (a, b):
        srv.fund(w.address, "100000")
    ea, eb = Exchange(a, srv.url), Exchange(b, srv.url)
    assert "resting" in ea.order("BTC", False, 0.01, 100000, {"limit": {"tif": "Gtc"}})["response"]["data"][
        "statuses"][0]
    assert "filled" in eb.order("BTC", True, 0.01, 100000, {"limit": {"tif": "Ioc"}})["response"]["data"][
        "statuses"][0]
    return ea, eb, b.address.lower()


def _positions(srv: Server, user: str) -> list[Any]:
    return srv.info({"type": "clearinghouseState", "user": user})["assetPositions"]  # type: ignore[index,no-any-return]


def test_bad_fault_requests_are_refused_and_arm_nothing(faulty: Server, server: Server) -> None:
    def state() -> tuple[int, str]:
        s = faulty.info({"type": "perpboxState"})
        return s["seq"], s["stateHash"]  # type: ignore[index]

    before = state()
    for body in ({"kind": "explode"}, {"kind": "freeze"}, {"kind": "freeze", "seconds": 0},
                 {"kind": "freeze", "seconds": 1e9}, {"kind": "zero_positions", "seconds": True},
                 {"kind": "reject", "match": "", "message": "x"}, {"kind": "reject", "match": "a", "message": "x",
                                                                  "count": 0},
                 {"kind": "delay_fills", "ms": -1}, {"kind": "halt", "coin": 5}, {"kind": "rollback"},
                 {"kind": "rollback", "seconds": -5}, [], "freeze"):
        r = httpx.post(faulty.url + "/dev/fault", json=body, timeout=10)
        assert r.status_code == 422, (body, r.text)
    assert state() == before
    _, _, user = _traded(faulty)
    assert len(_positions(faulty, user)) == 1  # nothing was armed
    # a server without --dev-faults has no such route
    assert httpx.post(server.url + "/dev/fault", json={"kind": "clear"}, timeout=10).status_code in (404, 405)


def test_zero_and_stale_positions_and_delayed_fills(faulty: Server) -> None:
    ea, eb, user = _traded(faulty)
    assert _fault(faulty, kind="zero_positions", seconds=600).json()["status"] == "ok"
    assert _positions(faulty, user) == []
    assert _fault(faulty, kind="clear").status_code == 200
    (pos,) = _positions(faulty, user)
    assert pos["position"]["szi"] == "0.01"
    # stale: the position doubles, the answer stays the one from before
    assert _fault(faulty, kind="stale_positions", seconds=600).status_code == 200
    ea.order("BTC", False, 0.01, 100000, {"limit": {"tif": "Gtc"}})
    assert "filled" in eb.order("BTC", True, 0.01, 100000, {"limit": {"tif": "Ioc"}})["response"]["data"][
        "statuses"][0]
    assert _positions(faulty, user)[0]["position"]["szi"] == "0.01"
    _fault(faulty, kind="clear")
    assert _positions(faulty, user)[0]["position"]["szi"] == "0.02"
    # delayed fills: a fill younger than a minute is left out until the fault is cleared
    assert len(faulty.info({"type": "userFillsByTime", "user": user, "startTime": 0})) == 2  # type: ignore[arg-type]
    assert _fault(faulty, kind="delay_fills", ms=60_000, seconds=600).status_code == 200
    assert faulty.info({"type": "userFillsByTime", "user": user, "startTime": 0}) == []
    assert faulty.info({"type": "userFills", "user": user}) == []
    _fault(faulty, kind="clear")
    assert len(faulty.info({"type": "userFills", "user": user})) == 2  # type: ignore[arg-type]


def test_reject_refuses_the_next_matching_requests_then_lets_them_through(faulty: Server) -> None:
    w = Account.create()
    faulty.fund(w.address, "100000")
    ex = Exchange(w, faulty.url)
    message = "Order must have minimum value of $10."
    assert _fault(faulty, kind="reject", match='"type":"order"', message=message, count=2).status_code == 200
    for _ in range(2):
        res = ex.order("BTC", True, 0.01, 90000, {"limit": {"tif": "Gtc"}})
        assert res == {"status": "ok", "response": {"type": "order", "data": {"statuses": [{"error": message}]}}}
    res = ex.order("BTC", True, 0.01, 90000, {"limit": {"tif": "Gtc"}})
    assert "resting" in res["response"]["data"]["statuses"][0]
    # other actions matching get the venue's err answer
    _fault(faulty, kind="reject", match='"type":"updateLeverage"', message="venue busy", count=1)
    assert ex.update_leverage(5, "BTC") == {"status": "err", "response": "venue busy"}


def _state(srv: Server) -> dict[str, Any]:
    return srv.info({"type": "perpboxState"})  # type: ignore[return-value]


def test_a_rollback_drops_what_happened_since_and_rebuilds_the_state_the_venue_had(faulty: Server) -> None:
    ea, eb, user = _traded(faulty)  # trade A: the taker is long 0.01
    before = _state(faulty)  # the venue as it was between the two trades (no clock: only requests change it)
    wait_until(lambda: _state(faulty)["time"] > before["time"] + 2_000)
    ea.order("BTC", False, 0.01, 100000, {"limit": {"tif": "Gtc"}})
    eb.order("BTC", True, 0.01, 100000, {"limit": {"tif": "Ioc"}})  # trade B, at least 2 s after `before`
    assert _positions(faulty, user)[0]["position"]["szi"] == "0.02"
    assert len(faulty.info({"type": "userFills", "user": user})) == 2  # type: ignore[arg-type]
    # back to 1 s after `before`: trade B (and its resting order) vanish, trade A stays
    seconds = (_state(faulty)["time"] - before["time"] - 1_000) / 1000
    armed = _fault(faulty, kind="rollback", seconds=seconds).json()
    assert armed["status"] == "ok" and armed["fault"]["kept_seq"] == before["seq"] and armed["fault"]["dropped"] >= 2
    after = _state(faulty)
    assert (after["seq"], after["stateHash"]) == (before["seq"], before["stateHash"])
    assert _positions(faulty, user)[0]["position"]["szi"] == "0.01"
    assert len(faulty.info({"type": "userFills", "user": user})) == 1  # type: ignore[arg-type]
    # the venue goes on from there
    res = eb.order("BTC", False, 0.01, 150000, {"limit": {"tif": "Gtc"}})
    assert "resting" in res["response"]["data"]["statuses"][0]
    assert _state(faulty)["seq"] > before["seq"]


def test_a_halt_refuses_orders_and_settles_positions(faulty: Server) -> None:
    _, eb, user = _traded(faulty)
    assert _fault(faulty, kind="halt", coin="BTC", seconds=600).status_code == 200
    res = eb.order("BTC", True, 0.01, 100000, {"limit": {"tif": "Gtc"}})
    assert "error" in res["response"]["data"]["statuses"][0]
    assert _positions(faulty, user) == []  # settled at the mark: the position is gone without a fill
    assert _fault(faulty, kind="halt", coin="NOPE").status_code == 422


def test_ws_drop_and_freeze_end_the_connections_and_a_frozen_venue_answers_late(faulty: Server) -> None:
    async def run() -> None:
        ws_url = faulty.url.replace("http", "ws") + "/ws"
        async with websockets.connect(ws_url) as ws:
            await ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "allMids"}}))
            await ws.recv()
            await asyncio.to_thread(_fault, faulty, kind="ws_drop")
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 30)
        await asyncio.to_thread(_fault, faulty, kind="freeze", seconds=2)
        # while frozen a new connection is refused, and an /info request waits for the thaw
        async with websockets.connect(ws_url) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        answer = await asyncio.to_thread(faulty.info, {"type": "meta"})
        assert "universe" in answer  # type: ignore[operator]

    asyncio.run(run())
    wait_until(lambda: faulty.info({"type": "meta"}))


def test_the_fault_route_is_documented(tmp_path: Path) -> None:
    from perpbox.api import faults

    for kind in faults.KINDS:
        assert f"``{kind}``" in (faults.__doc__ or "")

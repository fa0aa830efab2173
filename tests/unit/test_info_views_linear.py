"""Every ``/info`` view does work linear in what it returns — checked by counting work, not timing.

The work of a view is the number of Python lines executed in ``perpbox/api`` and the read models
(``perpbox/store/readmodels.py``) while it answers (``sys.settrace`` line events; the engine is
compiled or elsewhere and not counted, and C builtins such as ``sorted`` count as one line). A state
is built twice from real commands, with n and 2n of the thing a view scales with (open orders with
TP/SL children, closed orders, fills, minutes of candles); a view that does one pass over what it
returns does about twice the work on the bigger state (below 2.4×), while a view that rescans the
user's orders per order (the old ``_children``) does about four times as much. Views whose answer
does not grow with the state (``orderStatus`` of one order, a fixed ``userFillsByTime`` window, the
day's statistics behind ``assetCtxs``) must do about the same work on both (below 1.25×).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import perpbox.api
import perpbox.store.readmodels
from perpbox.api.info import InfoAPI
from perpbox.config import load_config
from perpbox.core.numbers import USD, round_price_sig
from perpbox.exchange import Exchange
from perpbox.exchange import commands as C
from perpbox.exchange.results import CANCELED, Filled, Resting, Statuses
from perpbox.store.readmodels import ReadModels
from perpbox.store.sequencer import bootstrap_commands

API_DIR = str(Path(perpbox.api.__file__).resolve().parent)
READ_MODELS = str(Path(perpbox.store.readmodels.__file__).resolve())
COUNTED = (API_DIR, READ_MODELS)  # the views and the read models they query (api/ held both before issue 18)
USER = "0x" + "a1" * 20
TAKER = "0x" + "b2" * 20
LINEAR = 2.4  # n -> 2n: a single pass gives ~2, a pass per item ~4
FLAT = 1.25  # a view whose answer does not grow with the state


def work(fn: Callable[[], Any]) -> int:
    """Python lines executed under perpbox/api and in the read models while ``fn`` runs."""
    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if not frame.f_code.co_filename.startswith(COUNTED):
            return None
        if event == "line":
            count += 1
        return tracer

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(old)
    return count


class State:
    def __init__(self) -> None:
        self.ex = Exchange()
        self.rm = ReadModels()
        self.ts = 1_700_000_000_000
        config = load_config()
        self.specs = {m.spec.asset: m.spec for m in config.markets}
        self.marks = {m.spec.asset: m.price for m in config.markets}
        for c in bootstrap_commands(config, {d.name: "0x" + "d0" * 20 for d in config.dexes}):
            self.do(c)
        for u in (USER, TAKER):
            self.do(C.Deposit(ts=0, user=u, usd=10**9 * USD))
        self.info = InfoAPI(self.ex, self.rm, lambda: self.ts)

    def do(self, cmd: C.Command, step_ms: int = 1) -> Any:
        import msgspec

        self.ts += step_ms
        outcome = self.ex.execute(msgspec.structs.replace(cmd, ts=self.ts))
        self.rm.apply(outcome.events, self.ex.pricing.prices)
        return outcome.response

    def bid(self, i: int) -> C.OrderRequest:
        asset = sorted(self.specs)[i % len(self.specs)]
        spec, mark = self.specs[asset], self.marks[asset]
        px = round_price_sig(mark * (80 - (i // len(self.specs)) % 15) // 100, spec.px_decimals)
        return C.OrderRequest(asset=asset, is_buy=True, px=px, sz=-(-(20 * USD) // px))

    def open_orders(self, n: int) -> None:
        """n resting bids of USER; every fifth a normalTpsl parent with a TP and an SL child."""
        for i in range(n):
            parent = self.bid(i)
            if i % 5:
                out = self.do(C.PlaceOrders(ts=0, user=USER, orders=[parent]))
            else:
                spec, mark = self.specs[parent.asset], self.marks[parent.asset]
                up = round_price_sig(mark * 3 // 2, spec.px_decimals)
                down = round_price_sig(parent.px // 2, spec.px_decimals)
                kids = [C.OrderRequest(asset=parent.asset, is_buy=False, px=up, sz=parent.sz, tpsl="tp",
                                       trigger_px=up, is_market=True, reduce_only=True),
                        C.OrderRequest(asset=parent.asset, is_buy=False, px=down, sz=parent.sz, tpsl="sl",
                                       trigger_px=down, is_market=True, reduce_only=True)]
                out = self.do(C.PlaceOrders(ts=0, user=USER, orders=[parent, *kids], grouping="normalTpsl"))
            assert isinstance(out[0], Resting), out

    def fills(self, n: int, step_ms: int = 1) -> None:
        """n fills of USER (maker), one taker order each, ``step_ms`` apart."""
        btc = self.specs[0]
        px = self.marks[0] + self.marks[0] // 100
        assert isinstance(self.do(C.PlaceOrders(ts=0, user=USER, orders=[
            C.OrderRequest(asset=btc.asset, is_buy=False, px=px, sz=10 * n)]))[0], Resting)
        hit = C.OrderRequest(asset=btc.asset, is_buy=True, px=px, sz=10, tif="Ioc")
        for _ in range(n):
            out = self.do(C.PlaceOrders(ts=0, user=TAKER, orders=[hit]), step_ms)
            assert isinstance(out[0], Filled), out

    def closed_orders(self, n: int) -> None:
        """n placed-and-cancelled orders of USER."""
        for i in range(n):
            bid = self.bid(i)
            oid = self.do(C.PlaceOrders(ts=0, user=USER, orders=[bid]))[0].oid
            assert self.do(C.Cancel(ts=0, user=USER, asset=bid.asset, oid=oid)) == Statuses((CANCELED,))


def open_orders_states(n: int) -> tuple[State, State]:
    small, big = State(), State()
    small.open_orders(n)
    big.open_orders(2 * n)
    return small, big


@pytest.fixture(scope="module")
def by_open_orders() -> tuple[State, State]:
    return open_orders_states(150)


@pytest.mark.parametrize("view", ["frontendOpenOrders", "openOrders", "historicalOrders", "webData2"])
def test_order_views_are_linear_in_open_orders(by_open_orders: tuple[State, State], view: str) -> None:
    small, big = by_open_orders
    body = {"type": view, "user": USER}
    n_small, n_big = len(small.info.handle(body)), len(big.info.handle(body))
    w_small, w_big = work(lambda: small.info.handle(body)), work(lambda: big.info.handle(body))
    if view != "webData2":
        assert n_big == 2 * n_small > 0  # children ride inside their parents for the frontend views
    assert w_big < LINEAR * w_small, (view, w_small, w_big)


def test_children_are_listed_inside_their_parent(by_open_orders: tuple[State, State]) -> None:
    """The fix keeps the answer: each fifth order carries its TP and SL, newest order first."""
    small, _ = by_open_orders
    rows = small.info.handle({"type": "frontendOpenOrders", "user": USER})
    assert len(rows) == 150
    assert [r["oid"] for r in rows] == sorted((r["oid"] for r in rows), reverse=True)
    with_kids = [r for r in rows if r["children"]]
    assert len(with_kids) == 30
    for r in with_kids:
        assert [k["orderType"] for k in r["children"]] == ["Take Profit Market", "Stop Market"]
        assert [k["oid"] for k in r["children"]] == [r["oid"] + 1, r["oid"] + 2]
        assert all(k["children"] == [] for k in r["children"])
    hist = small.info.handle({"type": "historicalOrders", "user": USER})
    parents = {h["order"]["oid"]: h["order"]["children"] for h in hist if h["order"]["children"]}
    assert parents == {r["oid"]: r["children"] for r in with_kids}


def test_order_status_by_cloid_of_a_closed_order_is_flat() -> None:
    """The lookup of a closed order by cloid does not scan the user's history."""
    states = []
    for n in (300, 600):
        st = State()
        cloid = "0x" + "ab" * 16
        bid = st.bid(0)
        oid = st.do(C.PlaceOrders(ts=0, user=USER, orders=[C.OrderRequest(asset=bid.asset, is_buy=True, px=bid.px,
                                                                           sz=bid.sz, cloid=cloid)]))[0]
        oid = oid.oid
        assert st.do(C.Cancel(ts=0, user=USER, asset=bid.asset, oid=oid)) == Statuses((CANCELED,))
        st.closed_orders(n)
        body = {"type": "orderStatus", "user": USER, "oid": cloid}
        got = st.info.handle(body)
        assert got["status"] == "order" and got["order"]["order"]["oid"] == oid
        assert got["order"]["status"] == "canceled"
        states.append(work(lambda st=st, body=body: st.info.handle(body)))
    assert states[1] < FLAT * states[0], states


def test_fill_views_read_what_they_return() -> None:
    """userFills (the newest 2,000) and a fixed userFillsByTime window do the same work whether
    the user has 2,500 or 5,000 fills."""
    works: dict[str, list[int]] = {"userFills": [], "userFillsByTime": []}
    for n in (2_500, 5_000):
        st = State()
        st.fills(n)
        first = st.rm.fills[USER][0].time
        window = {"type": "userFillsByTime", "user": USER, "startTime": first + 100, "endTime": first + 199}
        newest = {"type": "userFills", "user": USER}
        assert len(st.info.handle(window)) == 100
        assert len(st.info.handle(newest)) == 2_000
        works["userFills"].append(work(lambda st=st, b=newest: st.info.handle(b)))
        works["userFillsByTime"].append(work(lambda st=st, b=window: st.info.handle(b)))
    for view, (w_small, w_big) in works.items():
        assert w_big < FLAT * w_small, (view, w_small, w_big)


def test_day_statistics_read_the_last_day_only() -> None:
    """metaAndAssetCtxs (inside webData2) sums the last 24 h of candles: with two or four days of
    one-minute candles behind it, the work is the same; candleSnapshot of one hour likewise."""
    works: list[tuple[int, int]] = []
    answers = []
    for days in (2, 4):
        st = State()
        st.fills(days * 1_440 // 3, step_ms=180_000)  # a fill every 3 minutes
        ctx_body = {"type": "metaAndAssetCtxs"}
        hour = {"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "1m", "startTime": st.ts - 3_600_000,
                                                   "endTime": st.ts}}
        answers.append((st.info.handle(ctx_body)[1][0]["dayNtlVlm"], len(st.info.handle(hour))))
        # independently: the fills whose minute starts within the last day / the hour's window
        minutes = [f.time - f.time % 60_000 for f in st.rm.fills[USER]]
        in_day = sum(1 for m in minutes if m >= st.ts - 86_400_000)
        in_hour = sum(1 for m in minutes if st.ts - 3_600_000 < m + 60_000 and m <= st.ts)
        assert answers[-1] == (f"{in_day * 101 // 10}.{in_day * 101 % 10}", in_hour)
        works.append((work(lambda st=st, b=ctx_body: st.info.handle(b)), work(lambda st=st, b=hour: st.info.handle(b))))
    assert answers[0] == answers[1]  # ~480 fills of $10.1 in the day, ~20 candles in the hour
    for (a_small, a_big) in zip(works[0], works[1], strict=True):
        assert a_big < FLAT * a_small, works

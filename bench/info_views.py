"""Milliseconds per ``/info`` view for one heavy user: 1,000 and 5,000 open orders, 10,000 and
100,000 fills.

What it measures: the time of ``InfoAPI.handle(body)`` alone — the view's Python work over the
engine's state and the read models, and building the JSON-ready answer — for ``frontendOpenOrders``,
``historicalOrders``, ``openOrders``, ``webData2``, ``userFills``, ``clearinghouseState`` and
``orderStatus`` (by the cloid of a closed order, the read model's lookup).  No server, no HTTP, no
JSON encoding: the engine and read models are built in process from real commands (the default
markets' bootstrap, ``Deposit``, ``PlaceOrders``), as the sequencer would apply them.  Every figure
is the median of ``--runs`` calls (default 7) after one warm-up call.

State per scenario (built once, untimed): user U holds ``orders`` open orders (resting bids below
the mark spread over the main dex's markets, every tenth one a ``normalTpsl`` parent with a
take-profit and a stop-loss child waiting for it) and has ``fills`` fills, made by a taker hitting
U's resting ask with $10 orders (the read model keeps a user's last 10,000 fills, so 100k fills
shows that the views read what they return, not what happened).  The venue allows a user 1,000
open orders plus one per $5M traded (at most 5,000), so for more than 1,000 U first trades $5B
round trips with the taker, ending flat.  If the engine still caps U's open orders below the
target, the bench says so and measures what rested.

    .venv/bin/python bench/info_views.py [--runs 7] [--quick]

``--quick`` runs 200/1,000 orders and 1k/5k fills.  Output: one line per (scenario, view), then
``info_views_max_ms=<float>`` (the slowest median) last.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

_SRC = Path(__file__).resolve().parents[1] / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from perpbox.api.info import InfoAPI  # noqa: E402
from perpbox.config import load_config  # noqa: E402
from perpbox.core.numbers import USD, round_price_sig  # noqa: E402
from perpbox.exchange import Exchange  # noqa: E402
from perpbox.exchange import commands as C  # noqa: E402
from perpbox.exchange.results import Filled, Response, Resting  # noqa: E402
from perpbox.store.readmodels import ReadModels  # noqa: E402
from perpbox.store.sequencer import backstop_deposits, bootstrap_commands  # noqa: E402

USER = "0x" + "a1" * 20
TAKER = "0x" + "b2" * 20
DEPLOYER = "0x" + "d0" * 20
VIEWS = ("frontendOpenOrders", "historicalOrders", "openOrders", "webData2", "userFills", "clearinghouseState",
         "orderStatus")


class State:
    """An engine and its read models, fed command by command as the venue's sequencer does."""

    def __init__(self) -> None:
        self.ex = Exchange()
        self.rm = ReadModels()
        self.ts = 1_700_000_000_000
        self.last_response: Response | None = None
        config = load_config()
        self.apply_all(bootstrap_commands(config, {d.name: DEPLOYER for d in config.dexes}))
        self.apply_all(backstop_deposits(config))
        self.specs = [m.spec for m in config.markets]  # the main dex
        self.marks = {m.spec.asset: m.price for m in config.markets}

    def apply(self, cmd: C.Command) -> Response:
        self.ts += 1
        outcome = self.ex.execute(cmd)
        self.rm.apply(outcome.events, self.ex.reads.margin_prices())
        self.last_response = outcome.response
        return outcome.response

    def apply_all(self, cmds: list[C.Command]) -> None:
        for c in cmds:
            self.apply(c)

    def at(self, **kw: Any) -> dict[str, Any]:
        return {"ts": self.ts, **kw}


def build(n_orders: int, n_fills: int) -> tuple[State, str]:
    """The state above; returns it and the cloid of one of U's closed orders."""
    st = State()
    st.apply(C.Deposit(**st.at(user=USER, usd=10**10 * USD)))
    st.apply(C.Deposit(**st.at(user=TAKER, usd=10**10 * USD)))
    earn_open_order_headroom(st, n_orders)
    # fills first (they close U's ask), so the open orders are the newest orders in U's history
    btc = st.specs[0]
    mark = st.marks[btc.asset]
    ask_px = mark + mark // 100  # 1% above the mark, 5 significant figures for BTC
    closed_cloid = "0x" + "c1" * 16
    st.apply(C.PlaceOrders(**st.at(user=USER, orders=[C.OrderRequest(asset=btc.asset, is_buy=False, px=ask_px,
                                                                     sz=10 * n_fills, cloid=closed_cloid)])))
    hit = C.OrderRequest(asset=btc.asset, is_buy=True, px=ask_px, sz=10, tif="Ioc")  # $10.1, the minimum
    for _ in range(n_fills):
        st.apply(C.PlaceOrders(**st.at(user=TAKER, orders=[hit])))
    placed = 0
    i = 0
    while placed < n_orders:
        spec = st.specs[i % len(st.specs)]
        mark = st.marks[spec.asset]
        # 66%..80% of the mark: rests, never fills; at most 5 significant figures
        px = round_price_sig(mark * (80 - (i // len(st.specs)) % 15) // 100, spec.px_decimals)
        sz = -(-(20 * USD) // px)  # lots for ~$20 of notional (px * sz is micro-USDC)
        # a parent with a TP and an SL waiting for it (from 1,000 open orders on the venue takes no triggers)
        if i % 10 == 0 and placed + 3 <= min(n_orders, 990):
            up, down = round_price_sig(mark * 3 // 2, spec.px_decimals), round_price_sig(px // 2, spec.px_decimals)
            tp = C.OrderRequest(asset=spec.asset, is_buy=False, px=up, sz=sz, tpsl="tp", trigger_px=up,
                                is_market=True, reduce_only=True)
            sl = C.OrderRequest(asset=spec.asset, is_buy=False, px=down, sz=sz, tpsl="sl", trigger_px=down,
                                is_market=True, reduce_only=True)
            orders = [C.OrderRequest(asset=spec.asset, is_buy=True, px=px, sz=sz), tp, sl]
            st.apply(C.PlaceOrders(**st.at(user=USER, orders=orders, grouping="normalTpsl")))
        else:
            st.apply(C.PlaceOrders(**st.at(user=USER, orders=[C.OrderRequest(asset=spec.asset, is_buy=True,
                                                                              px=px, sz=sz)])))
        i += 1
        now = st.ex.reads.open_order_count(USER)
        if now == placed:  # refused: the engine's open-order limit (or a bad price)
            print(f"note: the engine kept {now} open orders for one user (target {n_orders}): "
                  f"last answer {st.last_response!r}", file=sys.stderr)
            break
        placed = now
    return st, closed_cloid


def earn_open_order_headroom(st: State, n_orders: int) -> None:
    """The venue allows 1,000 open orders plus one per $5M a user has traded (at most 5,000): U
    trades $5B round trips of BTC with the taker at the mark, ending flat, until ``n_orders`` fit."""
    btc, mark = st.specs[0], st.marks[st.specs[0].asset]
    sz = 5_000_000_000 * USD // mark  # $5B of BTC, in lots
    need = (n_orders - 1_000) * 5_000_000 * USD
    is_buy = True
    while st.ex.reads.traded_notional(USER) < need:
        rest = st.apply(C.PlaceOrders(**st.at(user=USER, orders=[C.OrderRequest(asset=btc.asset, is_buy=is_buy,
                                                                                px=mark, sz=sz)])))
        hit = st.apply(C.PlaceOrders(**st.at(user=TAKER, orders=[C.OrderRequest(asset=btc.asset, is_buy=not is_buy,
                                                                                px=mark, sz=sz, tif="Ioc")])))
        assert isinstance(rest.items[0], Resting) and isinstance(hit.items[0], Filled), (rest, hit)
        is_buy = not is_buy
    if not is_buy:  # end flat
        earn_round = C.OrderRequest(asset=btc.asset, is_buy=False, px=mark, sz=sz)
        st.apply(C.PlaceOrders(**st.at(user=USER, orders=[earn_round])))
        st.apply(C.PlaceOrders(**st.at(user=TAKER, orders=[C.OrderRequest(asset=btc.asset, is_buy=True, px=mark,
                                                                          sz=sz, tif="Ioc")])))


def median_ms(info: InfoAPI, body: dict[str, Any], runs: int) -> float:
    info.handle(body)  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        info.handle(body)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="200/1,000 open orders, 1k/5k fills")
    args = ap.parse_args()
    scenarios = ([(200, 1_000), (1_000, 5_000)] if args.quick else
                 [(1_000, 10_000), (5_000, 10_000), (1_000, 100_000), (5_000, 100_000)])
    worst = 0.0
    for n_orders, n_fills in scenarios:
        t0 = time.perf_counter()
        st, cloid = build(n_orders, n_fills)
        info = InfoAPI(st.ex, st.rm, lambda st=st: st.ts)  # type: ignore[misc]
        live = st.ex.reads.open_order_count(USER)
        print(f"# {live} open orders (target {n_orders}), {n_fills} fills "
              f"({len(st.rm.fills.get(USER, ()))} kept), built in {time.perf_counter() - t0:.1f} s")
        for view in VIEWS:
            body: dict[str, Any] = {"type": view, "user": USER}
            if view == "orderStatus":
                body["oid"] = cloid
            ms = median_ms(info, body, args.runs)
            worst = max(worst, ms)
            print(f"orders={n_orders:<5} fills={n_fills:<6} {view:<20} {ms:9.2f} ms")
    print(f"info_views_max_ms={worst:.2f}")


if __name__ == "__main__":
    main()

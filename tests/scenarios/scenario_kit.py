"""Shared harness for the exchange scenario tests (the ``sim`` fixture lives in conftest.py).

``Sim`` drives an ``Exchange`` with commands, keeps every event the engine returned (so the end of
each scenario can check ``Exchange.replay(events).state_hash() == ex.state_hash()``), and offers
``audit()``: money conservation to the unit, replay equality, an uncrossed book and equal long and
short open interest per market.

Units (perpbox.core.numbers): a market with ``sz_decimals = k`` has sizes in lots of ``10**-k`` and
prices in units of ``10**-(6-k)`` USD, so ``px * sz`` is micro-USDC.  The helpers below turn human
numbers ("0.1" BTC, 100_000 USD) into those units so the tests read like the worked examples.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from perpbox.core.numbers import USD, parse_units
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.engine import Exchange
from perpbox.exchange.results import OK, Statuses
from perpbox.ledger.ledger import FEE_ACCOUNT
from perpbox.market.margin import MarginTable
from perpbox.market.spec import MarginMode, MarketSpec

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
CAROL = "0x" + "c4" * 20
DAVE = "0x" + "d5" * 20
SUB = "0x" + "5b" * 20

BTC_ID = 0
ETH_ID = 1


def usd(x: int | str | float) -> int:
    """Human USD -> micro-USDC (exact; strings for fractional amounts)."""
    v = parse_units(str(x), 6)
    assert v is not None, x
    return v


def btc_spec(**kw: Any) -> MarketSpec:
    """BTC-like: sz_decimals 5 (lots of 1e-5 BTC), prices in 0.1 USD, 40x max, default fees."""
    kw.setdefault("margin_table", MarginTable.single(40))
    return MarketSpec("BTC", BTC_ID, 5, **kw)


def eth_spec(**kw: Any) -> MarketSpec:
    """ETH-like: sz_decimals 4 (lots of 1e-4 ETH), prices in 0.01 USD, 25x max."""
    kw.setdefault("margin_table", MarginTable.single(25))
    return MarketSpec("ETH", ETH_ID, 4, **kw)


def P(spec: MarketSpec, human: int | str) -> int:
    """Human price -> price units of ``spec``."""
    v = parse_units(str(human), spec.px_decimals)
    assert v is not None, human
    return v


def S(spec: MarketSpec, human: int | str) -> int:
    """Human size -> lots of ``spec``."""
    v = parse_units(str(human), spec.sz_decimals)
    assert v is not None, human
    return v


class Sim:
    def __init__(self) -> None:
        self.ex = Exchange()
        self.events: list[V.Event] = []
        self.last: list[V.Event] = []
        self.ts = 1_700_000_000_000
        self.specs: dict[int, MarketSpec] = {}

    # -- driving ------------------------------------------------------------------------------
    def do(self, cmd_type: type, **kw: Any) -> Any:
        self.ts += 1
        outcome = self.ex.execute(cmd_type(ts=self.ts, **kw))
        self.events.extend(outcome.events)
        self.last = outcome.events
        return outcome.response

    def list_market(self, spec: MarketSpec, mark_human: int | str | None = None) -> MarketSpec:
        mark = 0 if mark_human is None else P(spec, mark_human)
        assert self.do(C.AddMarket, spec=spec, mark_px=mark) == OK
        self.specs[spec.asset] = spec
        return spec

    def deposit(self, user: str, human_usd: int | str) -> Any:
        return self.do(C.Deposit, user=user, usd=usd(human_usd))

    def withdraw(self, user: str, micro: int) -> Any:
        return self.do(C.Withdraw, user=user, usd=micro)

    def transfer(self, src: str, dst: str, micro: int) -> Any:
        return self.do(C.Transfer, src=src, dst=dst, usd=micro)

    def send(self, user: str, src_dex: str, dst_dex: str, micro: int, dst: str | None = None,
             src: str | None = None) -> Any:
        """``sendAsset``: ``micro`` USDC from ``src`` (default ``user``) on ``src_dex`` to ``dst``
        (default ``user``) on ``dst_dex`` ("" first dex, a HIP-3 dex, "spot")."""
        return self.do(C.SendAsset, user=user, src=src or user, dst=dst or user, src_dex=src_dex, dst_dex=dst_dex,
                       usd=micro)

    def fund(self, user: str, human_usd: int | str, dex: str = "") -> None:
        """Deposit (it lands on the first dex) and, for a HIP-3 dex, send it there."""
        assert self.deposit(user, human_usd) == OK
        if dex:
            assert self.send(user, "", dex, usd(human_usd)) == OK

    def req(self, asset: int, is_buy: bool, px: int | str, sz: int | str, **kw: Any) -> C.OrderRequest:
        """An OrderRequest from human price/size (trigger_px too, if given)."""
        spec = self.specs[asset]
        if "trigger_px" in kw:
            kw["trigger_px"] = P(spec, kw["trigger_px"])
        return C.OrderRequest(asset=asset, is_buy=is_buy, px=P(spec, px), sz=S(spec, sz), **kw)

    def order(self, user: str, asset: int, is_buy: bool, px: int | str, sz: int | str, **kw: Any) -> Any:
        """Place one order; returns its per-order status."""
        resp = self.do(C.PlaceOrders, user=user, orders=[self.req(asset, is_buy, px, sz, **kw)])
        assert isinstance(resp, Statuses) and len(resp) == 1, resp
        return resp[0]

    def batch(self, user: str, reqs: list[C.OrderRequest], grouping: str = "na") -> Any:
        return self.do(C.PlaceOrders, user=user, orders=reqs, grouping=grouping)

    def cancel(self, user: str, asset: int, oid: int) -> Any:
        return self.do(C.Cancel, user=user, asset=asset, oid=oid)

    def leverage(self, user: str, asset: int, lev: int, cross: bool = True) -> Any:
        return self.do(C.UpdateLeverage, user=user, asset=asset, is_cross=cross, leverage=lev)

    def iso_margin(self, user: str, asset: int, micro: int) -> Any:
        return self.do(C.UpdateIsolatedMargin, user=user, asset=asset, usd=micro)

    def tick(self, asset: int, mark_human: int | str) -> Any:
        return self.do(C.Tick, marks={asset: P(self.specs[asset], mark_human)})

    # -- reading ------------------------------------------------------------------------------
    def acct(self, user: str):
        return self.ex.ledger.accounts[user]

    def pos(self, user: str, asset: int):
        return self.ex.holdings.position(user, asset)

    def szi(self, user: str, asset: int) -> int:
        p = self.ex.holdings.position(user, asset)
        return 0 if p is None else p.szi

    def cash(self, user: str) -> int:
        return self.ex.ledger.accounts[user].raw_usd

    def fees(self) -> int:
        return self.ex.ledger.accounts[FEE_ACCOUNT].raw_usd

    def of(self, kind: type, evs: list[V.Event] | None = None) -> list[Any]:
        return [e for e in (self.last if evs is None else evs) if isinstance(e, kind)]

    def closed(self, evs: list[V.Event] | None = None) -> dict[int, str]:
        return {e.oid: e.status for e in self.of(V.OrderClosed, evs)}

    def resting_oids(self, asset: int, is_buy: bool) -> list[int]:
        return [o.oid for o in self.ex.board.books[asset].iter_side(is_buy)]

    # -- end-of-scenario checks ------------------------------------------------------------------
    def audit(self) -> None:
        ex = self.ex
        led = ex.ledger
        assert led.total_cash() == led.deposits - led.withdrawals, "money not conserved"
        assert Exchange.replay(self.events).state_hash() == ex.state_hash(), "replay diverged"
        for asset, book in ex.board.books.items():
            assert not book.crossed(), f"book {asset} crossed"
            longs = sum(p.szi for a in led.accounts.values() for p in a.positions.values()
                        if p.asset == asset and p.szi > 0)
            shorts = sum(-p.szi for a in led.accounts.values() for p in a.positions.values()
                         if p.asset == asset and p.szi < 0)
            assert longs == shorts, f"open interest unbalanced in {asset}"
            for o in book.orders.values():
                assert o.sz > 0 and o.oid in ex.orders.orders and o.status == "open"


__all__ = ["ALICE", "BOB", "BTC_ID", "CAROL", "DAVE", "ETH_ID", "SUB", "USD", "Decimal", "MarginMode",
           "MarginTable", "P", "S", "Sim", "btc_spec", "eth_spec", "usd"]

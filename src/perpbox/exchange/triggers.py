"""Trigger orders (TP/SL): the armed orders of each market, and firing them when the mark
crosses their trigger price.

A fired order is re-checked as the venue does (a reduce-only one is sized to the position or
cancelled; any other needs margin at its execution price) and then executed by the order desk.
Market triggers execute with Hyperliquid's documented 10% slippage tolerance from the mark.
"""

from __future__ import annotations

from typing import ClassVar

from perpbox.book.order import Order
from perpbox.exchange import events as V
from perpbox.exchange.markets import MarketBoard
from perpbox.exchange.ports import TriggerDesk
from perpbox.exchange.prices import MarketPricing
from perpbox.exchange.sink import Applier, EventSink

TRIGGER_SLIPPAGE_BPS = 1000  # Hyperliquid: market TP/SL execute with 10% slippage tolerance


def trigger_hit(is_buy: bool, tpsl: str, trigger_px: int, mark: int) -> bool:
    """Hyperliquid: a sell TP fires on "Price above", a sell SL on "Price below"; buys mirror."""
    above = (tpsl == "tp") != is_buy
    return mark >= trigger_px if above else mark <= trigger_px


class Triggers:
    """Owns the armed trigger orders (asset -> oid -> order; the orders themselves are the order
    desk's) and their two events, ``OrderTriggered`` and ``OrderArmed``."""

    STATE: ClassVar[tuple[str, ...]] = ("armed",)

    def __init__(self, sink: EventSink, board: MarketBoard, pricing: MarketPricing, desk: TriggerDesk) -> None:
        self.sink = sink
        self.board = board
        self.pricing = pricing
        self.desk = desk
        self.armed: dict[int, dict[int, Order]] = {}

    def appliers(self) -> dict[type, Applier]:
        return {V.OrderTriggered: self._on_order_triggered, V.OrderArmed: self._on_order_armed}

    # -- parts of the order desk's appliers --------------------------------------------------------
    def arm(self, order: Order) -> None:
        armed = self.armed.get(order.asset)
        if armed is None:
            armed = self.armed[order.asset] = {}
        armed[order.oid] = order

    def disarm(self, order: Order) -> None:
        del self.armed[order.asset][order.oid]

    # -- firing ------------------------------------------------------------------------------------
    def fire_all(self, ts: int) -> None:
        """Every market with armed orders, by asset (the tick's trigger step)."""
        for asset in sorted(self.armed):
            self.fire(ts, asset)

    def fire_in(self, ts: int, assets: list[int]) -> None:
        for asset in assets:
            if asset in self.armed:
                self.fire(ts, asset)

    def fire(self, ts: int, asset: int) -> None:
        mark = self.pricing.mark(asset)
        if not mark:
            return
        due = sorted(o.oid for o in self.armed[asset].values() if trigger_hit(o.is_buy, o.tpsl, o.trigger_px, mark))
        spec = self.board.market(asset)
        desk = self.desk
        for oid in due:
            order = desk.order(oid)
            if order is None or order.status != "waitingForTrigger":
                continue  # cancelled by an earlier trigger this tick (sibling, reduce-only upkeep)
            if order.is_market:
                # Hyperliquid's documented 10% tolerance from the mark.  The order's own ``p`` is not
                # a cap: the official SDK's TP/SL example sends p = triggerPx for market triggers,
                # which would leave every gap through the trigger unfilled.
                px = spec.slippage_px(mark, order.is_buy, TRIGGER_SLIPPAGE_BPS)
            else:
                px = order.px
            self.sink.emit(V.OrderTriggered(ts=ts, oid=oid, mark_px=mark, px=px))
            if order.reduce_only:
                cap = desk.reduce_capacity(order)
                if cap == 0:
                    desk.close(ts, order, "reduceOnlyCanceled")
                    continue
                if order.sz == 0 or order.sz > cap:  # size 0: the whole position (positionTpsl)
                    self.sink.emit(V.OrderResized(ts=ts, oid=oid, sz=cap))
            elif desk.margin_check(order.user, self.board.rules_of(asset), order.is_buy, px, order.sz) is not None:
                desk.close(ts, order, "marginCanceled")
                continue
            desk.execute(ts, order)

    # -- appliers ----------------------------------------------------------------------------------
    def _on_order_triggered(self, ev: V.OrderTriggered) -> None:
        order = self.desk.order(ev.oid)
        assert order is not None
        self.disarm(order)
        order.status = "pending"
        order.triggered = True
        order.px = ev.px
        order.tif = "Ioc" if order.is_market else "Gtc"

    def _on_order_armed(self, ev: V.OrderArmed) -> None:
        order = self.desk.order(ev.oid)
        assert order is not None
        order.status = "waitingForTrigger"
        order.sz = ev.sz
        self.arm(order)

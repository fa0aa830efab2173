"""Funding: the rate each interval pays, its settlement among a market's holders, and its history.

Owns the history of settled intervals; reads a market's spec, controls, pricing state and holders
through ``ports.FundingMarket`` and pays through the ledger.  The rate comes from the interval's
premium samples (``pricing.pricer``) and the market's ``FundingParams`` with the deployer's
overrides (``setFundingMultiplier``); payments are split by ``pricing.funding.split_payments``,
which rounds what a position pays up and what it receives down, the remainder to the fee account.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import msgspec

from perpbox.exchange import events as V
from perpbox.exchange.ports import FundingMarket
from perpbox.exchange.sink import Applier, EventSink
from perpbox.ledger.ledger import Ledger
from perpbox.market.funding import FundingParams, FundingPrice
from perpbox.pricing import pricer
from perpbox.pricing.funding import PREMIUM_SCALE, funding_rate, split_payments


class FundingRecord(msgspec.Struct, frozen=True):
    ts: int
    rate: int  # 1e-8 per interval
    premium: int  # 1e-12


class Funding:
    def __init__(self, sink: EventSink, ledger: Ledger, market: FundingMarket) -> None:
        self.sink = sink
        self.ledger = ledger
        self.market = market
        self.funding_history: dict[int, list[FundingRecord]] = {}

    STATE: ClassVar[tuple[str, ...]] = ("funding_history",)

    def appliers(self) -> dict[type, Applier]:
        return {V.FundingSettled: self._on_funding_settled}

    # -- queries ------------------------------------------------------------------------------------
    def params(self, asset: int) -> FundingParams:
        """The market's funding parameters with the deployer's multiplier and interest overrides."""
        spec = self.market.spec(asset)
        assert spec is not None
        params = spec.funding
        cfg = self.market.market_config(asset)
        if cfg.funding_multiplier is not None:
            params = dataclasses.replace(params, multiplier=cfg.funding_multiplier)
        if cfg.funding_interest is not None:
            params = dataclasses.replace(params, interest_8h=cfg.funding_interest)
        return params

    def predicted(self, asset: int) -> int:
        """The rate the running interval would pay if it ended now (1e-8)."""
        params = self.params(asset)
        return funding_rate(params, pricer.interval_premium(self.market.price_state(asset), params))

    def history(self, asset: int) -> list[FundingRecord]:
        return self.funding_history.get(asset, [])

    # -- decisions ----------------------------------------------------------------------------------
    def settle(self, ts: int, asset: int) -> None:
        """End the market's interval: every holder pays or receives ``size × price × rate``, at the
        oracle or the mark as the market's parameters say."""
        params = self.params(asset)
        st = self.market.price_state(asset)
        premium = pricer.interval_premium(st, params)
        rate = funding_rate(params, premium)
        px = st.oracle if params.pay_on is FundingPrice.ORACLE else st.mark
        px = px or self.market.margin_price(asset)
        positions = self.market.holder_sizes(asset)
        payments, remainder = split_payments(positions, px, rate)
        sizes = dict(positions)
        self.sink.emit(V.FundingSettled(ts=ts, asset=asset, rate=rate, premium=round(premium * PREMIUM_SCALE), px=px,
                                        payments=[(u, sizes[u], amt) for u, amt in payments], remainder=remainder))

    # -- appliers -----------------------------------------------------------------------------------
    def _on_funding_settled(self, ev: V.FundingSettled) -> None:
        accounts = self.ledger.accounts
        payments = [(accounts[user], accounts[user].positions[ev.asset], amount) for user, _, amount in ev.payments]
        self.ledger.settle_funding(payments, ev.remainder)
        self.market.interval_settled(ev.asset, ev.ts, ev.rate)
        self.funding_history.setdefault(ev.asset, []).append(FundingRecord(ev.ts, ev.rate, ev.premium))

"""Perp mechanics inside ``Exchange.apply``: prices, funding, liquidations, market controls.

Tick order (the contract; ``commands.Tick``): for each market by asset — session, oracle, EMAs,
mark, premium sample (``perpbox.pricing.pricer.tick``), then funding when due; then trigger
orders; then the liquidation sweep.

Liquidation (``LiquidationParams``), per account (cross) or isolated position, most underwater
first (equity / maintenance ascending, then address):

1. cancel the account's orders in that margin mode (``liquidatedCanceled``);
2. Hyperliquid: IOC reduce-only market orders to the book, the whole position or a 20% slice when
   above $100k (a second liquidation within the 30 s cooldown is whole), each limited at the
   position's bankruptcy price so the book can never take the account below zero; Binance: the
   whole position at the bankruptcy price, then a clearance fee to the insurance fund;
3. if still below maintenance — and, Hyperliquid, below 2/3 of it — the backstop vault takes the
   positions over at the mark with all the remaining equity (Hyperliquid), or the insurance fund
   at the bankruptcy price (Binance), when it can carry them (its value stays ≥ its own
   maintenance margin);
4. when nobody can take a negative-equity account over, ADL: opposite positions ranked by
   profit × leverage (``risk.liquidation.adl_score``) are reduced against it at the mark, and its
   deficit is charged to them at most as at its bankruptcy price, each counterparty capped at what
   it can pay without going below zero, the rest carried down the queue (``_adl``).  The account
   ends at exactly zero, or with a reported shortfall when the counterparties together cannot
   carry the deficit; the deficit is shared by those who profit most (a user with no position
   never bears any), and ADL never makes a counterparty insolvent.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import msgspec

from perpbox.book.book import OrderBook
from perpbox.book.order import Order
from perpbox.core import errors as E
from perpbox.core.numbers import RATE_SCALE, iabs
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.funding import Funding
from perpbox.exchange.sink import EventSink
from perpbox.ledger.ledger import Account, Ledger, Position, dex_account, wallet_dex, wallet_owner
from perpbox.market.funding import FundingParams
from perpbox.market.liquidation import LiquidationParams, LiquidationStyle, MarketStatus
from perpbox.market.oracle import OracleKind
from perpbox.market.rules import MarketGate, MarketRules
from perpbox.market.spec import MarketSpec
from perpbox.pricing import pricer
from perpbox.pricing.pricer import PriceState
from perpbox.risk.liquidation import adl_charges, adl_order, allocate, bankruptcy_limit
from perpbox.risk.margin import MarginView
from perpbox.risk.sweep import PositionIndex

LIQUIDATED = "liquidatedCanceled"
MAIN_BACKSTOP = "0x000000000000000000000000000000000000b057"  # the main dex's liquidator vault
MAIN_INSURANCE = "0x0000000000000000000000000000000000001f00"


def backstop_address(dex_index: int) -> str:
    """Hyperliquid: a HIP-3 dex's backstop liquidator is ``0x400…00 + dex index``."""
    return MAIN_BACKSTOP if dex_index == 0 else f"0x4{dex_index:039x}"


def insurance_address(dex_index: int) -> str:
    return MAIN_INSURANCE if dex_index == 0 else f"0x5{dex_index:039x}"


class PerpMechanics:
    """Mixed into ``Exchange``; see the module docstring."""

    # state and operations the exchange provides (declared here for the type checker and mypyc)
    markets: dict[int, MarketSpec]
    rules: dict[int, MarketRules]
    books: dict[int, OrderBook]
    last_px: dict[int, int]
    prices: dict[int, int]
    ledger: Ledger
    orders: dict[int, Order]
    margin: MarginView
    next_oid: int
    triggers: dict[int, dict[int, Order]]
    sink: EventSink
    funding: Funding

    def _close(self, ts: int, order: Order, status: str, arm_children: bool = False) -> None:
        raise NotImplementedError

    def _execute(self, ts: int, order: Order) -> Any:
        raise NotImplementedError

    def _fire_triggers(self, ts: int, asset: int) -> None:
        raise NotImplementedError

    def _opens(self, user: str, asset: int, is_buy: bool) -> bool:
        raise NotImplementedError

    def _after_fills(self, ts: int, asset: int, users: Iterable[str]) -> None:
        raise NotImplementedError

    def _init_mechanics(self) -> None:
        self.pricing: dict[int, PriceState] = {}
        self.spot_quotes: dict[int, dict[str, tuple[int, int]]] = {}
        self.perp_quotes: dict[int, dict[str, tuple[int, int]]] = {}
        self.config: dict[int, V.MarketConfig] = {}
        self.oi: dict[int, int] = {}  # open interest (long side), lots
        self.holders: dict[int, dict[str, None]] = {}  # asset -> users with a non-zero position
        self.dexes: dict[str, int] = {"": 0}  # dex name -> index (0: the main dex)
        self.dex_deployer: dict[str, str] = {}
        self.dex_oi_cap: dict[str, int] = {}
        self.liq_partial_ts: dict[tuple[str, int], int] = {}
        self.liquidation_log: list[V.Liquidated] = []
        self.position_index: PositionIndex | None = None  # derived from the ledger; None: rebuild
        self.gates: dict[int, MarketGate] = {}  # derived from config, pricing and dex caps (_refresh_gate)

    def _refresh_gate(self, asset: int) -> None:
        """Rebuild ``gates[asset]``; called wherever a market's config or pricing state, or its
        dex's open-interest cap, is set."""
        cfg, st = self.config[asset], self.pricing[asset]
        capped = bool(cfg.oi_cap_ntl or cfg.oi_cap_sz or self.dex_oi_cap.get(self.markets[asset].dex))
        self.gates[asset] = MarketGate(cfg.status != "active" or st.halted, st.oracle, st.mark, st.session_open,
                                       capped)

    # ==============================================================================================
    # queries
    # ==============================================================================================
    @property
    def marks(self) -> dict[int, int]:
        return {a: st.mark for a, st in self.pricing.items() if st.mark}

    def oracle(self, asset: int) -> int:
        st = self.pricing.get(asset)
        return st.oracle if st is not None else 0

    def status(self, asset: int) -> str:
        cfg = self.config.get(asset)
        st = self.pricing.get(asset)
        if cfg is None:
            return MarketStatus.ACTIVE.value
        return MarketStatus.HALTED.value if st is not None and st.halted else cfg.status

    def funding_params(self, asset: int) -> FundingParams:
        return self.funding.params(asset)

    def predicted_funding(self, asset: int) -> int:
        """The rate the running interval would pay if it ended now (1e-8)."""
        return self.funding.predicted(asset)

    # -- what funding asks of the market (``ports.FundingMarket``) ---------------------------------
    def market_config(self, asset: int) -> V.MarketConfig:
        return self.config[asset]

    def price_state(self, asset: int) -> PriceState:
        return self.pricing[asset]

    def margin_price(self, asset: int) -> int:
        return self.prices.get(asset, 0)

    def holder_sizes(self, asset: int) -> list[tuple[str, int]]:
        return [(u, self.ledger.accounts[u].positions[asset].szi) for u in sorted(self.holders.get(asset, ()))]

    def interval_settled(self, asset: int, ts: int, rate: int) -> None:
        st = self.pricing[asset]
        interval = self.markets[asset].funding.interval_ms
        self.pricing[asset] = msgspec.structs.replace(
            st, prem_sum=0, prem_wsum=0, prem_n=0, last_rate=rate, next_funding_ts=(ts // interval + 1) * interval)
        self._refresh_gate(asset)

    def backstop_of(self, asset: int) -> str:
        return backstop_address(self.dexes[self.markets[asset].dex])

    def insurance_of(self, asset: int) -> str:
        return insurance_address(self.dexes[self.markets[asset].dex])

    def _margin_key(self, user: str, asset: int) -> str:
        """The ledger account holding ``user``'s margin and position in ``asset``: on the first dex
        the user's own account, on a HIP-3 dex its account there (``ledger.dex_account``; ``user``
        may be the owner's address or that account already).  Orders, fills and cloids stay the
        owner's; cash, positions, liquidation, backstop and ADL are per dex account."""
        dex = self.rules[asset].dex
        return user if not dex else dex_account(dex, wallet_owner(user))

    def _margin_acct(self, user: str, asset: int) -> Account | None:
        return self.ledger.accounts.get(self._margin_key(user, asset))

    def open_interest_ntl(self, asset: int) -> int:
        return self.oi.get(asset, 0) * self.prices.get(asset, 0)

    def adl_queue(self, asset: int, is_long: bool) -> list[str]:
        """Holders of ``asset`` on one side, in the order ADL would reduce them."""
        entries = []
        for user in self.holders.get(asset, ()):
            acct = self.ledger.accounts[user]
            pos = acct.positions[asset]
            if (pos.szi > 0) != is_long:
                continue
            value = self.margin.cross_value(acct) if pos.is_cross else self.margin.isolated_value(pos)
            entries.append((user, pos.szi, pos.entry_ntl, value))
        return adl_order(self.prices.get(asset, 0), entries)

    def adl_rank(self, user: str, asset: int) -> tuple[int, int] | None:
        """(0-based place in its side's ADL queue, queue length), or None without a position."""
        key = self._margin_key(user, asset) if asset in self.rules else user
        acct = self.ledger.accounts.get(key)
        pos = acct.positions.get(asset) if acct is not None else None
        if pos is None or pos.szi == 0:
            return None
        queue = self.adl_queue(asset, pos.szi > 0)
        return queue.index(key), len(queue)

    # ==============================================================================================
    # commands
    # ==============================================================================================
    def _cmd_feed_prices(self, cmd: C.FeedPrices) -> Any:
        pxs = {a: p for a, p in cmd.pxs.items() if a in self.markets and p > 0}
        if pxs:
            self.sink.emit(V.QuotesFed(ts=cmd.ts, source=cmd.source, pxs=pxs, perp=cmd.perp))
        return "ok"

    def _dex_assets(self, dex: str) -> list[int]:
        return sorted(a for a, s in self.markets.items() if s.dex == dex)

    def _deployer_error(self, user: str, dex: str) -> str | None:
        if dex not in self.dex_deployer or not dex:
            return "Unknown dex."  # perpbox wording
        if self.dex_deployer[dex] != user:
            return "Only the deployer of this dex may do that."  # perpbox wording
        return None

    def _cmd_set_oracle(self, cmd: C.SetOracle) -> Any:
        err = self._deployer_error(cmd.user, cmd.dex)
        if err:
            return {"error": err}
        assets = self._dex_assets(cmd.dex)
        if any(a not in assets for a in cmd.oracle_pxs) or len(cmd.mark_pxs) > 2:
            return {"error": "Invalid setOracle: unknown asset or more than two mark price lists."}  # perpbox wording
        if any(p <= 0 for p in cmd.oracle_pxs.values()):
            return {"error": E.INVALID_PRICE}
        for a in assets:
            st = self.pricing[a]
            spec = self.markets[a]
            if a in cmd.oracle_pxs and st.deployer_ts and cmd.ts - st.deployer_ts < spec.oracle.min_update_ms:
                # perpbox wording
                return {"error": f"Oracle updates must be at least {spec.oracle.min_update_ms} ms apart."}
        if cmd.external_perp_pxs:
            self.sink.emit(V.QuotesFed(ts=cmd.ts, source="deployer", pxs=dict(cmd.external_perp_pxs), perp=True))
        for a in sorted(cmd.oracle_pxs):
            spec = self.markets[a]
            new = pricer.push(spec.oracle, self.pricing[a], cmd.ts, cmd.oracle_pxs[a],
                              [m[a] for m in cmd.mark_pxs if a in m], self.books[a], self.last_px.get(a, 0))
            self.sink.emit(V.PricesUpdated(ts=cmd.ts, asset=a, state=new))
        # a new mark is acted on at once, as at a tick: triggers, then the liquidation sweep
        for a in sorted(cmd.oracle_pxs):
            if a in self.triggers:
                self._fire_triggers(cmd.ts, a)
        self._liquidation_sweep(cmd.ts)
        return "ok"

    def _cmd_set_open_interest_caps(self, cmd: C.SetOpenInterestCaps) -> Any:
        if cmd.user:
            err = self._deployer_error(cmd.user, cmd.dex)
            if err:
                return {"error": err}
            if any(self.markets.get(a) is None or self.markets[a].dex != cmd.dex for a in cmd.caps):
                return {"error": E.UNKNOWN_ASSET}
        elif any(a not in self.markets for a in cmd.caps):
            return {"error": E.UNKNOWN_ASSET}
        if any(c < 0 for c in cmd.caps.values()) or (cmd.total_cap is not None and cmd.total_cap < 0):
            return {"error": "Open interest caps must be >= 0."}  # perpbox wording
        for a in sorted(cmd.caps):
            self.sink.emit(V.MarketConfigured(ts=cmd.ts, asset=a,
                                          config=msgspec.structs.replace(self.config[a], oi_cap_ntl=cmd.caps[a])))
        if cmd.total_cap is not None:
            self.sink.emit(V.DexConfigured(ts=cmd.ts, dex=cmd.dex, deployer=self.dex_deployer.get(cmd.dex, ""),
                                       oi_cap_ntl=cmd.total_cap))
        return "ok"

    def _cmd_set_funding_multipliers(self, cmd: C.SetFundingMultipliers) -> Any:
        err = self._deployer_error(cmd.user, cmd.dex)
        if err:
            return {"error": err}
        if any(self.markets.get(a) is None or self.markets[a].dex != cmd.dex for a in cmd.multipliers):
            return {"error": E.UNKNOWN_ASSET}
        if any(not 0 <= m <= 10 * 10**8 for m in cmd.multipliers.values()):
            return {"error": "Funding multiplier must be between 0 and 10."}  # perpbox wording
        for a in sorted(cmd.multipliers):
            cfg = msgspec.structs.replace(self.config[a], funding_multiplier=cmd.multipliers[a])
            self.sink.emit(V.MarketConfigured(ts=cmd.ts, asset=a, config=cfg))
        return "ok"

    def _cmd_set_market_status(self, cmd: C.SetMarketStatus) -> Any:
        if cmd.asset not in self.markets:
            return {"error": E.UNKNOWN_ASSET}
        if cmd.status not in ("active", "postOnly", "reduceOnly") or self.config[cmd.asset].status == "halted":
            return {"error": f"Invalid market status: {cmd.status}"}
        self.sink.emit(V.MarketConfigured(ts=cmd.ts, asset=cmd.asset,
                                      config=msgspec.structs.replace(self.config[cmd.asset], status=cmd.status)))
        return "ok"

    def _cmd_halt_trading(self, cmd: C.HaltTrading) -> Any:
        spec = self.markets.get(cmd.asset)
        if spec is None:
            return {"error": E.UNKNOWN_ASSET}
        if cmd.user:
            err = self._deployer_error(cmd.user, spec.dex)
            if err:
                return {"error": err}
        cfg = self.config[cmd.asset]
        if cmd.halted == (cfg.status == "halted"):
            return "ok"
        if cmd.halted:
            for oid in sorted(o for o, x in self.orders.items() if x.asset == cmd.asset):
                if oid in self.orders:
                    self._close(cmd.ts, self.orders[oid], "canceled")
            px = self.prices.get(cmd.asset, 0)
            if self.holders.get(cmd.asset):
                self.sink.emit(V.MarketSettled(ts=cmd.ts, asset=cmd.asset, px=px))
        status = "halted" if cmd.halted else "active"
        cfg = msgspec.structs.replace(cfg, status=status)
        self.sink.emit(V.MarketConfigured(ts=cmd.ts, asset=cmd.asset, config=cfg))
        return "ok"

    # ==============================================================================================
    # pre-trade controls (called from order validation)
    # ==============================================================================================
    def _control_error(self, asset: int, px: int, tif: str, reduce_only: bool) -> tuple[str, str] | None:
        gate = self.gates[asset]
        if gate.restricted:
            status = self.status(asset)
            if status == "halted":
                return "rejected", E.order_error(E.TRADING_HALTED, asset)
            if status == "reduceOnly" and not reduce_only:
                return "rejected", E.order_error(E.MARKET_REDUCE_ONLY, asset)
            if status == "postOnly" and tif != "Alo":
                return "rejected", E.order_error(E.MARKET_POST_ONLY, asset)
        ref = gate.oracle or self.prices.get(asset, 0)
        band = self.rules[asset].price_band_bps
        if ref and band and iabs(px - ref) * 10_000 > ref * band:
            return "rejected", E.order_error(E.PRICE_TOO_FAR.format(pct=f"{band / 100:g}"), asset)
        return None

    def _is_capped(self, asset: int) -> bool:
        return self.gates[asset].capped

    def _oi_room(self, asset: int) -> int | None:
        """Lots of open interest still allowed in ``asset`` (None: uncapped)."""
        cfg = self.config[asset]
        mark = self.prices.get(asset, 0)
        oi = self.oi.get(asset, 0)
        rooms = []
        if cfg.oi_cap_sz:
            rooms.append(cfg.oi_cap_sz - oi)
        if cfg.oi_cap_ntl and mark:
            rooms.append(cfg.oi_cap_ntl // mark - oi)
        dex = self.markets[asset].dex
        total = self.dex_oi_cap.get(dex, 0)
        if total and mark:
            used = sum(self.open_interest_ntl(a) for a in self._dex_assets(dex))
            rooms.append((total - used) // mark)
        return max(0, min(rooms)) if rooms else None

    def _oi_error(self, user: str, asset: int, is_buy: bool) -> tuple[str, str] | None:
        if self._is_capped(asset) and self._opens(user, asset, is_buy) and self._oi_room(asset) == 0:
            return "rejected", E.order_error(E.OI_CAPPED, asset)
        return None

    # ==============================================================================================
    # tick
    # ==============================================================================================
    def _cmd_tick(self, cmd: C.Tick) -> str:
        ts = cmd.ts
        for asset in sorted(self.markets):
            spec = self.markets[asset]
            st = self.pricing[asset]
            manual = cmd.marks.get(asset) if spec.oracle.kind is OracleKind.MANUAL else None
            if manual is not None and manual <= 0:
                manual = None
            new = pricer.tick(spec.oracle, spec.funding, st, ts, self.books[asset], self.last_px.get(asset, 0),
                              self.spot_quotes.get(asset, {}), self.perp_quotes.get(asset, {}), manual)
            if new != st:
                self.sink.emit(V.PricesUpdated(ts=ts, asset=asset, state=new))
            if pricer.funding_due(new, ts):
                self.funding.settle(ts, asset)
        for asset in sorted(self.triggers):
            self._fire_triggers(ts, asset)
        self._liquidation_sweep(ts)
        self._unwind_vaults(ts)
        return "ok"

    # ==============================================================================================
    # liquidation
    # ==============================================================================================
    def _scope(self, acct: Account, iso_asset: int) -> list[Position]:
        if iso_asset < 0:
            return [p for _, p in sorted(acct.positions.items()) if p.szi and p.is_cross]
        p = acct.positions.get(iso_asset)
        return [p] if p is not None and p.szi else []

    def _scope_value_mm(self, acct: Account, iso_asset: int) -> tuple[int, int]:
        m = self.margin
        if iso_asset < 0:
            return m.cross_value(acct), m.cross_maintenance_margin(acct)
        p = acct.positions[iso_asset]
        return m.isolated_value(p), (m.maintenance_margin(p) if p.szi else 0)

    def _liquidatable(self) -> list[tuple[Fraction, str, int]]:
        """Every (equity/maintenance, user, scope) below maintenance, most underwater first;
        scope -1 is the cross account, else an isolated position's asset.

        ``risk.sweep.PositionIndex`` screens every position in numpy (a safe pre-filter: it never
        omits an account this exact check flags) and only its candidates are checked here, in
        integers.  The index re-reads just the accounts the ledger touched since the last sweep
        and is rebuilt whole when a market's margin table changes."""
        idx = self.position_index
        touched = self.ledger.touched
        if idx is None:
            idx = self.position_index = PositionIndex(self.markets)
            idx.rebuild(self.ledger)
        elif touched:
            idx.sync(self.ledger, sorted(touched))
        touched.clear()
        out = []
        m = self.margin
        for user in idx.candidates(self.prices):
            acct = self.ledger.accounts[user]
            cross_mm = m.cross_maintenance_margin(acct)
            if cross_mm:
                value = m.cross_value(acct)
                if value < cross_mm:
                    out.append((Fraction(value, cross_mm), user, -1))
            for asset, p in acct.positions.items():
                if p.szi and not p.is_cross:
                    mm = m.maintenance_margin(p)
                    value = m.isolated_value(p)
                    if value < mm:
                        out.append((Fraction(value, mm), user, asset))
        out.sort()
        return out

    def _liquidation_sweep(self, ts: int) -> None:
        budget: dict[int, int] = {}
        for _, user, scope in self._liquidatable():
            acct = self.ledger.accounts[user]
            value, mm = self._scope_value_mm(acct, scope)
            if mm and value < mm:  # re-checked: an earlier ADL this tick may have moved it
                self._liquidate(ts, acct, scope, budget)

    def _cancel_scope_orders(self, ts: int, acct: Account, scope: int) -> None:
        """The liquidated scope's orders: the owner's orders in the isolated market, or in the cross
        markets of ``acct``'s dex (the orders live on the owner's account, positions on ``acct``)."""
        dex = wallet_dex(acct.address)
        owner = self.ledger.accounts.get(wallet_owner(acct.address)) if dex else acct
        if owner is None:
            return
        for oid in sorted(owner.orders):
            order = self.orders.get(oid)
            if order is None or self.rules[order.asset].dex != dex:
                continue
            if scope >= 0:
                hit = order.asset == scope
            else:
                slot = acct.positions.get(order.asset)
                hit = slot.is_cross if slot is not None else not self.markets[order.asset].only_isolated
            if hit:
                self._close(ts, order, LIQUIDATED)

    def _liquidate(self, ts: int, acct: Account, scope: int, budget: dict[int, int]) -> None:
        params = self._liq_params(acct, scope)
        binance = params.style is LiquidationStyle.BINANCE
        self._cancel_scope_orders(ts, acct, scope)
        value, mm = self._scope_value_mm(acct, scope)
        if value >= mm:
            return
        if binance:  # the fee comes first; what equity it leaves decides whether the book gets a try
            self._clearance_fee(ts, acct, scope, value, params.clearance_fee)
            value, mm = self._scope_value_mm(acct, scope)
        if value > 0:  # a bankrupt account never goes to the book: that would crystallise its deficit
            self._book_liquidation(ts, acct, scope, budget, binance)
            value, mm = self._scope_value_mm(acct, scope)
        if not mm:
            if value < 0:  # fee rounding on the way out: the backstop (or fund) covers the dust
                self._cover_deficit(ts, acct, scope, -value, binance)
            return
        if value >= mm:
            return  # back above maintenance: the trader keeps what is left
        if not binance and params.backstop_den * value >= params.backstop_num * mm:
            return  # above 2/3 of maintenance: the book gets another try next tick
        if self._take_over(ts, acct, scope, binance):
            return
        if value < 0:
            self._adl(ts, acct, scope, value, mm)

    def _liq_params(self, acct: Account, scope: int) -> LiquidationParams:
        """The policy of the isolated position's market, or for a cross account that of its
        largest cross position's market (a dex's markets share one policy in practice)."""
        if scope >= 0:
            return self.markets[scope].liquidation
        biggest = max(self._scope(acct, -1), key=lambda p: (self.margin.position_value(p), -p.asset))
        return self.markets[biggest.asset].liquidation

    def _clearance_fee(self, ts: int, acct: Account, scope: int, value: int, rate: int) -> None:
        """Binance: the clearance fee on the liquidated notional goes to the insurance fund, out
        of what equity is left (never taking the account below zero)."""
        ntl = sum(self.margin.position_value(p) for p in self._scope(acct, scope))
        fee = min(max(value, 0), ntl * rate // RATE_SCALE)
        if fee <= 0:
            return
        if scope >= 0:  # out of the isolated bucket, through the account's cross cash
            self.sink.emit(V.IsolatedMarginMoved(ts=ts, user=wallet_owner(acct.address), asset=scope, usd=-fee))
        asset0 = self._scope(acct, scope)[0].asset
        fund = self._margin_key(self.insurance_of(asset0), asset0)
        self.sink.emit(V.Transferred(ts=ts, src=acct.address, dst=fund, usd=fee))

    def _book_liquidation(self, ts: int, acct: Account, scope: int, budget: dict[int, int], binance: bool) -> None:
        positions = self._scope(acct, scope)
        value, mm = self._scope_value_mm(acct, scope)
        self._record(ts, acct.address, scope, "market", "", value, mm, positions)
        shares = allocate(value, [self.margin.maintenance_margin(p) for p in positions])
        for p, share in zip(positions, shares, strict=True):
            lp = self.markets[p.asset].liquidation
            mark = self.prices[p.asset]
            size = abs(p.szi)
            key = (acct.address, p.asset)
            if (not binance and size * mark > lp.partial_above_ntl
                    and ts - self.liq_partial_ts.get(key, -lp.cooldown_ms) >= lp.cooldown_ms):
                size = max(1, size * lp.partial_bps // 10_000)
                self.sink.emit(V.Liquidated(ts=ts, user=acct.address, asset=p.asset, method="partial", liquidator="",
                                        account_value=value, maintenance_margin=mm, notional=size * mark))
            if lp.max_ntl_per_tick:
                used = budget.get(p.asset, 0)
                if used >= lp.max_ntl_per_tick:
                    continue  # cascade control: this market's budget is spent; next tick
                budget[p.asset] = used + size * mark
            limit = bankruptcy_limit(mark, p.szi, max(share, 0), self.markets[p.asset].fees.taker)
            self._send_reducing_ioc(ts, acct.address, p.asset, p.szi < 0, limit, size, liquidation=True)

    def _send_reducing_ioc(self, ts: int, user: str, asset: int, is_buy: bool, px: int, sz: int,
                           liquidation: bool) -> None:
        """An order the exchange itself sends for ``user`` (a ledger account: the order is its
        owner's): IOC, reduce-only, no margin needed."""
        oid = self.next_oid
        self.sink.emit(V.OrderPlaced(ts=ts, oid=oid, user=wallet_owner(user), asset=asset, is_buy=is_buy, px=px, sz=sz,
                                 tif="Ioc", reduce_only=True, liquidation=liquidation))
        self._execute(ts, self.orders[oid])

    def _unwind_vaults(self, ts: int) -> None:
        """Each market whose policy says so: the backstop vault and the insurance fund reduce what
        they hold there by up to ``unwind_ntl_per_tick`` of notional at the mark, with an IOC no
        further than ``unwind_slippage_bps`` from the mark (rounded towards the mark: the vault
        never accepts more slippage than its policy).  What the book cannot take waits for the
        next tick; a market that only takes post-only orders, or is halted, is left alone."""
        for asset in sorted(self.markets):
            lp = self.markets[asset].liquidation
            mark = self.prices.get(asset, 0)
            if not lp.unwind_ntl_per_tick or mark <= 0 or self.status(asset) not in ("active", "reduceOnly"):
                continue
            for vault in sorted({self._margin_key(self.backstop_of(asset), asset),
                                 self._margin_key(self.insurance_of(asset), asset)}):
                acct = self.ledger.accounts.get(vault)
                pos = acct.positions.get(asset) if acct is not None else None
                if pos is None or not pos.szi:
                    continue
                size = min(abs(pos.szi), max(1, lp.unwind_ntl_per_tick // mark))
                selling = pos.szi > 0
                if selling:
                    limit = -(-mark * (10_000 - lp.unwind_slippage_bps) // 10_000)
                else:
                    limit = mark * (10_000 + lp.unwind_slippage_bps) // 10_000
                self._send_reducing_ioc(ts, vault, asset, not selling, limit, size, liquidation=False)

    def _cover_deficit(self, ts: int, acct: Account, scope: int, deficit: int, binance: bool) -> None:
        """A closed scope left below zero (at most the rounding of its last fees): the backstop
        vault, or the insurance fund, pays it so that no flat account owes anything."""
        asset = scope if scope >= 0 else min(a for a, p in acct.positions.items() if p.is_cross)
        payer = self._margin_key(self.insurance_of(asset) if binance else self.backstop_of(asset), asset)
        if payer in self.ledger.accounts and payer != acct.address:
            self.sink.emit(V.Transferred(ts=ts, src=payer, dst=acct.address, usd=deficit))

    def _take_over(self, ts: int, acct: Account, scope: int, binance: bool) -> bool:
        positions = self._scope(acct, scope)
        if not positions:
            return True
        asset0 = positions[0].asset
        taker = self._margin_key(self.insurance_of(asset0) if binance else self.backstop_of(asset0), asset0)
        if taker == acct.address or taker not in self.ledger.accounts:
            return False
        vault = self.ledger.accounts[taker]
        value, mm = self._scope_value_mm(acct, scope)
        # can the vault carry it: its cross value + the equity it receives >= its maintenance after
        m = self.margin
        after_mm = 0
        for asset, vp in vault.positions.items():
            if vp.szi and vp.is_cross and all(p.asset != asset for p in positions):
                after_mm += m.maintenance_margin(vp)
        for p in positions:
            held = vault.positions.get(p.asset)
            new = p.szi + (held.szi if held is not None and held.is_cross else 0)
            after_mm += self.markets[p.asset].margin_table.maintenance_margin(abs(new) * self.prices[p.asset])
        if m.cross_value(vault) + value < after_mm:
            return False
        self._record(ts, acct.address, scope, "insurance" if binance else "backstop", taker, value, mm, positions)
        shares = allocate(value, [m.maintenance_margin(p) for p in positions])
        for p, share in zip(positions, shares, strict=True):
            asset = p.asset
            self.sink.emit(V.PositionTransferred(ts=ts, asset=asset, src=acct.address, dst=taker, sz=p.szi,
                                             px=self.prices[asset], usd=share))
            self._after_fills(ts, asset, [taker])
        return True

    def _adl(self, ts: int, acct: Account, scope: int, value: int, mm: int) -> None:
        """Auto-deleverage a bankrupt scope (``value`` < 0) that nobody could take over.

        Every lot of the scope's positions is closed at the mark against opposite-side holders,
        in ``adl_queue`` order (profit × leverage, the bankrupt account itself excluded), each
        reduced by up to its whole position; a transfer at the mark leaves both sides' equity
        unchanged.  The deficit ``−value`` is then charged to those counterparties as cash
        (``PositionTransferred.usd`` ≤ 0), so that what each pays per lot is the difference
        between the mark and the price it effectively closed at:

        * nominally at the bankrupt position's bankruptcy price (dYdX v4, Binance): the deficit
          split over the positions by maintenance margin (``allocate``), each position's share
          over its counterparties by lots (floored cumulative shares, exact);
        * capped at what the counterparty can pay without going below zero — like dYdX v4, which
          deleverages only "at a price that does not make the offsetting subaccount insolvent":
          a cross counterparty at most its cross account value (shared by all its fills here); an
          isolated one at most the equity the closed lots release from its position (the whole
          position's value when all of it closes, else that share, floored), so its position
          keeps a non-negative value and its cross account gains release − payment ≥ 0;
        * what a capped counterparty cannot pay is carried to the next one down the queue, then
          to the next position's counterparties; what is still left after the last one is
          offered again, in the same order, to whatever room is left (``adl_charges``).

        A holder with nothing at stake (no position) never pays, and no counterparty is pushed
        below zero.  The scope ends flat at exactly zero if the counterparties could carry the
        whole deficit.  Otherwise the rest — the shortfall — stays where it is, as the bankrupt
        account's negative cross cash (for an isolated scope, taken out of its owner's cross
        cash as the position's bucket is released); nothing is created or destroyed, and it is
        reported by a ``Liquidated`` event with method ``adlShortfall`` and ``account_value``
        = −shortfall, after the transfers."""
        positions = self._scope(acct, scope)
        self._record(ts, acct.address, scope, "adl", "", value, mm, positions)
        shares = allocate(value, [self.margin.maintenance_margin(p) for p in positions])  # each ≤ 0
        fills: list[tuple[Position, str, int]] = []  # (bankrupt position, counterparty, lots)
        nominal: list[int] = []
        pool: list[int] = []
        room: list[int] = []
        cross_pool: dict[str, int] = {}
        for p, share in zip(positions, shares, strict=True):
            size = abs(p.szi)
            done = 0
            for cp in self.adl_queue(p.asset, p.szi < 0):
                if done == size:
                    break
                if cp == acct.address:
                    continue
                q = min(size - done, abs(self.ledger.accounts[cp].positions[p.asset].szi))
                before = share * done // size
                done += q
                nominal.append(before - share * done // size)  # ≥ 0: this fill's share of the deficit
                pool.append(self._adl_pool(cp, p.asset, q, cross_pool, room))
                fills.append((p, cp, q))
        pays, shortfall = adl_charges(nominal, pool, room)
        for (p, cp, q), pay in zip(fills, pays, strict=True):
            self.sink.emit(V.PositionTransferred(ts=ts, asset=p.asset, src=acct.address, dst=cp,
                                             sz=q if p.szi > 0 else -q, px=self.prices[p.asset], usd=-pay))
        if shortfall:
            self.sink.emit(V.Liquidated(ts=ts, user=acct.address, asset=scope, method="adlShortfall", liquidator="",
                                    account_value=-shortfall, maintenance_margin=0, notional=0))
        for p in positions:  # reduce-only orders of the reduced counterparties may no longer fit
            self._after_fills(ts, p.asset, sorted({cp for fp, cp, _ in fills if fp is p}))

    def _adl_pool(self, cp: str, asset: int, q: int, cross_pool: dict[str, int], room: list[int]) -> int:
        """The index in ``room`` of what ADL counterparty ``cp`` can pay for ``q`` lots of its
        ``asset`` position: one pool per cross account (its cross value), or, for an isolated
        position, the equity the ledger releases when ``q`` of its lots close at the mark."""
        acct = self.ledger.accounts[cp]
        pos = acct.positions[asset]
        if pos.is_cross:
            k = cross_pool.get(cp)
            if k is None:
                k = cross_pool[cp] = len(room)
                room.append(max(self.margin.cross_value(acct), 0))
            return k
        equity = self.margin.isolated_value(pos)
        release = equity if q == abs(pos.szi) else equity * q // abs(pos.szi)  # Ledger.apply_fill's rule
        room.append(max(release, 0))
        return len(room) - 1

    def _record(self, ts: int, user: str, scope: int, method: str, liquidator: str, value: int, mm: int,
                positions: list[Position]) -> None:
        ntl = sum(self.margin.position_value(p) for p in positions)
        self.sink.emit(V.Liquidated(ts=ts, user=user, asset=scope, method=method, liquidator=liquidator,
                                account_value=value, maintenance_margin=mm, notional=ntl))

    # ==============================================================================================
    # appliers
    # ==============================================================================================
    def _on_quotes_fed(self, ev: V.QuotesFed) -> None:
        table = self.perp_quotes if ev.perp else self.spot_quotes
        for a, px in ev.pxs.items():
            table.setdefault(a, {})[ev.source] = (px, ev.ts)

    def _on_prices_updated(self, ev: V.PricesUpdated) -> None:
        self.pricing[ev.asset] = ev.state
        if ev.state.mark:
            self.prices[ev.asset] = ev.state.mark
        self._refresh_gate(ev.asset)

    def _on_market_configured(self, ev: V.MarketConfigured) -> None:
        self.config[ev.asset] = ev.config
        self._refresh_gate(ev.asset)

    def _on_dex_configured(self, ev: V.DexConfigured) -> None:
        self.dex_deployer[ev.dex] = ev.deployer
        self.dex_oi_cap[ev.dex] = ev.oi_cap_ntl
        for asset in self._dex_assets(ev.dex):
            self._refresh_gate(asset)

    def _on_market_settled(self, ev: V.MarketSettled) -> None:
        for user in sorted(self.holders.get(ev.asset, ())):
            acct = self.ledger.accounts[user]
            pos = acct.positions[ev.asset]
            self._track(ev.asset, user, pos.szi, 0)
            self.ledger.settle_position(acct, pos, ev.px)

    def _on_liquidated(self, ev: V.Liquidated) -> None:
        if ev.method == "partial":
            self.liq_partial_ts[(ev.user, ev.asset)] = ev.ts
        self.liquidation_log.append(ev)

    def _on_position_transferred(self, ev: V.PositionTransferred) -> None:
        ledger = self.ledger
        src = ledger.accounts[ev.src]
        dst = ledger.account(ev.dst)
        spos = src.positions[ev.asset]
        dpos = dst.positions.get(ev.asset) or self._position_slot(dst, ev.asset)
        s_old, d_old = spos.szi, dpos.szi
        ledger.transfer_position(src, spos, dst, dpos, ev.sz, ev.px, ev.usd)
        self._track(ev.asset, ev.src, s_old, spos.szi)
        self._track(ev.asset, ev.dst, d_old, dpos.szi)

    def _position_slot(self, acct: Account, asset: int) -> Position:
        """The account's position in ``asset`` (it also holds the leverage setting), created with
        the market's defaults: 20x (or the max) cross, isolated on isolated-only markets."""
        rules = self.rules[asset]  # the spec's properties are generic look-ups, recomputed per call
        return self.ledger.position(acct, asset, not rules.only_isolated, rules.default_leverage)

    def _track(self, asset: int, user: str, old: int, new: int) -> None:
        """Keep open interest and the holder index in step with one position change."""
        if old == new:
            return
        self.oi[asset] = self.oi.get(asset, 0) + max(new, 0) - max(old, 0)
        holders = self.holders.get(asset)
        if holders is None:  # (setdefault would build a dict on every call)
            holders = self.holders[asset] = {}
        if new:
            holders[user] = None
        else:
            holders.pop(user, None)

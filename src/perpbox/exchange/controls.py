"""Market controls: status (active, post-only, reduce-only, halted), open-interest caps (per
market and per dex), funding multipliers, price bands and the off-hours leverage cap — the levers
an operator or a HIP-3 deployer pulls, and the pre-trade checks the order path runs against them.

``MarketControls`` owns each market's runtime ``MarketConfig`` and the dexes' open-interest caps,
and derives each market's ``MarketGate`` (what the order path reads on every order) from them and
the pricing state; the gate is rebuilt wherever one of those is set (``refresh_gate``).
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from perpbox.core import errors as E
from perpbox.core.numbers import iabs
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.holdings import Holdings
from perpbox.exchange.markets import MarketBoard
from perpbox.exchange.ports import OrderDesk
from perpbox.exchange.prices import MarketPricing
from perpbox.exchange.results import OK, Error, Handler, Response
from perpbox.exchange.sink import Applier, EventSink
from perpbox.ledger.ledger import Ledger
from perpbox.market.liquidation import MarketStatus
from perpbox.market.rules import MarketGate

Refusal = tuple[str, str]  # (order status, message) of a refused order


class MarketControls:
    """See the module docstring.  ``desk`` closes a halted market's orders."""

    STATE: ClassVar[tuple[str, ...]] = ("config", "dex_oi_cap")

    def __init__(self, sink: EventSink, ledger: Ledger, board: MarketBoard, pricing: MarketPricing,
                 holdings: Holdings, desk: OrderDesk) -> None:
        self.sink = sink
        self.ledger = ledger
        self.board = board
        self.pricing = pricing
        self.holdings = holdings
        self.desk = desk
        self.config: dict[int, V.MarketConfig] = {}
        self.dex_oi_cap: dict[str, int] = {}
        self.gates: dict[int, MarketGate] = {}  # derived (refresh_gate); read by the order path, never rebound

    def handlers(self) -> dict[type, Handler]:
        return {C.SetOpenInterestCaps: self._cmd_set_open_interest_caps,
                C.SetFundingMultipliers: self._cmd_set_funding_multipliers,
                C.HaltTrading: self._cmd_halt_trading,
                C.SetMarketStatus: self._cmd_set_market_status}

    def appliers(self) -> dict[type, Applier]:
        return {V.MarketConfigured: self._on_market_configured, V.DexConfigured: self._on_dex_configured,
                V.MarketSettled: self._on_market_settled}

    def restored(self) -> None:
        """Rebuild the gates (after a snapshot is loaded)."""
        self.gates.clear()
        for asset in self.board.assets():
            if asset in self.config and self.pricing.state_or_none(asset) is not None:
                self.refresh_gate(asset)

    def refresh_gate(self, asset: int) -> None:
        """Rebuild ``gates[asset]``; called wherever a market's config or pricing state, or its
        dex's open-interest cap, is set."""
        cfg, st = self.config[asset], self.pricing.state(asset)
        capped = bool(cfg.oi_cap_ntl or cfg.oi_cap_sz or self.dex_oi_cap.get(self.board.market(asset).dex))
        self.gates[asset] = MarketGate(cfg.status != "active" or st.halted, st.oracle, st.mark, st.session_open,
                                       capped)

    # -- reads -------------------------------------------------------------------------------------
    def status(self, asset: int) -> str:
        cfg = self.config.get(asset)
        st = self.pricing.state_or_none(asset)
        if cfg is None:
            return MarketStatus.ACTIVE.value
        return MarketStatus.HALTED.value if st is not None and st.halted else cfg.status

    def market_config(self, asset: int) -> V.MarketConfig:
        return self.config[asset]

    def dex_cap(self, dex: str) -> int:
        """The dex's total open-interest cap in micro-USDC of notional (0: none)."""
        return self.dex_oi_cap.get(dex, 0)

    def leverage_cap(self, asset: int) -> int:
        """The most leverage ``asset`` allows now: its off-hours ``max_leverage`` while its session
        is closed (per the last tick), else its margin table's.

        The cap binds what adds exposure while the market is closed: ``updateLeverage`` above it is
        refused, and orders that open or increase a position are margined at ``min(setting, cap)``.
        A position set above the cap when the session closes keeps its leverage setting: nothing is
        changed, reduced or liquidated at the close, because Hyperliquid checks leverage "only when
        opening/increasing" (reference hyperliquid-api.md §6.3) and maintenance margin comes from the
        margin table, not the setting.  Off hours a new setting at or below the cap is accepted (a
        decrease still needs the margin for it).  trade.xyz's off-hours rules in the reference
        (perp-mechanics.md: internal EMA oracle, discovery bounds, "lower off-hours leverage") say
        nothing stricter about positions already open."""
        rules = self.board.rules_of(asset)
        cap = rules.spec.oracle.off_hours.max_leverage
        if cap and not self.gates[asset].session_open:  # 0: leverage unchanged off hours
            return cap
        return rules.spec.max_leverage

    # -- pre-trade checks (order validation) -------------------------------------------------------
    def control_error(self, asset: int, px: int, tif: str, reduce_only: bool) -> Refusal | None:
        gate = self.gates[asset]
        if gate.restricted:
            status = self.status(asset)
            if status == "halted":
                return "rejected", E.order_error(E.TRADING_HALTED, asset)
            if status == "reduceOnly" and not reduce_only:
                return "rejected", E.order_error(E.MARKET_REDUCE_ONLY, asset)
            if status == "postOnly" and tif != "Alo":
                return "rejected", E.order_error(E.MARKET_POST_ONLY, asset)
        ref = gate.oracle or self.pricing.mark(asset)
        band = self.board.rules_of(asset).price_band_bps
        if ref and band and iabs(px - ref) * 10_000 > ref * band:
            return "rejected", E.order_error(E.PRICE_TOO_FAR.format(pct=f"{band / 100:g}"), asset)
        return None

    def is_capped(self, asset: int) -> bool:
        return self.gates[asset].capped

    def oi_room(self, asset: int) -> int | None:
        """Lots of open interest still allowed in ``asset`` (None: uncapped)."""
        cfg = self.config[asset]
        mark = self.pricing.mark(asset)
        oi = self.holdings.open_interest(asset)
        rooms = []
        if cfg.oi_cap_sz:
            rooms.append(cfg.oi_cap_sz - oi)
        if cfg.oi_cap_ntl and mark:
            rooms.append(cfg.oi_cap_ntl // mark - oi)
        dex = self.board.market(asset).dex
        total = self.dex_oi_cap.get(dex, 0)
        if total and mark:
            used = sum(self.holdings.open_interest_ntl(a) for a in self.board.dex_assets(dex))
            rooms.append((total - used) // mark)
        return max(0, min(rooms)) if rooms else None

    def oi_error(self, user: str, asset: int, is_buy: bool) -> Refusal | None:
        if self.is_capped(asset) and self.holdings.opens(user, asset, is_buy) and self.oi_room(asset) == 0:
            return "rejected", E.order_error(E.OI_CAPPED, asset)
        return None

    # -- commands ----------------------------------------------------------------------------------
    def _cmd_set_open_interest_caps(self, cmd: C.SetOpenInterestCaps) -> Response:
        board = self.board
        if cmd.user:
            err = board.deployer_error(cmd.user, cmd.dex)
            if err:
                return Error(err)
            if any(board.dex_of(a) != cmd.dex for a in cmd.caps):
                return Error(E.UNKNOWN_ASSET)
        elif any(not board.has(a) for a in cmd.caps):
            return Error(E.UNKNOWN_ASSET)
        if any(c < 0 for c in cmd.caps.values()) or (cmd.total_cap is not None and cmd.total_cap < 0):
            return Error("Open interest caps must be >= 0.")  # perpbox wording
        for a in sorted(cmd.caps):
            self.sink.emit(V.MarketConfigured(ts=cmd.ts, asset=a,
                                              config=msgspec.structs.replace(self.config[a], oi_cap_ntl=cmd.caps[a])))
        if cmd.total_cap is not None:
            self.sink.emit(V.DexConfigured(ts=cmd.ts, dex=cmd.dex, deployer=self.board.deployer_of(cmd.dex) or "",
                                           oi_cap_ntl=cmd.total_cap))
        return OK

    def _cmd_set_funding_multipliers(self, cmd: C.SetFundingMultipliers) -> Response:
        err = self.board.deployer_error(cmd.user, cmd.dex)
        if err:
            return Error(err)
        if any(self.board.dex_of(a) != cmd.dex for a in cmd.multipliers):
            return Error(E.UNKNOWN_ASSET)
        if any(not 0 <= m <= 10 * 10**8 for m in cmd.multipliers.values()):
            return Error("Funding multiplier must be between 0 and 10.")  # perpbox wording
        for a in sorted(cmd.multipliers):
            cfg = msgspec.structs.replace(self.config[a], funding_multiplier=cmd.multipliers[a])
            self.sink.emit(V.MarketConfigured(ts=cmd.ts, asset=a, config=cfg))
        return OK

    def _cmd_set_market_status(self, cmd: C.SetMarketStatus) -> Response:
        if not self.board.has(cmd.asset):
            return Error(E.UNKNOWN_ASSET)
        if cmd.status not in ("active", "postOnly", "reduceOnly") or self.config[cmd.asset].status == "halted":
            return Error(f"Invalid market status: {cmd.status}")
        self.sink.emit(V.MarketConfigured(ts=cmd.ts, asset=cmd.asset,
                                          config=msgspec.structs.replace(self.config[cmd.asset], status=cmd.status)))
        return OK

    def _cmd_halt_trading(self, cmd: C.HaltTrading) -> Response:
        spec = self.board.spec(cmd.asset)
        if spec is None:
            return Error(E.UNKNOWN_ASSET)
        if cmd.user:
            err = self.board.deployer_error(cmd.user, spec.dex)
            if err:
                return Error(err)
        cfg = self.config[cmd.asset]
        if cmd.halted == (cfg.status == "halted"):
            return OK
        if cmd.halted:
            self.desk.close_market_orders(cmd.ts, cmd.asset, "canceled")
            if self.holdings.has_holders(cmd.asset):
                self.sink.emit(V.MarketSettled(ts=cmd.ts, asset=cmd.asset, px=self.pricing.mark(cmd.asset)))
        cfg = msgspec.structs.replace(cfg, status="halted" if cmd.halted else "active")
        self.sink.emit(V.MarketConfigured(ts=cmd.ts, asset=cmd.asset, config=cfg))
        return OK

    # -- appliers ----------------------------------------------------------------------------------
    def list_market(self, ev: V.MarketListed) -> None:
        controls = ev.spec.controls
        self.config[ev.spec.asset] = V.MarketConfig(oi_cap_ntl=controls.oi_cap_ntl, oi_cap_sz=controls.oi_cap_sz)
        self.refresh_gate(ev.spec.asset)

    def _on_market_configured(self, ev: V.MarketConfigured) -> None:
        self.config[ev.asset] = ev.config
        self.refresh_gate(ev.asset)

    def _on_dex_configured(self, ev: V.DexConfigured) -> None:
        self.board.set_deployer(ev.dex, ev.deployer)
        self.dex_oi_cap[ev.dex] = ev.oi_cap_ntl
        for asset in self.board.dex_assets(ev.dex):
            self.refresh_gate(asset)

    def _on_market_settled(self, ev: V.MarketSettled) -> None:
        accounts = self.ledger.accounts
        holders = self.holdings.holders_of(ev.asset)
        positions = [(accounts[user], accounts[user].positions[ev.asset]) for user in holders]
        for acct, pos in positions:
            self.holdings.track(ev.asset, acct.address, pos.szi, 0)
        self.ledger.settle_market(positions, ev.px)

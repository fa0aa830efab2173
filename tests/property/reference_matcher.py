"""A deliberately naive reference matcher for differential tests of ``perpbox.exchange.Exchange``.

Nothing here is clever and nothing is shared with the engine: every resting order of every market
lives in ONE plain Python list, and each match scans that whole list for the best price, then the
earliest arrival.  There are no accounts, no margin, no fees, no positions — the differential
test funds every account so richly that margin never binds, and uses no reduce-only orders, no
trigger orders and no mark moves, so the matching outcome depends on the rules below only.

Rules (Hyperliquid's, as the engine documents them):

* every order request consumes the next order id, accepted or rejected; a modify of an order that
  is not live consumes none;
* validation: unknown market, unknown TIF, size <= 0, price off the tick rule (positive, and at
  most ``max_sig_figs`` significant figures unless a whole number of dollars), a client order id
  (cloid) already used by one of the same user's live orders, notional ``px * sz`` below the
  market's minimum -> rejected, nothing else happens;
* ``Alo`` (post-only) is rejected when it would cross the opposite side (any user's order);
* ``Ioc`` / ``FrontendMarket`` are rejected when they cannot cross at all; when they do cross
  they match and any remainder is dropped;
* ``Gtc`` matches, then any remainder rests at the back of its price level; an ``Alo`` that does
  not cross rests;
* matching: best price first, then earliest arrival; a trade is at the resting order's price;
  self-trade prevention: a resting order of the taker's own user that would match is cancelled
  (no trade) and the taker keeps matching;
* cancel by oid / by cloid must name a live order of that user in that market; cancel-all cancels
  every live order of the user (in one market when given);
* modify is cancel-then-place: the old order (named by oid or cloid) is cancelled and the
  replacement is placed as a new order with a new oid at the back of the queue.  A replacement
  that fails validation (the list above; it may reuse the old order's own cloid) is rejected and
  consumes an oid, and the old order stays untouched; one refused later by the ALO/IOC rules
  leaves the old order cancelled (nothing else is half-applied).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TIFS = ("Gtc", "Ioc", "Alo", "FrontendMarket")


@dataclass(frozen=True)
class RefMarket:
    asset: int
    px_decimals: int  # a price is an integer number of 10**-px_decimals USD
    min_notional: int  # micro-USDC; price units * size lots is micro-USDC
    max_sig_figs: int = 5

    def valid_price(self, px: int) -> bool:
        if px <= 0:
            return False
        if px % (10**self.px_decimals) == 0:  # a whole number of dollars is always allowed
            return True
        digits = str(px).rstrip("0")
        return len(digits) <= self.max_sig_figs


@dataclass
class RefOrder:
    oid: int
    user: str
    asset: int
    is_buy: bool
    px: int
    sz: int
    cloid: str | None
    arrival: int = 0  # set when the order starts resting


@dataclass(frozen=True)
class RefFill:
    maker_oid: int
    taker_oid: int
    px: int
    sz: int


@dataclass
class ReferenceMatcher:
    markets: dict[int, RefMarket]
    next_oid: int = 1
    resting: list[RefOrder] = field(default_factory=list)
    fills: list[RefFill] = field(default_factory=list)
    _arrivals: int = 0

    # ------------------------------------------------------------------------------------------
    # commands (the engine's command objects are plain data; only their fields are read here)
    # ------------------------------------------------------------------------------------------
    def apply(self, cmd: Any) -> list[RefFill]:
        """Apply one command; return the fills it made, in order."""
        start = len(self.fills)
        kind = type(cmd).__name__
        if kind == "PlaceOrders":
            assert cmd.grouping == "na", "the reference knows no TP/SL groupings"
            for req in cmd.orders:
                self.place(cmd.user, req)
        elif kind == "Cancel":
            self.cancel(cmd.user, cmd.asset, cmd.oid)
        elif kind == "CancelByCloid":
            self.cancel_by_cloid(cmd.user, cmd.asset, cmd.cloid)
        elif kind == "CancelAll":
            self.cancel_all(cmd.user, cmd.asset)
        elif kind == "Modify":
            self.modify(cmd.user, cmd.oid, cmd.order)
        elif kind == "BatchModify":
            for m in cmd.modifies:
                self.modify(cmd.user, m.oid, m.order)
        elif kind in ("Deposit", "AddMarket", "UpdateLeverage"):
            pass  # no money and no margin here
        else:
            raise AssertionError(f"the reference does not model {kind}")
        return self.fills[start:]

    # ------------------------------------------------------------------------------------------
    def live(self, user: str) -> list[RefOrder]:
        return [o for o in self.resting if o.user == user]

    def _rejects(self, user: str, req: Any, replacing: RefOrder | None = None) -> bool:
        m = self.markets.get(req.asset)
        if m is None or req.tif not in TIFS or req.sz <= 0 or not m.valid_price(req.px):
            return True
        if req.cloid is not None and any(o.cloid == req.cloid and o is not replacing for o in self.live(user)):
            return True
        return req.px * req.sz < m.min_notional

    def _opposite_crossing(self, asset: int, is_buy: bool, limit: int) -> list[RefOrder]:
        return [
            o for o in self.resting
            if o.asset == asset and o.is_buy != is_buy and (o.px <= limit if is_buy else o.px >= limit)
        ]

    def place(self, user: str, req: Any) -> None:
        oid = self.next_oid
        self.next_oid += 1
        if self._rejects(user, req):
            return
        crossing = self._opposite_crossing(req.asset, req.is_buy, req.px)
        if req.tif == "Alo" and crossing:
            return
        if req.tif in ("Ioc", "FrontendMarket") and not crossing:
            return
        taker = RefOrder(oid, user, req.asset, req.is_buy, req.px, req.sz, req.cloid)
        while taker.sz > 0:
            candidates = self._opposite_crossing(taker.asset, taker.is_buy, taker.px)
            if not candidates:
                break
            # best price for the taker, then earliest arrival: a plain linear scan
            best = candidates[0]
            for o in candidates[1:]:
                better_px = o.px < best.px if taker.is_buy else o.px > best.px
                if better_px or (o.px == best.px and o.arrival < best.arrival):
                    best = o
            if best.user == taker.user:
                self.resting.remove(best)  # self-trade prevention: cancel the resting order
                continue
            qty = min(taker.sz, best.sz)
            self.fills.append(RefFill(best.oid, taker.oid, best.px, qty))
            taker.sz -= qty
            best.sz -= qty
            if best.sz == 0:
                self.resting.remove(best)
        if taker.sz > 0 and req.tif in ("Gtc", "Alo"):
            self._arrivals += 1
            taker.arrival = self._arrivals
            self.resting.append(taker)

    def _find(self, user: str, oid: int) -> RefOrder | None:
        for o in self.resting:
            if o.oid == oid and o.user == user:
                return o
        return None

    def cancel(self, user: str, asset: int, oid: int) -> bool:
        o = self._find(user, oid)
        if o is None or o.asset != asset:
            return False
        self.resting.remove(o)
        return True

    def cancel_by_cloid(self, user: str, asset: int, cloid: str) -> bool:
        for o in self.live(user):
            if o.cloid == cloid:
                return self.cancel(user, asset, o.oid)
        return False

    def cancel_all(self, user: str, asset: int | None) -> None:
        self.resting = [o for o in self.resting if not (o.user == user and (asset is None or o.asset == asset))]

    def modify(self, user: str, ref: int | str, req: Any) -> None:
        if isinstance(ref, str):
            target = next((o for o in self.live(user) if o.cloid == ref), None)
        else:
            target = self._find(user, ref)
        if target is None:
            return  # "Cannot modify canceled or filled order": no oid consumed
        if self._rejects(user, req, replacing=target):
            self.next_oid += 1  # the replacement is refused; the original stays as it was
            return
        self.resting.remove(target)
        self.place(user, req)

    # ------------------------------------------------------------------------------------------
    def book(self, asset: int, is_buy: bool) -> list[tuple[int, int]]:
        """Resting ``(oid, size)`` on one side in priority order (best price, then arrival)."""
        side = [o for o in self.resting if o.asset == asset and o.is_buy == is_buy]
        side.sort(key=lambda o: (-o.px if is_buy else o.px, o.arrival))
        return [(o.oid, o.sz) for o in side]

"""Property tests of the exchange engine over random command sequences (design.md, "Invariants
worth a property test").

Two properties, each a hypothesis search over whole command sequences:

1. ``test_engine_invariants_hold_after_every_command`` — 6..12 accounts and 2..3 markets with
   different ``sz_decimals`` (one isolated-only, one paying maker rebates), mixing deposits,
   withdrawals, transfers, sub-accounts, orders of every TIF (with reduce-only, cloids, trigger
   orders tp/sl market/limit, ``normalTpsl`` and ``positionTpsl`` groupings), cancels (by oid —
   live, someone else's, finished, unknown, wrong market —, by cloid, cancel-all), modify and
   batchModify, leverage and isolated-margin updates, and ticks with new marks (which fire
   triggers).  Prices are drawn mostly valid under the tick rule around a moving mid, some
   invalid.  After EVERY command an independent audit checks (see ``Audit``):

   * no book is crossed, and each book's levels, totals and indexes agree;
   * every fill: size > 0, taker != maker, both orders live and on the right sides, price = the
     maker's resting price and within the taker's limit, size within both orders' remaining size;
   * per market Σ szi == 0, and every position equals the fold of its fills;
   * USDC conservation to the unit: ``ledger.total_cash() == deposits − withdrawals`` (and the
     ledger's deposits/withdrawals equal the sum of the Deposited/Withdrew events);
   * no order both resting and done: the live orders of the engine equal a shadow rebuilt from the
     events alone (ids, sizes, prices, statuses); every order in a book is ``open`` in
     ``ex.orders.orders``; no order stays ``pending``; every live order has sz > 0 except positionTpsl
     triggers of size 0;
   * reduce-only resting orders never exceed the position on the closing side and never sit on
     the increasing side;
   * and, beyond the brief: fees are the market's rates rounded up; a trigger fires only when the
     mark has crossed its trigger price, and after a tick no waiting trigger is due (except one
     armed during that tick); no isolated cash stays in the bucket of a flat or cross position;
     leverage stays within 1..max; a ``filled`` response reports the fills' total size and
     notional.  A failure prints the exact reproduction (the commands that emitted events).

   At the end of each sequence, ``Exchange.replay(all_events)`` has the same ``state_hash()`` and
   re-applying the commands to a fresh exchange gives the same events, responses and hash.

2. ``test_matching_equals_naive_reference`` — a differential test against
   ``reference_matcher.ReferenceMatcher`` (a plain list scanned linearly): accounts are funded so
   richly, and leverage is so ample, that margin never binds; no reduce-only, no triggers, no mark
   moves.  The engine's fills (maker oid, taker oid, px, sz — in order) must equal the reference's
   exactly after every command, and so must the resting books (same oids, sizes and order).

Volume: in the default (CI) profile every example runs at least ``INV_LEN[0]`` / ``DIFF_LEN[0]``
random commands (setup commands not counted), so examples × minimum length is a floor by
construction: 420 × 170 + 330 × 100 = 104,400 (about 112,000 in practice, ~2 minutes on one core).
Each test counts the random commands it really applied and asserts its floor.
``HYPOTHESIS_PROFILE=dev`` selects a quick profile (about a tenth).  Both are derandomized (and use
no example database), so CI runs the same sequences every time.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine_state import floats_in_state
from perpbox.core.numbers import USD, round_price_sig
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.engine import Exchange
from perpbox.exchange.results import OK, Filled, Response, Statuses
from perpbox.ledger.ledger import FEE_ACCOUNT
from perpbox.market import FeeSchedule, MarginMode, MarginTable, MarketSpec

try:
    from profiles import COMMON, PROFILE
    from reference_matcher import ReferenceMatcher, RefMarket
    from repro import failure_key, minimise
except ModuleNotFoundError:  # e.g. pytest --import-mode=importlib: the directory is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from profiles import COMMON, PROFILE
    from reference_matcher import ReferenceMatcher, RefMarket
    from repro import failure_key, minimise

# ==================================================================================================
# profiles and volume
# ==================================================================================================
# sequence lengths (random commands after the setup); kept well under hypothesis' per-example
# choice budget (BUFFER_SIZE), so no example overruns
INV_LEN = (170, 220)
DIFF_LEN = (100, 130)
# profile -> (invariant-test examples, differential-test examples)
_PROFILES = {"ci": (420, 330), "dev": (45, 35)}
for _name, (_inv, _diff) in _PROFILES.items():
    settings.register_profile(f"perpbox-engine-{_name}", max_examples=_inv, **COMMON)
INV_EXAMPLES, DIFF_EXAMPLES = _PROFILES[PROFILE]
INV_SETTINGS = settings(settings.get_profile(f"perpbox-engine-{PROFILE}"), max_examples=INV_EXAMPLES)
DIFF_SETTINGS = settings(settings.get_profile(f"perpbox-engine-{PROFILE}"), max_examples=DIFF_EXAMPLES)
# every example runs at least the minimum length, so these are floors by construction (asserted)
INV_MIN_COMMANDS = INV_EXAMPLES * INV_LEN[0]
DIFF_MIN_COMMANDS = DIFF_EXAMPLES * DIFF_LEN[0]

COUNTS: dict[str, int] = defaultdict(int)  # commands applied (and audited) per test


def test_profile_volume_covers_100k_commands() -> None:
    """The asserted per-test minima of the CI profile add up to at least 100,000 random commands."""
    inv, diff = _PROFILES["ci"]
    assert inv * INV_LEN[0] + diff * DIFF_LEN[0] >= 100_000


# ==================================================================================================
# markets, prices, sizes
# ==================================================================================================
def _table(tiers: list[tuple[int, int]]) -> MarginTable:
    return MarginTable.hyperliquid(tiers)


# (spec, initial mid in price units).  Different sz_decimals; XYZ's mid sits at the 5/6-digit
# boundary where the tick changes from 1 to 10 units; DOGE is isolated-only.
INV_MARKETS: list[tuple[MarketSpec, int]] = [
    (MarketSpec("BTC", 0, 5, _table([(0, 40), (4_000, 20), (20_000, 10)])), 600_000),  # $60,000
    (MarketSpec("XYZ", 1, 2, _table([(0, 10)]), fees=FeeSchedule(maker=-2_000, taker=35_000)), 100_000),  # $10
    (MarketSpec("DOGE", 2, 0, _table([(0, 5)]), margin_mode=MarginMode.NO_CROSS), 150_000),  # $0.15
]
DIFF_MARKETS: list[tuple[MarketSpec, int]] = [
    (MarketSpec("BTC", 0, 5, MarginTable.single(50)), 600_000),
    (MarketSpec("XYZ", 1, 2, MarginTable.single(50), fees=FeeSchedule(maker=-2_000, taker=35_000)), 100_000),
    (MarketSpec("ETH", 2, 4, MarginTable.single(50)), 300_000),  # $3,000
]
TIFS_WEIGHTED = ["Gtc", "Gtc", "Gtc", "Gtc", "Ioc", "Alo", "FrontendMarket"]
CLOIDS = [f"0x{n:032x}" for n in range(1, 17)]
TS0 = 1_700_000_000_000


def tick_at(spec: MarketSpec, px: int) -> int:
    """The price step near ``px``: 5 significant figures, never coarser than one dollar."""
    digits = len(str(max(px, 1)))
    return min(10 ** max(0, digits - spec.max_sig_figs), 10**spec.px_decimals)


def snap(spec: MarketSpec, px: int) -> int:
    px = round_price_sig(max(px, 1), spec.px_decimals, spec.max_sig_figs)
    assert spec.valid_price(px), (spec.name, px)
    return px


def px_at(spec: MarketSpec, ref: int, ticks: int) -> int:
    """A valid price ``ticks`` steps from ``ref``."""
    return snap(spec, ref + ticks * tick_at(spec, ref))


def invalid_px(spec: MarketSpec, px: int, how: int) -> int:
    if how == 0 and not spec.valid_price(px + 1):
        return px + 1  # one unit off the tick
    return 0 if how <= 1 else -px


def lots_for(px: int, usd: int) -> int:
    """Lots worth about ``usd`` dollars at ``px`` (price units * lots = micro-USDC)."""
    return max(1, usd * USD // max(px, 1))


def user_name(i: int) -> str:
    return f"0x{i + 0xa1:02x}"


# ==================================================================================================
# command generation (reads the live engine to aim at live orders and real positions)
# ==================================================================================================
class Gen:
    def __init__(self, ex: Exchange, markets: list[tuple[MarketSpec, int]], n_users: int) -> None:
        self.ex = ex
        self.specs = {s.asset: s for s, _ in markets}
        self.assets = sorted(self.specs)
        self.mids = {s.asset: mid for s, mid in markets}
        self.users = [user_name(i) for i in range(n_users)]
        self.ts = TS0
        self.n_subs = 0

    def next_ts(self) -> int:
        self.ts += 1 + (self.ts % 3)
        return self.ts

    def live_oids(self, user: str) -> list[int]:
        acct = self.ex.ledger.accounts.get(user)
        return sorted(acct.orders) if acct is not None else []

    def szi(self, user: str, asset: int) -> int:
        pos = self.ex.holdings.position(user, asset)
        return pos.szi if pos is not None else 0

    def mark(self, asset: int) -> int:
        return self.ex.pricing.mark(asset) or self.mids[asset]


def _pick(draw: Any, seq: list[Any]) -> Any:
    return seq[draw(st.integers(0, len(seq) - 1))]


def draw_plain_order(draw: Any, g: Gen, asset: int, *, reduce_only_ok: bool, user: str,
                     tif: str | None = None, is_buy: bool | None = None, invalid_ok: bool = True) -> C.OrderRequest:
    spec = g.specs[asset]
    mid = g.mids[asset]
    if is_buy is None:
        is_buy = draw(st.booleans())
    if tif is None:
        tif = _pick(draw, TIFS_WEIGHTED)
    # aggressiveness in ticks: > 0 crosses a book centred on the mid, < 0 rests behind it
    aggr = draw(st.integers(5, 80)) if tif == "FrontendMarket" else draw(st.integers(-40, 10))
    px = px_at(spec, mid, aggr if is_buy else -aggr)
    mode = draw(st.integers(0, 39))
    reduce_only = False
    szi = g.szi(user, asset)
    if reduce_only_ok and szi and mode >= 34:  # ~15% reduce-only when there is a position
        reduce_only = True
        if mode != 39:
            is_buy = szi < 0  # the closing side (mode 39: the increasing side, rejected)
            px = px_at(spec, mid, aggr if is_buy else -aggr)
        sz = draw(st.integers(1, 2 * abs(szi)))
    else:
        usd = draw(st.integers(2, 700))
        sz = lots_for(px, usd) if mode else 0  # mode 0: a zero size
    if invalid_ok and mode in (1, 2):
        px = invalid_px(spec, px, draw(st.integers(0, 2)))
    c = draw(st.integers(0, 39))
    cloid = CLOIDS[c - 24] if c >= 24 else None
    return C.OrderRequest(asset=asset, is_buy=is_buy, px=px, sz=sz, tif=tif, reduce_only=reduce_only, cloid=cloid)


def draw_trigger(draw: Any, g: Gen, asset: int, is_buy: bool, sz: int, tpsl: str, *,
                 reduce_only: bool = True) -> C.OrderRequest:
    spec = g.specs[asset]
    mark = g.mark(asset)
    above = (tpsl == "tp") != is_buy  # fires when mark >= trigger (else mark <= trigger)
    dist = draw(st.integers(-3, 150))  # ticks away from the mark; <= 0: already hit
    trigger = px_at(spec, mark, dist if above else -dist)
    is_market = draw(st.booleans())
    slip = draw(st.integers(-5, 30))  # a limit trigger's price relative to its trigger
    px = px_at(spec, trigger, slip if is_buy else -slip)
    c = draw(st.integers(0, 39))
    cloid = CLOIDS[c - 30] if c >= 30 else None
    return C.OrderRequest(asset=asset, is_buy=is_buy, px=px, sz=sz, tif="Gtc", reduce_only=reduce_only,
                          cloid=cloid, trigger_px=trigger, is_market=is_market, tpsl=tpsl)


def draw_usd(draw: Any, g: Gen, user: str) -> int:
    """An amount for a withdrawal/transfer: mostly a share of what may leave, sometimes anything."""
    acct = g.ex.ledger.accounts.get(user)
    room = g.ex.margin.withdrawable(acct) if acct is not None else 0
    pct = draw(st.integers(0, 120))
    if pct > 110 or room <= 0:
        return draw(st.integers(-1, 3_000)) * USD // 2
    return max(1, room * pct // 100)


@st.composite
def engine_command(draw: Any, g: Gen) -> C.Command:
    ex = g.ex
    ts = g.next_ts()
    k = draw(st.integers(0, 99))
    user = _pick(draw, g.users)
    asset = _pick(draw, g.assets)
    spec = g.specs[asset]
    if k < 3:
        return C.Deposit(ts=ts, user=user, usd=draw(st.integers(1, 5_000)) * USD // 2 if k else 0)
    if k < 6:
        return C.Withdraw(ts=ts, user=user, usd=draw_usd(draw, g, user))
    if k < 8:
        dst = _pick(draw, [*g.users, FEE_ACCOUNT, "0x0fresh"])
        return C.Transfer(ts=ts, src=user, dst=dst, usd=draw_usd(draw, g, user))
    if k < 9:
        g.n_subs += 1
        master = user if draw(st.integers(0, 3)) else f"0x{g.n_subs}nobody"
        return C.CreateSubAccount(ts=ts, master=master, sub=f"0x5ub{g.n_subs}", name=f"sub{g.n_subs}")
    if k < 47:  # plain orders, 1..3 per batch
        n = draw(st.integers(1, 3))
        orders = [draw_plain_order(draw, g, _pick(draw, g.assets) if i else asset, reduce_only_ok=True, user=user)
                  for i in range(n)]
        if draw(st.integers(0, 9)) == 0:  # a standalone trigger order in the batch
            szi = g.szi(user, asset)
            is_buy = szi < 0 if szi else draw(st.booleans())
            sz = abs(szi) if szi else lots_for(g.mids[asset], draw(st.integers(5, 300)))
            orders.append(draw_trigger(draw, g, asset, is_buy, sz, _pick(draw, ["tp", "sl"]),
                                       reduce_only=bool(szi) and draw(st.integers(0, 4)) > 0))
        return C.PlaceOrders(ts=ts, user=user, orders=orders)
    if k < 52:  # normalTpsl: a parent and 1..2 opposite reduce-only trigger children
        parent = draw_plain_order(draw, g, asset, reduce_only_ok=False, user=user,
                                  tif=_pick(draw, ["Gtc", "Gtc", "Ioc", "FrontendMarket", "Alo"]), invalid_ok=False)
        kinds = _pick(draw, [["tp", "sl"], ["tp"], ["sl"], ["sl", "tp"]])
        children = [draw_trigger(draw, g, asset, not parent.is_buy,
                                 parent.sz if draw(st.integers(0, 3)) else max(1, parent.sz // 2), t,
                                 reduce_only=draw(st.integers(0, 19)) > 0) for t in kinds]
        return C.PlaceOrders(ts=ts, user=user, orders=[parent, *children], grouping="normalTpsl")
    if k < 57:  # positionTpsl: TP/SL on the whole position (size 0) or a given size
        holders = [(u, a) for u in g.users for a in g.assets if g.szi(u, a)]
        if holders and draw(st.integers(0, 5)):
            user, asset = _pick(draw, holders)
        szi = g.szi(user, asset)
        is_buy = szi < 0 if szi else draw(st.booleans())
        kinds = _pick(draw, [["tp", "sl"], ["tp"], ["sl"]])
        orders = [draw_trigger(draw, g, asset, is_buy, 0 if draw(st.booleans()) else max(1, abs(szi)), t,
                               reduce_only=draw(st.integers(0, 19)) > 0) for t in kinds]
        return C.PlaceOrders(ts=ts, user=user, orders=orders, grouping="positionTpsl")
    if k < 68:  # cancel by oid
        mode = draw(st.integers(0, 9))
        mine = g.live_oids(user)
        if mode <= 5 and mine:
            oid = _pick(draw, mine)
            return C.Cancel(ts=ts, user=user, asset=ex.orders.orders[oid].asset, oid=oid)
        if mode == 6 and ex.orders.orders:
            oid = _pick(draw, sorted(ex.orders.orders))  # someone else's (or, by chance, one's own)
            return C.Cancel(ts=ts, user=user, asset=ex.orders.orders[oid].asset, oid=oid)
        if mode == 7 and mine:  # right oid, wrong market
            oid = _pick(draw, mine)
            return C.Cancel(ts=ts, user=user, asset=(ex.orders.orders[oid].asset + 1) % 3, oid=oid)
        if mode == 8:  # a finished or never-placed oid
            return C.Cancel(ts=ts, user=user, asset=asset, oid=draw(st.integers(0, ex.orders.next_oid + 2)))
        return C.Cancel(ts=ts, user=user, asset=asset, oid=ex.orders.next_oid + 7)
    if k < 71:  # cancel by cloid
        acct = ex.ledger.accounts.get(user)
        mine = sorted(acct.cloids) if acct is not None else []
        if mine and draw(st.integers(0, 3)):
            cloid = _pick(draw, mine)
            a = ex.orders.orders[acct.cloids[cloid]].asset if draw(st.integers(0, 5)) else asset
            return C.CancelByCloid(ts=ts, user=user, asset=a, cloid=cloid)
        return C.CancelByCloid(ts=ts, user=user, asset=asset, cloid=_pick(draw, CLOIDS))
    if k < 72:
        return C.CancelAll(ts=ts, user=user, asset=asset if draw(st.booleans()) else None)
    if k < 80:  # modify / batchModify
        n = 1 if k < 77 else draw(st.integers(1, 3))
        mods = []
        for _ in range(n):
            mine = g.live_oids(user)
            mode = draw(st.integers(0, 9))
            if mine and mode <= 7:
                oid = _pick(draw, mine)
                old = ex.orders.orders[oid]
                ref: int | str = old.cloid if (old.cloid is not None and mode >= 6) else oid
                req = draw_plain_order(draw, g, old.asset, reduce_only_ok=True, user=user,
                                       is_buy=old.is_buy if mode % 2 else None)
                if old.cloid is not None and mode in (3, 4):  # keep the order's cloid
                    req = C.OrderRequest(**{**_req_fields(req), "cloid": old.cloid})
            else:
                ref = draw(st.integers(0, ex.orders.next_oid + 2)) if mode == 8 else _pick(draw, CLOIDS)
                req = draw_plain_order(draw, g, asset, reduce_only_ok=True, user=user)
            mods.append(C.Modify(ts=ts, user=user, oid=ref, order=req))
        if k < 77:
            return mods[0]
        return C.BatchModify(ts=ts, user=user, modifies=mods)
    if k < 84:
        lev = draw(st.integers(1, spec.max_leverage + 2))
        return C.UpdateLeverage(ts=ts, user=user, asset=asset, is_cross=draw(st.integers(0, 2)) > 0, leverage=lev)
    if k < 87:
        iso = [(u, a) for u in g.users for a in g.assets
               if (p := ex.holdings.position(u, a)) is not None and p.szi and not p.is_cross]
        if iso and draw(st.integers(0, 4)):
            user, asset = _pick(draw, iso)
        usd = draw(st.integers(-400, 400)) * USD // 4
        return C.UpdateIsolatedMargin(ts=ts, user=user, asset=asset, usd=usd)
    # tick: the mids walk (sometimes jump), and the new marks fire triggers
    marks: dict[int, int] = {}
    for a in g.assets:
        if not draw(st.integers(0, 3)):
            continue
        s = g.specs[a]
        mid = g.mids[a]
        if draw(st.integers(0, 7)) == 0:
            mid = snap(s, mid * (1000 + draw(st.integers(-60, 60))) // 1000)  # up to ±6%
        else:
            mid = px_at(s, mid, draw(st.integers(-40, 40)))
        g.mids[a] = mid
        marks[a] = mid
    return C.Tick(ts=ts, marks=marks)


def _req_fields(req: C.OrderRequest) -> dict[str, Any]:
    return {f: getattr(req, f) for f in req.__struct_fields__}


def setup_commands(g: Gen, draw: Any) -> list[C.Command]:
    """List the markets and fund most accounts (some with little, some with plenty)."""
    cmds: list[C.Command] = [C.AddMarket(ts=g.next_ts(), spec=g.specs[a], mark_px=g.mids[a]) for a in g.assets]
    for u in g.users:
        usd = draw(st.integers(0, 20_000))
        if usd >= 50:
            cmds.append(C.Deposit(ts=g.next_ts(), user=u, usd=usd * USD))
    return cmds


# ==================================================================================================
# the audit
# ==================================================================================================
class Audit:
    """Rebuilds, from the events alone, a shadow of the live orders and of the positions, and
    checks the engine's state against it and against the invariants after every command."""

    def __init__(self, specs: dict[int, MarketSpec]) -> None:
        self.specs = specs
        self.live: dict[int, dict[str, Any]] = {}  # oid -> shadow of a live order
        self.seen: set[int] = set()  # every oid ever placed or rejected
        self.done: set[int] = set()
        self.max_oid = 0
        self.deposits = 0
        self.withdrawals = 0
        self.szi: dict[tuple[str, int], int] = defaultdict(int)
        self.n_fills = 0
        self.armed: set[int] = set()  # armed during the current command
        self.n_events: list[int] = []  # events emitted by each command so far

    # -- events -------------------------------------------------------------------------------
    def _new_oid(self, oid: int) -> None:
        assert oid not in self.seen, f"oid {oid} used twice"
        assert oid > self.max_oid, f"oid {oid} not increasing (last {self.max_oid})"
        self.seen.add(oid)
        self.max_oid = oid

    def _finish(self, oid: int) -> None:
        del self.live[oid]
        self.done.add(oid)

    def events(self, ex: Exchange, events: list[V.Event]) -> None:
        self.armed = set()
        for ev in events:
            t = type(ev)
            if t is V.OrderPlaced:
                self._new_oid(ev.oid)
                # "open": a GTC/ALO that cannot match rests at once (one event)
                assert ev.status in ("pending", "open", "waitingForTrigger", "waitingForFill"), ev
                assert ev.sz > 0 or (ev.position_tpsl and ev.tpsl and ev.status != "open"), f"size {ev.sz}: {ev}"
                self.live[ev.oid] = dict(user=ev.user, asset=ev.asset, is_buy=ev.is_buy, px=ev.px, sz=ev.sz,
                                         ro=ev.reduce_only, ptpsl=ev.position_tpsl, status=ev.status,
                                         tpsl=ev.tpsl, trigger_px=ev.trigger_px)
            elif t is V.OrderRejected:
                self._new_oid(ev.oid)
                self.done.add(ev.oid)
            elif t is V.OrderRested:
                o = self.live[ev.oid]
                assert o["status"] == "pending" and o["sz"] > 0, (ev, o)
                o["status"] = "open"
            elif t is V.OrderTriggered:
                o = self.live[ev.oid]
                assert o["status"] == "waitingForTrigger", (ev, o)
                assert ev.mark_px == ex.pricing.marks().get(o["asset"], ev.mark_px), (ev, ex.pricing.marks())
                assert trigger_hit(o["is_buy"], o["tpsl"], o["trigger_px"], ev.mark_px), f"fired but not hit: {ev} {o}"
                o["status"] = "pending"
                o["px"] = ev.px
            elif t is V.OrderArmed:
                o = self.live[ev.oid]
                assert o["status"] == "waitingForFill", (ev, o)
                o["status"] = "waitingForTrigger"
                o["sz"] = ev.sz
                self.armed.add(ev.oid)
            elif t is V.OrderResized:
                o = self.live[ev.oid]
                assert ev.sz > 0, ev
                assert o["ro"], f"resized a non-reduce-only order: {ev}"
                assert o["sz"] == 0 or ev.sz < o["sz"], f"resize must shrink: {o['sz']} -> {ev}"
                o["sz"] = ev.sz
            elif t is V.OrderClosed:
                assert ev.oid in self.live, f"closed an order that is not live: {ev}"
                self._finish(ev.oid)
            elif t is V.Fill:
                self._fill(ev)
            elif t is V.PositionTransferred:  # liquidation: backstop takeover or ADL (no fill)
                assert ev.sz != 0 and ev.src != ev.dst, ev
                self.szi[(ev.dst, ev.asset)] += ev.sz
                self.szi[(ev.src, ev.asset)] -= ev.sz
            elif t is V.MarketSettled:
                for key in [k for k in self.szi if k[1] == ev.asset]:
                    self.szi[key] = 0
            elif t is V.Deposited:
                assert ev.usd > 0
                self.deposits += ev.usd
            elif t is V.Withdrew:
                assert ev.usd > 0
                self.withdrawals += ev.usd

    def _fill(self, ev: V.Fill) -> None:
        self.n_fills += 1
        assert ev.sz > 0, f"fill of size {ev.sz}: {ev}"
        assert ev.taker != ev.maker, f"self-trade: {ev}"
        assert ev.taker_oid != ev.maker_oid, ev
        assert ev.taker_oid in self.live and ev.maker_oid in self.live, f"fill of a finished order: {ev}"
        t, m = self.live[ev.taker_oid], self.live[ev.maker_oid]
        assert t["status"] == "pending", f"taker not being matched: {ev} {t}"
        assert m["status"] == "open", f"maker not resting: {ev} {m}"
        assert t["user"] == ev.taker and m["user"] == ev.maker, (ev, t, m)
        assert t["asset"] == m["asset"] == ev.asset, (ev, t, m)
        assert t["is_buy"] == ev.taker_is_buy and m["is_buy"] != ev.taker_is_buy, (ev, t, m)
        assert ev.px == m["px"], f"fill not at the maker's price: {ev} maker={m}"
        if ev.taker_is_buy:
            assert ev.px <= t["px"], f"buy filled above its limit: {ev} taker={t}"
        else:
            assert ev.px >= t["px"], f"sell filled below its limit: {ev} taker={t}"
        assert ev.sz <= t["sz"] and ev.sz <= m["sz"], f"fill larger than an order: {ev} {t} {m}"
        spec = self.specs[ev.asset]
        ntl = ev.px * ev.sz
        assert ev.taker_fee == -((-ntl * spec.fees.taker) // 10**8) >= 0, f"taker fee: {ev}"
        assert ev.maker_fee == -((-ntl * spec.fees.maker) // 10**8), f"maker fee: {ev}"
        for oid, o in ((ev.taker_oid, t), (ev.maker_oid, m)):
            o["sz"] -= ev.sz
            if o["sz"] == 0:
                self._finish(oid)
        self.szi[(ev.taker, ev.asset)] += ev.sz if ev.taker_is_buy else -ev.sz
        self.szi[(ev.maker, ev.asset)] -= ev.sz if ev.taker_is_buy else -ev.sz

    # -- state ----------------------------------------------------------------------------------
    def state(self, ex: Exchange) -> None:
        ledger = ex.ledger
        # USDC conservation, to the unit
        assert ledger.deposits == self.deposits and ledger.withdrawals == self.withdrawals
        assert ledger.total_cash() == ledger.deposits - ledger.withdrawals, (
            f"cash {ledger.total_cash()} != deposits - withdrawals {ledger.deposits - ledger.withdrawals}")

        # positions: Σ szi == 0 per market; each equals the fold of its fills
        net: dict[int, int] = defaultdict(int)
        for addr, acct in ledger.accounts.items():
            for a, p in acct.positions.items():
                net[a] += p.szi
                assert p.asset == a
                assert p.szi == self.szi.get((addr, a), 0), f"{addr} szi {p.szi} != Σ fills {self.szi[(addr, a)]}"
                assert 1 <= p.leverage <= ex.board.markets[a].max_leverage, (addr, a, p.leverage)
                assert p.iso_raw == 0 or (p.szi and not p.is_cross), (
                    f"isolated cash {p.iso_raw} stranded on {addr}'s "
                    f"{'cross' if p.is_cross else 'flat'} position in {a}")
                if ex.board.markets[a].only_isolated:
                    assert not p.is_cross, f"cross position in isolated-only market {a}"
        assert all(v == 0 for v in net.values()), f"Σ long != Σ short: {dict(net)}"
        for (addr, a), s in self.szi.items():
            if s:
                assert ex.holdings.position(addr, a) is not None, (addr, a, s)

        # live orders: the engine's equal the shadow's (no order both resting and done)
        assert ex.orders.orders.keys() == self.live.keys(), (
            f"engine live orders {sorted(ex.orders.orders)} != shadow {sorted(self.live)}")
        assert not (self.done & ex.orders.orders.keys())
        for oid, o in ex.orders.orders.items():
            s = self.live[oid]
            assert o.oid == oid and o.status == s["status"] and o.sz == s["sz"] and o.px == s["px"], (o, s)
            assert o.status in ("open", "waitingForTrigger", "waitingForFill"), o
            assert o.sz > 0 or (o.position_tpsl and o.tpsl and o.status == "waitingForTrigger"), f"size 0: {o}"
            assert ledger.accounts[o.user].orders.get(oid) is o, o
            in_triggers = oid in ex.triggers.armed.get(o.asset, {})
            assert in_triggers == (o.status == "waitingForTrigger"), o
            assert (oid in ex.board.books[o.asset].orders) == (o.status == "open"), o
        n_acct_orders = 0
        for addr, acct in ledger.accounts.items():
            n_acct_orders += len(acct.orders)
            assert acct.n_reduce_only == sum(1 for o in acct.orders.values() if o.reduce_only), addr
            cl = {o.cloid: o.oid for o in acct.orders.values() if o.cloid is not None}
            assert len(cl) == sum(1 for o in acct.orders.values() if o.cloid is not None), f"dup cloid {addr}"
            assert acct.cloids == cl, (addr, acct.cloids, cl)
        assert n_acct_orders == len(ex.orders.orders)
        for a, trig in ex.triggers.armed.items():
            for oid, o in trig.items():
                assert ex.orders.orders.get(oid) is o and o.asset == a, o

        # books: never crossed; levels, totals and indexes agree
        for a, book in ex.board.books.items():
            seen: dict[int, Any] = {}
            for is_buy, side in ((True, book.bids), (False, book.asks)):
                for px, level in side.items():
                    assert level.px == px and level.is_buy is is_buy and level.orders, (a, px)
                    assert level.total == sum(o.sz for o in level.orders.values()), f"level total {a} {px}"
                    for oid, o in level.orders.items():
                        assert o.oid == oid and o.px == px and o.is_buy is is_buy and o.level is level, o
                        assert o.sz > 0 and o.asset == a, o
                        assert ex.orders.orders.get(oid) is o and o.status == "open", o
                        assert oid not in seen
                        seen[oid] = o
            assert book.orders.keys() == seen.keys(), a
            best_bid = max(book.bids) if book.bids else None
            best_ask = min(book.asks) if book.asks else None
            assert book.best_bid() == best_bid and book.best_ask() == best_ask, a
            assert best_bid is None or best_ask is None or best_bid < best_ask, (
                f"book {a} crossed: bid {best_bid} >= ask {best_ask}")

        # reduce-only resting orders never exceed the position on the closing side
        ro: dict[tuple[str, int, bool], int] = defaultdict(int)
        for book in ex.board.books.values():
            for o in book.orders.values():
                if o.reduce_only:
                    ro[(o.user, o.asset, o.is_buy)] += o.sz
        for (addr, a, is_buy), total in ro.items():
            szi = self.szi.get((addr, a), 0)
            closing = szi != 0 and (szi < 0) == is_buy
            assert closing, f"resting reduce-only {'buy' if is_buy else 'sell'} of {addr} in {a} with szi={szi}"
            assert total <= abs(szi), (
                f"resting reduce-only {'buys' if is_buy else 'sells'} of {addr} in {a} "
                f"total {total} > |szi| {abs(szi)}")


def trigger_hit(is_buy: bool, tpsl: str, trigger_px: int, mark: int) -> bool:
    """Hyperliquid: a sell TP fires when the mark is at or above its trigger, a sell SL at or below;
    a buy TP at or below, a buy SL at or above."""
    if is_buy:
        return mark <= trigger_px if tpsl == "tp" else mark >= trigger_px
    return mark >= trigger_px if tpsl == "tp" else mark <= trigger_px


def check_command(ex: Exchange, audit: Audit, cmd: C.Command, events: list[V.Event], response: Response) -> None:
    """Checks that need the command and its response: triggers after a tick, and the fill totals
    reported."""
    if isinstance(cmd, C.Tick):
        for a, trig in ex.triggers.armed.items():
            mark = ex.pricing.mark(a)
            for oid, o in trig.items():
                assert oid in audit.armed or not trigger_hit(o.is_buy, o.tpsl, o.trigger_px, mark), (
                    f"trigger {o} still waiting at mark {mark} after a tick")
    if isinstance(cmd, C.PlaceOrders) and cmd.grouping == "na" and isinstance(response, Statuses):
        assert len(response) == len(cmd.orders), response
        for st_ in response:
            if isinstance(st_, Filled):
                mine = [ev for ev in events if isinstance(ev, V.Fill) and ev.taker_oid == st_.oid]
                assert st_.total_sz == sum(ev.sz for ev in mine) > 0, (st_, mine)
                assert st_.ntl == sum(ev.px * ev.sz for ev in mine), (st_, mine)


def _describe(events: list[V.Event]) -> str:
    return "\n".join(f"    {ev!r}" for ev in events)


def _apply_and_audit(ex: Exchange, audit: Audit, cmd: C.Command, log: list[C.Command],
                     all_events: list[V.Event], responses: list[Any]) -> list[V.Event]:
    log.append(cmd)
    outcome = ex.execute(cmd)
    events = outcome.events
    all_events.extend(events)
    responses.append(outcome.response)
    try:
        audit.events(ex, events)
        audit.state(ex)
        check_command(ex, audit, cmd, events, outcome.response)
    except AssertionError as e:
        # Commands that emitted no event changed nothing (state changes only through events), so
        # the ones that did, then the failing one, are an exact reproduction.
        repro = [c for c, n in zip(log, audit.n_events) if n] + [cmd]
        msg = f"{e}\n  after command #{len(log)}: {cmd!r}\n  response: {outcome.response!r}\n  events:\n"
        msg += _describe(events)
        if _is_final_run():  # hypothesis' last replay of the shrunk example: minimise it further
            repro = minimise(repro, failure_key(str(e)), _replay_concrete)
            msg += "\n  minimal reproduction (delta-debugged; its own failure printed first):"
            msg += f"\n    {_replay_concrete(repro)[1]}"
        msg += "\n  reproduction:\n  [\n" + "\n".join(f"    {c!r}," for c in repro) + "\n  ]"
        raise AssertionError(msg) from None
    audit.n_events.append(len(events))
    return events


def _is_final_run() -> bool:
    try:
        from hypothesis.control import current_build_context

        return bool(current_build_context().is_final)
    except Exception:  # not inside a hypothesis test
        return False




def _replay_concrete(cmds: list[C.Command]) -> tuple[str | None, str]:
    """Apply ``cmds`` to a fresh exchange under the audit: (failure key or None, message)."""
    ex = Exchange()
    audit = Audit({c.spec.asset: c.spec for c in cmds if isinstance(c, C.AddMarket)})
    try:
        for cmd in cmds:
            outcome = ex.execute(cmd)
            audit.events(ex, outcome.events)
            audit.state(ex)
            check_command(ex, audit, cmd, outcome.events, outcome.response)
    except AssertionError as e:
        return failure_key(str(e)), str(e).splitlines()[0] if str(e) else "AssertionError"
    except Exception as e:  # the engine itself raised
        return f"{type(e).__name__}", f"{type(e).__name__}: {e}"
    return None, "passes"


def _check_replay_and_determinism(ex: Exchange, log: list[C.Command], all_events: list[V.Event],
                                  responses: list[Any]) -> None:
    h = ex.state_hash()
    assert Exchange.replay(all_events).state_hash() == h, "replay of the events gives another state"
    fresh = Exchange()
    again: list[V.Event] = []
    for i, cmd in enumerate(log):
        outcome = fresh.execute(cmd)
        assert outcome.response == responses[i], f"command #{i + 1} answered differently: {cmd!r}"
        again.extend(outcome.events)
    assert again == all_events, "re-applying the commands gave other events"
    assert fresh.state_hash() == h, "re-applying the commands gave another state"
    assert floats_in_state(ex) == [], "a float in engine state"


# ==================================================================================================
# 1. invariants after every command
# ==================================================================================================
@INV_SETTINGS
@given(st.data())
def _invariants_property(data: st.DataObject) -> None:
    n_markets = data.draw(st.integers(2, 3), label="markets")
    n_users = data.draw(st.integers(6, 12), label="accounts")
    ex = Exchange()
    g = Gen(ex, INV_MARKETS[:n_markets], n_users)
    audit = Audit(g.specs)
    log: list[C.Command] = []
    all_events: list[V.Event] = []
    responses: list[Any] = []
    for cmd in setup_commands(g, data.draw):
        _apply_and_audit(ex, audit, cmd, log, all_events, responses)
    n = data.draw(st.integers(*INV_LEN), label="commands")
    for i in range(n):
        cmd = data.draw(engine_command(g), label=f"cmd {i + 1}")
        _apply_and_audit(ex, audit, cmd, log, all_events, responses)
        COUNTS["invariants"] += 1
        if isinstance(cmd, C.CreateSubAccount) and responses[-1] == OK and len(g.users) < 15:
            g.users.append(cmd.sub)
    COUNTS["invariants_fills"] += audit.n_fills
    _check_replay_and_determinism(ex, log, all_events, responses)


def test_engine_invariants_hold_after_every_command() -> None:
    COUNTS["invariants"] = COUNTS["invariants_fills"] = 0
    t0 = time.perf_counter()
    _invariants_property()
    dt = time.perf_counter() - t0
    print(f"\ninvariants: {COUNTS['invariants']} commands, {COUNTS['invariants_fills']} fills, "
          f"{INV_EXAMPLES} examples, {dt:.1f}s ({PROFILE} profile)")
    assert COUNTS["invariants"] >= INV_MIN_COMMANDS, COUNTS["invariants"]
    assert COUNTS["invariants_fills"] >= INV_MIN_COMMANDS // 20  # the sequences really trade


# ==================================================================================================
# 2. differential test against the naive reference matcher
# ==================================================================================================
@st.composite
def matching_command(draw: Any, g: Gen, ref: ReferenceMatcher) -> C.Command:
    ts = g.next_ts()
    k = draw(st.integers(0, 99))
    user = _pick(draw, g.users)
    asset = _pick(draw, g.assets)
    if k < 3:  # the mid walks (generator side only: no marks move)
        for a in g.assets:
            g.mids[a] = px_at(g.specs[a], g.mids[a], draw(st.integers(-15, 15)))
        return C.Deposit(ts=ts, user=user, usd=USD)
    if k < 60:
        n = draw(st.integers(1, 3))
        orders = [draw_plain_order(draw, g, _pick(draw, g.assets) if i else asset, reduce_only_ok=False, user=user)
                  for i in range(n)]
        return C.PlaceOrders(ts=ts, user=user, orders=orders)
    mine = [o.oid for o in ref.live(user)]
    if k < 80:
        mode = draw(st.integers(0, 9))
        if mine and mode <= 5:
            oid = _pick(draw, mine)
            live = g.ex.orders.orders
            return C.Cancel(ts=ts, user=user, asset=live[oid].asset if oid in live else asset, oid=oid)
        if mode == 6 and ref.resting:
            o = _pick(draw, ref.resting)
            return C.Cancel(ts=ts, user=user, asset=o.asset, oid=o.oid)
        if mode == 7 and mine:
            return C.Cancel(ts=ts, user=user, asset=asset, oid=_pick(draw, mine))  # maybe the wrong market
        return C.Cancel(ts=ts, user=user, asset=asset, oid=draw(st.integers(0, ref.next_oid + 3)))
    if k < 85:
        cl = [o.cloid for o in ref.live(user) if o.cloid is not None]
        cloid = _pick(draw, cl) if cl and draw(st.integers(0, 3)) else _pick(draw, CLOIDS)
        return C.CancelByCloid(ts=ts, user=user, asset=asset, cloid=cloid)
    if k < 87:
        return C.CancelAll(ts=ts, user=user, asset=asset if draw(st.booleans()) else None)
    n = 1 if k < 95 else draw(st.integers(1, 3))
    mods = []
    for _ in range(n):
        mode = draw(st.integers(0, 9))
        live = ref.live(user)
        if live and mode <= 7:
            o = _pick(draw, live)
            target: int | str = o.cloid if (o.cloid is not None and mode >= 6) else o.oid
            req = draw_plain_order(draw, g, o.asset, reduce_only_ok=False, user=user,
                                   is_buy=o.is_buy if mode % 2 else None)
            if o.cloid is not None and mode in (3, 4):
                req = C.OrderRequest(**{**_req_fields(req), "cloid": o.cloid})
        else:
            target = draw(st.integers(0, ref.next_oid + 3)) if mode == 8 else _pick(draw, CLOIDS)
            req = draw_plain_order(draw, g, asset, reduce_only_ok=False, user=user)
        mods.append(C.Modify(ts=ts, user=user, oid=target, order=req))
    return mods[0] if k < 95 else C.BatchModify(ts=ts, user=user, modifies=mods)


def _engine_books(ex: Exchange, asset: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    b = ex.board.books[asset]
    return [(o.oid, o.sz) for o in b.iter_side(True)], [(o.oid, o.sz) for o in b.iter_side(False)]


@DIFF_SETTINGS
@given(st.data())
def _differential_property(data: st.DataObject) -> None:
    n_markets = data.draw(st.integers(2, 3), label="markets")
    n_users = data.draw(st.integers(6, 12), label="accounts")
    markets = DIFF_MARKETS[:n_markets]
    ex = Exchange()
    g = Gen(ex, markets, n_users)
    ref = ReferenceMatcher({s.asset: RefMarket(s.asset, s.px_decimals, s.min_notional, s.max_sig_figs)
                            for s, _ in markets})
    setup: list[C.Command] = [C.AddMarket(ts=g.next_ts(), spec=s, mark_px=mid) for s, mid in markets]
    for u in g.users:
        setup.append(C.Deposit(ts=g.next_ts(), user=u, usd=10**9 * USD))  # a billion dollars each
        for s, _ in markets:
            setup.append(C.UpdateLeverage(ts=g.next_ts(), user=u, asset=s.asset, is_cross=True,
                                          leverage=s.max_leverage))
    n = data.draw(st.integers(*DIFF_LEN), label="commands")
    log: list[C.Command] = []
    for i in range(len(setup) + n):
        cmd = setup[i] if i < len(setup) else data.draw(matching_command(g, ref), label=f"cmd {i + 1 - len(setup)}")
        log.append(cmd)
        try:
            COUNTS["differential_fills"] += _diff_step(ex, ref, cmd)
        except AssertionError as e:
            msg = str(e)
            if _is_final_run():
                key = failure_key(msg)
                repro = minimise(log, key, replay=_diff_replay_concrete)
                msg += "\n  minimal reproduction (delta-debugged; its own failure printed first):"
                msg += f"\n    {_diff_replay_concrete(repro)[1]}\n  [\n"
                msg += "\n".join(f"    {c!r}," for c in repro) + "\n  ]"
            raise AssertionError(msg) from None
        COUNTS["differential"] += i >= len(setup)


def _diff_step(ex: Exchange, ref: ReferenceMatcher, cmd: C.Command) -> int:
    """Apply ``cmd`` to both; check fills, oids and books agree; return the number of fills."""
    events = ex.apply(cmd)
    got = [(ev.maker_oid, ev.taker_oid, ev.px, ev.sz) for ev in events if isinstance(ev, V.Fill)]
    want = [(f.maker_oid, f.taker_oid, f.px, f.sz) for f in ref.apply(cmd)]
    assert not [ev for ev in events if isinstance(ev, V.OrderClosed) and ev.status == "marginCanceled"], events
    assert not [ev for ev in events if isinstance(ev, V.OrderRejected) and "Margin" in ev.status], events
    assert got == want, (f"fills differ after {cmd!r}\n  engine:    {got}\n  reference: {want}\n"
                         f"  events:\n{_describe(events)}")
    assert ex.orders.next_oid == ref.next_oid, (
        f"next oid differs after {cmd!r}: engine {ex.orders.next_oid}, ref {ref.next_oid}")
    for a in sorted(ex.board.books):
        eb = _engine_books(ex, a)
        rb = (ref.book(a, True), ref.book(a, False))
        assert eb == rb, (f"books of {a} differ after {cmd!r}\n  engine:    {eb}\n  reference: {rb}\n"
                          f"  events:\n{_describe(events)}")
    return len(got)


def _diff_replay_concrete(cmds: list[C.Command]) -> tuple[str | None, str]:
    specs = [c.spec for c in cmds if isinstance(c, C.AddMarket)]
    ex = Exchange()
    ref = ReferenceMatcher({s.asset: RefMarket(s.asset, s.px_decimals, s.min_notional, s.max_sig_figs)
                            for s in specs})
    try:
        for cmd in cmds:
            _diff_step(ex, ref, cmd)
    except AssertionError as e:
        return failure_key(str(e)), str(e).splitlines()[0] if str(e) else "AssertionError"
    except Exception as e:
        return f"{type(e).__name__}", f"{type(e).__name__}: {e}"
    return None, "passes"


def test_matching_equals_naive_reference() -> None:
    COUNTS["differential"] = COUNTS["differential_fills"] = 0
    t0 = time.perf_counter()
    _differential_property()
    dt = time.perf_counter() - t0
    print(f"\ndifferential: {COUNTS['differential']} commands, {COUNTS['differential_fills']} fills, "
          f"{DIFF_EXAMPLES} examples, {dt:.1f}s ({PROFILE} profile)")
    assert COUNTS["differential"] >= DIFF_MIN_COMMANDS, COUNTS["differential"]
    assert COUNTS["differential_fills"] >= DIFF_MIN_COMMANDS // 20


def test_reference_matcher_self_check() -> None:
    """The reference itself on a hand-worked case: price, then time priority; STP cancels the
    resting order and the taker continues; IOC remainder dropped; ALO refused when crossing."""
    ref = ReferenceMatcher({0: RefMarket(0, 1, 10 * USD)})

    def req(is_buy: bool, px: int, sz: int, tif: str = "Gtc") -> C.OrderRequest:
        return C.OrderRequest(asset=0, is_buy=is_buy, px=px, sz=sz, tif=tif)

    ref.place("a", req(False, 600_010, 100))  # oid 1
    ref.place("b", req(False, 600_000, 100))  # oid 2: better price
    ref.place("c", req(False, 600_000, 100))  # oid 3: same price, later
    ref.place("a", req(False, 600_000, 50))  # oid 4: a's own, later still
    ref.place("c", req(True, 600_020, 100, "Alo"))  # oid 5: crosses -> refused
    ref.place("a", req(True, 600_010, 300, "Ioc"))  # oid 6
    assert [(f.maker_oid, f.taker_oid, f.px, f.sz) for f in ref.fills] == [
        (2, 6, 600_000, 100), (3, 6, 600_000, 100)]  # oid 4 and then oid 1 are a's own: cancelled
    assert ref.resting == [] and ref.next_oid == 7
    # modify: an invalid replacement (size 0) keeps the original; a valid one re-queues it
    ref.place("b", req(True, 599_000, 100))  # oid 7
    ref.place("c", req(True, 599_000, 100))  # oid 8
    ref.modify("b", 7, req(True, 599_000, 0))  # oid 9 consumed, refused
    assert ref.book(0, True) == [(7, 100), (8, 100)] and ref.next_oid == 10
    ref.modify("b", 7, req(True, 599_000, 100))  # oid 10, behind oid 8
    assert ref.book(0, True) == [(8, 100), (10, 100)] and ref.next_oid == 11
    ref.modify("b", 10, req(True, 601_000, 100, "Alo"))  # valid, but crosses nothing -> rests
    ref.modify("b", 11, req(False, 599_000, 100, "Alo"))  # crosses oid 8: refused, oid 11 gone
    assert ref.book(0, True) == [(8, 100)] and ref.book(0, False) == [] and ref.next_oid == 13

"""Simulated participants as a pure function of simulated time: each ``step`` turns the engine's read
surface and the time into the commands the participants send, deterministically from the seed.
The stress lab drives the engine with them; every command carries its own timestamp, so a run is
the same on any machine at any speed.

* **Market makers** quote a ladder of post-only orders around the external price when the caller
  passes one and the market's session (if it has one) is open — they price off, and hedge on, the
  underlying's own market — else around the oracle (or the mark), on every market, requoting
  every ``requote_s`` (cancel-all and a new ladder in one submission) — or, with
  ``requote_min_move_bps`` > 0, only when a centre has moved that far, the widening has changed
  or more than a level's worth has traded (a quiet book's ladder is left resting, as real makers do).  The half
  spread, the level spacing and the size per level are parameters; under stress (``stress`` > 1:
  a liquidity withdrawal) they quote ``stress`` times wider and ``stress`` times smaller.  A maker
  long (short) ``x × max_inventory_usd`` on a market moves its quotes ``x × inventory_skew_bps``
  down (up), ``x`` capped at ±1, to shed it — how a book absorbing one-sided flow walks — and past
  ``max_inventory_usd`` quotes only the side that reduces it.  On a market with a session calendar
  the makers hedge on the underlying while it trades: at once by default (none of the inventory
  counts while it is open, and off hours what they took on since its close), or gradually with
  ``hedge_halflife_s`` > 0 (the unhedged part halves every that many seconds while the underlying
  trades, and stays while it is closed) — a burst of one-sided flow then leaves them long or short
  for minutes, and they skew their quotes until it is hedged.
* **Volatility-aware makers** (``vol_widen_bps`` > 0): each tracks the realised volatility of the
  price it quotes around (an EWMA of |log return| per √second, in bps, half-life
  ``vol_halflife_s``) and quotes ``1 + vol / vol_widen_bps`` times wider and thinner; past
  ``vol_pull_bps × (1 + k)`` maker ``k`` pulls its quotes on that market until the volatility falls
  back (the first makers pull first, the wider ones last).  Off hours makers quote
  ``offhours_spread`` times their half spread (the silver weekend's book was tighter: 0.93 bps).
* **Noise takers** send IOC market orders (5% bound from the mark) at Poisson times (``take_per_s``
  per market), of lognormal USD size (``take_usd_mu`` / ``take_usd_sigma``: the log of the USD
  size), buying with probability ``buy_share`` — leaning against their own inventory.  With
  ``imbalance`` > 0 each market has its own flow regime: its buy share is ``buy_share +
  imbalance × x`` (within 0.05–0.95), ``x`` a seeded mean-reverting (Ornstein–Uhlenbeck) path
  per market with unit variance and half-life ``imbalance_halflife_s`` — so one market is bought
  while another is sold, the makers' inventories and skews follow, and with them each market's
  premium and funding, differently and changing over time.
* **Basis arbitrageurs** trade the mark back toward a reference: the external venue's price when
  the caller passes one (``external``: what they would see on the underlying's own market), else
  the oracle — and while a session market's external market is closed, the oracle at its close (the
  last external price: off hours there is nothing else to anchor to).  Every ``arb_every_s`` one of them sends an IOC
  buying when the mark is more than ``arb_threshold_bps`` under the reference (selling when over),
  of ``arb_usd`` times the gap over the threshold (at most 5×), within ``arb_max_usd`` of
  inventory each.
* **Off hours** (a market whose session calendar says its external market is closed) makers quote
  ``offhours_depth`` times the size and takers trade ``offhours_take_rate`` times as often: the
  silver study's weekend traded ~0.3× the weekday notional.
* **Momentum traders** (``momentum`` of them) chase moves: every ``momentum_every_s`` one of them
  buys (sells) ``momentum_usd`` times the move over ``momentum_threshold_bps`` (at most 5×) when the
  mark rose (fell) more than ``momentum_threshold_bps`` over the last ``momentum_lookback_s`` — the
  flow that piles into a liquidation cascade — within ``momentum_max_usd`` of inventory each; once
  the move is under half the threshold one of them closes its position.
* **Leveraged traders** open positions at ``lever_leverage`` worth ``lever_usd`` (each its own
  direction, long with probability ``lever_long_share``) and hold them: a price move liquidates
  some, which is what the lab measures.  They open at once, or one after another evenly over the
  first ``lever_open_s`` seconds (so a thin book is not asked for all of them in one step).

Addresses are fixed per role and index (``0x…a9e1…``) so reads can tell participants apart.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from perpbox.core.numbers import USD, round_price_sig
from perpbox.exchange import commands as C
from perpbox.exchange.reads import ExchangeReads as Reads
from perpbox.market.spec import MarketSpec


def participant(role: int, i: int) -> str:
    """The address of participant ``i`` of ``role`` (1 makers, 2 takers, 3 leveraged traders,
    4 basis arbitrageurs, 5 momentum traders)."""
    return f"0x{0xA9E1:04x}{role:04x}{i:032x}"


@dataclass(frozen=True)
class PopulationParams:
    makers: int = 2
    maker_capital_usd: int = 20_000_000
    requote_s: float = 2.0
    requote_min_move_bps: float = 0.0
    half_spread_bps: float = 1.0
    level_spacing_bps: float = 2.0
    levels: int = 8
    level_usd: float = 10_000.0
    max_inventory_usd: float = 2_000_000.0
    inventory_skew_bps: float = 0.0
    takers: int = 3
    taker_capital_usd: int = 500_000
    take_per_s: float = 0.5
    take_usd_mu: float = 8.0
    take_usd_sigma: float = 1.0
    buy_share: float = 0.5
    imbalance: float = 0.0
    imbalance_halflife_s: float = 1800.0
    levered: int = 20
    lever_capital_usd: int = 50_000
    lever_leverage: int = 10
    lever_usd: float = 200_000.0
    lever_long_share: float = 0.5
    lever_open_s: float = 0.0
    arbs: int = 0
    arb_capital_usd: int = 2_000_000
    arb_every_s: float = 10.0
    arb_threshold_bps: float = 30.0
    arb_usd: float = 20_000.0
    arb_max_usd: float = 2_000_000.0
    offhours_depth: float = 1.0
    offhours_take_rate: float = 1.0
    offhours_spread: float = 1.0
    hedge_halflife_s: float = 0.0
    vol_halflife_s: float = 60.0
    vol_widen_bps: float = 0.0
    vol_pull_bps: float = 0.0
    momentum: int = 0
    momentum_capital_usd: int = 500_000
    momentum_every_s: float = 5.0
    momentum_lookback_s: float = 60.0
    momentum_threshold_bps: float = 50.0
    momentum_usd: float = 20_000.0
    momentum_max_usd: float = 1_000_000.0

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> PopulationParams:
        """From a scenario's ``[population]`` table; an unknown key or a wrong type is a ValueError."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise ValueError(f"[population]: unknown keys {unknown} (known: {sorted(known)})")
        kw: dict[str, Any] = {}
        for key, value in table.items():
            want = int if known[key].type in ("int", int) else float
            if isinstance(value, bool) or not isinstance(value, int | float) or (want is int and
                                                                                 not isinstance(value, int)):
                raise ValueError(f"[population].{key}: {value!r} is not {'an integer' if want is int else 'a number'}")
            if value < 0 or (isinstance(value, float) and not math.isfinite(value)):
                raise ValueError(f"[population].{key}: must be a finite number ≥ 0, not {value!r}")
            kw[key] = want(value)
        params = cls(**kw)
        if not 0 <= params.buy_share <= 1 or not 0 <= params.lever_long_share <= 1:
            raise ValueError("[population]: buy_share and lever_long_share are probabilities (0 to 1)")
        if params.lever_leverage < 1 or params.levels < 1 or params.requote_s <= 0:
            raise ValueError("[population]: lever_leverage and levels ≥ 1, requote_s > 0")
        if params.imbalance > 0.45 or params.imbalance_halflife_s <= 0:
            raise ValueError("[population]: imbalance at most 0.45, imbalance_halflife_s > 0")
        if params.vol_halflife_s <= 0 or params.momentum_every_s <= 0 or params.momentum_lookback_s <= 0 \
                or (params.momentum and params.momentum_threshold_bps <= 0):
            raise ValueError("[population]: vol_halflife_s, momentum_every_s, momentum_lookback_s and "
                             "momentum_threshold_bps > 0")
        return params


def _lots(spec: MarketSpec, px: int, usd: float) -> int:
    """Lots worth about ``usd`` (at least the $10 minimum order) at ``px`` price units."""
    lot_value = px / 10**spec.px_decimals / 10**spec.sz_decimals  # USD per lot (display maths, outside the engine)
    lots: int = math.ceil(max(usd, 11.0) / lot_value)
    return max(lots, 1)


def session_closed(spec: MarketSpec, ts: int) -> bool:
    """Whether ``spec``'s external market is closed at ``ts`` (a market with no session never is)."""
    session = spec.oracle.session
    return session is not None and not session.is_open(ts)


class Population:
    def __init__(self, params: PopulationParams, seed: int) -> None:
        self.p = params
        self.rng = random.Random(f"perpbox population {seed}")
        self.makers = [participant(1, i) for i in range(params.makers)]
        self.takers = [participant(2, i) for i in range(params.takers)]
        self.levered = [participant(3, i) for i in range(params.levered)]
        self.arbs = [participant(4, i) for i in range(params.arbs)]
        self.chasers = [participant(5, i) for i in range(params.momentum)]
        self.next_arb_ms: int | None = None
        self.next_chase_ms: int | None = None
        self.marks: dict[int, deque[tuple[int, int]]] = {}  # asset -> (ts, mark) at the momentum checks
        self.close_oracle: dict[int, int] = {}  # asset -> its oracle when its session closed
        self.hedged: dict[tuple[str, int], tuple[int, int]] = {}  # (maker, asset) -> (lots hedged, when)
        self.vol: dict[int, float] = {}  # asset -> EWMA of |log return| per √s, bps
        self.last_px: dict[int, tuple[int, int]] = {}  # asset -> (ts, price) the EWMA last saw
        self.pulled: frozenset[tuple[int, int]] = frozenset()  # (maker index, asset) quoting nothing
        self.quoted: dict[str, dict[int, tuple[int, float, bool, int]]] = {}  # maker -> what its ladder was built on
        self.next_quote_ms: int | None = None
        self.next_take_ms: dict[int, int] = {}
        self.opened: set[str] = set()
        self.first_ts: int | None = None
        self.flow_rng = random.Random(f"perpbox flow regimes {seed}")  # apart: the other draws stay as they were
        self.flow: dict[int, tuple[int, float]] = {}  # asset -> (when, its regime x)

    def setup(self, ts: int, dexes: tuple[str, ...] = ()) -> list[C.Command]:
        """Every participant's capital on the first dex and as much on each HIP-3 dex in ``dexes``
        (deposited, then sent there: a standard account keeps one balance per perp dex)."""
        p = self.p
        out: list[C.Command] = []
        for users, usd in ((self.makers, p.maker_capital_usd), (self.takers, p.taker_capital_usd),
                           (self.levered, p.lever_capital_usd), (self.arbs, p.arb_capital_usd),
                           (self.chasers, p.momentum_capital_usd)):
            for u in users:
                out.append(C.Deposit(ts=ts, user=u, usd=usd * USD * (1 + len(dexes))))
                out += [C.SendAsset(ts=ts, user=u, src=u, dst=u, src_dex="", dst_dex=d, usd=usd * USD) for d in dexes]
        return out

    def step(self, ts: int, reads: Reads, stress: float = 1.0,
             external: dict[int, int] | None = None) -> list[C.Command]:
        """The commands sent at ``ts``; ``stress`` ≥ 1 widens and thins the makers' quotes;
        ``external`` (asset → price units) is the underlying's price elsewhere, for the arbitrageurs."""
        out: list[C.Command] = []
        specs = [s for s in reads.markets() if reads.status(s.asset) == "active"]
        if self.p.vol_widen_bps or self.p.vol_pull_bps:
            self._track_vol(ts, reads, specs, external or {})
        if self.next_quote_ms is None or ts >= self.next_quote_ms:
            self.next_quote_ms = ts + round(self.p.requote_s * 1000)
            for k, maker in enumerate(self.makers):
                out += self._requote(ts, reads, maker, k, specs, stress, external or {})
        for spec in specs:
            out += self._takes(ts, reads, spec)
        out += self._lever(ts, reads, specs)
        if self.arbs and (self.next_arb_ms is None or ts >= self.next_arb_ms):
            self.next_arb_ms = ts + round(self.p.arb_every_s * 1000)
            out += self._arbitrage(ts, reads, specs, external or {})
        if self.chasers and (self.next_chase_ms is None or ts >= self.next_chase_ms):
            self.next_chase_ms = ts + round(self.p.momentum_every_s * 1000)
            out += self._chase(ts, reads, specs)
        return out

    def _arbitrage(self, ts: int, reads: Reads, specs: list[MarketSpec], external: dict[int, int]) -> list[C.Command]:
        p, rng = self.p, self.rng
        out: list[C.Command] = []
        for spec in specs:
            oracle, mark = reads.oracle(spec.asset), reads.mark(spec.asset)
            if session_closed(spec, ts):
                oracle = self.close_oracle.setdefault(spec.asset, oracle)
            else:
                self.close_oracle.pop(spec.asset, None)
                oracle = external.get(spec.asset, oracle)
            if oracle <= 0 or mark <= 0 or abs(mark - oracle) * 10_000 <= oracle * p.arb_threshold_bps:
                continue
            gap = abs(mark - oracle) * 10_000 / oracle / p.arb_threshold_bps if p.arb_threshold_bps else 5.0
            user = self.arbs[rng.randrange(len(self.arbs))]
            is_buy = mark < oracle
            pos = reads.position(user, spec.asset)
            held = 0.0 if pos is None else pos.szi * mark / 10**spec.px_decimals / 10**spec.sz_decimals
            if (held >= p.arb_max_usd and is_buy) or (held <= -p.arb_max_usd and not is_buy):
                continue
            cmd = self._market(ts, reads, user, spec, is_buy, p.arb_usd * min(gap, 5.0))
            if cmd is not None:
                out.append(cmd)
        return out

    # -- makers -------------------------------------------------------------------------------------
    def _requote(self, ts: int, reads: Reads, maker: str, k: int, specs: list[MarketSpec],
                 stress: float, external: dict[int, int]) -> list[C.Command]:
        p, rng = self.p, self.rng
        plan: list[tuple[MarketSpec, int, float, float, bool]] = []  # (spec, centre, inventory, widening, closed)
        for spec in specs:
            center = self._center(ts, reads, spec, external)
            if center <= 0 or (k, spec.asset) in self.pulled:
                continue
            lots = self._szi(reads, maker, spec)
            if spec.oracle.session is not None:  # hedged on the underlying while it trades
                lots -= self._hedged(ts, maker, spec, lots)
            inventory = lots * center / 10**spec.px_decimals / 10**spec.sz_decimals
            wide = stress * (1 + self.vol.get(spec.asset, 0.0) / p.vol_widen_bps if p.vol_widen_bps else 1.0)
            if p.inventory_skew_bps and p.max_inventory_usd:
                x = max(-1.0, min(1.0, inventory / p.max_inventory_usd))
                center = round(center * (1 - x * p.inventory_skew_bps / 10_000))
            plan.append((spec, center, inventory, wide, session_closed(spec, ts)))
        if p.requote_min_move_bps and self._still_good(maker, reads, plan):
            return []  # the resting ladder still fits: leave it
        self.quoted[maker] = {spec.asset: (center, wide, closed, self._szi(reads, maker, spec))
                              for spec, center, _, wide, closed in plan}
        orders: list[C.OrderRequest] = []
        for spec, center, inventory, wide, closed in plan:
            half = (p.half_spread_bps * (1 + 0.5 * k) + rng.random() * p.half_spread_bps) * wide
            if closed:
                half *= p.offhours_spread
            depth = p.offhours_depth if closed else 1.0
            for lvl in range(p.levels):
                off = center * (half + lvl * p.level_spacing_bps * wide) / 10_000
                usd = p.level_usd * (1 + lvl) * rng.uniform(0.5, 1.5) * depth / wide
                for is_buy in (True, False):
                    if (inventory > p.max_inventory_usd and is_buy) or (inventory < -p.max_inventory_usd
                                                                        and not is_buy):
                        continue  # only the side that reduces the inventory
                    raw = int(center - off) if is_buy else int(center + off) + 1
                    px = round_price_sig(raw, spec.px_decimals, up=not is_buy)
                    if px > 0:
                        orders.append(C.OrderRequest(asset=spec.asset, is_buy=is_buy, px=px,
                                                     sz=_lots(spec, px, usd), tif="Alo"))
        cmds: list[C.Command] = [C.CancelAll(ts=ts, user=maker)]
        if orders:
            cmds.append(C.PlaceOrders(ts=ts, user=maker, orders=orders))
        return cmds

    def _still_good(self, maker: str, reads: Reads, plan: list[tuple[MarketSpec, int, float, float, bool]]) -> bool:
        """Whether ``maker``'s resting ladder was quoted for the same markets, less than one level's
        worth (``level_usd``) of it has traded since, each centre has moved less than
        ``requote_min_move_bps`` and the widening less than 5%: a maker then leaves its quotes alone."""
        last = self.quoted.get(maker)
        if last is None or set(last) != {spec.asset for spec, *_ in plan}:
            return False
        tol = self.p.requote_min_move_bps / 10_000
        for spec, center, _, wide, closed in plan:
            c0, w0, closed0, pos0 = last[spec.asset]
            traded = abs(self._szi(reads, maker, spec) - pos0) * center / 10**spec.px_decimals / 10**spec.sz_decimals
            if closed != closed0 or abs(center - c0) > tol * c0 or abs(wide - w0) > 0.05 * w0 \
                    or traded > self.p.level_usd:
                return False
        return True

    @staticmethod
    def _szi(reads: Reads, user: str, spec: MarketSpec) -> int:
        pos = reads.position(user, spec.asset)
        return 0 if pos is None else pos.szi

    @staticmethod
    def _center(ts: int, reads: Reads, spec: MarketSpec, external: dict[int, int]) -> int:
        """The price a maker quotes around: the underlying's while it trades, else the oracle (or mark)."""
        if spec.asset in external and not session_closed(spec, ts):
            return external[spec.asset]
        return reads.oracle(spec.asset) or reads.mark(spec.asset)

    def _hedged(self, ts: int, maker: str, spec: MarketSpec, lots: int) -> int:
        """The lots of ``maker``'s position on ``spec`` it has hedged on the underlying by ``ts``."""
        key = (maker, spec.asset)
        done, since = self.hedged.get(key, (0, ts))
        if not session_closed(spec, ts):
            halflife = self.p.hedge_halflife_s
            share = 1.0 if halflife <= 0 else 1 - 0.5 ** ((ts - since) / 1000 / halflife)
            done += round((lots - done) * share)
        self.hedged[key] = (done, ts)
        return done

    def _track_vol(self, ts: int, reads: Reads, specs: list[MarketSpec], external: dict[int, int]) -> None:
        """Update each market's volatility EWMA; requote at once when a maker's pull state changes."""
        p = self.p
        for spec in specs:
            px = self._center(ts, reads, spec, external)
            last = self.last_px.get(spec.asset)
            self.last_px[spec.asset] = (ts, px)
            if last is None or px <= 0 or last[1] <= 0 or ts <= last[0]:
                continue
            dt_s = (ts - last[0]) / 1000
            r = abs(math.log(px / last[1])) * 10_000 / math.sqrt(dt_s)
            a = 1 - 0.5 ** (dt_s / p.vol_halflife_s)
            self.vol[spec.asset] = self.vol.get(spec.asset, r) * (1 - a) + r * a
        if p.vol_pull_bps:
            pulled = frozenset((k, a) for k in range(len(self.makers)) for a, v in self.vol.items()
                               if v > p.vol_pull_bps * (1 + k))
            if pulled != self.pulled:
                self.pulled, self.next_quote_ms = pulled, ts

    # -- momentum traders -----------------------------------------------------------------------------
    def _chase(self, ts: int, reads: Reads, specs: list[MarketSpec]) -> list[C.Command]:
        p, rng = self.p, self.rng
        out: list[C.Command] = []
        lookback = round(p.momentum_lookback_s * 1000)
        for spec in specs:
            mark = reads.mark(spec.asset)
            if mark <= 0:
                continue
            seen = self.marks.setdefault(spec.asset, deque())
            seen.append((ts, mark))
            while len(seen) > 1 and seen[1][0] <= ts - lookback:
                seen.popleft()
            then = seen[0][1]
            move = (mark - then) * 10_000 / then
            user = self.chasers[rng.randrange(len(self.chasers))]
            szi = self._szi(reads, user, spec)
            if abs(move) > p.momentum_threshold_bps:
                is_buy = move > 0
                held = szi * mark / 10**spec.px_decimals / 10**spec.sz_decimals
                if (is_buy and held < p.momentum_max_usd) or (not is_buy and held > -p.momentum_max_usd):
                    cmd = self._market(ts, reads, user, spec, is_buy,
                                       p.momentum_usd * min(abs(move) / p.momentum_threshold_bps, 5.0))
                    if cmd is not None:
                        out.append(cmd)
            elif szi and abs(move) < p.momentum_threshold_bps / 2:
                out.append(C.market_order(ts, user, spec, mark, szi < 0, abs(szi), slippage_bps=500,
                                          reduce_only=True))
        return out

    # -- takers -------------------------------------------------------------------------------------
    def _takes(self, ts: int, reads: Reads, spec: MarketSpec) -> list[C.Command]:
        p, rng = self.p, self.rng
        rate = p.take_per_s * (p.offhours_take_rate if session_closed(spec, ts) else 1.0)
        if rate <= 0 or not self.takers:
            return []
        due = self.next_take_ms.setdefault(spec.asset, ts + round(rng.expovariate(rate) * 1000))
        out: list[C.Command] = []
        while due <= ts:
            user = rng.choice(self.takers)
            pos = reads.position(user, spec.asset)
            base = self._buy_share(ts, spec)
            share = base if pos is None or not pos.szi else (base * (0.6 if pos.szi > 0 else 1.4))
            cmd = self._market(ts, reads, user, spec, rng.random() < min(share, 1.0),
                               rng.lognormvariate(p.take_usd_mu, p.take_usd_sigma))
            if cmd is not None:
                out.append(cmd)
            due += max(1, round(rng.expovariate(rate) * 1000))
        self.next_take_ms[spec.asset] = due
        return out

    def _buy_share(self, ts: int, spec: MarketSpec) -> float:
        """The takers' buy share on ``spec`` at ``ts``: ``buy_share``, moved by the market's flow regime."""
        p = self.p
        if not p.imbalance:
            return p.buy_share
        when, x = self.flow.get(spec.asset, (ts, self.flow_rng.gauss(0.0, 1.0)))
        if ts > when:  # the exact OU transition over ts - when: keeps unit variance
            decay = 0.5 ** ((ts - when) / 1000 / p.imbalance_halflife_s)
            x = x * decay + math.sqrt(1 - decay * decay) * self.flow_rng.gauss(0.0, 1.0)
        self.flow[spec.asset] = (ts, x)
        return min(0.95, max(0.05, p.buy_share + p.imbalance * x))

    def _market(self, ts: int, reads: Reads, user: str, spec: MarketSpec, is_buy: bool, usd: float,
                reduce_only: bool = False) -> C.PlaceOrders | None:
        mark = reads.mark(spec.asset)
        if mark <= 0:
            return None
        return C.market_order(ts, user, spec, mark, is_buy, _lots(spec, mark, usd), slippage_bps=500,
                              reduce_only=reduce_only)

    # -- leveraged traders ------------------------------------------------------------------------------
    def _lever(self, ts: int, reads: Reads, specs: list[MarketSpec]) -> list[C.Command]:
        """Each leveraged trader opens once, on the first market it can, and holds."""
        p, rng = self.p, self.rng
        out: list[C.Command] = []
        if self.first_ts is None:
            self.first_ts = ts
        for i, user in enumerate(self.levered):
            if user in self.opened or not specs:
                continue
            if ts < self.first_ts + round(p.lever_open_s * 1000 * i / len(self.levered)):
                break
            spec = specs[rng.randrange(len(specs))]
            if reads.mark(spec.asset) <= 0 or reads.best_bid_ask(spec.asset) == (None, None):
                continue
            self.opened.add(user)
            lev = max(1, min(spec.max_leverage, p.lever_leverage))
            order = self._market(ts, reads, user, spec, rng.random() < p.lever_long_share,
                                 p.lever_usd * rng.uniform(0.5, 1.5))
            if order is not None:
                out += [C.UpdateLeverage(ts=ts, user=user, asset=spec.asset, is_cross=True, leverage=lev), order]
        return out

"""``perpbox positions``: the trader's position monitor across every account of an accounts file.

Each round (every ``--interval`` seconds) it reads, per account, the venue's ``account()`` (positions,
equity, maintenance margin), then ``fills()`` since the reconciliation baseline, then per held coin
``funding()`` (rate and mark) and ``book()`` (the mid it samples for volatility).  A read that fails is
counted against its *stream* (account × kind); the last good value stays in use, and every stream
reports its age (seconds since its last successful read).

Grouping (:func:`underlying_of`): a coin belongs to the underlying named by, in order, an explicit
alias (``--alias COIN=UNDERLYING``, exact venue name), else the coin with a HIP-3 dex prefix
(``xyz:SILVER`` → ``SILVER``) or a ccxt quote (``BTC/USDT:USDT`` → ``BTC``) and a ``-PERP`` / ``-USD`` /
``-USDC`` / ``-USDT`` suffix removed, upper-cased (an alias may then map that result too, e.g.
``EURUSD=EUR``).  Sizes are added as they are: coins of one underlying must be quoted in the same
units (a ``kPEPE``-style 1000× contract is not rescaled).

Derived values, exact ``Decimal`` unless said otherwise:

* per underlying: net size Σ size, gross Σ |size|, **imbalance** |net| / gross (sizes, not USD, so
  it does not move with the marks), net and gross USD at each venue's mark, funding USD per hour;
* per position: USD = size × mark; **funding accrual per hour** = −size × mark × ``FundingRate.hourly``
  (the venue's sign: a positive rate makes longs pay, so what the account pays is negative);
  **liquidation distance** |mark − liquidation px| / mark in %, and in units of volatility:
  distance / σ₁ₕ;
* **volatility** σ₁ₕ (float, a statistic, never used for money): the sample standard deviation of the
  log returns ln(midᵢ / midᵢ₋₁) of the last ``vol_window`` book mids this monitor sampled, scaled to one
  hour by √(3600 s / mean sampling interval) (returns taken as independent); none before
  ``vol_min_returns`` returns;
* per account: ``Account.margin_ratio`` (maintenance margin / equity; 1 is the liquidation line).

Reconciliation (:class:`Reconciler`, the outage night's lesson: a venue's position can change without
a fill): a baseline (positions at the venue time of an account read) plus every fill seen since must
equal what the venue reports.  Fills are read after the positions and counted when their venue time
is at or before the positions' time; each fill id counts once.  A difference is *unexplained*; when
there is none, the baseline moves to the latest read (so the fill window stays short).  A baseline is
not taken from a read that a fill shares its millisecond with (it would be unclear whether the
position holds it).  Lost fills (a rollback) leave the difference standing: restart the monitor to
accept the venue's state as the new baseline.

Alert rules (:class:`Thresholds`; each with a hold time: the condition must hold that long, measured
on this monitor's clock, before it fires; it clears, with a level-0 alert, at the first round it no
longer holds; a round that could not measure it leaves it as it was):

* ``imbalance`` — imbalance > ``imbalance_max`` and |net USD| ≥ ``imbalance_min_net_usd``;
* ``unexplained_position`` — |venue position − (baseline + fills)| > ``unexplained_min``;
* ``margin_ratio`` — margin ratio > ``margin_ratio_max``;
* ``liq_distance`` — distance < ``liq_distance_min_pct`` % or < ``liq_distance_min_sigma`` σ₁ₕ;
* ``venue_error`` — a stream's read failed ``venue_error_count`` times in a row (or the account
  could not be opened at all);
* ``funding_spike`` — |hourly rate| > ``funding_max_hourly`` on a held coin.

One-shot (``one_shot=True``, ``--once``): one round, every hold taken as met and one failed read
enough for ``venue_error``; ``unexplained_position`` and volatility need two rounds, so never fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from perpbox.bots.venue import Account, Fill, FundingRate, Venue
from perpbox.monitor.alerts import Alert, Alerter, redact

T = TypeVar("T")
STREAM_KINDS = ("account", "fills", "funding", "book")
RULES = ("imbalance", "unexplained_position", "margin_ratio", "liq_distance", "venue_error", "funding_spike")
HUNDRED = Decimal(100)
_SUFFIXES = ("-PERP", "_PERP", "-USDC", "-USDT", "-USD")


def underlying_of(coin: str, aliases: Mapping[str, str] | None = None) -> str:
    """The underlying a venue's coin belongs to (the module's grouping rule)."""
    aliases = aliases or {}
    if coin in aliases:
        return aliases[coin].upper()
    name = coin
    if "/" in name:  # ccxt unified: BASE/QUOTE:SETTLE
        name = name.split("/", 1)[0]
    elif ":" in name:  # HIP-3: dex:COIN
        name = name.split(":", 1)[1]
    name = name.upper()
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    upper = {k.upper(): v for k, v in aliases.items()}
    return upper.get(name, name).upper()


def parse_aliases(items: Iterable[str]) -> dict[str, str]:
    """``COIN=UNDERLYING`` pairs (``--alias``)."""
    out = {}
    for item in items:
        coin, sep, under = item.partition("=")
        if not sep or not coin.strip() or not under.strip():
            raise ValueError(f"alias {item!r}: COIN=UNDERLYING")
        out[coin.strip()] = under.strip().upper()
    return out


def dec(x: Decimal | None) -> str | None:
    """A Decimal as a JSON string without exponent or trailing zeros (None stays None)."""
    if x is None:
        return None
    text = format(x.normalize(), "f")
    return "0" if text == "-0" else text


@dataclass(frozen=True)
class Thresholds:
    imbalance_max: Decimal = Decimal("0.2")
    imbalance_min_net_usd: Decimal = Decimal(50)
    imbalance_hold_s: float = 30.0
    unexplained_min: Decimal = Decimal(0)
    unexplained_hold_s: float = 5.0
    margin_ratio_max: Decimal = Decimal("0.5")
    margin_hold_s: float = 10.0
    liq_distance_min_pct: Decimal = Decimal(5)
    liq_distance_min_sigma: float = 3.0
    liq_hold_s: float = 10.0
    venue_error_count: int = 3
    funding_max_hourly: Decimal = Decimal("0.0005")
    funding_hold_s: float = 60.0
    vol_window: int = 60
    vol_min_returns: int = 10
    fills_overlap_ms: int = 60_000
    read_timeout_s: float = 10.0

    def hold(self, rule: str) -> float:
        return {"imbalance": self.imbalance_hold_s, "unexplained_position": self.unexplained_hold_s,
                "margin_ratio": self.margin_hold_s, "liq_distance": self.liq_hold_s, "venue_error": 0.0,
                "funding_spike": self.funding_hold_s}[rule]

    def condition(self, rule: str) -> str:
        hold = self.hold(rule)
        tail = f" for {hold:g} s" if hold > 0 else ""
        return {
            "imbalance": f"|net|/gross > {self.imbalance_max} (|net USD| ≥ {self.imbalance_min_net_usd})",
            "unexplained_position": f"position change without a fill, |Δ| > {self.unexplained_min}",
            "margin_ratio": f"margin ratio > {self.margin_ratio_max}",
            "liq_distance": f"liquidation distance < {self.liq_distance_min_pct}% or < "
                            f"{self.liq_distance_min_sigma:g} σ(1h)",
            "venue_error": f"read failed {self.venue_error_count} times in a row",
            "funding_spike": f"|funding per hour| > {self.funding_max_hourly}",
        }[rule] + tail


# -- reconciliation ------------------------------------------------------------------------------------


@dataclass
class Reconciler:
    """Positions against fills for one account (see the module's docstring)."""

    overlap_ms: int = 60_000
    base: dict[str, Decimal] | None = None
    base_ts: int = 0
    seen: dict[str, int] = field(default_factory=dict)  # fill id -> its time
    counted: dict[str, Decimal] = field(default_factory=dict)  # coin -> Σ fills since the baseline

    def since_ms(self, account_ts: int) -> int:
        return (self.base_ts if self.base is not None else account_ts) - self.overlap_ms

    def update(self, account: Account, fills: Iterable[Fill]) -> dict[str, Decimal] | None:
        """The unexplained difference per coin (empty: every position explained; None: no baseline yet)."""
        fills = list(fills)
        actual = {c: p.size for c, p in account.positions.items() if p.size != 0}
        ts = account.ts_ms
        if self.base is None:
            if any(f.ts_ms == ts for f in fills):
                return None  # is that fill in these positions or not: take the baseline next round
            self.base, self.base_ts, self.counted = actual, ts, {}
            self.seen = {f.fill_id: f.ts_ms for f in fills if f.ts_ms <= ts}
            return {}
        for f in fills:
            if f.fill_id in self.seen or f.ts_ms > ts:  # counted already / not in these positions yet
                continue
            self.seen[f.fill_id] = f.ts_ms
            if f.ts_ms > self.base_ts:
                self.counted[f.coin] = self.counted.get(f.coin, Decimal(0)) + f.size
            # a fill from before the baseline that shows up late is in the baseline already
        out = {}
        for coin in sorted(set(actual) | set(self.base) | set(self.counted)):
            expected = self.base.get(coin, Decimal(0)) + self.counted.get(coin, Decimal(0))
            diff = actual.get(coin, Decimal(0)) - expected
            if diff != 0:
                out[coin] = diff
        if not out:  # all explained: move the baseline up
            self.base, self.base_ts, self.counted = actual, ts, {}
            cut = ts - self.overlap_ms
            self.seen = {k: v for k, v in self.seen.items() if v >= cut}
        return out


def hourly_volatility(samples: Iterable[tuple[float, float]], min_returns: int = 10) -> float | None:
    """σ of log mid returns scaled to 1 h (see the module's docstring); ``samples`` are (seconds, mid)."""
    pts = [(t, m) for t, m in samples if m > 0]
    rets, dts = [], []
    for (t0, m0), (t1, m1) in itertools.pairwise(pts):
        if t1 > t0:
            rets.append(math.log(m1 / m0))
            dts.append(t1 - t0)
    if len(rets) < max(2, min_returns):
        return None
    mean_dt = sum(dts) / len(dts)
    return statistics.stdev(rets) * math.sqrt(3600.0 / mean_dt)


# -- rule state ----------------------------------------------------------------------------------------


@dataclass
class RuleState:
    since: float | None = None  # monitor clock (s) when the condition was first seen true
    active: bool = False
    fired_at: float | None = None
    measured: dict[str, str] = field(default_factory=dict)
    market: str = "*"
    owner: str = ""


@dataclass(frozen=True)
class Check:
    rule: str
    scope: str  # unique within the rule: "BTC", "acct/BTC", "acct/fills"
    owner: str  # the account (or underlying) whose read produced it: what a failed read leaves unknown
    market: str
    holds: bool | None  # None: not measurable this round (the state is left as it was)
    measured: dict[str, str]


class RuleBook:
    """Hold times and transitions; every rule's state per scope."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.t = thresholds
        self.states: dict[tuple[str, str], RuleState] = {}

    def evaluate(self, checks: Iterable[Check], now: float, unknown_owners: set[str], one_shot: bool = False,
                 ) -> list[tuple[RuleState, str, str, int]]:
        """Apply one round's checks; the transitions as (state, rule, scope, new level)."""
        out: list[tuple[RuleState, str, str, int]] = []
        seen: set[tuple[str, str]] = set()
        for c in checks:
            key = (c.rule, c.scope)
            seen.add(key)
            st = self.states.setdefault(key, RuleState())
            st.market, st.owner = c.market, c.owner
            if c.holds is None:
                continue
            st.measured = dict(c.measured)
            if c.holds:
                if st.since is None:
                    st.since = now
                if not st.active and (one_shot or now - st.since >= self.t.hold(c.rule)):
                    st.active, st.fired_at = True, now
                    out.append((st, c.rule, c.scope, 1))
            else:
                st.since = None
                if st.active:
                    st.active = False
                    out.append((st, c.rule, c.scope, 0))
        for key, st in list(self.states.items()):
            if key in seen:
                continue
            if st.owner in unknown_owners:
                continue
            st.since = None  # gone (the position was closed): no longer true
            if st.active:
                st.active = False
                out.append((st, key[0], key[1], 0))
            del self.states[key]
        return out

    def active(self) -> list[tuple[str, str, RuleState]]:
        return [(r, s, st) for (r, s), st in sorted(self.states.items()) if st.active]


# -- the monitor ---------------------------------------------------------------------------------------


@dataclass
class Stream:
    last_ok: float | None = None  # monitor clock (s)
    failures: int = 0  # consecutive
    error: str = ""


@dataclass
class AccountView:
    name: str
    venue_label: str  # e.g. "hyperliquid:http://127.0.0.1:8080" (no secret: the accounts file's venue)
    venue: Venue | None
    open_error: str = ""
    streams: dict[str, Stream] = field(default_factory=lambda: {k: Stream() for k in STREAM_KINDS})
    account: Account | None = None
    fresh: bool = False  # the account read of this round succeeded
    reconciled: bool = False  # this round's reconciliation ran
    rates: dict[str, FundingRate] = field(default_factory=dict)
    mids: dict[str, Decimal] = field(default_factory=dict)
    samples: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)
    unexplained: dict[str, Decimal] = field(default_factory=dict)
    recon: Reconciler = field(default_factory=Reconciler)


@dataclass(frozen=True)
class Leg:
    account: str
    venue: str
    coin: str
    underlying: str
    size: Decimal
    mark: Decimal | None
    usd: Decimal | None
    entry_px: Decimal
    liquidation_px: Decimal | None
    liq_distance_pct: Decimal | None
    vol_1h: float | None
    liq_distance_sigma: float | None
    funding_hourly: Decimal | None
    funding_usd_per_h: Decimal | None
    unexplained: Decimal
    stale: bool

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, "venue": self.venue, "coin": self.coin, "size": dec(self.size),
                "side": "long" if self.size > 0 else "short", "mark": dec(self.mark), "usd": dec(self.usd),
                "entry_px": dec(self.entry_px), "liquidation_px": dec(self.liquidation_px),
                "liq_distance_pct": dec(self.liq_distance_pct), "vol_1h": self.vol_1h,
                "liq_distance_sigma": self.liq_distance_sigma, "funding_hourly": dec(self.funding_hourly),
                "funding_usd_per_h": dec(self.funding_usd_per_h), "unexplained": dec(self.unexplained),
                "stale": self.stale}


@dataclass(frozen=True)
class Exposure:
    underlying: str
    legs: tuple[Leg, ...]
    net_size: Decimal
    gross_size: Decimal
    imbalance: Decimal | None
    net_usd: Decimal | None  # None: a leg without a mark
    gross_usd: Decimal | None
    funding_usd_per_h: Decimal | None

    def to_json(self) -> dict[str, Any]:
        return {"underlying": self.underlying, "net_size": dec(self.net_size), "gross_size": dec(self.gross_size),
                "imbalance": dec(self.imbalance), "net_usd": dec(self.net_usd), "gross_usd": dec(self.gross_usd),
                "funding_usd_per_h": dec(self.funding_usd_per_h), "legs": [g.to_json() for g in self.legs]}


@dataclass(frozen=True)
class Snapshot:
    time_ms: int
    exposures: tuple[Exposure, ...]
    accounts: tuple[dict[str, Any], ...]
    alerts: tuple[dict[str, Any], ...]  # the rules firing now
    fired: tuple[Alert, ...]  # the transitions of this round (raised and cleared)

    def to_json(self) -> dict[str, Any]:
        return {"time_ms": self.time_ms, "underlyings": [e.to_json() for e in self.exposures],
                "accounts": list(self.accounts), "alerts": list(self.alerts)}

    def exposure(self, underlying: str) -> Exposure | None:
        return next((e for e in self.exposures if e.underlying == underlying), None)


class PositionsMetrics:
    """``perpbox_positions_*`` on its own registry (a vanished position's series are removed)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        r = self.registry = CollectorRegistry()
        self.net_size = Gauge("perpbox_positions_net_size", "Net size across venues", ["underlying"], registry=r)
        self.net_usd = Gauge("perpbox_positions_net_usd", "Net exposure, USD at the marks", ["underlying"],
                             registry=r)
        self.imbalance = Gauge("perpbox_positions_imbalance", "|net| / gross size", ["underlying"], registry=r)
        self.position = Gauge("perpbox_positions_size", "Signed position", ["underlying", "account", "coin"],
                              registry=r)
        self.margin_ratio = Gauge("perpbox_positions_margin_ratio", "Maintenance margin / equity", ["account"],
                                  registry=r)
        self.liq_pct = Gauge("perpbox_positions_liquidation_distance_pct", "Liquidation distance, % of the mark",
                             ["account", "coin"], registry=r)
        self.liq_sigma = Gauge("perpbox_positions_liquidation_distance_sigma", "Liquidation distance, 1 h sigmas",
                               ["account", "coin"], registry=r)
        self.funding = Gauge("perpbox_positions_funding_usd_per_hour", "Funding accrual per hour (− paid)",
                             ["account", "coin"], registry=r)
        self.unexplained = Gauge("perpbox_positions_unexplained_size", "Position change no fill explains",
                                 ["account", "coin"], registry=r)
        self.stream_age = Gauge("perpbox_positions_stream_age_seconds", "Since the last successful read",
                                ["account", "kind"], registry=r)
        self.read_errors = Counter("perpbox_positions_read_errors", "Failed reads", ["account", "kind"], registry=r)
        self.alerts_active = Gauge("perpbox_positions_alerts_active", "Rules firing now", ["rule"], registry=r)
        self.alerts = Counter("perpbox_positions_alerts", "Alerts raised", ["rule"], registry=r)
        self.rounds = Counter("perpbox_positions_rounds", "Monitor rounds done", registry=r)
        self.actions = Counter("perpbox_positions_actions", "Telegram actions by result", ["result"], registry=r)
        self._labels: dict[str, set[tuple[str, ...]]] = {}

    def publish(self, name: str, gauge: Any, values: Mapping[tuple[str, ...], float | None]) -> None:
        old = self._labels.get(name, set())
        now = {k for k, v in values.items() if v is not None}
        for k in old - now:
            with contextlib.suppress(KeyError):
                gauge.remove(*k)
        for k, v in values.items():
            if v is not None:
                gauge.labels(*k).set(v)
        self._labels[name] = now


class PositionsMonitor:
    def __init__(self, accounts: Mapping[str, tuple[str, Venue | str]], thresholds: Thresholds | None = None, *,
                 aliases: Mapping[str, str] | None = None, alerter: Alerter | None = None,
                 audit: Callable[[dict[str, Any]], None] | None = None, metrics: PositionsMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000, one_shot: bool = False) -> None:
        """``accounts``: name → (venue label, the opened ``Venue`` or the reason it could not be opened)."""
        self.t = thresholds or Thresholds()
        self.aliases = dict(aliases or {})
        self.alerter, self.audit = alerter, audit
        self.metrics = metrics or PositionsMetrics()
        self.clock, self.wall_ms, self.one_shot = clock, wall_ms, one_shot
        self.rules = RuleBook(self.t)
        self.views: dict[str, AccountView] = {}
        for name, (label, venue) in accounts.items():
            if isinstance(venue, str):
                self.views[name] = AccountView(name, label, None, open_error=venue)
            else:
                self.views[name] = AccountView(name, label, venue,
                                               recon=Reconciler(overlap_ms=self.t.fills_overlap_ms))
        self.last: Snapshot | None = None
        self.rounds = 0

    def underlying(self, coin: str) -> str:
        return underlying_of(coin, self.aliases)

    # -- reads ---------------------------------------------------------------------------------------
    async def _read(self, view: AccountView, kind: str, call: Awaitable[T]) -> T | None:
        stream = view.streams[kind]
        try:
            value = await asyncio.wait_for(call, self.t.read_timeout_s)
        except Exception as e:  # any failure of a read is the venue's error for this stream
            stream.failures += 1
            text = str(e) if not isinstance(e, TimeoutError) else f"no answer within {self.t.read_timeout_s:g} s"
            stream.error = redact(f"{type(e).__name__}: {text}")[:300]
            self.metrics.read_errors.labels(view.name, kind).inc()
            return None
        stream.last_ok, stream.failures, stream.error = self.clock(), 0, ""
        return value

    async def _read_account(self, view: AccountView) -> None:
        view.fresh = view.reconciled = False
        venue = view.venue
        if venue is None:
            return
        acct = await self._read(view, "account", venue.account())
        if acct is None:
            return
        view.account, view.fresh = acct, True
        fills = await self._read(view, "fills", venue.fills(view.recon.since_ms(acct.ts_ms)))
        if fills is not None:
            result = view.recon.update(acct, fills)
            if result is not None:
                view.unexplained, view.reconciled = result, True
        coins = sorted(c for c, p in acct.positions.items() if p.size != 0)
        await asyncio.gather(*(self._read_coin(view, venue, c) for c in coins))
        for coin in list(view.samples):
            if coin not in coins:
                del view.samples[coin]

    async def _read_coin(self, view: AccountView, venue: Venue, coin: str) -> None:
        rate, book = await asyncio.gather(self._read(view, "funding", venue.funding(coin)),
                                          self._read(view, "book", venue.book(coin)))
        if rate is not None:
            view.rates[coin] = rate
        mid = book.mid() if book is not None else None
        if mid is not None and mid > 0:
            view.mids[coin] = mid
            q = view.samples.setdefault(coin, deque(maxlen=self.t.vol_window + 1))
            q.append((self.clock(), float(mid)))  # float: volatility statistics only

    # -- one round -----------------------------------------------------------------------------------
    async def step(self) -> Snapshot:
        await asyncio.gather(*(self._read_account(v) for v in self.views.values()))
        self.rounds += 1
        self.metrics.rounds.inc()
        snap = self._derive()
        self.last = snap
        return snap

    def _mark(self, view: AccountView, coin: str) -> Decimal | None:
        rate = view.rates.get(coin)
        if rate is not None and rate.mark_px is not None and rate.mark_px > 0:
            return rate.mark_px
        return view.mids.get(coin)

    def _legs(self) -> list[Leg]:
        legs = []
        for view in self.views.values():
            if view.account is None:
                continue
            for coin, p in sorted(view.account.positions.items()):
                if p.size == 0:
                    continue
                mark = self._mark(view, coin)
                rate = view.rates.get(coin)
                liq = p.liquidation_px
                dist = abs(mark - liq) / mark * HUNDRED if mark is not None and liq is not None and liq > 0 else None
                samples = view.samples.get(coin, ())
                vol = hourly_volatility(samples, self.t.vol_min_returns)
                sigma = float(dist) / 100 / vol if dist is not None and vol else None
                hourly = rate.hourly if rate is not None else None
                funding = -(p.size * mark * hourly) if mark is not None and hourly is not None else None
                legs.append(Leg(account=view.name, venue=view.venue_label, coin=coin, underlying=self.underlying(coin),
                                size=p.size, mark=mark, usd=None if mark is None else p.size * mark,
                                entry_px=p.entry_px, liquidation_px=liq, liq_distance_pct=dist, vol_1h=vol,
                                liq_distance_sigma=sigma, funding_hourly=hourly, funding_usd_per_h=funding,
                                unexplained=view.unexplained.get(coin, Decimal(0)), stale=not view.fresh))
        return legs

    @staticmethod
    def _exposures(legs: list[Leg]) -> list[Exposure]:
        groups: dict[str, list[Leg]] = {}
        for g in legs:
            groups.setdefault(g.underlying, []).append(g)
        out = []
        for u, gl in sorted(groups.items()):
            net = sum((g.size for g in gl), Decimal(0))
            gross = sum((abs(g.size) for g in gl), Decimal(0))
            usds = [g.usd for g in gl]
            funds = [g.funding_usd_per_h for g in gl]
            out.append(Exposure(
                underlying=u, legs=tuple(gl), net_size=net, gross_size=gross,
                imbalance=abs(net) / gross if gross else None,
                net_usd=None if None in usds else sum((x for x in usds if x is not None), Decimal(0)),
                gross_usd=None if None in usds else sum((abs(x) for x in usds if x is not None), Decimal(0)),
                funding_usd_per_h=None if None in funds else sum((x for x in funds if x is not None), Decimal(0))))
        return out

    def _account_json(self, view: AccountView, now: float) -> dict[str, Any]:
        a = view.account
        streams = {k: {"age_s": None if s.last_ok is None else round(now - s.last_ok, 3), "failures": s.failures,
                       "error": s.error} for k, s in view.streams.items()}
        return {"account": view.name, "venue": view.venue_label, "open_error": view.open_error,
                "equity": dec(a.equity) if a else None, "margin_ratio": dec(a.margin_ratio) if a else None,
                "maintenance_margin": dec(a.maintenance_margin) if a else None, "stale": not view.fresh,
                "unexplained": {c: dec(d) for c, d in view.unexplained.items()}, "streams": streams}

    def _checks(self, exposures: list[Exposure], legs: list[Leg]) -> tuple[list[Check], set[str]]:
        t = self.t
        checks: list[Check] = []
        unknown = {v.name for v in self.views.values() if not v.fresh}
        for e in exposures:
            stale = any(g.stale for g in e.legs)
            holds = None
            if e.imbalance is not None and e.net_usd is not None:
                holds = e.imbalance > t.imbalance_max and abs(e.net_usd) >= t.imbalance_min_net_usd
            checks.append(Check("imbalance", e.underlying, e.underlying, e.underlying,
                                None if stale and not holds else holds,
                                {"imbalance": dec(e.imbalance) or "", "net_size": dec(e.net_size) or "",
                                 "gross_size": dec(e.gross_size) or "", "net_usd": dec(e.net_usd) or ""}))
        for view in self.views.values():
            a = view.account
            if view.reconciled and not self.one_shot:
                for coin in sorted(set(view.unexplained) | {s.split("/", 1)[1] for (r, s) in self.rules.states
                                                             if r == "unexplained_position"
                                                             and s.startswith(view.name + "/")}):
                    diff = view.unexplained.get(coin, Decimal(0))
                    size = a.positions[coin].size if a and coin in a.positions else Decimal(0)
                    checks.append(Check("unexplained_position", f"{view.name}/{coin}", view.name,
                                        self.underlying(coin), abs(diff) > t.unexplained_min,
                                        {"account": view.name, "coin": coin, "venue_size": dec(size) or "0",
                                         "unexplained": dec(diff) or "0"}))
            elif not self.one_shot:
                unknown.add(view.name)
            if a is not None:
                ratio = a.margin_ratio
                checks.append(Check("margin_ratio", f"{view.name}/margin", view.name, "*",
                                    None if ratio is None or not view.fresh else ratio > t.margin_ratio_max,
                                    {"account": view.name, "margin_ratio": dec(ratio) or "",
                                     "equity": dec(a.equity) or ""}))
            for kind, s in view.streams.items():
                if kind == "account" and view.open_error:
                    failed, error = True, view.open_error
                else:
                    failed, error = s.failures >= (1 if self.one_shot else t.venue_error_count), s.error
                checks.append(Check("venue_error", f"{view.name}/{kind}", view.name, "*", failed,
                                    {"account": view.name, "kind": kind, "failures": str(s.failures),
                                     "error": error}))
        for g in legs:
            scope = f"{g.account}/{g.coin}"
            near = None
            if g.liq_distance_pct is not None:
                near = g.liq_distance_pct < t.liq_distance_min_pct or (
                    g.liq_distance_sigma is not None and g.liq_distance_sigma < t.liq_distance_min_sigma)
            sigma = "" if g.liq_distance_sigma is None else f"{g.liq_distance_sigma:.3f}"
            checks.append(Check("liq_distance", scope, g.account, g.underlying, None if g.stale else near,
                                {"account": g.account, "coin": g.coin, "distance_pct": dec(g.liq_distance_pct) or "",
                                 "distance_sigma": sigma, "mark": dec(g.mark) or "",
                                 "liquidation_px": dec(g.liquidation_px) or ""}))
            spike = None if g.funding_hourly is None else abs(g.funding_hourly) > t.funding_max_hourly
            checks.append(Check("funding_spike", scope, g.account, g.underlying, spike,
                                {"account": g.account, "coin": g.coin, "hourly": dec(g.funding_hourly) or "",
                                 "usd_per_h": dec(g.funding_usd_per_h) or ""}))
        return checks, unknown

    def _derive(self) -> Snapshot:
        now, wall = self.clock(), self.wall_ms()
        legs = self._legs()
        exposures = self._exposures(legs)
        checks, unknown = self._checks(exposures, legs)
        fired = []
        for st, rule, scope, level in self.rules.evaluate(checks, now, unknown, self.one_shot):
            measured = dict(st.measured)
            if level and st.since is not None:
                measured["held_s"] = f"{now - st.since:.3f}"
            alert = Alert(time_ms=wall, market=st.market, rule=rule, level=level, previous_level=1 - level,
                          measured=measured, condition=self.t.condition(rule), action=None, mode="alert")
            fired.append(alert)
            if level:
                self.metrics.alerts.labels(rule).inc()
            if self.alerter is not None:
                self.alerter.send_nowait(alert)
            if self.audit is not None:
                self.audit({"event": "alert", "time_ms": wall, "rule": rule, "scope": scope, "market": st.market,
                            "level": level, "measured": measured})
        active = [{"rule": r, "scope": s, "market": st.market, "measured": st.measured,
                   "since_s": None if st.since is None else round(now - st.since, 3)}
                  for r, s, st in self.rules.active()]
        snap = Snapshot(time_ms=wall, exposures=tuple(exposures),
                        accounts=tuple(self._account_json(v, now) for v in self.views.values()),
                        alerts=tuple(active), fired=tuple(fired))
        self._publish(snap, legs, now)
        return snap

    def _publish(self, snap: Snapshot, legs: list[Leg], now: float) -> None:
        m = self.metrics

        def f(x: Decimal | None) -> float | None:
            return None if x is None else float(x)  # exposition only

        m.publish("net_size", m.net_size, {(e.underlying,): f(e.net_size) for e in snap.exposures})
        m.publish("net_usd", m.net_usd, {(e.underlying,): f(e.net_usd) for e in snap.exposures})
        m.publish("imbalance", m.imbalance, {(e.underlying,): f(e.imbalance) for e in snap.exposures})
        m.publish("position", m.position, {(g.underlying, g.account, g.coin): f(g.size) for g in legs})
        m.publish("liq_pct", m.liq_pct, {(g.account, g.coin): f(g.liq_distance_pct) for g in legs})
        m.publish("liq_sigma", m.liq_sigma, {(g.account, g.coin): g.liq_distance_sigma for g in legs})
        m.publish("funding", m.funding, {(g.account, g.coin): f(g.funding_usd_per_h) for g in legs})
        m.publish("unexplained", m.unexplained, {(v.name, c): f(d) for v in self.views.values()
                                                 for c, d in v.unexplained.items()})
        m.publish("margin_ratio", m.margin_ratio, {(v.name,): f(v.account.margin_ratio if v.account else None)
                                                   for v in self.views.values()})
        m.publish("stream_age", m.stream_age, {(v.name, k): None if s.last_ok is None else now - s.last_ok
                                               for v in self.views.values() for k, s in v.streams.items()})
        counts = {r: 0.0 for r in RULES}
        for a in snap.alerts:
            counts[a["rule"]] += 1
        m.publish("alerts_active", m.alerts_active, {(r,): c for r, c in counts.items()})

    # -- what the Telegram commands read ---------------------------------------------------------------
    def holders(self, underlying: str, account: str | None = None) -> list[tuple[AccountView, str]]:
        """(account, coin) of every venue coin of ``underlying`` held in the last read."""
        out = []
        for view in self.views.values():
            if view.account is None or view.venue is None or (account is not None and view.name != account):
                continue
            for coin, p in sorted(view.account.positions.items()):
                if p.size != 0 and self.underlying(coin) == underlying:
                    out.append((view, coin))
        return out

    async def aclose(self) -> None:
        for view in self.views.values():
            if view.venue is not None:
                with contextlib.suppress(Exception):  # closing is best effort
                    await view.venue.aclose()


class AuditLog:
    """JSON lines, appended and flushed per record; every line passes :func:`redact` with the secrets."""

    def __init__(self, path: Path | None, secrets: Iterable[str] = ()) -> None:
        self.path = path
        self.secrets = [s for s in secrets if s]

    def __call__(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        record = {"time_ms": time.time_ns() // 1_000_000, **record}
        line = redact(json.dumps(record, ensure_ascii=False, default=str), self.secrets)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def records(self) -> list[dict[str, Any]]:
        if self.path is None or not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

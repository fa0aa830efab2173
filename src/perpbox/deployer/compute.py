"""One relay update for one asset, as a pure function: quotes, book and the relay's own state in;
the prices to publish, every step and clamp that produced them, and the new state out.

The rules are the engine's — ``perpbox.pricing.oracle`` (freshness, deviation guard, weighted
median, the off-hours EMA and discovery band), ``perpbox.pricing.pricer`` (the 1%-per-update and
10×-start-of-day clamps) and ``perpbox.pricing.impact`` (impact prices, local mark) — applied here
to what a deployer sees from outside the venue.  All prices are integers in the asset's price units
(``10^-(6 - szDecimals)`` USD), so nothing here rounds except where it says.

Order of an update: day roll → session → sources → oracle (open: the sources' weighted median, or
the ``on_insufficient`` fallback; closed: the book's impact mid through the EMA, inside the
discovery band and the anchors' band) → the per-update step clamp (1%, or the reopen pull-back's
step) → the 10× day clamp → external perp price → mark inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from perpbox.deployer.definition import DAY_CLAMP_MULTIPLE, MAX_STEP_BPS, AssetDefinition
from perpbox.deployer.sources import Quote, SourceSpec
from perpbox.market.oracle import OnInsufficient
from perpbox.pricing.impact import local_mark_of, walk_impact
from perpbox.pricing.oracle import off_hours_advance, weighted_median, within_deviation
from perpbox.pricing.pricer import DAY_MS, clamp_move, clamp_to_day

Levels = Sequence[tuple[int, int]]  # (price units, size lots), best first


@dataclass(frozen=True, slots=True)
class Book:
    """The venue's book for the asset, in price units and lots."""

    bids: Levels = ()
    asks: Levels = ()

    def best(self) -> tuple[int | None, int | None]:
        return (self.bids[0][0] if self.bids else None, self.asks[0][0] if self.asks else None)


@dataclass(frozen=True, slots=True)
class AssetState:
    oracle: int = 0  # the last oracle published (at start: the venue's)
    day: int = -1  # UTC day of day_px
    day_px: int = 0  # the first oracle of the day: the 10× clamp's centre
    session_open: bool = True
    close_px: int = 0  # the oracle at the last session close: the discovery band's centre
    ts: int = 0  # the last update's time (the off-hours EMA's Δt)
    reopening: bool = False  # pulling back toward the external price after a reopen
    halted: bool = False  # the definition halted the market (a person resumes it)
    off_carry: int = 0  # what the off-hours EMA rounded off, carried to the next update (off_hours_advance)


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one source answered this cycle: a quote, nothing, or the error it raised."""

    spec: SourceSpec
    source: str
    quote: Quote | None = None
    error: str = ""


@dataclass(slots=True)
class AssetUpdate:
    coin: str
    session: str  # open | closed | reopen
    status: str  # ok | held | book | halted
    oracle: int
    external: int
    marks: list[int]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    clamps: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)  # other perpDeploy actions this update needs
    state: AssetState = field(default_factory=AssetState)


def to_units(px: Decimal, px_decimals: int) -> int:
    """A quote in price units, rounded half-even (a quote is an input, not an order)."""
    return int(px.scaleb(px_decimals).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def fmt_units(units: int, px_decimals: int) -> str:
    """Price units as the venue's decimal string: no exponent, no trailing zeros."""
    return format(Decimal(units).scaleb(-px_decimals).normalize(), "f")


def _weigh(fetched: Sequence[Fetched], now: int, px_decimals: int, max_deviation_bps: int,
           min_sources: int) -> tuple[int | None, list[dict[str, Any]]]:
    """The weighted median of the fresh quotes within the deviation guard (None below
    ``min_sources``), and each source's line for the record: its quote and why it was used or not."""
    rows: list[dict[str, Any]] = []
    fresh: list[tuple[int, int]] = []
    where: list[int] = []
    for f in fetched:
        row: dict[str, Any] = {"source": f.source, "weight": f.spec.weight}
        q = f.quote
        if f.error:
            row["status"] = "error"
            row["error"] = f.error
        elif q is None:
            row["status"] = "none"
        else:
            units = to_units(q.px, px_decimals)
            row |= {"px": str(q.px), "ts": q.ts_ms}
            age = now - q.ts_ms
            if units <= 0:
                row["status"] = "nonpositive"
            elif age < 0:
                row["status"] = "future"
            elif age > f.spec.max_age_ms:
                row["status"] = "stale"
            else:
                row["status"] = "fresh"
                fresh.append((units, f.spec.weight))
                where.append(len(rows))
        rows.append(row)
    if not fresh:
        return None, rows
    guard = within_deviation(fresh, max_deviation_bps)
    for i, ok in zip(where, guard):
        rows[i]["status"] = "used" if ok else "deviation"
    kept = [q for q, ok in zip(fresh, guard) if ok]
    if len(kept) < min_sources:
        return None, rows
    return weighted_median(kept), rows


def _clamp(update: AssetUpdate, name: str, before: int, after: int, px_decimals: int) -> int:
    if after != before:
        update.clamps.append({"clamp": name, "from": fmt_units(before, px_decimals),
                              "to": fmt_units(after, px_decimals)})
    return after


def _table_action(coin: str, table_id: int | None) -> list[dict[str, Any]]:
    if table_id is None:
        return []
    return [{"type": "perpDeploy", "setMarginTableIds": [[coin, table_id]]}]


def price_asset(defn: AssetDefinition, st: AssetState, now: int, px_decimals: int, sources: Sequence[Fetched],
                anchors: Sequence[Fetched], external: Sequence[Fetched], book: Book) -> AssetUpdate:
    """The asset's next prices (see the module docstring for the order)."""

    def fmt(units: int) -> str:
        return fmt_units(units, px_decimals)

    day = now // DAY_MS
    if day != st.day:
        st = replace(st, day=day, day_px=st.oracle)
    is_open = defn.session is None or defn.session.is_open(now)
    session = "open" if is_open else "closed"
    actions: list[dict[str, Any]] = []
    if st.session_open and not is_open:
        st = replace(st, close_px=st.oracle)
        actions += _table_action(defn.coin, defn.off_hours_margin_table_id)
    elif not st.session_open and is_open:
        st = replace(st, reopening=True)
        actions += _table_action(defn.coin, defn.margin_table_id)
    if is_open and st.reopening:
        session = "reopen"
    up = AssetUpdate(coin=defn.coin, session=session, status="ok", oracle=st.oracle, external=0, marks=[],
                     actions=actions)
    target, rows = _weigh(sources, now, px_decimals, defn.max_deviation_bps, defn.min_sources)
    up.inputs = [r | {"role": "oracle"} for r in rows]
    oracle = st.oracle
    step_bps = MAX_STEP_BPS
    ema, carry = 0, 0  # the off-hours EMA's price and its carry (set off hours)
    if st.halted:
        up.status = "halted"
    elif is_open:
        if target is not None:
            up.steps.append({"step": "weighted_median", "px": fmt(target)})
            if st.reopening:
                step_bps = defn.reopen_step_bps
        elif defn.on_insufficient is OnInsufficient.BOOK and (local := local_mark_of(*book.best(), 0)) is not None:
            up.status, target = "book", local
            up.steps.append({"step": "book_mid", "px": fmt(local)})
        elif defn.on_insufficient is OnInsufficient.HALT:
            up.status = "halted"
            up.actions.append({"type": "perpDeploy", "haltTrading": {"coin": defn.coin, "isHalted": True}})
            st = replace(st, halted=True)
        else:
            up.status = "held"
            up.steps.append({"step": "hold", "px": fmt(oracle)})
        if target is not None and oracle > 0:
            oracle = _clamp(up, "step", target, clamp_move(oracle, target, step_bps), px_decimals)
        elif target is not None:
            oracle = target  # the first price: nothing to step from
        if st.reopening and target is not None and oracle == target:
            st = replace(st, reopening=False)
            up.steps.append({"step": "reopened", "px": fmt(oracle)})
    else:
        notional = defn.impact_notional_usd * 10**6
        bid = walk_impact(book.bids, notional)
        ask = walk_impact(book.asks, notional)
        mid = None if bid is None or ask is None else int((bid + ask) / 2)
        dt = now - st.ts if st.ts else 0
        free, _ = off_hours_advance(oracle, st.off_carry, mid, dt, defn.off_hours, 0)
        up.steps.append({"step": "off_hours_ema", "impact_mid": None if mid is None else fmt(mid), "dt_ms": dt,
                         "px": fmt(free)})
        ema, carry = off_hours_advance(oracle, st.off_carry, mid, dt, defn.off_hours, st.close_px)
        banded = _clamp(up, "discovery_band", free, ema, px_decimals)
        anchor, rows = _weigh(anchors, now, px_decimals, defn.max_deviation_bps, 1)
        up.inputs += [r | {"role": "anchor"} for r in rows]
        if anchor is not None and defn.anchor_band_bps:
            band = anchor * defn.anchor_band_bps // 10_000
            banded = _clamp(up, "anchor_band", banded, min(max(banded, anchor - band), anchor + band), px_decimals)
        oracle = _clamp(up, "step", banded, clamp_move(oracle, banded, MAX_STEP_BPS), px_decimals)
    if st.day_px <= 0:
        st = replace(st, day_px=oracle)
    oracle = _clamp(up, "day", oracle, clamp_to_day(st.day_px, oracle, DAY_CLAMP_MULTIPLE), px_decimals)
    ext, rows = _weigh(external, now, px_decimals, defn.max_deviation_bps, 1)
    up.inputs += [r | {"role": "external"} for r in rows]
    if ext is None:
        ext = oracle
    ext = _clamp(up, "external_day", ext, clamp_to_day(st.day_px, ext, DAY_CLAMP_MULTIPLE), px_decimals)
    up.oracle, up.external = oracle, ext
    up.marks = [oracle if kind == "oracle" else ext for kind in defn.mark_inputs]
    # the carry belongs to the EMA's own path: dropped when a later clamp moved the price, or in session
    if is_open or oracle != ema:
        carry = 0
    up.state = replace(st, oracle=oracle, session_open=is_open, ts=now, off_carry=carry)
    return up

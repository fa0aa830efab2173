"""Wear accounting for hedge runs: per leg (maker / taker) and venue, every fill and funding payment
of a run, and what they cost — exactly (``Decimal`` throughout; money is a string in Parquet).

The rows (one schema, ``SCHEMA``, for fills and funding payments; ``kind`` tells them apart)
---------------------------------------------------------------------------------------------
``fill_row(run_id, leg, venue, fill, decision_mid)`` and ``funding_row(run_id, leg, venue, payment)``
build them; ``write_run(dir, run_id, rows, meta)`` writes ``<dir>/<run_id>.parquet`` and its sidecar
``<dir>/<run_id>.json`` (a ``RunMeta``: run id, start/end time, the two venues, the coin, and the
venues' mids at the end of the run, which mark whatever is still open).  Money columns (``size``,
``px``, ``fee``, ``decision_mid``, ``usd``, ``rate``) are decimal strings: a float never touches them.

The accounting (``WearBook``), per (leg, venue); signs: a positive *cost* is a loss
----------------------------------------------------------------------------------
* ``volume_usd = Σ |size| × px``;
* ``fees_usd = Σ fee`` over the fees paid (``fee > 0``) and ``rebates_usd = −Σ fee`` over the
  rebates (``fee < 0``), both ≥ 0 and shown apart; ``net_fees_usd = fees_usd − rebates_usd``;
* ``slippage_usd = Σ (px − decision_mid) × size`` (size signed, + bought) over the fills that carry a
  decision mid: buying above the mid, or selling below it, costs (positive).  It is a diagnostic
  *part* of the trading result, not an extra cost: it is never added to the loss again;
* ``funding_usd = −Σ usd`` (a payment's ``usd`` is + received): positive when funding was paid;
* realised PnL by the **average-cost method**, per coin: with ``q`` the open size (signed) and
  ``C`` its cost (``q × average price``), a fill of ``s`` at ``p``

  - that opens or adds (``q = 0`` or ``s`` has the sign of ``q``): ``C += s·p``, ``q += s``;
  - that reduces (``|s| ≤ |q|``, opposite sign): with ``x = −s`` the size closed,
    ``realised += x·p − C·x/q``, ``C −= C·x/q``, ``q += s``;
  - that flips (``|s| > |q|``): ``realised += q·p − C``, then the rest ``r = q + s`` opens at ``p``
    (``C = r·p``, ``q = r``).

  Fees and funding are not in it.  ``C·x/q`` is a division: it is kept as an exact fraction, and
  the realised figure is exact whenever it has a finite decimal expansion (always once the
  position is flat again: it is then the trades' cash); otherwise it is rounded half-even to 18
  decimal places and the unrealised figure takes the remainder, so the two always add up exactly;
* ``unrealised_pnl_usd = q × end_mid − C``; ``trading_pnl_usd = realised + unrealised
  = Σ −size × px + q × end_mid`` (exact);
* ``pnl_usd = trading_pnl_usd − net_fees_usd − funding_usd``; ``loss_usd = −pnl_usd``;
* ``wear_bps = 1e4 × loss_usd / volume_usd`` per leg and venue (``None`` with no volume);
* the farmers' wear (hedging-bots.md §1): the loss on BOTH venues over the volume on ONE, the
  maker's: ``farmers_wear_bps = 1e4 × (loss_maker + loss_taker) / volume_maker``.

Sums and products run in a context that traps any inexact result (they are exact or they raise);
only the wear ratios are divisions, rounded to 28 significant digits.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Any

import polars as pl
from rich.table import Table

from perpbox.bots.venue import Fill, FundingPayment

FILL, FUNDING = "fill", "funding"
MAKER, TAKER = "maker", "taker"
LEGS = (MAKER, TAKER)
META_SCHEMA = "perpbox.wear.run/1"
BPS = Decimal(10_000)

Row = dict[str, object]

# The one row schema (column -> Parquet dtype) of a run's file; fills and funding payments share it,
# and a column that does not apply to a kind is null.
SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),  # "fill" | "funding"
    "run_id": pl.String(),
    "leg": pl.String(),  # "maker" | "taker"
    "venue": pl.String(),  # the venue's name (Venue.name)
    "coin": pl.String(),  # the venue's name for the coin
    "fill_id": pl.String(),  # fills: unique per fill on the venue
    "order_id": pl.String(),  # fills
    "size": pl.String(),  # decimal, signed (+ bought); funding: the position it was paid on
    "px": pl.String(),  # fills: decimal
    "fee": pl.String(),  # fills: USD paid, decimal (negative: a rebate)
    "time": pl.Int64(),  # ms since the epoch, the venue's time
    "maker": pl.Boolean(),  # fills: the fill was passive
    "decision_mid": pl.String(),  # fills: the venue's mid when the order was decided (nullable)
    "usd": pl.String(),  # funding: signed, + received
    "rate": pl.String(),  # funding: the rate it was paid at (the venue's sign)
}
MONEY = ("size", "px", "fee", "decision_mid", "usd", "rate")
REQUIRED = ("leg", "venue", "coin", "size", "time")  # a file without these is not a hedge run's

_EXACT = Context(prec=100, traps=[Inexact, InvalidOperation])  # sums and products: exact or an error
_RATIO = Context(prec=28)
_PLACES = 18  # a non-terminating fraction (the average cost) is rounded to this many decimal places


# ---------------------------------------------------------------------------------------------- rows
def _s(x: Decimal) -> str:
    return str(x)


def fill_row(run_id: str, leg: str, venue: str, fill: Fill, decision_mid: Decimal | None = None) -> Row:
    """A fill as a row of ``SCHEMA`` (``decision_mid``: the venue's mid when the order was decided)."""
    _check_leg(leg)
    return {"kind": FILL, "run_id": run_id, "leg": leg, "venue": venue, "coin": fill.coin, "fill_id": fill.fill_id,
            "order_id": fill.order_id, "size": _s(fill.size), "px": _s(fill.px), "fee": _s(fill.fee),
            "time": fill.ts_ms, "maker": fill.maker,
            "decision_mid": None if decision_mid is None else _s(decision_mid), "usd": None, "rate": None}


def funding_row(run_id: str, leg: str, venue: str, payment: FundingPayment) -> Row:
    """A funding payment (``usd`` + received, − paid) as a row of ``SCHEMA``."""
    _check_leg(leg)
    return {"kind": FUNDING, "run_id": run_id, "leg": leg, "venue": venue, "coin": payment.coin, "fill_id": None,
            "order_id": None, "size": _s(payment.size), "px": None, "fee": None, "time": payment.ts_ms,
            "maker": None, "decision_mid": None, "usd": _s(payment.usd), "rate": _s(payment.rate)}


def _check_leg(leg: str) -> None:
    if leg not in LEGS:
        raise ValueError(f"leg must be 'maker' or 'taker', not {leg!r}")


def _dec(row: Mapping[str, object], key: str) -> Decimal:
    value = row.get(key)
    if value is None:
        raise ValueError(f"row has no {key}: {dict(row)}")
    return _dec_value(value, key)


def _dec_value(value: object, key: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise TypeError(f"{key} must be a decimal string, int or Decimal, not {type(value).__name__}")
    try:
        d = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{key} is not a number: {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"{key} is not finite: {value!r}")
    return d


def _str(row: Mapping[str, object], key: str) -> str:
    value = row.get(key)
    if value is None or value == "":
        raise ValueError(f"row has no {key}: {dict(row)}")
    return str(value)


def _to_decimal(x: Fraction) -> Decimal:
    """A fraction as a Decimal: exact when its expansion terminates, else rounded half-even to 18 places."""
    d = x.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    with localcontext(Context(prec=200)):
        if d == 1:
            return Decimal(x.numerator) / Decimal(x.denominator)
        return (Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal(1).scaleb(-_PLACES))


# ---------------------------------------------------------------------------------------------- book
@dataclass
class _Position:
    size: Decimal = Decimal(0)
    cost: Fraction = Fraction(0)  # size × average price of what is open

    def apply(self, s: Decimal, p: Decimal) -> Fraction:
        """Book a fill of ``s`` at ``p``; the PnL it realised (average cost)."""
        q, fs, fp = self.size, Fraction(s), Fraction(p)
        with localcontext(_EXACT):
            new = q + s
        if q == 0 or (q > 0) == (s > 0):
            self.cost += fs * fp
            self.size = new
            return Fraction(0)
        fq = Fraction(q)
        if abs(s) <= abs(q):
            x = -fs
            part = self.cost * x / fq
            self.cost -= part
            self.size = new
            if new == 0:
                self.cost = Fraction(0)
            return x * fp - part
        realised = fq * fp - self.cost
        self.cost = Fraction(new) * fp
        self.size = new
        return realised


@dataclass
class _Leg:
    leg: str
    venue: str
    fills: int = 0
    priced_fills: int = 0
    funding_payments: int = 0
    volume: Decimal = Decimal(0)
    fees_paid: Decimal = Decimal(0)
    rebates: Decimal = Decimal(0)
    slippage: Decimal = Decimal(0)
    funding_received: Decimal = Decimal(0)
    cash: Decimal = Decimal(0)  # − Σ size × px
    realised: Fraction = Fraction(0)
    positions: dict[str, _Position] = field(default_factory=dict)
    coins: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class LegWear:
    """One leg on one venue (or a total: ``leg`` ``"total"``, ``venue`` ``"*"``)."""

    leg: str
    venue: str
    coins: tuple[str, ...]
    fills: int
    priced_fills: int  # fills with a decision mid (the slippage is over these)
    funding_payments: int
    volume_usd: Decimal
    fees_usd: Decimal  # paid, ≥ 0
    rebates_usd: Decimal  # received, ≥ 0
    net_fees_usd: Decimal  # fees − rebates
    slippage_usd: Decimal  # Σ (px − decision mid) × size: + cost
    funding_usd: Decimal  # + paid
    positions: tuple[tuple[str, Decimal], ...]  # (coin, size) still open at the end
    end_mid: Decimal | None  # the mark of what is open (None: nothing open, or a total)
    realised_pnl_usd: Decimal
    unrealised_pnl_usd: Decimal
    trading_pnl_usd: Decimal  # realised + unrealised (before fees and funding)
    pnl_usd: Decimal  # trading − net fees − funding
    loss_usd: Decimal  # −pnl
    wear_bps: Decimal | None  # 1e4 × loss / volume

    def to_json(self) -> dict[str, Any]:
        def s(x: Decimal | None) -> str | None:
            return None if x is None else str(x)

        return {"leg": self.leg, "venue": self.venue, "coins": list(self.coins), "fills": self.fills,
                "priced_fills": self.priced_fills, "funding_payments": self.funding_payments,
                "volume_usd": s(self.volume_usd), "fees_usd": s(self.fees_usd), "rebates_usd": s(self.rebates_usd),
                "net_fees_usd": s(self.net_fees_usd), "slippage_usd": s(self.slippage_usd),
                "funding_usd": s(self.funding_usd), "positions": {c: str(q) for c, q in self.positions},
                "end_mid": s(self.end_mid), "realised_pnl_usd": s(self.realised_pnl_usd),
                "unrealised_pnl_usd": s(self.unrealised_pnl_usd), "trading_pnl_usd": s(self.trading_pnl_usd),
                "pnl_usd": s(self.pnl_usd), "loss_usd": s(self.loss_usd), "wear_bps": s(self.wear_bps)}


@dataclass(frozen=True)
class WearResult:
    legs: tuple[LegWear, ...]  # per (leg, venue), maker legs first
    total: LegWear  # every leg summed
    maker_volume_usd: Decimal
    farmers_wear_bps: Decimal | None  # 1e4 × (loss on both venues) / (the maker's volume)
    run_ids: tuple[str, ...] = ()

    def leg(self, leg: str, venue: str | None = None) -> LegWear:
        """The one ``leg`` row (on ``venue``); a KeyError when there is none or more than one."""
        found = [x for x in self.legs if x.leg == leg and (venue is None or x.venue == venue)]
        if len(found) != 1:
            raise KeyError(f"{len(found)} rows for leg {leg!r}" + (f" on {venue!r}" if venue else ""))
        return found[0]

    def to_json(self) -> dict[str, Any]:
        return {"run_ids": list(self.run_ids), "legs": [x.to_json() for x in self.legs], "total": self.total.to_json(),
                "maker_volume_usd": str(self.maker_volume_usd),
                "farmers_wear_bps": None if self.farmers_wear_bps is None else str(self.farmers_wear_bps)}


def _ratio(loss: Decimal, volume: Decimal) -> Decimal | None:
    if volume == 0:
        return None
    with localcontext(_RATIO):
        return loss * BPS / volume


class WearBook:
    """Accumulates a run's fills and funding payments; ``result(end_mids)`` says what they cost.

    Fills of a (leg, venue, coin) are applied in the order they are added (``from_rows`` sorts by
    time first, stably).  A row seen again (the same fill id, or the same funding payment) is
    ignored; the same id with different contents is an error.
    """

    def __init__(self) -> None:
        self._legs: dict[tuple[str, str], _Leg] = {}
        self._seen: dict[tuple[str, ...], tuple[object, ...]] = {}
        self.run_ids: set[str] = set()

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, object]]) -> WearBook:
        book = cls()
        ordered = sorted(rows, key=lambda r: int(str(r.get("time") or 0)))
        for row in ordered:
            book.add(row)
        return book

    def _leg(self, leg: str, venue: str) -> _Leg:
        _check_leg(leg)
        key = (leg, venue)
        if key not in self._legs:
            self._legs[key] = _Leg(leg, venue)
        return self._legs[key]

    def _dedupe(self, key: tuple[str, ...], row: Mapping[str, object]) -> bool:
        """True when ``row`` is new."""
        contents = tuple(row.get(c) for c in SCHEMA if c != "run_id")
        if key in self._seen:
            if self._seen[key] != contents:
                raise ValueError(f"{key}: seen before with other contents")
            return False
        self._seen[key] = contents
        return True

    def add(self, row: Mapping[str, object]) -> None:
        """A fill or a funding row (by ``kind``; a row with no ``kind`` is a fill)."""
        kind = row.get("kind") or FILL
        if kind == FILL:
            self.add_fill(row)
        elif kind == FUNDING:
            self.add_funding(row)
        else:
            raise ValueError(f"unknown row kind {kind!r}")

    def add_fill(self, row: Mapping[str, object]) -> None:
        if (row.get("kind") or FILL) != FILL:
            raise ValueError(f"not a fill row: {row.get('kind')!r}")
        leg, venue, coin = _str(row, "leg"), _str(row, "venue"), _str(row, "coin")
        size, px, fee = _dec(row, "size"), _dec(row, "px"), _dec(row, "fee")
        if size == 0 or px <= 0:
            raise ValueError(f"a fill needs a non-zero size and a positive price: {dict(row)}")
        mid_raw = row.get("decision_mid")
        mid = None if mid_raw is None or mid_raw == "" else _dec_value(mid_raw, "decision_mid")
        st = self._leg(leg, venue)
        if not self._dedupe((FILL, leg, venue, _str(row, "fill_id")), row):
            return
        if row.get("run_id"):
            self.run_ids.add(str(row["run_id"]))
        with localcontext(_EXACT):
            st.fills += 1
            st.coins.add(coin)
            st.volume += abs(size) * px
            if fee >= 0:
                st.fees_paid += fee
            else:
                st.rebates -= fee
            if mid is not None:
                st.priced_fills += 1
                st.slippage += (px - mid) * size
            st.cash -= size * px
        st.realised += st.positions.setdefault(coin, _Position()).apply(size, px)

    def add_funding(self, row: Mapping[str, object]) -> None:
        if row.get("kind") != FUNDING:
            raise ValueError(f"not a funding row: {row.get('kind')!r}")
        leg, venue, coin = _str(row, "leg"), _str(row, "venue"), _str(row, "coin")
        usd = _dec(row, "usd")
        st = self._leg(leg, venue)
        if not self._dedupe((FUNDING, leg, venue, coin, _str(row, "time")), row):
            return
        if row.get("run_id"):
            self.run_ids.add(str(row["run_id"]))
        with localcontext(_EXACT):
            st.funding_payments += 1
            st.coins.add(coin)
            st.funding_received += usd

    def result(self, end_mids: Mapping[str, Decimal]) -> WearResult:
        """What the run cost, what is still open marked at ``end_mids`` (venue name → the venue's
        mid at the end).  A venue with a position open needs its mid (a ValueError otherwise), and
        a leg with positions open in two coins on one venue is refused (one book per run)."""
        legs = []
        for (leg, venue), st in sorted(self._legs.items(), key=lambda kv: (LEGS.index(kv[0][0]), kv[0][1])):
            open_pos = [(c, p) for c, p in sorted(st.positions.items()) if p.size != 0]
            mid: Decimal | None = None
            if len(open_pos) > 1:
                raise ValueError(f"{leg} on {venue}: positions open in {[c for c, _ in open_pos]}: "
                                 "end mids are per venue, so one book per run (one coin a venue)")
            if open_pos:
                if venue not in end_mids:
                    raise ValueError(f"no end mid for {venue} ({leg} holds {open_pos[0][1].size} {open_pos[0][0]})")
                mid = _dec_value(end_mids[venue], f"end mid of {venue}")
            with localcontext(_EXACT):
                trading = st.cash + sum((p.size * mid for _, p in open_pos if mid is not None), Decimal(0))
                realised = _to_decimal(st.realised)
                unrealised = trading - realised
                net_fees = st.fees_paid - st.rebates
                funding = -st.funding_received
                pnl = trading - net_fees - funding
            legs.append(LegWear(
                leg=leg, venue=venue, coins=tuple(sorted(st.coins)), fills=st.fills, priced_fills=st.priced_fills,
                funding_payments=st.funding_payments, volume_usd=st.volume, fees_usd=st.fees_paid,
                rebates_usd=st.rebates, net_fees_usd=net_fees, slippage_usd=st.slippage, funding_usd=funding,
                positions=tuple((c, p.size) for c, p in open_pos), end_mid=mid, realised_pnl_usd=realised,
                unrealised_pnl_usd=unrealised, trading_pnl_usd=trading, pnl_usd=pnl, loss_usd=-pnl,
                wear_bps=_ratio(-pnl, st.volume)))
        return _assemble(legs, tuple(sorted(self.run_ids)))


def _sum_legs(rows: Sequence[LegWear], leg: str, venue: str) -> LegWear:
    def tot(name: str) -> Decimal:
        with localcontext(_EXACT):
            return sum((getattr(r, name) for r in rows), Decimal(0))

    positions: dict[str, Decimal] = {}
    for r in rows:
        for c, q in r.positions:
            with localcontext(_EXACT):
                positions[c] = positions.get(c, Decimal(0)) + q
    mids = {r.end_mid for r in rows if r.end_mid is not None}
    volume, pnl = tot("volume_usd"), tot("pnl_usd")
    return LegWear(
        leg=leg, venue=venue, coins=tuple(sorted({c for r in rows for c in r.coins})),
        fills=sum(r.fills for r in rows), priced_fills=sum(r.priced_fills for r in rows),
        funding_payments=sum(r.funding_payments for r in rows), volume_usd=volume, fees_usd=tot("fees_usd"),
        rebates_usd=tot("rebates_usd"), net_fees_usd=tot("net_fees_usd"), slippage_usd=tot("slippage_usd"),
        funding_usd=tot("funding_usd"), positions=tuple((c, q) for c, q in sorted(positions.items()) if q != 0),
        end_mid=mids.pop() if len(mids) == 1 and venue != "*" else None, realised_pnl_usd=tot("realised_pnl_usd"),
        unrealised_pnl_usd=tot("unrealised_pnl_usd"), trading_pnl_usd=tot("trading_pnl_usd"), pnl_usd=pnl,
        loss_usd=-pnl, wear_bps=_ratio(-pnl, volume))


def _assemble(legs: Sequence[LegWear], run_ids: tuple[str, ...]) -> WearResult:
    total = _sum_legs(legs, "total", "*")
    with localcontext(_EXACT):
        maker_volume = sum((x.volume_usd for x in legs if x.leg == MAKER), Decimal(0))
    return WearResult(legs=tuple(legs), total=total, maker_volume_usd=maker_volume,
                      farmers_wear_bps=_ratio(total.loss_usd, maker_volume), run_ids=run_ids)


def combine(results: Iterable[WearResult]) -> WearResult:
    """Several runs' results as one: each (leg, venue) summed over the runs, the wear recomputed
    from the sums (not averaged)."""
    groups: dict[tuple[str, str], list[LegWear]] = {}
    run_ids: list[str] = []
    for res in results:
        run_ids.extend(res.run_ids)
        for x in res.legs:
            groups.setdefault((x.leg, x.venue), []).append(x)
    keys = sorted(groups, key=lambda k: (LEGS.index(k[0]), k[1]))
    return _assemble([_sum_legs(groups[k], k[0], k[1]) for k in keys], tuple(sorted(set(run_ids))))


# ---------------------------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class RunMeta:
    """A run's sidecar (``<run_id>.json``): what the rows alone do not say."""

    run_id: str
    start_ms: int
    end_ms: int
    maker_venue: str
    taker_venue: str
    coin: str  # the maker venue's name for it
    end_mids: dict[str, Decimal]  # venue name -> its mid at the end of the run
    taker_coin: str | None = None  # the taker venue's name for it (None: the same as ``coin``)

    def to_json(self) -> dict[str, Any]:
        return {"schema": META_SCHEMA, "run_id": self.run_id, "start_ms": self.start_ms, "end_ms": self.end_ms,
                "maker_venue": self.maker_venue, "taker_venue": self.taker_venue, "coin": self.coin,
                "taker_coin": self.taker_coin,
                "end_mids": {v: str(m) for v, m in sorted(self.end_mids.items())}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunMeta:
        if data.get("schema") != META_SCHEMA:
            raise ValueError(f"not a {META_SCHEMA} sidecar: schema {data.get('schema')!r}")
        mids = data.get("end_mids") or {}
        if not isinstance(mids, dict):
            raise ValueError("end_mids must be an object of venue -> decimal string")
        try:
            return cls(run_id=str(data["run_id"]), start_ms=int(data["start_ms"]), end_ms=int(data["end_ms"]),
                       maker_venue=str(data["maker_venue"]), taker_venue=str(data["taker_venue"]),
                       coin=str(data["coin"]), taker_coin=data.get("taker_coin"),
                       end_mids={str(v): _dec_value(m, f"end_mids[{v}]") for v, m in mids.items()})
        except KeyError as e:
            raise ValueError(f"the run sidecar has no {e.args[0]!r}") from None


def _frame(rows: Sequence[Mapping[str, object]]) -> pl.DataFrame:
    cols: dict[str, list[object]] = {c: [] for c in SCHEMA}
    for row in rows:
        extra = set(row) - set(SCHEMA)
        if extra:
            raise ValueError(f"columns not in the schema: {sorted(extra)}")
        for c in SCHEMA:
            v = row.get(c)
            if c in MONEY and v is not None:
                if isinstance(v, float) or not isinstance(v, str | Decimal | int) or isinstance(v, bool):
                    raise TypeError(f"{c} must be a decimal string or Decimal, not {type(v).__name__}")
                v = str(v)
            cols[c].append(v)
    return pl.DataFrame(cols, schema=SCHEMA)


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_run(dir: Path | str, run_id: str, rows: Sequence[Mapping[str, object]], meta: RunMeta) -> Path:
    """Write a run's rows to ``<dir>/<run_id>.parquet`` and its ``RunMeta`` to ``<dir>/<run_id>.json``
    (each replaced atomically, so it can be called again while the run goes on); the Parquet path."""
    if meta.run_id != run_id:
        raise ValueError(f"meta is for run {meta.run_id!r}, not {run_id!r}")
    if any(r.get("run_id") != run_id for r in rows):
        raise ValueError(f"every row must carry run_id {run_id!r}")
    if not run_id or any(ch in run_id for ch in "/\\") or run_id.startswith("."):
        raise ValueError(f"a run id must be a plain file name: {run_id!r}")
    out = Path(dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = _frame(rows)
    path = out / f"{run_id}.parquet"
    _atomic(path, frame.write_parquet)
    _atomic(out / f"{run_id}.json", lambda p: p.write_text(json.dumps(meta.to_json(), indent=2) + "\n"))
    return path


class NotARun(ValueError):
    """A Parquet file that is not a hedge run's rows (``read_dir`` skips it)."""


def read_rows(path: Path | str) -> list[Row]:
    """A run file's rows, as written (money as strings).  A file of the hedge runner's older rows
    (no ``kind`` or ``run_id``) reads as fills of the run named by the file."""
    frame = pl.read_parquet(path)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise NotARun(f"{path}: not a hedge run's rows (no {', '.join(missing)})")
    floats = [c for c, t in frame.schema.items() if c in MONEY and t.is_float()]
    if floats:
        raise ValueError(f"{path}: money columns stored as floats: {floats}")
    rows: list[Row] = []
    for r in frame.iter_rows(named=True):
        row: Row = {c: r.get(c) for c in SCHEMA}
        row["kind"] = row["kind"] or FILL
        row["run_id"] = row["run_id"] or Path(path).stem
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Run:
    run_id: str
    meta: RunMeta | None
    rows: tuple[Row, ...]
    files: tuple[Path, ...]

    def result(self) -> WearResult:
        mids = self.meta.end_mids if self.meta else {}
        return WearBook.from_rows(self.rows).result(mids)


def read_dir(dir: Path | str, skipped: list[Path] | None = None) -> list[Run]:
    """Every run under ``dir``: the rows of all ``*.parquet`` files grouped by ``run_id``, each with
    the sidecar ``<run_id>.json`` found anywhere under ``dir`` (None when there is none).  Parquet
    files that are not a hedge run's rows are skipped (and appended to ``skipped``)."""
    root = Path(dir)
    metas: dict[str, RunMeta] = {}
    for p in sorted(root.rglob("*.json")):
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("schema") == META_SCHEMA:
            m = RunMeta.from_json(data)
            metas[m.run_id] = m
    rows: dict[str, list[Row]] = {}
    files: dict[str, list[Path]] = {}
    for p in sorted(root.rglob("*.parquet")):
        if p.name.startswith("."):
            continue
        try:
            found = read_rows(p)
        except NotARun:
            if skipped is not None:
                skipped.append(p)
            continue
        for r in found:
            rid = str(r["run_id"])
            rows.setdefault(rid, []).append(r)
            if p not in files.setdefault(rid, []):
                files[rid].append(p)
    return [Run(rid, metas.get(rid), tuple(rows[rid]), tuple(files[rid])) for rid in sorted(rows)]


# ---------------------------------------------------------------------------------------------- tables
def _usd(x: Decimal) -> str:
    return f"{x:,.4f}"


def _bps(x: Decimal | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


_COLUMNS = ("leg", "venue", "fills", "volume USD", "fees", "rebates", "slippage", "funding", "realised",
            "unrealised", "pnl", "loss", "wear bps")


def _cells(x: LegWear) -> list[str]:
    return [x.leg, x.venue, str(x.fills), f"{x.volume_usd:,.2f}", _usd(x.fees_usd), _usd(x.rebates_usd),
            _usd(x.slippage_usd), _usd(x.funding_usd), _usd(x.realised_pnl_usd), _usd(x.unrealised_pnl_usd),
            _usd(x.pnl_usd), _usd(x.loss_usd), _bps(x.wear_bps)]


def render(result: WearResult, title: str | None = None) -> Table:
    """One result as a table: a row per leg and venue and the total; the farmers' wear in the
    caption (for a live ``rich.live.Live`` view while a hedge runs, and for its summary)."""
    table = Table(title=title or "wear", caption=f"farmers' wear (both venues' loss / the maker's volume): "
                  f"{_bps(result.farmers_wear_bps)} bps")
    for i, col in enumerate(_COLUMNS):
        table.add_column(col, justify="left" if i < 2 else "right")
    for x in result.legs:
        table.add_row(*_cells(x))
    table.add_section()
    table.add_row(*_cells(result.total), style="bold")
    return table


def render_runs(runs: Sequence[tuple[str, WearResult]], total: WearResult, title: str = "wear") -> Table:
    """Several runs and their total: a section per run, the farmers' wear on each run's total row."""
    table = Table(title=title)
    for i, col in enumerate(("run", *_COLUMNS, "farmers bps")):
        table.add_column(col, justify="left" if i < 3 else "right")
    for run_id, res in [*runs, ("all runs", total)]:
        for x in res.legs:
            table.add_row(run_id, *_cells(x), "")
        table.add_row(run_id, *_cells(res.total), _bps(res.farmers_wear_bps), style="bold")
        table.add_section()
    return table

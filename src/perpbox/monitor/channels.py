"""The monitor's three channels, measured from what the venue's public API (and the deployer's own
attestation log) shows.  Pure functions over parsed answers; every value an exact ``Decimal`` (or
None when it cannot be measured), percentages as percent.

Where each measurement comes from — and what is estimated:

* **price** — ``feed_silent_s``: seconds since the relay's last accepted ``setOracle``, from its
  attestation log (``--attest-dir``: exact); without one, since the venue's ``oraclePx`` last
  changed (an estimate: a price that does not move reads as a silent feed).
  ``oracle_external_dev_pct``: |oraclePx − externalPerpPx| / externalPerpPx, the external price
  from the relay's last record (the venue does not publish it).  ``mark_mid_dev_pct``: |markPx −
  midPx| / midPx from ``metaAndAssetCtxs``.  ``clamp_pinned_s``: how long the relay's updates
  have been held by the 1% step clamp (attestation log only).
* **book** — from ``l2Book`` (the venue's top 20 levels a side: depth beyond them is not seen, so
  the bands are lower bounds on a deep book): ``spread_pct``, ``depth_0_5pct_usd``,
  ``depth_1pct_usd``, ``depth_2pct_usd`` (both sides within ±x% of mid), ``taker_volume_usd``
  (``recentTrades`` notional over the last minute), ``taker_vs_depth_1pct`` (that volume over the
  ±1% depth), ``depth_1pct_drop_pct`` (the ±1% depth's fall from its median over the last hour).
* **positions** — ``oi_usd`` (openInterest × oraclePx), ``oi_to_volume`` (over ``dayNtlVlm``),
  ``oi_cap_use_pct`` (over the cap in ``perpDexLimits``).  The venue lists no market's positions,
  so the rest is **estimated from the accounts seen trading** (``recentTrades`` ``users``; their
  ``clearinghouseState``): ``top1_share_pct``, ``top5_share_pct`` (their largest positions' share of
  the market's open interest), ``top_position_loss_margin_pct`` (the largest position's unrealised loss over its
  margin), ``top_position_stressed_loss_margin_pct`` (the same with the price moved by the rules'
  ``stress.move_pct`` against it), ``long_upnl_margin_pct`` and ``short_upnl_margin_pct``.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

Values = dict[str, Decimal | None]
HUNDRED = Decimal(100)
TAKER_WINDOW_MS = 60_000
DEPTH_HISTORY_MS = 3_600_000


def dec(x: Any) -> Decimal | None:
    """A venue's decimal string (or number) exactly; None when absent or not a number."""
    if x is None or isinstance(x, bool):
        return None
    try:
        d = Decimal(str(x))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _pct(num: Decimal | None, den: Decimal | None) -> Decimal | None:
    if num is None or den is None or den == 0:
        return None
    return num / den * HUNDRED


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """What the monitor knows of the relay's updates for one market."""

    last_ok_ms: int | None = None  # the last accepted setOracle (or the last seen oracle change)
    external: Decimal | None = None  # the relay's last externalPerpPx
    pinned_since_ms: int | None = None  # since when every update was held by the step clamp
    estimated: bool = False  # from oracle changes, not from the attestation log


def price_values(now: int, ctx: dict[str, Any], feed: FeedStatus) -> Values:
    oracle, mark, mid = dec(ctx.get("oraclePx")), dec(ctx.get("markPx")), dec(ctx.get("midPx"))
    silent = None if feed.last_ok_ms is None else Decimal(max(0, now - feed.last_ok_ms)) / 1000
    dev = None if oracle is None or feed.external is None else _pct(abs(oracle - feed.external), feed.external)
    pinned = Decimal(0) if feed.pinned_since_ms is None else Decimal(now - feed.pinned_since_ms) / 1000
    return {"feed_silent_s": silent, "oracle_external_dev_pct": dev,
            "mark_mid_dev_pct": None if mark is None or mid is None else _pct(abs(mark - mid), mid),
            "clamp_pinned_s": None if feed.estimated else pinned}


Levels = Sequence[tuple[Decimal, Decimal]]  # (px, sz) best first


def book_levels(raw: Any) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    """An ``l2Book`` answer's bids and asks as exact (px, sz); malformed levels are skipped."""
    sides: list[list[tuple[Decimal, Decimal]]] = [[], []]
    levels = raw.get("levels") if isinstance(raw, dict) else None
    if isinstance(levels, list) and len(levels) == 2:
        for i in (0, 1):
            for lv in levels[i] if isinstance(levels[i], list) else []:
                px, sz = (dec(lv.get("px")), dec(lv.get("sz"))) if isinstance(lv, dict) else (None, None)
                if px is not None and sz is not None and px > 0 and sz > 0:
                    sides[i].append((px, sz))
    return sides[0], sides[1]


def _depth(bids: Levels, asks: Levels, mid: Decimal, pct: Decimal) -> Decimal:
    lo, hi = mid * (1 - pct / HUNDRED), mid * (1 + pct / HUNDRED)
    return (sum((px * sz for px, sz in bids if px >= lo), Decimal(0))
            + sum((px * sz for px, sz in asks if px <= hi), Decimal(0)))


class DepthHistory:
    """The ±1% depth over the last hour, for ``depth_1pct_drop_pct``."""

    def __init__(self) -> None:
        self.samples: deque[tuple[int, Decimal]] = deque()

    def add(self, now: int, depth: Decimal) -> Decimal | None:
        """Record a sample; the drop (percent) of this one from the hour's median (None until
        there are three samples)."""
        self.samples.append((now, depth))
        while self.samples and self.samples[0][0] < now - DEPTH_HISTORY_MS:
            self.samples.popleft()
        if len(self.samples) < 3:
            return None
        median = statistics.median(d for _, d in self.samples)
        return None if median == 0 else max(Decimal(0), (median - depth) / median * HUNDRED)


def book_values(now: int, bids: Levels, asks: Levels, trades: Iterable[dict[str, Any]],
                history: DepthHistory | None = None) -> Values:
    out: Values = dict.fromkeys(("spread_pct", "depth_0_5pct_usd", "depth_1pct_usd", "depth_2pct_usd",
                                 "taker_volume_usd", "taker_vs_depth_1pct", "depth_1pct_drop_pct"))
    volume = Decimal(0)
    for t in trades:
        px, sz, ts = dec(t.get("px")), dec(t.get("sz")), t.get("time")
        if px is not None and sz is not None and isinstance(ts, int) and now - TAKER_WINDOW_MS <= ts <= now:
            volume += px * sz
    out["taker_volume_usd"] = volume
    if not bids or not asks:
        return out
    bid, ask = bids[0][0], asks[0][0]
    mid = (bid + ask) / 2
    out["spread_pct"] = _pct(ask - bid, mid)
    for key, pct in (("depth_0_5pct_usd", Decimal("0.5")), ("depth_1pct_usd", Decimal(1)),
                     ("depth_2pct_usd", Decimal(2))):
        out[key] = _depth(bids, asks, mid, pct)
    d1 = out["depth_1pct_usd"]
    assert d1 is not None
    out["taker_vs_depth_1pct"] = None if d1 == 0 else volume / d1
    if history is not None:
        out["depth_1pct_drop_pct"] = history.add(now, d1)
    return out


@dataclass(frozen=True, slots=True)
class Position:
    user: str
    szi: Decimal  # signed size
    entry_px: Decimal
    upnl: Decimal
    margin: Decimal


def parse_positions(user: str, state: Any, coin: str) -> list[Position]:
    """``user``'s position in ``coin`` from a ``clearinghouseState`` answer (none: empty)."""
    out = []
    rows = state.get("assetPositions") if isinstance(state, dict) else None
    for row in rows if isinstance(rows, list) else []:
        p = row.get("position") if isinstance(row, dict) else None
        if not isinstance(p, dict) or p.get("coin") != coin:
            continue
        szi, entry, upnl, margin = (dec(p.get(k)) for k in ("szi", "entryPx", "unrealizedPnl", "marginUsed"))
        if szi and entry is not None and upnl is not None and margin is not None:
            out.append(Position(user, szi, entry, upnl, margin))
    return out


def position_values(ctx: dict[str, Any], cap_usd: Decimal | None, positions: Sequence[Position],
                    stress_move: Decimal) -> Values:
    oracle, oi, vol = dec(ctx.get("oraclePx")), dec(ctx.get("openInterest")), dec(ctx.get("dayNtlVlm"))
    oi_usd = None if oracle is None or oi is None else oi * oracle
    out: Values = {"oi_usd": oi_usd, "oi_to_volume": None if oi_usd is None or not vol else oi_usd / vol,
                   "oi_cap_use_pct": _pct(oi_usd, cap_usd) if cap_usd else None}
    out.update(dict.fromkeys(("top1_share_pct", "top5_share_pct", "top_position_loss_margin_pct",
                              "top_position_stressed_loss_margin_pct", "long_upnl_margin_pct",
                              "short_upnl_margin_pct")))
    if not positions or oracle is None:
        return out
    by_size = sorted(positions, key=lambda p: abs(p.szi), reverse=True)
    # of the market's open interest (one side's size); the seen accounts' if the venue gives none
    total = oi or sum((p.szi for p in positions if p.szi > 0), Decimal(0))
    if total > 0:
        out["top1_share_pct"] = abs(by_size[0].szi) / total * HUNDRED
        out["top5_share_pct"] = min(HUNDRED, sum(abs(p.szi) for p in by_size[:5]) / total * HUNDRED)
    top = by_size[0]
    if top.margin > 0:
        out["top_position_loss_margin_pct"] = max(Decimal(0), -top.upnl) / top.margin * HUNDRED
        stressed = oracle * (1 - stress_move) if top.szi > 0 else oracle * (1 + stress_move)
        out["top_position_stressed_loss_margin_pct"] = (max(Decimal(0), -top.szi * (stressed - top.entry_px))
                                                        / top.margin * HUNDRED)
    for side, sign in (("long", 1), ("short", -1)):
        chosen = [p for p in positions if p.szi * sign > 0]
        margin = sum((p.margin for p in chosen), Decimal(0))
        if margin > 0:
            out[f"{side}_upnl_margin_pct"] = sum((p.upnl for p in chosen), Decimal(0)) / margin * HUNDRED
    return out

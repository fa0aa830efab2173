"""One market's prices through time: oracle, mark, EMAs, premium samples, funding clock.

``PriceState`` is an immutable value; ``tick`` and ``push`` are pure functions from (definition,
state, time, book, feeds) to the next state.  The exchange records each new state in an event, so
replay rebuilds prices without re-deciding them.

Order inside ``tick`` (documented contract): session → oracle → EMAs → mark → premium sample.
Funding settlement (it needs positions) is the exchange's, right after, using
``funding_due``/``interval_premium``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

import msgspec

from perpbox.book.book import OrderBook
from perpbox.core.numbers import RATE_SCALE
from perpbox.market.funding import FundingParams, PremiumAverage
from perpbox.market.oracle import MarkPolicy, OnInsufficient, OracleDefinition, OracleKind
from perpbox.pricing.ema import ema_update, ema_value
from perpbox.pricing.funding import average_premium, premium_sample
from perpbox.pricing.impact import impact_price, local_mark
from perpbox.pricing.oracle import Quote, aggregate, fresh_quotes, median, off_hours_advance, weighted_median

DAY_MS = 86_400_000


class PriceState(msgspec.Struct, frozen=True, kw_only=True):
    oracle: int = 0  # price units; 0 = none yet
    mark: int = 0
    stale: bool = False  # the oracle is held or taken from the book because its sources failed
    halted: bool = False  # the definition halts the market while its sources fail
    ema_num: int = 0  # mark EMA of (mid − oracle): 150 s (Hyperliquid) or the 30 s basis (Binance)
    ema_den: int = 0
    local_num: int = 0  # 30 s EMA of the local mark (Hyperliquid's fourth mark input)
    local_den: int = 0
    ema_ts: int = 0  # when the EMAs (and the off-hours oracle) were last advanced
    prem_sum: int = 0  # premium samples of the running interval, 1e-12 units
    prem_wsum: int = 0  # Σ i·sample, for time-weighted averages
    prem_n: int = 0
    next_sample_ts: int = 0
    next_funding_ts: int = 0
    last_rate: int = 0  # the last settled interval rate, 1e-8
    push_ts: int = 0  # last deployer update, or fallback to the local mark (the 10 s clock)
    deployer_ts: int = 0  # last deployer setOracle (the 2.5 s rate limit); 0 = none yet
    day: int = -1  # UTC day of day_px
    day_px: int = 0  # start-of-day oracle (HIP-3: prices clamped to 10× it)
    session_open: bool = True
    close_px: int = 0  # oracle at the last session close (discovery band centre)
    off_carry: int = 0  # the off-hours oracle's rounded-off part, 1/EXP_SCALE price units (off_hours_advance)


def listed(now: int, px: int, funding: FundingParams) -> PriceState:
    """The state of a market listed at ``now`` with an initial price ``px`` (0: none)."""
    return PriceState(oracle=px, mark=px, ema_ts=now, push_ts=now, day=now // DAY_MS, day_px=px,
                      next_funding_ts=(now // funding.interval_ms + 1) * funding.interval_ms)


def _impact_mid(book: OrderBook, notional: int) -> int | None:
    bid, ask = impact_price(book, False, notional), impact_price(book, True, notional)
    return None if bid is None or ask is None else int((bid + ask) / 2)


def clamp_move(prev: int, px: int, bps: int) -> int:
    """``px`` kept within ``bps`` of ``prev`` (the step rounded down: the tighter bound)."""
    if prev <= 0:
        return px
    step = prev * bps // 10_000
    return min(max(px, prev - step), prev + step)


def clamp_to_day(day_px: int, px: int, multiple: int) -> int:
    """``px`` kept within ``multiple``× the start-of-day price either way (the lower bound
    rounded up: the tighter bound)."""
    if day_px <= 0:
        return px
    return min(max(px, -(-day_px // multiple)), day_px * multiple)


def _clamp_day(st: PriceState, px: int, multiple: int) -> int:
    return clamp_to_day(st.day_px, px, multiple)


def _band(st: PriceState, px: int, defn: OracleDefinition) -> int:
    """Off-hours discovery band around the last external close.  The mark is held inside it, so
    a position whose liquidation price lies beyond the band cannot be liquidated while the band is
    active (trade.xyz's discovery bounds) — however far the book itself is pushed."""
    if st.session_open or st.close_px <= 0:
        return px
    band = st.close_px * defn.off_hours.band_bps // 10_000
    return min(max(px, st.close_px - band), st.close_px + band)


def tick(defn: OracleDefinition, funding: FundingParams, st: PriceState, now: int, book: OrderBook, last_px: int,
         spot: Mapping[str, Quote], perp: Mapping[str, Quote], manual_mark: int | None) -> PriceState:
    oracle, stale, halted = st.oracle, st.stale, st.halted
    dt = now - st.ema_ts
    # -- session ---------------------------------------------------------------------------
    is_open = defn.session is None or defn.session.is_open(now)
    close_px, off_carry = st.close_px, 0
    if st.session_open and not is_open:
        close_px = oracle  # the external close: centre of the discovery band
    # -- oracle ----------------------------------------------------------------------------
    if defn.kind is OracleKind.MANUAL:
        if manual_mark:
            oracle = manual_mark
    elif not is_open:
        target = _impact_mid(book, funding.impact_notional)
        oracle, off_carry = off_hours_advance(oracle, st.off_carry, target, dt, defn.off_hours, close_px)
    elif defn.kind is OracleKind.SOURCES:
        px = aggregate(fresh_quotes(defn.sources, spot, now, defn.max_age_ms), defn.max_deviation_bps,
                       defn.min_sources)
        if px is not None:
            oracle, stale, halted = px, False, False
        elif defn.on_insufficient is OnInsufficient.HALT:
            stale, halted = True, True
        elif defn.on_insufficient is OnInsufficient.BOOK:
            local = local_mark(book, last_px)
            stale = True
            oracle = local if local is not None else oracle
        else:
            stale = True
    # (deployer oracles move only on push; at the reopen the next push pulls them back)
    st = msgspec.structs.replace(st, oracle=oracle, stale=stale, halted=halted, session_open=is_open,
                                 close_px=close_px, off_carry=off_carry)
    # -- EMAs ------------------------------------------------------------------------------
    bid, ask = book.best_bid(), book.best_ask()
    local = local_mark(book, last_px)
    ema_num, ema_den, local_num, local_den = st.ema_num, st.ema_den, st.local_num, st.local_den
    if oracle and bid is not None and ask is not None:
        tau = defn.local_ema_ms if defn.mark is MarkPolicy.BINANCE else defn.mark_ema_ms
        ema_num, ema_den = ema_update(ema_num, ema_den, (bid + ask) // 2 - oracle, dt, tau)
    if local is not None:
        local_num, local_den = ema_update(local_num, local_den, local, dt, defn.local_ema_ms)
    st = msgspec.structs.replace(st, ema_num=ema_num, ema_den=ema_den, local_num=local_num, local_den=local_den,
                                 ema_ts=now)
    # -- mark ------------------------------------------------------------------------------
    mark = st.mark
    if defn.kind is OracleKind.MANUAL:
        mark = manual_mark or mark
    elif defn.mark is MarkPolicy.HIP3:
        if now - st.push_ts >= defn.fallback_after_ms and local is not None:
            mark = _clamp_day(st, clamp_move(st.mark, local, defn.max_mark_move_bps), defn.day_clamp_multiple)
            st = msgspec.structs.replace(st, push_ts=now)  # the fallback counts as an update
    elif defn.mark is MarkPolicy.BINANCE:
        mark = _binance_mark(funding, st, now, last_px) or mark
    else:
        mark = _hyperliquid_mark(defn, st, local, perp, now) or mark
    st = msgspec.structs.replace(st, mark=_band(st, mark, defn))
    # -- premium sample ----------------------------------------------------------------------
    if now >= st.next_sample_ts and st.oracle:
        s = premium_sample(funding.premium_formula, st.oracle, impact_price(book, False, funding.impact_notional),
                           impact_price(book, True, funding.impact_notional))
        n = st.prem_n + 1
        st = msgspec.structs.replace(st, prem_sum=st.prem_sum + s, prem_wsum=st.prem_wsum + n * s, prem_n=n,
                                     next_sample_ts=(now // funding.sample_ms + 1) * funding.sample_ms)
    return st


def _hyperliquid_mark(defn: OracleDefinition, st: PriceState, local: int | None, perp: Mapping[str, Quote],
                      now: int) -> int | None:
    if not st.oracle:
        return local
    basis = ema_value(st.ema_num, st.ema_den)
    inputs = [st.oracle + (basis or 0)]
    if local is not None:
        inputs.append(local)
    fresh = fresh_quotes(defn.perp_sources, perp, now, defn.max_age_ms)
    if fresh:
        inputs.append(weighted_median(fresh))
    if len(inputs) == 2:
        local_ema = ema_value(st.local_num, st.local_den)
        if local_ema is not None:
            inputs.append(local_ema)
    return median(inputs)


def _binance_mark(funding: FundingParams, st: PriceState, now: int, last_px: int) -> int | None:
    if not st.oracle:
        return last_px or None
    left = max(0, st.next_funding_ts - now)
    p1 = st.oracle + st.oracle * st.last_rate * left // (RATE_SCALE * funding.interval_ms)
    p2 = st.oracle + (ema_value(st.ema_num, st.ema_den) or 0)
    return median([p1, p2, last_px] if last_px else [p1, p2])


def push(defn: OracleDefinition, st: PriceState, now: int, oracle_px: int, mark_inputs: Sequence[int],
         book: OrderBook, last_px: int) -> PriceState:
    """A HIP-3 deployer's ``setOracle`` (already checked for interval and authority): prices clamped
    to ``day_clamp_multiple`` × the start-of-day oracle; the new mark is the median of the mark
    inputs and the local mark, moved at most ``max_mark_move_bps`` from the previous mark.  While
    the session is closed the pushed oracle is ignored (the internal oracle runs) — the first push
    after the reopen pulls the oracle back to the external reference."""
    day = now // DAY_MS
    if day != st.day:
        st = msgspec.structs.replace(st, day=day, day_px=st.oracle or oracle_px)
    oracle = st.oracle
    if st.session_open:
        oracle = _clamp_day(st, oracle_px, defn.day_clamp_multiple)
    local = local_mark(book, last_px)
    inputs = [_clamp_day(st, p, defn.day_clamp_multiple) for p in mark_inputs if p > 0]
    if local is not None:
        inputs.append(local)
    mark = st.mark
    if inputs:
        mark = clamp_move(st.mark, median(inputs), defn.max_mark_move_bps)
    elif not mark:
        mark = oracle
    st = msgspec.structs.replace(st, oracle=oracle, push_ts=now, deployer_ts=now, stale=False)
    return msgspec.structs.replace(st, mark=_band(st, mark, defn))


def funding_due(st: PriceState, now: int) -> bool:
    return now >= st.next_funding_ts > 0


def interval_premium(st: PriceState, funding: FundingParams) -> Fraction:
    """The running interval's average premium (exact rational)."""
    total = st.prem_wsum if funding.average is PremiumAverage.TIME_WEIGHTED else st.prem_sum
    return average_premium(total, st.prem_n, funding.average)

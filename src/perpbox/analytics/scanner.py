"""Market scanner: every perp market of a Hyperliquid-compatible venue with the numbers a market
maker screens on — quoted spread, open interest and 24 h volume in USD, funding (per hour, 8 h-eq,
APR) and top-5 depth each side in USD — filtered and sorted.

One ``metaAndAssetCtxs`` per dex gives OI, volume and funding; one ``l2Book`` per market
(concurrent, bounded by a semaphore: the venue's IP budget is 1,200 weight/min and l2Book weighs 2)
gives the book. OI in USD uses the oracle price (what Hyperliquid's caps and funding use).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from perpbox.analytics.funding import apr, per_8h
from perpbox.venues.hyperliquid import AsyncHyperliquidInfo, L2Book, PerpMarket

DEPTH_LEVELS = 5


@dataclass(frozen=True)
class ScanRow:
    coin: str
    dex: str
    max_leverage: int
    mark_px: float
    oracle_px: float
    mid_px: float | None
    spread_bps: float | None
    oi_usd: float
    volume_24h_usd: float
    funding_1h: float         # fraction per hour (Hyperliquid pays hourly)
    funding_8h: float
    funding_apr: float
    bid_depth_usd: float      # top-5 levels
    ask_depth_usd: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


SORT_KEYS = ("oi", "volume", "spread", "funding", "abs_funding", "depth", "coin")


def row(market: PerpMarket, book: L2Book | None, levels: int = DEPTH_LEVELS) -> ScanRow:
    ctx = market.ctx
    return ScanRow(
        coin=market.coin, dex=market.dex, max_leverage=market.meta.max_leverage, mark_px=ctx.mark_px,
        oracle_px=ctx.oracle_px, mid_px=book.mid if book else ctx.mid_px,
        spread_bps=book.spread_bps if book else None,
        oi_usd=ctx.open_interest * ctx.oracle_px, volume_24h_usd=ctx.day_ntl_vlm,
        funding_1h=ctx.funding, funding_8h=per_8h(ctx.funding, 1.0), funding_apr=apr(ctx.funding, 1.0),
        bid_depth_usd=book.depth_usd("bid", levels) if book else 0.0,
        ask_depth_usd=book.depth_usd("ask", levels) if book else 0.0)


def filter_rows(rows: Iterable[ScanRow], min_oi_usd: float = 0.0, min_spread_bps: float | None = None,
                max_spread_bps: float | None = None, min_volume_usd: float = 0.0) -> list[ScanRow]:
    """Markets with OI ≥ ``min_oi_usd``, volume ≥ ``min_volume_usd`` and the spread within bounds
    (a market without a two-sided book is kept only when no spread bound is set)."""
    out = []
    for r in rows:
        if r.oi_usd < min_oi_usd or r.volume_24h_usd < min_volume_usd:
            continue
        if min_spread_bps is not None or max_spread_bps is not None:
            if r.spread_bps is None:
                continue
            if min_spread_bps is not None and r.spread_bps < min_spread_bps:
                continue
            if max_spread_bps is not None and r.spread_bps > max_spread_bps:
                continue
        out.append(r)
    return out


def sort_rows(rows: Iterable[ScanRow], key: str = "oi", descending: bool | None = None) -> list[ScanRow]:
    """Sort by one of :data:`SORT_KEYS`; numbers descend and ``coin`` ascends unless told otherwise.
    Markets without a spread sort last for ``spread``."""
    funcs = {
        "oi": lambda r: r.oi_usd, "volume": lambda r: r.volume_24h_usd,
        "spread": lambda r: r.spread_bps if r.spread_bps is not None else float("-inf"),
        "funding": lambda r: r.funding_1h, "abs_funding": lambda r: abs(r.funding_1h),
        "depth": lambda r: min(r.bid_depth_usd, r.ask_depth_usd), "coin": lambda r: r.coin,
    }
    if key not in funcs:
        raise ValueError(f"unknown sort key {key!r}; use one of {', '.join(SORT_KEYS)}")
    desc = (key != "coin") if descending is None else descending
    return sorted(rows, key=funcs[key], reverse=desc)


async def scan_async(info: AsyncHyperliquidInfo, dexes: Sequence[str] = ("",), concurrency: int = 8,
                     include_delisted: bool = False) -> list[ScanRow]:
    """Scan the given dexes (``""`` = the first dex; ``"*"`` = every dex listed by perpDexs)."""
    if "*" in dexes:
        all_dexes = await info.perp_dexs()
        pairs = list(enumerate(all_dexes))
    else:
        known = await info.perp_dexs() if any(dexes) else [""]
        pairs = [(known.index(d) if d in known else 0, d) for d in dexes]
    markets: list[PerpMarket] = []
    for idx, dex in pairs:
        markets.extend(m for m in await info.meta_and_asset_ctxs(dex, idx)
                       if include_delisted or not m.meta.is_delisted)
    sem = asyncio.Semaphore(max(1, concurrency))

    async def book(m: PerpMarket) -> L2Book | None:
        async with sem:
            return await info.l2_book(m.coin)

    books = await asyncio.gather(*(book(m) for m in markets))
    return [row(m, b) for m, b in zip(markets, books, strict=True)]


def scan(base_url: str, dexes: Sequence[str] = ("",), concurrency: int = 8, timeout: float = 10.0) -> list[ScanRow]:
    """Blocking wrapper: scan a venue by URL."""
    async def run() -> list[ScanRow]:
        async with AsyncHyperliquidInfo(base_url, timeout=timeout) as info:
            return await scan_async(info, dexes, concurrency)
    return asyncio.run(run())

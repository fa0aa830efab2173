"""Other venues through ccxt (REST) and ccxt.pro (streams): books, trades, tickers, funding with
its interval, open interest — for a coin named the way traders name it (``BTC``), mapped to each
venue's perp symbol through an explicit table (with the contract multiplier: ``1000PEPE``).

Nothing here speaks a venue's wire protocol: ccxt does. What this module adds is the mapping, the
interval resolution (the venue's live interval wins; then ``fetch_funding_intervals`` where ccxt
supports it — Binance's ``fundingInfo`` lists only *adjusted* symbols, so absence means the venue
default — then the table in :mod:`perpbox.venues.intervals`), and small typed results.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import ccxt
import ccxt.pro

from perpbox.venues.hyperliquid import ws_url
from perpbox.venues.intervals import DEFAULT_TABLE, IntervalTable, canonical_venue, parse_interval_hours

#: The settlement currency of each venue's main linear perps: symbol = f"{base}/{q}:{q}".
SETTLE: dict[str, str] = {
    "binanceusdm": "USDT", "bybit": "USDT", "okx": "USDT", "bitget": "USDT", "gate": "USDT",
    "hyperliquid": "USDC", "paradex": "USDC", "dydx": "USD",
}

#: Coins listed under another base on some venues: (venue, coin) -> (venue base, multiplier), where
#: one contract unit of the venue base is ``multiplier`` coins. Explicit, never a regex (a regex that
#: strips "1000" turned "2Z" into "Z" in a peer tool).
BASE_OVERRIDES: dict[tuple[str, str], tuple[str, float]] = {
    ("binanceusdm", "PEPE"): ("1000PEPE", 1000.0),
    ("bybit", "PEPE"): ("1000PEPE", 1000.0),
    ("binanceusdm", "SHIB"): ("1000SHIB", 1000.0),
    ("binanceusdm", "BONK"): ("1000BONK", 1000.0),
}

#: ccxt options that limit market loading to perps (faster, fewer requests).
MARKET_OPTIONS: dict[str, dict[str, Any]] = {
    "bybit": {"fetchMarkets": {"types": ["linear"]}},
    "okx": {"fetchMarkets": {"types": ["swap"]}},
    "hyperliquid": {"fetchMarkets": {"types": ["swap", "hip3"]}},
}


@dataclass(frozen=True)
class MarketRef:
    venue: str
    coin: str
    symbol: str               # ccxt unified symbol
    multiplier: float = 1.0   # coins per unit of the venue's base


def perp_ref(venue: str, coin: str) -> MarketRef:
    """The venue's linear perp for ``coin`` (a ccxt unified symbol is passed through)."""
    v = canonical_venue(venue)
    if "/" in coin:
        return MarketRef(v, coin.split("/")[0], coin)
    base, mult = BASE_OVERRIDES.get((v, coin.upper()), (coin.upper() if v != "hyperliquid" else coin, 1.0))
    q = SETTLE.get(v, "USDT")
    return MarketRef(v, coin, f"{base}/{q}:{q}", mult)


def make_exchange(venue: str, url: str | None = None, pro: bool = False, config: dict[str, Any] | None = None) -> Any:
    """A ccxt (or ccxt.pro) exchange for ``venue``; ``url`` points ccxt's hyperliquid class at any
    Hyperliquid-compatible server (e.g. ``perpbox serve``)."""
    v = canonical_venue(venue)
    module = ccxt.pro if pro else ccxt
    if not hasattr(module, v):
        raise ValueError(f"ccxt{'.pro' if pro else ''} has no exchange {v!r}")
    cfg: dict[str, Any] = {"enableRateLimit": True, "options": dict(MARKET_OPTIONS.get(v, {}))}
    cfg.update(config or {})
    ex = getattr(module, v)(cfg)
    if url:
        if v != "hyperliquid":
            raise ValueError("a custom URL is only supported for hyperliquid")
        ex.urls["api"] = {"public": url.rstrip("/"), "private": url.rstrip("/"), "ws": {"public": ws_url(url)}}
    return ex


# -- typed results -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BookSnapshot:
    venue: str
    coin: str
    symbol: str
    ts: int | None
    bids: list[tuple[float, float]]   # (price, size) best first, in the venue's units
    asks: list[tuple[float, float]]
    multiplier: float = 1.0

    @property
    def mid(self) -> float | None:
        """Mid per coin (venue price ÷ multiplier)."""
        if not self.bids or not self.asks:
            return None
        return (self.bids[0][0] + self.asks[0][0]) / 2.0 / self.multiplier

    @property
    def spread_bps(self) -> float | None:
        if not self.bids or not self.asks:
            return None
        mid = (self.bids[0][0] + self.asks[0][0]) / 2.0
        return (self.asks[0][0] - self.bids[0][0]) / mid * 1e4

    def depth_usd(self, side: str, levels: int = 5, contract_size: float = 1.0) -> float:
        lv = self.bids if side == "bid" else self.asks
        return sum(px * sz * contract_size for px, sz in lv[:levels])


@dataclass(frozen=True)
class TradePrint:
    venue: str
    coin: str
    ts: int
    px: float
    sz: float
    side: int                 # aggressor +1 buy, -1 sell, 0 unknown
    trade_id: str


@dataclass(frozen=True)
class Quote:
    venue: str
    coin: str
    symbol: str
    ts: int | None
    bid: float | None
    ask: float | None
    last: float | None
    mark: float | None
    index: float | None
    volume_quote_24h: float | None


@dataclass(frozen=True)
class FundingQuote:
    """The current/predicted rate per interval (positive ⇒ longs pay), with where the interval came from."""

    venue: str
    coin: str
    symbol: str
    rate: float
    interval_hours: float
    interval_source: str      # "live" | "symbol" | "venue"
    next_funding_ts: int | None
    mark: float | None
    index: float | None
    ts: int | None


@dataclass(frozen=True)
class OpenInterest:
    venue: str
    coin: str
    symbol: str
    base: float | None        # in the venue's base units
    usd: float | None
    ts: int | None


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


# -- REST --------------------------------------------------------------------------------------------

class CcxtVenue:
    """One venue through a ccxt exchange (constructed by :func:`make_exchange` unless given)."""

    def __init__(self, venue: str, exchange: Any | None = None, *, url: str | None = None,
                 intervals: IntervalTable = DEFAULT_TABLE) -> None:
        self.venue = canonical_venue(venue)
        self.exchange = exchange if exchange is not None else make_exchange(self.venue, url=url)
        self.intervals = intervals
        self._interval_cache: dict[str, str | None] | None = None

    def ref(self, coin: str) -> MarketRef:
        self.exchange.load_markets()
        ref = perp_ref(self.venue, coin)
        if ref.symbol not in self.exchange.markets:
            raise KeyError(f"{self.venue} lists no perp {ref.symbol} for {coin}")
        return ref

    def contract_size(self, ref: MarketRef) -> float:
        return float(self.exchange.market(ref.symbol).get("contractSize") or 1.0)

    def taker_fee(self, coin: str) -> float | None:
        """The venue's base-tier taker fee for the market (ccxt's market table)."""
        return _num(self.exchange.market(self.ref(coin).symbol).get("taker"))

    def order_book(self, coin: str, limit: int | None = 20) -> BookSnapshot:
        ref = self.ref(coin)
        ob = self.exchange.fetch_order_book(ref.symbol, limit)
        return _book(ref, ob)

    def trades(self, coin: str, limit: int | None = 100) -> list[TradePrint]:
        ref = self.ref(coin)
        out = []
        for t in self.exchange.fetch_trades(ref.symbol, limit=limit):
            side = {"buy": 1, "sell": -1}.get(t.get("side") or "", 0)
            out.append(TradePrint(self.venue, ref.coin, int(t["timestamp"] or 0), float(t["price"]),
                                  float(t["amount"]), side, str(t.get("id") or "")))
        return out

    def ticker(self, coin: str) -> Quote:
        ref = self.ref(coin)
        t = self.exchange.fetch_ticker(ref.symbol)
        return Quote(self.venue, ref.coin, ref.symbol, t.get("timestamp"), _num(t.get("bid")), _num(t.get("ask")),
                     _num(t.get("last")), _num(t.get("markPrice")), _num(t.get("indexPrice")),
                     _num(t.get("quoteVolume")))

    def _listed_intervals(self) -> dict[str, str | None]:
        if self._interval_cache is None:
            rates = self.exchange.fetch_funding_intervals()
            self._interval_cache = {sym: r.get("interval") for sym, r in rates.items()}
        return self._interval_cache

    def funding(self, coin: str) -> FundingQuote:
        ref = self.ref(coin)
        ex = self.exchange
        if ex.has.get("fetchFundingRate"):
            fr = ex.fetch_funding_rate(ref.symbol)
        else:
            fr = ex.fetch_funding_rates([ref.symbol])[ref.symbol]
        live = fr.get("interval")
        if live is None and ex.has.get("fetchFundingIntervals") is True:
            live = self._listed_intervals().get(ref.symbol)
        iv = self.intervals.resolve(self.venue, ref.symbol, live)
        return FundingQuote(self.venue, ref.coin, ref.symbol, float(fr["fundingRate"]), iv.hours, iv.source,
                            fr.get("fundingTimestamp") or fr.get("nextFundingTimestamp"), _num(fr.get("markPrice")),
                            _num(fr.get("indexPrice")), fr.get("timestamp"))

    def open_interest(self, coin: str) -> OpenInterest:
        ref = self.ref(coin)
        oi = self.exchange.fetch_open_interest(ref.symbol)
        base = _num(oi.get("openInterestAmount"))
        usd = _num(oi.get("openInterestValue"))
        if base is not None:
            base *= self.contract_size(ref)
        if usd is None and base is not None:
            t = self.exchange.fetch_ticker(ref.symbol)
            px = t.get("markPrice") or t.get("last")
            usd = base * float(px) if px else None
        return OpenInterest(self.venue, ref.coin, ref.symbol, base, usd, oi.get("timestamp"))


def _book(ref: MarketRef, ob: dict[str, Any]) -> BookSnapshot:
    return BookSnapshot(ref.venue, ref.coin, ref.symbol, ob.get("timestamp"),
                        [(float(p), float(s)) for p, s, *_ in ob["bids"]],
                        [(float(p), float(s)) for p, s, *_ in ob["asks"]], ref.multiplier)


# -- streams (ccxt.pro) ------------------------------------------------------------------------------

async def watch_books(venue: str, coin: str, exchange: Any | None = None, *, url: str | None = None,
                      limit: int | None = None, poll_interval: float = 1.0) -> AsyncIterator[BookSnapshot]:
    """Book snapshots from ccxt.pro ``watch_order_book`` (REST polling where a venue has no stream).

    The caller closes the exchange it passed; one made here is closed when the iterator ends."""
    ex = exchange if exchange is not None else make_exchange(venue, url=url, pro=True)
    try:
        await ex.load_markets()
        ref = perp_ref(venue, coin)
        if ref.symbol not in ex.markets:
            raise KeyError(f"{canonical_venue(venue)} lists no perp {ref.symbol} for {coin}")
        streaming = bool(ex.has.get("watchOrderBook"))
        while True:
            if streaming:
                ob = await ex.watch_order_book(ref.symbol, limit)
            else:
                ob = await ex.fetch_order_book(ref.symbol, limit)
                await asyncio.sleep(poll_interval)
            if ob.get("timestamp") is None:
                ob = {**ob, "timestamp": int(time.time() * 1000)}
            yield _book(ref, ob)
    finally:
        if exchange is None:
            await ex.close()


def interval_of(rate: dict[str, Any]) -> float | None:
    """ccxt funding structure → interval hours (None if the venue did not report it)."""
    return parse_interval_hours(rate.get("interval"))

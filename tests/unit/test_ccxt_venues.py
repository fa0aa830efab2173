"""ccxt venues offline: the real ccxt classes parse venue-shaped responses served by a fake transport.

``exchange.fetch`` (ccxt's single HTTP entry point) is replaced by a router keyed on the URL path,
answering with payloads shaped like the venues' documented responses (the same samples ccxt's own
parsers quote). So market loading, symbol mapping, parsing and the interval resolution are ccxt's
and ours, and nothing touches the network.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlparse

import ccxt
import ccxt.pro
import pytest

from perpbox.venues.ccxt_venues import CcxtVenue, make_exchange, perp_ref, watch_books
from perpbox.venues.intervals import IntervalTable

T0 = 1723100000000


class Router:
    def __init__(self, routes: dict[str, Any]) -> None:
        self.routes = routes
        self.requests: list[str] = []

    def __call__(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        self.requests.append(url)
        parsed = urlparse(url)
        route = self.routes[parsed.path]
        if callable(route):
            return route({k: v[0] for k, v in parse_qs(parsed.query).items()})
        return route


# -- Binance USDⓈ-M ------------------------------------------------------------------------------------

def _bn_symbol(symbol: str, base: str) -> dict[str, Any]:
    return {"symbol": symbol, "pair": symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "baseAsset": base, "quoteAsset": "USDT",
            "marginAsset": "USDT", "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
            "quotePrecision": 8, "underlyingType": "COIN", "triggerProtect": "0.0500",
            "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.1", "maxPrice": "809484", "tickSize": "0.10"},
                        {"filterType": "LOT_SIZE", "stepSize": "0.001", "maxQty": "1000", "minQty": "0.001"},
                        {"filterType": "MIN_NOTIONAL", "notional": "100"}],
            "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"]}


def _premium(q: dict[str, str]) -> dict[str, Any]:
    rates = {"BTCUSDT": "0.00010000", "BLZUSDT": "-0.00040000", "1000PEPEUSDT": "0.00020000"}
    return {"symbol": q["symbol"], "markPrice": "58001.20000000", "indexPrice": "57990.10000000",
            "estimatedSettlePrice": "57995.0", "lastFundingRate": rates[q["symbol"]], "interestRate": "0.00010000",
            "nextFundingTime": T0 + 4_000_000, "time": T0}


def _binance_router() -> Router:
    return Router({
        "/fapi/v1/exchangeInfo": {"timezone": "UTC", "serverTime": T0, "assets": [], "symbols": [
            _bn_symbol("BTCUSDT", "BTC"), _bn_symbol("BLZUSDT", "BLZ"), _bn_symbol("1000PEPEUSDT", "1000PEPE")]},
        "/fapi/v1/depth": lambda q: {"lastUpdateId": 1027024, "E": T0, "T": T0 - 5,
                                     "bids": [["58000.00", "1.500"], ["57999.90", "2.000"]],
                                     "asks": [["58000.10", "0.800"], ["58000.50", "3.000"]]}
        if q["symbol"] == "BTCUSDT" else {"lastUpdateId": 1, "E": T0, "T": T0,
                                          "bids": [["0.0098000", "1000"]], "asks": [["0.0098020", "500"]]},
        "/fapi/v1/aggTrades": [{"a": 26129, "p": "58000.10", "q": "0.010", "f": 100, "l": 105, "T": T0 - 10,
                                "m": False},
                               {"a": 26130, "p": "58000.00", "q": "0.250", "f": 106, "l": 106, "T": T0 - 3, "m": True}],
        "/fapi/v1/ticker/24hr": {"symbol": "BTCUSDT", "priceChange": "120.0", "priceChangePercent": "0.207",
                                 "weightedAvgPrice": "57800.0", "lastPrice": "58000.10", "lastQty": "0.010",
                                 "openPrice": "57880.10", "highPrice": "58500.0", "lowPrice": "57100.0",
                                 "volume": "150000.000", "quoteVolume": "8670000000.00", "openTime": T0 - 86_400_000,
                                 "closeTime": T0, "firstId": 1, "lastId": 2, "count": 2},
        "/fapi/v1/premiumIndex": _premium,
        "/fapi/v1/fundingInfo": [{"symbol": "BLZUSDT", "adjustedFundingRateCap": "0.03000000",
                                  "adjustedFundingRateFloor": "-0.03000000", "fundingIntervalHours": 4,
                                  "disclaimer": False}],
        "/fapi/v1/openInterest": {"openInterest": "80000.500", "symbol": "BTCUSDT", "time": T0},
    })


@pytest.fixture
def binance() -> tuple[CcxtVenue, Router]:
    router = _binance_router()
    ex = ccxt.binanceusdm()
    ex.fetch = router
    return CcxtVenue("binance", ex), router


def test_symbol_map_is_explicit() -> None:
    assert perp_ref("binance", "BTC").symbol == "BTC/USDT:USDT"
    assert perp_ref("binanceusdm", "PEPE").symbol == "1000PEPE/USDT:USDT"
    assert perp_ref("bybit", "PEPE").multiplier == 1000
    assert perp_ref("okx", "2Z").symbol == "2Z/USDT:USDT"       # no regex stripping of digits
    assert perp_ref("hyperliquid", "BTC").symbol == "BTC/USDC:USDC"
    assert perp_ref("bybit", "ETH/USDC:USDC").symbol == "ETH/USDC:USDC"


def test_binance_book_trades_ticker_oi(binance: tuple[CcxtVenue, Router]) -> None:
    v, _ = binance
    book = v.order_book("BTC", 5)
    assert book.bids == [(58000.0, 1.5), (57999.9, 2.0)] and book.asks[0] == (58000.1, 0.8)
    assert book.mid == pytest.approx(58000.05)
    assert book.spread_bps == pytest.approx(0.1 / 58000.05 * 1e4)
    assert book.depth_usd("bid") == pytest.approx(58000.0 * 1.5 + 57999.9 * 2.0)
    pepe = v.order_book("PEPE")
    assert pepe.symbol == "1000PEPE/USDT:USDT" and pepe.mid == pytest.approx(0.000009801)  # per PEPE, not per 1000
    trades = v.trades("BTC")
    assert [(t.px, t.sz, t.side, t.trade_id) for t in trades] == [(58000.1, 0.01, 1, "26129"),
                                                                  (58000.0, 0.25, -1, "26130")]
    q = v.ticker("BTC")
    assert (q.last, q.volume_quote_24h) == (58000.1, 8670000000.0)
    oi = v.open_interest("BTC")
    assert oi.base == 80000.5 and oi.usd == pytest.approx(80000.5 * 58000.1)
    assert v.taker_fee("BTC") == 0.0005


def test_binance_funding_interval_live_from_funding_info_else_venue_default(binance: tuple[CcxtVenue, Router]) -> None:
    v, router = binance
    btc = v.funding("BTC")
    assert (btc.rate, btc.interval_hours, btc.interval_source) == (0.0001, 8.0, "venue")  # not an adjusted symbol
    assert (btc.mark, btc.index, btc.next_funding_ts) == (58001.2, 57990.1, T0 + 4_000_000)
    blz = v.funding("BLZ")
    assert (blz.rate, blz.interval_hours, blz.interval_source) == (-0.0004, 4.0, "live")
    v.funding("PEPE")
    # fundingInfo was fetched once and cached
    assert sum("/fundingInfo" in u for u in router.requests) == 1


def test_live_interval_beats_the_table(binance: tuple[CcxtVenue, Router]) -> None:
    _, router = binance
    table = IntervalTable()
    table.set_symbol("binanceusdm", "BLZ/USDT:USDT", 8)
    table.set_symbol("binanceusdm", "BTC/USDT:USDT", 1)
    ex = ccxt.binanceusdm()
    ex.fetch = router
    v = CcxtVenue("binanceusdm", ex, intervals=table)
    assert v.funding("BLZ").interval_hours == 4.0                            # live wins
    assert (v.funding("BTC").interval_hours, v.funding("BTC").interval_source) == (1.0, "symbol")


# -- Bybit ---------------------------------------------------------------------------------------------

def _by_inst(symbol: str, base: str, interval_min: int) -> dict[str, Any]:
    return {"symbol": symbol, "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": base,
            "quoteCoin": "USDT", "launchTime": "1585526400000", "deliveryTime": "0", "deliveryFeeRate": "",
            "priceScale": "2", "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": "0.10", "maxPrice": "199999.80", "tickSize": "0.10"},
            "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
                              "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "500", "minNotionalValue": "5"},
            "unifiedMarginTrade": True, "fundingInterval": interval_min, "settleCoin": "USDT"}


def _by_ticker(q: dict[str, str]) -> dict[str, Any]:
    rate = {"BTCUSDT": "0.00005", "ZROUSDT": "0.0003"}[q["symbol"]]
    return {"retCode": 0, "retMsg": "OK", "time": T0, "result": {"category": "linear", "list": [{
        "symbol": q["symbol"], "lastPrice": "58010.50", "indexPrice": "57995.68", "markPrice": "58005.00",
        "prevPrice24h": "57000.0", "price24hPcnt": "0.0177", "highPrice24h": "58500", "lowPrice24h": "56900",
        "prevPrice1h": "58000", "openInterest": "48069.549", "openInterestValue": "2788274226.56",
        "turnover24h": "4686694853.047006", "volume24h": "81730.252", "fundingRate": rate,
        "nextFundingTime": str(T0 + 3_600_000), "bid1Price": "58010.0", "bid1Size": "1.2",
        "ask1Price": "58010.5", "ask1Size": "0.4"}]}}


def _bybit_router() -> Router:
    return Router({
        "/v5/market/instruments-info": {"retCode": 0, "retMsg": "OK", "time": T0, "retExtInfo": {},
                                        "result": {"category": "linear", "nextPageCursor": "", "list": [
                                            _by_inst("BTCUSDT", "BTC", 480), _by_inst("ZROUSDT", "ZRO", 240)]}},
        "/v5/market/tickers": _by_ticker,
        "/v5/market/open-interest": {"retCode": 0, "retMsg": "OK", "time": T0, "result": {
            "symbol": "BTCUSDT", "category": "linear", "nextPageCursor": "",
            "list": [{"openInterest": "48069.549", "timestamp": str(T0)}]}},
        "/v5/market/orderbook": {"retCode": 0, "retMsg": "OK", "time": T0, "result": {
            "s": "BTCUSDT", "b": [["58010.0", "1.2"], ["58009.5", "3.0"]], "a": [["58010.5", "0.4"]],
            "ts": T0, "u": 18521288, "seq": 7961638724}},
    })


@pytest.fixture
def bybit() -> CcxtVenue:
    ex = ccxt.bybit({"options": {"fetchMarkets": {"types": ["linear"]}}})
    ex.fetch = _bybit_router()
    return CcxtVenue("bybit", ex)


def test_bybit_funding_interval_from_instrument_info(bybit: CcxtVenue) -> None:
    btc = bybit.funding("BTC")
    assert (btc.rate, btc.interval_hours, btc.interval_source) == (0.00005, 8.0, "live")
    zro = bybit.funding("ZRO")
    assert (zro.rate, zro.interval_hours, zro.interval_source) == (0.0003, 4.0, "live")
    q = bybit.ticker("BTC")
    assert (q.bid, q.ask, q.mark) == (58010.0, 58010.5, 58005.0)
    oi = bybit.open_interest("BTC")
    assert oi.base == 48069.549 and oi.usd == pytest.approx(48069.549 * 58005.0)


# -- OKX -----------------------------------------------------------------------------------------------

@pytest.fixture
def okx() -> CcxtVenue:
    inst = {"instType": "SWAP", "instId": "BTC-USDT-SWAP", "uly": "BTC-USDT", "instFamily": "BTC-USDT",
            "settleCcy": "USDT", "ctValCcy": "BTC", "ctVal": "0.01", "ctMult": "1", "ctType": "linear",
            "lotSz": "0.01", "minSz": "0.01", "tickSz": "0.1", "state": "live", "listTime": "1611916828000",
            "expTime": "", "lever": "100", "baseCcy": "", "quoteCcy": "", "alias": "", "optType": "", "stk": "",
            "category": "1", "maxLmtSz": "100000", "maxMktSz": "5000", "ruleType": "normal"}
    router = Router({
        "/api/v5/public/instruments": {"code": "0", "msg": "", "data": [inst]},
        "/api/v5/public/funding-rate": {"code": "0", "msg": "", "data": [{
            "fundingRate": "0.00027815", "fundingTime": str(T0 + 1_000_000), "instId": "BTC-USDT-SWAP",
            "instType": "SWAP", "nextFundingRate": "", "nextFundingTime": str(T0 + 1_000_000 + 28_800_000),
            "method": "current_period", "premium": "0.0001", "ts": str(T0)}]},
        "/api/v5/public/open-interest": {"code": "0", "msg": "", "data": [{
            "instId": "BTC-USDT-SWAP", "instType": "SWAP", "oi": "2500000", "oiCcy": "25000",
            "oiUsd": "1450000000", "ts": str(T0)}]},
    })
    ex = ccxt.okx({"options": {"fetchMarkets": {"types": ["swap"]}}})
    ex.fetch = router
    return CcxtVenue("okx", ex)


def test_okx_interval_from_funding_times_and_oi_in_contracts(okx: CcxtVenue) -> None:
    f = okx.funding("BTC")
    assert (f.rate, f.interval_hours, f.interval_source) == (0.00027815, 8.0, "live")
    oi = okx.open_interest("BTC")
    assert oi.base == pytest.approx(25000.0)   # 2.5 M contracts × 0.01 BTC
    assert oi.usd == 1450000000.0


# -- ccxt.pro path (REST polling fallback exercised with a fake async transport) ----------------------

def test_watch_books_polls_when_no_stream() -> None:
    router = Router({
        "/fapi/v1/exchangeInfo": {"timezone": "UTC", "serverTime": T0, "assets": [],
                                  "symbols": [_bn_symbol("BTCUSDT", "BTC")]},
        "/fapi/v1/depth": {"lastUpdateId": 1, "E": T0, "T": T0, "bids": [["100.0", "1"]], "asks": [["100.2", "1"]]},
    })

    async def run() -> list[float | None]:
        ex = ccxt.pro.binanceusdm()

        async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            return router(url, method, headers, body)

        ex.fetch = fetch
        ex.has["watchOrderBook"] = False
        out = []
        try:
            async for b in watch_books("binance", "BTC", ex, poll_interval=0):
                out.append(b.mid)
                if len(out) == 3:
                    break
        finally:
            await ex.close()
        return out

    assert asyncio.run(run()) == [pytest.approx(100.1)] * 3


def test_make_exchange_points_hyperliquid_at_a_url() -> None:
    ex = make_exchange("hyperliquid", url="http://127.0.0.1:9999/")
    assert ex.urls["api"]["public"] == "http://127.0.0.1:9999"
    assert ex.urls["api"]["ws"]["public"] == "ws://127.0.0.1:9999/ws"
    with pytest.raises(ValueError):
        make_exchange("bybit", url="http://127.0.0.1:9999")
    with pytest.raises(ValueError):
        make_exchange("nosuchvenue")


# -- the funding command over ccxt venues (offline) -----------------------------------------------------

def test_funding_command_reproduces_the_issue_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """Binance 1 bp per 8 h vs Bybit 0.5 bp per 8 h: long Bybit, short Binance, 547.5 bps a year."""
    import json

    from typer.testing import CliRunner

    from perpbox.cli import app
    from perpbox.cli import venues as venues_cli
    from perpbox.venues import ccxt_venues

    def fake_make(venue: str, url: str | None = None, pro: bool = False, config: Any = None) -> Any:
        ex = {"binanceusdm": ccxt.binanceusdm, "bybit": lambda: ccxt.bybit(
            {"options": {"fetchMarkets": {"types": ["linear"]}}})}[venue]()
        ex.fetch = {"binanceusdm": _binance_router, "bybit": _bybit_router}[venue]()
        return ex

    monkeypatch.setattr(ccxt_venues, "make_exchange", fake_make)
    res = CliRunner().invoke(app, ["funding", "--coin", "BTC", "--venues", "binance,bybit,nosuchvenue",
                                   "--hold-hours", "720", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert list(out["errors"]) == ["nosuchvenue"]          # one dead venue does not hide the others
    bn, by = out["venues"]
    assert (bn["venue"], bn["rate"], bn["interval_hours"], bn["taker_fee"]) == ("binanceusdm", 0.0001, 8.0, 0.0005)
    assert (by["venue"], by["rate"], by["interval_hours"], by["taker_fee"]) == ("bybit", 0.00005, 8.0, 0.0006)
    [pair] = out["pairs"]
    assert (pair["long"], pair["short"]) == ("bybit", "binanceusdm")
    assert pair["carry_apr"] * 1e4 == pytest.approx(547.5)
    hs_bn, hs_by = 0.05 / 58000.05, 0.25 / 58010.25
    assert bn["half_spread"] == pytest.approx(hs_bn) and by["half_spread"] == pytest.approx(hs_by)
    cost = 2 * (0.0005 + 0.0006) + 2 * (hs_bn + hs_by)
    assert pair["round_trip_cost"] == pytest.approx(cost)
    assert pair["break_even_hours"] == pytest.approx(cost / (0.00005 / 8))  # ≈ 3,535 h: the carry is thin
    assert pair["net_apr"] == pytest.approx((0.00005 / 8 * 720 - cost) / 720 * 8760)
    assert venues_cli.deviations({"a": 100.0, "b": 100.1, "c": 99.9}) == pytest.approx(
        {"a": 0.0, "b": 10.0, "c": -10.0})

"""The bots' ccxt adapter offline: every listed venue's real ccxt class (constructed, never connected),
the capabilities the adapter relies on and the metadata that covers each gap; the mapping from ccxt's
unified structures (as ccxt documents them) to our dataclasses with exact Decimals; refusals and
network errors as states; credentials never in a repr, a log line or an exception text.

Where a call would reach the network the exchange's method is replaced on the instance (a stub), or
ccxt's single HTTP entry point ``fetch`` answers a venue-shaped payload, so ccxt's own request
building and parsing run.  Expected values are written by hand.
"""

from __future__ import annotations

import asyncio
import logging
import tomllib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import ccxt
import ccxt.async_support as ca
import pytest

from perpbox.bots.accounts import AccountsError, open_venue, parse_accounts
from perpbox.bots.ccxt_venue import (
    CcxtVenue,
    NotListed,
    VenueReadError,
    VenueUnsupported,
    dec,
    info_path,
    interval_hours,
    make_exchange,
    override_urls,
    venue_client_id,
)
from perpbox.bots.venue import CANCELED, FILLED, OPEN, REJECTED, UNKNOWN, OrderRequest
from perpbox.bots.venue_meta import CORE_COINS, VenueMetaError, load_venues, parse_venues, venue_meta

D = Decimal
ROOT = Path(__file__).resolve().parents[2]
VENUES = ("lighter", "backpack", "paradex", "extended", "grvt", "aster", "apex", "dydx", "binanceusdm", "bybit",
          "okx", "hyperliquid")
CID = "0x" + "ab" * 16
T0 = 1_796_000_000_000


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def market(symbol: str, mid: str, *, amount: float, price: float, min_cost: float | None = 5.0,
           contract_size: float = 1.0, leverage: float | None = 20, info: dict[str, Any] | None = None) -> dict:
    base, rest = symbol.split("/")
    quote, settle = rest.split(":")
    return {"id": mid, "symbol": symbol, "base": base, "quote": quote, "settle": settle, "baseId": base,
            "quoteId": quote, "settleId": settle, "type": "swap", "spot": False, "margin": False, "swap": True,
            "future": False, "option": False, "active": True, "contract": True, "linear": True, "inverse": False,
            "contractSize": contract_size, "precision": {"amount": amount, "price": price},
            "limits": {"amount": {"min": None, "max": None}, "price": {"min": None, "max": None},
                       "cost": {"min": min_cost, "max": None}, "leverage": {"min": None, "max": leverage}},
            "info": info or {}}


def stub(ccxt_id: str, markets: list[dict], **methods: Callable[..., Any]) -> Any:
    """The real ccxt class with hand-made markets and the network methods replaced."""
    ex = getattr(ca, ccxt_id)({"apiKey": "key-000000", "secret": "secret-000000"})
    ex.set_markets(markets)

    async def load_markets(reload: bool = False, params: Any = None) -> Any:
        return ex.markets

    ex.load_markets = load_markets
    for name, fn in methods.items():
        setattr(ex, name, fn)
    return ex


def venue(ex: Any, **kw: Any) -> CcxtVenue:
    async def no_sleep(_: float) -> None:
        return None

    return CcxtVenue(ex, venue_meta(ex.id), sleep=no_sleep, **kw)


BN_BTC = market("BTC/USDT:USDT", "BTCUSDT", amount=0.001, price=0.1, min_cost=100.0,
                info={"orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"]})
BN_PEPE = market("1000PEPE/USDT:USDT", "1000PEPEUSDT", amount=1.0, price=0.0000001,
                 info={"orderTypes": ["LIMIT", "MARKET"]})
OKX_BTC = market("BTC/USDT:USDT", "BTC-USDT-SWAP", amount=0.01, price=0.1, contract_size=0.01, min_cost=None)
HL_ETH = market("ETH/USDC:USDC", "1", amount=0.0001, price=0.1, min_cost=10.0, leverage=25,
                info={"name": "ETH", "szDecimals": 4, "markPx": "3500.5", "funding": "0.0000125"})
HL_PEPE = market("KPEPE/USDC:USDC", "7", amount=1.0, price=0.000001, min_cost=10.0,
                 info={"name": "kPEPE", "szDecimals": 0, "markPx": "0.012345"})


# -- the ccxt classes and the metadata ----------------------------------------------------------------

@pytest.mark.parametrize("ccxt_id", VENUES)
def test_every_venue_class_loads_offline_and_has_what_the_adapter_relies_on(ccxt_id: str) -> None:
    meta = venue_meta(ccxt_id)
    ex = make_exchange(meta, {})
    has = ex.has
    for capability in ("fetchMarkets", "fetchOrderBook", "createOrder", "cancelOrder", "fetchBalance",
                       "fetchPositions"):
        assert has.get(capability), capability
    # an order is read back by fetchOrder, or found in the open and closed lists
    assert has.get("fetchOrder") or (has.get("fetchOpenOrders") and has.get("fetchClosedOrders"))
    # fills: the unified call, or (dYdX) ccxt's own indexer endpoint
    assert has.get("fetchMyTrades") or (ccxt_id == "dydx" and hasattr(ex, "indexer_get_fills"))
    # a funding rate: current, or the last settled one; and the metadata names what ccxt lacks
    assert has.get("fetchFundingRate") or has.get("fetchFundingRates") or has.get("fetchFundingRateHistory")
    if not (has.get("fetchFundingRate") or has.get("fetchFundingRates")):
        assert "funding" in meta.sdk, f"{ccxt_id}: ccxt has no current rate, the metadata must say so"
    if not has.get("fetchFundingHistory"):
        assert "funding_payments" in meta.sdk
    if not has.get("fetchMyTrades"):
        assert "fills" in meta.sdk
    # the metadata's options reach the exchange (ccxt deep-merges them over its own)
    for key, value in meta.ccxt_options.items():
        if not isinstance(value, dict) and not hasattr(value, "items"):
            assert ex.options[key] == value
    # every core coin has an alias in the venue's settle currency
    for coin in CORE_COINS:
        assert meta.aliases[coin].endswith(":" + meta.settle)
    # post-only: the params make ccxt's class treat the order as post-only, or spell the venue's own tif
    if "postOnly" in meta.post_only:
        assert ex.is_post_only(False, None, dict(meta.post_only)) is True
    assert ex.precisionMode == ccxt.TICK_SIZE  # the adapter reads precision as a step


def test_the_metadata_covers_exactly_the_listed_venues_with_sourced_defaults() -> None:
    venues = load_venues()
    assert set(venues) == set(VENUES)
    hours = {k: v.funding_interval_h for k, v in venues.items()}
    assert hours["lighter"] == 1 and hours["hyperliquid"] == 1 and hours["dydx"] == 1
    assert hours["grvt"] == hours["backpack"] == hours["paradex"] == hours["binanceusdm"] == 8
    assert venues["aster"].funding_per_symbol and venues["binanceusdm"].funding_per_symbol
    assert venues["lighter"].rate_period_h == 8  # funding-rates quotes 8 h; Lighter settles hourly
    assert venues["hyperliquid"].min_notional == 10 and not venues["hyperliquid"].reduce_only_exempt
    assert venues["binanceusdm"].min_notional == 5 and venues["binanceusdm"].reduce_only_exempt
    assert venue(stub("binanceusdm", [BN_BTC])).reduce_only_exempt
    assert venues["aster"].tif_params("alo") == {"timeInForce": "GTX"}
    assert venues["apex"].tif_params("ioc") == {"timeInForce": "IMMEDIATE_OR_CANCEL"}
    assert venues["lighter"].tif_params("alo") == {"postOnly": True}
    assert venues["okx"].amount_in_contracts and venues["okx"].client_id == "hex32"
    assert venues["dydx"].cancel_by_client_id
    assert venues["extended"].expiry is not None and venues["extended"].expiry.days == 28
    assert venues["grvt"].ccxt_options["expirationSeconds"] == 30 * 86400
    assert venues["binanceusdm"].aliases["kPEPE"] == "1000PEPE/USDT:USDT"
    assert venues["lighter"].aliases["EUR"] == "EURUSD/USDC:USDC"
    for ccxt_id in ("hyperliquid", "lighter", "extended", "aster"):
        assert venues[ccxt_id].ccxt_options["builderFee"] is False
    with pytest.raises(ValueError, match="alo, ioc or gtc"):
        venues["okx"].tif_params("fok")


def test_the_toml_ships_as_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "bots/data/*.toml" in pyproject["tool"]["setuptools"]["package-data"]["perpbox"]
    assert (ROOT / "src/perpbox/bots/data/venues.toml").is_file()


GOOD = ('[x]\nname="X"\nsettle="USDT"\nquote="USDT"\nfunding_interval_h=8\npost_only={}\nioc={}\ngtc={}\n'
        'reduce_only={}\nclient_id="as_is"\n[x.aliases]\nBTC="B/USDT:USDT"\nETH="E/USDT:USDT"\n'
        'SOL="S/USDT:USDT"\nHYPE="H/USDT:USDT"\n')


@pytest.mark.parametrize(("text", "error"), [
    (GOOD.replace("gtc={}", "gtc={}\npostonly={}"), "unknown key 'postonly'"),
    (GOOD.replace('ETH="E/USDT:USDT"\n', ""), "aliases: no ETH"),
    (GOOD.replace("funding_interval_h=8", "funding_interval_h=0"), "funding_interval_h"),
    (GOOD.replace('client_id="as_is"', 'client_id="uuid"'), "client_id"),
    (GOOD.replace('SOL="S/USDT:USDT"', 'SOL="SOL"'), "a ccxt perp symbol"),
    (GOOD.replace('funding_interval_h=8', 'funding_interval_h=8\ninfo={ trade_px = "p" }'), "unknown field"),
    ('[x]\nname="X"\nsettle="USDT"\n', "missing 'quote'"),
])
def test_a_bad_metadata_file_is_refused_with_the_venue_and_key(text: str, error: str) -> None:
    with pytest.raises(VenueMetaError, match=error):
        parse_venues(text)
    assert set(parse_venues(GOOD)) == {"x"}


def test_ccxt_builds_the_venue_spelling_from_the_metadata_params() -> None:
    """ccxt's own request builders, offline: what the metadata's params become on the wire."""
    aster = stub("aster", [market("BTC/USDT:USDT", "BTCUSDT", amount=0.001, price=0.1)])
    aster.options["builderFee"] = False
    meta = venue_meta("aster")
    req = aster.create_order_request("BTC/USDT:USDT", "limit", "buy", "0.5", "100.1", meta.tif_params("alo"))
    assert req["timeInForce"] == "GTX" and "postOnly" not in req and "builder" not in req
    leaky = aster.create_order_request("BTC/USDT:USDT", "limit", "buy", "0.5", "100.1", {"postOnly": True})
    assert leaky.get("postOnly") is True  # why the metadata spells GTX for aster
    okx = stub("okx", [OKX_BTC])
    req = okx.create_order_request("BTC/USDT:USDT", "limit", "buy", "50", "100.1",
                                   {**venue_meta("okx").tif_params("alo"), "clientOrderId": "ab" * 16})
    assert (req["ordType"], req["sz"], req["clOrdId"]) == ("post_only", "50", "ab" * 16)
    bybit = stub("bybit", [market("BTC/USDT:USDT", "BTCUSDT", amount=0.001, price=0.1)])
    req = bybit.create_order_request("BTC/USDT:USDT", "limit", "sell", "0.5", "100.1",
                                     {**venue_meta("bybit").tif_params("ioc"), "reduceOnly": True,
                                      "clientOrderId": CID})
    assert (req["timeInForce"], req["reduceOnly"], req["orderLinkId"]) == ("IOC", True, CID)
    for ex in (aster, okx, bybit):
        run(ex.close())


# -- small pieces -------------------------------------------------------------------------------------

def test_numbers_are_read_exactly() -> None:
    assert dec(0.1) == D("0.1") and dec("0.00010") == D("0.00010") and dec(3500) == 3500
    assert dec(1.25e-05) == D("0.0000125") and dec(None) is None and dec("") is None
    assert dec(float("nan")) is None and dec(True) is None
    with pytest.raises(ValueError):
        dec("abc")
    assert info_path({"a": {"b": [{"c": "1.5"}]}}, "a.b.0.c") == "1.5"
    assert info_path({"a": 1}, "a.b") is None and info_path({"a": 1}, None) is None
    assert interval_hours("8h") == 8 and interval_hours("30m") == D("0.5") and interval_hours("1d") == 24
    assert interval_hours(4) == 4 and interval_hours(None) is None and interval_hours("soon") is None


def test_client_ids_are_written_the_venues_way_and_repeat_for_a_retry() -> None:
    assert venue_client_id(CID, "as_is") == CID and venue_client_id(CID, "hex128") == CID
    assert venue_client_id(CID, "hex32") == "ab" * 16
    other = venue_client_id("maker-7", "hex128")
    assert isinstance(other, str) and len(other) == 34 and other.startswith("0x")
    small = venue_client_id(CID, "uint31")
    assert isinstance(small, int) and 0 < small < 2 ** 31 and small == venue_client_id(CID, "uint31")
    assert venue_client_id(CID, "uint48") != venue_client_id("0x" + "ac" * 16, "uint48")


def test_url_override_replaces_scheme_and_host_and_keeps_paths() -> None:
    api = {"public": "https://api.{hostname}", "v1": "https://api.prod.{hostname}/v1/", "n": 3}
    assert override_urls(api, "http://127.0.0.1:9000") == {"public": "http://127.0.0.1:9000",
                                                          "v1": "http://127.0.0.1:9000/v1", "n": 3}
    with pytest.raises(ValueError):
        override_urls(api, "localhost")


# -- markets, books, symbols --------------------------------------------------------------------------

def test_markets_map_our_names_onto_the_venue_with_its_steps_and_minimums() -> None:
    bn = venue(stub("binanceusdm", [BN_BTC, BN_PEPE]))
    markets = run(bn.markets())
    assert set(markets) == {"BTC", "kPEPE"}  # the alias names 1000PEPE ours; the unit is the same
    btc = markets["BTC"]
    assert (btc.tick, btc.lot, btc.min_notional, btc.sz_decimals, btc.max_leverage) == (D("0.1"), D("0.001"), 100,
                                                                                         3, 20)
    assert btc.funding_interval_h == 8  # no live or per-symbol interval: the venue's default
    assert run(bn.symbol_of("kPEPE")) == "1000PEPE/USDT:USDT" and run(bn.symbol_of("BTC/USDT:USDT"))
    with pytest.raises(NotListed, match="DOGE/USDT:USDT"):
        run(bn.symbol_of("DOGE"))
    # Hyperliquid: the venue's coin name from info, the tick from the five-significant-figures rule
    hl = venue(stub("hyperliquid", [HL_ETH, HL_PEPE]))
    markets = run(hl.markets())
    assert set(markets) == {"ETH", "kPEPE"}
    assert (markets["ETH"].tick, markets["ETH"].lot, markets["ETH"].min_notional) == (D("0.1"), D("0.0001"), 10)
    assert markets["kPEPE"].tick == D("0.000001")
    # OKX: amounts are contracts of 0.01 BTC; our lot is in coins
    ok = run(venue(stub("okx", [OKX_BTC])).markets())["BTC"]
    assert (ok.lot, ok.sz_decimals, ok.min_notional) == (D("0.0001"), 4, 0)


def test_a_book_is_exact_in_coins_with_the_venue_time() -> None:
    async def fetch_order_book(symbol: str, limit: Any = None, params: Any = None) -> dict:
        assert symbol == "BTC/USDT:USDT"
        return {"bids": [[58000.1, 150.0], [57999.9, 2.0]], "asks": [[58000.2, 80.0]], "timestamp": T0,
                "nonce": 1}

    v = venue(stub("okx", [OKX_BTC], fetch_order_book=fetch_order_book))
    book = run(v.book("BTC"))
    assert book.bids == ((D("58000.1"), D("1.5")), (D("57999.9"), D("0.02"))) and book.asks == ((D("58000.2"),
                                                                                               D("0.8")),)
    assert book.ts_ms == T0 and book.mid() == D("58000.15")


# -- orders -------------------------------------------------------------------------------------------

def order(**kw: Any) -> dict:
    base = {"id": "11", "clientOrderId": CID, "timestamp": T0, "status": "open", "symbol": "BTC/USDT:USDT",
            "type": "limit", "side": "buy", "price": 58000.1, "amount": 0.5, "filled": 0.0, "remaining": 0.5,
            "average": None, "cost": 0.0, "fee": None, "trades": [], "info": {}}
    return {**base, **kw}


@pytest.mark.parametrize(("ccxt_order", "status", "filled", "avg"), [
    (order(), OPEN, D(0), None),
    (order(status="closed", filled=0.5, remaining=0.0, average=58000.1), FILLED, D("0.5"), D("58000.1")),
    (order(status="closed", filled=0.2, remaining=0.3, average=58000.0), FILLED, D("0.2"), D("58000")),
    (order(status="closed", filled=0.0), CANCELED, D(0), None),
    (order(status="canceled", filled=0.1, average=58000.1), CANCELED, D("0.1"), D("58000.1")),
    (order(status="expired"), CANCELED, D(0), None),
    (order(status="rejected"), REJECTED, D(0), None),
    (order(status=None), UNKNOWN, D(0), None),
])
def test_ccxt_order_statuses_map_to_ours(ccxt_order: dict, status: str, filled: Decimal, avg: Decimal | None) -> None:
    async def fetch_order(oid: str, symbol: str | None = None, params: Any = None) -> dict:
        return ccxt_order

    st = run(venue(stub("binanceusdm", [BN_BTC], fetch_order=fetch_order)).order_status("BTC", "11"))
    assert (st.status, st.filled, st.avg_px, st.order_id) == (status, filled, avg, "11")


def test_place_sends_precision_strings_and_the_venue_params_then_reads_the_state_back() -> None:
    sent: list[tuple] = []

    async def create_order(symbol: str, type: str, side: str, amount: Any, price: Any, params: Any = None) -> dict:
        sent.append((symbol, type, side, amount, price, dict(params)))
        return {"id": "77", "clientOrderId": "ab" * 16, "status": None, "filled": None, "info": {"ordId": "77"}}

    async def fetch_order(oid: str, symbol: str | None = None, params: Any = None) -> dict:
        return order(id=oid, clientOrderId="ab" * 16, status="open", amount=50.0)

    v = venue(stub("okx", [OKX_BTC], create_order=create_order, fetch_order=fetch_order))
    st = run(v.place(OrderRequest("BTC", True, D("0.5"), D("58000.1"), tif="alo", reduce_only=True, client_id=CID)))
    assert (st.status, st.order_id, st.client_id) == (OPEN, "77", CID)
    assert sent == [("BTC/USDT:USDT", "limit", "buy", "50", "58000.1",
                     {"postOnly": True, "reduceOnly": True, "clientOrderId": "ab" * 16})]
    # by our client id, the same order
    assert run(v.order_status("BTC", CID)).order_id == "77"


def test_an_order_off_the_tick_or_the_lot_is_refused_before_it_is_sent() -> None:
    async def create_order(*a: Any, **k: Any) -> dict:
        raise AssertionError("nothing may be sent")

    v = venue(stub("binanceusdm", [BN_BTC], create_order=create_order))
    off_tick = run(v.place(OrderRequest("BTC", True, D("0.5"), D("58000.15"))))
    assert off_tick.status == REJECTED and "tick" in off_tick.error and "58000.2" in off_tick.error
    off_lot = run(v.place(OrderRequest("BTC", True, D("0.0005"), D("58000.1"))))
    assert off_lot.status == REJECTED and off_lot.error
    unlisted = run(v.place(OrderRequest("DOGE", True, D("1"), D("0.1"), client_id=CID)))
    assert unlisted.status == REJECTED and "not listed" in unlisted.error and unlisted.client_id == CID
    bad_tif = run(v.place(OrderRequest("BTC", True, D("0.5"), D("58000.1"), tif="fok")))
    assert bad_tif.status == REJECTED


@pytest.mark.parametrize(("error", "status"), [
    (ccxt.InvalidOrder("binanceusdm -5022 Post Only order will be rejected"), REJECTED),
    (ccxt.InsufficientFunds("binanceusdm -2019 Margin is insufficient"), REJECTED),
    (ccxt.OrderNotFound("binanceusdm -2013 Order does not exist"), REJECTED),
    (ccxt.BadRequest("binanceusdm -1102 mandatory parameter"), REJECTED),
    (ccxt.AuthenticationError("binanceusdm -2015 Invalid API-key"), REJECTED),
    (ccxt.NetworkError("binanceusdm connection reset"), UNKNOWN),
    (ccxt.RequestTimeout("binanceusdm request timed out"), UNKNOWN),
    (ccxt.ExchangeNotAvailable("binanceusdm 503"), UNKNOWN),
    (ccxt.DuplicateOrderId("binanceusdm -4015 Client order id is not valid"), UNKNOWN),
    (ccxt.ExchangeError("binanceusdm something unclassified"), UNKNOWN),
    (TypeError("a parser failed after the send"), UNKNOWN),
])
def test_refusals_are_rejected_and_anything_unsettled_is_unknown(error: BaseException, status: str) -> None:
    async def create_order(*a: Any, **k: Any) -> dict:
        raise error

    st = run(venue(stub("binanceusdm", [BN_BTC], create_order=create_order)).place(
        OrderRequest("BTC", True, D("0.5"), D("58000.1"), tif="alo", client_id=CID)))
    assert (st.status, st.client_id) == (status, CID) and type(error).__name__ in st.error


def test_cancel_always_reads_the_final_state_a_fill_may_have_raced_it() -> None:
    calls: list[str] = []

    async def cancel_order(oid: str, symbol: str | None = None, params: Any = None) -> dict:
        calls.append("cancel")
        raise ccxt.OrderNotFound("binanceusdm -2011 Unknown order sent.")  # it filled first

    async def fetch_order(oid: str, symbol: str | None = None, params: Any = None) -> dict:
        calls.append("read")
        return order(id=oid, status="closed", filled=0.5, remaining=0.0, average=58000.1)

    st = run(venue(stub("binanceusdm", [BN_BTC], cancel_order=cancel_order, fetch_order=fetch_order)).cancel(
        "BTC", "11"))
    assert calls == ["cancel", "read"] and (st.status, st.filled, st.avg_px) == (FILLED, D("0.5"), D("58000.1"))
    assert st.error == ""  # the final state is settled: the cancel's complaint is moot


def test_a_cancel_whose_read_fails_is_unknown_with_both_texts() -> None:
    async def cancel_order(*a: Any, **k: Any) -> dict:
        raise ccxt.RequestTimeout("timed out")

    async def fetch_order(*a: Any, **k: Any) -> dict:
        raise ccxt.NetworkError("down")

    st = run(venue(stub("binanceusdm", [BN_BTC], cancel_order=cancel_order, fetch_order=fetch_order)).cancel(
        "BTC", "11"))
    assert st.status == UNKNOWN and "NetworkError" in st.error and "cancel: RequestTimeout" in st.error


def test_dydx_cancels_by_the_client_id_the_order_was_placed_with() -> None:
    seen: dict[str, Any] = {}

    async def create_order(*a: Any, **k: Any) -> dict:
        return {"id": "uuid-1", "clientOrderId": str(venue_client_id(CID, "uint31")), "status": "open", "filled": 0}

    async def cancel_order(oid: str, symbol: str | None = None, params: Any = None) -> dict:
        seen.update(params)
        return {}

    async def fetch_order(oid: str, symbol: str | None = None, params: Any = None) -> dict:
        return order(id=oid, symbol="BTC/USDC:USDC", status="canceled", clientOrderId=None)

    ex = stub("dydx", [market("BTC/USDC:USDC", "BTC-USD", amount=0.0001, price=1.0)], create_order=create_order,
              cancel_order=cancel_order, fetch_order=fetch_order)
    v = venue(ex)
    st = run(v.place(OrderRequest("BTC", True, D("0.1"), D("50000"), tif="alo", client_id=CID)))
    assert (st.status, st.order_id, st.client_id) == (OPEN, "uuid-1", CID)
    final = run(v.cancel("BTC", "uuid-1"))
    assert seen == {"clientOrderId": venue_client_id(CID, "uint31")} and final.status == CANCELED

    # an order from before this session: the client id as the venue wrote it, learned by a read
    async def earlier(oid: str, symbol: str | None = None, params: Any = None) -> dict:
        return order(id=oid, symbol="BTC/USDC:USDC", status="open" if not seen else "canceled",
                     clientOrderId="555")

    seen.clear()
    ex.fetch_order = earlier
    final = run(venue(ex).cancel("BTC", "uuid-2"))
    assert seen == {"clientOrderId": "555"} and final.status == CANCELED


def test_lighter_has_no_fetch_order_the_adapter_finds_the_order_by_its_client_index() -> None:
    index = venue_client_id(CID, "uint31")
    lists = {"open": [], "closed": [order(id="9001", clientOrderId=str(index), status="open",
                                          symbol="BTC/USDC:USDC")]}

    async def create_order(*a: Any, **k: Any) -> dict:
        assert k == {} and a[5]["clientOrderId"] == index and a[5]["postOnly"] is True
        return {"id": None, "clientOrderId": None, "status": None, "info": {"tx_hash": "0xabc"}}

    async def fetch_open_orders(symbol: str | None = None, *a: Any) -> list:
        return lists["open"]

    async def fetch_closed_orders(symbol: str | None = None, *a: Any) -> list:
        return lists["closed"]

    ex = stub("lighter", [market("BTC/USDC:USDC", "1", amount=0.00001, price=0.1, min_cost=10.0)],
              create_order=create_order, fetch_open_orders=fetch_open_orders, fetch_closed_orders=fetch_closed_orders)
    v = venue(ex)
    assert ex.has["fetchOrder"] is False
    st = run(v.place(OrderRequest("BTC", True, D("0.001"), D("50000.1"), tif="alo", client_id=CID)))
    assert (st.status, st.order_id, st.client_id) == (OPEN, "9001", CID)
    lists["closed"] = []
    gone = run(v.order_status("BTC", CID))
    assert gone.status == UNKNOWN and "does not know" in gone.error  # not found is not a state to book


def test_modify_without_a_native_edit_cancels_reads_then_places_anew() -> None:
    events: list[str] = []
    state = {"11": "open"}

    async def cancel_order(oid: str, *a: Any) -> dict:
        events.append(f"cancel {oid}")
        state[oid] = "canceled"
        return {}

    async def fetch_order(oid: str, *a: Any) -> dict:
        return order(id=oid, status=state[oid], clientOrderId=None)

    async def create_order(symbol: str, type: str, side: str, amount: Any, price: Any, params: Any = None) -> dict:
        events.append(f"create {amount}@{price}")
        state["12"] = "open"
        return order(id="12", status="open", clientOrderId=None)

    ex = stub("aster", [market("BTC/USDT:USDT", "BTCUSDT", amount=0.001, price=0.1)], cancel_order=cancel_order,
              fetch_order=fetch_order, create_order=create_order)
    assert ex.has["editOrder"] is False
    v = venue(ex)
    st = run(v.modify("BTC", "11", OrderRequest("BTC", True, D("0.6"), D("57000.5"), tif="alo")))
    assert events == ["cancel 11", "create 0.6@57000.5"] and (st.status, st.order_id) == (OPEN, "12")
    # the old order filled before the cancel: that is the answer, and nothing new is placed
    state["13"] = "closed"

    async def filled(oid: str, *a: Any) -> dict:
        return order(id=oid, status="closed", filled=0.5, average=58000.1, clientOrderId=None)

    ex.fetch_order = filled
    st = run(v.modify("BTC", "13", OrderRequest("BTC", True, D("0.6"), D("57000.5"), tif="alo")))
    assert st.status == FILLED and events[-1] == "cancel 13"


# -- fills, account, funding ---------------------------------------------------------------------------

def test_fills_are_exact_signed_and_priced_in_usd() -> None:
    trades = [
        {"id": "t1", "order": "11", "symbol": "BTC/USDT:USDT", "side": "buy", "amount": 0.5, "price": 58000.1,
         "timestamp": T0, "takerOrMaker": "maker", "fee": {"cost": -0.29, "currency": "USDT"},
         "info": {"id": 7001, "price": "58000.10", "qty": "0.500", "commission": "-0.29000"}},
        {"id": "t2", "order": "12", "symbol": "BTC/USDT:USDT", "side": "sell", "amount": 0.25, "price": 58001.0,
         "timestamp": T0 + 5, "takerOrMaker": "taker", "fee": {"cost": 0.0000002, "currency": "BTC"}, "info": {}},
        {"id": "t3", "order": "13", "symbol": "BTC/USDT:USDT", "side": "sell", "amount": 0.1, "price": 58001.0,
         "timestamp": T0 + 9, "takerOrMaker": "taker", "fee": {"cost": 0.01, "currency": "BNB"}, "info": {}},
        {"id": "t0", "order": "10", "symbol": "BTC/USDT:USDT", "side": "buy", "amount": 0.1, "price": 1.0,
         "timestamp": T0 - 10, "takerOrMaker": "taker", "fee": None, "info": {}},
    ]
    asked: list[Any] = []

    async def fetch_my_trades(symbol: str | None = None, since: int | None = None, *a: Any) -> list:
        asked.append((symbol, since))
        if symbol is None:
            raise ccxt.ArgumentsRequired("binanceusdm fetchMyTrades() requires a symbol argument")
        return trades

    async def fetch_positions(*a: Any) -> list:
        return []

    async def create_order(*a: Any, **k: Any) -> dict:
        raise ccxt.InvalidOrder("no")

    v = venue(stub("binanceusdm", [BN_BTC], fetch_my_trades=fetch_my_trades, fetch_positions=fetch_positions,
                   create_order=create_order))
    run(v.place(OrderRequest("BTC", True, D("0.5"), D("58000.1"))))  # the symbols it trades are asked per symbol
    fills = run(v.fills(T0))
    assert asked == [(None, T0), ("BTC/USDT:USDT", T0)]
    a, b, c = fills
    assert (a.fill_id, a.order_id, a.coin, a.size, a.px, a.fee, a.maker) == ("7001", "11", "BTC", D("0.500"),
                                                                            D("58000.10"), D("-0.29"), True)
    assert (b.size, b.fee, b.maker) == (D("-0.25"), D("0.0000002") * D("58001.0"), False)  # a base-coin fee at px
    assert c.fee.is_nan()  # a BNB fee has no price here: unknown, never zero


def test_okx_fills_are_in_coins_and_the_contract_size_applies_once() -> None:
    async def fetch_my_trades(symbol: str | None = None, since: int | None = None, *a: Any) -> list:
        return [{"id": "9", "order": "77", "symbol": "BTC/USDT:USDT", "side": "buy", "amount": 50.0,
                 "price": 58000.1, "timestamp": T0, "takerOrMaker": "taker",
                 "fee": {"cost": 0.58, "currency": "USDT"}, "info": {}}]

    (f,) = run(venue(stub("okx", [OKX_BTC], fetch_my_trades=fetch_my_trades)).fills(0))
    assert (f.size, f.px, f.fee) == (D("0.5"), D("58000.1"), D("0.58"))


def test_dydx_fills_come_from_the_indexer_through_ccxt_as_written() -> None:
    async def indexer_get_fills(params: Any) -> dict:
        assert params["address"] == "dydx1abc" and params["subaccountNumber"] == "0"
        return {"fills": [{"id": "f-1", "side": "SELL", "liquidity": "MAKER", "type": "LIMIT", "market": "BTC-USD",
                           "marketType": "PERPETUAL", "price": "118692.048409", "size": "0.0123", "fee": "-0.0015",
                           "createdAt": "2026-12-01T00:00:00.000Z", "createdAtHeight": "1", "orderId": "uuid-1",
                           "subaccountNumber": 0}]}

    ex = stub("dydx", [market("BTC/USDC:USDC", "BTC-USD", amount=0.0001, price=1.0)],
              indexer_get_fills=indexer_get_fills)
    ex.walletAddress = "dydx1abc"
    (f,) = run(venue(ex).fills(0))
    assert (f.fill_id, f.order_id, f.coin, f.size, f.px, f.fee, f.maker) == (
        "f-1", "uuid-1", "BTC", D("-0.0123"), D("118692.048409"), D("-0.0015"), True)
    assert f.ts_ms == ex.parse8601("2026-12-01T00:00:00.000Z")


def test_the_account_prefers_the_venues_strings_and_says_when_equity_is_missing() -> None:
    long_digits = "118692.04840909090909090909"  # more digits than a float keeps

    async def fetch_balance(*a: Any) -> dict:
        return {"USDC": {"total": 1000.5}, "total": {"USDC": 1000.5}, "timestamp": T0,
                "info": {"marginSummary": {"accountValue": "1000.500001", "totalNtlPos": "593.46"},
                         "crossMaintenanceMarginUsed": "7.4"}}

    async def fetch_positions(*a: Any) -> list:
        return [{"symbol": "ETH/USDC:USDC", "contracts": 0.17, "side": "short", "entryPrice": 118692.04840909091,
                 "unrealizedPnl": -1.5, "initialMargin": 30.0, "liquidationPrice": None, "notional": 593.46,
                 "info": {"position": {"szi": "-0.17", "entryPx": long_digits, "unrealizedPnl": "-1.5",
                                       "marginUsed": "29.673", "liquidationPx": "3999.9"}}},
                {"symbol": "ETH/USDC:USDC", "contracts": 0.0, "side": None, "info": {"position": {"szi": "0"}}}]

    acct = run(venue(stub("hyperliquid", [HL_ETH], fetch_balance=fetch_balance,
                          fetch_positions=fetch_positions)).account())
    assert (acct.equity, acct.notional, acct.maintenance_margin, acct.ts_ms) == (D("1000.500001"), D("593.46"),
                                                                               D("7.4"), T0)
    pos = acct.positions["ETH"]
    assert (pos.size, pos.entry_px, pos.unrealized_pnl, pos.margin, pos.liquidation_px) == (
        D("-0.17"), D(long_digits), D("-1.5"), D("29.673"), D("3999.9"))

    # a venue without info paths: ccxt's unified numbers, signed by side, in coins
    async def okx_positions(*a: Any) -> list:
        return [{"symbol": "BTC/USDT:USDT", "contracts": 50.0, "side": "short", "entryPrice": 58000.1,
                 "unrealizedPnl": 2.5, "initialMargin": 290.0, "liquidationPrice": 0.0, "notional": 2900.0,
                 "maintenanceMargin": 11.6, "info": {}}]

    async def okx_balance(*a: Any) -> dict:
        return {"total": {"USDT": 5000.25}, "info": {}}

    acct = run(venue(stub("okx", [OKX_BTC], fetch_balance=okx_balance, fetch_positions=okx_positions)).account())
    pos = acct.positions["BTC"]
    assert (acct.equity, pos.size, pos.entry_px, pos.liquidation_px) == (D("5000.25"), D("-0.5"), D("58000.1"), None)
    assert (acct.notional, acct.maintenance_margin, acct.margin_ratio) == (D("2900"), D("11.6"),
                                                                          D("11.6") / D("5000.25"))

    async def empty_balance(*a: Any) -> dict:
        return {"total": {}, "info": {}}

    with pytest.raises(VenueReadError, match="no USDT equity"):
        run(venue(stub("okx", [OKX_BTC], fetch_balance=empty_balance, fetch_positions=okx_positions)).account())


def rate(**kw: Any) -> dict:
    base = {"symbol": "BTC/USDT:USDT", "fundingRate": 0.0001, "markPrice": 58001.2, "timestamp": T0,
            "interval": None, "info": {}}
    return {**base, **kw}


def test_funding_carries_its_interval_live_then_per_symbol_then_market_data_then_default() -> None:
    async def fetch_funding_rate(symbol: str, *a: Any) -> dict:
        return rates[symbol]

    async def fetch_funding_intervals(*a: Any) -> dict:
        return {"BLZ/USDT:USDT": {"interval": "4h"}}

    blz = market("BLZ/USDT:USDT", "BLZUSDT", amount=1.0, price=0.00001)
    rates = {"BTC/USDT:USDT": rate(info={"lastFundingRate": "0.00010000", "markPrice": "58001.20000000"}),
             "BLZ/USDT:USDT": rate(symbol="BLZ/USDT:USDT", fundingRate=-0.0004),
             "ETH/USDT:USDT": rate(symbol="ETH/USDT:USDT", interval="1h")}
    eth = market("ETH/USDT:USDT", "ETHUSDT", amount=0.001, price=0.01)
    v = venue(stub("binanceusdm", [BN_BTC, blz, eth], fetch_funding_rate=fetch_funding_rate,
                   fetch_funding_intervals=fetch_funding_intervals))
    btc = run(v.funding("BTC"))
    assert (btc.rate, btc.interval_h, btc.mark_px, btc.ts_ms) == (D("0.00010000"), 8, D("58001.20000000"), T0)
    b = run(v.funding("BLZ"))
    assert (b.rate, b.interval_h, b.hourly) == (D("-0.0004"), 4, D("-0.0001"))
    assert run(v.funding("ETH")).interval_h == 1  # ccxt's live interval wins
    assert run(v.markets())["BLZ"].funding_interval_h == 4
    # GRVT: the instrument's own funding_interval_hours
    grvt = venue(stub("grvt", [market("BTC/USDT:USDT", "BTC_USDT_Perp", amount=0.001, price=0.1,
                                      info={"funding_interval_hours": "4"})]))
    assert run(grvt.markets())["BTC"].funding_interval_h == 4
    # Backpack: milliseconds in the market data
    bp = venue(stub("backpack", [market("BTC/USDC:USDC", "BTC_USDC_PERP", amount=0.0001, price=0.1,
                                        info={"fundingInterval": 28800000})]))
    assert run(bp.markets())["BTC"].funding_interval_h == 8


def test_lighter_quotes_funding_over_eight_hours_and_settles_hourly() -> None:
    async def fetch_funding_rates(symbols: Any = None, *a: Any) -> dict:
        assert symbols == ["ETH/USDC:USDC"]
        return {"ETH/USDC:USDC": {"symbol": "ETH/USDC:USDC", "fundingRate": 0.000096, "interval": None,
                                  "timestamp": None, "markPrice": None, "info": {"rate": 0.000096}}}

    ex = stub("lighter", [market("ETH/USDC:USDC", "0", amount=0.0001, price=0.01, min_cost=10.0)],
              fetch_funding_rates=fetch_funding_rates)
    assert ex.has["fetchFundingRate"] is False
    fr = run(venue(ex).funding("ETH"))
    assert (fr.rate, fr.interval_h, fr.hourly) == (D("0.000012"), 1, D("0.000012"))


def test_without_a_current_rate_call_the_last_settled_rate_at_the_histories_own_spacing() -> None:
    async def fetch_funding_rate_history(symbol: str, since: int | None = None, *a: Any) -> list:
        return [{"symbol": symbol, "fundingRate": 0.00001, "timestamp": T0 - 3_600_000},
                {"symbol": symbol, "fundingRate": 0.0000125, "timestamp": T0}]

    ex = stub("apex", [market("BTC/USDT:USDT", "BTCUSDT", amount=0.001, price=0.1)],
              fetch_funding_rate_history=fetch_funding_rate_history)
    assert not ex.has["fetchFundingRate"] and not ex.has["fetchFundingRates"]
    fr = run(venue(ex).funding("BTC"))
    assert (fr.rate, fr.interval_h, fr.ts_ms, fr.mark_px) == (D("0.0000125"), 1, T0, None)


def test_funding_payments_carry_the_venues_size_and_rate_or_nan() -> None:
    async def hl_history(symbol: Any = None, since: int | None = None, *a: Any) -> list:
        return [{"symbol": "ETH/USDC:USDC", "code": "USDC", "timestamp": T0, "amount": -0.0109, "id": None,
                 "info": {"time": T0, "delta": {"type": "funding", "coin": "ETH", "usdc": "-0.010934",
                                                "szi": "0.17", "fundingRate": "0.0000125"}}}]

    (p,) = run(venue(stub("hyperliquid", [HL_ETH], fetch_funding_history=hl_history)).funding_payments(0))
    assert (p.coin, p.usd, p.size, p.rate, p.ts_ms) == ("ETH", D("-0.010934"), D("0.17"), D("0.0000125"), T0)

    async def bn_history(symbol: Any = None, since: int | None = None, *a: Any) -> list:
        return [{"symbol": "BTC/USDT:USDT", "code": "USDT", "timestamp": T0, "amount": 0.25,
                 "info": {"income": "0.25000000", "incomeType": "FUNDING_FEE"}}]

    (p,) = run(venue(stub("binanceusdm", [BN_BTC], fetch_funding_history=bn_history)).funding_payments(0))
    assert p.usd == D("0.25000000") and p.size.is_nan() and p.rate.is_nan()
    lighter = venue(stub("lighter", [market("ETH/USDC:USDC", "0", amount=0.0001, price=0.01)]))
    with pytest.raises(VenueUnsupported, match="lighter-sdk"):
        run(lighter.funding_payments(0))


def test_reads_retry_network_errors_a_bounded_number_of_times() -> None:
    calls = {"n": 0}

    async def flaky(symbol: str, *a: Any) -> dict:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ccxt.RequestTimeout("timed out")
        return {"bids": [[1.0, 1.0]], "asks": [[1.1, 1.0]], "timestamp": T0}

    v = venue(stub("binanceusdm", [BN_BTC], fetch_order_book=flaky))
    assert run(v.book("BTC")).ts_ms == T0 and calls["n"] == 3
    calls["n"] = -10
    with pytest.raises(VenueReadError, match="RequestTimeout"):
        run(v.book("BTC"))
    assert calls["n"] == -7  # three attempts, then the error

    async def refused(symbol: str, *a: Any) -> dict:
        calls["n"] += 1
        raise ccxt.BadSymbol("no such market")

    v = venue(stub("binanceusdm", [BN_BTC], fetch_order_book=refused))
    calls["n"] = 0
    with pytest.raises(VenueReadError, match="BadSymbol"):
        run(v.book("BTC"))
    assert calls["n"] == 1  # a refusal is not retried


def test_place_through_ccxts_own_binance_request_and_parser() -> None:
    """No stubbed method: ccxt's binanceusdm builds, signs and parses; only its HTTP fetch is answered."""
    requests: list[tuple[str, str, dict]] = []

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query or (body or "")).items()}
        requests.append((method, parts.path, query))
        if parts.path.endswith("/order") and method == "POST":
            return {"orderId": 22542179, "symbol": "BTCUSDT", "status": "NEW", "clientOrderId": query.get(
                "newClientOrderId"), "price": "58000.1", "avgPrice": "0.00000", "origQty": "0.500",
                "executedQty": "0.000", "cumQuote": "0", "timeInForce": "GTX", "type": "LIMIT",
                "reduceOnly": False, "side": "BUY", "updateTime": T0}
        raise AssertionError(url)

    ex = make_exchange(venue_meta("binanceusdm"), {"apiKey": "key-000000", "secret": "secret-000000"})
    ex.set_markets([BN_BTC])
    ex.fetch = fetch
    v = CcxtVenue(ex, venue_meta("binanceusdm"))
    st = run(v.place(OrderRequest("BTC", True, D("0.5"), D("58000.1"), tif="alo", client_id=CID)))
    assert (st.status, st.order_id, st.client_id) == (OPEN, "22542179", CID)
    ((method, path, query),) = requests
    assert (method, path) == ("POST", "/fapi/v1/order")
    assert (query["timeInForce"], query["quantity"], query["price"], query["newClientOrderId"]) == (
        "GTX", "0.5", "58000.1", CID)
    run(ex.close())


# -- secrets ------------------------------------------------------------------------------------------

SECRET, KEY = "s3cr3t-VALUE-9f8e7d", "apikey-VALUE-1a2b3c"


def test_credentials_never_reach_a_repr_a_state_an_exception_or_a_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    v = CcxtVenue.open("binanceusdm", {"apiKey": KEY, "secret": SECRET, "password": "pw42"})
    ex = v.exchange
    assert ex.apiKey == KEY and ex.secret == SECRET  # the exchange has them: it signs
    ex.set_markets([BN_BTC])

    async def create_order(*a: Any, **k: Any) -> dict:
        raise ccxt.AuthenticationError(f"binanceusdm signature for {KEY} with {SECRET} (pw42) is invalid")

    async def fetch_order(*a: Any, **k: Any) -> dict:
        raise ccxt.ExchangeError(f"binanceusdm GET /fapi/v1/order?apiKey={KEY}&secret={SECRET} 400")

    async def fetch_my_trades(*a: Any, **k: Any) -> list:
        return [{"id": "1", "order": "1", "symbol": "BTC/USDT:USDT", "side": "buy", "amount": 1.0, "price": 1.0,
                 "timestamp": T0, "fee": {"cost": 0.1, "currency": f"X{SECRET}"}, "info": {}}]

    ex.create_order, ex.fetch_order, ex.fetch_my_trades = create_order, fetch_order, fetch_my_trades
    texts = [repr(v), str(v), repr(ex), str(ex)]
    st = run(v.place(OrderRequest("BTC", True, D("0.5"), D("58000.1"), client_id=CID)))
    assert st.status == REJECTED and "***" in st.error
    texts.append(repr(st))
    texts.append(repr(run(v.order_status("BTC", "11"))))
    with pytest.raises(VenueReadError) as raised:
        run(v._read("fetch_order", lambda: fetch_order()))
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    texts.append(str(raised.value))
    run(v.fills(0))  # warns about the fee currency, which carries the secret
    texts.append(caplog.text)
    run(v.aclose())
    for text in texts:
        assert SECRET not in text and KEY not in text and "pw42" not in text, text
    assert "fee in X***" in caplog.text


def test_an_accounts_file_opens_a_ccxt_venue_with_env_credentials(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("BN_SECRET", SECRET)
    specs = parse_accounts({"bn": {"venue": "ccxt:binanceusdm", "credentials": {"apiKey": KEY,
                                                                               "secret": "env:BN_SECRET"}},
                            "hl": {"venue": "ccxt:hyperliquid@http://127.0.0.1:9999",
                                   "credentials": {"walletAddress": "0x" + "1" * 40, "privateKey": "env:BN_SECRET"}},
                            "lt": {"venue": "ccxt:lighter", "credentials": {"privateKey": "env:BN_SECRET",
                                                                             "accountIndex": "42",
                                                                             "libraryPath": "/x/signer.so"}},
                            "no": {"venue": "ccxt:nosuch", "credentials": {}},
                            "missing": {"venue": "ccxt:okx", "credentials": {"secret": "env:NOT_SET_ANYWHERE"}}},
                           tmp_path)
    bn = open_venue(specs["bn"])
    assert isinstance(bn, CcxtVenue) and bn.exchange.secret == SECRET and bn.name == "bn"
    assert SECRET not in repr(specs["bn"]) + repr(bn)
    hl = open_venue(specs["hl"])
    assert isinstance(hl, CcxtVenue) and hl.exchange.urls["api"]["public"] == "http://127.0.0.1:9999"
    assert hl.exchange.options["builderFee"] is False
    lt = open_venue(specs["lt"])
    assert isinstance(lt, CcxtVenue)
    assert (lt.exchange.options["accountIndex"], lt.exchange.options["libraryPath"]) == ("42", "/x/signer.so")
    with pytest.raises(AccountsError, match=r"has no \[nosuch\]"):
        open_venue(specs["no"])
    with pytest.raises(AccountsError, match="NOT_SET_ANYWHERE") as e:
        open_venue(specs["missing"])
    assert SECRET not in str(e.value)
    for v in (bn, hl, lt):
        run(v.aclose())

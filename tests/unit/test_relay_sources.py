"""The oracle relay's price sources (perpbox.deployer.sources): replayed recordings with exact
prices and derived stamps, the seeded walk, and the hyperliquid and ccxt sources against a real
``perpbox serve`` started here (no feed and no agents, so its prices hold; resting orders make
the books)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import polars as pl
import pytest
from eth_account import Account
from hyperliquid.exchange import Exchange

from compat.conftest import Server
from perpbox.api.actions import USDC_SEND_TOKEN
from perpbox.deployer.sources import CallbackSource, Quote, Source, SourceSpec, build_source
from perpbox.venues import dataset

START = 5_000_000  # the relay's start (ms); arbitrary
COIN = "xyz:SILVER"


def _build(tmp_path: Path, kind: str, **params: Any) -> Source:
    return build_source(SourceSpec(kind=kind, params=params), coin=COIN, base_dir=tmp_path, start_ms=START)


def _quotes(src: Source, times: list[int]) -> list[Quote | None]:
    async def run() -> list[Quote | None]:
        try:
            return [await src.fetch(t) for t in times]
        finally:
            await src.aclose()

    return asyncio.run(run())


def _px_ts(q: Quote | None) -> tuple[Decimal, int] | None:
    return None if q is None else (q.px, q.ts_ms)


# -- replay ---------------------------------------------------------------------------------------------
T0 = 1_700_000_000_000
LONG = "32.10500000000000000001"  # as a float this would be 32.105


@pytest.fixture
def silver_csv(tmp_path: Path) -> Path:
    """SILVER at recorded offsets 0, 1000, 3000 ms; GOLD first at 1000 ms.  The file's distinct
    stamps are 0, 1000, 3000: span 3000 ms, mean gap 1500 ms, so one loop lasts 4500 ms."""
    path = tmp_path / "silver.csv"
    path.write_text("ts_ms,coin,px\n"
                    f"{T0},SILVERUSDT,32.105\n"
                    f"{T0 + 1000},SILVERUSDT,31.9\n"
                    f"{T0 + 1000},GOLD-USD,2400.5\n"
                    f"{T0 + 3000},SILVERUSDT,{LONG}\n")
    return path


def test_replay_answers_the_last_record_landed_with_its_landing_time(tmp_path: Path, silver_csv: Path) -> None:
    src = _build(tmp_path, "replay", path="silver.csv")  # relative to base_dir; coin SILVER from xyz:SILVER
    assert src.id == "replay:silver.csv#SILVER"
    times = [START - 1, START, START + 999, START + 1000, START + 2999, START + 3000, START + 100_000]
    assert [_px_ts(q) for q in _quotes(src, times)] == [
        None,
        (Decimal("32.105"), START), (Decimal("32.105"), START),
        (Decimal("31.9"), START + 1000), (Decimal("31.9"), START + 1000),
        (Decimal(LONG), START + 3000),
        (Decimal(LONG), START + 3000),  # the feed stopped: the last record, its old stamp (max_age makes it stale)
    ]


def test_replay_csv_prices_never_pass_through_a_float(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(f"timestamp,coin,price\n{T0},BTC/USDT:USDT,0.1\n{T0 + 5},BTC/USDT:USDT,{LONG}\n")
    first, second = _quotes(_build(tmp_path, "replay", path=str(tmp_path / "p.csv"), coin="BTC"), [START, START + 5])
    assert first is not None and second is not None
    assert str(first.px) == "0.1" and first.px + first.px + first.px == Decimal("0.3")
    assert str(second.px) == LONG and second.px != Decimal("32.105")


def test_replay_csv_with_iso_times_and_an_empty_price(tmp_path: Path) -> None:
    (tmp_path / "iso.csv").write_text("time,coin,px\n2024-01-02T00:00:00Z,SILVER,30.5\n"
                                      "2024-01-02T00:00:01Z,SILVER,\n2024-01-02T00:00:02Z,SILVER,30.75\n")
    src = _build(tmp_path, "replay", path="iso.csv")
    assert [_px_ts(q) for q in _quotes(src, [START + 1500, START + 2000])] == [
        (Decimal("30.5"), START), (Decimal("30.75"), START + 2000)]  # the empty row is no record


def test_replay_speed_runs_the_recording_faster(tmp_path: Path, silver_csv: Path) -> None:
    src = _build(tmp_path, "replay", path="silver.csv", speed=2)
    assert [_px_ts(q) for q in _quotes(src, [START + 499, START + 500, START + 1500, START + 9000])] == [
        (Decimal("32.105"), START), (Decimal("31.9"), START + 500),
        (Decimal(LONG), START + 1500), (Decimal(LONG), START + 1500)]


def test_replay_loop_wraps_around(tmp_path: Path, silver_csv: Path) -> None:
    src = _build(tmp_path, "replay", path="silver.csv", loop=True)
    assert [_px_ts(q) for q in _quotes(src, [START + 4499, START + 4500, START + 5500, START + 9000])] == [
        (Decimal(LONG), START + 3000),  # still the first pass
        (Decimal("32.105"), START + 4500), (Decimal("31.9"), START + 5500),  # second pass: loop = 4500 ms
        (Decimal("32.105"), START + 9000)]  # third


def test_replay_matches_coin_names_by_base_and_keeps_the_file_s_clock(tmp_path: Path, silver_csv: Path) -> None:
    """GOLD-USD is GOLD; its first record is 1000 ms into the file, so it lands 1000 ms after start."""
    gold = _build(tmp_path, "replay", path="silver.csv", coin="GOLD")
    assert gold.id == "replay:silver.csv#GOLD"
    assert [_px_ts(q) for q in _quotes(gold, [START, START + 999, START + 1000, START + 50_000])] == [
        None, None, (Decimal("2400.5"), START + 1000), (Decimal("2400.5"), START + 1000)]
    looped = _build(tmp_path, "replay", path="silver.csv", coin="GOLDUSDT", loop=True)
    # second pass, before GOLD's first record in it: the first pass's record, with its stamp
    assert _px_ts(_quotes(looped, [START + 5000])[0]) == (Decimal("2400.5"), START + 1000)
    with pytest.raises(ValueError, match="COPPER"):
        _build(tmp_path, "replay", path="silver.csv", coin="COPPER")


def test_replay_parquet_floats_become_their_shortest_decimal(tmp_path: Path) -> None:
    pl.DataFrame({"ts_ns": [T0 * 10**6, (T0 + 2000) * 10**6], "coin": ["SILVER", "SILVER"],
                  "px": [32.105, 0.1 + 0.2]}).write_parquet(tmp_path / "s.parquet")
    quotes = _quotes(_build(tmp_path, "replay", path="s.parquet"), [START, START + 2000])
    # repr(32.105) is "32.105"; 0.1 + 0.2 is the float 0.30000000000000004
    assert [_px_ts(q) for q in quotes] == [(Decimal("32.105"), START), (Decimal("0.30000000000000004"), START + 2000)]


def test_replay_dataset_bbo_mid_is_taken_in_decimal(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    dataset.write_chunk(pl.DataFrame({"ts_ns": [T0 * 10**6], "local_ns": [T0 * 10**6], "venue": ["x"],
                                      "coin": ["SILVER"], "bid_px": [0.1], "bid_sz": [1.0], "ask_px": [0.2],
                                      "ask_sz": [1.0]}), "bbo", root)
    [q] = _quotes(_build(tmp_path, "replay", path="ds"), [START])
    assert q is not None and q.px == Decimal("0.15")  # (0.1 + 0.2) / 2 in float would be 0.15000000000000002


# -- synthetic and callback -----------------------------------------------------------------------------
TIMES = [START + 3000 * i for i in range(40)]


def test_synthetic_is_deterministic_per_seed_with_five_significant_figures(tmp_path: Path) -> None:
    a = _quotes(_build(tmp_path, "synthetic", seed=7, price="32.1", vol=2.0), TIMES)
    b = _quotes(_build(tmp_path, "synthetic", seed=7, price="32.1", vol=2.0), TIMES)
    c = _quotes(_build(tmp_path, "synthetic", seed=8, price="32.1", vol=2.0), TIMES)
    assert a == b and [q.px for q in a if q] != [q.px for q in c if q]
    assert all(q is not None and q.source == "synthetic:7" for q in a)
    assert [q.ts_ms for q in a if q] == TIMES
    assert a[0] is not None and a[0].px == Decimal("32.1")  # no time since start: no step yet
    pxs = [q.px for q in a if q]
    assert len(set(pxs)) > 10 and all(p > 0 and len(p.normalize().as_tuple().digits) <= 5 for p in pxs)


def test_synthetic_rounds_to_five_significant_figures(tmp_path: Path) -> None:
    [q] = _quotes(_build(tmp_path, "synthetic", seed=1, price="123456.7", vol=0), [START + 3000])
    assert q is not None and q.px == Decimal("123460") and str(q.px) == "123460"
    [q] = _quotes(_build(tmp_path, "synthetic", seed=1, price="0.000123456", vol=0, jump_prob=0.5), [START + 1])
    assert q is not None and q.px == Decimal("0.00012346")


def test_callback_source() -> None:
    src = CallbackSource("perpbox-feed", lambda now: Decimal("32.5") if now % 2 == 0 else None)
    assert _quotes(src, [10, 11]) == [Quote("perpbox-feed", Decimal("32.5"), 10), None]


# -- bad specs -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "params", "key"), [
    ("pyth", {}, "kind"),
    ("replay", {}, "path"),
    ("replay", {"path": 3}, "path"),
    ("replay", {"path": "missing.csv"}, "path"),
    ("replay", {"path": "silver.csv", "speed": "fast"}, "speed"),
    ("replay", {"path": "silver.csv", "speed": 0}, "speed"),
    ("replay", {"path": "silver.csv", "loop": "yes"}, "loop"),
    ("replay", {"path": "silver.csv", "coin": 5}, "coin"),
    ("replay", {"pth": "silver.csv"}, "pth"),
    ("synthetic", {"price": "1"}, "seed"),
    ("synthetic", {"seed": "7", "price": "1"}, "seed"),
    ("synthetic", {"seed": 7}, "price"),
    ("synthetic", {"seed": 7, "price": "abc"}, "price"),
    ("synthetic", {"seed": 7, "price": "-1"}, "price"),
    ("synthetic", {"seed": 7, "price": "1", "vol": -1}, "vol"),
    ("synthetic", {"seed": 7, "price": "1", "jump_prob": 2}, "jump_prob"),
    ("hyperliquid", {"field": "bid"}, "field"),
    ("hyperliquid", {"url": 5}, "url"),
    ("hyperliquid", {"timeout_s": "2"}, "timeout_s"),
    ("ccxt", {"symbol": "BTC/USDT"}, "venue"),
    ("ccxt", {"venue": "hyperliquid"}, "symbol"),
    ("ccxt", {"venue": "no-such-venue", "symbol": "BTC/USDT"}, "venue"),
    ("ccxt", {"venue": "hyperliquid", "symbol": "BTC/USDC:USDC", "field": "mark"}, "field"),
    ("ccxt", {"venue": "hyperliquid", "symbol": "BTC/USDC:USDC", "options": [1]}, "options"),
    ("ccxt", {"venue": "hyperliquid", "symbol": "BTC/USDC:USDC", "urls": "http://x"}, "urls"),
])
def test_a_bad_spec_names_the_key(tmp_path: Path, silver_csv: Path, kind: str, params: dict[str, Any],
                                  key: str) -> None:
    with pytest.raises(ValueError, match=rf"(?<![\w]){key}(?![\w])"):
        _build(tmp_path, kind, **params)


# -- hyperliquid and ccxt against perpbox serve ----------------------------------------------------------
BTC_BID, BTC_ASK = 99_990, 100_005
SILVER_BID, SILVER_ASK = 31.99, 32.03


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """No feed and no agents: prices hold.  A maker rests one bid and one ask on BTC and on
    xyz:SILVER, so those books have a mid between two levels."""
    srv = Server(tmp_path_factory.mktemp("srv") / "data", "--no-agents", "--feed", "none", "--seed", "3").start()
    try:
        w = Account.create()
        srv.fund(w.address, "1000000")
        ex = Exchange(w, srv.url, perp_dexs=["", "xyz"])
        assert ex.send_asset(w.address, "", "xyz", USDC_SEND_TOKEN, 10000.0)["status"] == "ok"
        for coin, bid, ask, sz in (("BTC", BTC_BID, BTC_ASK, 0.01), ("xyz:SILVER", SILVER_BID, SILVER_ASK, 10.0)):
            res = ex.bulk_orders([
                {"coin": coin, "is_buy": is_buy, "sz": sz, "limit_px": px, "order_type": {"limit": {"tif": "Gtc"}},
                 "reduce_only": False} for is_buy, px in ((True, bid), (False, ask))])
            assert all("resting" in s for s in res["response"]["data"]["statuses"]), res
        yield srv
    finally:
        srv.stop()


def _server_reads(server: Server, body: dict[str, Any], pick: Any) -> set[Decimal]:
    """The value the server gives now and right after (the source's read falls between or on them)."""
    return {Decimal(pick(server.info(body))) for _ in range(2)}


def _ctx(server: Server, dex: str, coin: str, key: str) -> str:
    meta, ctxs = server.info({"type": "metaAndAssetCtxs", "dex": dex})  # type: ignore[misc]
    return str(ctxs[[u["name"] for u in meta["universe"]].index(coin)][key])


def test_hyperliquid_mid_is_the_venue_s_all_mids_string(server: Server, tmp_path: Path) -> None:
    silver = _build(tmp_path, "hyperliquid", url=server.url)  # coin defaults to the asset, xyz:SILVER
    btc = _build(tmp_path, "hyperliquid", url=server.url, coin="BTC")
    assert silver.id == f"hyperliquid:{server.url}:xyz:SILVER:mid" and btc.id == f"hyperliquid:{server.url}:BTC:mid"
    [qs] = _quotes(silver, [123])
    [qb] = _quotes(btc, [456])
    assert qs is not None and qb is not None and (qs.ts_ms, qb.ts_ms) == (123, 456)
    assert qs.px in _server_reads(server, {"type": "allMids", "dex": "xyz"}, lambda m: m["xyz:SILVER"])
    assert qb.px in _server_reads(server, {"type": "allMids", "dex": ""}, lambda m: m["BTC"])
    # and those are the resting levels' midpoints, worked by hand
    assert (qs.px, qb.px) == (Decimal("32.01"), Decimal("99997.5"))


def test_hyperliquid_oracle_and_mark_from_asset_contexts(server: Server, tmp_path: Path) -> None:
    [oracle] = _quotes(_build(tmp_path, "hyperliquid", url=server.url, field="oracle"), [1])
    [mark] = _quotes(_build(tmp_path, "hyperliquid", url=server.url + "/", field="mark"), [1])
    assert oracle is not None and mark is not None
    assert oracle.px == Decimal(_ctx(server, "xyz", COIN, "oraclePx")) and str(oracle.px) == "32.0"
    assert mark.px == Decimal(_ctx(server, "xyz", COIN, "markPx"))
    assert _quotes(_build(tmp_path, "hyperliquid", url=server.url, coin="xyz:GOLD", field="oracle"), [1]) == [None]
    assert _quotes(_build(tmp_path, "hyperliquid", url=server.url, coin="DOGE"), [1]) == [None]


def _ccxt(server: Server, tmp_path: Path, symbol: str, **params: Any) -> Source:
    return _build(tmp_path, "ccxt", venue="hyperliquid", symbol=symbol,
                  urls={"public": server.url, "private": server.url}, **params)


def _book_mid(server: Server, coin: str) -> Decimal:
    book = server.info({"type": "l2Book", "coin": coin})
    bids, asks = book["levels"]  # type: ignore[index]
    return (Decimal(bids[0]["px"]) + Decimal(asks[0]["px"])) / 2


def test_ccxt_mid_is_the_exact_midpoint_of_the_top_of_book(server: Server, tmp_path: Path) -> None:
    btc = _ccxt(server, tmp_path, "BTC/USDC:USDC")
    assert btc.id == "ccxt:hyperliquid:BTC/USDC:USDC:mid"
    [q] = _quotes(btc, [7])
    assert q is not None and q.px == _book_mid(server, "BTC") == Decimal("99997.5")
    assert q.ts_ms != 7  # the book's own time
    [q] = _quotes(_ccxt(server, tmp_path, "XYZ-SILVER/USDC:USDC"), [7])
    assert q is not None and q.px == _book_mid(server, COIN) == Decimal("32.01")


def test_ccxt_options_go_to_the_constructor(tmp_path: Path) -> None:
    src = _build(tmp_path, "ccxt", venue="hyperliquid", symbol="BTC/USDC:USDC", options={"timeout": 4321},
                 urls={"public": "http://127.0.0.1:9"})
    ex = cast(Any, src).exchange
    assert ex.timeout == 4321 and ex.urls["api"]["public"] == "http://127.0.0.1:9"
    assert ex.urls["api"]["private"].startswith("https://")  # merged over ccxt's own: the rest stays
    asyncio.run(src.aclose())


def test_ccxt_last_from_the_ticker(server: Server, tmp_path: Path) -> None:
    """ccxt's hyperliquid ticker has no last trade price field, so ccxt fills ``last`` with the
    context's midPx."""
    [q] = _quotes(_ccxt(server, tmp_path, "BTC/USDC:USDC", field="last"), [7])
    assert q is not None and q.px == Decimal(_ctx(server, "", "BTC", "midPx"))

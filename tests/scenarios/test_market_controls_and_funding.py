"""Funding paid through the engine, HIP-3 deployer actions (setOracle, open-interest caps,
funding multipliers, haltTrading), market status, and a silver perp through a COMEX weekend
(shared/reference/hyperliquid-api.md §6.1, §6.8, §6.9; perp-mechanics.md §2.4, §2.11, §2.12)."""

from __future__ import annotations

from datetime import UTC, datetime

from scenario_kit import ALICE, BOB, BTC_ID, CAROL, P, S, Sim, btc_spec, usd

from perpbox.core.numbers import USD
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.liquidation import backstop_address
from perpbox.exchange.results import OK, Error, Filled, OrderError, Resting
from perpbox.ledger.ledger import dex_account, wallet_owner
from perpbox.market.funding import HOUR_MS, FundingParams
from perpbox.market.margin import MarginTable
from perpbox.market.oracle import OffHours, OracleDefinition, OracleKind, SessionCalendar
from perpbox.market.spec import MarketSpec

DEPLOYER = "0x" + "de" * 20
SILVER_ID = 110000


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def _two_sided(sim: Sim, asset: int, bid: int | str, ask: int | str, size: str, mm: str = BOB) -> None:
    sim.order(mm, asset, True, bid, size)
    sim.order(mm, asset, False, ask, size)


# ==================================================================================================
# funding
# ==================================================================================================
def test_textbook_funding_index_60000_mark_60300_pays_half_a_percent_per_8h(sim: Sim) -> None:
    """Index 60,000 and a book whose impact bid is 60,300: premium 0.5% per 8 h, no interest or
    clamp: the long pays 0.5% of 60,000 per BTC to the short at the 8-hour settlement —
    0.5% × 3 × 365 = 547.5% a year."""
    params = FundingParams(interval_ms=8 * HOUR_MS, interest_8h=0, clamp_8h=0, impact_notional=20_000 * USD)
    sim.ts = (sim.ts // (8 * HOUR_MS) + 1) * 8 * HOUR_MS  # listed at the start of an interval
    btc = sim.list_market(btc_spec(funding=params), 60_000)
    for u in (ALICE, BOB, CAROL):
        sim.deposit(u, 1_000_000)
    _two_sided(sim, BTC_ID, 60_300, 60_310, "5")
    sim.order(ALICE, BTC_ID, True, 60_310, "1")  # Alice long 1 from Bob; Bob short
    start = sim.ts
    ticks = 0
    while sim.ts < start + 8 * HOUR_MS:
        sim.ts = min(sim.ts + 60_000 - 1, start + 8 * HOUR_MS - 1)  # Sim.do adds 1 ms
        sim.tick(BTC_ID, 60_000)  # the index (oracle) stays at 60,000
        ticks += 1
    (settled,) = sim.of(V.FundingSettled)
    assert settled.rate == 500_000  # 0.5% in 1e-8 units
    assert settled.premium == 5 * 10**9  # 0.005 in 1e-12
    assert settled.px == P(btc, 60_000)
    assert dict((u, a) for u, _, a in settled.payments) == {ALICE: usd(300), BOB: -usd(300)}
    assert settled.remainder == 0
    assert sim.pos(ALICE, BTC_ID).cum_funding == usd(300)
    assert settled.rate * 3 * 365 == 547_500_000  # 547.5% a year
    sim.audit()


def test_hourly_funding_on_the_oracle_with_the_interest_rate_and_exact_remainder(sim: Sim) -> None:
    """Hyperliquid's default: a flat book pays the interest rate, 0.01%/8h → 0.00125% per hour,
    on position × oracle.  0.00007 BTC × 100,000 × 0.0000125 = 0.0000875 USDC: the long pays 88
    micro-USDC (up), the short receives 87 (down), and 1 is the remainder."""
    sim.list_market(btc_spec(), 100_000)
    for u in (ALICE, BOB):
        sim.deposit(u, 100_000)
    sim.order(BOB, BTC_ID, False, 100_000, "0.001")
    sim.order(ALICE, BTC_ID, True, 100_000, "0.001")
    sim.order(ALICE, BTC_ID, False, 100_000, "0.00093")  # close most: 0.00007 left
    sim.order(BOB, BTC_ID, True, 100_000, "0.00093")
    hour = (sim.ts // HOUR_MS + 1) * HOUR_MS
    sim.ts = hour - 1
    sim.tick(BTC_ID, 100_000)
    (settled,) = sim.of(V.FundingSettled)
    assert settled.rate == 1_250
    assert sorted(a for _, _, a in settled.payments) == [-87, 88] and settled.remainder == 1
    assert sim.ex.funding.predicted(BTC_ID) == 1_250
    assert [r.rate for r in sim.ex.funding.history(BTC_ID)] == [1_250]
    sim.audit()


# ==================================================================================================
# HIP-3 deployer actions and market controls
# ==================================================================================================
def _hip3(sim: Sim, **kw: object) -> MarketSpec:
    spec = MarketSpec("xyz:XYZ100", 110_000, 4, MarginTable.single(20), dex="xyz",
                      oracle=OracleDefinition.hip3(), **kw)  # type: ignore[arg-type]
    assert sim.do(C.AddMarket, spec=spec, mark_px=P(spec, 25_000), deployer=DEPLOYER) == OK
    sim.specs[spec.asset] = spec
    return spec


def test_set_oracle_only_by_the_deployer_at_most_every_2_5s_and_mark_moves_at_most_1pct(sim: Sim) -> None:
    spec = _hip3(sim)
    a = spec.asset
    assert sim.do(C.SetOracle, user=ALICE, dex="xyz", oracle_pxs={a: P(spec, 25_100)}) == Error(
        "Only the deployer of this dex may do that.")
    sim.ts += 3_000
    assert sim.do(C.SetOracle, user=DEPLOYER, dex="xyz", oracle_pxs={a: P(spec, 26_000)},
                  mark_pxs=[{a: P(spec, 26_000)}]) == OK
    st = sim.ex.pricing.states[a]
    assert st.oracle == P(spec, 26_000)
    assert st.mark == P(spec, 25_250)  # median input 26,000, moved at most 1% from 25,000
    sim.ts += 1_000
    too_soon = sim.do(C.SetOracle, user=DEPLOYER, dex="xyz", oracle_pxs={a: P(spec, 26_000)})
    assert "at least 2500 ms apart" in too_soon.message
    # no push for 10 s: the mark falls back to the local mark (none without a book: held)
    sim.ts += 10_000
    sim.do(C.Tick)
    assert sim.ex.pricing.states[a].mark == P(spec, 25_250)
    sim.audit()


def test_a_deployer_push_that_moves_the_mark_liquidates_at_once_without_waiting_for_a_tick(sim: Sim) -> None:
    spec = _hip3(sim)
    a = spec.asset
    for user, amount in ((BOB, 100_000), (ALICE, "1261.25")):
        sim.fund(user, amount, dex="xyz")  # a deposit lands on the first dex: sent on to xyz
    sim.order(BOB, a, False, 25_000, "1")
    sim.order(ALICE, a, True, 25_000, "1")  # 20x: $1,250 of margin plus the $11.25 taker fee
    _two_sided(sim, a, 24_000, 24_100, "1")  # the book's local mark: median(24,000, 24,100, 25,000)
    marks = []
    for _ in range(3):  # the deployer pushes 24,000; each push moves the mark 1% at most
        sim.ts += 3_000
        assert sim.do(C.SetOracle, user=DEPLOYER, dex="xyz", oracle_pxs={a: P(spec, 24_000)},
                      mark_pxs=[{a: P(spec, 24_000)}]) == OK
        marks.append(sim.ex.pricing.states[a].mark)
        if sim.of(V.Liquidated):
            break
    # 25,000 → 24,750 → 24,502.5 (value 1,250 − 497.5 = 752.5 > MM 612.6) → 24,257.48 (1% down,
    # rounded to the cent towards the old mark): value 507.48 < MM 606.44.  Within that push it is
    # sold into Bob's 24,000 bid, above the bankruptcy price
    assert marks == [P(spec, 24_750), P(spec, "24502.5"), P(spec, "24257.48")]
    assert [(e.user, e.method) for e in sim.of(V.Liquidated)] == [(dex_account("xyz", ALICE), "market")]
    (fill,) = sim.of(V.Fill)
    assert (fill.taker, fill.px, fill.taker_fee) == (ALICE, P(spec, 24_000), usd("10.8"))
    assert sim.szi(ALICE, a) == 0 and sim.ex.margin.account_value(sim.acct(dex_account("xyz", ALICE))) == usd("239.2")
    sim.audit()


def test_open_interest_cap_rejects_increasing_orders_and_allows_reducing_ones(sim: Sim) -> None:
    spec = _hip3(sim)
    a = spec.asset
    for u in (ALICE, BOB, CAROL):
        sim.fund(u, 1_000_000, dex="xyz")
    # cap $50,000 of open interest at the 25,000 mark = 2 units
    assert sim.do(C.SetOpenInterestCaps, user=DEPLOYER, dex="xyz", caps={a: usd(50_000)}) == OK
    sim.order(BOB, a, False, 25_000, "3")
    # Alice buys 3: only 2 can open; the rest is cancelled at the cap
    resp = sim.order(ALICE, a, True, 25_000, "3")
    assert resp.total_sz == S(spec, "2")
    assert sim.closed()[resp.oid] == "openInterestCapCanceled"
    assert sim.ex.holdings.oi[a] == S(spec, "2")
    # at the cap: an opening order is refused with the venue's message…
    assert sim.order(CAROL, a, True, 25_000, "1") == OrderError(
        f"Order would increase open interest while open interest is capped asset={a}")
    # …and reducing ones are fine: Bob buys back 1 of his short from Alice, who sells 1 of her long
    assert isinstance(sim.order(BOB, a, True, 24_000, "1"), Resting)
    assert isinstance(sim.order(ALICE, a, False, 24_000, "1", reduce_only=True), Filled)
    assert sim.ex.holdings.oi[a] == S(spec, "1")
    sim.audit()


def test_halt_trading_cancels_orders_settles_positions_at_the_mark_and_resumes(sim: Sim) -> None:
    spec = _hip3(sim)
    a = spec.asset
    for u in (ALICE, BOB):
        sim.fund(u, 100_000, dex="xyz")
    sim.order(BOB, a, False, 25_000, "1")
    sim.order(ALICE, a, True, 25_000, "1")
    resting = sim.order(BOB, a, False, 25_500, "1").oid
    assert sim.do(C.HaltTrading, user=ALICE, asset=a, halted=True) == Error(
        "Only the deployer of this dex may do that.")
    sim.tick(a, 25_200)  # no manual marks on a deployer market: the mark stays 25,000
    assert sim.do(C.HaltTrading, user=DEPLOYER, asset=a, halted=True) == OK
    assert sim.closed()[resting] == "canceled"
    (settled,) = sim.of(V.MarketSettled)
    assert settled.px == P(spec, 25_000)
    assert sim.szi(ALICE, a) == 0 and sim.szi(BOB, a) == 0
    # Alice paid 25,000 + 11.25 fee and got 25,000 back
    assert sim.cash(dex_account("xyz", ALICE)) == usd(100_000) - usd("11.25")
    assert sim.order(ALICE, a, True, 25_000, "1") == OrderError(f"Trading is halted. asset={a}")
    assert sim.do(C.HaltTrading, user=DEPLOYER, asset=a, halted=False) == OK
    assert isinstance(sim.order(ALICE, a, True, 25_000, "1"), Resting)
    sim.audit()


def test_market_status_post_only_and_reduce_only(sim: Sim) -> None:
    sim.list_market(btc_spec(), 100_000)
    for u in (ALICE, BOB):
        sim.deposit(u, 100_000)
    sim.order(BOB, BTC_ID, False, 100_000, "0.1")
    sim.order(ALICE, BTC_ID, True, 100_000, "0.1")
    assert sim.do(C.SetMarketStatus, asset=BTC_ID, status="postOnly") == OK
    assert "post-only" in sim.order(ALICE, BTC_ID, True, 99_000, "0.1").message
    assert isinstance(sim.order(ALICE, BTC_ID, True, 99_000, "0.1", tif="Alo"), Resting)
    assert sim.do(C.SetMarketStatus, asset=BTC_ID, status="reduceOnly") == OK
    assert "reduce-only" in sim.order(BOB, BTC_ID, False, 101_000, "0.1").message
    assert isinstance(sim.order(ALICE, BTC_ID, False, 101_000, "0.1", reduce_only=True), Resting)
    sim.audit()


def test_funding_multiplier_scales_the_rate_for_the_deployers_market(sim: Sim) -> None:
    spec = _hip3(sim)
    a = spec.asset
    assert sim.do(C.SetFundingMultipliers, user=DEPLOYER, dex="xyz", multipliers={a: 2 * 10**8}) == OK
    assert sim.ex.funding.predicted(a) == 2_500  # flat book: interest 1,250 per hour × 2
    assert sim.do(C.SetFundingMultipliers, user=DEPLOYER, dex="xyz", multipliers={a: 11 * 10**8}) == Error(
        "Funding multiplier must be between 0 and 10.")


# ==================================================================================================
# sessions: a silver perp through a COMEX weekend
# ==================================================================================================
def _silver(sim: Sim) -> MarketSpec:
    """xyz:SILVER at $30 on a COMEX calendar (±5% discovery band, 5x off hours), listed on a
    Friday an hour before the close."""
    oracle = OracleDefinition(kind=OracleKind.SOURCES, sources=(("comex", 1),), max_age_ms=120_000,
                              session=SessionCalendar.comex_metals(),
                              off_hours=OffHours(ema_tau_ms=3_600_000, band_bps=500, max_leverage=5))
    spec = MarketSpec("xyz:SILVER", SILVER_ID, 2, MarginTable.single(20), dex="xyz", oracle=oracle,
                      funding=FundingParams(impact_notional=6_000 * USD))
    sim.ts = _ms("2026-11-20T21:00:00")
    assert sim.do(C.AddMarket, spec=spec, mark_px=P(spec, 30), deployer=DEPLOYER) == OK
    sim.specs[SILVER_ID] = spec
    _comex(sim, "30")
    return spec


def _comex(sim: Sim, px: str) -> None:
    sim.do(C.FeedPrices, source="comex", pxs={SILVER_ID: P(sim.specs[SILVER_ID], px)})


def test_silver_perp_through_a_comex_weekend_oracle_advanced_internally_and_pulled_back_at_reopen(sim: Sim) -> None:
    spec = _silver(sim)
    for u in (ALICE, BOB):
        sim.fund(u, 1_000_000, dex="xyz")

    def feed(px: str) -> None:
        _comex(sim, px)

    sim.do(C.Tick)
    assert sim.ex.pricing.states[SILVER_ID].oracle == P(spec, 30) and sim.ex.pricing.states[SILVER_ID].session_open
    # 22:00 close: the oracle stops following COMEX; the book trades the weekend higher
    sim.ts = _ms("2026-11-20T22:00:00")
    feed("30.1")  # a late print after the close is ignored
    sim.do(C.Tick)
    st = sim.ex.pricing.states[SILVER_ID]
    assert not st.session_open and st.close_px == P(spec, 30) and st.oracle == P(spec, 30)
    _two_sided(sim, SILVER_ID, "31.9", "32.1", "1000")  # weekend book around $32 (+6.7%)
    # off-hours leverage is capped at 5x although Alice's setting is 20x: $1M margins $5M at most
    assert sim.order(ALICE, SILVER_ID, True, 31, "170000") == OrderError(
        f"Insufficient margin to place order. asset={SILVER_ID}")
    oid = sim.order(ALICE, SILVER_ID, True, 31, "160000").oid  # $4.96M
    sim.cancel(ALICE, SILVER_ID, oid)
    seen = []
    for hours in range(1, 49):  # Friday 23:00 … Sunday 22:00, hourly ticks
        sim.ts = _ms("2026-11-20T22:00:00") + hours * HOUR_MS
        sim.do(C.Tick)
        seen.append(sim.ex.pricing.states[SILVER_ID].oracle)
    # the internal oracle climbs toward the $32 impact mid, slowly (τ = 60 min, steps of at most
    # τ/10), never beyond the ±5% discovery band around the $30 close
    assert seen == sorted(seen) and seen[0] > P(spec, 30)
    assert max(seen) == P(spec, "31.5")  # the band's top: 30 × 1.05
    assert sim.ex.pricing.states[SILVER_ID].mark <= P(spec, "31.5")
    # Sunday 23:00 reopen: COMEX prints $30.40, and the oracle is pulled back to it
    sim.ts = _ms("2026-11-22T23:00:00")
    feed("30.4")
    sim.do(C.Tick)
    st = sim.ex.pricing.states[SILVER_ID]
    assert st.session_open and st.oracle == P(spec, "30.4")
    sim.audit()


def test_discovery_band_keeps_off_hours_liquidations_to_positions_whose_price_lies_inside_it(sim: Sim) -> None:
    """trade.xyz: while the discovery bound is active, positions whose liquidation price lies
    outside it cannot be liquidated.  The mark is held inside the ±5% band around the close, so a
    weekend squeeze of the book to $40 liquidates the short whose liquidation price is ~$30.74 and
    leaves the one at ~$31.70 (beyond the $31.50 bound) alone."""
    _silver(sim)
    vault = backstop_address(sim.ex.board.dexes["xyz"])
    sim.fund(vault, 1_000_000, dex="xyz")  # the dex's backstop liquidator, funded on its dex
    sim.fund(BOB, 1_000_000, dex="xyz")
    sim.fund(CAROL, "15100", dex="xyz")
    sim.fund(ALICE, 25_000, dex="xyz")
    for short in (CAROL, ALICE):  # each sells 10,000 oz at $30 (20x), paying the 0.015% maker fee
        sim.order(short, SILVER_ID, False, 30, "10000")
        sim.order(BOB, SILVER_ID, True, 30, "10000")
    # short value = cash + 10,000 × (30 − mark) against MM 10,000 × mark / 40: liquidated above
    # (15,055 / 10,000 + 30) / 1.025 = $30.737 (Carol) and (24,955 / 10,000 + 30) / 1.025 = $31.703
    sim.do(C.Tick)
    sim.ts = _ms("2026-11-20T22:00:00")  # the COMEX close
    sim.do(C.Tick)
    _two_sided(sim, SILVER_ID, "39.9", "40.1", "5000")  # the weekend book squeezed 33% higher
    # ticks every 5 minutes until 22:55, before the first funding payment (23:00), which at this
    # premium would pay the shorts 4% an hour and blur the point
    liquidated, marks = [], []
    for step in range(1, 12):
        sim.ts = _ms("2026-11-20T22:00:00") + step * 5 * 60_000
        sim.do(C.Tick)
        liquidated += [wallet_owner(e.user) for e in sim.of(V.Liquidated)]  # its account on xyz
        marks.append(sim.ex.pricing.states[SILVER_ID].mark)
        assert not sim.of(V.FundingSettled)
    assert marks[0] > P(sim.specs[SILVER_ID], "30.737")  # past Carol's price on the first step
    assert marks[1:] == [P(sim.specs[SILVER_ID], "31.5")] * 10  # then pinned at the bound
    # Carol: the book's asks ($40.10) are beyond her bankruptcy price, and at the pinned mark her
    # $55 of equity is below 2/3 of maintenance: the dex's vault takes her short over
    assert CAROL in liquidated and sim.szi(CAROL, SILVER_ID) == 0
    assert sim.szi(vault, SILVER_ID) == -S(sim.specs[SILVER_ID], "10000")
    assert ALICE not in liquidated and sim.szi(ALICE, SILVER_ID) == -S(sim.specs[SILVER_ID], "10000")
    sim.audit()

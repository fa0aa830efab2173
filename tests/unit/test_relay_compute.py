"""The relay's pricing step (``deployer.compute.price_asset``), with prices worked out by hand.

SILVER with szDecimals 2: a price unit is 10^-4 USD, so 32.1 USD is 321000 units."""

from __future__ import annotations

from decimal import Decimal

from perpbox.deployer.compute import AssetState, Book, Fetched, fmt_units, price_asset, to_units
from perpbox.deployer.definition import AssetDefinition
from perpbox.deployer.sources import Quote, SourceSpec
from perpbox.market.oracle import OffHours, OnInsufficient, SessionCalendar

PXD = 4
NOW = 1_767_225_600_000 + 3 * 86_400_000 + 12 * 3_600_000  # Sunday 2026-01-04 12:00 UTC (2026-01-01 a Thursday)
A, B, C = SourceSpec("replay", weight=2), SourceSpec("replay", weight=1), SourceSpec("replay", weight=1)
# Monday 00:00-01:00 only: closed at NOW
MONDAY_HOUR = SessionCalendar("monday hour", ((0, 60),))


def quote(spec: SourceSpec, name: str, px: str, age_ms: int = 1_000) -> Fetched:
    return Fetched(spec=spec, source=name, quote=Quote(name, Decimal(px), NOW - age_ms))


def asset(**kw: object) -> AssetDefinition:
    return AssetDefinition(coin="xyz:SILVER", sources=(A, B, C), **kw)  # type: ignore[arg-type]


def state(oracle: int, **kw: object) -> AssetState:
    return AssetState(oracle=oracle, day=NOW // 86_400_000, day_px=oracle, ts=NOW - 3_000, **kw)  # type: ignore[arg-type]


def test_units_round_half_even_and_print_without_trailing_zeros() -> None:
    assert to_units(Decimal("32.10005"), PXD) == 321000  # half to even
    assert to_units(Decimal("32.10015"), PXD) == 321002
    assert fmt_units(321000, PXD) == "32.1" and fmt_units(320000, PXD) == "32" and fmt_units(5, PXD) == "0.0005"


def test_weighted_median_drops_the_outlier_past_the_deviation_guard() -> None:
    # (32.10, w2) (32.12, w1) (40.00, w1): first median 32.10 (cumulative weight 2 of 4); 40.00 is
    # 24.6% away (> 5%) and dropped; the median of the rest is 32.10 again (2 of 3).
    srcs = [quote(A, "a", "32.10"), quote(B, "b", "32.12"), quote(C, "c", "40.00")]
    up = price_asset(asset(max_deviation_bps=500), state(320000), NOW, PXD, srcs, [], [], Book())
    assert up.status == "ok" and up.oracle == 321000 and up.clamps == []
    assert [r["status"] for r in up.inputs] == ["used", "used", "deviation"]
    assert up.inputs[0] == {"source": "a", "weight": 2, "px": "32.10", "ts": NOW - 1_000, "status": "used",
                            "role": "oracle"}
    assert up.external == 321000 and up.marks == [321000]  # no external sources: the oracle


def test_a_jump_is_stepped_one_percent_per_update_and_the_clamp_is_recorded() -> None:
    srcs = [quote(A, "a", "32.10"), quote(B, "b", "32.10"), quote(C, "c", "32.10")]
    up = price_asset(asset(), state(300000), NOW, PXD, srcs, [], [], Book())
    assert up.oracle == 303000  # 30.0 + 1% = 30.3
    assert up.clamps == [{"clamp": "step", "from": "32.1", "to": "30.3"}]
    assert up.state.oracle == 303000


def test_the_day_clamp_holds_prices_within_ten_times_the_start_of_day() -> None:
    # start of day 10.0; at 100.0 (= 10x) already; the sources say 105: the step allows 101, the
    # day clamp 100
    st = AssetState(oracle=1_000_000, day=NOW // 86_400_000, day_px=100_000, ts=NOW - 3_000)
    srcs = [quote(A, "a", "105"), quote(B, "b", "105"), quote(C, "c", "105")]
    up = price_asset(asset(), st, NOW, PXD, srcs, [], [], Book())
    assert up.oracle == 1_000_000
    assert up.clamps == [{"clamp": "step", "from": "105", "to": "101"}, {"clamp": "day", "from": "101", "to": "100"}]


def test_a_new_utc_day_starts_from_the_last_oracle() -> None:
    st = AssetState(oracle=321000, day=NOW // 86_400_000 - 1, day_px=10, ts=NOW - 3_000)
    up = price_asset(asset(), st, NOW, PXD, [quote(A, "a", "32.1")], [], [], Book())
    assert up.state.day == NOW // 86_400_000 and up.state.day_px == 321000 and up.oracle == 321000


def test_too_few_fresh_sources_hold_the_last_price_and_say_so() -> None:
    srcs = [quote(A, "a", "33", age_ms=11_000), quote(B, "b", "32.5"),
            Fetched(spec=C, source="c", error="TimeoutError: ")]
    up = price_asset(asset(min_sources=2), state(320000), NOW, PXD, srcs, [], [], Book())
    assert up.status == "held" and up.oracle == 320000
    assert [r["status"] for r in up.inputs] == ["stale", "used", "error"]
    assert up.inputs[2]["error"] == "TimeoutError: "
    assert up.steps == [{"step": "hold", "px": "32"}]


def test_too_few_sources_fall_back_to_the_book_mid_when_the_definition_says_book() -> None:
    book = Book(bids=((320000, 100),), asks=((320400, 100),))
    up = price_asset(asset(min_sources=2, on_insufficient=OnInsufficient.BOOK), state(320000), NOW, PXD,
                     [quote(A, "a", "35")], [], [], book)
    assert up.status == "book" and up.oracle == 320200  # (32.00 + 32.04) / 2


def test_too_few_sources_halt_the_market_once_when_the_definition_says_halt() -> None:
    up = price_asset(asset(min_sources=2, on_insufficient=OnInsufficient.HALT), state(320000), NOW, PXD,
                     [quote(A, "a", "35")], [], [], Book())
    assert up.status == "halted" and up.oracle == 320000 and up.state.halted
    assert up.actions == [{"type": "perpDeploy", "haltTrading": {"coin": "xyz:SILVER", "isHalted": True}}]
    again = price_asset(asset(min_sources=2, on_insufficient=OnInsufficient.HALT), up.state, NOW + 3_000, PXD,
                        [quote(A, "a", "35")], [], [], Book())
    assert again.status == "halted" and again.actions == []  # resuming is a person's call


def _deep_book(bid: int, ask: int) -> Book:
    # 100000 lots (1000 SILVER) a side: a $20,000 impact order fills inside the first level
    return Book(bids=((bid, 100_000),), asks=((ask, 100_000),))


def test_off_hours_the_oracle_follows_the_impact_mid_through_the_slow_ema() -> None:
    # the session closed since the last update: close_px = 32.0.  dt = 300 s, tau = 3600 s:
    # 1 - exp(-1/12) = 0.0799555854; impact mid 33.01; step = 10100 units x 0.0799555854 = 807.55,
    # truncated toward the current oracle: 807
    defn = asset(session=MONDAY_HOUR, off_hours=OffHours(ema_tau_ms=3_600_000, band_bps=500))
    st = AssetState(oracle=320000, day=NOW // 86_400_000, day_px=320000, ts=NOW - 300_000, session_open=True)
    up = price_asset(defn, st, NOW, PXD, [quote(A, "a", "40")], [], [], _deep_book(330000, 330200))
    assert up.session == "closed" and up.oracle == 320807 and up.clamps == []
    assert up.state.close_px == 320000 and not up.state.session_open
    assert up.steps[0] == {"step": "off_hours_ema", "impact_mid": "33.01", "dt_ms": 300_000, "px": "32.0807"}


def test_off_hours_the_relay_carries_what_each_three_second_update_rounds_off() -> None:
    # the book's impact mid 100 units (0.01 USD) above the oracle, tau = 30 min, an update every 3 s:
    # each update's move is 100 x (1 - exp(-3/1800)) = 0.1665 units, nothing once truncated.  Carried,
    # the oracle moves once the carry reaches a unit, and after 100 updates (300 s) the exact EMA has
    # moved 100 x (1 - exp(-1/6)) = 15.35 units.
    defn = asset(session=MONDAY_HOUR, off_hours=OffHours(ema_tau_ms=1_800_000, band_bps=500))
    st = AssetState(oracle=320000, day=NOW // 86_400_000, day_px=320000, ts=NOW - 3_000, session_open=False,
                    close_px=320000)
    book = _deep_book(320050, 320150)
    now = NOW
    for _ in range(100):
        up = price_asset(defn, st, now, PXD, [], [], [], book)
        st, now = up.state, now + 3_000
    assert 15 <= st.oracle - 320000 <= 16


def test_off_hours_the_discovery_band_bounds_the_oracle() -> None:
    # dt capped at tau/10: 1 - exp(-0.1) = 0.0951625820; mid 40.0: 80000 x 0.09516 = 7613 -> 32.7613,
    # band 1% of the 32.0 close: 32.32
    defn = asset(session=MONDAY_HOUR, off_hours=OffHours(ema_tau_ms=3_600_000, band_bps=100))
    st = AssetState(oracle=320000, day=NOW // 86_400_000, day_px=320000, ts=NOW - 600_000, session_open=False,
                    close_px=320000)
    up = price_asset(defn, st, NOW, PXD, [], [], [], _deep_book(399_900, 400_100))
    assert up.oracle == 323200
    assert up.clamps == [{"clamp": "discovery_band", "from": "32.7613", "to": "32.32"}]


def test_off_hours_anchors_keep_the_oracle_near_the_after_hours_quote() -> None:
    # free oracle 32.0807 (as above); anchor 31.50 with a 1% band: at most 31.815
    defn = asset(session=MONDAY_HOUR, off_hours=OffHours(ema_tau_ms=3_600_000, band_bps=500), anchor_band_bps=100,
                 anchors=(SourceSpec("ccxt"),))
    st = AssetState(oracle=320000, day=NOW // 86_400_000, day_px=320000, ts=NOW - 300_000, session_open=False,
                    close_px=320000)
    anchor = quote(SourceSpec("ccxt"), "cfd", "31.50")
    up = price_asset(defn, st, NOW, PXD, [], [anchor], [], _deep_book(330000, 330200))
    assert up.oracle == 318150
    assert up.clamps == [{"clamp": "anchor_band", "from": "32.0807", "to": "31.815"}]
    assert up.inputs[-1]["role"] == "anchor" and up.inputs[-1]["status"] == "used"


def test_the_reopen_pulls_back_at_the_definitions_step_until_it_reaches_the_external_price() -> None:
    defn = asset(session=SessionCalendar("always", ((0, 7 * 1440),)), reopen_step_bps=50)
    st = AssetState(oracle=320000, day=NOW // 86_400_000, day_px=320000, ts=NOW - 3_000, session_open=False,
                    close_px=320000)
    first = price_asset(defn, st, NOW, PXD, [quote(A, "a", "33")], [], [], Book())
    assert first.session == "reopen" and first.oracle == 321600  # 0.5% of 32.0 = 0.16
    assert first.state.reopening
    second = price_asset(defn, first.state, NOW + 3_000, PXD, [quote(A, "a", "32.17", age_ms=0)], [], [], Book())
    assert second.oracle == 321700 and not second.state.reopening  # inside 0.5% of 32.16: reached
    assert second.steps[-1] == {"step": "reopened", "px": "32.17"}


def test_external_perp_price_and_mark_inputs() -> None:
    defn = asset(external=(SourceSpec("ccxt"),), mark_inputs=("oracle", "external"))
    ext = quote(SourceSpec("ccxt"), "perp", "32.2")
    up = price_asset(defn, state(320000), NOW, PXD, [quote(A, "a", "32.1")], [], [ext], Book())
    assert up.oracle == 321000 and up.external == 322000 and up.marks == [321000, 322000]


def test_margin_table_switches_at_the_close_and_back_at_the_reopen() -> None:
    defn = asset(session=MONDAY_HOUR, margin_table_id=10, off_hours_margin_table_id=11)
    st = AssetState(oracle=320000, day=NOW // 86_400_000, day_px=320000, ts=NOW - 3_000, session_open=True)
    closing = price_asset(defn, st, NOW, PXD, [], [], [], Book())
    assert closing.actions == [{"type": "perpDeploy", "setMarginTableIds": [["xyz:SILVER", 11]]}]
    monday = NOW + 12 * 3_600_000 + 60_000  # Monday 00:01
    opening = price_asset(defn, closing.state, monday, PXD, [], [], [], Book())
    assert opening.actions == [{"type": "perpDeploy", "setMarginTableIds": [["xyz:SILVER", 10]]}]

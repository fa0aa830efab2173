"""The monitor's rules, decisions and levers, with time given as data: the default rules file (the
HIP-3 builder guidance) escalates and de-escalates in the order the guidance gives, with
hysteresis; the levers respect the venue's cap floor and undo what they did."""

from __future__ import annotations

from decimal import Decimal

import pytest

from perpbox.monitor.channels import Position, book_values, position_values
from perpbox.monitor.decide import Decider, Transition
from perpbox.monitor.responses import Levers, MarketParams
from perpbox.monitor.rules import RulesError, load_rules, parse_rules

D = Decimal
COIN = "xyz:SILVER"


def _run(decider: Decider, steps: list[tuple[int, dict[str, Decimal | None]]]) -> list[tuple[int, str, str, int, int]]:
    out = []
    for now, values in steps:
        for t in decider.evaluate(COIN, values, now):
            out.append((now, t.rule.id, t.kind, t.level_before, t.level_after))
    return out


def test_the_default_rules_are_the_guidance() -> None:
    rules = load_rules()
    by_id = {r.id: r for r in rules.rules}
    assert (by_id["feed_silent_level1"].describe(), by_id["feed_silent_level1"].level) == ("feed_silent_s > 2.5", 1)
    assert (by_id["feed_silent_level2"].response, by_id["feed_silent_level2"].factor) == ("cut_oi_caps", D("0.5"))
    assert {n: str(s.condition) for n, s in rules.signals.items()} == {
        "A": "oracle_external_dev_pct > 2", "B": "mark_mid_dev_pct > 1", "C": "oracle_external_dev_pct > 2",
        "D": "mark_mid_dev_pct > 1"}
    assert rules.signals["C"].for_ms == rules.signals["D"].for_ms == 5_000
    assert [(by_id[r].response, by_id[r].level) for r in ("depeg_level1", "depeg_level2", "depeg_halt")] == [
        ("freeze_oi", 1), ("step_down_margin_table", 2), ("halt", 3)]
    assert by_id["depeg_halt"].for_ms == 30_000
    assert by_id["depth_collapse"].response == "step_down_margin_table"
    assert (rules.price_ms, rules.book_ms, rules.positions_ms) == (1_000, 5_000, 60_000)


def test_a_silent_feed_escalates_then_clears_with_hysteresis() -> None:
    d = Decider(load_rules())
    silent = lambda s: {"feed_silent_s": D(s)}  # noqa: E731
    got = _run(d, [(0, silent("1")), (1_000, silent("3")), (2_000, silent("11")),
                   # the feed is back: level 1 clears 10 s later, level 2 30 s later ...
                   (3_000, silent("0.5")), (8_000, silent("0.5")),
                   # ... but a relapse past 2.5 s at 9 s restarts level 1's clock (hysteresis); level 2's
                   # condition (> 10 s) stayed false, so its clock runs on from 3 s
                   (9_000, silent("3")), (10_000, silent("0.5")), (19_999, silent("0.5")), (20_000, silent("0.5")),
                   (32_999, silent("0.5")), (33_000, silent("0.5"))])
    assert got == [(1_000, "feed_silent_level1", "raise", 0, 1), (2_000, "feed_silent_level2", "raise", 1, 2),
                   (20_000, "feed_silent_level1", "clear", 2, 2), (33_000, "feed_silent_level2", "clear", 2, 0)]


def test_a_depeg_escalates_in_the_guidance_order_to_a_halt_at_thirty_seconds() -> None:
    d = Decider(load_rules())
    depeg = {"oracle_external_dev_pct": D("3"), "mark_mid_dev_pct": D("1.5")}
    calm = {"oracle_external_dev_pct": D("0.1"), "mark_mid_dev_pct": D("0.05")}
    got = _run(d, [(t, depeg) for t in range(0, 31_000, 1_000)] + [(31_000, calm), (61_000, calm), (91_000, calm)])
    assert got == [(0, "depeg_level1", "raise", 0, 1),  # A and B: two thresholds
                   (5_000, "depeg_level2", "raise", 1, 2),  # C and D too: it persisted 5 s
                   (30_000, "depeg_halt", "raise", 2, 3),  # two or more for 30 s
                   (61_000, "depeg_level1", "clear", 3, 3), (91_000, "depeg_level2", "clear", 3, 3),
                   (91_000, "depeg_halt", "clear", 3, 0)]


def test_a_missing_measurement_never_holds() -> None:
    d = Decider(load_rules())
    assert _run(d, [(t, {"oracle_external_dev_pct": None, "feed_silent_s": None}) for t in range(0, 60_000, 1_000)]
                ) == []


def test_signals_from_one_measurement_count_twice_once_it_persists() -> None:
    d = Decider(load_rules())
    got = _run(d, [(t, {"oracle_external_dev_pct": D("5")}) for t in (0, 4_000, 5_000)])
    # A alone is one threshold; A persisting 5 s is C as well: two (the guidance: "C/D: either
    # persisting > 5 s")
    assert got == [(5_000, "depeg_level1", "raise", 0, 1)]


@pytest.mark.parametrize(("text", "message"), [
    ('[[rule]]\nid = "x"\nwhen = "a >> 1"\nlevel = 1', "not '<measurement> <op> <number>'"),
    ('[[rule]]\nid = "x"\nwhen = "a > 1"\nlevel = 4', "level: 1, 2 or 3"),
    ('[[rule]]\nid = "x"\nwhen = "a > 1"\nlevel = 1\nresponse = "panic"', "response"),
    ('[[rule]]\nid = "x"\nwhen = "a > 1"\nall = ["b > 1"]\nlevel = 1', "exactly one of"),
    ('[[rule]]\nid = "x"\nsignals_at_least = 2\nsignals = ["Z"]\nlevel = 1', "signals"),
    ('[[rule]]\nid = "x"\nwhen = "a > 1"\nlevel = 1\nfactor = "1.5"', "factor"),
    ('[[rule]]\nid = "x"\nwhen = "a > 1"\nlevel = 1\n[[rule]]\nid = "x"\nwhen = "a > 1"\nlevel = 1', "share an id"),
])
def test_a_bad_rules_file_names_the_rule_and_key(text: str, message: str) -> None:
    import tomllib

    with pytest.raises(RulesError, match=message):
        parse_rules(tomllib.loads(text))


def _t(rule_id: str, kind: str = "raise") -> Transition:
    rule = next(r for r in load_rules().rules if r.id == rule_id)
    return Transition(COIN, rule, kind, 0, 0, rule.level, {})


def test_cutting_the_oi_cap_halves_it_within_the_venues_floor() -> None:
    levers = Levers()
    p = MarketParams(COIN, oi_cap_usd=5_000_000, oi_usd=D("3200000"))
    assert levers.respond(_t("feed_silent_level2"), p)[0] == {
        "type": "perpDeploy", "setOpenInterestCaps": [[COIN, 2_500_000]]}
    # OI over the cap: half of it (3M) is the floor
    assert Levers().respond(_t("feed_silent_level2"), MarketParams(COIN, 5_000_000, D("6000000")))[0] == {
        "type": "perpDeploy", "setOpenInterestCaps": [[COIN, 3_000_000]]}
    # uncapped: half of the OI, never under $1M
    assert Levers().respond(_t("feed_silent_level2"), MarketParams(COIN, 0, D("1500000.5")))[0] == {
        "type": "perpDeploy", "setOpenInterestCaps": [[COIN, 1_000_000]]}


def test_freezing_sets_the_cap_to_the_open_interest_and_never_raises_it() -> None:
    p = MarketParams(COIN, oi_cap_usd=5_000_000, oi_usd=D("3200000.25"))
    assert Levers().respond(_t("depeg_level1"), p)[0] == {
        "type": "perpDeploy", "setOpenInterestCaps": [[COIN, 3_200_001]]}  # rounded up
    action, why = Levers().respond(_t("depeg_level1"), MarketParams(COIN, 2_000_000, D("3000000")))
    assert action is None and "already 2000000" in why


def test_a_lever_held_by_two_rules_is_restored_when_the_last_one_clears() -> None:
    levers = Levers()
    p = MarketParams(COIN, oi_cap_usd=5_000_000, oi_usd=D("3200000"))
    levers.respond(_t("depeg_level1"), p)
    p.oi_cap_usd = 3_200_000
    levers.respond(_t("feed_silent_level2"), p)
    p.oi_cap_usd = 1_600_000
    assert levers.respond(_t("depeg_level1", "clear"), p)[0] is None
    assert levers.respond(_t("feed_silent_level2", "clear"), p)[0] == {
        "type": "perpDeploy", "setOpenInterestCaps": [[COIN, 5_000_000]]}


def test_stepping_down_the_margin_table_and_back_and_the_halt() -> None:
    levers = Levers()
    p = MarketParams(COIN, margin_table_id=10, tables={10: 10, 11: 5, 12: 3, 13: 20})
    assert levers.respond(_t("depeg_level2"), p) == (
        {"type": "perpDeploy", "setMarginTableIds": [[COIN, 11]]}, "margin table 10 (10x) → 11 (5x)")
    p.margin_table_id = 11
    assert levers.respond(_t("depeg_level2", "clear"), p)[0] == {
        "type": "perpDeploy", "setMarginTableIds": [[COIN, 10]]}
    # no lower table listed: the flat table (ids 1-50) at half the leverage; at 1x, nothing
    lowest = MarketParams(COIN, margin_table_id=12, tables={10: 10, 12: 3})
    assert Levers().respond(_t("depeg_level2"), lowest)[0] == {"type": "perpDeploy", "setMarginTableIds": [[COIN, 1]]}
    assert Levers().respond(_t("depeg_level2"), MarketParams(COIN, margin_table_id=1, tables={1: 1}))[0] is None
    assert Levers().respond(_t("depeg_halt"), p)[0] == {"type": "perpDeploy",
                                                         "haltTrading": {"coin": COIN, "isHalted": True}}
    assert Levers().respond(_t("depeg_halt", "clear"), p)[0] is None  # a person resumes the market


def test_book_channel_numbers_worked_by_hand() -> None:
    bids = [(D("100"), D("2")), (D("99.4"), D("1")), (D("98.5"), D("3"))]
    asks = [(D("100.2"), D("1")), (D("100.8"), D("2")), (D("102.5"), D("1"))]
    trades = [{"px": "100", "sz": "3", "time": 99_000}, {"px": "101", "sz": "1", "time": 39_000}]
    v = book_values(100_000, bids, asks, trades)
    # mid 100.1; ±0.5% = [99.5995, 100.6005]: 200 + 100.2; ±1%: + 99.4 + 201.6; ±2%: + 295.5
    assert v["depth_0_5pct_usd"] == D("300.2") and v["depth_1pct_usd"] == D("601.2")
    assert v["depth_2pct_usd"] == D("896.7")
    assert v["spread_pct"] == D("0.2") / D("100.1") * 100
    assert v["taker_volume_usd"] == D("300")  # the trade 61 s ago is out of the minute
    assert v["taker_vs_depth_1pct"] == D("300") / D("601.2")


def test_position_channel_numbers_worked_by_hand() -> None:
    ctx = {"oraclePx": "100", "openInterest": "10", "dayNtlVlm": "500"}
    positions = [Position("a", D("6"), D("110"), D("-60"), D("66")), Position("b", D("4"), D("95"), D("20"), D("38")),
                 Position("c", D("-10"), D("100"), D("0"), D("100"))]
    v = position_values(ctx, D("2000"), positions, D("0.02"))
    assert (v["oi_usd"], v["oi_to_volume"], v["oi_cap_use_pct"]) == (D("1000"), D("2"), D("50"))
    assert v["top1_share_pct"] == D("100") and v["top5_share_pct"] == D("100")
    # the largest is c (short 10): no loss now; at 102 (2% against it) it loses 20 of its 100 margin
    assert v["top_position_loss_margin_pct"] == D("0") and v["top_position_stressed_loss_margin_pct"] == D("20")
    assert v["long_upnl_margin_pct"] == D("-40") / D("104") * 100 and v["short_upnl_margin_pct"] == D("0")


def test_a_funding_multiplier_rule_sets_it_and_restores_the_default() -> None:
    import tomllib

    rules = parse_rules(tomllib.loads('[[rule]]\nid = "squeeze"\nwhen = "oi_cap_use_pct > 95"\nlevel = 1\n'
                                      'response = "set_funding_multiplier"\nmultiplier = "2.5"\nclear_after_s = 0'))
    (rule,) = rules.rules
    d, levers, p = Decider(rules), Levers(), MarketParams(COIN)
    (up,) = d.evaluate(COIN, {"oi_cap_use_pct": D("97")}, 0)
    assert levers.respond(up, p) == ({"type": "perpDeploy", "setFundingMultipliers": [[COIN, "2.5"]]},
                                     "funding multiplier → 2.5")
    (down,) = d.evaluate(COIN, {"oi_cap_use_pct": D("50")}, 1_000)
    assert levers.respond(down, p)[0] == {"type": "perpDeploy", "setFundingMultipliers": [[COIN, "1"]]}
    assert rule.multiplier == D("2.5")
    with pytest.raises(RulesError, match="multiplier"):
        parse_rules(tomllib.loads('[[rule]]\nid = "x"\nwhen = "a > 1"\nlevel = 1\nmultiplier = "11"'))

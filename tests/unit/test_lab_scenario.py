"""Scenario files: durations, tunables and --set, shocks, refusals; the nearest-rank quantiles."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from perpbox.lab.metrics import nearest_rank, usd
from perpbox.lab.scenario import (
    ScenarioError,
    builtin_names,
    builtin_text,
    load_scenario,
    parse_duration,
    parse_override,
    parse_scenario,
)


def test_durations() -> None:
    assert [parse_duration(x, "t") for x in ("500ms", "90s", "30m", "6h", "2d", 1.5)] == [
        500, 90_000, 1_800_000, 21_600_000, 172_800_000, 1_500]
    for bad in ("6 hours", "-1s", True, "1e3s", None):
        with pytest.raises(ScenarioError):
            parse_duration(bad, "t")


def test_calm_is_built_in_and_shows_as_valid_toml() -> None:
    assert "calm" in builtin_names()
    doc = tomllib.loads(builtin_text("calm"))
    assert doc["scenario"]["name"] == "calm"
    sc = load_scenario("calm")
    assert (sc.horizon_ms, sc.step_ms) == (6 * 3_600_000, 1_000)
    assert [m.spec.name for m in sc.config.markets] == ["BTC", "ETH"]
    assert sc.population.half_spread_bps == 1.0 and sc.stress(0) == 1.0


def test_set_overrides_a_tunable_everywhere_it_is_used_and_changes_the_hash() -> None:
    base = load_scenario("calm")
    wide = load_scenario("calm", dict([parse_override("half_spread_bps=3")]))
    assert wide.population.half_spread_bps == 3.0 and wide.tunables["half_spread_bps"] == 3.0
    assert wide.config_hash != base.config_hash
    assert load_scenario("calm", {"half_spread_bps": 1.0}).config_hash == base.config_hash  # the default: same run
    with pytest.raises(ScenarioError, match="not a tunable"):
        load_scenario("calm", {"no_such_key": 1})
    with pytest.raises(ScenarioError, match="must be int"):
        load_scenario("calm", {"lever_leverage": 2.5})
    assert parse_override("name=word") == ("name", "word")
    with pytest.raises(ScenarioError):
        parse_override("novalue")


def _doc(extra: str = "") -> dict[str, object]:
    return tomllib.loads(builtin_text("calm") + extra)


def test_a_price_path_is_piecewise_linear_and_flat_outside_its_points() -> None:
    sc = parse_scenario(_doc('[[shock]]\nkind = "price"\nmarket = "BTC"\npath = [["10m", 1.0], ["20m", 0.5]]\n'), {})
    at = [sc.price_multiplier("BTC", m * 60_000) for m in (0, 10, 15, 20, 60)]
    assert at == [1.0, 1.0, 0.75, 0.5, 0.5]
    assert sc.price_multiplier("ETH", 15 * 60_000) == 1.0


@pytest.mark.parametrize("extra, match", [
    ('[[shock]]\nkind = "price"\nmarket = "DOGE"\npath = [[0, 1.0]]\n', "not a market"),
    ('[[shock]]\nkind = "price"\nmarket = "BTC"\npath = [["1m", 1.0], ["1m", 0.9]]\n', "increase"),
    ('[[shock]]\nkind = "price"\nmarket = "BTC"\npath = [["1m", -1]]\n', "multiplier"),
    ('[[shock]]\nkind = "liquidity"\nstart = "2h"\nend = "1h"\nfactor = 2\n', "start < end"),
    ('[[shock]]\nkind = "tsunami"\n', "kind"),
    ('[[shock]]\nkind = "oracle_outage"\ndex = "abc"\nstart = "1m"\nend = "2m"\n', "not a HIP-3 dex"),
    ('[[actor]]\nkind = "twap"\nmarket = "BTC"\nside = "short"\nnotional_usd = 1e6\ncapital_usd = 100000\n',
     "duration"),
    ('[[actor]]\nkind = "holder"\nmarket = "xyz:XYZ100"\nside = "long"\nnotional_usd = 1\ncapital_usd = 1\n',
     "not a market"),
    ('[[actor]]\nkind = "holder"\nmarket = "BTC"\nside = "up"\nnotional_usd = 1\ncapital_usd = 1\n', "side"),
])
def test_bad_shocks_and_actors_are_refused_with_the_reason(extra: str, match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        parse_scenario(_doc(extra), {})


def test_a_population_key_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(builtin_text("calm").replace("[population]\n", "[population]\nmakerz = 3\n"))
    with pytest.raises(ScenarioError, match="unknown keys"):
        load_scenario(str(path))
    with pytest.raises(ScenarioError, match="neither a built-in"):
        load_scenario(str(tmp_path / "missing.toml"))


def test_nearest_rank_quantiles_and_usd_strings() -> None:
    values = list(range(1, 21))  # 1..20: the 95th percentile is the 19th value, the 50th the 10th
    assert (nearest_rank(values, 0.5), nearest_rank(values, 0.95), nearest_rank(values, 0.99)) == (10, 19, 20)
    assert nearest_rank([7], 0.99) == 7
    assert (usd(0), usd(1), usd(12_500_000), usd(-3_000_001)) == ("0", "0.000001", "12.5", "-3.000001")

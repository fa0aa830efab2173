"""Scenario files: durations, tunables and --set, shocks, refusals; the nearest-rank quantiles."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from perpbox.agents.actors import Actor, parse_actors
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
from perpbox.market import MarginTable, MarketSpec
from perpbox.market.spec import MarginMode


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


# -- actors: wallets, isolated margin, walls, sweeps ------------------------------------------------

_HOLDER = '[[actor]]\nkind = "holder"\nmarket = "BTC"\nside = "long"\nnotional_usd = 1e6\ncapital_usd = 100000\n'
_TWAP = '[[actor]]\nkind = "twap"\nmarket = "BTC"\nside = "short"\nnotional_usd = 1e6\ncapital_usd = 100000\n' \
        'duration = "10m"\n'
_WALL = '[[actor]]\nkind = "wall"\nmarket = "BTC"\nside = "long"\nnotional_usd = 1e6\ncapital_usd = 200000\n' \
        'leverage = 10\nstart = "1m"\n'
_SWEEP = '[[actor]]\nkind = "sweep"\nmarket = "BTC"\nside = "long"\nnotional_usd = 1e6\ncapital_usd = 100000\n' \
         'duration = "5m"\nslice = "5s"\n'


@pytest.mark.parametrize("extra, match", [
    (_HOLDER + "wallets = 0\n", r"actor\[0\]\.wallets: an integer from 1 to 1000"),
    (_HOLDER + "wallets = 1001\n", r"actor\[0\]\.wallets: an integer from 1 to 1000"),
    (_HOLDER + "wallets = 2.5\n", r"actor\[0\]\.wallets: an integer"),
    (_HOLDER + "wallets = true\n", r"actor\[0\]\.wallets: an integer"),
    (_HOLDER.replace("capital_usd = 100000", "capital_usd = 10") + "wallets = 19\n",
     r"actor\[0\]\.wallets: 19 wallets would leave less than \$1"),
    (_HOLDER + 'isolated = "yes"\n', r"actor\[0\]\.isolated: true or false"),
    (_HOLDER + "attacker = 1\n", r"actor\[0\]\.attacker: true or false"),
    (_HOLDER + 'price = "99000"\n', r"actor\[0\]\.price: only for a wall, not a holder"),
    (_TWAP + 'end = "20m"\n', r"actor\[0\]\.end: only for a wall, not a twap"),
    (_TWAP + "slippage_bps = 100\n", r"actor\[0\]\.slippage_bps: only for a sweep, not a twap"),
    (_WALL + 'duration = "5m"\n', r"actor\[0\]\.duration: only for a twap or a sweep, not a wall"),
    (_WALL, r"actor\[0\]\.price: a wall needs a price"),
    (_WALL + 'price = "-5"\n', r"actor\[0\]\.price: '-5' is not a positive price on BTC's tick"),
    (_WALL + 'price = "99001.5"\n', r"actor\[0\]\.price: '99001.5' is not a positive price"),  # 6 significant figures
    (_WALL + 'price = "99000.05"\n', r"actor\[0\]\.price: '99000.05' is not a positive price"),  # 2 decimals, BTC has 1
    (_WALL + "price = true\n", r"actor\[0\]\.price: a price in dollars"),
    (_WALL + 'price = "99000"\nend = "1m"\n', r"actor\[0\]\.end: must be after start"),
    (_SWEEP + "slippage_bps = 0\n", r"actor\[0\]\.slippage_bps: an integer from 1 to 9999"),
    (_SWEEP + "slippage_bps = 10000\n", r"actor\[0\]\.slippage_bps: an integer from 1 to 9999"),
    (_SWEEP + "slippage_bps = 50.5\n", r"actor\[0\]\.slippage_bps: an integer"),
    (_SWEEP.replace('duration = "5m"\n', ""), r"actor\[0\]: a sweep needs a duration and a slice > 0"),
    (_SWEEP + "wallets_of = 0\n", r"actor\[0\]\.wallets_of: the index of an earlier \[\[actor\]\]"),
    (_TWAP + _SWEEP.replace("capital_usd = 100000\n", "") + "wallets_of = 1\n",
     r"actor\[1\]\.wallets_of: an integer from 0 to 0"),
    (_TWAP + _SWEEP.replace("capital_usd = 100000\n", "") + "wallets_of = -1\n",
     r"actor\[1\]\.wallets_of: an integer from 0 to 0"),
    (_TWAP + _SWEEP + "wallets_of = 0\n", r"actor\[1\]\.capital_usd: set by actor\[0\]"),
    (_TWAP + _SWEEP.replace("capital_usd = 100000\n", "") + "wallets_of = 0\nwallets = 4\n",
     r"actor\[1\]\.wallets: set by actor\[0\]"),
    (_TWAP + _SWEEP.replace("capital_usd = 100000\n", "") + "wallets_of = 0\nattacker = false\n",
     r"actor\[1\]\.attacker: set by actor\[0\]"),
    (_TWAP + _TWAP.replace("capital_usd = 100000\n", "") + "wallets_of = 0\n"
     + _SWEEP.replace("capital_usd = 100000\n", "") + "wallets_of = 1\n",
     r"actor\[2\]\.wallets_of: actor\[1\] itself trades from actor\[0\]'s wallets"),
])
def test_bad_actor_wallets_walls_and_sweeps_are_refused_with_the_reason(extra: str, match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        parse_scenario(_doc(extra), {})


def test_wallets_of_must_trade_on_the_dex_its_wallets_are_funded_on() -> None:
    doc = tomllib.loads(builtin_text("xpl-thin-book"))
    doc["market"] = [{"name": "BTC", "sz_decimals": 5, "price": "100000", "margin_tiers": [[0, 40]]}]
    doc["actor"][2]["market"] = "BTC"
    with pytest.raises(ScenarioError, match=r"actor\[2\]\.wallets_of: actor\[1\]'s wallets are funded on another dex"):
        parse_scenario(doc, {})


def test_an_isolated_only_market_needs_isolated_actors() -> None:
    spec = MarketSpec(name="XPL", asset=0, sz_decimals=0, margin_table=MarginTable.hyperliquid([(0, 5)]),
                      margin_mode=MarginMode.STRICT_ISOLATED)
    row = {"kind": "holder", "market": "XPL", "side": "short", "notional_usd": 1e5, "capital_usd": 20_000}
    with pytest.raises(ValueError, match=r"actor\[0\]\.isolated: XPL allows only isolated margin"):
        parse_actors([row], parse_duration, {"XPL": spec})
    (actor,) = parse_actors([{**row, "isolated": True}], parse_duration, {"XPL": spec})
    assert actor.isolated


def test_wallets_split_notional_and_capital_exactly_over_distinct_stable_addresses() -> None:
    sc = parse_scenario(_doc(_HOLDER.replace("capital_usd = 100000", "capital_usd = 100") + "wallets = 3\n"
                             + _WALL + 'price = "99000"\nend = "5m"\n'), {})
    holder, wall = sc.actors
    assert (holder.wallets, holder.attacker, wall.attacker) == (3, False, True)  # a wall attacks by default
    assert (wall.price_px, wall.end_ms, wall.start_ms) == (990_000, 300_000, 60_000)  # BTC: 1 price decimal
    spec = next(m.spec for m in sc.config.markets if m.spec.name == "BTC")
    accounts = Actor(0, holder, spec).accounts()
    # $100 over 3 wallets in micro-USDC: 33,333,334 + 33,333,333 + 33,333,333
    assert [c for _, c in accounts] == [33_333_334, 33_333_333, 33_333_333]
    addresses = [a for a, _ in accounts]
    assert addresses[0] == "0xa9e100ac" + f"{0:032x}"  # wallet 0: the actor's address as before wallets
    assert addresses[1] == "0xa9e100ac" + f"{1:08x}" + f"{0:024x}"
    assert len(set(addresses)) == 3 and addresses == [a for a, _ in Actor(0, holder, spec).accounts()]
    assert not {a for a, _ in Actor(1, wall, spec).accounts()} & set(addresses)  # another actor's wallets differ
    xpl = load_scenario("xpl-thin-book")
    sweep = xpl.actors[2]
    xspec = xpl.config.all_markets()[0].spec
    assert sweep.wallets_of == 1 and sweep.wallets == 4 and sweep.attacker
    assert Actor(2, sweep, xspec).accounts() == []  # funded and counted as actor 1's
    assert Actor(2, sweep, xspec).addresses == [a for a, _ in Actor(1, xpl.actors[1], xspec).accounts()]


def test_a_wall_rests_at_its_price_from_start_to_end_and_is_then_cancelled() -> None:
    from perpbox.exchange import events as V
    from perpbox.lab.run import simulate

    sc = parse_scenario(_doc(_WALL + 'price = "99000"\nend = "2m"\n'), {}, horizon_ms=180_000)
    trace = simulate(sc, 1)
    wall = "0xa9e100ac" + f"{0:032x}"
    placed = [e for e in trace.events if isinstance(e, V.OrderPlaced) and e.user == wall]
    assert [(e.px, e.is_buy, e.ts - sc.start_ms) for e in placed] == [(990_000, True, 60_000)]
    # $1M at $99,000 in lots of 1e-5 BTC: floor(1e6 / 99,000 × 1e5) = 1,010,101 lots
    assert placed[0].sz == 1_010_101
    closed = [e for e in trace.events if isinstance(e, V.OrderClosed) and e.oid == placed[0].oid]
    assert [(e.status, e.ts - sc.start_ms) for e in closed] == [("canceled", 120_000)]


class _Book:
    """The reads a sweep looks at: a mark, an oracle and the touch (price units)."""

    def __init__(self, mark: int, oracle: int, bid: int | None, ask: int | None) -> None:
        self._mark, self._oracle, self._touch = mark, oracle, (bid, ask)

    def mark(self, asset: int) -> int:
        return self._mark

    def oracle(self, asset: int) -> int:
        return self._oracle

    def best_bid_ask(self, asset: int) -> tuple[int | None, int | None]:
        return self._touch


def test_a_sweep_bids_slippage_beyond_the_far_touch_but_inside_the_price_band() -> None:
    (sweep,) = parse_scenario(_doc(_SWEEP + "slippage_bps = 2000\n"), {}).actors
    spec = load_scenario("calm").config.markets[0].spec  # BTC: 1 price decimal, a band of 80% around the oracle
    actor = Actor(0, sweep, spec)
    # ask $100,000 above a mark of $99,000: 20% over the ask, $120,000 (1,200,000 units)
    assert actor._sweep_limit(_Book(990_000, 990_000, 980_000, 1_000_000), 990_000) == 1_200_000  # type: ignore[arg-type]
    # no ask: 20% over the mark
    assert actor._sweep_limit(_Book(990_000, 990_000, 980_000, None), 990_000) == 1_188_000  # type: ignore[arg-type]
    # an oracle left far behind: the band binds, 79.99% over $60,000 = $107,994 (1,079,940 units)
    assert actor._sweep_limit(_Book(990_000, 600_000, 980_000, 1_000_000), 990_000) == 1_079_940  # type: ignore[arg-type]


# -- volatility shocks, the deployer's mark inputs, exact USD strings --------------------------------

def test_a_volatility_shock_scales_the_walk_only_inside_its_window() -> None:
    sc = parse_scenario(_doc('[[shock]]\nkind = "volatility"\nmarket = "BTC"\nstart = "10m"\nend = "20m"\n'
                             'factor = 3\n[[shock]]\nkind = "volatility"\nmarket = "BTC"\nstart = "15m"\n'
                             'end = "30m"\nfactor = 2\n'), {})
    at = [sc.vol_multiplier("BTC", m * 60_000) for m in (0, 10, 15, 20, 29, 30)]
    assert at == [1.0, 3.0, 3.0, 2.0, 2.0, 1.0]  # overlapping shocks: the larger factor
    assert sc.vol_multiplier("ETH", 12 * 60_000) == 1.0


@pytest.mark.parametrize("extra, match", [
    ('[[shock]]\nkind = "volatility"\nmarket = "DOGE"\nstart = "1m"\nend = "2m"\nfactor = 2\n', "not a market"),
    ('[[shock]]\nkind = "volatility"\nmarket = "BTC"\nstart = "2m"\nend = "1m"\nfactor = 2\n', "start < end"),
    ('[[shock]]\nkind = "volatility"\nmarket = "BTC"\nstart = "1m"\nend = "2m"\nfactor = 0.5\n', "factor"),
])
def test_bad_volatility_shocks_are_refused_with_the_reason(extra: str, match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        parse_scenario(_doc(extra), {})


@pytest.mark.parametrize("inputs", ['["book"]', '["oracle", "external", "oracle"]', '"oracle"'])
def test_mark_inputs_are_at_most_two_of_oracle_and_external(inputs: str) -> None:
    text = builtin_text("calm").replace("[scenario]\n", f"[scenario]\nmark_inputs = {inputs}\n")
    with pytest.raises(ScenarioError, match="mark_inputs"):
        parse_scenario(tomllib.loads(text), {})
    ok = builtin_text("calm").replace("[scenario]\n", '[scenario]\nmark_inputs = ["oracle", "external"]\n')
    assert parse_scenario(tomllib.loads(ok), {}).mark_inputs == ("oracle", "external")


def test_usd_strings_are_never_in_exponent_form() -> None:
    assert (usd(-5_000_000_000_000), usd(20_000_000_000_000)) == ("-5000000", "20000000")

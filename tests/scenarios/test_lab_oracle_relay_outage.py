"""The deployer's relay goes silent for 30 minutes while the underlying falls 5%: the oracle stands
still, the mark falls back to the local book (Hyperliquid's rule: no setOracle for 10 s) and
follows the market, and the basis the outage opened closes as soon as the relay pushes again."""

from __future__ import annotations

from perpbox.lab.metrics import run_metrics
from perpbox.lab.run import simulate
from perpbox.lab.scenario import load_scenario


def _at(minute: float) -> int:
    return round(minute * 60) - 1  # the sample index (one a second, from the first step)


def test_the_mark_follows_the_book_while_the_relay_is_down_and_the_oracle_catches_up_after() -> None:
    sc = load_scenario("oracle-relay-outage")
    trace = simulate(sc, 1)
    m = run_metrics(sc, trace)
    assert m["conservation_residual_usd"] == "0"
    (x,) = trace.markets.values()
    frozen = x.oracle[_at(30.1)]
    assert all(x.oracle[i] == frozen for i in range(_at(30.1), _at(59.9)))  # no push, no move
    # the underlying fell 5% (×0.95) between 35 and 45 minutes; the mark went with the book, within 1%
    for minute in (46, 50, 55, 59):
        assert abs(x.mark[_at(minute)] / frozen - 0.95) < 0.01
    assert m["basis_bps"]["max"] >= 400
    # one push after the relay returns (every 3 s) pulls the oracle to the market: basis < 50 bps
    after = _at(60) + 10
    assert abs(x.mark[after] - x.oracle[after]) * 10_000 < 50 * x.oracle[after]
    assert abs(x.oracle[after] / frozen - 0.95) < 0.01


def test_a_shorter_outage_closes_the_basis_sooner() -> None:
    sc = load_scenario("oracle-relay-outage", {"outage_end": "40m"})
    trace = simulate(sc, 1)
    (x,) = trace.markets.values()
    after = _at(40) + 10
    assert abs(x.mark[after] - x.oracle[after]) * 10_000 < 50 * x.oracle[after]

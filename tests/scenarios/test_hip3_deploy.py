"""Dev-mode HIP-3 deployment in the engine: a dex created by its first asset, margin tables
inserted and assigned, and a table change that lowers the limit for an open position."""

from __future__ import annotations

from scenario_kit import ALICE, BOB, CAROL, USD, MarginTable, Sim

from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.results import OK, Error, OrderError, Resting

GOLD = 110_000  # first asset of the first HIP-3 dex


def _deploy_gold(sim: Sim, table_id: int = 20) -> None:
    sim.deposit(CAROL, 100_000)
    res = sim.do(C.RegisterAsset, user=CAROL, dex="dv", coin="GOLD", sz_decimals=2, oracle_px=2_650_0000,
                 margin_table_id=table_id, full_name="Dev metals")
    assert res == OK
    sim.specs[GOLD] = sim.ex.board.markets[GOLD]


def test_first_asset_creates_the_dex_and_its_deployer(sim: Sim) -> None:
    _deploy_gold(sim)
    spec = sim.ex.board.markets[GOLD]
    assert (spec.name, spec.dex, spec.sz_decimals, spec.max_leverage) == ("GOLD", "dv", 2, 20)
    assert sim.ex.board.dex_deployer["dv"] == CAROL and sim.ex.deploy.dex_full_names["dv"] == "Dev metals"
    assert sim.ex.deploy.table_ids[GOLD] == 20 and sim.ex.pricing.prices[GOLD] == 2_650_0000
    sim.deposit(ALICE, 10_000)
    assert sim.do(C.RegisterAsset, user=ALICE, dex="dv", coin="SILV", sz_decimals=1, oracle_px=3125,
                  margin_table_id=10) == Error("Only the deployer of this dex may do that.")
    assert sim.do(C.RegisterAsset, user=CAROL, dex="dv", coin="SILV", sz_decimals=1, oracle_px=3125,
                  margin_table_id=10, margin_mode="strictIsolated") == OK
    assert sim.ex.board.markets[GOLD + 1].only_isolated
    sim.audit()


def test_a_tiered_table_lowers_the_limit_of_an_open_position(sim: Sim) -> None:
    _deploy_gold(sim)
    for user in (ALICE, BOB):
        sim.fund(user, 100_000, dex="dv")  # a deposit lands on the first dex: sent on to dv
    assert sim.order(BOB, GOLD, False, 2650, 20) == Resting(1)
    assert sim.order(ALICE, GOLD, True, 2650, 10).total_sz == 10 * 100  # $26.5k at 20x
    tiers = MarginTable.hyperliquid([(0, 20), (30_000, 10)], "tight")
    assert sim.do(C.InsertMarginTable, user=CAROL, dex="dv", table=tiers) == OK
    (inserted,) = sim.of(V.MarginTableInserted)
    assert inserted.table_id == 51
    assert sim.do(C.SetMarginTableIds, user=ALICE, dex="dv", ids={GOLD: 51}) == Error(
        "Only the deployer of this dex may do that.")
    assert sim.do(C.SetMarginTableIds, user=CAROL, dex="dv", ids={GOLD: 51}) == OK
    assert sim.ex.board.markets[GOLD].margin_table.tiers == tiers.tiers
    # at 20x the new table caps the position at $30k notional: $26.5k + $5.3k no longer fits
    res = sim.order(ALICE, GOLD, True, 2650, 2)
    assert isinstance(res, OrderError) and sim.szi(ALICE, GOLD) == 10 * 100
    assert sim.order(ALICE, GOLD, True, 2650, 1).total_sz == 100  # $29.15k still fits
    maint = sim.ex.margin.maintenance_margin(sim.pos(ALICE, GOLD))
    assert maint == 11 * 2650 * USD // 40  # tier 0: mmr 1/40 below $30k
    sim.audit()


def test_bad_tables_and_ids_are_refused(sim: Sim) -> None:
    _deploy_gold(sim)
    too_many = MarginTable.hyperliquid([(0, 20), (1, 10), (2, 5), (3, 3)])
    rising = MarginTable.hyperliquid([(0, 5), (1000, 10)])
    for table in (too_many, rising):
        assert isinstance(sim.do(C.InsertMarginTable, user=CAROL, dex="dv", table=table), Error)
    assert sim.do(C.SetMarginTableIds, user=CAROL, dex="dv", ids={GOLD: 99}) == Error("Invalid margin table id.")
    assert sim.do(C.SetMarginTableIds, user=CAROL, dex="dv", ids={GOLD: 3}) == OK  # flat 3x
    assert sim.ex.board.markets[GOLD].max_leverage == 3
    sim.audit()


def test_a_stricter_table_set_over_an_open_position_is_enforced_by_the_next_tick(sim: Sim) -> None:
    """The liquidation sweep's pre-filter caches each market's maintenance lines; a table change
    must reach it (the index is rebuilt), or the position below the new maintenance is missed."""
    _deploy_gold(sim)
    sim.fund(BOB, 100_000, dex="dv")
    sim.fund(ALICE, 2_000, dex="dv")
    sim.order(BOB, GOLD, False, 2650, 10)
    assert sim.order(ALICE, GOLD, True, 2650, 10).total_sz == 10 * 100  # $26.5k at 20x
    sim.order(BOB, GOLD, True, 2600, 20)
    sim.do(C.Tick)
    assert not sim.of(V.Liquidated)  # value ≈ $1,988 against a maintenance of 26,500 / 40 = $662.5
    assert sim.do(C.SetMarginTableIds, user=CAROL, dex="dv", ids={GOLD: 3}) == OK
    assert sim.ex.margin.maintenance_margin(sim.pos(ALICE, GOLD)) == -(-26_500 * USD // 6)  # 3x: 1/(2×3), up
    sim.do(C.Tick)
    assert [(e.user, e.method) for e in sim.of(V.Liquidated)] == [("dv:" + ALICE, "market")]
    assert sim.szi(ALICE, GOLD) == 0
    sim.audit()

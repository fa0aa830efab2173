"""PositionIndex, the vectorised liquidation pre-filter: hand-built accounts with real numbers,
incremental sync, and the safety property (every account the exact integer check flags is a
candidate) over random ledgers, prices and near-boundary balances.

Units: ETH-like market (sz_decimals 4): price in 0.01 USD, ``ONE`` = 1 ETH = 10_000 lots, so
``PX(2000) * ONE`` = 2e9 micro-USDC = $2,000.  BTC-like market (sz_decimals 5): price in 0.1 USD,
1 BTC = 100_000 lots.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perpbox.core.numbers import USD
from perpbox.ledger.ledger import Account, Ledger
from perpbox.market import MarginTable, MarketSpec
from perpbox.risk.margin import MarginView
from perpbox.risk.sweep import PositionIndex

ETH, BTC, ALT, ODD = 1, 0, 7, 110_003  # asset ids (sparse on purpose)
ONE = 10_000  # 1 ETH in lots
BTC_ONE = 100_000  # 1 BTC in lots


def PX(usd: int) -> int:  # ETH price units
    return usd * 100


def BPX(usd: int) -> int:  # BTC price units
    return usd * 10


MARKETS = {
    ETH: MarketSpec("ETH", ETH, 4, MarginTable.single(20)),  # mmr 2.5%
    # 50x (1%) up to $100k, then 10x (5%): deduction $4,000
    BTC: MarketSpec("BTC", BTC, 5, MarginTable.hyperliquid([(0, 50), (100_000, 10)])),
    # Binance-style brackets with fractional deductions
    ALT: MarketSpec("ALT", ALT, 2, MarginTable.from_brackets(
        [("0", 125, "0.004"), ("5000", 100, "0.005"), ("25000", 50, "0.0133"), ("100000", 20, "0.025")])),
    # rates that fall with the tier: not convex, the max over lines still bounds MM from above
    ODD: MarketSpec("ODD", ODD, 3, MarginTable.from_brackets([("0", 10, "0.07"), ("2000", 20, "0.03")])),
}


def fill(led: Ledger, addr: str, asset: int, is_buy: bool, px: int, sz: int,
         is_cross: bool = True, leverage: int = 10) -> None:
    acct = led.account(addr)
    led.apply_fill(acct, led.position(acct, asset, is_cross, leverage), is_buy, px, sz, 0)


def exact_liquidatable(acct: Account, prices: dict[int, int], markets: dict[int, MarketSpec] = MARKETS) -> bool:
    """The engine's exact integer rule, via MarginView."""
    mv = MarginView(markets, prices)
    live = [p for p in acct.positions.values() if p.szi]
    if any(p.is_cross for p in live) and mv.cross_value(acct) < mv.cross_maintenance_margin(acct):
        return True
    return any(not p.is_cross and mv.isolated_value(p) < mv.maintenance_margin(p) for p in live)


def exact_set(led: Ledger, prices: dict[int, int]) -> set[str]:
    return {a for a, acct in led.accounts.items() if exact_liquidatable(acct, prices)}


def index_of(led: Ledger) -> PositionIndex:
    idx = PositionIndex(MARKETS)
    idx.rebuild(led)
    return idx


def snapshot(idx: PositionIndex) -> set[tuple[str, int, float, bool, float]]:
    """The index content as (address, asset, szi, is_cross, iso) rows (reads internals)."""
    out = set()
    for pool, cross in ((idx._cross, True), (idx._iso, False)):
        for i in range(pool.n):
            out.add((idx._addresses[int(pool.row[i])], idx._assets[int(pool.col[i])], float(pool.szi[i]),
                     cross, 0.0 if cross else float(pool.iso[i])))
    return out


# -- hand-built accounts ---------------------------------------------------------------------------
def test_cross_long_10x_becomes_liquidatable_after_a_10pct_drop() -> None:
    led = Ledger()
    led.deposit("levered", 200 * USD)  # $200 behind a $2,000 long: 10x
    fill(led, "levered", ETH, True, PX(2_000), ONE)
    led.deposit("healthy", 10_000 * USD)
    fill(led, "healthy", ETH, True, PX(2_000), ONE)
    led.deposit("short", 200 * USD)  # 10x short gains on the drop
    fill(led, "short", ETH, False, PX(2_000), ONE)
    idx = index_of(led)
    assert len(idx) == 3

    before = {ETH: PX(2_000)}  # value 200, MM 50 (2.5% of 2,000)
    assert idx.candidates(before) == [] and exact_set(led, before) == set()

    after = {ETH: PX(1_800)}  # value 0 < MM 45
    mv = MarginView(MARKETS, after)
    acct = led.accounts["levered"]
    assert (mv.cross_value(acct), mv.cross_maintenance_margin(acct)) == (0, 45 * USD)
    assert exact_set(led, after) == {"levered"}
    assert idx.candidates(after) == ["levered"]


def test_isolated_position_is_checked_on_its_own_bucket() -> None:
    led = Ledger()
    led.deposit("iso", 1_000 * USD)
    fill(led, "iso", ETH, True, PX(2_000), ONE, is_cross=False, leverage=10)  # bucket 200 - 2,000
    led.deposit("iso_safe", 1_000 * USD)
    fill(led, "iso_safe", ETH, True, PX(2_000), ONE, is_cross=False, leverage=2)  # bucket 1,000 - 2,000
    assert led.accounts["iso"].raw_usd == 800 * USD  # cross cash left: no cross positions to fail
    idx = index_of(led)
    after = {ETH: PX(1_800)}
    mv = MarginView(MARKETS, after)
    pos = led.accounts["iso"].positions[ETH]
    assert (mv.isolated_value(pos), mv.maintenance_margin(pos)) == (0, 45 * USD)
    assert exact_set(led, after) == {"iso"}
    assert idx.candidates(after) == ["iso"]
    assert idx.candidates({ETH: PX(2_000)}) == []


def test_tiered_table_uses_the_deduction() -> None:
    # 2 BTC at $100k = $200k notional, in the 10x tier: MM = 200k * 5% - 4,000 = $6,000 (without
    # the deduction it would be $10,000; at the tier-0 rate $2,000).
    spec = MARKETS[BTC].margin_table
    assert spec.maintenance_margin(200_000 * USD) == 6_000 * USD
    led = Ledger()
    for name, equity in (("eq8000", 8_000), ("eq5000", 5_000), ("eq10001", 10_001)):
        led.deposit(name, equity * USD)  # a long's value is its deposit at the entry price
        fill(led, name, BTC, True, BPX(100_000), 2 * BTC_ONE)
    prices = {BTC: BPX(100_000)}
    assert exact_set(led, prices) == {"eq5000"}
    assert index_of(led).candidates(prices) == ["eq5000"]


def test_boundary_value_equal_to_mm_is_not_liquidatable_one_micro_below_is() -> None:
    # long 1 ETH bought at $2,000, marked at $1,800: MM = $45 exactly; value = deposit - $200
    led = Ledger()
    led.deposit("at", 245 * USD)
    led.deposit("below", 245 * USD - 1)
    led.deposit("above", 245 * USD + 2)
    for name in ("at", "below", "above"):
        fill(led, name, ETH, True, PX(2_000), ONE)
    prices = {ETH: PX(1_800)}
    mv = MarginView(MARKETS, prices)
    at = led.accounts["at"]
    assert mv.cross_value(at) == mv.cross_maintenance_margin(at) == 45 * USD
    assert exact_set(led, prices) == {"below"}
    # the filter keeps a margin of 1e-9 relative + 1 micro-USDC per position: "at" is a (false)
    # candidate, two micro-USDC above is already excluded
    assert index_of(led).candidates(prices) == ["at", "below"]


def test_each_positions_rounded_up_mm_adds_up_in_a_cross_account() -> None:
    # three tiny cross positions whose exact MM lines are k + 1/den: each rounds up by almost 1, so
    # value = MM - 1 is still ~1.96 micro-USDC above the sum of the unrounded lines
    prices = {ETH: 200_001, ALT: 150_001, BTC: 1_000_001}  # notionals = 1 (mod 40, 250, 100)
    led = Ledger()
    led.deposit("x", 10 * USD)
    for asset in prices:
        fill(led, "x", asset, True, prices[asset], 1)
    mv = MarginView(MARKETS, prices)
    acct = led.accounts["x"]
    mm = mv.cross_maintenance_margin(acct)
    lines = sum(MARKETS[a].margin_table.tiers[0].mmr * prices[a] for a in prices)
    assert mm - lines > 2.9
    acct.raw_usd -= mv.cross_value(acct) - (mm - 1)  # value = MM - 1
    assert exact_set(led, prices) == {"x"}
    assert index_of(led).candidates(prices) == ["x"]


def test_accounts_without_positions_and_fee_account_are_never_candidates() -> None:
    led = Ledger()
    led.deposit("cash", 5 * USD)
    led.withdraw("cash", 6 * USD)  # negative cash, but no position: nothing to liquidate
    idx = index_of(led)
    assert len(idx) == 0
    assert idx.candidates({ETH: PX(1)}) == []


# -- incremental sync --------------------------------------------------------------------------------
def test_sync_follows_resizes_closes_flips_and_new_accounts() -> None:
    led = Ledger()
    for i in range(6):
        led.deposit(f"a{i}", 1_000 * USD)
        fill(led, f"a{i}", ETH, True, PX(2_000), ONE // 2)
        fill(led, f"a{i}", BTC, i % 2 == 0, BPX(100_000), BTC_ONE // 100, is_cross=i < 3)
    idx = index_of(led)
    assert len(idx) == 12

    fill(led, "a0", ETH, False, PX(2_000), ONE // 2)  # close: slot freed (swap-remove)
    fill(led, "a1", ETH, True, PX(2_000), 5 * ONE)  # resize: 5.5 ETH on $1,000, -$1,100 at 1,800
    fill(led, "a2", BTC, False, BPX(100_000), 2 * (BTC_ONE // 100))  # flip long -> short
    fill(led, "a4", BTC, False, BPX(100_000), BTC_ONE // 100)  # isolated long closed
    led.deposit("new", 100 * USD)
    fill(led, "new", ETH, True, PX(2_000), ONE // 4)  # $500 long on $100: 5x
    idx.sync(led, ["a0", "a1", "a2", "a4", "new", "never-existed"])
    assert len(idx) == 12 - 2 + 1
    assert snapshot(idx) == snapshot(index_of(led))
    for usd in (2_000, 1_800, 1_700, 1_600, 2_400):
        prices = {ETH: PX(usd), BTC: BPX(usd * 50)}
        want = exact_set(led, prices)
        got = idx.candidates(prices)
        assert want <= set(got)
        assert got == index_of(led).candidates(prices)
    assert "a1" in idx.candidates({ETH: PX(1_800), BTC: BPX(100_000)})


def test_sync_moves_a_position_between_cross_and_isolated() -> None:
    led = Ledger()
    led.deposit("x", 1_000 * USD)
    fill(led, "x", ETH, True, PX(2_000), ONE)
    idx = index_of(led)
    fill(led, "x", ETH, False, PX(2_000), ONE)
    acct = led.accounts["x"]
    del acct.positions[ETH]  # (the engine may drop an empty slot and reopen it with new settings)
    fill(led, "x", ETH, True, PX(2_000), ONE, is_cross=False, leverage=10)
    idx.sync(led, ["x"])
    assert snapshot(idx) == snapshot(index_of(led))
    assert idx.candidates({ETH: PX(1_800)}) == ["x"]


# -- the safety property -----------------------------------------------------------------------------
PRICE_BASE = {ETH: PX(2_000), BTC: BPX(100_000), ALT: 150_000, ODD: 1_000}

position_st = st.tuples(
    st.sampled_from(sorted(MARKETS)),
    st.booleans(),  # is_cross
    st.integers(1, 50),  # leverage (isolated bucket)
    st.booleans(),  # long
    st.one_of(st.integers(1, 2_000), st.integers(1, 10**9), st.integers(1, 10**15)),  # lots
)
account_st = st.tuples(
    st.lists(position_st, min_size=0, max_size=5),
    st.integers(-3, 3),  # target cross value - MM, micro-USDC (near the boundary) ...
    st.one_of(st.none(), st.integers(-10**13, 10**13)),  # ... or this far from it
    st.integers(-3, 3),  # the same for every isolated bucket
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    accounts=st.lists(account_st, min_size=1, max_size=8),
    moves=st.lists(st.one_of(st.floats(0.5, 1.5), st.sampled_from([0.0, 1e-6, 1e6])), min_size=4, max_size=4),
    resync=st.booleans(),
)
def test_every_exactly_liquidatable_account_is_a_candidate(accounts, moves, resync) -> None:
    entry = PRICE_BASE
    prices = {a: max(0, int(entry[a] * m)) for a, m in zip(sorted(MARKETS), moves)}
    mv = MarginView(MARKETS, prices)
    led = Ledger()
    idx = PositionIndex(MARKETS)
    names = []
    for i, (positions, delta, far, iso_delta) in enumerate(accounts):
        name = f"0x{i:040x}"
        names.append(name)
        led.deposit(name, 10**12)
        acct = led.account(name)
        for asset, is_cross, lev, is_buy, lots in positions:
            pos = led.position(acct, asset, is_cross, lev)
            led.apply_fill(acct, pos, is_buy, entry[asset], lots, 0)
        if not resync:
            idx.sync(led, [name])
        # put each isolated bucket, then the cross account, right at / near the boundary
        for pos in acct.positions.values():
            if pos.szi and not pos.is_cross:
                gap = mv.isolated_value(pos) - mv.maintenance_margin(pos)
                led.move_isolated(acct, pos, iso_delta - gap)
        target = far if far is not None else delta
        acct.raw_usd += target - (mv.cross_value(acct) - mv.cross_maintenance_margin(acct))
    if resync:
        idx.rebuild(led)
    else:
        idx.sync(led, reversed(names))
    want = exact_set(led, prices)
    got = idx.candidates(prices)
    assert got == sorted(got) and len(set(got)) == len(got)
    assert want <= set(got), (want - set(got), prices)
    # the filter is tight: it only adds accounts within its margin of the boundary (except with
    # the non-convex table, where the max over lines overstates MM)
    for name in set(got) - want:
        acct = led.accounts[name]
        if ODD in acct.positions:
            continue
        n_pos = sum(1 for p in acct.positions.values() if p.szi)
        gaps = [mv.isolated_value(p) - mv.maintenance_margin(p) - mv.maintenance_margin(p) * 1e-8
                for p in acct.positions.values() if p.szi and not p.is_cross]
        if any(p.szi and p.is_cross for p in acct.positions.values()):
            mm = mv.cross_maintenance_margin(acct)
            gaps.append(mv.cross_value(acct) - mm - mm * 1e-8)
        assert min(gaps) <= n_pos + 1, (name, gaps)


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 5), st.sampled_from(sorted(MARKETS)), st.booleans(), st.booleans(),
                              st.integers(0, 3), st.integers(0, 6)), min_size=1, max_size=60))
def test_incremental_sync_matches_a_rebuild(ops) -> None:
    """Random fills (opening, resizing, closing, flipping; cross or isolated), each followed by a
    sync of the touched account only: the index always equals a fresh rebuild."""
    led = Ledger()
    idx = PositionIndex(MARKETS)
    for i, asset, is_buy, is_cross, lots, sync_every in ops:
        name = f"a{i}"
        led.deposit(name, 10**9)
        acct = led.account(name)
        pos = acct.positions.get(asset)
        if pos is not None and pos.szi == 0 and pos.is_cross != is_cross:
            del acct.positions[asset]  # reopen the empty slot in the other margin mode
        pos = led.position(acct, asset, is_cross, 5)
        if lots == 0 and pos.szi:  # close exactly
            led.apply_fill(acct, pos, pos.szi < 0, PRICE_BASE[asset], abs(pos.szi), 0)
        elif lots:
            led.apply_fill(acct, pos, is_buy, PRICE_BASE[asset], lots, 0)
        idx.sync(led, [name])
        if sync_every == 0:
            assert snapshot(idx) == snapshot(index_of(led))
    assert snapshot(idx) == snapshot(index_of(led))
    assert len(idx) == sum(1 for a in led.accounts.values() for p in a.positions.values() if p.szi)

"""Table-driven vectors for the pure risk maths (``risk.estimates``, ``risk.liquidation``).

Every expected value is derived by hand from the formula in the comment of its row (units:
sizes in lots, prices in price units, money in micro-USDC, so ``lots · price = micro-USDC``).
"""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from perpbox.risk.estimates import liquidation_price, max_trade_size
from perpbox.risk.liquidation import adl_order, bankruptcy_limit, bankruptcy_price

# -- liquidation price ---------------------------------------------------------------------------
# liq = mark − side · avail / |szi| / (1 − mmr · side); None when liq ≤ 0 or szi == 0.
LIQUIDATION_PRICE = [
    # (mark, szi, margin_available, mmr, expected)
    # cross long, 10x tier (mmr 1/20): 200_000/10 = 20_000; 20_000/(19/20) = 400_000/19;
    # 100_000 − 400_000/19 = (1_900_000 − 400_000)/19
    pytest.param(100_000, 10, 200_000, F(1, 20), F(1_500_000, 19), id="cross-long-10x"),
    # cross short, same: 20_000/(21/20) = 400_000/21; 100_000 + 400_000/21 = 2_500_000/21
    pytest.param(100_000, -10, 200_000, F(1, 20), F(2_500_000, 21), id="cross-short-10x"),
    # mmr 1/4: long 1000 − (900/3)/(3/4) = 1000 − 400 = 600
    pytest.param(1_000, 3, 900, F(1, 4), F(600), id="long-integral"),
    # short 1000 + (900/3)/(5/4) = 1000 + 240 = 1240
    pytest.param(1_000, -3, 900, F(1, 4), F(1_240), id="short-integral"),
    # tiers: the same long at 40x (mmr 1/80) and 20x (1/40): 39_500/2 = 19_750;
    # 19_750 · 80/79 = 20_000 → 50_000 − 20_000 = 30_000
    pytest.param(50_000, 2, 39_500, F(1, 80), F(30_000), id="long-tier-40x"),
    # 19_750 · 40/39 = 790_000/39 → (1_950_000 − 790_000)/39 = 1_160_000/39 (closer to the mark)
    pytest.param(50_000, 2, 39_500, F(1, 40), F(1_160_000, 39), id="long-tier-20x"),
    # short at 40x: 19_750 · 80/81 = 1_580_000/81 → (4_050_000 + 1_580_000)/81
    pytest.param(50_000, -2, 39_500, F(1, 80), F(5_630_000, 81), id="short-tier-40x"),
    # isolated long, leverage 5, entry at the mark: bucket = 1_000_000/5 − 1_000_000 = −800_000;
    # value = −800_000 + 10 · 100_000 = 200_000; mm = 1_000_000/20 = 50_000 → avail 150_000;
    # 15_000 · 20/19 = 300_000/19 → 100_000 − 300_000/19 = 1_600_000/19
    pytest.param(100_000, 10, 150_000, F(1, 20), F(1_600_000, 19), id="isolated-long-lev5"),
    # isolated long, leverage 2: bucket −500_000, value 500_000, avail 450_000;
    # 45_000 · 20/19 = 900_000/19 → 1_000_000/19 (lower leverage, further from the mark)
    pytest.param(100_000, 10, 450_000, F(1, 20), F(1_000_000, 19), id="isolated-long-lev2"),
    # isolated short, leverage 5: bucket 200_000 + 1_000_000, value 1_200_000 − 1_000_000 = 200_000,
    # avail 150_000; 15_000 · 20/21 = 100_000/7 → 100_000 + 100_000/7 = 800_000/7
    pytest.param(100_000, -10, 150_000, F(1, 20), F(800_000, 7), id="isolated-short-lev5"),
    # nothing available: liq is the mark itself
    pytest.param(1_234, 7, 0, F(1, 20), F(1_234), id="zero-available"),
    # already under water (avail < 0): long 1000 + (300/3)/(3/4) = 1000 + 400/3 = 3400/3 (above mark)
    pytest.param(1_000, 3, -300, F(1, 4), F(3_400, 3), id="long-underwater"),
    # short 1000 − (300/3)/(5/4) = 1000 − 80 = 920 (below mark)
    pytest.param(1_000, -3, -300, F(1, 4), F(920), id="short-underwater"),
    # boundary: long 1000 − (2250/3)/(3/4) = 1000 − 1000 = 0 → not positive → None
    pytest.param(1_000, 3, 2_250, F(1, 4), None, id="long-exactly-zero"),
    # one micro-USDC less: 2249 · 4/9 = 8996/9 → 1000 − 8996/9 = 4/9 > 0
    pytest.param(1_000, 3, 2_249, F(1, 4), F(4, 9), id="long-just-positive"),
    # long more than fully margined: 1000 − (3000/3)/(3/4) = −1000/3 → None
    pytest.param(1_000, 3, 3_000, F(1, 4), None, id="long-no-positive-price"),
    # short under water by 3750: 1000 − (3750/3)/(5/4) = 1000 − 1000 = 0 → None
    pytest.param(1_000, -3, -3_750, F(1, 4), None, id="short-exactly-zero"),
    # no position
    pytest.param(1_000, 0, 500, F(1, 4), None, id="zero-size"),
]


@pytest.mark.parametrize(("mark", "szi", "avail", "mmr", "expected"), LIQUIDATION_PRICE)
def test_liquidation_price(mark: int, szi: int, avail: int, mmr: F, expected: F | None) -> None:
    assert liquidation_price(mark, szi, avail, mmr) == expected


# -- max trade size ------------------------------------------------------------------------------
# max_sz = floor(available · leverage / mark); 0 when available ≤ 0 or mark ≤ 0.
MAX_TRADE_SIZE = [
    # (available, leverage, mark, expected)
    pytest.param(1_000_000, 10, 50_000, 200, id="exact"),  # 10_000_000 / 50_000 = 200
    pytest.param(999_999, 10, 50_000, 199, id="floors"),  # 9_999_990 / 50_000 = 199.9998 → 199
    pytest.param(5_000, 1, 5_000, 1, id="one-lot-exact"),  # 5_000 / 5_000 = 1
    pytest.param(4_999, 1, 5_000, 0, id="just-under-one-lot"),  # 0.9998 → 0
    pytest.param(123_456, 40, 7, 705_462, id="high-leverage"),  # 4_938_240 / 7: 7 · 705_462 = 4_938_234, r 6
    pytest.param(1, 1, 1, 1, id="smallest"),
    pytest.param(0, 10, 50_000, 0, id="nothing-available"),
    pytest.param(-1_000, 10, 50_000, 0, id="negative-available"),  # never a negative size
    pytest.param(1_000_000, 10, 0, 0, id="no-mark"),
]


@pytest.mark.parametrize(("avail", "lev", "mark", "expected"), MAX_TRADE_SIZE)
def test_max_trade_size(avail: int, lev: int, mark: int, expected: int) -> None:
    assert max_trade_size(avail, lev, mark) == expected


# -- bankruptcy price ----------------------------------------------------------------------------
# bankruptcy = mark − share / szi; None when ≤ 0 or szi == 0.
BANKRUPTCY_PRICE = [
    # (mark, szi, equity_share, expected)
    pytest.param(1_000, 4, 1_000, F(750), id="long"),  # 1000 − 1000/4
    pytest.param(1_000, -4, 1_000, F(1_250), id="short"),  # 1000 + 1000/4
    pytest.param(1_000, 3, 1_000, F(2_000, 3), id="long-fraction"),  # 1000 − 1000/3
    pytest.param(1_000, -3, 1_000, F(4_000, 3), id="short-fraction"),  # 1000 + 1000/3
    pytest.param(1_000, 4, 0, F(1_000), id="no-equity"),  # bankrupt at the mark
    pytest.param(1_000, 4, -400, F(1_100), id="long-underwater"),  # 1000 + 400/4: above the mark
    pytest.param(1_000, -4, -400, F(900), id="short-underwater"),  # 1000 − 400/4: below the mark
    pytest.param(1_000, 4, 4_000, None, id="long-share-is-notional"),  # 1000 − 1000 = 0
    pytest.param(1_000, 4, 3_999, F(1, 4), id="long-just-positive"),  # 1000 − 3999/4 = 1/4
    pytest.param(1_000, -4, -4_000, None, id="short-exactly-zero"),  # 1000 + (−4000)/4 = 0
    pytest.param(1_000, 0, 100, None, id="zero-size"),
]


@pytest.mark.parametrize(("mark", "szi", "share", "expected"), BANKRUPTCY_PRICE)
def test_bankruptcy_price(mark: int, szi: int, share: int, expected: F | None) -> None:
    assert bankruptcy_price(mark, szi, share) == expected


# bankruptcy_limit: long ceil((mark·size − share) / (size·(1 − fee))), at least 1;
# short floor((mark·size + share) / (size·(1 + fee))); fee in 1e-8.
BANKRUPTCY_LIMIT = [
    # (mark, szi, equity_share, fee_rate, expected)
    pytest.param(1_000, 4, 1_000, 0, 750, id="long-exact"),  # 3000/4
    pytest.param(1_000, -4, 1_000, 0, 1_250, id="short-exact"),  # 5000/4
    pytest.param(1_000, 3, 1_000, 0, 667, id="long-rounds-up"),  # 2000/3 = 666.67 → 667 (toward mark)
    pytest.param(1_000, -3, 1_000, 0, 1_333, id="short-rounds-down"),  # 4000/3 = 1333.33 → 1333
    pytest.param(1_000, 4, 5_000, 0, 1, id="long-floor-one"),  # (4000 − 5000)/4 = −250 → at least 1
    # 5% fee: long 3000 / (4 · 0.95) = 789.47 → 790; short 5000 / (4 · 1.05) = 1190.48 → 1190
    pytest.param(1_000, 4, 1_000, 5_000_000, 790, id="long-fee"),
    pytest.param(1_000, -4, 1_000, 5_000_000, 1_190, id="short-fee"),
    # 4.5 bps: 950_000 / 9.9955 = 95_042.77 (9.9955 · 95_042 = 949_992.3 < 950_000 < 950_002.3) → 95_043
    pytest.param(100_000, 10, 50_000, 45_000, 95_043, id="long-taker-fee"),
]


@pytest.mark.parametrize(("mark", "szi", "share", "fee", "expected"), BANKRUPTCY_LIMIT)
def test_bankruptcy_limit(mark: int, szi: int, share: int, fee: int, expected: int) -> None:
    assert bankruptcy_limit(mark, szi, share, fee) == expected


# -- ADL order -----------------------------------------------------------------------------------
# score = (mark/entry) · (ntl/value) for a long, (entry/mark) · (ntl/value) for a short, with
# ntl = |szi| · mark and entry/mark as entry_ntl/ntl; 0 when value ≤ 0; highest first, then key.
ADL_ORDER = [
    # (mark, entries (key, szi, entry_ntl, value), expected)
    # identical scores (1 · 1000/500 = 2): by key, whatever the input order
    pytest.param(100, [("b", 10, 1_000, 500), ("a", 10, 1_000, 500)], ["a", "b"], id="tie-by-key"),
    # winner (bought at 80: 1000/800 · 1000/1000 = 5/4) before loser (bought at 125: 4/5),
    # although the loser's key sorts first
    pytest.param(100, [("a_loser", 10, 1_250, 1_000), ("z_winner", 10, 800, 1_000)], ["z_winner", "a_loser"],
                 id="long-winner-first"),
    # shorts: sold at 125 (1250/1000 · 1 = 5/4) before sold at 80 (800/1000 · 1 = 4/5)
    pytest.param(100, [("a_loser", -10, 800, 1_000), ("z_winner", -10, 1_250, 1_000)], ["z_winner", "a_loser"],
                 id="short-winner-first"),
    # leverage: same entry (ratio 1), value 1000 → 1, value 200 → 5: the more levered first
    pytest.param(100, [("low", 10, 1_000, 1_000), ("high", 10, 1_000, 200)], ["high", "low"], id="leverage"),
    # leverage beats profit: 5/4 · 1000/1000 = 5/4 < 1 · 1000/500 = 2
    pytest.param(100, [("profit", 10, 800, 1_000), ("levered", 10, 1_000, 500)], ["levered", "profit"],
                 id="leverage-beats-profit"),
    # no positive value ranks last (score 0), those tied by key: d scores 1
    pytest.param(100, [("c", 10, 1_000, 0), ("b", 10, 1_000, -5), ("d", 10, 1_000, 1_000)], ["d", "b", "c"],
                 id="no-value-last"),
    # exact tie from different inputs: 1000/500 · 1000/2000 = 1 and 1 · 1000/1000 = 1 → by key
    pytest.param(100, [("q", 10, 1_000, 1_000), ("p", 10, 500, 2_000)], ["p", "q"], id="exact-tie"),
    # exactness: a scores 1; b scores 10**17/(10**17 − 1) > 1 by 1e-17 (a float would tie them)
    pytest.param(1, [("a", 10**17, 10**17, 10**17), ("b", 10**17, 10**17 - 1, 10**17)], ["b", "a"],
                 id="exact-not-float"),
    pytest.param(100, [], [], id="empty"),
]


@pytest.mark.parametrize(("mark", "entries", "expected"), ADL_ORDER)
def test_adl_order(mark: int, entries: list[tuple[str, int, int, int]], expected: list[str]) -> None:
    assert adl_order(mark, entries) == expected

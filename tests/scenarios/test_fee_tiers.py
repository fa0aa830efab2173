"""Hyperliquid's fee tiers (reference hyperliquid-api.md §6.6; perpbox.market.fees).

A trader and her sub-account trade $6M over three UTC days against a market maker; the next day
the group pays tier 1 (0.040% taker, 0.012% maker), the maker — almost all of the exchange's
maker volume — gets the top rebate (−0.003%), and a small maker with 0.83% of it the first one
(−0.001%).  Fourteen completed days later the first day leaves the window and the trader is back
at tier 0.  Every fee below is computed by hand from the venue's table: a 1 BTC fill at $100,000 is
$100,000 of notional, so 0.045% is $45, 0.040% $40, 0.012% $12, −0.003% −$3 and −0.001% −$1.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import msgspec
from scenario_kit import ALICE, BOB, BTC_ID, CAROL, DAVE, SUB, Sim, btc_spec, usd

from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.engine import Exchange
from perpbox.exchange.results import OK, Filled, Resting
from perpbox.market.spec import FeeSchedule

DAY_MS = 86_400_000
D0 = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp() * 1000)  # a UTC midnight


def _day(sim: Sim, n: int) -> None:
    """Move the clock to 09:00 UTC on day D0 + n."""
    sim.ts = D0 + n * DAY_MS + 9 * 3_600_000


def _trade(sim: Sim, maker: str, taker: str, taker_buys: bool, btc: str) -> V.Fill:
    """``maker`` rests ``btc`` at $100,000 and ``taker`` takes it (IOC); returns the fill."""
    assert isinstance(sim.order(maker, BTC_ID, not taker_buys, 100_000, btc), Resting)
    assert isinstance(sim.order(taker, BTC_ID, taker_buys, 100_000, btc, tif="Ioc"), Filled)
    (fill,) = sim.of(V.Fill)
    return fill


def _round_trip(sim: Sim, taker: str) -> list[V.Fill]:
    """$2M of taker volume against Carol: buy 10 BTC, sell them back, at $100,000."""
    return [_trade(sim, CAROL, taker, True, "10"), _trade(sim, CAROL, taker, False, "10")]


def _setup(sim: Sim) -> None:
    sim.ts = D0 - 3_600_000
    sim.list_market(btc_spec(), 100_000)
    for user, amount in ((ALICE, 1_000_000), (CAROL, 10_000_000), (BOB, 100_000), (DAVE, 100_000)):
        sim.deposit(user, amount)
    assert sim.do(C.CreateSubAccount, master=ALICE, sub=SUB, name="desk") == OK
    assert sim.transfer(ALICE, SUB, usd(200_000)) == OK


def test_six_million_over_three_days_moves_the_group_to_tier_1_and_makers_earn_rebates(sim: Sim) -> None:
    _setup(sim)
    fees0 = sim.fees()
    # D0: Alice $2M at tier 0 ($450 per $1M); Carol's first day: 0.015% ($150 per $1M), no share yet
    _day(sim, 0)
    assert [(f.taker_fee, f.maker_fee) for f in _round_trip(sim, ALICE)] == [(usd(450), usd(150))] * 2
    # D1: Alice's window (D0) holds $2M: tier 0.  Carol made 100% of D0's maker volume: −0.003%
    _day(sim, 1)
    assert [(f.taker_fee, f.maker_fee) for f in _round_trip(sim, ALICE)] == [(usd(450), usd(-30))] * 2
    # Bob takes 0.5 BTC ($50,000) from Dave: $22.50 and Dave's $7.50, both tier 0
    fill = _trade(sim, DAVE, BOB, True, "0.5")
    assert (fill.taker_fee, fill.maker_fee) == (usd("22.5"), usd("7.5"))
    # D2: the sub-account trades $2M; the group's window (D0, D1) holds $4M, not more than $5M: tier 0
    _day(sim, 2)
    assert [(f.taker_fee, f.maker_fee) for f in _round_trip(sim, SUB)] == [(usd(450), usd(-30))] * 2
    assert sim.ex.volume.fee_rates(ALICE, sim.ts) == (45_000, 15_000)

    # D3: the group's 14 days (D0..D2) hold $6M > $5M: tier 1 for master and sub alike (neither
    # alone has more than $4M).  Exchange: $6.05M; Carol made $6M of it (99.2% > 3%): −0.003%;
    # Dave $50,000 (0.83%: > 0.5%, not > 1.5%): −0.001%; Bob ($22,500 taken) stays at tier 0.
    _day(sim, 3)
    assert sim.ex.volume.fee_rates(ALICE, sim.ts) == (40_000, 12_000)
    assert sim.ex.volume.fee_rates(SUB, sim.ts) == (40_000, 12_000)
    assert sim.ex.volume.fee_rates(CAROL, sim.ts) == (40_000, -3_000)  # her $6M is tier 1 too; the rebate wins
    assert sim.ex.volume.fee_rates(DAVE, sim.ts) == (45_000, -1_000)
    assert sim.ex.volume.fee_rates(BOB, sim.ts) == (45_000, 15_000)
    d3 = [
        (_trade(sim, CAROL, ALICE, True, "1"), usd(40), usd(-3)),
        (_trade(sim, CAROL, SUB, True, "1"), usd(40), usd(-3)),
        (_trade(sim, CAROL, BOB, True, "1"), usd(45), usd(-3)),
        (_trade(sim, DAVE, BOB, True, "1"), usd(45), usd(-1)),
        (_trade(sim, ALICE, BOB, True, "1"), usd(45), usd(12)),  # Alice as maker: tier 1's 0.012%
    ]
    assert [(f.taker_fee, f.maker_fee) for f, _, _ in d3] == [(t, m) for _, t, m in d3]
    # the rebates are paid out of the same fills' taker fees: the fee account only ever gains
    # D0 2 × (450 + 150); D1 2 × (450 − 30) + 22.50 + 7.50; D2 2 × (450 − 30); D3 the five fills above
    assert sim.fees() - fees0 == usd(1_200 + 840 + 30 + 840 + (37 + 37 + 42 + 44 + 57))
    assert sim.ex.volume.daily_volume(ALICE, sim.ts)[-4:] == [
        (D0 // DAY_MS, usd(2_000_000), 0, usd(2_000_000)),
        (D0 // DAY_MS + 1, usd(2_000_000), 0, usd(2_050_000)),
        (D0 // DAY_MS + 2, 0, 0, usd(2_000_000)),  # the sub's day: not in the master's own volume
        (D0 // DAY_MS + 3, usd(100_000), usd(100_000), usd(500_000)),
    ]

    # D14: the window is D0..D13 — still $6.3M for the group: tier 1
    _day(sim, 14)
    fill = _trade(sim, CAROL, ALICE, True, "1")
    assert fill.taker_fee == usd(40)
    # D15: D0 has left the window (D1..D14: $4.4M): tier 0 again.  Her $100,000 made on D3 is 2.15% of
    # the window's $4.65M of maker volume (> 1.5%, not > 3%): her maker rate is the −0.002% rebate
    _day(sim, 15)
    assert sim.ex.volume.fee_rates(ALICE, sim.ts) == (45_000, -2_000)
    fill = _trade(sim, CAROL, ALICE, False, "1")
    assert fill.taker_fee == usd(45)
    sim.audit()  # money conserved to the unit, and replaying the events gives the same state hash


def test_a_sub_account_with_no_volume_pays_its_masters_tier_and_other_accounts_their_own(sim: Sim) -> None:
    """Sub-accounts share the master's tier; any other account (a vault, say) is alone."""
    _setup(sim)
    _day(sim, 0)
    for _ in range(3):
        _round_trip(sim, ALICE)  # $6M on D0
    _day(sim, 1)
    assert sim.ex.volume.fee_rates(ALICE, sim.ts) == (40_000, 12_000)
    assert sim.ex.volume.fee_rates(SUB, sim.ts) == (40_000, 12_000)  # no volume of its own
    assert sim.ex.volume.fee_rates(DAVE, sim.ts) == (45_000, 15_000)
    sim.audit()


def test_a_rebate_larger_than_the_taker_fee_is_capped_at_it(sim: Sim) -> None:
    """On a market whose taker fee is small against its maker fee the top rebate, scaled like every
    tier rate (15,000 → −3,000 becomes 60,000 → −12,000), would exceed a tier-0 taker's 0.005%:
    the maker gets the taker's fee and no more, and the fee account never pays out."""
    sim.ts = D0 - 3_600_000
    sim.list_market(btc_spec(fees=FeeSchedule(maker=60_000, taker=5_000)), 100_000)
    for user, amount in ((CAROL, 10_000_000), (BOB, 1_000_000), (ALICE, 100_000)):
        sim.deposit(user, amount)
    _day(sim, 0)
    _trade(sim, CAROL, BOB, True, "10")  # Carol: the whole day's maker volume
    _day(sim, 1)
    assert sim.ex.volume.fee_rates(CAROL, sim.ts, BTC_ID) == (5_000, -12_000)
    fees0 = sim.fees()
    fill = _trade(sim, CAROL, ALICE, True, "1")
    assert (fill.taker_fee, fill.maker_fee) == (usd(5), usd(-5))  # not −$12
    assert sim.fees() == fees0
    sim.audit()


def test_fee_decisions_after_a_replay_equal_the_live_exchanges_over_forty_days() -> None:
    """The tier cache is derived state: an exchange rebuilt from the events at any point decides
    every later fee exactly as the one that ran throughout (seeded orders over 40 UTC days, with
    volume entering and leaving the 14-day window and makers moving in and out of rebate tiers)."""
    rng = random.Random(7)
    users = ["0x" + f"{i:040x}" for i in range(1, 7)]
    spec = btc_spec()
    cmds: list[C.Command] = [C.AddMarket(ts=D0, spec=spec, mark_px=1_000_000)]
    cmds += [C.Deposit(ts=D0, user=u, usd=usd(50_000_000)) for u in users]
    ts = D0
    for _ in range(1_500):
        ts += rng.randint(1, 5 * 3_600_000)
        px = 1_000_000 + rng.randint(-20, 20) * 100
        cmds.append(C.place(ts, rng.choice(users), 0, rng.random() < 0.5, px, rng.randint(1, 40) * 100_000,
                            tif=rng.choice(["Gtc", "Ioc"])))
    assert ts - D0 > 40 * DAY_MS
    live = Exchange()
    events: list[list[V.Event]] = []
    answers = []
    for cmd in cmds:
        outcome = live.execute(cmd)
        events.append(outcome.events)
        answers.append(msgspec.json.encode([outcome.events, outcome.response], enc_hook=str))
    fills = [e for evs in events for e in evs if isinstance(e, V.Fill)]
    assert any(f.maker_fee < 0 for f in fills) and any(f.maker_fee > 0 for f in fills)  # rebates come and go
    assert any(f.taker_fee * 10**8 < 45_000 * f.px * f.sz for f in fills)  # some taker above tier 0
    for cut in (300, 700, 1_100):
        rebuilt = Exchange.replay(e for evs in events[:cut] for e in evs)
        for i in range(cut, len(cmds)):
            again = rebuilt.execute(cmds[i])
            assert msgspec.json.encode([again.events, again.response], enc_hook=str) == answers[i], (cut, i)
        assert rebuilt.state_hash() == live.state_hash()

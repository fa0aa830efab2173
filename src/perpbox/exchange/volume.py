"""Traded volume: each account's cumulative notional (the open-order limit grows with it) and the
per-UTC-day buckets the fee tiers are computed from (``perpbox.market.fees``).

Per account, UTC day -> [taker (cross), maker (add)] notional, and the exchange's notional per day;
a day more than ``WINDOW_DAYS`` before a later booked day is dropped.  The tier of a user on a day
is cached (derived, never hashed): the window holds only days before it, and a fill booked on one
of them clears the cache.
"""

from __future__ import annotations

from typing import ClassVar

from perpbox.exchange.markets import MarketBoard
from perpbox.ledger.ledger import Ledger
from perpbox.market.fees import DAY_MS, MAKER_RATES, TAKER_RATES, WINDOW_DAYS, fee_tier


class TradeVolume:
    STATE: ClassVar[tuple[str, ...]] = ("traded", "day_volume", "exchange_volume")

    def __init__(self, ledger: Ledger, board: MarketBoard) -> None:
        self.ledger = ledger
        self.board = board
        self.traded: dict[str, int] = {}  # cumulative traded notional per account, micro-USDC (both sides)
        self.day_volume: dict[str, dict[int, list[int]]] = {}
        self.exchange_volume: dict[int, int] = {}
        self._fee_tiers: dict[str, tuple[int, int]] = {}  # derived: user -> tier indices on _fee_day
        self._fee_day = -1

    # -- reads -------------------------------------------------------------------------------------
    def traded_by(self, user: str) -> int:
        return self.traded.get(user, 0)

    def fee_rates(self, user: str, ts: int, asset: int | None = None) -> tuple[int, int]:
        """(taker, maker) fee rates, 1e-8 of notional (a negative maker rate is a rebate), that
        ``user`` pays on the UTC day of ``ts``: its fee group's tier (``market.fees``) on
        ``asset``'s market, or in the venue's base schedule when ``asset`` is None (what ``userFees``
        reports as ``userCrossRate`` / ``userAddRate``)."""
        taker, maker = self.tier_of(user, ts // DAY_MS)
        if asset is None:
            return TAKER_RATES[taker], MAKER_RATES[maker]
        rules = self.board.rules_of(asset)
        return rules.takers[taker], rules.makers[maker]

    def daily_volume(self, user: str, ts: int) -> list[tuple[int, int, int, int]]:
        """``(day, cross, add, exchange)`` for the UTC day of ``ts`` and the ``WINDOW_DAYS`` before
        it, oldest first (day = days since 1970-01-01): ``user``'s own taker and maker notional
        (micro-USDC; a master's excludes its sub-accounts') and the exchange's (each fill once)."""
        today = ts // DAY_MS
        days = self.day_volume.get(user, {})
        out = []
        for day in range(today - WINDOW_DAYS, today + 1):
            b = days.get(day)
            cross, add = (0, 0) if b is None else (b[0], b[1])
            out.append((day, cross, add, self.exchange_volume.get(day, 0)))
        return out

    def tier_of(self, user: str, day: int) -> tuple[int, int]:
        """``fee_tier`` indices of ``user``'s fee group on UTC ``day``, from the ``WINDOW_DAYS``
        completed days before it.  The group is a master and its sub-accounts (a sub-account's is
        its master's); any other account is alone."""
        accounts = self.ledger.accounts
        acct = accounts.get(user)
        root = user if acct is None or acct.master is None else acct.master
        members = [root] + (accounts[root].subs if root in accounts else [])
        first = day - WINDOW_DAYS
        cross = add = 0
        for member in members:
            for d, b in self.day_volume.get(member, {}).items():
                if first <= d < day:
                    cross += b[0]
                    add += b[1]
        exchange = sum(v for d, v in self.exchange_volume.items() if first <= d < day)
        return fee_tier(cross + add, add, exchange)

    def fee_tier(self, user: str, day: int) -> tuple[int, int]:
        """``tier_of``, cached for ``day``."""
        if day != self._fee_day:
            self._fee_tiers = {}
            self._fee_day = day
        tiers = self._fee_tiers.get(user)
        if tiers is None:
            tiers = self._fee_tiers[user] = self.tier_of(user, day)
        return tiers

    # -- part of Fill's applier --------------------------------------------------------------------
    def book(self, ts: int, taker: str, maker: str, notional: int) -> None:
        """The fill's notional into both sides' totals and into its UTC day's fee-tier buckets, the
        taker's ``cross``, the maker's ``add`` and the exchange's.  A day is dropped once it has left
        every window (more than ``WINDOW_DAYS`` before the day being booked)."""
        traded = self.traded
        traded[taker] = traded.get(taker, 0) + notional
        traded[maker] = traded.get(maker, 0) + notional
        day = ts // DAY_MS
        first = day - WINDOW_DAYS
        exchange = self.exchange_volume
        total = exchange.get(day)
        if total is None:
            for d in [d for d in exchange if d < first]:
                del exchange[d]
            total = 0
        exchange[day] = total + notional
        self._day_bucket(taker, day, first)[0] += notional
        self._day_bucket(maker, day, first)[1] += notional
        if day < self._fee_day:
            self._fee_tiers = {}  # a fill on a day inside the cached window

    def _day_bucket(self, user: str, day: int, first: int) -> list[int]:
        days = self.day_volume.get(user)
        if days is None:
            days = self.day_volume[user] = {}
        bucket = days.get(day)
        if bucket is None:
            for d in [d for d in days if d < first]:
                del days[d]
            bucket = days[day] = [0, 0]
        return bucket

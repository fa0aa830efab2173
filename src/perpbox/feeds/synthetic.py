"""A seeded synthetic price feed for the oracles: a geometric random walk with jumps per market.

Floats are fine here — the feed is outside the engine; prices become integer price units before
they enter a command.  Markets on a session calendar stand still while their external market is
closed (the engine then runs its off-hours oracle from the book).  Each venue source quotes the
walk with a little independent noise, so the weighted median has something to do.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from perpbox.config import ListedMarket

YEAR_MS = 365 * 86_400_000
JUMP_PROB_PER_STEP = 0.002  # about one jump per market every 25 min at a 3 s step
JUMP_SIGMAS = 8.0
SOURCE_NOISE_BPS = 2.0


class SyntheticFeed:
    def __init__(self, markets: list[ListedMarket], seed: int, start_ts: int) -> None:
        self.rng = random.Random(seed)
        self.markets = {m.spec.asset: m for m in markets}
        self.px = {m.spec.asset: float(m.price) for m in markets}  # price units
        self.ts = start_ts

    def resume_from(self, prices: dict[int, int]) -> None:
        """Continue from the exchange's current oracles (after a restart)."""
        for a, px in prices.items():
            if a in self.px and px > 0:
                self.px[a] = float(px)

    def step(self, ts: int, vol_scale: Mapping[int, float] | None = None) -> dict[int, float]:
        """Walk to ``ts``; ``vol_scale`` (asset → factor) makes some markets more volatile for now."""
        dt = max(ts - self.ts, 0)
        self.ts = ts
        for a, m in self.markets.items():
            session = m.spec.oracle.session
            if session is not None and not session.is_open(ts):
                continue
            sigma = m.vol * math.sqrt(dt / YEAR_MS) * (vol_scale.get(a, 1.0) if vol_scale else 1.0)
            ret = self.rng.gauss(0.0, sigma)
            if self.rng.random() < JUMP_PROB_PER_STEP:
                ret += self.rng.gauss(0.0, sigma * JUMP_SIGMAS)
            self.px[a] *= math.exp(ret)
        return dict(self.px)

    def quote(self, asset: int) -> int:
        """One source's quote of ``asset`` in whole price units."""
        noise = self.rng.gauss(0.0, SOURCE_NOISE_BPS / 10_000)
        return max(1, round(self.px[asset] * (1 + noise)))

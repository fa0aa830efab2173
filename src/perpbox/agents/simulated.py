"""Built-in simulated participants for ``perpbox serve`` (on unless ``--no-agents``).

* market makers quote a ladder of post-only orders around the oracle on every market and requote
  every few seconds (cancel-all + new ladder in one submission);
* noise takers send IOC orders of random size and side;
* leveraged traders open 10–20x positions and hold them, so that jumps in the feed liquidate some.

They trade in-process through the sequencer (no HTTP, no signatures), deterministically from the
seed; their addresses are fixed (``0x…a9e0…`` + index) so a restart finds their accounts.

Standard accounts keep one balance per perp dex: each participant deposits its capital once per
dex listed at start and sends one share to each HIP-3 dex (``sendAsset``), and trades only on dexes
where it holds an account (a dex deployed later is left to its own traders).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from perpbox.core.numbers import USD, round_price_sig
from perpbox.exchange import Exchange
from perpbox.exchange import commands as C
from perpbox.exchange.reads import MarginSummary
from perpbox.market.spec import MarketSpec

Submit = Callable[[list[C.Command]], Awaitable[Any]]
MAKER_CAPITAL = 20_000_000 * USD
TAKER_CAPITAL = 500_000 * USD
LEVERED_CAPITAL = 50_000 * USD
LEVELS = 8


def agent_address(kind: int, i: int) -> str:
    return f"0x{0xA9E0:04x}{kind:04x}{i:032x}"


MAKERS = [agent_address(1, i) for i in range(2)]
TAKERS = [agent_address(2, i) for i in range(3)]
LEVERED = [agent_address(3, i) for i in range(4)]


def funding_commands(ex: Exchange) -> list[C.Command]:
    """Deposits for agents that have no account yet: the capital on the first dex and as much again
    on each HIP-3 dex (deposited, then sent there with ``sendAsset``)."""
    out: list[C.Command] = []
    hip3 = [d for d in ex.reads.dex_names() if d]
    for users, usd in ((MAKERS, MAKER_CAPITAL), (TAKERS, TAKER_CAPITAL), (LEVERED, LEVERED_CAPITAL)):
        for u in users:
            if ex.reads.has_account(u):
                continue
            out.append(C.Deposit(ts=0, user=u, usd=usd * (1 + len(hip3))))
            out += [C.SendAsset(ts=0, user=u, src=u, dst=u, src_dex="", dst_dex=d, usd=usd) for d in hip3]
    return out


def funded(ex: Exchange, user: str, spec: MarketSpec) -> bool:
    """Whether ``user`` has an account on ``spec``'s dex (a cheap test: no margin figures)."""
    key = ex.reads.clearinghouse(user, spec.dex)
    return key is not None and ex.reads.has_account(key)


def margin_account(ex: Exchange, user: str, spec: MarketSpec) -> MarginSummary | None:
    """The margin of ``user``'s account on ``spec``'s dex (None: not funded there)."""
    return ex.reads.margin_summary(user, spec.dex)


def _size(spec: MarketSpec, px: int, usd: float) -> int:
    """Lots worth about ``usd`` at ``px`` price units, at least the $10 minimum."""
    lot_value = px / 10**spec.px_decimals / 10**spec.sz_decimals  # USD per lot
    return max(int(max(usd, 12.0) / lot_value), 1)


class Agents:
    def __init__(self, ex: Exchange, submit: Submit, seed: int) -> None:
        self.ex = ex
        self.reads = ex.reads  # the engine's read surface: all the agents look at
        self.submit = submit
        self.rng = random.Random(seed * 7919 + 17)

    def ladder(self, maker: str, spec: MarketSpec, center: int, k: int) -> list[C.OrderRequest]:
        rng = self.rng
        half_spread_bps = 1.0 + 2.0 * k + rng.random() * 2
        out = []
        for lvl in range(LEVELS):
            off = center * (half_spread_bps + lvl * (2.0 + 1.5 * k)) / 10_000
            usd = rng.uniform(2_000, 25_000) * (1 + lvl)
            for is_buy in (True, False):
                px = round_price_sig(int(center - off) if is_buy else int(center + off) + 1, spec.px_decimals,
                                     up=not is_buy)
                if px <= 0:
                    continue
                out.append(C.OrderRequest(asset=spec.asset, is_buy=is_buy, px=px, sz=_size(spec, px, usd), tif="Alo"))
        return out

    async def requote(self) -> None:
        for k, maker in enumerate(MAKERS):
            cmds: list[C.Command] = [C.CancelAll(ts=0, user=maker)]
            orders = []
            for spec in self.reads.markets():
                center = self.reads.oracle(spec.asset) or self.reads.mark(spec.asset)
                if center > 0 and self.reads.status(spec.asset) == "active" \
                        and funded(self.ex, maker, spec):
                    orders += self.ladder(maker, spec, center, k)
            if orders:
                cmds.append(C.PlaceOrders(ts=0, user=maker, orders=orders))
            await self.submit(cmds)

    def _market_order(self, user: str, spec: MarketSpec, is_buy: bool, usd: float,
                      reduce_only: bool = False) -> C.PlaceOrders | None:
        mark = self.reads.mark(spec.asset)
        if mark <= 0 or self.reads.status(spec.asset) != "active":
            return None
        px = round_price_sig(mark * (105 if is_buy else 95) // 100, spec.px_decimals, up=not is_buy)
        req = C.OrderRequest(asset=spec.asset, is_buy=is_buy, px=px, sz=_size(spec, mark, usd), tif="Ioc",
                             reduce_only=reduce_only)
        return C.PlaceOrders(ts=0, user=user, orders=[req])

    async def take(self) -> None:
        rng = self.rng
        specs = list(self.reads.markets())
        if not specs:
            return
        user = rng.choice(TAKERS)
        spec = rng.choice(specs)
        if not funded(self.ex, user, spec):
            return
        pos = self.reads.position(user, spec.asset)
        # lean against an existing position so takers do not drift into huge inventories
        lean = 0.5 if pos is None or not pos.szi else (0.3 if pos.szi > 0 else 0.7)
        cmd = self._market_order(user, spec, rng.random() < lean, rng.lognormvariate(8.0, 1.0))
        if cmd is not None:
            await self.submit([cmd])

    async def lever(self) -> None:
        """A leveraged trader opens or closes a position."""
        rng = self.rng
        user = rng.choice(LEVERED)
        spec = rng.choice(list(self.reads.markets()))
        pos = self.reads.position(user, spec.asset)
        if pos is not None and pos.szi:
            if rng.random() < 0.3:
                cmd = self._market_order(user, spec, pos.szi < 0, 1e12, reduce_only=True)
                if cmd is not None:
                    await self.submit([cmd])
            return
        margin = margin_account(self.ex, user, spec)
        if margin is None or margin.available_to_trade < 5_000 * USD:
            return
        lev = min(spec.max_leverage, rng.choice((10, 15, 20)))
        cmds: list[C.Command] = [C.UpdateLeverage(ts=0, user=user, asset=spec.asset, is_cross=True, leverage=lev)]
        order = self._market_order(user, spec, rng.random() < 0.5, rng.uniform(20_000, 80_000))
        if order is not None:
            await self.submit([*cmds, order])

"""Named participants a scenario places by hand (``[[actor]]`` tables), beside the population:

* ``holder`` — opens one position (``side``, ``notional_usd`` at ``leverage``, cross) at
  ``start`` and holds it: the large longs of an incident, the ones a manipulation aims at;
* ``twap`` — trades ``notional_usd`` on ``side`` in equal IOC market slices every ``slice``
  from ``start`` for ``duration`` (the XYZ100 weekend's six-hour short), then holds.

Each actor has its own account funded with ``capital_usd`` on the market's dex, so its PnL is
its account value at the end minus that capital (``attacker.pnl_usd`` sums the ``twap`` actors'
and every actor with ``attacker = true``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from perpbox.exchange import commands as C
from perpbox.exchange.reads import ExchangeReads as Reads
from perpbox.market.spec import MarketSpec

KINDS = ("holder", "twap")


def actor_address(i: int) -> str:
    return f"0x{0xA9E1:04x}{0x00AC:04x}{i:032x}"


@dataclass(frozen=True)
class ActorSpec:
    kind: str
    market: str
    side: str  # "long" (buys) or "short" (sells)
    notional_usd: float
    capital_usd: int
    leverage: int
    start_ms: int
    duration_ms: int = 0  # twap
    slice_ms: int = 60_000  # twap
    attacker: bool = False

    @property
    def is_buy(self) -> bool:
        return self.side == "long"


def _lots(spec: MarketSpec, px: int, usd: float) -> int:
    lot_value = px / 10**spec.px_decimals / 10**spec.sz_decimals
    lots: int = math.floor(usd / lot_value)
    return max(lots, 1)


class Actor:
    def __init__(self, index: int, spec: ActorSpec, market: MarketSpec) -> None:
        self.address = actor_address(index)
        self.spec, self.market = spec, market
        self.done_usd = 0.0
        self.next_ms = spec.start_ms
        self.finished = False

    def step(self, t_ms: int, ts: int, reads: Reads) -> list[C.Command]:
        """The commands at ``t_ms`` after the start (``ts`` absolute)."""
        s = self.spec
        if self.finished or t_ms < self.next_ms:
            return []
        mark = reads.mark(self.market.asset)
        if mark <= 0 or reads.status(self.market.asset) != "active":
            return []
        out: list[C.Command] = []
        if self.done_usd == 0:
            out.append(C.UpdateLeverage(ts=ts, user=self.address, asset=self.market.asset, is_cross=True,
                                        leverage=max(1, min(s.leverage, self.market.max_leverage))))
        if s.kind == "holder":
            usd, self.finished = s.notional_usd, True
        else:
            slices = max(1, s.duration_ms // s.slice_ms)
            usd = s.notional_usd / slices
            self.next_ms += s.slice_ms
            self.finished = self.next_ms >= s.start_ms + s.duration_ms
        self.done_usd += usd
        out.append(C.market_order(ts, self.address, self.market, mark, s.is_buy, _lots(self.market, mark, usd),
                                  slippage_bps=500))
        return out


def parse_actors(rows: Any, parse_duration: Any, markets: dict[str, MarketSpec]) -> tuple[ActorSpec, ...]:
    """``[[actor]]`` rows; a ValueError names what is wrong and where."""
    if not isinstance(rows, list):
        raise ValueError("[[actor]] must be an array of tables")
    out = []
    allowed = {"kind", "market", "side", "notional_usd", "capital_usd", "leverage", "start", "duration", "slice",
               "attacker"}
    for i, row in enumerate(rows):
        where = f"actor[{i}]"
        if not isinstance(row, dict):
            raise ValueError(f"{where} must be a table")
        unknown = sorted(set(row) - allowed)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}")
        kind, market, side = row.get("kind"), row.get("market"), row.get("side")
        if kind not in KINDS:
            raise ValueError(f"{where}.kind: one of {KINDS}, not {kind!r}")
        if market not in markets:
            raise ValueError(f"{where}.market: {market!r} is not a market of the scenario")
        if side not in ("long", "short"):
            raise ValueError(f"{where}.side: 'long' or 'short'")
        notional, capital, leverage = row.get("notional_usd"), row.get("capital_usd"), row.get("leverage", 1)
        for name, value in (("notional_usd", notional), ("capital_usd", capital), ("leverage", leverage)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e12:
                raise ValueError(f"{where}.{name}: a positive number, not {value!r}")
        if not isinstance(capital, int) or not isinstance(leverage, int) or not isinstance(notional, int | float):
            raise ValueError(f"{where}: capital_usd and leverage are integers")
        start = parse_duration(row.get("start", 0), f"{where}.start")
        duration = parse_duration(row.get("duration", 0), f"{where}.duration")
        slice_ = parse_duration(row.get("slice", "1m"), f"{where}.slice")
        if kind == "twap" and (duration <= 0 or slice_ <= 0):
            raise ValueError(f"{where}: a twap needs a duration and a slice > 0")
        out.append(ActorSpec(kind=str(kind), market=str(market), side=str(side), notional_usd=float(notional),
                             capital_usd=capital, leverage=leverage, start_ms=start, duration_ms=duration,
                             slice_ms=slice_, attacker=bool(row.get("attacker", kind == "twap"))))
    return tuple(out)

"""Named participants a scenario places by hand (``[[actor]]`` tables), beside the population:

* ``holder`` — opens one position (``side``, ``notional_usd`` at ``leverage``) at ``start`` with an
  IOC market order (5% bound from the mark) and holds it: the large longs of an incident, the ones
  a manipulation aims at;
* ``twap`` — trades ``notional_usd`` on ``side`` in equal IOC market slices (5% bound) every
  ``slice`` from ``start`` for ``duration`` (the XYZ100 weekend's six-hour short), then holds;
* ``sweep`` — like a twap, but each slice is an IOC limited ``slippage_bps`` (default 2,000)
  beyond the far side of the touch (the best ask for a buy, or the mark if higher; the best bid or
  the mark, if lower, for a sell) and within the venue's price band around the oracle
  (``MarketControls.price_band_bps``): aggressive orders that walk a thin book as it moves (the XPL
  whales);
* ``wall`` — a large resting post-only limit order (``side``: ``long`` a bid, ``short`` an ask) of
  ``notional_usd`` at ``price`` (a decimal, in dollars, on the market's tick), placed at ``start``
  and cancelled at ``end`` (none: kept to the horizon): the spoof wall of the POPCAT attack, pulled
  once the longs it made look safe are open.  Its account must margin the order at ``leverage``.

Every actor may also set ``isolated = true`` (its positions isolated-margin, ``UpdateLeverage``
with ``is_cross = false``; on a market that allows only isolated margin that is the only way in)
and ``wallets = N``: the actor's ``notional_usd`` and ``capital_usd`` are split evenly over N
accounts, each acting alike on its share (the POPCAT attacker's 19 wallets, the XPL whales' four);
a twap's or a sweep's wallets take their turns spread evenly over each slice (wallet ``w`` at
``start + w × slice / N``), a holder's and a wall's all act at ``start``.  ``wallets_of = K``
makes an actor trade from earlier actor K's wallets instead of its own (the XPL whales' build-up
and their sweep): it has no ``capital_usd``, ``wallets`` or ``attacker`` of its own, and is funded
and counted as actor K.

Each actor's accounts (``Actor.accounts``) are funded with their share of ``capital_usd`` on the
market's dex, so its PnL is its accounts' value at the end minus that capital (``attacker.pnl_usd``
sums the accounts of every actor with ``attacker = true``: by default the ``twap``, ``sweep`` and
``wall`` actors).  Addresses are fixed per (actor index, wallet): ``0xa9e100ac`` then the wallet
(8 hex digits) and the index (24); wallet 0 is the actor's address as before wallets existed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from perpbox.core.numbers import USD, parse_units
from perpbox.exchange import commands as C
from perpbox.exchange.reads import ExchangeReads as Reads
from perpbox.market.spec import MarketSpec

KINDS = ("holder", "twap", "sweep", "wall")
ATTACKER_BY_DEFAULT = ("twap", "sweep", "wall")
MAX_WALLETS = 1_000
DEFAULT_SWEEP_BPS = 2_000


def actor_address(i: int, wallet: int = 0) -> str:
    """The address of wallet ``wallet`` of actor ``i`` (wallet 0: the actor's own address)."""
    return f"0x{0xA9E1:04x}{0x00AC:04x}{wallet:08x}{i:024x}"


@dataclass(frozen=True)
class ActorSpec:
    kind: str
    market: str
    side: str  # "long" (buys; a wall: a bid) or "short" (sells; a wall: an ask)
    notional_usd: float  # over all its wallets
    capital_usd: int  # over all its wallets
    leverage: int
    start_ms: int
    duration_ms: int = 0  # twap, sweep
    slice_ms: int = 60_000  # twap, sweep
    attacker: bool = False
    wallets: int = 1
    isolated: bool = False
    price_px: int = 0  # wall: its price, in the market's price units
    end_ms: int = 0  # wall: when it is pulled (0: never)
    slippage_bps: int = DEFAULT_SWEEP_BPS  # sweep: how far beyond the touch each slice may fill
    wallets_of: int = -1  # trades from that earlier actor's wallets (funded and counted there); -1: its own

    @property
    def is_buy(self) -> bool:
        return self.side == "long"


def _lots(spec: MarketSpec, px: int, usd: float) -> int:
    lot_value = px / 10**spec.px_decimals / 10**spec.sz_decimals
    lots: int = math.floor(usd / lot_value)
    return max(lots, 1)


class Actor:
    def __init__(self, index: int, spec: ActorSpec, market: MarketSpec) -> None:
        owner = index if spec.wallets_of < 0 else spec.wallets_of
        self.address = actor_address(owner)
        self.addresses = [actor_address(owner, w) for w in range(spec.wallets)]
        self.spec, self.market = spec, market
        self.next_ms = spec.start_ms
        self.started = False
        self.finished = False
        # twap / sweep: each wallet's next slice, the wallets spread evenly over the first slice
        n = spec.wallets
        self.due = [spec.start_ms + w * spec.slice_ms // n for w in range(n)]
        self.slices = max(1, spec.duration_ms // spec.slice_ms) if spec.duration_ms else 1
        self.sent = [0] * n

    def accounts(self) -> list[tuple[str, int]]:
        """The actor's accounts and the capital each is funded with (micro-USDC): ``capital_usd``
        split over its wallets, exactly (the first ones take the remainder's micro-dollars); none
        for an actor trading from another's wallets (``wallets_of``: funded and counted there)."""
        if self.spec.wallets_of >= 0:
            return []
        total, n = self.spec.capital_usd * USD, len(self.addresses)
        return [(a, total // n + (1 if w < total % n else 0)) for w, a in enumerate(self.addresses)]

    def step(self, t_ms: int, ts: int, reads: Reads) -> list[C.Command]:
        """The commands at ``t_ms`` after the start (``ts`` absolute)."""
        s, asset = self.spec, self.market.asset
        if self.finished or t_ms < self.next_ms:
            return []
        if s.kind == "wall" and self.started:  # pulled (cancels are allowed whatever the status)
            self.finished = True
            return [C.CancelAll(ts=ts, user=a, asset=asset) for a in self.addresses]
        mark = reads.mark(asset)
        if mark <= 0 or reads.status(asset) != "active":
            return []
        out: list[C.Command] = []
        if not self.started:
            self.started = True
            lev = max(1, min(s.leverage, self.market.max_leverage))
            out += [C.UpdateLeverage(ts=ts, user=a, asset=asset, is_cross=not s.isolated, leverage=lev)
                    for a in self.addresses]
        share = s.notional_usd / len(self.addresses)
        if s.kind == "wall":
            self.next_ms, self.finished = s.end_ms, not s.end_ms
            lots = _lots(self.market, s.price_px, share)
            return out + [C.place(ts, a, asset, s.is_buy, s.price_px, lots, tif="Alo") for a in self.addresses]
        if s.kind == "holder":
            self.finished = True
            lots = _lots(self.market, mark, share)
            return out + [C.market_order(ts, a, self.market, mark, s.is_buy, lots, slippage_bps=500)
                          for a in self.addresses]
        lots = _lots(self.market, mark, share / self.slices)
        px = self._sweep_limit(reads, mark) if s.kind == "sweep" else 0
        for w, a in enumerate(self.addresses):
            if self.sent[w] >= self.slices or t_ms < self.due[w]:
                continue
            self.sent[w] += 1
            self.due[w] += s.slice_ms
            if s.kind == "sweep":
                out.append(C.place(ts, a, asset, s.is_buy, px, lots, tif="Ioc"))
            else:
                out.append(C.market_order(ts, a, self.market, mark, s.is_buy, lots, slippage_bps=500))
        pending = [d for d, k in zip(self.due, self.sent, strict=True) if k < self.slices]
        self.next_ms, self.finished = min(pending, default=0), not pending
        return out

    def _sweep_limit(self, reads: Reads, mark: int) -> int:
        """``slippage_bps`` beyond the far side of the touch (or the mark), inside the price band
        around the oracle (an order outside it would be refused whole)."""
        s, m = self.spec, self.market
        bid, ask = reads.best_bid_ask(m.asset)
        if s.is_buy:
            ref = max(mark, ask or 0)
        else:
            ref = min(mark, bid) if bid is not None else mark
        px = m.slippage_px(ref, s.is_buy, s.slippage_bps)
        oracle, band = reads.oracle(m.asset) or mark, m.controls.price_band_bps
        if band:
            edge = m.slippage_px(oracle, s.is_buy, band - 1)
            px = min(px, edge) if s.is_buy else max(px, edge)
        return px


def _integer(where: str, value: object, low: int, high: int) -> int:
    """``value`` if it is an integer within [low, high], else a ValueError saying so."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{where}: an integer from {low} to {high}, not {value!r}")
    return value


def _flag(where: str, row: dict[str, Any], key: str, default: bool) -> bool:
    value = row.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{where}.{key}: true or false, not {value!r}")
    return value


def _price(where: str, value: object, market: MarketSpec) -> int:
    """A wall's ``price``: a positive decimal (a string, or a number) on the market's tick."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{where}: a price in dollars (e.g. \"0.21\"), not {value!r}")
    px = parse_units(value if isinstance(value, str) else repr(value), market.px_decimals)
    if px is None or px <= 0 or not market.valid_price(px):
        raise ValueError(f"{where}: {value!r} is not a positive price on {market.coin}'s tick "
                         f"({market.px_decimals} decimals, {market.max_sig_figs} significant figures)")
    return px


ALLOWED = {"kind", "market", "side", "notional_usd", "capital_usd", "leverage", "start", "duration", "slice",
           "attacker", "wallets", "wallets_of", "isolated", "price", "end", "slippage_bps"}
ONLY = {"price": ("wall",), "end": ("wall",), "slippage_bps": ("sweep",), "duration": ("twap", "sweep"),
        "slice": ("twap", "sweep")}


def parse_actors(rows: Any, parse_duration: Any, markets: dict[str, MarketSpec]) -> tuple[ActorSpec, ...]:
    """``[[actor]]`` rows; a ValueError names what is wrong and where."""
    if not isinstance(rows, list):
        raise ValueError("[[actor]] must be an array of tables")
    out: list[ActorSpec] = []
    for i, row in enumerate(rows):
        where = f"actor[{i}]"
        if not isinstance(row, dict):
            raise ValueError(f"{where} must be a table")
        unknown = sorted(set(row) - ALLOWED)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}")
        kind, market, side = row.get("kind"), row.get("market"), row.get("side")
        if kind not in KINDS:
            raise ValueError(f"{where}.kind: one of {KINDS}, not {kind!r}")
        for key, kinds in ONLY.items():
            if key in row and kind not in kinds:
                raise ValueError(f"{where}.{key}: only for a {' or a '.join(kinds)}, not a {kind}")
        if market not in markets:
            raise ValueError(f"{where}.market: {market!r} is not a market of the scenario")
        spec = markets[market]
        if side not in ("long", "short"):
            raise ValueError(f"{where}.side: 'long' or 'short'")
        owner: ActorSpec | None = None
        k = -1
        if "wallets_of" in row:
            if i == 0:
                raise ValueError(f"{where}.wallets_of: the index of an earlier [[actor]] (there is none)")
            k = _integer(f"{where}.wallets_of", row["wallets_of"], 0, i - 1)
            owner = out[k]
            if owner.wallets_of >= 0:
                raise ValueError(f"{where}.wallets_of: actor[{k}] itself trades from actor[{owner.wallets_of}]'s "
                                 "wallets; name that one")
            if markets[owner.market].dex != spec.dex:
                raise ValueError(f"{where}.wallets_of: actor[{k}]'s wallets are funded on another dex")
            for key in ("capital_usd", "wallets", "attacker"):
                if key in row:
                    raise ValueError(f"{where}.{key}: set by actor[{k}], whose wallets it trades from")
        notional, leverage = row.get("notional_usd"), row.get("leverage", 1)
        capital = owner.capital_usd if owner is not None else row.get("capital_usd")
        for name, value in (("notional_usd", notional), ("capital_usd", capital), ("leverage", leverage)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e12:
                raise ValueError(f"{where}.{name}: a positive number, not {value!r}")
        if not isinstance(capital, int) or not isinstance(leverage, int) or not isinstance(notional, int | float):
            raise ValueError(f"{where}: capital_usd and leverage are integers")
        wallets = owner.wallets if owner is not None else _integer(f"{where}.wallets", row.get("wallets", 1), 1,
                                                                   MAX_WALLETS)
        if notional < wallets or capital < wallets:
            raise ValueError(f"{where}.wallets: {wallets} wallets would leave less than $1 of notional_usd or "
                             "of capital_usd each")
        isolated = _flag(where, row, "isolated", False)
        if not isolated and spec.only_isolated:
            raise ValueError(f"{where}.isolated: {market} allows only isolated margin (isolated = true)")
        attacker = owner.attacker if owner is not None else _flag(where, row, "attacker", kind in ATTACKER_BY_DEFAULT)
        start = parse_duration(row.get("start", 0), f"{where}.start")
        duration = parse_duration(row.get("duration", 0), f"{where}.duration")
        slice_ = parse_duration(row.get("slice", "1m"), f"{where}.slice")
        if kind in ("twap", "sweep") and (duration <= 0 or slice_ <= 0):
            raise ValueError(f"{where}: a {kind} needs a duration and a slice > 0")
        price_px, end = 0, 0
        if kind == "wall":
            if "price" not in row:
                raise ValueError(f"{where}.price: a wall needs a price")
            price_px = _price(f"{where}.price", row["price"], spec)
            if "end" in row:
                end = parse_duration(row["end"], f"{where}.end")
                if end <= start:
                    raise ValueError(f"{where}.end: must be after start ({row['end']!r} ≤ {row.get('start', 0)!r})")
        slippage = _integer(f"{where}.slippage_bps", row.get("slippage_bps", DEFAULT_SWEEP_BPS), 1, 9_999)
        out.append(ActorSpec(kind=str(kind), market=str(market), side=str(side), notional_usd=float(notional),
                             capital_usd=capital, leverage=leverage, start_ms=start, duration_ms=duration,
                             slice_ms=slice_, attacker=attacker, wallets=wallets, isolated=isolated,
                             price_px=price_px, end_ms=end, slippage_bps=slippage,
                             wallets_of=k))
    return tuple(out)

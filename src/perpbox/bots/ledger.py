"""The hedge ledger: what the taker venue still owes the maker venue, kept from fills, never from
flags.

Every maker fill, partial or whole, adds signed *debt* at once (a maker buy of 0.3 owes a taker
sell of 0.3).  A hedge order *reserves* part of the debt while it is in flight, so a second hedge
cannot be sent for the same debt; its fills draw the debt down; its final state (filled, partly
filled, cancelled, rejected — queried after every cancel, since a fill may race it) releases the
rest of the reservation.  An order whose final state is unknown keeps its reservation: nothing is
booked as hedged that was not seen filled.

Fills are keyed by their venue id, so the same fill seen on the stream and again in a REST
reconciliation counts once.  A hedge fill larger than its order's reservation, or one against a
debt of the other sign, is an *overshoot*: recorded (the exposure is real) and reported, never
absorbed silently.  Sizes are exact ``Decimal`` in the coin's units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

ZERO = Decimal(0)


class LedgerError(ValueError):
    """A use of the ledger that would lose track of exposure (an unknown order, a size of zero)."""


@dataclass
class _Hedge:
    coin: str
    pending: Decimal  # signed: what of the order may still fill
    filled: Decimal = ZERO


@dataclass
class Overshoot:
    coin: str
    order_id: str
    fill_id: str
    excess: Decimal  # signed: traded past what was owed


@dataclass
class CoinBook:
    maker: Decimal = ZERO  # Σ maker fills (signed)
    hedged: Decimal = ZERO  # Σ hedge fills (signed; a full hedge is -maker)
    unhedged_since_ms: int | None = None

    @property
    def debt(self) -> Decimal:
        """The net exposure the hedges have not yet offset (signed like the maker fills)."""
        return self.maker + self.hedged


@dataclass
class HedgeLedger:
    coins: dict[str, CoinBook] = field(default_factory=dict)
    hedges: dict[str, _Hedge] = field(default_factory=dict)  # in-flight hedge orders by client id
    seen_fills: set[str] = field(default_factory=set)
    overshoots: list[Overshoot] = field(default_factory=list)

    def book(self, coin: str) -> CoinBook:
        return self.coins.setdefault(coin, CoinBook())

    def _touch(self, coin: str, now_ms: int) -> None:
        b = self.book(coin)
        if b.debt == 0:
            b.unhedged_since_ms = None
        elif b.unhedged_since_ms is None:
            b.unhedged_since_ms = now_ms

    # -- maker side -----------------------------------------------------------------------------------
    def maker_fill(self, coin: str, fill_id: str, size: Decimal, now_ms: int) -> bool:
        """A maker fill (signed: + bought); False when this fill was already counted."""
        if size == 0:
            raise LedgerError("a fill of size zero")
        if fill_id in self.seen_fills:
            return False
        self.seen_fills.add(fill_id)
        self.book(coin).maker += size
        self._touch(coin, now_ms)
        return True

    # -- hedge side -----------------------------------------------------------------------------------
    def in_flight_size(self, coin: str) -> Decimal:
        return sum((h.pending for h in self.hedges.values() if h.coin == coin), ZERO)

    def owed(self, coin: str) -> Decimal:
        """What the taker venue must still trade (signed: − sells), net of hedges in flight."""
        return -self.book(coin).debt - self.in_flight_size(coin)

    def hedge_size(self, coin: str, lot: Decimal, max_size: Decimal | None = None) -> Decimal:
        """The next hedge (signed), a whole number of lots, never more than is owed; zero when less
        than one lot is owed."""
        owed = self.owed(coin)
        size = abs(owed) if max_size is None else min(abs(owed), max_size)
        size = (size / lot).to_integral_value(rounding=ROUND_DOWN) * lot
        return size if owed > 0 else -size

    def reserve(self, coin: str, order_id: str, size: Decimal) -> None:
        """A hedge order of ``size`` (signed) is being sent: it holds that much of what is owed."""
        owed = self.owed(coin)
        if size == 0 or order_id in self.hedges:
            raise LedgerError(f"hedge {order_id}: a new order id and a non-zero size are needed")
        if size * owed <= 0 or abs(size) > abs(owed):
            raise LedgerError(f"hedge {order_id}: {size} is more than the {owed} owed")
        self.hedges[order_id] = _Hedge(coin, size)

    def hedge_fill(self, order_id: str, fill_id: str, size: Decimal, now_ms: int) -> bool:
        """A fill of hedge ``order_id`` (signed); False when already counted."""
        h = self.hedges.get(order_id)
        if h is None:
            raise LedgerError(f"a fill for unknown hedge {order_id}")
        if fill_id in self.seen_fills:
            return False
        self.seen_fills.add(fill_id)
        b = self.book(h.coin)
        b.hedged += size
        h.filled += size
        left = h.pending - size
        if left * h.pending < 0 or (h.pending == 0 and size != 0):  # filled past the order's size
            self.overshoots.append(Overshoot(h.coin, order_id, fill_id, -left))
            left = ZERO
        h.pending = left
        self._touch(h.coin, now_ms)
        return True

    def hedge_done(self, order_id: str) -> Decimal:
        """The order's final state is known (filled, cancelled, rejected, expired): release what is
        left of its reservation; what it filled."""
        h = self.hedges.pop(order_id, None)
        if h is None:
            raise LedgerError(f"unknown hedge {order_id}")
        return h.filled

    # -- reads ----------------------------------------------------------------------------------------
    def unhedged(self, coin: str) -> Decimal:
        return self.book(coin).debt

    def unhedged_ms(self, coin: str, now_ms: int) -> int:
        since = self.book(coin).unhedged_since_ms
        return 0 if since is None else now_ms - since

    def in_flight(self) -> list[str]:
        return sorted(self.hedges)

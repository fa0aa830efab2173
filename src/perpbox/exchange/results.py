"""What the engine answers a command with: typed results, in the venue's vocabulary.

``Exchange.execute(command)`` returns an ``Outcome``: the events the command produced (as
``apply`` returns them) and the ``response`` a venue would send, one of

* ``Ok`` / ``Error(message)``: an action that succeeded or was refused as a whole (the message is
  the venue's exact string, from ``core.errors`` or the component that owns the rule);
* ``Statuses(items)``: an order, cancel or modify batch, one per-order outcome per item, in order:
  ``Resting``, ``Filled`` (lots and micro-USDC: the API turns ``ntl / total_sz`` into ``avgPx``),
  ``Waiting`` (``waitingForTrigger`` / ``waitingForFill``), ``Canceled`` (a cancel's
  ``"success"``) or ``OrderError(message)``.

The engine deals in integers and these values only; ``perpbox.api.responses`` formats them as
Hyperliquid's JSON.  ``OrderStatus`` names every order status perpbox uses, each with the venue's
exact string and its source (the forms of ``core.errors``; ``tests/unit/test_error_sources.py``
checks that each member names one).

Everything here is plain, immutable and compared by value (the property tests compare responses
across replays), and cheap to build: the order path builds one per order.  No I/O; mypyc-ready.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Any, Final, TypeAlias

import msgspec

from perpbox.exchange import events as V


class OrderStatus(StrEnum):
    """An order's status, as Hyperliquid spells it (``orderStatus``, ``historicalOrders``, the
    ``orderUpdates`` pushes and per-order answers), plus perpbox's two internal states."""

    OPEN = "open"  # [REF §2.2 orderStatus DOCS]
    FILLED = "filled"  # [REF §2.2 orderStatus DOCS]
    CANCELED = "canceled"  # [REF §2.2 orderStatus DOCS]
    TRIGGERED = "triggered"  # [REF §2.2 orderStatus DOCS]
    REJECTED = "rejected"  # [REF §2.2 orderStatus DOCS]
    MARGIN_CANCELED = "marginCanceled"  # [REF §2.2 orderStatus DOCS]
    OPEN_INTEREST_CAP_CANCELED = "openInterestCapCanceled"  # [REF §2.2 orderStatus DOCS]
    SELF_TRADE_CANCELED = "selfTradeCanceled"  # [REF §2.2 orderStatus DOCS; §6.5 self-trade prevention]
    REDUCE_ONLY_CANCELED = "reduceOnlyCanceled"  # [REF §2.2 orderStatus DOCS]
    SIBLING_FILLED_CANCELED = "siblingFilledCanceled"  # [REF §2.2 orderStatus DOCS; §3.3 normalTpsl]
    LIQUIDATED_CANCELED = "liquidatedCanceled"  # [REF §2.2 orderStatus DOCS]
    SCHEDULED_CANCEL = "scheduledCancel"  # [REF §2.2 orderStatus DOCS; §3.6]
    TICK_REJECTED = "tickRejected"  # [REF §2.2 orderStatus DOCS]
    MIN_TRADE_NTL_REJECTED = "minTradeNtlRejected"  # [REF §2.2 orderStatus DOCS]
    PERP_MARGIN_REJECTED = "perpMarginRejected"  # [REF §2.2 orderStatus DOCS]
    PERP_MAX_POSITION_REJECTED = "perpMaxPositionRejected"  # [REF §2.2 orderStatus DOCS]
    REDUCE_ONLY_REJECTED = "reduceOnlyRejected"  # [REF §2.2 orderStatus DOCS]
    BAD_ALO_PX_REJECTED = "badAloPxRejected"  # [REF §2.2 orderStatus DOCS]
    IOC_CANCEL_REJECTED = "iocCancelRejected"  # [REF §2.2 orderStatus DOCS; SDK-repo test_historical_orders.yaml]
    BAD_TRIGGER_PX_REJECTED = "badTriggerPxRejected"  # [REF §2.2 orderStatus DOCS]
    MARKET_ORDER_NO_LIQUIDITY_REJECTED = "marketOrderNoLiquidityRejected"  # [REF §2.2 orderStatus DOCS]
    # a per-order answer, not in the venue's status list (the read models report such an order as open)
    WAITING_FOR_FILL = "waitingForFill"  # [REF §3.2 RUST exchange_responses.rs; NKT order.ts]
    WAITING_FOR_TRIGGER = "waitingForTrigger"  # [REF §3.2 RUST exchange_responses.rs; NKT order.ts; T1]
    # perpbox wording: an order being matched or just triggered, before it rests or finishes (never on the wire)
    PENDING = "pending"
    DONE = "done"  # perpbox wording: an order taken out of every index (never on the wire)


# -- per-order outcomes (items of ``Statuses``) ------------------------------------------------------
# Frozen and untracked by the cycle collector (gc=False: they hold only ints, strings and None), so
# building one per order costs a small allocation and no collector work.  Tagged, so that their
# msgspec encoding names the type (Ok and Canceled, Error and OrderError, would encode alike).
class Resting(msgspec.Struct, frozen=True, gc=False, tag=True):
    """The order rests on the book (a GTC that partly filled first, too)."""

    oid: int
    cloid: str | None = None


class Filled(msgspec.Struct, frozen=True, gc=False, tag=True):
    """The order filled at once: ``total_sz`` lots for ``ntl`` micro-USDC of notional."""

    oid: int
    total_sz: int
    ntl: int
    cloid: str | None = None


class Waiting(msgspec.Struct, frozen=True, gc=False, tag=True):
    """A trigger order accepted and waiting: ``WAITING_FOR_TRIGGER``, or ``WAITING_FOR_FILL`` for a
    TP/SL child whose parent has not filled."""

    status: OrderStatus


class Canceled(msgspec.Struct, frozen=True, gc=False, tag=True):
    """A cancel that took its order out (the venue's ``"success"``)."""


class OrderError(msgspec.Struct, frozen=True, gc=False, tag=True):
    """The item was refused; ``message`` is the venue's string (per-order errors carry `` asset=<id>``,
    ``core.errors.order_error``)."""

    message: str


OrderOutcome: TypeAlias = Resting | Filled | Waiting | Canceled | OrderError


# -- action results -----------------------------------------------------------------------------------
class Ok(msgspec.Struct, frozen=True, gc=False, tag=True):
    """The action succeeded and has nothing to report."""


class Error(msgspec.Struct, frozen=True, gc=False, tag=True):
    """The action was refused as a whole; ``message`` is the venue's exact string."""

    message: str


class Statuses(msgspec.Struct, frozen=True, gc=False, tag=True):
    """An order, cancel or modify batch: one outcome per item, in the request's order (indexed and
    iterated as the tuple of them)."""

    items: tuple[OrderOutcome, ...]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> OrderOutcome:
        return self.items[i]

    def __iter__(self) -> Iterator[OrderOutcome]:
        return iter(self.items)


Response: TypeAlias = Ok | Error | Statuses


Handler: TypeAlias = Callable[[Any], Response]  # a component's command handler (``handlers()``)


class Outcome(msgspec.Struct, frozen=True):
    """A command's events (already applied, as ``Exchange.apply`` returns them) and its response."""

    events: list[V.Event]
    response: Response


# shared instances of the outcomes that carry nothing (equal to any other instance of their type)
OK: Final = Ok()
CANCELED: Final = Canceled()
WAITING_FOR_FILL: Final = Waiting(OrderStatus.WAITING_FOR_FILL)
WAITING_FOR_TRIGGER: Final = Waiting(OrderStatus.WAITING_FOR_TRIGGER)

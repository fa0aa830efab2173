"""The engine's typed answers (``exchange.results``) as Hyperliquid's ``/exchange`` JSON.

Formatting only: one small function per type, each producing the shape reference §3.2 records
(``hyperliquid-api.md`` "Response envelopes").  Numbers leave the engine's units here: a fill's
``total_sz`` lots become ``totalSz`` and its ``ntl / total_sz`` becomes ``avgPx`` (``api.wire``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perpbox.api.wire import fmt_avg_px, fmt_sz
from perpbox.exchange.results import (
    Canceled,
    Error,
    Filled,
    OrderError,
    OrderOutcome,
    Response,
    Resting,
    Statuses,
    Waiting,
)
from perpbox.market import MarketSpec


def err(message: str) -> dict[str, Any]:
    """A whole-action refusal."""
    return {"status": "err", "response": message}


def ok_default() -> dict[str, Any]:
    """Success with nothing to report."""
    return {"status": "ok", "response": {"type": "default"}}


def _with_cloid(body: dict[str, Any], cloid: str | None) -> dict[str, Any]:
    if cloid is not None:  # the venue adds the key only for an order that had one
        body["cloid"] = cloid
    return body


def _resting(st: Resting, spec: MarketSpec | None) -> Any:
    return {"resting": _with_cloid({"oid": st.oid}, st.cloid)}


def _filled(st: Filled, spec: MarketSpec | None) -> Any:
    assert spec is not None  # a fill is of an order, so of a market
    body = {"totalSz": fmt_sz(spec, st.total_sz), "avgPx": fmt_avg_px(spec, st.ntl, st.total_sz), "oid": st.oid}
    return {"filled": _with_cloid(body, st.cloid)}


def _waiting(st: Waiting, spec: MarketSpec | None) -> Any:
    return st.status.value  # a bare string on the wire


def _canceled(st: Canceled, spec: MarketSpec | None) -> Any:
    return "success"


def _order_error(st: OrderError, spec: MarketSpec | None) -> Any:
    return {"error": st.message}


_STATUS: dict[type, Callable[[Any, MarketSpec | None], Any]] = {
    Resting: _resting, Filled: _filled, Waiting: _waiting, Canceled: _canceled, OrderError: _order_error,
}


def wire_status(st: OrderOutcome, spec: MarketSpec | None) -> Any:
    """One item of ``statuses``; ``spec`` is the market the item's request named (needed for a fill)."""
    return _STATUS[type(st)](st, spec)


def batch(kind: str, statuses: list[Any]) -> dict[str, Any]:
    """A batch's envelope (``kind``: ``"order"`` for orders and batchModify, ``"cancel"``)."""
    return {"status": "ok", "response": {"type": kind, "data": {"statuses": statuses}}}


def items(res: Response) -> tuple[OrderOutcome, ...]:
    """A batch response's outcomes (none for an action answered whole)."""
    return res.items if isinstance(res, Statuses) else ()


def default_or_error(res: Response) -> dict[str, Any]:
    """The answer to an action that reports nothing: ``Error`` as a refusal, anything else as ok."""
    if isinstance(res, Error):
        return err(res.message)
    return ok_default()

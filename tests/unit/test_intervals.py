"""Funding intervals are data: live value, then per-symbol override, then venue default."""

from __future__ import annotations

import pytest

from perpbox.venues.intervals import (
    IntervalTable,
    canonical_venue,
    interval_hours,
    parse_interval_hours,
)


def test_parse_interval_strings() -> None:
    assert parse_interval_hours("8h") == 8.0
    assert parse_interval_hours("4h") == 4.0
    assert parse_interval_hours("30m") == 0.5
    assert parse_interval_hours("1d") == 24.0
    assert parse_interval_hours(1) == 1.0
    assert parse_interval_hours(None) is None
    assert parse_interval_hours("soon") is None
    assert parse_interval_hours("0h") is None


def test_resolution_order_live_symbol_venue() -> None:
    t = IntervalTable()
    assert t.resolve("hyperliquid", "BTC/USDC:USDC").hours == 1.0
    assert t.resolve("binance", "BTC/USDT:USDT") == t.resolve("binanceusdm", "BTC/USDT:USDT")
    assert t.resolve("binanceusdm", "BTC/USDT:USDT").source == "venue"
    t.set_symbol("bybit", "XYZ/USDT:USDT", 4)
    r = t.resolve("bybit", "XYZ/USDT:USDT")
    assert (r.hours, r.source) == (4.0, "symbol")
    live = t.resolve("bybit", "XYZ/USDT:USDT", live="1h")
    assert (live.hours, live.source) == (1.0, "live")
    assert interval_hours("okx", "BTC/USDT:USDT") == 8.0
    assert interval_hours("dydx") == 1.0 and interval_hours("lighter") == 1.0


def test_unknown_venue_without_live_interval_raises() -> None:
    with pytest.raises(KeyError):
        interval_hours("somedex", "BTC")
    assert interval_hours("somedex", "BTC", live="2h") == 2.0
    assert canonical_venue(" Binance ") == "binanceusdm"

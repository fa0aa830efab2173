"""Per-venue metadata for the ccxt adapters, read from ``bots/data/venues.toml`` — venue facts as data
(funding intervals, minimums, how each ccxt class spells post-only, symbol aliases), not as code, so
a venue that moves a symbol to 4 h funding or renames a ticker is a one-line change with its source.

The file is validated as it is read: an unknown key (a typo) or a missing one is an error naming the
venue and the key, because a silently ignored ``post_only`` spelling is an order that crosses.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

CLIENT_ID_FORMS = ("as_is", "hex128", "hex32", "uint31", "uint48")
PRICE_RULES = ("tick", "hyperliquid")
INTERVAL_UNITS = {"h": 1, "min": 60, "ms": 3_600_000}  # units per hour (a divisor: exact)
#: The ``info`` paths a venue may name (the adapter reads these fields from ccxt's raw ``info``).
INFO_FIELDS = frozenset({
    "trade_id", "trade_price", "trade_size", "trade_fee",
    "position_size", "position_entry", "position_upnl", "position_margin", "position_liq",
    "balance_equity", "balance_notional", "balance_maintenance",
    "funding_rate", "funding_mark",
    "payment_usd", "payment_size", "payment_rate",
})
_REQUIRED = ("name", "settle", "quote", "funding_interval_h", "post_only", "ioc", "gtc", "reduce_only", "client_id",
             "aliases")
_OPTIONAL = ("funding_per_symbol", "rate_period_h", "interval_info_key", "interval_info_unit", "min_notional",
             "reduce_only_exempt", "cancel_by_client_id", "amount_in_contracts", "price_rule", "coin_info_key",
             "expiry", "ccxt_options", "info", "sdk", "requires")
#: Every venue must alias at least these (our names; the venue's listing of the same unit).
CORE_COINS = ("BTC", "ETH", "SOL", "HYPE")


class VenueMetaError(ValueError):
    """venues.toml does not say what it must; the message names the venue and the key."""


@dataclass(frozen=True)
class Expiry:
    """An order param ccxt would default too short, set to ``now + days`` in ``unit`` (ms or s)."""

    param: str
    unit: str
    days: int

    def value(self, now_ms: int) -> int:
        ms = now_ms + self.days * 86_400_000
        return ms if self.unit == "ms" else ms // 1000


@dataclass(frozen=True)
class VenueMeta:
    ccxt_id: str
    name: str
    settle: str
    quote: str
    funding_interval_h: int
    funding_per_symbol: bool
    rate_period_h: int | None
    interval_info_key: str | None
    interval_info_per_h: int  # units of the market-info interval per hour
    min_notional: Decimal | None
    reduce_only_exempt: bool
    post_only: Mapping[str, Any]
    ioc: Mapping[str, Any]
    gtc: Mapping[str, Any]
    reduce_only: Mapping[str, Any]
    client_id: str
    cancel_by_client_id: bool
    amount_in_contracts: bool
    price_rule: str
    coin_info_key: str | None
    expiry: Expiry | None
    ccxt_options: Mapping[str, Any]
    info: Mapping[str, str]
    aliases: Mapping[str, str]
    sdk: Mapping[str, str]
    requires: str

    def tif_params(self, tif: str) -> dict[str, Any]:
        """The create_order params for one of our times in force (alo, ioc, gtc)."""
        table = {"alo": self.post_only, "ioc": self.ioc, "gtc": self.gtc}
        if tif not in table:
            raise ValueError(f"time in force {tif!r} is not alo, ioc or gtc")
        return dict(table[tif])

    def default_symbol(self, coin: str) -> str:
        return f"{coin}/{self.quote}:{self.settle}"


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    return value


def _table(row: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = row.get(key, {})
    if not isinstance(value, dict):
        raise VenueMetaError(f"{where}.{key}: a table")
    return value


def _str_table(row: dict[str, Any], key: str, where: str) -> dict[str, str]:
    value = _table(row, key, where)
    if not all(isinstance(v, str) for v in value.values()):
        raise VenueMetaError(f"{where}.{key}: a table of strings")
    return value


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise VenueMetaError(f"{where}: a positive whole number of hours")
    return value


def _parse_one(ccxt_id: str, row: Any) -> VenueMeta:
    where = f"venues.toml [{ccxt_id}]"
    if not isinstance(row, dict):
        raise VenueMetaError(f"{where}: a table")
    unknown = sorted(set(row) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise VenueMetaError(f"{where}: unknown key {unknown[0]!r}")
    missing = [k for k in _REQUIRED if k not in row]
    if missing:
        raise VenueMetaError(f"{where}: missing {missing[0]!r}")
    client_id = row["client_id"]
    if client_id not in CLIENT_ID_FORMS:
        raise VenueMetaError(f"{where}.client_id: one of {', '.join(CLIENT_ID_FORMS)}")
    price_rule = row.get("price_rule", "tick")
    if price_rule not in PRICE_RULES:
        raise VenueMetaError(f"{where}.price_rule: one of {', '.join(PRICE_RULES)}")
    unit = row.get("interval_info_unit", "h")
    if unit not in INTERVAL_UNITS:
        raise VenueMetaError(f"{where}.interval_info_unit: one of {', '.join(INTERVAL_UNITS)}")
    min_notional = None
    if "min_notional" in row:
        try:
            min_notional = Decimal(str(row["min_notional"]))
        except InvalidOperation:
            raise VenueMetaError(f"{where}.min_notional: a decimal string") from None
    info = _str_table(row, "info", where)
    if set(info) - INFO_FIELDS:
        raise VenueMetaError(f"{where}.info: unknown field {sorted(set(info) - INFO_FIELDS)[0]!r}")
    aliases = _str_table(row, "aliases", where)
    for coin in CORE_COINS:
        if coin not in aliases:
            raise VenueMetaError(f"{where}.aliases: no {coin}")
    for coin, symbol in aliases.items():
        if "/" not in symbol or ":" not in symbol:
            raise VenueMetaError(f"{where}.aliases.{coin}: a ccxt perp symbol BASE/QUOTE:SETTLE")
    expiry = None
    if "expiry" in row:
        e = _table(row, "expiry", where)
        if not isinstance(e.get("param"), str) or e.get("unit") not in ("ms", "s"):
            raise VenueMetaError(f"{where}.expiry: {{ param = NAME, unit = ms|s, days = N }}")
        expiry = Expiry(e["param"], e["unit"], _positive_int(e.get("days"), f"{where}.expiry.days"))
    for key in ("post_only", "ioc", "gtc", "reduce_only"):
        _table(row, key, where)
    rate_period = row.get("rate_period_h")
    return VenueMeta(
        ccxt_id=ccxt_id, name=str(row["name"]), settle=str(row["settle"]), quote=str(row["quote"]),
        funding_interval_h=_positive_int(row["funding_interval_h"], f"{where}.funding_interval_h"),
        funding_per_symbol=bool(row.get("funding_per_symbol", False)),
        rate_period_h=None if rate_period is None else _positive_int(rate_period, f"{where}.rate_period_h"),
        interval_info_key=row.get("interval_info_key"), interval_info_per_h=INTERVAL_UNITS[unit],
        min_notional=min_notional, reduce_only_exempt=bool(row.get("reduce_only_exempt", False)),
        post_only=_frozen(row["post_only"]), ioc=_frozen(row["ioc"]), gtc=_frozen(row["gtc"]),
        reduce_only=_frozen(row["reduce_only"]), client_id=client_id,
        cancel_by_client_id=bool(row.get("cancel_by_client_id", False)),
        amount_in_contracts=bool(row.get("amount_in_contracts", False)), price_rule=price_rule,
        coin_info_key=row.get("coin_info_key"), expiry=expiry, ccxt_options=_frozen(_table(row, "ccxt_options", where)),
        info=MappingProxyType(info), aliases=MappingProxyType(aliases),
        sdk=MappingProxyType(_str_table(row, "sdk", where)), requires=str(row.get("requires", "")))


def parse_venues(text: str) -> dict[str, VenueMeta]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise VenueMetaError(f"venues.toml: {e}") from None
    return {ccxt_id: _parse_one(ccxt_id, row) for ccxt_id, row in data.items()}


@cache
def load_venues() -> Mapping[str, VenueMeta]:
    """The shipped file (package data), parsed once."""
    text = resources.files("perpbox.bots").joinpath("data/venues.toml").read_text(encoding="utf-8")
    return MappingProxyType(parse_venues(text))


def venue_meta(ccxt_id: str) -> VenueMeta:
    venues = load_venues()
    if ccxt_id not in venues:
        raise VenueMetaError(f"venues.toml has no [{ccxt_id}] (known: {', '.join(sorted(venues))})")
    return venues[ccxt_id]

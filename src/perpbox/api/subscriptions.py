"""WebSocket subscriptions: what a ``subscribe``/``unsubscribe`` request's ``subscription`` object may be.

A subscription is normalised to a key (``("l2Book", "BTC", None, None)``: what the hub files
subscribers under and builds pushes for) and to the echo the venue acknowledges with.  Two ways to
fail, because the venue answers them differently (``api.ws`` words the errors): ``Unparsable``, a
request that does not deserialise into a venue request (not an object, an unknown type, a field of
the wrong JSON type such as ``"nSigFigs": 3.0``, a user that is not a 42-character hex address, an
unknown candle interval); ``Invalid``, a well-typed subscription the venue refuses (unknown coin or
dex, ``nSigFigs`` outside 2..5, ``mantissa`` other than 1/2/5 or without ``nSigFigs`` 5).
"""

from __future__ import annotations

import re
from typing import Any

from perpbox.api.info import INTERVALS_MS, InfoAPI

Key = tuple[Any, ...]

USER_CHANNELS = (
    "orderUpdates",
    "userEvents",
    "userFills",
    "userFundings",
    "userNonFundingLedgerUpdates",
    "notification",
)
ACCOUNT_VIEWS = ("webData2", "spotState")  # whole views, re-sent when the user's account changes
USER_KINDS = frozenset((*USER_CHANNELS, "activeAssetData", "clearinghouseState", "openOrders", *ACCOUNT_VIEWS))
MARKET_KINDS = frozenset(("l2Book", "trades", "bbo", "candle", "activeAssetCtx"))
ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class Unparsable(ValueError):
    """The request does not deserialise into a venue request (wrong shape or JSON type)."""


class Invalid(ValueError):
    """A well-formed subscription the venue refuses (unknown coin, out-of-range parameter)."""


def _opt(sub: dict[str, Any], name: str, kind: type) -> Any:
    """An optional field of JSON type ``kind`` (``None`` when absent or null)."""
    v = sub.get(name)
    if v is not None and type(v) is not kind:  # exact: bool is not an int, 3.0 is not an int
        raise Unparsable(name)
    return v


def _req(sub: dict[str, Any], name: str, kind: type) -> Any:
    v = _opt(sub, name, kind)
    if v is None:
        raise Unparsable(name)
    return v


def _user(sub: dict[str, Any]) -> str:
    user = _req(sub, "user", str)
    if ADDRESS.fullmatch(user) is None:
        raise Unparsable("user")
    return str(user.lower())


def normalise(sub: Any, info: InfoAPI) -> tuple[Key, dict[str, Any]]:
    """The subscription's key and the normalised echo the venue acknowledges with.  Raises
    ``Unparsable`` (wrong shape or JSON type) or ``Invalid`` (well-typed, refused)."""
    if not isinstance(sub, dict):
        raise Unparsable("subscription")
    kind = sub.get("type")
    if type(kind) is not str or not (kind == "allMids" or kind in MARKET_KINDS or kind in USER_KINDS):
        raise Unparsable("type")
    if kind == "allMids":
        dex = _opt(sub, "dex", str) or ""
        if dex and dex not in info.dexes:
            raise Invalid("dex")
        return ("allMids", dex), ({"type": "allMids", "dex": dex} if dex else {"type": "allMids"})
    if kind in MARKET_KINDS:
        coin = _req(sub, "coin", str)
        if kind == "l2Book":
            sig, mantissa = _opt(sub, "nSigFigs", int), _opt(sub, "mantissa", int)
            _opt(sub, "fast", bool)
        elif kind == "candle":
            interval = _req(sub, "interval", str)
            if interval not in INTERVALS_MS:  # an enum on the venue: an unknown one does not parse
                raise Unparsable("interval")
        if info.spec_by_coin(coin) is None:
            raise Invalid("coin")
        if kind == "l2Book":
            if (sig is not None and sig not in (2, 3, 4, 5)) or (
                mantissa is not None and (sig != 5 or mantissa not in (1, 2, 5))
            ):
                raise Invalid("nSigFigs")
            return (kind, coin, sig, mantissa), {"type": kind, "coin": coin, "nSigFigs": sig, "mantissa": mantissa}
        if kind == "candle":
            return (kind, coin, interval), {"type": kind, "coin": coin, "interval": interval}
        return (kind, coin), {"type": kind, "coin": coin}
    user = _user(sub)
    if kind == "activeAssetData":
        coin = _req(sub, "coin", str)
        if info.spec_by_coin(coin) is None:
            raise Invalid("coin")
        return (kind, user, coin), {"type": kind, "user": user, "coin": coin}
    if kind in ("clearinghouseState", "openOrders"):
        dex = _opt(sub, "dex", str) or ""
        if dex and dex not in info.dexes:
            raise Invalid("dex")
        return (kind, user, dex), {"type": kind, "user": user, "dex": dex}
    if kind == "userFills":
        _opt(sub, "aggregateByTime", bool)
    elif kind == "spotState":
        _opt(sub, "isPortfolioMargin", bool)
    return (kind, user), {"type": kind, "user": user}

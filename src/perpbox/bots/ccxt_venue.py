"""The ``Venue`` interface over ccxt's async unified API — one adapter for every venue ccxt reaches
(Lighter, Backpack, Paradex, Extended, GRVT, Aster, ApeX, dYdX v4, Binance USDⓈ-M, Bybit, OKX and
Hyperliquid), with each venue's quirks as data in ``bots/data/venues.toml`` (see ``venue_meta``).

What the adapter guarantees, whatever the venue:

* **Our names.**  Coins are ours (Hyperliquid's names: ``BTC``, ``kPEPE``, ``xyz:SILVER``), mapped to the
  venue's ccxt symbol through the aliases, else ``BASE/QUOTE:SETTLE``; ``markets()`` is keyed by them
  and every result speaks them.  Sizes are coins: where ccxt counts contracts (OKX) the contract size is
  applied both ways.
* **Exact numbers.**  Nothing passes through a float on our side: ccxt's unified floats become
  ``Decimal(str(x))`` (the shortest repr, which is the venue's own digits for any decimal string of up to
  15 significant figures), and where the venue's raw string is in ``info`` (the ``info`` paths of the
  metadata) it is preferred.  Prices and sizes go to ccxt as the strings of ``price_to_precision`` /
  ``amount_to_precision``; an order whose price is off the tick or whose size is off the lot is refused
  here, never silently rounded into another order.
* **Refusals are states.**  ``place``/``cancel``/``modify`` never raise for what the venue answered:
  ccxt's refusals (InvalidOrder, InsufficientFunds, OrderNotFound, BadRequest, AuthenticationError, …)
  come back ``rejected`` with the text; a network error, a timeout, a duplicate client id or an error
  ccxt could not classify comes back ``unknown`` — the order may exist, so the caller asks again with
  ``order_status`` (by our client id too) before booking anything.  After a cancel the final state is
  always read (a fill may have raced the cancel).  Reads are retried (3 attempts with backoff) on
  network errors and then raise ``VenueReadError``; writes are never retried here.
* **No silent defaults.**  A value the venue does not report is ``Decimal('NaN')`` (a fee ccxt did not
  parse, a funding payment's size), never 0; a funding interval comes from ccxt's ``interval`` when it
  has one, then the venue's per-symbol data, then the metadata default — never a guess.
* **Secrets stay secret.**  Credentials live only in the ccxt exchange object; the venue's repr shows
  its name and ccxt id, and every error text (states and exceptions) has each credential value replaced
  by ``***`` before anyone sees it.

Where ccxt lacks a call the adapter needs, it says so (``VenueUnsupported``) or uses the nearest ccxt
call the metadata names: an order lookup by scanning open/closed orders (Lighter has no fetchOrder),
the last settled rate from the funding history (Extended, GRVT, ApeX, dYdX have no current-rate call),
cancel-then-place for ``modify`` where ccxt has no native edit, dYdX's fills through ccxt's own indexer
endpoint.  ``ccxt_id@URL`` points a venue at another server (``perpbox serve`` for hyperliquid): the
URL's scheme and host replace those of every API base ccxt knows, paths kept.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt  # type: ignore[import-untyped]  # ccxt ships no types
import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]

from perpbox.bots.hyperliquid_venue import tick_at
from perpbox.bots.venue import (
    CANCELED,
    FILLED,
    OPEN,
    REJECTED,
    UNKNOWN,
    Account,
    Book,
    Fill,
    FundingPayment,
    FundingRate,
    MarketInfo,
    OrderRequest,
    OrderState,
    Position,
)
from perpbox.bots.venue_meta import VenueMeta, venue_meta

log = logging.getLogger("perpbox.ccxt_venue")
T = TypeVar("T")
NAN = Decimal("NaN")
READ_ATTEMPTS = 3
READ_BACKOFF_S = 0.25
PAGE_HINT = 50  # a page of trades this long may have more behind it: ask again from its newest
MAX_PAGES = 20
HISTORY_HOURS = 72  # how far back the last settled rate is looked for
USD_LIKE = frozenset({"USD", "USDC", "USDT"})
#: ccxt's config keys for credentials (the rest of an account's credentials table goes to options).
CREDENTIAL_KEYS = frozenset({"apiKey", "secret", "uid", "accountId", "login", "password", "twofa", "privateKey",
                             "walletAddress", "token"})
#: The venue answered and said no: the order does not exist.
_REFUSALS: tuple[type[BaseException], ...] = (ccxt.InvalidOrder, ccxt.InsufficientFunds, ccxt.BadRequest,
                                              ccxt.AuthenticationError, ccxt.ArgumentsRequired, ccxt.NotSupported,
                                              ccxt.OperationRejected)
_RETRYABLE: tuple[type[BaseException], ...] = (ccxt.OperationFailed,)  # network errors, bad responses
_INTERVAL_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_H = {"s": (1, 3600), "m": (1, 60), "h": (1, 1), "d": (24, 1), "": (1, 1)}  # hours = n × a / b, exactly


class VenueReadError(RuntimeError):
    """A read the venue did not answer (after the retries), or answered with something unusable."""


class VenueUnsupported(VenueReadError):
    """ccxt has no call for this on this venue (the metadata's ``sdk`` says what would)."""


class NotListed(ValueError):
    """The coin has no perp on this venue."""


# -- numbers ------------------------------------------------------------------------------------------

def dec(x: Any) -> Decimal | None:
    """A venue number as a Decimal: a string as written, a float by its shortest repr; None for none."""
    if x is None or isinstance(x, bool):
        return None
    if isinstance(x, Decimal):
        return x
    if isinstance(x, (int, float, str)):
        text = str(x).strip()
        if not text:
            return None
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"not a decimal: {x!r}") from None
        return d if d.is_finite() else None
    raise ValueError(f"not a decimal: {x!r}")


def info_path(obj: Any, path: str | None) -> Any:
    """``obj`` followed along a dotted path (``position.szi``, ``result.list.0.totalEquity``)."""
    if path is None:
        return None
    for part in path.split("."):
        if isinstance(obj, dict):
            obj = obj.get(part)
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return None
    return obj


def interval_hours(value: Any) -> Decimal | None:
    """``'8h'`` → 8, ``'30m'`` → 0.5, ``'1d'`` → 24, a bare number in hours; None when unparseable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        d = dec(value)
        return d if d is not None and d > 0 else None
    m = _INTERVAL_RE.match(str(value))
    if not m:
        return None
    times, per = _UNIT_H[m.group(2)]
    hours = Decimal(m.group(1)) * times / per
    return hours if hours > 0 else None


def _whole_hours(hours: Decimal, where: str) -> int:
    if hours != hours.to_integral_value() or hours <= 0:
        raise VenueReadError(f"{where}: a funding interval of {hours} h is not a whole number of hours")
    return int(hours)


def _exponent(step: Decimal) -> int:
    exp = step.normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


def venue_client_id(ours: str, form: str) -> str | int:
    """Our client id written the way the venue takes one; deterministic, so a retried send repeats it."""
    hexpart = ours[2:].lower() if re.fullmatch(r"0x[0-9a-fA-F]{32}", ours) else hashlib.sha256(
        ours.encode()).hexdigest()[:32]
    if form == "as_is":
        return ours
    if form == "hex128":
        return "0x" + hexpart
    if form == "hex32":
        return hexpart
    digest = int(hashlib.sha256(ours.encode()).hexdigest(), 16)
    if form == "uint31":
        return digest % (1 << 31) or 1
    if form == "uint48":
        return digest % (1 << 48) or 1
    raise ValueError(f"client id form {form!r}")


# -- secrets ------------------------------------------------------------------------------------------

class _Secrets:
    """Credential values to blank out of any text; prints as nothing."""

    __slots__ = ("_values",)

    def __init__(self, values: Iterable[str]) -> None:
        found: set[str] = set()
        for v in values:
            if len(v) >= 4:
                found.add(v)
                if v.lower().startswith("0x") and len(v) > 8:
                    found.add(v[2:])
        self._values = tuple(sorted(found, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for v in self._values:
            text = text.replace(v, "***")
        return text

    def __repr__(self) -> str:
        return "<hidden>"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret value (and a hex key without its 0x) replaced by ``***``."""
    return _Secrets(secrets).scrub(text)


# -- the exchange -------------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def override_urls(api: Any, url: str) -> Any:
    """ccxt's ``urls['api']`` with every base's scheme and host replaced by ``url``'s (paths kept)."""
    base = urlsplit(url)
    if not base.scheme or not base.netloc:
        raise ValueError(f"not a URL: {url!r}")
    if isinstance(api, str):
        parts = urlsplit(api)
        return f"{base.scheme}://{base.netloc}{parts.path.rstrip('/')}" if parts.scheme else api
    if isinstance(api, dict):
        return {k: override_urls(v, url) for k, v in api.items()}
    return api


def make_exchange(meta: VenueMeta, credentials: Mapping[str, str], url: str | None = None) -> Any:
    """The ccxt async exchange for ``meta``: credentials in its config, other keys in its options."""
    cls = getattr(ccxt_async, meta.ccxt_id, None)
    if cls is None:
        raise ValueError(f"ccxt {ccxt.__version__} has no exchange {meta.ccxt_id!r}")
    options = _plain(meta.ccxt_options)
    config: dict[str, Any] = {"enableRateLimit": True}
    for key, value in credentials.items():
        if key in CREDENTIAL_KEYS:
            config[key] = value
        else:
            options[key] = value
    config["options"] = options
    ex = cls(config)
    if url:
        ex.urls["api"] = override_urls(ex.urls.get("api"), url)
    return ex


class CcxtVenue:
    """One venue through a ccxt async exchange (``open`` builds one from an account's credentials)."""

    def __init__(self, exchange: Any, meta: VenueMeta | None = None, *, name: str | None = None,
                 secrets: Iterable[str] = (), sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.exchange = exchange
        self.meta = meta if meta is not None else venue_meta(str(exchange.id))
        self.name = name or f"ccxt:{self.meta.ccxt_id}"
        self._secrets = _Secrets(secrets)
        self._sleep = sleep
        self._coin_to_symbol: dict[str, str] = {}
        self._symbol_to_coin: dict[str, str] = {}
        self._loaded = False
        self._intervals: dict[str, Any] | None = None
        self._vcid: dict[str, str | int] = {}  # our client id -> the venue's spelling
        self._ours: dict[str, str] = {}  # str(the venue's spelling) -> our client id
        self._oid_of_cid: dict[str, str] = {}  # our client id -> the venue's order id, once known
        self._cid_of_oid: dict[str, str] = {}
        self._raw_cid_of_oid: dict[str, str] = {}  # the client id as the venue wrote it (any session's)
        self._traded: set[str] = set()  # symbols this venue placed on (where trades need a symbol)
        self._needs_symbol: set[str] = set()  # reads ccxt refused without a symbol
        self._warned: set[str] = set()

    @classmethod
    def open(cls, ccxt_id: str, credentials: Mapping[str, str], *, url: str | None = None,
             name: str | None = None) -> CcxtVenue:
        meta = venue_meta(ccxt_id)
        return cls(make_exchange(meta, credentials, url), meta, name=name, secrets=credentials.values())

    def __repr__(self) -> str:
        return f"CcxtVenue({self.name}: {self.meta.ccxt_id})"

    __str__ = __repr__

    @property
    def reduce_only_exempt(self) -> bool:
        """Whether the venue's minimum order value spares reduce-only orders (venues.toml)."""
        return self.meta.reduce_only_exempt

    # -- plumbing -------------------------------------------------------------------------------------
    def _text(self, e: BaseException) -> str:
        return self._secrets.scrub(f"{type(e).__name__}: {e}")[:800]

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s: %s", self.name, self._secrets.scrub(message))

    async def _read(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """A read with bounded retries on network errors; anything else, or the last failure, raises
        ``VenueReadError`` with a scrubbed text (never the exception ccxt raised, which may carry more)."""
        for attempt in range(READ_ATTEMPTS):
            try:
                return await call()
            except _RETRYABLE as e:
                if attempt == READ_ATTEMPTS - 1:
                    raise VenueReadError(f"{self.name} {what}: {self._text(e)}") from None
                await self._sleep(READ_BACKOFF_S * 2 ** attempt)
            except ccxt.BaseError as e:
                raise VenueReadError(f"{self.name} {what}: {self._text(e)}") from None
        raise AssertionError("unreachable")

    def _has(self, capability: str) -> bool:
        return bool(self.exchange.has.get(capability))

    def _now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    # -- symbols --------------------------------------------------------------------------------------
    async def _load(self, reload: bool = False) -> None:
        if self._loaded and not reload:
            return
        await self._read("load_markets", lambda: self.exchange.load_markets(reload))
        self._index(self.exchange.markets)
        self._loaded = True

    def _index(self, markets: Mapping[str, Any]) -> None:
        """Our coin ↔ the venue's perp symbol: the aliases first, then the venue's name in
        ``info[coin_info_key]``, then ccxt's base — over the linear perps settled in the venue's currency."""
        meta = self.meta
        reverse = {symbol: coin for coin, symbol in meta.aliases.items()}
        c2s: dict[str, str] = {}
        for symbol, m in markets.items():
            if not m.get("swap") or m.get("settle") != meta.settle or m.get("inverse"):
                continue
            coin = reverse.get(symbol)
            if coin is None and meta.coin_info_key is not None:
                raw = info_path(m.get("info"), meta.coin_info_key)
                coin = raw if isinstance(raw, str) and raw else None
            if coin is None:
                coin = str(m.get("base"))
            if coin in c2s and symbol not in reverse:
                continue  # an alias owns the name
            c2s[coin] = symbol
        for coin, symbol in meta.aliases.items():
            if symbol in markets:
                c2s[coin] = symbol
        self._coin_to_symbol = c2s
        self._symbol_to_coin = {s: c for c, s in c2s.items()}

    async def symbol_of(self, coin: str) -> str:
        """The venue's ccxt symbol for our coin (a ccxt symbol is passed through)."""
        await self._load()
        if coin in self._coin_to_symbol:
            return self._coin_to_symbol[coin]
        if coin in self.exchange.markets:
            return coin
        wanted = self.meta.aliases.get(coin) or self.meta.default_symbol(coin)
        raise NotListed(f"{coin} is not listed at {self.name} (no perp {wanted})")

    def coin_of(self, symbol: str | None) -> str:
        return self._symbol_to_coin.get(symbol or "", symbol or "")

    def _market(self, symbol: str) -> dict[str, Any]:
        return dict(self.exchange.markets[symbol])

    def _mult(self, symbol: str | None) -> Decimal:
        """Coins per unit of ccxt's amount: the contract size where ccxt counts contracts, else 1."""
        if not self.meta.amount_in_contracts or symbol is None or symbol not in self.exchange.markets:
            return Decimal(1)
        return dec(self.exchange.markets[symbol].get("contractSize")) or Decimal(1)

    def _pick(self, struct: Mapping[str, Any], field: str, unified: str) -> Decimal | None:
        """The venue's own string from ``info`` when the metadata names it, else ccxt's unified value."""
        raw = info_path(struct.get("info"), self.meta.info.get(field))
        value = dec(raw) if raw is not None else None
        return value if value is not None else dec(struct.get(unified))

    # -- reads ----------------------------------------------------------------------------------------
    async def markets(self) -> dict[str, MarketInfo]:
        await self._load(reload=self._loaded)
        intervals = await self._interval_table()
        out = {}
        for coin, symbol in self._coin_to_symbol.items():
            m = self._market(symbol)
            precision, limits = m.get("precision") or {}, m.get("limits") or {}
            mult = self._mult(symbol)
            lot = (dec(precision.get("amount")) or Decimal(0)) * mult
            tick = dec(precision.get("price")) or Decimal(0)
            if self.meta.price_rule == "hyperliquid":
                info = m.get("info") or {}
                px, szd = dec(info.get("markPx") or info.get("oraclePx")), info.get("szDecimals")
                if px is not None and px > 0 and szd is not None:
                    tick = tick_at(px, int(szd))
            min_cost = dec((limits.get("cost") or {}).get("min"))
            lev = dec((limits.get("leverage") or {}).get("max"))
            out[coin] = MarketInfo(
                coin=coin, tick=tick, lot=lot,
                min_notional=min_cost if min_cost is not None else (self.meta.min_notional or Decimal(0)),
                funding_interval_h=self._interval_of(symbol, None, intervals),
                max_leverage=int(lev) if lev is not None and lev >= 1 else 1,  # unknown: 1, the cautious cap
                sz_decimals=_exponent(lot) if lot > 0 else 0,
                min_notional_spares="reduce_only" if self.meta.reduce_only_exempt else "none")
        return out

    async def book(self, coin: str) -> Book:
        symbol = await self.symbol_of(coin)
        ob = await self._read("fetch_order_book", lambda: self.exchange.fetch_order_book(symbol))
        mult = self._mult(symbol)

        def side(levels: Any) -> tuple[tuple[Decimal, Decimal], ...]:
            out = []
            for level in levels or ():
                px, sz = dec(level[0]), dec(level[1])
                if px is not None and sz is not None:
                    out.append((px, sz * mult))
            return tuple(out)

        ts = ob.get("timestamp")  # the venue's time; our receipt time where the venue gives none
        return Book(coin=coin, bids=side(ob.get("bids")), asks=side(ob.get("asks")),
                    ts_ms=int(ts) if ts is not None else self._now_ms())

    async def _symbol_or_state(self, coin: str, order_id: str) -> str | OrderState:
        """The venue's symbol for ``coin``, or the state an order call answers when there is none."""
        try:
            return await self.symbol_of(coin)
        except NotListed as e:
            return OrderState(REJECTED, order_id=order_id, error=str(e))
        except VenueReadError as e:
            return OrderState(UNKNOWN, order_id=order_id, error=str(e))

    async def order_status(self, coin: str, order_id: str) -> OrderState:
        """The order by the venue's id, or by the client id it was placed with."""
        symbol = await self._symbol_or_state(coin, order_id)
        if isinstance(symbol, OrderState):
            return symbol
        if order_id in self._vcid:
            return await self._lookup(symbol, self._oid_of_cid.get(order_id), order_id)
        return await self._lookup(symbol, order_id, self._cid_of_oid.get(order_id))

    async def _lookup(self, symbol: str, oid: str | None, cid: str | None) -> OrderState:
        vcid = self._vcid.get(cid) if cid is not None else None
        try:
            o = await self._read("fetch_order", lambda: self._fetch_one(symbol, oid, vcid))
        except VenueReadError as e:
            return OrderState(UNKNOWN, order_id=oid, client_id=cid, error=str(e))
        if o is None:
            return OrderState(UNKNOWN, order_id=oid, client_id=cid, error=f"{self.name} does not know the order")
        return self._state(o, symbol, cid)

    async def _fetch_one(self, symbol: str, oid: str | None, vcid: str | int | None) -> Any:
        ex = self.exchange
        if self._has("fetchOrder"):
            if oid is not None:
                return await ex.fetch_order(oid, symbol)
            if vcid is not None:
                try:
                    return await ex.fetch_order(str(vcid), symbol, {"clientOrderId": vcid})
                except (ccxt.OrderNotFound, ccxt.BadRequest, ccxt.ArgumentsRequired, ccxt.NotSupported):
                    pass  # not by client id on this venue: look through its order lists
        return await self._search(symbol, oid, vcid)

    async def _search(self, symbol: str, oid: str | None, vcid: str | int | None) -> Any:
        """The order found in the venue's open, closed and canceled lists (where ccxt has no fetchOrder)."""
        for capability, method in (("fetchOpenOrders", "fetch_open_orders"),
                                   ("fetchClosedOrders", "fetch_closed_orders"),
                                   ("fetchCanceledOrders", "fetch_canceled_orders")):
            if not self._has(capability):
                continue
            for o in await getattr(self.exchange, method)(symbol):
                if (oid is not None and str(o.get("id")) == oid) or (
                        vcid is not None and str(o.get("clientOrderId")) == str(vcid)):
                    return o
        return None

    def _state(self, o: Mapping[str, Any], symbol: str | None, cid: str | None) -> OrderState:
        """ccxt's order structure as ours: closed with fills is filled, closed without and expired are
        canceled; a status ccxt did not give is unknown."""
        status = o.get("status")
        filled = (dec(o.get("filled")) or Decimal(0)) * self._mult(symbol)
        if status == "open":
            ours = OPEN
        elif status == "closed":
            ours = FILLED if filled > 0 else CANCELED
        elif status in ("canceled", "cancelled", "expired"):
            ours = CANCELED
        elif status == "rejected":
            ours = REJECTED
        else:
            ours = UNKNOWN
        oid = None if o.get("id") is None else str(o.get("id"))
        raw_cid = o.get("clientOrderId")
        if oid is not None and raw_cid is not None:
            self._raw_cid_of_oid[oid] = str(raw_cid)
        if cid is None and raw_cid is not None:
            cid = self._ours.get(str(raw_cid))
        if oid is not None and cid is not None:
            self._oid_of_cid[cid] = oid
            self._cid_of_oid[oid] = cid
        avg = dec(o.get("average"))
        return OrderState(ours, order_id=oid, client_id=cid, filled=filled, avg_px=avg if filled > 0 else None,
                          error="" if ours != UNKNOWN else f"the venue's answer gave no state ({status!r})")

    async def fills(self, since_ms: int) -> list[Fill]:
        if not self._has("fetchMyTrades"):
            if hasattr(self.exchange, "indexer_get_fills"):
                return await self._dydx_fills(since_ms)
            raise VenueUnsupported(f"{self.name}: ccxt has no fetchMyTrades ({self.meta.sdk.get('fills', '')})")
        await self._load()
        trades = await self._all("fetch_my_trades", since_ms)
        out = [f for f in (self._fill(t) for t in trades) if f is not None and f.ts_ms >= since_ms]
        return sorted(out, key=lambda f: (f.ts_ms, f.fill_id))

    async def _all(self, method: str, since_ms: int) -> list[Any]:
        """Every row of a since-paged read: all symbols at once, or per symbol where ccxt insists on one
        (the symbols this venue placed on and those with a position)."""
        if method not in self._needs_symbol:
            try:
                return await self._paged(method, None, since_ms)
            except VenueReadError as e:
                if "ArgumentsRequired" not in str(e):
                    raise
                self._needs_symbol.add(method)
        symbols = set(self._traded)
        if self._has("fetchPositions"):
            for p in await self._read("fetch_positions", lambda: self.exchange.fetch_positions()):
                if p.get("symbol"):
                    symbols.add(str(p["symbol"]))
        rows: list[Any] = []
        for symbol in sorted(symbols):
            rows += await self._paged(method, symbol, since_ms)
        return rows

    async def _paged(self, method: str, symbol: str | None, since_ms: int) -> list[Any]:
        call = getattr(self.exchange, method)
        seen: dict[str, Any] = {}
        cursor = since_ms
        for _ in range(MAX_PAGES):
            batch: list[Any] = await self._read(method, functools.partial(call, symbol, cursor))
            fresh = [r for r in batch if self._row_key(r) not in seen]
            for r in fresh:
                seen[self._row_key(r)] = r
            stamps = [int(r["timestamp"]) for r in batch if r.get("timestamp") is not None]
            if len(batch) < PAGE_HINT or not fresh or not stamps or max(stamps) <= cursor:
                break
            cursor = max(stamps)  # the newest millisecond is asked again: the ids dedupe it
        return list(seen.values())

    def _row_key(self, row: Mapping[str, Any]) -> str:
        return f"{row.get('symbol')}|{row.get('id')}|{row.get('timestamp')}|{row.get('amount')}"

    def _fill(self, t: Mapping[str, Any]) -> Fill | None:
        symbol = t.get("symbol")
        size, px = self._pick(t, "trade_size", "amount"), self._pick(t, "trade_price", "price")
        if size is None or px is None or t.get("side") not in ("buy", "sell") or t.get("timestamp") is None:
            self._warn_once(f"trade {t.get('id')}", f"a trade without size, price, side or time: {t.get('id')}")
            return None
        size *= self._mult(symbol)
        fid = info_path(t.get("info"), self.meta.info.get("trade_id"))
        return Fill(fill_id=str(fid if fid is not None else t.get("id")), order_id=str(t.get("order") or ""),
                    coin=self.coin_of(symbol), size=size if t["side"] == "buy" else -size, px=px,
                    fee=self._fee_usd(t, px, symbol), ts_ms=int(t["timestamp"]),
                    maker=t.get("takerOrMaker") == "maker")

    def _fee_usd(self, t: Mapping[str, Any], px: Decimal, symbol: str | None) -> Decimal:
        """The fee in USD (a stablecoin counts as one); in the base coin, at the fill price; otherwise,
        or when ccxt did not parse one, NaN: unknown, never a silent zero."""
        given = [t["fee"]] if t.get("fee") else list(t.get("fees") or [])
        fees = [f for f in given if f and f.get("cost") is not None]
        if not fees:
            self._warn_once("nofee", "ccxt reports no fee for this venue's trades: fees are NaN (unknown)")
            return NAN
        raw = info_path(t.get("info"), self.meta.info.get("trade_fee"))
        total = Decimal(0)
        market = self.exchange.markets.get(symbol or "") or {}
        for f in fees:
            cost = dec(raw) if raw is not None and len(fees) == 1 else dec(f.get("cost"))
            currency = f.get("currency")
            if cost is None:
                return NAN
            if currency is None or currency in USD_LIKE or currency in (self.meta.settle, self.meta.quote):
                total += cost
            elif currency == market.get("base"):
                total += cost * px
            else:
                self._warn_once(f"fee {currency}", f"a fee in {currency} has no USD price here: NaN")
                return NAN
        return total

    async def _dydx_fills(self, since_ms: int) -> list[Fill]:
        """dYdX v4: the indexer's ``/fills`` through ccxt's own indexer endpoint (ccxt's dydx has no
        fetchMyTrades).  The indexer writes decimal strings: read as written."""
        await self._load()
        ex = self.exchange
        address = ex.walletAddress or ex.options.get("walletAddress")
        sub = ex.options.get("subAccountNumber", "0")
        raw = await self._read("fills", lambda: ex.indexer_get_fills({"address": address, "subaccountNumber": sub,
                                                                     "limit": 1000}))
        out = []
        for f in raw.get("fills", []) if isinstance(raw, dict) else []:
            ts = ex.parse8601(f.get("createdAt"))
            size, px, fee = dec(f.get("size")), dec(f.get("price")), dec(f.get("fee"))
            if ts is None or size is None or px is None or int(ts) < since_ms:
                continue
            market = ex.safe_market(f.get("market"))
            out.append(Fill(fill_id=str(f.get("id")), order_id=str(f.get("orderId") or ""),
                            coin=self.coin_of(market.get("symbol")), size=size if f.get("side") == "BUY" else -size,
                            px=px, fee=fee if fee is not None else NAN, ts_ms=int(ts),
                            maker=f.get("liquidity") == "MAKER"))
        return sorted(out, key=lambda x: (x.ts_ms, x.fill_id))

    async def account(self) -> Account:
        await self._load()
        ex = self.exchange
        bal = await self._read("fetch_balance", lambda: ex.fetch_balance())
        rows = await self._read("fetch_positions", lambda: ex.fetch_positions()) if self._has("fetchPositions") else []
        positions: dict[str, Position] = {}
        notional = maintenance = Decimal(0)
        for p in rows:
            symbol = p.get("symbol")
            mult = self._mult(symbol)
            size = dec(info_path(p.get("info"), self.meta.info.get("position_size")))
            if size is None:
                contracts = dec(p.get("contracts")) or Decimal(0)
                size = -contracts if p.get("side") == "short" else contracts
            size *= mult
            if size == 0:
                continue
            liq = self._pick(p, "position_liq", "liquidationPrice")
            coin = self.coin_of(symbol)
            positions[coin] = Position(
                coin=coin, size=size, entry_px=self._pick(p, "position_entry", "entryPrice") or NAN,
                unrealized_pnl=self._pick(p, "position_upnl", "unrealizedPnl") or Decimal(0),
                margin=self._pick(p, "position_margin", "initialMargin") or dec(p.get("collateral")) or NAN,
                liquidation_px=liq if liq is not None and liq > 0 else None)
            value = dec(p.get("notional"))
            if value is None:
                mark = dec(p.get("markPrice"))
                value = abs(size) * mark if mark is not None else NAN
            notional += abs(value)
            maintenance += dec(p.get("maintenanceMargin")) or Decimal(0)
        info = bal.get("info")
        equity = dec(info_path(info, self.meta.info.get("balance_equity")))
        if equity is None:
            equity = dec((bal.get("total") or {}).get(self.meta.settle))
        if equity is None:
            raise VenueReadError(f"{self.name} fetch_balance: no {self.meta.settle} equity in the answer")
        ts = bal.get("timestamp")
        return Account(equity=equity, positions=positions, ts_ms=int(ts) if ts is not None else self._now_ms(),
                       notional=dec(info_path(info, self.meta.info.get("balance_notional"))) or notional,
                       maintenance_margin=dec(info_path(info, self.meta.info.get("balance_maintenance")))
                       or maintenance)

    # -- funding --------------------------------------------------------------------------------------
    async def _interval_table(self) -> dict[str, Any]:
        """ccxt's per-symbol intervals where the venue lists them (Binance/Aster fundingInfo: only the
        symbols off the default), read once per venue object."""
        if self._intervals is None:
            self._intervals = {}
            if self.meta.funding_per_symbol and self.exchange.has.get("fetchFundingIntervals") is True:
                try:
                    rates = await self._read("fetch_funding_intervals", lambda: self.exchange.fetch_funding_intervals())
                    self._intervals = {s: r.get("interval") for s, r in rates.items()}
                except VenueReadError as e:
                    self._intervals = None  # asked again next time; until then the other sources
                    self._warn_once("intervals", str(e))
                    return {}
        return self._intervals

    def _interval_of(self, symbol: str, live: Any, table: Mapping[str, Any]) -> int:
        """ccxt's live interval, else its per-symbol list, else the market's own field, else the default."""
        where = f"{self.name} {symbol}"
        hours = interval_hours(live)
        if hours is None:
            hours = interval_hours(table.get(symbol))
        if hours is None and self.meta.interval_info_key and symbol in self.exchange.markets:
            raw = dec(info_path(self._market(symbol).get("info"), self.meta.interval_info_key))
            if raw is not None and raw > 0:
                hours = raw / self.meta.interval_info_per_h
        return _whole_hours(hours, where) if hours is not None else self.meta.funding_interval_h

    async def funding(self, coin: str) -> FundingRate:
        """The current rate per settlement interval (positive: longs pay).  Where ccxt has no current-
        rate call, the last settled rate from the funding history, at the spacing of its settlements."""
        symbol = await self.symbol_of(coin)
        ex = self.exchange
        if self._has("fetchFundingRate"):
            fr = await self._read("fetch_funding_rate", lambda: ex.fetch_funding_rate(symbol))
        elif self._has("fetchFundingRates"):
            rates = await self._read("fetch_funding_rates", lambda: ex.fetch_funding_rates([symbol]))
            fr = rates.get(symbol) if isinstance(rates, dict) else None
            if fr is None:
                raise VenueReadError(f"{self.name} fetch_funding_rates: no rate for {symbol}")
        elif self._has("fetchFundingRateHistory"):
            return await self._last_settled(coin, symbol)
        else:
            raise VenueUnsupported(f"{self.name}: ccxt has no funding rate read ({self.meta.sdk.get('funding', '')})")
        rate = self._pick(fr, "funding_rate", "fundingRate")
        if rate is None:
            raise VenueReadError(f"{self.name} funding {symbol}: the answer has no rate")
        interval = self._interval_of(symbol, fr.get("interval"), await self._interval_table())
        period = self.meta.rate_period_h
        if period is not None and period != interval:
            rate = rate * interval / period  # the venue quotes the rate over another period (Lighter: 8 h)
        ts = fr.get("timestamp")
        return FundingRate(coin=coin, rate=rate, interval_h=interval,
                           mark_px=self._pick(fr, "funding_mark", "markPrice"),
                           ts_ms=int(ts) if ts is not None else self._now_ms())

    async def _last_settled(self, coin: str, symbol: str) -> FundingRate:
        since = self._now_ms() - HISTORY_HOURS * 3_600_000
        rows = await self._read("fetch_funding_rate_history",
                                lambda: self.exchange.fetch_funding_rate_history(symbol, since))
        rows = sorted((r for r in rows if r.get("timestamp") is not None and r.get("fundingRate") is not None),
                      key=lambda r: int(r["timestamp"]))
        if not rows:
            raise VenueReadError(f"{self.name} {symbol}: no settled funding in the last {HISTORY_HOURS} h")
        last = rows[-1]
        interval = self._interval_of(symbol, last.get("interval"), await self._interval_table())
        if len(rows) >= 2:  # the venue's own spacing beats the metadata's default
            gap = Decimal(int(last["timestamp"]) - int(rows[-2]["timestamp"])) / 3_600_000
            if gap > 0 and gap == gap.to_integral_value():
                interval = int(gap)
        rate = self._pick(last, "funding_rate", "fundingRate")
        assert rate is not None
        return FundingRate(coin=coin, rate=rate, interval_h=interval, mark_px=None, ts_ms=int(last["timestamp"]))

    async def funding_payments(self, since_ms: int) -> list[FundingPayment]:
        """Funding paid and received.  ccxt's structure carries only the amount: size and rate come
        from the venue's ``info`` where the metadata names them, else NaN (not reported)."""
        if not self._has("fetchFundingHistory"):
            raise VenueUnsupported(f"{self.name}: ccxt has no fetchFundingHistory "
                                   f"({self.meta.sdk.get('funding_payments', '')})")
        await self._load()
        out = []
        for row in await self._all("fetch_funding_history", since_ms):
            usd = self._pick(row, "payment_usd", "amount")
            if usd is None or row.get("timestamp") is None or int(row["timestamp"]) < since_ms:
                continue
            info = row.get("info")
            size = dec(info_path(info, self.meta.info.get("payment_size")))
            rate = dec(info_path(info, self.meta.info.get("payment_rate")))
            out.append(FundingPayment(coin=self.coin_of(row.get("symbol")), usd=usd,
                                      size=NAN if size is None else size * self._mult(row.get("symbol")),
                                      rate=NAN if rate is None else rate, ts_ms=int(row["timestamp"])))
        return sorted(out, key=lambda p: p.ts_ms)

    # -- orders ---------------------------------------------------------------------------------------
    def _refusal(self, e: BaseException, order_id: str | None, client_id: str | None) -> OrderState:
        """A failed write as a state: the venue's no is rejected; anything that leaves the order's
        existence open (the network, a duplicate client id, an unclassified error) is unknown."""
        text = self._text(e)
        if isinstance(e, _REFUSALS) and not isinstance(e, ccxt.DuplicateOrderId):
            return OrderState(REJECTED, order_id=order_id, client_id=client_id, error=text)
        return OrderState(UNKNOWN, order_id=order_id, client_id=client_id, error=text)

    def _wire(self, symbol: str, order: OrderRequest) -> tuple[str, str] | str:
        """(amount, price) as ccxt's precision strings, or why the order cannot be sent unchanged."""
        ex = self.exchange
        if order.size <= 0 or order.px <= 0:
            return f"size {order.size} and price {order.px} must be positive"
        mult = self._mult(symbol)
        amount = order.size / mult
        try:
            amount_s, px_s = ex.amount_to_precision(symbol, str(amount)), ex.price_to_precision(symbol, str(order.px))
        except ccxt.BaseError as e:
            return self._text(e)
        if Decimal(amount_s) != amount:
            return f"size {order.size} is not a multiple of {self.name}'s lot for {order.coin} (nearest below: " \
                   f"{Decimal(amount_s) * mult})"
        if Decimal(px_s) != order.px:
            return f"price {order.px} is off {self.name}'s tick for {order.coin} (nearest: {px_s})"
        return amount_s, px_s

    def _params(self, order: OrderRequest) -> dict[str, Any]:
        params = self.meta.tif_params(order.tif)
        if order.reduce_only:
            params.update(self.meta.reduce_only)
        if self.meta.expiry is not None:
            params[self.meta.expiry.param] = self.meta.expiry.value(self._now_ms())
        if order.client_id is not None:
            vcid = venue_client_id(order.client_id, self.meta.client_id)
            self._vcid[order.client_id] = vcid
            self._ours[str(vcid)] = order.client_id
            params["clientOrderId"] = vcid
        return params

    async def place(self, order: OrderRequest) -> OrderState:
        cid = order.client_id
        try:
            symbol = await self.symbol_of(order.coin)
            params = self._params(order)
        except (NotListed, VenueReadError, ValueError) as e:  # nothing was sent
            return OrderState(REJECTED, client_id=cid, error=self._secrets.scrub(str(e)))
        wire = self._wire(symbol, order)
        if isinstance(wire, str):
            return OrderState(REJECTED, client_id=cid, error=wire)
        self._traded.add(symbol)
        try:
            answer = await self.exchange.create_order(symbol, "limit", "buy" if order.is_buy else "sell", wire[0],
                                                      wire[1], params)
        except Exception as e:  # the send's outcome is decided below: a refusal, or unknown
            return self._refusal(e, None, cid)
        st = self._state(answer, symbol, cid)
        if st.status == UNKNOWN:  # most venues answer a create with the id only: read what became of it
            read = await self._lookup(symbol, st.order_id, cid)
            if read.status != UNKNOWN:  # the create's answer may carry the average the order read lacks
                same = read.filled == st.filled and read.avg_px is None
                return replace(read, avg_px=st.avg_px) if same else read
            return replace(st, error=read.error or st.error)
        return st

    async def cancel(self, coin: str, order_id: str) -> OrderState:
        """Cancel, then read the order's final state: a fill may have raced the cancel."""
        symbol = await self._symbol_or_state(coin, order_id)
        if isinstance(symbol, OrderState):
            return symbol
        oid = self._oid_of_cid.get(order_id) if order_id in self._vcid else order_id
        if oid is None:  # placed with this client id, venue id never seen: find it first
            found = await self.order_status(coin, order_id)
            if found.order_id is None:
                return found
            oid = found.order_id
        params: dict[str, Any] = {}
        if self.meta.cancel_by_client_id:
            cid = self._cid_of_oid.get(oid)
            if cid is None and oid not in self._raw_cid_of_oid:
                await self._lookup(symbol, oid, None)  # learns the client id the order carries
                cid = self._cid_of_oid.get(oid)
            if cid is not None:
                params["clientOrderId"] = self._vcid[cid]
            elif oid in self._raw_cid_of_oid:  # placed before this session: as the venue wrote it
                params["clientOrderId"] = self._raw_cid_of_oid[oid]
        error = ""
        try:
            await self.exchange.cancel_order(oid, symbol, params)
        except Exception as e:  # whatever the cancel said, the read below says where the order stands
            error = self._text(e)
        final = await self._lookup(symbol, oid, self._cid_of_oid.get(oid))
        if error and not final.final:
            final = replace(final, error=f"{final.error}; cancel: {error}" if final.error else f"cancel: {error}")
        return final

    async def modify(self, coin: str, order_id: str, order: OrderRequest) -> OrderState:
        """ccxt's edit where the venue has a native one; elsewhere cancel (reading the final state) and
        place anew — then the state is the new order's, with its own id, and only if the old one ended
        canceled (filled or unsettled: that state is returned and nothing new is placed)."""
        if self.exchange.has.get("editOrder") is not True:
            final = await self.cancel(coin, order_id)
            if final.status != CANCELED:
                return final
            return await self.place(order)
        try:
            symbol = await self.symbol_of(coin)
            params = self._params(replace(order, client_id=None))
        except (NotListed, VenueReadError, ValueError) as e:
            return OrderState(REJECTED, order_id=order_id, error=self._secrets.scrub(str(e)))
        oid = self._oid_of_cid.get(order_id, order_id)
        wire = self._wire(symbol, order)
        if isinstance(wire, str):
            return OrderState(REJECTED, order_id=oid, error=wire)
        try:
            answer = await self.exchange.edit_order(oid, symbol, "limit", "buy" if order.is_buy else "sell", wire[0],
                                                    wire[1], params)
        except Exception as e:
            return self._refusal(e, oid, self._cid_of_oid.get(oid))
        new_id = answer.get("id") if isinstance(answer, dict) else None
        return await self._lookup(symbol, str(new_id) if new_id is not None else oid, self._cid_of_oid.get(oid))

    async def aclose(self) -> None:
        await self.exchange.close()

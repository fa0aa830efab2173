"""Price sources for the oracle relay: where each quote an oracle definition weighs comes from.

A source is asked for its latest quote once per relay cycle (``fetch(now_ms)``) and answers a
:class:`Quote` — an exact decimal price, the time it was observed and the source's stable id — or
None when it has nothing.  A source that fails raises; the relay records the error as that
source's input and leaves it out.

Kinds (``kind = …`` in a definition's source table; the other keys of the table are the kind's
``params``):

* ``replay`` — a recording (CSV, Parquet or a perpbox dataset directory) replayed from the relay's
  start: :class:`ReplaySource`;
* ``synthetic`` — a seeded geometric random walk: :class:`SyntheticSource`;
* ``hyperliquid`` — a Hyperliquid-compatible ``/info`` endpoint (the venue, or ``perpbox serve``):
  :class:`HyperliquidSource`;
* ``ccxt`` — any exchange ccxt speaks: :class:`CcxtSource`.

:class:`CallbackSource` is the programmatic one (never from a file): ``perpbox serve``'s built-in
deployer feeds its own synthetic prices through it.

Exactness: every price is a :class:`~decimal.Decimal` parsed from the text the venue or file
holds.  The two places a binary float stands in between are named where they happen (a Parquet
float column, and ccxt's parsed numbers); both convert with ``Decimal(repr(x))`` — the shortest
decimal that reads back as the same float, which is the decimal the float was parsed from
whenever that had at most 15 significant digits.
"""

from __future__ import annotations

import bisect
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import httpx
import polars as pl

from perpbox.feeds.replay import _ms, base_coin
from perpbox.venues import dataset


@dataclass(frozen=True, slots=True)
class Quote:
    source: str  # the source's stable id (it names the source in every attestation record)
    px: Decimal  # exact; never a binary float
    ts_ms: int  # when the price was observed (the venue's time where it gives one)


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One ``sources = [{ kind = …, weight = …, max_age_s = …, … }]`` entry of a definition."""

    kind: str  # replay | synthetic | hyperliquid | ccxt
    weight: int = 1
    max_age_ms: int = 10_000
    params: dict[str, Any] = field(default_factory=dict)  # the kind's own keys (path, venue, symbol, …)


class Source(Protocol):
    id: str

    async def fetch(self, now_ms: int) -> Quote | None: ...

    async def aclose(self) -> None: ...


KINDS = ("replay", "synthetic", "hyperliquid", "ccxt")
HYPERLIQUID_URL = "https://api.hyperliquid.xyz"
YEAR_MS = 365 * 86_400_000
JUMP_SIGMAS = 8.0  # a jump's size in the step's own sigmas (as the served synthetic feed)
SIG_FIGS = 5  # a synthetic price's significant figures (Hyperliquid's price precision)


# -- params -------------------------------------------------------------------------------------------
class _Params:
    """A kind's params, read key by key; every complaint names the key and the kind."""

    def __init__(self, kind: str, params: dict[str, Any], known: set[str]) -> None:
        self.kind = kind
        self.params = params
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"{kind} source: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")

    def _bad(self, key: str, want: str) -> ValueError:
        return ValueError(f"{self.kind} source: {key} = {self.params[key]!r} is not {want}")

    def _missing(self, key: str, want: str) -> ValueError:
        return ValueError(f"{self.kind} source: {key} is required ({want})")

    def text(self, key: str, default: str | None = None) -> str:
        if key not in self.params:
            if default is None:
                raise self._missing(key, "a string")
            return default
        value = self.params[key]
        if not isinstance(value, str) or not value:
            raise self._bad(key, "a non-empty string")
        return value

    def choice(self, key: str, default: str, options: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in options:
            raise self._bad(key, f"one of {', '.join(options)}")
        return value

    def integer(self, key: str) -> int:
        if key not in self.params:
            raise self._missing(key, "an integer")
        value = self.params[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, "an integer")
        return value

    def number(self, key: str, default: float, *, positive: bool = False, hi: float | None = None) -> float:
        """A float param (TOML int or float); ``positive``: > 0, else ≥ 0; ``hi``: at most."""
        value = self.params.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self._bad(key, "a number")
        if (positive and value <= 0) or value < 0:
            raise self._bad(key, "a positive number" if positive else "a number ≥ 0")
        if hi is not None and value > hi:
            raise self._bad(key, f"a number ≤ {hi}")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.params.get(key, default)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def decimal(self, key: str) -> Decimal:
        """A positive price, best written as a string (``price = "32.1"``); a TOML number is read
        by its shortest repr, which is the literal the file wrote."""
        if key not in self.params:
            raise self._missing(key, 'a decimal string such as "32.1"')
        value = self.params[key]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self._bad(key, "a decimal string")
        try:
            d = Decimal(value if isinstance(value, str) else repr(value))
        except InvalidOperation:
            raise self._bad(key, "a decimal string") from None
        if not d.is_finite() or d <= 0:
            raise self._bad(key, "a positive price")
        return d

    def table(self, key: str) -> dict[str, Any]:
        value = self.params.get(key, {})
        if not isinstance(value, dict):
            raise self._bad(key, "a table")
        return dict(value)


def _float_decimal(x: float | int) -> Decimal:
    """The one float hop: the shortest decimal that round-trips to ``x`` (``Decimal(0.1)`` would be
    the binary value 0.1000000000000000055…; ``Decimal(repr(0.1))`` is 0.1)."""
    return Decimal(x) if isinstance(x, int) else Decimal(repr(float(x)))


def _sig_figs(d: Decimal, n: int) -> Decimal:
    """``d`` rounded to ``n`` significant figures, without trailing zeros or an exponent
    (123456 -> 123460, 1.50004 -> 1.5)."""
    q = d.quantize(Decimal(1).scaleb(d.adjusted() - n + 1), rounding=ROUND_HALF_EVEN).normalize()
    return q.quantize(Decimal(1)) if q == q.to_integral_value() else q


def _bare(coin: str) -> str:
    """The name after a dex prefix: ``xyz:SILVER`` -> ``SILVER``; ``BTC`` -> ``BTC``."""
    return coin.rpartition(":")[2]


# -- callback -----------------------------------------------------------------------------------------
class CallbackSource:
    """A source whose price is ``fn(now_ms)`` (None: nothing this cycle), observed at ``now_ms``."""

    def __init__(self, id: str, fn: Callable[[int], Decimal | None]) -> None:
        self.id = id
        self.fn = fn

    async def fetch(self, now_ms: int) -> Quote | None:
        px = self.fn(now_ms)
        return None if px is None else Quote(self.id, px, now_ms)

    async def aclose(self) -> None:
        return None


# -- replay -------------------------------------------------------------------------------------------
def _px_column(columns: list[str], where: Path) -> str:
    if "px" in columns:
        return "px"
    if "price" in columns:
        return "price"
    raise ValueError(f"{where}: needs 'coin' and 'px' (or 'price') columns")


def _decimals(col: pl.Series, where: Path) -> list[Decimal | None]:
    """A price column as exact decimals (None where empty): text parsed as written, Decimal columns
    as stored, float columns by ``Decimal(repr(x))`` (the shortest decimal that round-trips; see the
    module doc)."""
    values = col.to_list()
    if col.dtype == pl.Utf8:
        out: list[Decimal | None] = []
        for x in values:
            try:
                out.append(None if x is None or not x.strip() else Decimal(x.strip()))
            except InvalidOperation:
                raise ValueError(f"{where}: price {x!r} is not a decimal number") from None
        return out
    if isinstance(col.dtype, pl.Decimal) or col.dtype.is_integer():
        return [None if x is None else Decimal(x) for x in values]
    return [None if x is None else _float_decimal(x) for x in col.cast(pl.Float64).to_list()]


def _dataset_rows(root: Path) -> tuple[pl.DataFrame, list[Decimal | None]]:
    """As ``perpbox serve --feed replay`` reads a dataset (its ``prices`` oracle series, else the BBO
    mid, else trades), but the BBO mid is taken in Decimal from each side's decimal, not in float."""
    prices = dataset.scan(root, "prices").filter(pl.col("oracle_px").is_not_null()).collect()
    if prices.height:
        return prices, _decimals(prices["oracle_px"], root)
    bbo = dataset.scan(root, "bbo").filter(pl.col("bid_px").is_not_null() & pl.col("ask_px").is_not_null()).collect()
    if bbo.height:
        bids, asks = _decimals(bbo["bid_px"], root), _decimals(bbo["ask_px"], root)
        return bbo, [None if b is None or a is None else (b + a) / 2 for b, a in zip(bids, asks)]
    trades = dataset.scan(root, "trades").collect()
    if trades.height:
        return trades, _decimals(trades["px"], root)
    raise ValueError(f"{root}: no prices, bbo or trades in this dataset")


def load_decimal_series(path: Path) -> list[tuple[int, str, Decimal]]:
    """A recording as (ts_ms, coin reduced by ``base_coin``, exact px) rows sorted by time (stable),
    rows without a positive price left out: ``perpbox serve --feed replay``'s reading, without its
    floats (and with an ISO-8601 time column in a CSV read as such).

    A CSV is read with its price column as text, so ``32.10500000000000000001`` stays itself."""
    path = Path(path)
    if path.is_dir():
        frame, pxs = _dataset_rows(path)
    elif path.suffix == ".parquet":
        frame = pl.read_parquet(path)
        pxs = _decimals(frame[_px_column(frame.columns, path)], path)
    else:
        header = pl.read_csv(path, n_rows=0).columns
        px = _px_column(header, path)
        frame = pl.read_csv(path, try_parse_dates=True,  # an ISO time column becomes a datetime
                            schema_overrides={px: pl.Utf8, **({"coin": pl.Utf8} if "coin" in header else {})})
        pxs = _decimals(frame[px], path)
    if "coin" not in frame.columns:
        raise ValueError(f"{path}: needs 'coin' and 'px' (or 'price') columns")
    ts = _ms(frame).to_list()
    coins = [base_coin(str(c)) for c in frame["coin"].to_list()]
    rows = [(int(t), c, p) for t, c, p in zip(ts, coins, pxs)
            if t is not None and p is not None and p.is_finite() and p > 0]
    rows.sort(key=lambda r: r[0])
    return rows


class ReplaySource:
    """A recorded price series for one coin, replayed from the relay's start.

    Time: the recording's first record (of the whole file, so the coins of one recording stay in
    step, as ``perpbox serve --feed replay`` plays them) lands at ``start_ms``; recorded time runs
    ``speed``× faster than the relay's.  At ``now_ms`` the quote is the coin's last record at or
    before recorded offset ``(now_ms − start_ms)·speed``, stamped with the moment it landed,
    ``start_ms + offset/speed`` — so a gap in the recording ages the quote and the definition's
    ``max_age`` sees it.  After the last record the source keeps answering it with its old stamp
    (stale once max_age passes: the feed stopped) unless ``loop``, when the recording starts
    again; one loop lasts the recording's span plus its mean gap between records, so the last
    record is shown about as long as any other.  Before the coin's first record: None.

    The file is read once, here (see :func:`load_decimal_series` for the formats and exactness).
    """

    def __init__(self, path: Path, coin: str, start_ms: int, speed: float = 1.0, loop: bool = False) -> None:
        rows = load_decimal_series(path)
        if not rows:
            raise ValueError(f"{path}: no records with a positive price")
        self.id = f"replay:{path.name}#{coin}"
        self.start_ms = start_ms
        self.speed = Fraction(Decimal(repr(float(speed))))  # 0.1 is 1/10 here, not its binary neighbour
        self.loop = loop
        t0 = rows[0][0]
        want = base_coin(coin)
        mine = [r for r in rows if r[1] == want] or [r for r in rows if _bare(r[1]) == _bare(want)]
        if not mine:
            names = sorted({r[1] for r in rows})
            raise ValueError(f"{path}: no records for coin {coin!r} (it has {', '.join(names[:20])})")
        self.offsets = [r[0] - t0 for r in mine]
        self.pxs = [r[2] for r in mine]
        stamps = sorted({r[0] for r in rows})
        span = stamps[-1] - t0
        self.period = Fraction(span) + (Fraction(span, len(stamps) - 1) if len(stamps) > 1 else 0)

    async def fetch(self, now_ms: int) -> Quote | None:
        if now_ms < self.start_ms:
            return None
        pos = (now_ms - self.start_ms) * self.speed  # recorded ms since the first record
        base = Fraction(0)
        if self.loop and self.period > 0:
            cycles = pos // self.period
            base = cycles * self.period
            pos -= base
        i = bisect.bisect_right(self.offsets, math.floor(pos)) - 1  # offsets are whole ms
        if i < 0:
            if base == 0:
                return None
            # a loop's start before the coin's first record: the previous loop's last record
            i, base = len(self.offsets) - 1, base - self.period
        landed = self.start_ms + (base + self.offsets[i]) / self.speed
        return Quote(self.id, self.pxs[i], math.floor(landed))

    async def aclose(self) -> None:
        return None


# -- synthetic ----------------------------------------------------------------------------------------
class SyntheticSource:
    """A seeded geometric random walk: each fetch steps it by the time since the previous one
    (the first by the time since ``start_ms``) with annualised volatility ``vol``, plus, with
    probability ``jump_prob`` per step, a jump of 8 step sigmas.  ``random.Random(seed)``, so the
    same seed and the same sequence of ``now_ms`` give the same quotes.  The walk runs in float
    (it is made up anyway); each quote is its value rounded to 5 significant figures as a Decimal."""

    def __init__(self, seed: int, price: Decimal, start_ms: int, vol: float = 0.5, jump_prob: float = 0.0) -> None:
        self.id = f"synthetic:{seed}"
        self.rng = random.Random(seed)
        self.px = float(price)
        self.vol = vol
        self.jump_prob = jump_prob
        self.last_ms = start_ms

    async def fetch(self, now_ms: int) -> Quote:
        dt = max(now_ms - self.last_ms, 0)
        self.last_ms = max(now_ms, self.last_ms)
        sigma = self.vol * math.sqrt(dt / YEAR_MS)
        ret = self.rng.gauss(0.0, sigma)
        if self.jump_prob > 0 and self.rng.random() < self.jump_prob:
            ret += self.rng.gauss(0.0, sigma * JUMP_SIGMAS)
        self.px *= math.exp(ret)
        return Quote(self.id, _sig_figs(_float_decimal(self.px), SIG_FIGS), now_ms)

    async def aclose(self) -> None:
        return None


# -- hyperliquid --------------------------------------------------------------------------------------
class HyperliquidSource:
    """One coin's price from a Hyperliquid-compatible ``POST /info``: ``mid`` from ``allMids`` of the
    coin's dex, ``oracle``/``mark`` from ``metaAndAssetCtxs`` (the coin found by name in the
    universe).  The venue sends prices as decimal strings, and the body is parsed with
    ``parse_float=Decimal``, so even a numeric field never passes through a float.  Stamped with
    the receive time (the venue gives none).  A coin the venue does not list: None."""

    def __init__(self, url: str, coin: str, field: str = "mid", timeout_s: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self.coin = coin
        self.field = field
        self.dex = coin.partition(":")[0] if ":" in coin else ""
        self.id = f"hyperliquid:{self.url}:{coin}:{field}"
        self.client = httpx.AsyncClient(timeout=timeout_s)

    async def _info(self, body: dict[str, Any]) -> Any:
        r = await self.client.post(self.url + "/info", json=body)
        r.raise_for_status()
        return json.loads(r.text, parse_float=Decimal)

    async def fetch(self, now_ms: int) -> Quote | None:
        if self.field == "mid":
            mids = await self._info({"type": "allMids", "dex": self.dex})
            raw = mids.get(self.coin) if isinstance(mids, dict) else None
        else:
            meta, ctxs = await self._info({"type": "metaAndAssetCtxs", "dex": self.dex})
            names = [u.get("name") for u in meta.get("universe", [])]
            if self.coin not in names:
                return None
            i = names.index(self.coin)
            raw = ctxs[i].get("oraclePx" if self.field == "oracle" else "markPx") if i < len(ctxs) else None
        if raw is None:
            return None
        px = Decimal(raw) if isinstance(raw, str | Decimal | int) else None
        if px is None or not px.is_finite() or px <= 0:
            return None
        return Quote(self.id, px, now_ms)

    async def aclose(self) -> None:
        await self.client.aclose()


# -- ccxt ---------------------------------------------------------------------------------------------
class CcxtSource:
    """A symbol's price from an exchange through ``ccxt.async_support``: ``mid`` = (best bid + best
    ask)/2 of ``fetch_order_book(symbol, limit=5)``, or ``last`` of ``fetch_ticker``.

    This is the one unavoidable float hop: ccxt parses every price into a Python float.  Each is
    turned back with ``Decimal(repr(x))``; an exchange's quote is a decimal of at most 15
    significant digits (Hyperliquid's: 5), and for those the shortest round-tripping repr of the
    parsed float is that decimal again, so nothing is lost.  The mid is then taken in Decimal,
    exactly.  Stamped with the book's (ticker's) ``timestamp`` where ccxt gives one, else the
    fetch time.  An empty side, or no last price: None.

    ``options`` is the ccxt constructor's config (``{"timeout": 5000, "options": {"defaultType":
    "swap"}}``; ``enableRateLimit`` is on unless it says otherwise); ``urls`` is merged over the
    exchange's ``urls["api"]`` (``{"public": …, "private": …}`` points ccxt's hyperliquid class at
    ``perpbox serve``)."""

    def __init__(self, venue: str, symbol: str, field: str = "mid", options: dict[str, Any] | None = None,
                 urls: dict[str, Any] | None = None) -> None:
        # imported here: ccxt takes a second to import, and most relays never build this source
        import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]  # ccxt ships no types

        if venue not in ccxt_async.exchanges:
            raise ValueError(f"ccxt source: venue = {venue!r} is not a ccxt exchange id")
        self.symbol = symbol
        self.field = field
        self.id = f"ccxt:{venue}:{symbol}:{field}"
        self.exchange: Any = getattr(ccxt_async, venue)({"enableRateLimit": True, **(options or {})})
        if urls:
            api = self.exchange.urls.get("api")
            self.exchange.urls["api"] = {**api, **urls} if isinstance(api, dict) else dict(urls)

    async def fetch(self, now_ms: int) -> Quote | None:
        if self.field == "mid":
            book = await self.exchange.fetch_order_book(self.symbol, limit=5)
            bids, asks = book.get("bids") or [], book.get("asks") or []
            if not bids or not asks:
                return None
            px = (_float_decimal(bids[0][0]) + _float_decimal(asks[0][0])) / 2
            ts = book.get("timestamp")
        else:
            ticker = await self.exchange.fetch_ticker(self.symbol)
            last = ticker.get("last")
            if last is None:
                return None
            px = _float_decimal(last)
            ts = ticker.get("timestamp")
        return Quote(self.id, px, int(ts) if ts is not None else now_ms)

    async def aclose(self) -> None:
        await self.exchange.close()


# -- from a spec --------------------------------------------------------------------------------------
def build_source(spec: SourceSpec, *, coin: str, base_dir: Path, start_ms: int) -> Source:
    """The source a spec describes, for the asset ``coin`` (``dex:NAME``); relative paths are
    read from ``base_dir`` (the definition file's folder); ``start_ms`` is the relay's start
    (a replay's first record lands there).

    Raises ValueError naming the offending key for an unknown kind or a missing or ill-typed param
    (the definition loader shows the message to the user)."""
    kind = spec.kind
    if kind == "replay":
        p = _Params(kind, spec.params, {"path", "coin", "speed", "loop"})
        path = Path(p.text("path"))
        if not path.is_absolute():
            path = Path(base_dir) / path
        if not path.exists():
            raise ValueError(f"replay source: path = {p.params['path']!r}: {path} does not exist")
        return ReplaySource(path, p.text("coin", _bare(coin)), start_ms, speed=p.number("speed", 1.0, positive=True),
                            loop=p.flag("loop", False))
    if kind == "synthetic":
        p = _Params(kind, spec.params, {"seed", "price", "vol", "jump_prob"})
        return SyntheticSource(p.integer("seed"), p.decimal("price"), start_ms, vol=p.number("vol", 0.5),
                               jump_prob=p.number("jump_prob", 0.0, hi=1.0))
    if kind == "hyperliquid":
        p = _Params(kind, spec.params, {"url", "coin", "field", "timeout_s"})
        return HyperliquidSource(p.text("url", HYPERLIQUID_URL), p.text("coin", coin),
                                 p.choice("field", "mid", ("mid", "oracle", "mark")),
                                 timeout_s=p.number("timeout_s", 2.0, positive=True))
    if kind == "ccxt":
        p = _Params(kind, spec.params, {"venue", "symbol", "field", "options", "urls"})
        venue, symbol = p.text("venue"), p.text("symbol")
        field_ = p.choice("field", "mid", ("mid", "last"))
        return CcxtSource(venue, symbol, field_, options=p.table("options"), urls=p.table("urls"))
    raise ValueError(f"kind: unknown source kind {kind!r} (one of {', '.join(KINDS)})")

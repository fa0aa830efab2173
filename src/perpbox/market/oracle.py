"""Oracle definitions and session calendars (data only; the logic is in ``perpbox.pricing``).

A market's ``OracleDefinition`` says where its oracle price comes from and what happens when
the inputs fail — the decision a market's fate rests on:

* ``manual``: the mark is given to the engine directly (``Tick.marks``) and the oracle follows it;
  for scripted paths and tests.
* ``sources``: a weighted median of external spot prices (``FeedPrices``), validator-style
  (Hyperliquid: Binance 3, OKX 2, Bybit 2, Kraken 1, …).  A source older than ``max_age_ms`` is
  dropped, as is one further than ``max_deviation_bps`` from the median of the fresh ones
  (Binance's index rule).  With fewer than ``min_sources`` left, ``on_insufficient`` decides:
  hold the last oracle (and say so: ``PriceState.stale``), fall back to the book's local mark, or
  halt the market.  Never a silent stale price.
* ``deployer``: HIP-3 — the dex's deployer pushes oracle, mark inputs and external perp prices
  (``SetOracle``), at least ``min_update_ms`` apart; with no push for ``fallback_after_ms`` the mark
  falls back to the local mark (which counts as an update); prices are clamped to
  ``day_clamp_multiple`` × the start-of-day value and each mark move to ``max_mark_move_bps``.

A ``SessionCalendar`` marks a non-24/7 asset's open hours.  While the external market is closed
the oracle is advanced from the book's impact prices through a slow EMA (trade.xyz:
``S ← S + (1 − β)·IPD``, ``β = exp(−min(Δt, τ/10)/τ)``), bounded by a discovery band around the
last external close; max leverage may be lowered off-hours; at the reopen the oracle is pulled
back to the external reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache

MINUTES_PER_WEEK = 7 * 24 * 60
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


class OracleKind(str, Enum):
    MANUAL = "manual"
    SOURCES = "sources"
    DEPLOYER = "deployer"


class OnInsufficient(str, Enum):
    HOLD = "hold"
    BOOK = "book"
    HALT = "halt"


class MarkPolicy(str, Enum):
    """``hyperliquid``: median(oracle + 150 s EMA(mid − oracle), median(bid, ask, last), external
    perp median), with a 30 s EMA of the local mark added when only two exist.  ``hip3``: median
    of the deployer's mark inputs and the local mark.  ``binance``: median(index × (1 + last rate
    × time to funding / interval), index + 30 s average basis, last trade)."""

    HYPERLIQUID = "hyperliquid"
    HIP3 = "hip3"
    BINANCE = "binance"


def minute_of_week(ts_ms: int) -> int:
    """Minutes since Monday 00:00 UTC."""
    return (ts_ms // 60_000 + _EPOCH_WEEKDAY * 1440) % MINUTES_PER_WEEK


def _wk(day: int, hh: int, mm: int = 0) -> int:
    return day * 1440 + hh * 60 + mm


@lru_cache(maxsize=1024)
def _open_at_minute(calendar: SessionCalendar, minute: int) -> bool:
    """Whether ``calendar`` is open in the minute ``minute`` since the epoch (cached: a run asks
    about the same minute many times)."""
    if minute // 1440 in calendar.closed_days:
        return False
    m = minute_of_week(minute * 60_000)
    return any(start <= m < end for start, end in calendar.open_windows)


@dataclass(frozen=True, slots=True)
class SessionCalendar:
    """Open windows as ``(start, end)`` minutes of the week, UTC, Monday 00:00 = 0, end exclusive;
    ``closed_days``: whole UTC days (days since 1970-01-01) closed for holidays.  Fixed UTC hours:
    the venue's daylight-saving shifts are the config's job (one calendar per DST period)."""

    name: str
    open_windows: tuple[tuple[int, int], ...]
    closed_days: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for start, end in self.open_windows:
            if not 0 <= start < end <= MINUTES_PER_WEEK:
                raise ValueError(f"bad session window {(start, end)}")

    def is_open(self, ts_ms: int) -> bool:
        return _open_at_minute(self, ts_ms // 60_000)

    @classmethod
    def comex_metals(cls) -> SessionCalendar:
        """COMEX metals (silver, gold) on Globex, in winter UTC (ET + 5): Sunday 23:00 to Friday
        22:00 with a daily one-hour break 22:00–23:00."""
        windows = [(_wk(0, 0), _wk(0, 22))]
        windows += [(_wk(d, 23), _wk(d + 1, 22)) for d in range(0, 4)]
        windows += [(_wk(6, 23), MINUTES_PER_WEEK)]
        return cls("COMEX metals", tuple(windows))

    @classmethod
    def us_equities(cls) -> SessionCalendar:
        """NYSE/Nasdaq regular hours in winter UTC: Monday–Friday 14:30–21:00."""
        return cls("US equities", tuple((_wk(d, 14, 30), _wk(d, 21)) for d in range(5)))


@dataclass(frozen=True, slots=True)
class OffHours:
    ema_tau_ms: int = 3_600_000  # trade.xyz: τ = 30–60 min
    band_bps: int = 500  # discovery band around the last external close (±5%)
    max_leverage: int = 0  # 0: unchanged off-hours


@dataclass(frozen=True, slots=True)
class OracleDefinition:
    kind: OracleKind = OracleKind.MANUAL
    sources: tuple[tuple[str, int], ...] = ()  # (source, weight) for spot prices
    perp_sources: tuple[tuple[str, int], ...] = ()  # (source, weight) for external perp mids
    max_age_ms: int = 10_000
    max_deviation_bps: int = 500
    min_sources: int = 1
    on_insufficient: OnInsufficient = OnInsufficient.HOLD
    mark: MarkPolicy = MarkPolicy.HYPERLIQUID
    mark_ema_ms: int = 150_000  # Hyperliquid: 150 s EMA of (mid − oracle)
    local_ema_ms: int = 30_000  # the 30 s EMA added when only two mark inputs exist
    min_update_ms: int = 2_500  # HIP-3 deployer rules
    fallback_after_ms: int = 10_000
    max_mark_move_bps: int = 100
    day_clamp_multiple: int = 10
    session: SessionCalendar | None = None
    off_hours: OffHours = field(default_factory=OffHours)

    def __post_init__(self) -> None:
        if self.kind is OracleKind.SOURCES and not self.sources:
            raise ValueError("a sources oracle needs at least one source")
        if any(w <= 0 for _, w in self.sources + self.perp_sources):
            raise ValueError("source weights must be positive")
        if self.min_sources < 1 or self.max_age_ms <= 0 or self.max_deviation_bps <= 0:
            raise ValueError("min_sources, max_age_ms and max_deviation_bps must be positive")

    @classmethod
    def hyperliquid_validators(cls, **kw: object) -> OracleDefinition:
        """Hyperliquid's validator oracle weights for spot, and its perp weights for the mark."""
        return cls(kind=OracleKind.SOURCES,
                   sources=(("binance", 3), ("okx", 2), ("bybit", 2), ("kraken", 1), ("kucoin", 1),
                            ("gate", 1), ("mexc", 1), ("hyperliquid", 1)),
                   perp_sources=(("binance", 3), ("okx", 2), ("bybit", 2), ("gate", 1), ("mexc", 1)),
                   **kw)  # type: ignore[arg-type]

    @classmethod
    def hip3(cls, session: SessionCalendar | None = None, **kw: object) -> OracleDefinition:
        return cls(kind=OracleKind.DEPLOYER, mark=MarkPolicy.HIP3, session=session, **kw)  # type: ignore[arg-type]

"""A deployer's oracle definition (TOML): per asset, where its prices come from and what happens
when those sources fail, close or disagree.  The file is what a deployer publishes; its SHA-256
goes into every attestation record, so a reader can tell which definition priced an update.

```toml
id = "xyz-metals-v1"          # default: the file's stem
interval_s = 3                # seconds between updates (never under 2.5: the venue's limit)

[[asset]]
coin = "xyz:SILVER"
impact_notional_usd = 20000   # the book impact prices the off-hours rule reads
margin_table_id = 10          # optional: the table in hours, restored at the reopen

[asset.oracle]
sources = [{ kind = "replay", path = "silver.csv", weight = 2, max_age_s = 10 },
           { kind = "ccxt", venue = "binance", symbol = "XAG/USDT:USDT", weight = 1 }]
max_deviation_bps = 200       # a source this far from the median of the fresh ones is dropped
min_sources = 1               # fewer live sources than this: on_insufficient
on_insufficient = "hold"      # hold (repeat the last price) | book (the book's local mark) | halt
session = "comex_metals"      # or { open_windows = [[start, end], …], closed_days = […] }

[asset.oracle.off_hours]      # while the session is closed
ema_tau_s = 3600              # the oracle follows the book's impact mid through this EMA …
band_bps = 500                # … inside this band around the last close
anchors = [{ kind = "ccxt", venue = "…", symbol = "…" }]  # after-hours / CFD quotes
anchor_band_bps = 300         # the oracle is kept this close to the anchors' median
margin_table_id = 11          # optional: lower leverage off-hours (setMarginTableIds to a
                              # table inserted beforehand; restored to margin_table_id at the reopen)

[asset.oracle.reopen]
max_step_bps = 100            # the pull-back toward the external price, per update (≤ 1%)

[asset.external]              # externalPerpPxs (the venue's sanity anchor); default: the oracle
sources = [{ kind = "hyperliquid", coin = "xyz:SILVER", field = "mid" }]

[asset.mark]
inputs = ["oracle"]           # up to two markPxs inputs: "oracle" and/or "external"
```

The rules themselves are the engine's (``perpbox.market.oracle`` and ``perpbox.pricing``); this
module only reads them from the file.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perpbox.deployer.sources import SourceSpec
from perpbox.market.oracle import MINUTES_PER_WEEK, OffHours, OnInsufficient, SessionCalendar

MIN_INTERVAL_MS = 2_500  # Hyperliquid: at least 2.5 s between setOracle calls
DEFAULT_INTERVAL_MS = 3_000  # and deployers are expected to call every ~3 s
MAX_STEP_BPS = 100  # Hyperliquid: a price moves at most 1% per update
DAY_CLAMP_MULTIPLE = 10  # Hyperliquid: every price within 10× its start-of-day value
MARK_INPUT_KINDS = ("oracle", "external")
NAMED_SESSIONS = {"us_equities": SessionCalendar.us_equities, "comex_metals": SessionCalendar.comex_metals}


class DefinitionError(ValueError):
    """A definition file that does not say what it must; the message names the key."""


@dataclass(frozen=True, slots=True)
class AssetDefinition:
    coin: str  # "dex:NAME", as the venue names it
    sources: tuple[SourceSpec, ...]
    max_deviation_bps: int = 500
    min_sources: int = 1
    on_insufficient: OnInsufficient = OnInsufficient.HOLD
    session: SessionCalendar | None = None
    off_hours: OffHours = field(default_factory=OffHours)
    anchors: tuple[SourceSpec, ...] = ()
    anchor_band_bps: int = 0  # 0: anchors are recorded, not applied
    reopen_step_bps: int = MAX_STEP_BPS
    external: tuple[SourceSpec, ...] = ()
    mark_inputs: tuple[str, ...] = ("oracle",)
    impact_notional_usd: int = 20_000
    margin_table_id: int | None = None
    off_hours_margin_table_id: int | None = None

    @property
    def dex(self) -> str:
        return self.coin.split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class OracleFile:
    id: str
    sha256: str  # of the file's bytes: the definition every record names
    interval_ms: int
    assets: tuple[AssetDefinition, ...]
    base_dir: Path  # where relative source paths are read from

    @property
    def dex(self) -> str:
        return self.assets[0].dex


def _take(table: dict[str, Any], where: str, allowed: set[str]) -> dict[str, Any]:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise DefinitionError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    return table


def _int(table: dict[str, Any], key: str, where: str, default: int, lo: int = 0, hi: int | None = None) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        bound = f"an integer from {lo}" + (f" to {hi}" if hi is not None else "")
        raise DefinitionError(f"{where}.{key}: {value!r} is not {bound}")
    return value


def _seconds_ms(table: dict[str, Any], key: str, where: str, default_ms: int) -> int:
    value = table.get(key)
    if value is None:
        return default_ms
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise DefinitionError(f"{where}.{key}: {value!r} is not a positive number of seconds")
    return round(value * 1000)


def _sources(rows: Any, where: str, required: bool) -> tuple[SourceSpec, ...]:
    if rows is None and not required:
        return ()
    if not isinstance(rows, list) or (required and not rows) or not all(isinstance(r, dict) for r in rows):
        raise DefinitionError(f"{where}: a list of source tables ({{ kind = …, weight = … }}) is needed")
    out = []
    for i, row in enumerate(rows):
        at = f"{where}[{i}]"
        kind = row.get("kind")
        if not isinstance(kind, str):
            raise DefinitionError(f"{at}.kind: a source needs a kind (replay, synthetic, hyperliquid, ccxt)")
        params = {k: v for k, v in row.items() if k not in ("kind", "weight", "max_age_s")}
        out.append(SourceSpec(kind=kind, weight=_int(row, "weight", at, 1, lo=1),
                              max_age_ms=_seconds_ms(row, "max_age_s", at, 10_000), params=params))
    return tuple(out)


def _session(value: Any, where: str) -> SessionCalendar | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in NAMED_SESSIONS:
            raise DefinitionError(f"{where}: unknown session {value!r} (one of {', '.join(NAMED_SESSIONS)}, "
                                  "or a table with open_windows)")
        return NAMED_SESSIONS[value]()
    if not isinstance(value, dict):
        raise DefinitionError(f"{where}: a session name or a table")
    _take(value, where, {"name", "open_windows", "closed_days"})
    windows = value.get("open_windows")
    if not isinstance(windows, list) or not all(
            isinstance(w, list) and len(w) == 2 and all(isinstance(x, int) for x in w) for w in windows):
        raise DefinitionError(f"{where}.open_windows: [[start, end], …] minutes of the week "
                              f"(Monday 00:00 UTC = 0, up to {MINUTES_PER_WEEK})")
    days = value.get("closed_days", [])
    if not isinstance(days, list) or not all(isinstance(d, int) for d in days):
        raise DefinitionError(f"{where}.closed_days: a list of UTC day numbers")
    try:
        return SessionCalendar(str(value.get("name", "custom")), tuple((a, b) for a, b in windows), tuple(days))
    except ValueError as e:
        raise DefinitionError(f"{where}.open_windows: {e}") from None


def _optional_id(table: dict[str, Any], key: str, where: str) -> int | None:
    return None if key not in table else _int(table, key, where, 0)


def _asset(row: Any, i: int) -> AssetDefinition:
    where = f"asset[{i}]"
    if not isinstance(row, dict):
        raise DefinitionError(f"{where}: a table")
    _take(row, where, {"coin", "oracle", "external", "mark", "impact_notional_usd", "margin_table_id"})
    coin = row.get("coin")
    if not isinstance(coin, str) or coin.count(":") != 1 or not all(coin.split(":")):
        raise DefinitionError(f"{where}.coin: {coin!r} is not a HIP-3 coin (dex:NAME)")
    oracle = row.get("oracle")
    if not isinstance(oracle, dict):
        raise DefinitionError(f"{where}.oracle: the [asset.oracle] table is needed")
    ow = f"{where}.oracle"
    _take(oracle, ow, {"sources", "max_deviation_bps", "min_sources", "on_insufficient", "session", "off_hours",
                       "reopen"})
    mode = oracle.get("on_insufficient", "hold")
    if mode not in {m.value for m in OnInsufficient}:
        raise DefinitionError(f"{ow}.on_insufficient: {mode!r} is not hold, book or halt")
    off = oracle.get("off_hours", {})
    if not isinstance(off, dict):
        raise DefinitionError(f"{ow}.off_hours: a table")
    offw = f"{ow}.off_hours"
    _take(off, offw, {"ema_tau_s", "band_bps", "anchors", "anchor_band_bps", "margin_table_id"})
    reopen = oracle.get("reopen", {})
    if not isinstance(reopen, dict):
        raise DefinitionError(f"{ow}.reopen: a table")
    _take(reopen, f"{ow}.reopen", {"max_step_bps"})
    external = row.get("external", {})
    mark = row.get("mark", {})
    if not isinstance(external, dict) or not isinstance(mark, dict):
        raise DefinitionError(f"{where}: external and mark are tables")
    _take(external, f"{where}.external", {"sources"})
    _take(mark, f"{where}.mark", {"inputs"})
    inputs = mark.get("inputs", ["oracle"])
    if (not isinstance(inputs, list) or len(inputs) > 2 or len(set(inputs)) != len(inputs)
            or any(x not in MARK_INPUT_KINDS for x in inputs)):
        raise DefinitionError(f"{where}.mark.inputs: up to two of {', '.join(MARK_INPUT_KINDS)}")
    sources = _sources(oracle.get("sources"), f"{ow}.sources", required=True)
    return AssetDefinition(
        coin=coin, sources=sources,
        max_deviation_bps=_int(oracle, "max_deviation_bps", ow, 500, lo=1),
        min_sources=_int(oracle, "min_sources", ow, 1, lo=1, hi=len(sources)),
        on_insufficient=OnInsufficient(mode),
        session=_session(oracle.get("session"), f"{ow}.session"),
        off_hours=OffHours(ema_tau_ms=_seconds_ms(off, "ema_tau_s", offw, 3_600_000),
                           band_bps=_int(off, "band_bps", offw, 500, lo=1)),
        anchors=_sources(off.get("anchors"), f"{offw}.anchors", required=False),
        anchor_band_bps=_int(off, "anchor_band_bps", offw, 0),
        reopen_step_bps=_int(reopen, "max_step_bps", f"{ow}.reopen", MAX_STEP_BPS, lo=1, hi=MAX_STEP_BPS),
        external=_sources(external.get("sources"), f"{where}.external.sources", required=False),
        mark_inputs=tuple(inputs),
        impact_notional_usd=_int(row, "impact_notional_usd", where, 20_000, lo=1),
        margin_table_id=_optional_id(row, "margin_table_id", where),
        off_hours_margin_table_id=_optional_id(off, "margin_table_id", offw))


def parse_definition(data: dict[str, Any], *, sha256: str, default_id: str, base_dir: Path) -> OracleFile:
    _take(data, "definition", {"id", "interval_s", "asset"})
    rows = data.get("asset")
    if not isinstance(rows, list) or not rows:
        raise DefinitionError("definition: at least one [[asset]] is needed")
    assets = tuple(_asset(r, i) for i, r in enumerate(rows))
    coins = [a.coin for a in assets]
    if len(set(coins)) != len(coins):
        raise DefinitionError("definition: an asset is defined twice")
    if len({a.dex for a in assets}) != 1:
        raise DefinitionError("definition: every asset must be on the same dex (one relay publishes one dex)")
    interval = _seconds_ms(data, "interval_s", "definition", DEFAULT_INTERVAL_MS)
    if interval < MIN_INTERVAL_MS:
        raise DefinitionError(f"definition.interval_s: {interval / 1000} s is under the venue's 2.5 s minimum")
    ident = data.get("id", default_id)
    if not isinstance(ident, str) or not ident:
        raise DefinitionError("definition.id: a non-empty string")
    return OracleFile(id=ident, sha256=sha256, interval_ms=interval, assets=assets, base_dir=base_dir)


def load_definition(path: Path) -> OracleFile:
    raw = Path(path).read_bytes()
    try:
        data = tomllib.loads(raw.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise DefinitionError(f"{path}: {e}") from None
    return parse_definition(data, sha256=hashlib.sha256(raw).hexdigest(), default_id=Path(path).stem,
                            base_dir=Path(path).resolve().parent)

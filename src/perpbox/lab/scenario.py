"""Scenarios: what a lab run simulates, as a TOML file.

```toml
backstop_usd = 10000000   # `perpbox serve`'s config keys: top-level ones before any table
[scenario]
name = "calm"
description = "No shock: the control."
horizon = "2h"            # simulated time: "90s", "30m", "6h", "2d" (or seconds)
step = "1s"               # the engine's tick and the feed's step
start = 2026-01-05T14:00:00Z

[tunables]                # the keys `--set KEY=VALUE` may change, with their defaults
half_spread_bps = 1.0

[population]              # agents.population.PopulationParams; "$key" is a tunable's value
half_spread_bps = "$half_spread_bps"

[[market]]                # the rest is `perpbox serve`'s config format: [[market]] rows
name = "BTC"
...

[[shock]]                 # an external price path: the feed's price times a piecewise-linear multiplier
kind = "price"
market = "BTC"
path = [["0s", 1.0], ["1h", 0.7]]
[[shock]]                 # makers quote `factor` times wider and thinner between start and end
kind = "liquidity"
start = "1h"
end = "3h"
factor = 3.0
[[shock]]                 # the external walk `factor` times as volatile between start and end
kind = "volatility"
market = "BTC"
start = "1h"
end = "2h"
factor = 4.0
```

Markets are named by their coin (``BTC``; ``xyz:XYZ100`` on a HIP-3 dex).  HIP-3 dexes come as
in ``perpbox serve``'s config (``[[dex]]`` with ``[[dex.market]]`` rows, sessions and off-hours
rules): the lab's deployer pushes ``setOracle`` from the feed every ``oracle_interval`` (3 s), and an
``[[shock]] kind = "oracle_outage"`` (``dex``, ``start``, ``end``) stops its pushes for a while.
``[scenario] mark_inputs`` (at most two of ``"oracle"`` and ``"external"``, as in the deployer kit's
definitions) are the ``markPxs`` each push carries: the oracle (off hours the engine's internal
one) and the external perp price; the venue's new mark is their median with the local book's mark
(none, the default: the local mark alone, moving at most 1% per push).
``[scenario] halt_offhours = true`` puts every market with a session in reduce-only while its
external market is closed (no new exposure; exits and liquidations still trade).  ``[[actor]]``
tables place named participants (``agents.actors``: a holder, a TWAP).

A string value that is exactly ``"$key"`` anywhere in the file is replaced by tunable ``key`` (after
``--set``).  The resolved document's canonical JSON hashes to ``config_hash``: the same file and
keys always give the same hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from perpbox.agents.actors import ActorSpec, parse_actors
from perpbox.agents.population import PopulationParams
from perpbox.config import ExchangeConfig, parse_config

SCENARIO_KEYS = {"scenario", "tunables", "population", "shock", "actor"}
_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
MAX_HORIZON_MS = 30 * 86_400_000
MIN_STEP_MS = 100


class ScenarioError(ValueError):
    """A scenario file (or a --set) that does not say what it must; the message says where."""


def parse_duration(value: object, where: str) -> int:
    """``"90s"``, ``"30m"``, ``"6h"``, ``"2d"``, ``"500ms"`` or a number of seconds, in milliseconds."""
    if isinstance(value, bool):
        raise ScenarioError(f"{where}: {value!r} is not a duration")
    if isinstance(value, int | float):
        ms = float(value) * 1000
    elif isinstance(value, str) and (m := _DURATION.match(value.strip())):
        ms = float(m.group(1)) * _UNITS_MS[m.group(2)]
    else:
        raise ScenarioError(f"{where}: {value!r} is not a duration (e.g. 90s, 30m, 6h, 2d)")
    if ms < 0 or ms != ms or ms > 10 * MAX_HORIZON_MS:
        raise ScenarioError(f"{where}: {value!r} is out of range")
    return round(ms)


@dataclass(frozen=True)
class PriceShock:
    market: str
    path: tuple[tuple[int, float], ...]  # (ms from the start, multiplier), times increasing

    def multiplier(self, t_ms: int) -> float:
        """The path at ``t_ms``: linear between points, flat before the first and after the last."""
        pts = self.path
        if t_ms <= pts[0][0]:
            return pts[0][1]
        for (t0, m0), (t1, m1) in itertools.pairwise(pts):
            if t_ms <= t1:
                return m0 + (m1 - m0) * (t_ms - t0) / (t1 - t0)
        return pts[-1][1]


@dataclass(frozen=True)
class LiquidityShock:
    start_ms: int
    end_ms: int
    factor: float


@dataclass(frozen=True)
class VolatilityShock:
    market: str
    start_ms: int
    end_ms: int
    factor: float


@dataclass(frozen=True)
class OracleOutage:
    dex: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    horizon_ms: int
    step_ms: int
    start_ms: int
    config: ExchangeConfig
    population: PopulationParams
    price_shocks: tuple[PriceShock, ...]
    liquidity_shocks: tuple[LiquidityShock, ...]
    tunables: dict[str, Any]  # the values in force (defaults, then --set)
    config_hash: str
    oracle_outages: tuple[OracleOutage, ...] = ()
    actors: tuple[ActorSpec, ...] = ()
    halt_offhours: bool = False
    oracle_interval_ms: int = 3_000
    vol_shocks: tuple[VolatilityShock, ...] = ()
    mark_inputs: tuple[str, ...] = ()

    def oracle_down(self, dex: str, t_ms: int) -> bool:
        """Whether ``dex``'s deployer is silent ``t_ms`` after the start."""
        return any(o.dex == dex and o.start_ms <= t_ms < o.end_ms for o in self.oracle_outages)

    def stress(self, t_ms: int) -> float:
        """The liquidity withdrawal in force ``t_ms`` after the start (1: none)."""
        f = 1.0
        for s in self.liquidity_shocks:
            if s.start_ms <= t_ms < s.end_ms:
                f = max(f, s.factor)
        return f

    def vol_multiplier(self, market: str, t_ms: int) -> float:
        """How many times its usual volatility the external walk of ``market`` has at ``t_ms``."""
        f = 1.0
        for s in self.vol_shocks:
            if s.market == market and s.start_ms <= t_ms < s.end_ms:
                f = max(f, s.factor)
        return f

    def price_multiplier(self, market: str, t_ms: int) -> float:
        m = 1.0
        for s in self.price_shocks:
            if s.market == market:
                m *= s.multiplier(t_ms)
        return m


def builtin_names() -> list[str]:
    """The scenarios that ship with perpbox."""
    folder = resources.files("perpbox.lab").joinpath("scenarios")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def builtin_text(name: str) -> str:
    if name not in builtin_names():
        raise ScenarioError(f"no built-in scenario {name!r} (built in: {', '.join(builtin_names())})")
    return resources.files("perpbox.lab").joinpath("scenarios", f"{name}.toml").read_text()


def scenario_text(name_or_path: str) -> str:
    """A built-in scenario by name, else a file."""
    if name_or_path in builtin_names():
        return builtin_text(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ScenarioError(f"{name_or_path!r} is neither a built-in scenario ({', '.join(builtin_names())}) "
                            "nor a file")
    return path.read_text()


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE as a TOML value (``3``, ``0.5``, ``true``, ``"x"``); a bare word is a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScenarioError(f"--set {text!r}: expected KEY=VALUE")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def _tunables(doc: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    table = doc.get("tunables", {})
    if not isinstance(table, dict):
        raise ScenarioError("[tunables] must be a table")
    values = dict(table)
    for key, value in overrides.items():
        if key not in values:
            known = ", ".join(sorted(values)) or "none"
            raise ScenarioError(f"--set {key}: not a tunable of this scenario (tunables: {known})")
        default = values[key]
        same = type(value) is type(default) or (isinstance(default, float) and type(value) is int)
        if not same:
            raise ScenarioError(f"--set {key}={value!r}: must be {type(default).__name__} like its default {default!r}")
        values[key] = float(value) if isinstance(default, float) else value
    return values


def _substitute(value: Any, tunables: dict[str, Any], where: str) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        key = value[1:]
        if key not in tunables:
            raise ScenarioError(f"{where}: {value!r} names no tunable")
        return tunables[key]
    if isinstance(value, dict):
        return {k: _substitute(v, tunables, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, tunables, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _canonical(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


Shocks = tuple[tuple[PriceShock, ...], tuple[LiquidityShock, ...], tuple[OracleOutage, ...],
               tuple[VolatilityShock, ...]]


def _window(row: dict[str, Any], where: str) -> tuple[int, int]:
    """A shock's ``start`` and ``end`` (ms after the scenario's start), start before end."""
    start, end = parse_duration(row.get("start"), f"{where}.start"), parse_duration(row.get("end"), f"{where}.end")
    if end <= start:
        raise ScenarioError(f"{where}: start < end")
    return start, end


def _factor(row: dict[str, Any], where: str) -> float:
    factor = row.get("factor")
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not 1 <= factor <= 100:
        raise ScenarioError(f"{where}.factor: a number from 1 to 100, not {factor!r}")
    return float(factor)


def _shocks(rows: Any, markets: set[str], dexes: set[str]) -> Shocks:
    if not isinstance(rows, list):
        raise ScenarioError("[[shock]] must be an array of tables")
    prices: list[PriceShock] = []
    liquidity: list[LiquidityShock] = []
    vols: list[VolatilityShock] = []
    outages: list[OracleOutage] = []
    for i, row in enumerate(rows):
        where = f"shock[{i}]"
        if not isinstance(row, dict):
            raise ScenarioError(f"{where} must be a table")
        kind = row.get("kind")
        if kind == "price":
            market = row.get("market")
            if market not in markets:
                raise ScenarioError(f"{where}.market: {market!r} is not a market of the scenario")
            raw = row.get("path")
            if not isinstance(raw, list) or not raw:
                raise ScenarioError(f"{where}.path: a list of [time, multiplier] pairs")
            path: list[tuple[int, float]] = []
            for j, pt in enumerate(raw):
                if not isinstance(pt, list) or len(pt) != 2 or isinstance(pt[1], bool) \
                        or not isinstance(pt[1], int | float) or not 0 < pt[1] < 1_000:
                    raise ScenarioError(f"{where}.path[{j}]: [time, multiplier > 0], not {pt!r}")
                t = parse_duration(pt[0], f"{where}.path[{j}]")
                if path and t <= path[-1][0]:
                    raise ScenarioError(f"{where}.path[{j}]: times must increase")
                path.append((t, float(pt[1])))
            prices.append(PriceShock(str(market), tuple(path)))
        elif kind == "liquidity":
            liquidity.append(LiquidityShock(*_window(row, where), _factor(row, where)))
        elif kind == "volatility":
            market = row.get("market")
            if market not in markets:
                raise ScenarioError(f"{where}.market: {market!r} is not a market of the scenario")
            vols.append(VolatilityShock(str(market), *_window(row, where), _factor(row, where)))
        elif kind == "oracle_outage":
            dex = row.get("dex")
            if dex not in dexes:
                raise ScenarioError(f"{where}.dex: {dex!r} is not a HIP-3 dex of the scenario")
            outages.append(OracleOutage(str(dex), *_window(row, where)))
        else:
            raise ScenarioError(f"{where}.kind: 'price', 'liquidity', 'volatility' or 'oracle_outage', not {kind!r}")
    return tuple(prices), tuple(liquidity), tuple(outages), tuple(vols)


def load_scenario(name_or_path: str, overrides: dict[str, Any] | None = None, *,
                  horizon_ms: int | None = None) -> Scenario:
    """A built-in scenario or a file, with ``overrides`` of its tunables (and of its horizon)."""
    text = scenario_text(name_or_path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{name_or_path}: {e}") from None
    return parse_scenario(doc, overrides or {}, horizon_ms=horizon_ms)


def parse_scenario(doc: dict[str, Any], overrides: dict[str, Any], *, horizon_ms: int | None = None) -> Scenario:
    tunables = _tunables(doc, overrides)
    resolved = _substitute({k: v for k, v in doc.items() if k != "tunables"}, tunables, "")
    head = resolved.get("scenario")
    if not isinstance(head, dict) or not isinstance(head.get("name"), str):
        raise ScenarioError("[scenario] with a name is required")
    horizon = horizon_ms if horizon_ms is not None else parse_duration(head.get("horizon", "1h"), "scenario.horizon")
    step = parse_duration(head.get("step", "1s"), "scenario.step")
    if not MIN_STEP_MS <= step <= horizon or horizon > MAX_HORIZON_MS:
        raise ScenarioError(f"scenario: {MIN_STEP_MS} ms ≤ step ≤ horizon ≤ 30 days")
    start = head.get("start", dt.datetime(2026, 1, 5, 14, tzinfo=dt.UTC))
    if not isinstance(start, dt.datetime) or start.tzinfo is None:
        raise ScenarioError("scenario.start: an offset date-time, e.g. 2026-01-05T14:00:00Z")
    try:
        config = parse_config({k: v for k, v in resolved.items() if k not in SCENARIO_KEYS})
    except (ValueError, KeyError, TypeError) as e:
        raise ScenarioError(f"markets: {e}") from None
    if not config.all_markets():
        raise ScenarioError("a scenario needs at least one market ([[market]] or [[dex.market]])")
    try:
        population = PopulationParams.from_table(resolved.get("population", {}))
    except ValueError as e:
        raise ScenarioError(str(e)) from None
    specs = {m.spec.coin: m.spec for m in config.all_markets()}
    prices, liquidity, outages, vols = _shocks(resolved.get("shock", []), set(specs), {d.name for d in config.dexes})
    try:
        actors = parse_actors(resolved.get("actor", []), parse_duration, specs)
    except ValueError as e:
        raise ScenarioError(str(e)) from None
    halt = head.get("halt_offhours", False)
    if not isinstance(halt, bool):
        raise ScenarioError("scenario.halt_offhours: true or false")
    mark_inputs = head.get("mark_inputs", [])
    if not isinstance(mark_inputs, list) or len(mark_inputs) > 2 \
            or any(i not in ("oracle", "external") for i in mark_inputs):
        raise ScenarioError("scenario.mark_inputs: a list of at most two of 'oracle' and 'external'")
    interval = parse_duration(head.get("oracle_interval", "3s"), "scenario.oracle_interval")
    if interval < 2_500:
        raise ScenarioError("scenario.oracle_interval: at least 2.5 s (HIP-3's minimum between setOracle pushes)")
    canon = json.dumps(_canonical({**resolved, "horizon_ms": horizon}), sort_keys=True, separators=(",", ":"))
    return Scenario(name=head["name"], description=str(head.get("description", "")), horizon_ms=horizon,
                    step_ms=step, start_ms=int(start.timestamp() * 1000), config=config, population=population,
                    price_shocks=prices, liquidity_shocks=liquidity, tunables=tunables,
                    config_hash=hashlib.sha256(canon.encode()).hexdigest(), oracle_outages=outages, actors=actors,
                    halt_offhours=halt, oracle_interval_ms=interval, vol_shocks=vols,
                    mark_inputs=tuple(str(i) for i in mark_inputs))

"""The monitor's rules file (TOML): channel cadences, the named de-peg signals, and rules that raise
a market's level and pull a lever.  The default file (``perpbox/data/monitor-rules.toml``) is the
HIP-3 builder guidance, documented line by line.

A condition is ``"<measurement> <op> <number>"``; a rule holds when its condition does (``when``),
all or any of several do (``all``/``any``), or at least ``signals_at_least`` of its named
``signals`` are up; ``for_s`` asks the rule to hold that long first.  It clears after its conditions
have been false for ``clear_after_s``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

RESPONSES = ("alert", "cut_oi_caps", "freeze_oi", "step_down_margin_table", "set_funding_multiplier", "halt")
_CONDITION = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(>=|<=|>|<)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$")


class RulesError(ValueError):
    """A rules file that does not say what it must; the message names the rule and key."""


@dataclass(frozen=True, slots=True)
class Condition:
    metric: str
    op: str
    threshold: Decimal

    def holds(self, value: Decimal | None) -> bool:
        if value is None:  # not measured: never holds (a missing input is its own alert, not a trigger)
            return False
        t = self.threshold
        return {">": value > t, ">=": value >= t, "<": value < t, "<=": value <= t}[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold}"


def parse_condition(text: Any, where: str) -> Condition:
    m = _CONDITION.match(text) if isinstance(text, str) else None
    if m is None:
        raise RulesError(f"{where}: {text!r} is not '<measurement> <op> <number>' (op: > >= < <=)")
    return Condition(m.group(1), m.group(2), Decimal(m.group(3)))


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    condition: Condition
    for_ms: int = 0


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    level: int
    response: str
    conditions: tuple[Condition, ...] = ()
    mode: str = "all"  # all | any | signals
    signals: tuple[str, ...] = ()
    signals_at_least: int = 0
    for_ms: int = 0
    clear_after_ms: int = 0
    factor: Decimal = Decimal("0.5")  # cut_oi_caps
    multiplier: Decimal = Decimal(1)  # set_funding_multiplier (Hyperliquid: 0 to 10)

    def describe(self) -> str:
        if self.mode == "signals":
            return f"{self.signals_at_least} or more of {', '.join(self.signals)}"
        joined = f" {'and' if self.mode == 'all' else 'or'} ".join(str(c) for c in self.conditions)
        return joined + (f" for {self.for_ms / 1000:g} s" if self.for_ms else "")


@dataclass(frozen=True, slots=True)
class Rules:
    rules: tuple[Rule, ...]
    signals: dict[str, Signal]
    price_ms: int = 1_000
    book_ms: int = 5_000
    positions_ms: int = 60_000
    stress_move: Decimal = Decimal("0.10")
    source: str = "default"

    def metrics(self) -> set[str]:
        names = {c.metric for r in self.rules for c in r.conditions}
        return names | {s.condition.metric for s in self.signals.values()}


def _seconds(table: dict[str, Any], key: str, where: str, default_ms: int) -> int:
    v = table.get(key)
    if v is None:
        return default_ms
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise RulesError(f"{where}.{key}: {v!r} is not a number of seconds")
    return round(v * 1000)


def _only(table: dict[str, Any], where: str, allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise RulesError(f"{where}: unknown key {unknown[0]!r}")


def _rule(row: Any, i: int, signals: dict[str, Signal]) -> Rule:
    where = f"rule[{i}]"
    if not isinstance(row, dict):
        raise RulesError(f"{where}: a table")
    _only(row, where, {"id", "when", "all", "any", "signals", "signals_at_least", "level", "response", "factor",
                       "multiplier", "for_s", "clear_after_s"})
    rid = row.get("id")
    if not isinstance(rid, str) or not rid:
        raise RulesError(f"{where}.id: a name is needed")
    where = f"rule {rid!r}"
    level = row.get("level")
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 3:
        raise RulesError(f"{where}.level: 1, 2 or 3")
    response = row.get("response", "alert")
    if response not in RESPONSES:
        raise RulesError(f"{where}.response: one of {', '.join(RESPONSES)}")
    forms = [k for k in ("when", "all", "any", "signals_at_least") if k in row]
    if len(forms) != 1:
        raise RulesError(f"{where}: exactly one of when, all, any, signals_at_least")
    mode, names, at_least = "all", [], 0
    conditions: tuple[Condition, ...] = ()
    if "when" in row:
        conditions = (parse_condition(row["when"], f"{where}.when"),)
    elif "signals_at_least" in row:
        mode = "signals"
        names = row.get("signals", sorted(signals))
        at_least = row["signals_at_least"]
        if not isinstance(names, list) or any(n not in signals for n in names):
            raise RulesError(f"{where}.signals: names from [signal] ({', '.join(signals) or 'none defined'})")
        if isinstance(at_least, bool) or not isinstance(at_least, int) or not 1 <= at_least <= len(names):
            raise RulesError(f"{where}.signals_at_least: from 1 to {len(names)}")
    else:
        mode = forms[0]
        items = row[mode]
        if not isinstance(items, list) or not items:
            raise RulesError(f"{where}.{mode}: a list of conditions")
        conditions = tuple(parse_condition(c, f"{where}.{mode}[{j}]") for j, c in enumerate(items))
    try:
        factor = Decimal(str(row.get("factor", "0.5")))
    except InvalidOperation:
        raise RulesError(f"{where}.factor: a decimal") from None
    if not 0 < factor < 1:
        raise RulesError(f"{where}.factor: between 0 and 1")
    try:
        multiplier = Decimal(str(row.get("multiplier", "1")))
    except InvalidOperation:
        raise RulesError(f"{where}.multiplier: a decimal") from None
    if not 0 <= multiplier <= 10:
        raise RulesError(f"{where}.multiplier: from 0 to 10 (the venue's range)")
    return Rule(id=rid, level=level, response=response, conditions=tuple(conditions), mode=mode,
                signals=tuple(names), signals_at_least=at_least, for_ms=_seconds(row, "for_s", where, 0),
                clear_after_ms=_seconds(row, "clear_after_s", where, 0), factor=factor,
                multiplier=multiplier)


def parse_rules(data: dict[str, Any], source: str = "default") -> Rules:
    _only(data, "rules", {"cadence", "signal", "rule", "stress"})
    signals: dict[str, Signal] = {}
    for name, spec in (data.get("signal") or {}).items():
        where = f"signal {name!r}"
        if not isinstance(spec, dict):
            raise RulesError(f"{where}: a table {{ when = …, for_s = … }}")
        _only(spec, where, {"when", "for_s"})
        signals[name] = Signal(name, parse_condition(spec.get("when"), f"{where}.when"),
                               _seconds(spec, "for_s", where, 0))
    rows = data.get("rule")
    if not isinstance(rows, list) or not rows:
        raise RulesError("rules: at least one [[rule]]")
    rules = tuple(_rule(r, i, signals) for i, r in enumerate(rows))
    if len({r.id for r in rules}) != len(rules):
        raise RulesError("rules: two rules share an id")
    cadence = data.get("cadence") or {}
    _only(cadence, "cadence", {"price_s", "book_s", "positions_s"})
    stress = data.get("stress") or {}
    _only(stress, "stress", {"move_pct"})
    try:
        move = Decimal(str(stress.get("move_pct", "10"))) / 100
    except InvalidOperation:
        raise RulesError("stress.move_pct: a decimal") from None
    return Rules(rules=rules, signals=signals, price_ms=_seconds(cadence, "price_s", "cadence", 1_000),
                 book_ms=_seconds(cadence, "book_s", "cadence", 5_000),
                 positions_ms=_seconds(cadence, "positions_s", "cadence", 60_000), stress_move=move, source=source)


def default_rules_text() -> str:
    return resources.files("perpbox").joinpath("data/monitor-rules.toml").read_text()


def load_rules(path: Path | None = None) -> Rules:
    text = default_rules_text() if path is None else Path(path).read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RulesError(f"{path or 'default rules'}: {e}") from None
    return parse_rules(data, source=str(path) if path else "default")

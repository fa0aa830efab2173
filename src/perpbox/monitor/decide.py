"""The monitor's decisions, as a pure state machine: measurements in (with their time), rule
transitions out.

Per market and rule: a rule *holds* when its conditions do (for ``for_s``, when it asks); it
*raises* the market to its level the first time it holds; once raised it *clears* only after its
conditions have been false for ``clear_after_s`` without a break (hysteresis: a value flickering
around its threshold neither re-fires nor clears the rule).  A market's level is the highest level
of its raised rules.  Signals (the de-peg thresholds A-D) are up when their condition has held for
their ``for_s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from perpbox.monitor.rules import Condition, Rule, Rules

Values = dict[str, Decimal | None]


@dataclass
class _Held:
    """When a condition began to hold without a break (None: it does not hold now)."""

    since: int | None = None

    def update(self, holds: bool, now: int) -> int:
        """How long it has held (ms), -1 when it does not."""
        if not holds:
            self.since = None
            return -1
        if self.since is None:
            self.since = now
        return now - self.since


@dataclass
class _RuleState:
    raised: bool = False
    held: _Held = field(default_factory=_Held)
    false_since: int | None = None
    raised_at: int = 0


@dataclass(frozen=True, slots=True)
class Transition:
    market: str
    rule: Rule
    kind: str  # raise | clear
    time_ms: int
    level_before: int
    level_after: int
    measured: dict[str, str]


def _fmt(v: Decimal | None) -> str:
    return "n/a" if v is None else format(v.quantize(Decimal("0.0001")).normalize(), "f")


class Decider:
    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self._rules: dict[tuple[str, str], _RuleState] = {}
        self._signals: dict[tuple[str, str], _Held] = {}

    def level(self, market: str) -> int:
        return max((r.level for r in self.rules.rules if self._state(market, r).raised), default=0)

    def raised(self, market: str) -> list[Rule]:
        return [r for r in self.rules.rules if self._state(market, r).raised]

    def _state(self, market: str, rule: Rule) -> _RuleState:
        return self._rules.setdefault((market, rule.id), _RuleState())

    def signals(self, market: str, values: Values, now: int) -> set[str]:
        """The signals up now."""
        up: set[str] = set()
        for name, sig in self.rules.signals.items():
            held = self._signals.setdefault((market, name), _Held()).update(sig.condition.holds(values.get(
                sig.condition.metric)), now)
            if held >= sig.for_ms:
                up.add(name)
        return up

    def _holds(self, rule: Rule, values: Values, up: set[str]) -> bool:
        if rule.mode == "signals":
            return sum(1 for s in rule.signals if s in up) >= rule.signals_at_least
        checks = (c.holds(values.get(c.metric)) for c in rule.conditions)
        return all(checks) if rule.mode == "all" else any(checks)

    def _measured(self, rule: Rule, values: Values, up: set[str]) -> dict[str, str]:
        conds: list[Condition] = list(rule.conditions)
        if rule.mode == "signals":
            conds = [self.rules.signals[s].condition for s in rule.signals]
        out = {c.metric: _fmt(values.get(c.metric)) for c in conds}
        if rule.mode == "signals":
            out["signals_up"] = ",".join(sorted(s for s in rule.signals if s in up)) or "none"
        return out

    def evaluate(self, market: str, values: Values, now: int) -> list[Transition]:
        """Fold one set of measurements (``values`` may omit what was not measured this round: a
        rule over a missing measurement does not hold)."""
        up = self.signals(market, values, now)
        out: list[Transition] = []
        for rule in self.rules.rules:
            st = self._state(market, rule)
            holds = self._holds(rule, values, up)
            held = st.held.update(holds, now)
            before = self.level(market)
            if not st.raised and holds and held >= rule.for_ms:
                st.raised, st.raised_at, st.false_since = True, now, None
                out.append(Transition(market, rule, "raise", now, before, self.level(market),
                                      self._measured(rule, values, up)))
            elif st.raised and holds:
                st.false_since = None
            elif st.raised:
                if st.false_since is None:
                    st.false_since = now
                if now - st.false_since >= rule.clear_after_ms:
                    st.raised, st.false_since = False, None
                    out.append(Transition(market, rule, "clear", now, before, self.level(market),
                                          self._measured(rule, values, up)))
        return out

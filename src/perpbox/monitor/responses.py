"""From a rule's transition to the ``perpDeploy`` action that answers it, and back.

* ``cut_oi_caps``: the market's OI cap times the rule's ``factor`` (uncapped: the open interest
  times it);
* ``freeze_oi``: the cap set to the current open interest, so it cannot grow (never raised);
* ``step_down_margin_table``: the market moved to the table with the next lower max leverage among
  the dex's tables (``meta.marginTables``), or when there is none to the venue's flat table at half
  the leverage (ids 1-50 are the flat tables, one tier at that leverage);
* ``set_funding_multiplier``: ``setFundingMultipliers`` to the rule's ``multiplier``, back to 1 when
  it clears (the venue publishes no multiplier to read back, so 1 — the default — is what is
  restored);
* ``halt``: ``haltTrading`` (never undone here: a person resumes the market);
* ``alert``: no action.

Caps obey the venue's floor, ``max($1,000,000, ½ of the open interest)`` (Hyperliquid's
deployer-actions docs), rounded up to whole dollars.  When a rule clears, the parameter it changed
goes back to what it was before the first rule touched it — once no other raised rule still holds
it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from perpbox.monitor.decide import Transition

CAP_FLOOR_USD = 1_000_000


@dataclass
class MarketParams:
    """What the monitor last read of a market's levers."""

    coin: str
    oi_cap_usd: int = 0  # 0: uncapped
    oi_usd: Decimal = Decimal(0)
    margin_table_id: int | None = None
    tables: dict[int, int] = field(default_factory=dict)  # the dex's margin tables: id -> max leverage


@dataclass
class _Held:
    original: Any
    rules: set[str]


def cap_floor(oi_usd: Decimal) -> int:
    return max(CAP_FLOOR_USD, int((oi_usd / 2).to_integral_value(rounding=ROUND_CEILING)))


def _caps(coin: str, cap: int) -> dict[str, Any]:
    return {"type": "perpDeploy", "setOpenInterestCaps": [[coin, cap]]}


def _table(coin: str, table_id: int) -> dict[str, Any]:
    return {"type": "perpDeploy", "setMarginTableIds": [[coin, table_id]]}


def _funding(coin: str, multiplier: Decimal) -> dict[str, Any]:
    return {"type": "perpDeploy", "setFundingMultipliers": [[coin, format(multiplier.normalize(), "f")]]}


class Levers:
    def __init__(self) -> None:
        self._held: dict[tuple[str, str], _Held] = {}  # (coin, "cap" | "table") -> original value

    def _hold(self, coin: str, lever: str, original: Any, rule: str) -> None:
        held = self._held.setdefault((coin, lever), _Held(original, set()))
        held.rules.add(rule)

    def respond(self, t: Transition, p: MarketParams) -> tuple[dict[str, Any] | None, str]:
        """The action answering ``t`` (None: nothing to send) and a line saying what it does."""
        if t.kind == "clear":
            return self._undo(t, p)
        response, coin = t.rule.response, p.coin
        if response == "alert":
            return None, "alert only"
        if response == "halt":
            return {"type": "perpDeploy", "haltTrading": {"coin": coin, "isHalted": True}}, "halt trading"
        if response in ("cut_oi_caps", "freeze_oi"):
            base = Decimal(p.oi_cap_usd) if p.oi_cap_usd else p.oi_usd
            if response == "cut_oi_caps":
                target = int((base * t.rule.factor).to_integral_value(rounding=ROUND_FLOOR))
            else:
                target = int(p.oi_usd.to_integral_value(rounding=ROUND_CEILING))
            cap = max(target, cap_floor(p.oi_usd))
            if p.oi_cap_usd and cap >= p.oi_cap_usd:
                return None, f"OI cap already {p.oi_cap_usd} (at or under {cap}, the venue's floor)"
            self._hold(coin, "cap", p.oi_cap_usd, t.rule.id)
            return _caps(coin, cap), f"OI cap {p.oi_cap_usd or 'none'} → {cap}"
        if response == "set_funding_multiplier":
            self._hold(coin, "funding", Decimal(1), t.rule.id)
            return _funding(coin, t.rule.multiplier), f"funding multiplier → {t.rule.multiplier}"
        # step_down_margin_table
        current = p.margin_table_id
        if current is None or current not in p.tables:
            return None, "margin table unknown: no step down"
        lower = [(lev, tid) for tid, lev in p.tables.items() if lev < p.tables[current]]
        if not lower and p.tables[current] > 1:  # none listed: the flat table at half the leverage
            lower = [(p.tables[current] // 2, p.tables[current] // 2)]
        if not lower:
            return None, f"table {current} is already at 1x"
        lev, tid = max(lower)
        self._hold(coin, "table", current, t.rule.id)
        return _table(coin, tid), f"margin table {current} ({p.tables[current]}x) → {tid} ({lev}x)"

    def _undo(self, t: Transition, p: MarketParams) -> tuple[dict[str, Any] | None, str]:
        for lever in ("cap", "table", "funding"):
            held = self._held.get((p.coin, lever))
            if held is None or t.rule.id not in held.rules:
                continue
            held.rules.discard(t.rule.id)
            if held.rules:
                return None, f"kept: {', '.join(sorted(held.rules))} still raised"
            del self._held[(p.coin, lever)]
            if lever == "cap":
                return _caps(p.coin, held.original), f"OI cap restored to {held.original or 'none (0)'}"
            if lever == "funding":
                return _funding(p.coin, held.original), f"funding multiplier restored to {held.original}"
            return _table(p.coin, held.original), f"margin table restored to {held.original}"
        return None, "nothing to undo"

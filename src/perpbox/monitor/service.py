"""The monitor's loop: read the channels at their cadences, fold them into the decider, answer each
transition with a lever (sent in ``auto`` mode, proposed in ``alert`` and ``dry-run``), and write
every decision to the audit log, the alerts, the metrics and the dashboard's state.

Modes: ``auto`` signs and sends the actions (the deployer's key); ``alert`` and ``dry-run`` send
nothing and say what they would send (``alert`` also alerts; ``dry-run`` only records).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from perpbox.deployer.signer import ActionSender, VenueClient, accepted
from perpbox.monitor import channels
from perpbox.monitor.alerts import Alert, Alerter
from perpbox.monitor.channels import DepthHistory, FeedStatus, Position, Values, dec
from perpbox.monitor.decide import Decider, Transition
from perpbox.monitor.responses import Levers, MarketParams
from perpbox.monitor.rules import Rules

log = logging.getLogger("perpbox.monitor")
MODES = ("auto", "alert", "dry-run")
MAX_TRACKED_USERS = 100  # clearinghouseState reads per positions round (weight 2 each on the venue)
DECISIONS_KEPT = 50


class AttestTail:
    """Follows a relay's attestation log (``records.jsonl``) as it grows: per coin, the last
    accepted update, the external price and since when the step clamp has held every update."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / "records.jsonl"
        self.offset = 0
        self.records = 0  # records read so far
        self.status: dict[str, FeedStatus] = {}

    def read(self) -> dict[str, FeedStatus]:
        if not self.path.exists():
            return self.status
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            self.records += 1
            try:
                rec = orjson.loads(line)
                self._fold(rec)
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                log.warning("attestation log: an unreadable record skipped")
        return self.status

    def _fold(self, rec: dict[str, Any]) -> None:
        ok = rec.get("result") == "ok"
        for a in rec["assets"]:
            old = self.status.get(a["coin"], FeedStatus())
            clamped = any(c.get("clamp") == "step" for c in a.get("clamps", []))
            pinned = (old.pinned_since_ms or rec["time"]) if clamped else None
            self.status[a["coin"]] = FeedStatus(last_ok_ms=rec["time"] if ok else old.last_ok_ms,
                                                external=dec(a.get("external")) if ok else old.external,
                                                pinned_since_ms=pinned)


@dataclass
class MarketView:
    """What the monitor shows of one market (the dashboard's and ``--json``'s data)."""

    coin: str
    values: Values = field(default_factory=dict)
    level: int = 0
    raised: list[str] = field(default_factory=list)
    decisions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=DECISIONS_KEPT))


class MonitorMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        self.value = Gauge("perpbox_monitor_value", "A channel measurement", ["market", "measurement"],
                           registry=self.registry)
        self.level = Gauge("perpbox_monitor_level", "The market's level (0 normal … 3)", ["market"],
                           registry=self.registry)
        self.decisions = Counter("perpbox_monitor_decisions", "Rule transitions", ["market", "rule", "kind"],
                                 registry=self.registry)
        self.actions = Counter("perpbox_monitor_actions", "Actions by result", ["result"], registry=self.registry)


class Monitor:
    def __init__(self, venue: VenueClient, dex: str, rules: Rules, *, mode: str = "alert",
                 sender: ActionSender | None = None, alerter: Alerter | None = None, audit_path: Path | None = None,
                 attest_dir: Path | None = None, clock: Callable[[], int] | None = None,
                 metrics: MonitorMetrics | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode: one of {', '.join(MODES)}")
        if mode == "auto" and sender is None:
            raise ValueError("auto mode needs the deployer's key (--key-file)")
        self.venue, self.dex, self.rules, self.mode = venue, dex, rules, mode
        self.sender, self.alerter = sender, alerter
        self.audit_path = audit_path
        self.attest = AttestTail(attest_dir) if attest_dir is not None else None
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.metrics = metrics or MonitorMetrics()
        self.decider = Decider(rules)
        self.levers = Levers()
        self.markets: dict[str, MarketView] = {}
        self.params: dict[str, MarketParams] = {}
        self.ctxs: dict[str, dict[str, Any]] = {}
        self.depth: dict[str, DepthHistory] = {}
        self.oracle_seen: dict[str, tuple[Decimal | None, int]] = {}  # coin -> (oraclePx, when it last changed)
        self.users: dict[str, deque[str]] = {}  # coin -> accounts seen trading, newest last
        self.next_book = self.next_positions = 0
        self.last_round_ms = 0  # when the last round read the venue (what state() reports)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []  # the dashboard's pushes

    # -- reads ----------------------------------------------------------------------------------------
    async def _meta(self) -> None:
        meta, ctxs = await self.venue.info({"type": "metaAndAssetCtxs", "dex": self.dex})
        tables = {}
        for entry in meta.get("marginTables", []):
            tid, table = entry
            tables[int(tid)] = max((int(t["maxLeverage"]) for t in table.get("marginTiers", [])), default=0)
        for u, ctx in zip(meta["universe"], ctxs):
            coin = u["name"]
            self.markets.setdefault(coin, MarketView(coin))
            p = self.params.setdefault(coin, MarketParams(coin))
            p.margin_table_id, p.tables = u.get("marginTableId"), tables
            self.ctxs[coin] = ctx
            oi, px = dec(ctx.get("openInterest")), dec(ctx.get("oraclePx"))
            p.oi_usd = oi * px if oi is not None and px is not None else Decimal(0)

    def _feed(self, coin: str, now: int) -> FeedStatus:
        if self.attest is not None:
            return self.attest.status.get(coin, FeedStatus())
        px = dec(self.ctxs[coin].get("oraclePx"))
        last = self.oracle_seen.get(coin)
        if last is None or last[0] != px:
            self.oracle_seen[coin] = (px, now)
        return FeedStatus(last_ok_ms=self.oracle_seen[coin][1], estimated=True)

    async def _price(self, now: int) -> None:
        await self._meta()
        if self.attest is not None:
            self.attest.read()
        for coin, view in self.markets.items():
            view.values.update(channels.price_values(now, self.ctxs[coin], self._feed(coin, now)))

    async def _book(self, now: int) -> None:
        for coin, view in self.markets.items():
            book = await self.venue.info({"type": "l2Book", "coin": coin})
            trades = await self.venue.info({"type": "recentTrades", "coin": coin})
            trades = trades if isinstance(trades, list) else []
            seen = self.users.setdefault(coin, deque(maxlen=MAX_TRACKED_USERS))
            for t in trades:
                for u in t.get("users", []) if isinstance(t, dict) else []:
                    if isinstance(u, str) and u not in seen:
                        seen.append(u)
            bids, asks = channels.book_levels(book)
            view.values.update(channels.book_values(now, bids, asks, trades,
                                                    self.depth.setdefault(coin, DepthHistory())))

    async def _positions(self, now: int) -> None:
        limits = await self.venue.info({"type": "perpDexLimits", "dex": self.dex})
        caps = {c: dec(v) for c, v in (limits or {}).get("coinToOiCap", [])}
        states: dict[str, Any] = {}
        for u in {u for seen in self.users.values() for u in seen}:
            states[u] = await self.venue.info({"type": "clearinghouseState", "user": u, "dex": self.dex})
        for coin, view in self.markets.items():
            cap = caps.get(coin)
            self.params[coin].oi_cap_usd = int(cap) if cap else 0
            positions: list[Position] = [p for u in self.users.get(coin, ()) for p in
                                         channels.parse_positions(u, states.get(u), coin)]
            view.values.update(channels.position_values(self.ctxs[coin], cap, positions, self.rules.stress_move))

    # -- one round ------------------------------------------------------------------------------------
    async def step(self) -> list[dict[str, Any]]:
        """Read what is due, decide, act; the decisions made."""
        now = self.last_round_ms = self.clock()
        await self._price(now)
        if now >= self.next_book:
            await self._book(now)
            self.next_book = now + self.rules.book_ms
        if now >= self.next_positions:
            await self._positions(now)
            self.next_positions = now + self.rules.positions_ms
        decisions = []
        for coin, view in self.markets.items():
            for t in self.decider.evaluate(coin, view.values, now):
                decisions.append(await self._answer(t, view))
            view.level = self.decider.level(coin)
            view.raised = [r.id for r in self.decider.raised(coin)]
            self._observe(view)
        state = self.state()
        for listener in self.listeners:
            listener(state)
        return decisions

    async def _answer(self, t: Transition, view: MarketView) -> dict[str, Any]:
        p = self.params[t.market]
        old = {"oi_cap_usd": p.oi_cap_usd, "margin_table_id": p.margin_table_id}
        action, change = self.levers.respond(t, p)
        answer = None
        if action is not None and self.mode == "auto":
            assert self.sender is not None
            sent = await self.sender.send(action, t.time_ms)
            answer = sent["answer"]
            self.metrics.actions.labels("ok" if accepted(answer) else "refused").inc()
        record = {"time": t.time_ms, "market": t.market, "rule": t.rule.id, "kind": t.kind,
                  "level": [t.level_before, t.level_after], "condition": t.rule.describe(), "measured": t.measured,
                  "old": old, "change": change, "action": action, "mode": self.mode,
                  "sent": answer is not None, "answer": answer}
        view.decisions.appendleft(record)
        self.metrics.decisions.labels(t.market, t.rule.id, t.kind).inc()
        if self.audit_path is not None:
            with open(self.audit_path, "ab") as f:
                f.write(orjson.dumps(record) + b"\n")
        log.warning("%s %s %s: level %d → %d; %s (%s)", t.market, t.rule.id, t.kind, t.level_before, t.level_after,
                    change, "sent" if answer is not None else "proposed" if action else "no action")
        if self.alerter is not None and self.mode != "dry-run":
            await self.alerter.send(Alert(time_ms=t.time_ms, market=t.market, rule=t.rule.id, level=t.level_after,
                                          previous_level=t.level_before, measured=t.measured,
                                          condition=t.rule.describe() + ("" if t.kind == "raise" else " (cleared)"),
                                          action=action, mode=self.mode, answer=answer))
        return record

    def _observe(self, view: MarketView) -> None:
        self.metrics.level.labels(view.coin).set(view.level)
        for name, v in view.values.items():
            if v is not None:
                self.metrics.value.labels(view.coin, name).set(float(v))
            else:  # no longer measurable: no stale value on /metrics
                with contextlib.suppress(KeyError):
                    self.metrics.value.remove(view.coin, name)

    def state(self) -> dict[str, Any]:
        """The monitor's state as JSON-ready data (``--once --json``, the dashboard)."""
        def fmt(v: Decimal | None) -> str | None:
            return None if v is None else format(v.quantize(Decimal("0.0001")).normalize(), "f")

        thresholds: dict[str, list[str]] = {}
        for r in self.rules.rules:
            conds = r.conditions or tuple(self.rules.signals[s].condition for s in r.signals)
            for c in conds:
                thresholds.setdefault(c.metric, []).append(f"{c.op} {c.threshold} ({r.id}, level {r.level})")
        return {"dex": self.dex, "mode": self.mode, "time": self.last_round_ms, "thresholds": thresholds,
                "markets": [{"coin": v.coin, "level": v.level, "raised": v.raised,
                             "values": {k: fmt(x) for k, x in sorted(v.values.items())},
                             "decisions": list(v.decisions)} for v in self.markets.values()]}

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.rules.price_ms / 1000
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.step()
            except Exception as e:  # a venue that does not answer: said, and tried again next round
                log.warning("monitor round failed: %s: %s", type(e).__name__, e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, interval - (time.monotonic() - started)))

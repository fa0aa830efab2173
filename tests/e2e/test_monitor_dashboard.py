"""The monitor's dashboard (``perpbox monitor --dashboard-port``) in a real browser: a real ``Monitor``
with the default rules in alert mode over a scripted in-memory venue (dex ``xyz``, one market
``xyz:SILVER``) and a clock the test sets; the dashboard served by :func:`serve_dashboard` on a loop
in a background thread, where the test runs the monitor's rounds; Debian's chromium, headless, reads
the page as the rounds are pushed to it over Server-Sent Events.

What the default rules imply for the scenario (``perpbox/data/monitor-rules.toml``):

* calm (markPx = midPx, the oracle moving every round, a tight deep book, OI at 3% of its cap, one
  small position): no rule holds — level 0;
* markPx 2% from midPx with no attestation log (``oracle_external_dev_pct`` not measured, so the
  signals A and C never hold): signal B (``mark_mid_dev_pct > 1``) is up from the first such round,
  D (B for 5 s) from the round 6 s later.  Two signals up raise ``depeg_level1`` (level 1, response
  ``freeze_oi``) on that second round; ``depeg_level2`` needs three and ``depeg_halt`` needs the two
  for 30 s, so neither raises.  ``freeze_oi`` sets the cap to the open interest within the venue's
  floor: OI 10,000 × ~30 = ~$300k, under the $1M floor, so "OI cap 10000000 → 1000000" — proposed,
  not sent (alert mode).

Every wait is a Playwright polling wait with a generous timeout; nothing here depends on timing and
nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Coroutine, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from perpbox.monitor.dashboard import dashboard_state, serve_dashboard
from perpbox.monitor.rules import load_rules
from perpbox.monitor.service import Monitor

_spec = importlib.util.spec_from_file_location("perpbox_e2e_conftest", Path(__file__).with_name("conftest.py"))
assert _spec is not None and _spec.loader is not None
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)
CHROMIUM: Path = _conftest.CHROMIUM
CHROMIUM_ARGS: list[str] = _conftest.CHROMIUM_ARGS
free_port = _conftest._free_port

COIN = "xyz:SILVER"
T0 = 1_760_000_000_000  # the monitor's clock at the first round (ms)
ROUND_MS = 6_000
WAIT_MS = 30_000
USER = "0x" + "ab" * 20
T = TypeVar("T")


class Clock:
    """The monitor's clock, set by the test.  (``Monitor.state()`` reads the clock too, so an iterator
    of times would be consumed by every state the dashboard serves.)"""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class ScriptedVenue:
    """What ``Monitor`` reads, for dex ``xyz``: one market whose mark and mid the test sets; the
    oracle moves a little every round (a live feed, so ``feed_silent_s`` stays 0)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.oracle = Decimal("30.000")
        self.mark = "30"
        self.mid = "30"
        self.exchanged: list[dict[str, Any]] = []
        self.asked: list[str] = []

    def tick(self) -> None:
        self.oracle += Decimal("0.001")

    async def info(self, body: dict[str, Any]) -> Any:
        kind = body["type"]
        self.asked.append(kind)
        if kind == "metaAndAssetCtxs":
            assert body.get("dex") == "xyz"
            tiers = [[20, {"description": "20x", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": 20}]}],
                     [10, {"description": "10x", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": 10}]}]]
            meta = {"universe": [{"name": COIN, "szDecimals": 2, "maxLeverage": 20, "marginTableId": 20}],
                    "marginTables": tiers, "collateralToken": 0}
            ctx = {"oraclePx": str(self.oracle), "markPx": self.mark, "midPx": self.mid, "openInterest": "10000",
                   "dayNtlVlm": "2000000", "funding": "0.00001", "premium": "0", "prevDayPx": "30",
                   "impactPxs": ["29.99", "30.01"]}
            return [meta, [ctx]]
        if kind == "l2Book":
            assert body["coin"] == COIN
            bids = [{"px": "29.99", "sz": "1000", "n": 3}, {"px": "29.95", "sz": "2000", "n": 5}]
            asks = [{"px": "30.01", "sz": "1000", "n": 3}, {"px": "30.05", "sz": "2000", "n": 5}]
            return {"coin": COIN, "time": self.clock(), "levels": [bids, asks]}
        if kind == "recentTrades":
            return [{"coin": COIN, "side": "B", "px": "30", "sz": "10", "time": self.clock() - 1_000, "tid": 1,
                     "hash": "0x" + "00" * 32, "users": [USER, "0x" + "cd" * 20]}]
        if kind == "perpDexLimits":
            assert body.get("dex") == "xyz"
            return {"totalOiCap": "100000000", "oiSzCapPerPerp": "1000000", "maxTransferNtl": "1000000",
                    "coinToOiCap": [[COIN, "10000000"]]}
        if kind == "clearinghouseState":
            if body["user"] != USER:
                return {"assetPositions": [], "marginSummary": {}, "withdrawable": "0"}
            pos = {"coin": COIN, "szi": "100", "entryPx": "30", "unrealizedPnl": "0", "marginUsed": "300",
                   "positionValue": "3000", "leverage": {"type": "cross", "value": 10}}
            return {"assetPositions": [{"type": "oneWay", "position": pos}], "marginSummary": {}, "withdrawable": "0"}
        raise AssertionError(f"the monitor asked for {body!r}")

    async def exchange(self, payload: dict[str, Any]) -> Any:
        self.exchanged.append(payload)
        return {"status": "ok", "response": {"type": "default"}}


class Harness:
    """A loop in a background thread: the dashboard served on it, the monitor's rounds run on it."""

    def __init__(self, monitor: Monitor, clock: Clock, venue: ScriptedVenue) -> None:
        self.monitor, self.clock, self.venue = monitor, clock, venue
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="dashboard-loop", daemon=True)
        self.thread.start()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = self.call(serve_dashboard(monitor, self.port))

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def round(self, at_ms: int, *, mark: str | None = None, mid: str | None = None) -> list[dict[str, Any]]:
        self.clock.now = at_ms
        if mark is not None:
            self.venue.mark = mark
        if mid is not None:
            self.venue.mid = mid
        self.venue.tick()
        return self.call(self.monitor.step())

    def listeners(self) -> int:
        async def count() -> int:
            return len(self.monitor.listeners)
        return self.call(count())

    def close(self) -> None:
        self.server.should_exit = True

        async def stopped() -> None:
            while any(t.get_name().startswith("perpbox-dashboard") for t in asyncio.all_tasks()
                      if t is not asyncio.current_task()):
                await asyncio.sleep(0.05)

        try:
            self.call(stopped(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            self.loop.close()


@pytest.fixture
def harness() -> Iterator[Harness]:
    clock = Clock(T0)
    venue = ScriptedVenue(clock)
    monitor = Monitor(venue, "xyz", load_rules(), mode="alert", clock=clock)
    h = Harness(monitor, clock, venue)
    try:
        yield h
    finally:
        h.close()




def check_rules_imply_scenario() -> None:
    """The numbers the scenario's expectations are derived from (module docstring)."""
    rules = load_rules()
    sig = rules.signals
    assert str(sig["B"].condition) == "mark_mid_dev_pct > 1" and sig["B"].for_ms == 0
    assert str(sig["D"].condition) == "mark_mid_dev_pct > 1" and 0 < sig["D"].for_ms <= ROUND_MS
    assert {sig["A"].condition.metric, sig["C"].condition.metric} == {"oracle_external_dev_pct"}
    by_id = {r.id: r for r in rules.rules}
    l1, l2, halt = by_id["depeg_level1"], by_id["depeg_level2"], by_id["depeg_halt"]
    assert (l1.signals_at_least, l1.level, l1.response, l1.for_ms) == (2, 1, "freeze_oi", 0)
    assert l2.signals_at_least == 3
    assert halt.signals_at_least == 2 and halt.for_ms > 2 * ROUND_MS


def drive_depeg(h: Harness) -> int:
    """markPx 2% from midPx, 6 s a round, until a rule raises; the number of de-peg rounds it took."""
    for n in range(1, 6):
        decisions = h.round(T0 + n * ROUND_MS, mark="30.6", mid="30")
        market = h.call(_state(h.monitor))["markets"][0]
        assert market["values"]["mark_mid_dev_pct"] == "2"
        assert market["values"]["oracle_external_dev_pct"] is None
        if decisions:
            assert [(d["rule"], d["kind"], d["level"]) for d in decisions] == [("depeg_level1", "raise", [0, 1])]
            d = decisions[0]
            assert d["measured"]["signals_up"] == "B,D"
            assert d["change"] == "OI cap 10000000 → 1000000"
            assert d["action"] == {"type": "perpDeploy", "setOpenInterestCaps": [[COIN, 1_000_000]]}
            assert d["sent"] is False and d["answer"] is None and d["mode"] == "alert"
            assert d["time"] == T0 + n * ROUND_MS
            return n
        assert market["level"] == 0 and market["raised"] == []
    raise AssertionError("no rule raised in 5 de-peg rounds")


async def _state(monitor: Monitor) -> dict[str, Any]:
    return dashboard_state(monitor)


def test_monitor_dashboard(harness: Harness, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    check_rules_imply_scenario()
    h = harness
    assert h.round(T0) == []  # calm
    calm = h.call(_state(h.monitor))
    assert [(m["coin"], m["level"], m["raised"]) for m in calm["markets"]] == [(COIN, 0, [])]
    assert calm["attestation"] == {"dir": None, "records_read": 0, "checkpoint": None, "feeds": {}}
    values = calm["markets"][0]["values"]
    assert values["feed_silent_s"] == "0" and values["mark_mid_dev_pct"] == "0"
    assert values["oi_cap_use_pct"] is not None and values["top1_share_pct"] == "1"
    assert calm["markets"][0]["over"] == {}

    served = httpx.get(h.url + "/state", timeout=10).json()
    assert served["markets"][0]["coin"] == COIN and served["dex"] == "xyz" and served["mode"] == "alert"
    js = httpx.get(h.url + "/plotly.js", timeout=10)
    assert js.status_code == 200 and b"plotly" in js.content[:2000].lower()

    context = browser.new_context(viewport={"width": 1440, "height": 1200})
    page = context.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(h.url + "/")
        card = page.locator(f'section.market[data-coin="{COIN}"]')
        expect(card.locator(".level")).to_have_attribute("data-level", "0", timeout=WAIT_MS)
        expect(card.locator(".level")).to_contain_text("level 0", timeout=WAIT_MS)
        expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        expect(card.locator(".raised .rule")).to_have_count(0)
        expect(card.locator(".decisions tr.decision")).to_have_count(0)
        expect(page.locator("#attestation")).to_contain_text("none", timeout=WAIT_MS)
        expect(card.locator(".attest")).to_contain_text("estimated", timeout=WAIT_MS)
        mark_cell = card.locator('table[data-channel="price"] tr[data-measurement="mark_mid_dev_pct"] td.value')
        expect(mark_cell).to_have_text("0", timeout=WAIT_MS)
        expect(mark_cell).not_to_have_class("over")
        for channel, measurement in (("price", "feed_silent_s"), ("book", "depth_1pct_usd"),
                                     ("book", "spread_pct"), ("positions", "oi_cap_use_pct"),
                                     ("positions", "top1_share_pct")):
            cell = f'table[data-channel="{channel}"] tr[data-measurement="{measurement}"]'
            expect(card.locator(cell)).to_have_count(1)
        page.wait_for_function(f"() => state.updates >= 1 && state.history.get({COIN!r}).t.length >= 1",
                               timeout=WAIT_MS)
        updates = int(page.locator("#conn").get_attribute("data-updates") or 0)

        rounds = drive_depeg(h)
        assert rounds == 2  # B up on the first de-peg round, D 6 s (≥ its 5 s) later: two signals
        assert h.venue.exchanged == []  # alert mode: proposed, never sent

        expect(card.locator(".level")).to_have_attribute("data-level", "1", timeout=WAIT_MS)
        expect(card.locator(".level")).to_contain_text("level 1", timeout=WAIT_MS)
        expect(card).to_have_attribute("data-level", "1")
        expect(card.locator(".raised .rule")).to_have_text(["depeg_level1"])
        row = card.locator('.decisions tr.decision[data-rule="depeg_level1"]')
        expect(row).to_have_count(1, timeout=WAIT_MS)
        expect(row).to_have_attribute("data-kind", "raise")
        expect(row.locator(".levels")).to_have_text("0 → 1")
        expect(row.locator(".change")).to_have_text("OI cap 10000000 → 1000000")
        expect(row.locator(".action")).to_contain_text("setOpenInterestCaps")
        expect(row.locator(".result")).to_have_text("proposed")
        expect(row.locator(".answer")).to_have_text("—")

        expect(mark_cell).to_have_text("2")
        expect(mark_cell).to_have_class("value num over")
        assert set((mark_cell.get_attribute("data-over") or "").split()) == {"depeg_level1", "depeg_level2",
                                                                             "depeg_halt"}
        feed_cell = card.locator('tr[data-measurement="feed_silent_s"] td.value')
        expect(feed_cell).not_to_have_class("over")

        chart = card.locator('.chart[data-measurement="mark_mid_dev_pct"]')
        expect(chart).to_have_class("chart js-plotly-plot", timeout=WAIT_MS)
        expect(card.locator(".js-plotly-plot")).to_have_count(4)
        page.wait_for_function(
            """([coin, n]) => { const d = document.querySelector(`section.market[data-coin="${coin}"]`
                                      + ' .chart[data-measurement="mark_mid_dev_pct"]');
                               return d.data && d.data[0].y.length >= n && d.data[0].y[d.data[0].y.length - 1] === 2
                                      && d.layout.shapes.length === 1 && d.layout.shapes[0].y0 === 1; }""",
            arg=[COIN, 1 + rounds], timeout=WAIT_MS)
        assert int(page.locator("#conn").get_attribute("data-updates") or 0) >= updates + rounds
        page.screenshot(path=str(tmp_path / "monitor-dashboard.png"), full_page=True)
        assert errors == [], errors
        assert requests and all(u.startswith(h.url + "/") for u in requests), requests
    finally:
        context.close()

    # The page's stream closed: its listener is removed from the monitor.
    page_gone = False
    for _ in range(300):
        if h.listeners() == 0:
            page_gone = True
            break
        h.call(asyncio.sleep(0.1))
    assert page_gone, "the dashboard kept a closed client's listener"


def test_dashboard_state_attestation(tmp_path: Path) -> None:
    """With the relay's attestation log: the records read, each coin's last accepted update and the
    latest checkpoint's tree size."""
    attest = tmp_path / "attest"
    attest.mkdir()
    records = [{"time": T0 - 2_000, "result": "ok", "assets": [{"coin": COIN, "external": "30", "clamps": []}]},
               {"time": T0 - 1_000, "result": "ok", "assets": [{"coin": COIN, "external": "30.01", "clamps": []}]},
               {"time": T0 - 500, "result": "refused", "assets": [{"coin": COIN, "external": "31", "clamps": []}]}]
    import json

    (attest / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    clock = Clock(T0)
    monitor = Monitor(ScriptedVenue(clock), "xyz", load_rules(), mode="alert", attest_dir=attest, clock=clock)
    before = dashboard_state(monitor)["attestation"]
    assert before == {"dir": str(attest), "records_read": 0, "checkpoint": {"exists": False, "size": None},
                      "feeds": {}}
    asyncio.run(monitor.step())
    (attest / "checkpoint").write_text("perpbox/xyz\n2\n" + "A" * 43 + "=\n\n— perpbox/xyz sig\n")
    att = dashboard_state(monitor)["attestation"]
    assert att["records_read"] == 3
    assert att["checkpoint"] == {"exists": True, "size": 2}
    assert att["feeds"] == {COIN: {"last_ok_ms": T0 - 1_000, "external": "30.01", "pinned_since_ms": None}}
    values = monitor.state()["markets"][0]["values"]
    assert values["feed_silent_s"] == "1"
    assert values["clamp_pinned_s"] == "0"

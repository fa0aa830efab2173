"""The Grafana dashboard over the monitor's metrics (``perpbox/data/grafana-monitor.json``): every
query names a metric the code registers, and the measurement panels' threshold steps are the
default rules' numbers."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from perpbox.deployer.relay import RelayMetrics
from perpbox.monitor.service import MonitorMetrics

DATA = Path(__file__).resolve().parents[2] / "src" / "perpbox" / "data"
DASHBOARD = DATA / "grafana-monitor.json"
RULES = DATA / "monitor-rules.toml"
METRIC = re.compile(r"\bperpbox_[a-z0-9_]+\b")
MEASUREMENT = re.compile(r'measurement\s*=\s*"([a-z0-9_]+)"')
CONDITION = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(?:>=|<=|>|<)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$")
# The panels the dashboard must have, by the measurement they plot.
VALUE_PANELS = ("feed_silent_s", "oracle_external_dev_pct", "mark_mid_dev_pct", "spread_pct", "depth_1pct_usd",
                "oi_cap_use_pct", "top_position_loss_margin_pct")


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])  # a collapsed row keeps its panels inside it


def exprs(panel: dict[str, Any]) -> list[str]:
    return [t["expr"] for t in panel.get("targets", []) if "expr" in t]


def registered() -> set[str]:
    """Every metric name the monitor and the relay expose, as Prometheus scrapes them (families and
    samples: a counter ``x`` is scraped as ``x_total``)."""
    names: set[str] = set()
    monitor, relay = MonitorMetrics(), RelayMetrics()
    monitor.decisions.labels("xyz:SILVER", "r", "raise").inc()
    monitor.actions.labels("ok").inc()
    monitor.value.labels("xyz:SILVER", "spread_pct").set(0)
    monitor.level.labels("xyz:SILVER").set(0)
    relay.updates.labels("ok").inc()
    relay.level.labels("xyz:SILVER").set(0)
    relay.clamped.labels("xyz:SILVER", "step").set(0)
    relay.live.labels("xyz:SILVER").set(1)
    relay.oracle.labels("xyz:SILVER").set(30)
    for registry in (monitor.registry, relay.registry):
        for family in registry.collect():
            names.add(family.name)
            names.update(s.name for s in family.samples)
    return names


def rule_thresholds() -> dict[str, set[Decimal]]:
    """Per measurement, the thresholds of the default rules file (rules and signals)."""
    data = tomllib.loads(RULES.read_text())
    conditions: list[str] = [s["when"] for s in data.get("signal", {}).values()]
    for rule in data["rule"]:
        if "when" in rule:
            conditions.append(rule["when"])
        for key in ("all", "any"):
            conditions.extend(rule.get(key, []))
    out: dict[str, set[Decimal]] = {}
    for text in conditions:
        m = CONDITION.match(text)
        assert m is not None, text
        out.setdefault(m.group(1), set()).add(Decimal(m.group(2)))
    return out


def steps(panel: dict[str, Any]) -> set[Decimal]:
    th = panel["fieldConfig"]["defaults"]["thresholds"]
    return {Decimal(str(s["value"])) for s in th["steps"] if s.get("value") is not None}


def test_dashboard_shape() -> None:
    dash = load()
    assert dash["schemaVersion"] >= 36
    assert [i["name"] for i in dash["__inputs"] if i["type"] == "datasource"] == ["DS_PROMETHEUS"]
    assert dash["__inputs"][0]["pluginId"] == "prometheus"
    (market,) = [v for v in dash["templating"]["list"] if v["name"] == "market"]
    assert market["type"] == "query"
    assert market["definition"] == "label_values(perpbox_monitor_level, market)"
    assert market["query"]["query"] == "label_values(perpbox_monitor_level, market)"
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "two panels share an id"
    for p in panels(dash):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
        assert exprs(p), f"{p['title']}: no query"
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]


def test_every_query_names_a_registered_metric() -> None:
    known = registered()
    used: set[str] = set()
    for p in panels(load()):
        for e in exprs(p):
            names = set(METRIC.findall(e))
            assert names, f"{p['title']}: {e!r} names no perpbox metric"
            assert names <= known, f"{p['title']}: {sorted(names - known)} not registered (known: {sorted(known)})"
            used |= names
    wanted = {"perpbox_monitor_level", "perpbox_monitor_value", "perpbox_monitor_decisions_total",
              "perpbox_monitor_actions_total", "perpbox_relay_degraded",
              "perpbox_relay_last_success_timestamp_seconds", "perpbox_relay_clamp_binding"}
    assert wanted <= used, f"not shown: {sorted(wanted - used)}"


def test_measurement_panels_use_the_rules_thresholds() -> None:
    rules = rule_thresholds()
    by_measurement: dict[str, list[dict[str, Any]]] = {}
    for p in panels(load()):
        for e in exprs(p):
            for m in MEASUREMENT.findall(e):
                by_measurement.setdefault(m, []).append(p)
    assert set(VALUE_PANELS) <= set(by_measurement), sorted(set(VALUE_PANELS) - set(by_measurement))
    for m, ps in by_measurement.items():
        for p in ps:
            assert steps(p) == rules.get(m, set()), (m, p["title"], steps(p), rules.get(m))
    # The numbers themselves, as the guidance gives them (a changed rules file is seen here too).
    expected = {"feed_silent_s": {"2.5", "10"}, "oracle_external_dev_pct": {"2"}, "mark_mid_dev_pct": {"1"},
                "spread_pct": {"1"}, "depth_1pct_usd": set(), "oi_cap_use_pct": {"90"},
                "top_position_loss_margin_pct": {"80"}}
    for m, want in expected.items():
        assert rules.get(m, set()) == {Decimal(x) for x in want}, m
        assert all(steps(p) == {Decimal(x) for x in want} for p in by_measurement[m]), m


def test_relay_silence_panel_matches_feed_rules() -> None:
    """The relay's own "since the last accepted setOracle" panel carries the feed-silence thresholds."""
    (p,) = [p for p in panels(load()) if any("perpbox_relay_last_success_timestamp_seconds" in e for e in exprs(p))]
    assert steps(p) == rule_thresholds()["feed_silent_s"]

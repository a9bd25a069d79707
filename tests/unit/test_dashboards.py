"""The Grafana dashboard and the alert rules only reference metrics CoinPilot exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from coinpilot.observability import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "config" / "grafana-dashboard.json"
ALERTS = ROOT / "config" / "alerts.yml"
METRIC = re.compile(r"\b(coinpilot_[a-z0-9_]+)")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names() -> set[str]:
    """Every series name Metrics can expose, derived from the registry itself."""
    names = set()
    for family in Metrics().registry.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def _panels(items: list[dict]) -> list[dict]:
    found = []
    for panel in items:
        found.append(panel)
        found += _panels(panel.get("panels", []))
    return found


def dashboard_exprs() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in _panels(data["panels"]) for t in p.get("targets", [])]
    for var in data["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(var["definition"])
    return exprs


def test_dashboard_is_valid_grafana_json() -> None:
    """The dashboard parses, has unique panel ids and every panel has a title and position."""
    data = json.loads(DASHBOARD.read_text())
    panels = _panels(data["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        assert p["title"]
        assert set(p["gridPos"]) == {"h", "w", "x", "y"}
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        if p["type"] != "row":
            assert p["targets"], p["title"]


def test_dashboard_references_only_exported_metrics() -> None:
    """Each metric name in a panel query exists in the Metrics registry."""
    known = exported_names()
    used = {name for expr in dashboard_exprs() for name in METRIC.findall(expr)}
    assert used
    assert used <= known, sorted(used - known)


def test_dashboard_covers_the_operator_views() -> None:
    """Equity/PnL, positions, decision funnel, AI, freshness and errors each have a panel."""
    used = {name for expr in dashboard_exprs() for name in METRIC.findall(expr)}
    for name in (
        "coinpilot_equity_krw",
        "coinpilot_daily_pnl_krw",
        "coinpilot_open_positions",
        "coinpilot_entry_decisions_total",
        "coinpilot_ai_decisions_total",
        "coinpilot_ai_cost_usd_total",
        "coinpilot_ai_latency_seconds_bucket",
        "coinpilot_candle_age_seconds",
        "coinpilot_dependency_errors_total",
    ):
        assert name in used, name


def test_alert_rules_reference_only_exported_metrics() -> None:
    """Each metric name in an alert expression exists in the Metrics registry."""
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    used = {name for r in rules for name in METRIC.findall(r["expr"])}
    assert used <= exported_names(), sorted(used - exported_names())
    assert {r["alert"] for r in rules} >= {
        "CoinPilotDown",
        "CoinPilotCandlesStale",
        "CoinPilotBotLoopStale",
        "CoinPilotTradingHalted",
        "CoinPilotAiGloballyBlocked",
        "CoinPilotNotificationsFailing",
        "CoinPilotLedgerInvariantViolated",
    }

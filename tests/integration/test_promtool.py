"""promtool accepts a real /metrics scrape and the shipped alert rules (skipped without it)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from coinpilot.adapters.cache import Keys
from coinpilot.config import Settings
from tests.integration.ops_support import running_app, touch_every_metric

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "config" / "alerts.yml"
PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,"
    "text/plain;version=1.0.0;escaping=underscores;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (Debian: apt-get install prometheus)",
)


def _promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


async def _scrape(
    make_settings: Callable[..., Settings],
    db_dsn: str,
    redis_url_base: str,
    keys: Keys,
    accept: str | None,
) -> tuple[str, str]:
    env = {"COINPILOT_DATABASE_URL": db_dsn, "COINPILOT_REDIS_URL": redis_url_base}
    async with running_app(make_settings(env=env), keys) as app:
        touch_every_metric(app.deps.metrics)
        headers = {"Accept": accept} if accept else {}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{app.base_url}/metrics", headers=headers) as resp,
        ):
            assert resp.status == 200
            return resp.headers["Content-Type"], await resp.text()


# These two count closed minutes as events (one per symbol minute), not a duration; promtool's
# unit lint reads "minutes" as a time unit and asks for seconds, so exactly its line for each
# is allowed.
MINUTE_COUNTERS = ("coinpilot_minutes_decided_", "coinpilot_minutes_missed_")
MINUTES_AS_TIME = 'use base unit "seconds" instead of "minutes"'


@needs_promtool
@pytest.mark.parametrize("accept", [None, PROMETHEUS_3_ACCEPT], ids=["no-accept", "prom3"])
async def test_promtool_accepts_real_scrape(
    make_settings: Callable[..., Settings],
    db_dsn: str,
    redis_url_base: str,
    keys: Keys,
    accept: str | None,
) -> None:
    """`promtool check metrics` finds no problem in what the running app serves."""
    ctype, body = await _scrape(make_settings, db_dsn, redis_url_base, keys, accept)
    assert ctype.startswith(("text/plain", "application/openmetrics-text"))
    assert "version=" in ctype
    names = {f.name for f in text_string_to_metric_families(body)}
    assert "coinpilot_candle_age_seconds" in names
    out = _promtool("check", "metrics", stdin=body)
    problems = [
        line
        for line in (out.stdout + out.stderr).splitlines()
        if line.strip()
        and not (line.startswith(MINUTE_COUNTERS) and line.endswith(MINUTES_AS_TIME))
    ]
    assert problems == [], out.stdout + out.stderr


@needs_promtool
def test_promtool_accepts_alert_rules() -> None:
    """`promtool check rules` accepts config/alerts.yml."""
    out = _promtool("check", "rules", str(RULES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


RULE_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'coinpilot_candle_age_seconds{{job="coinpilot",instance="a",symbol="KRW-BTC"}}'
        values: '60 120 200 320 380 440 500'
      - series: 'coinpilot_candle_age_seconds{{job="coinpilot",instance="a",symbol="KRW-ETH"}}'
        values: '60x6'
      - series: 'coinpilot_ledger_invariant_violation{{job="coinpilot",instance="a"}}'
        values: '0 0 0 1 1 1 1'
      - series: >-
          coinpilot_loop_last_success_timestamp_seconds{{job="coinpilot",instance="a",service="bot"}}
        values: '0 60 60 60 60 60 60 60 60 60'
      - series: 'up{{job="coinpilot",instance="a"}}'
        values: '1 1 0 0 0 0 0'
      - series: 'coinpilot_minutes_missed_total{{job="coinpilot",instance="a"}}'
        values: '0 0 0 0 1 1 1'
      - series: >-
          coinpilot_upbit_ws_disconnects_total{{job="coinpilot",instance="a",reason="closed"}}
        values: '0 1 2 3 4 4 4'
    alert_rule_test:
      - eval_time: 6m
        alertname: CoinPilotCandlesStale
        exp_alerts:
          - exp_labels: {{severity: warning, job: coinpilot, instance: a, symbol: KRW-BTC}}
      - eval_time: 3m
        alertname: CoinPilotLedgerInvariantViolated
        exp_alerts:
          - exp_labels: {{severity: critical, job: coinpilot, instance: a}}
      - eval_time: 2m
        alertname: CoinPilotLedgerInvariantViolated
        exp_alerts: []
      - eval_time: 8m
        alertname: CoinPilotBotLoopStale
        exp_alerts:
          - exp_labels: {{severity: critical, job: coinpilot, instance: a, service: bot}}
      - eval_time: 3m
        alertname: CoinPilotMinutesMissed
        exp_alerts: []
      - eval_time: 5m
        alertname: CoinPilotMinutesMissed
        exp_alerts:
          - exp_labels: {{severity: critical, job: coinpilot, instance: a}}
      - eval_time: 3m
        alertname: CoinPilotUpbitStreamFlapping
        exp_alerts: []
      - eval_time: 5m
        alertname: CoinPilotUpbitStreamFlapping
        exp_alerts:
          - exp_labels: {{severity: warning}}
      - eval_time: 5m
        alertname: CoinPilotDown
        exp_alerts:
          - exp_labels: {{severity: critical, job: coinpilot, instance: a}}
"""


@needs_promtool
def test_alert_rules_fire_on_synthetic_series(tmp_path: Path) -> None:
    """`promtool test rules`: stale candles, ledger violation, stale loop, dead target, a
    missed minute and a flapping candle stream fire."""
    # promtool compares annotations too; the test is about when rules fire, so drop them.
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    bare = tmp_path / "alerts.yml"
    bare.write_text(yaml.safe_dump(rules))
    spec = tmp_path / "alerts_test.yml"
    spec.write_text(textwrap.dedent(RULE_TESTS.format(rules=bare)))
    out = _promtool("test", "rules", str(spec))
    assert out.returncode == 0, out.stdout + out.stderr

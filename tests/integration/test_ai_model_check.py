"""A retired or unknown model stops the AI step once, loudly, instead of looping on errors.

Start-up asks the Models API about the configured id; at run time a 400/401/403/404 is a
configuration error. Either way: one log line naming the model and its config key, the
coinpilot_ai_misconfigured gauge at 1, one Discord message through the outbox, entries
following ai.on_unavailable, and no cooldown, error streak or global block.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import structlog
import yaml

from coinpilot.services.agent import AgentRunner, build_ai_step
from tests.fakes import anthropic as fk
from tests.integration.ai_support import CANDLE_TS, candidate, deps_for, insert_minutes, minute_rows
from tests.integration.ops_support import free_port
from tests.integration.replay_data import BASE, aligned_rows
from tests.integration.test_promtool import RULES, _promtool, needs_promtool
from tests.replay import Replay

ROOT = Path(__file__).resolve().parents[2]
RETIRED_DAY = date(2026, 12, 1)
BEFORE = date(2026, 11, 29)


@pytest.fixture
async def fake() -> AsyncIterator[fk.FakeAnthropic]:
    server = fk.FakeAnthropic(today=RETIRED_DAY)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def market(pool: Any) -> None:
    for i, sym in enumerate(("KRW-BTC", "KRW-ETH", "KRW-XRP")):
        await insert_minutes(pool, minute_rows(sym, CANDLE_TS + timedelta(minutes=1), 36, seed=i))


@pytest.fixture
async def build(
    make_settings: Callable[..., Any], pool: Any, redis: Any, keys: Any, fake: Any, market: None
) -> AsyncIterator[Callable[..., Any]]:
    made: list[AgentRunner] = []

    async def make(prod: str = "claude-sonnet-4-5", **ai: Any) -> tuple[AgentRunner, Any]:
        env = {"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": fake.base_url,
               "LLM_MODE": "prod"}  # fmt: skip
        settings = make_settings(env=env, ai={"models": {"dev": "claude-haiku-5-5", "prod": prod},
                                              **ai})  # fmt: skip
        deps = deps_for(settings, pool, redis, keys)
        step = build_ai_step(deps)
        assert isinstance(step, AgentRunner)
        made.append(step)
        assert step._check is not None  # started when the step was built, before any review
        await step._check
        return step, deps

    yield make
    for step in made:  # the SDK client's connections to the fake
        await step.aclose()


def gauge(deps: Any) -> float | None:
    return deps.metrics.registry.get_sample_value("coinpilot_ai_misconfigured")


async def system_rows(pool: Any) -> list[Any]:
    return await pool.fetch("SELECT payload FROM outbox WHERE kind = 'system'")


async def test_retired_model_at_start_up_stops_the_ai_step(
    build: Any, fake: Any, pool: Any, redis: Any, keys: Any
) -> None:
    """Sonnet 4.5 after 2026-11-30: one error line naming it and ai.models.prod, gauge 1,
    one system message, every entry rejected without a model request or a guardrail key."""
    with structlog.testing.capture_logs() as logs:
        step, deps = await build()
        verdicts = [await step.review(candidate(s)) for s in ("KRW-BTC", "KRW-ETH", "KRW-XRP")]
    lines = [e for e in logs if e["event"] == "ai_misconfigured"]
    assert len(lines) == 1
    assert (lines[0]["model"], lines[0]["config_key"]) == ("claude-sonnet-4-5", "ai.models.prod")
    assert "retired" in lines[0]["message"]
    assert lines[0]["log_level"] == "error"
    assert gauge(deps) == 1
    assert fake.lookups == ["claude-sonnet-4-5"]
    assert fake.count == 0
    assert [(v.approved, v.reason_code) for v in verdicts] == [(False, "unavailable")] * 3
    assert "ai.models.prod = claude-sonnet-4-5" in verdicts[0].reasoning
    rows = await system_rows(pool)
    assert len(rows) == 1
    assert rows[0]["payload"]["event"] == "ai_misconfigured"
    assert "ai.models.prod" in rows[0]["payload"]["message"]
    assert await redis.get(keys.ai_global_block()) is None
    assert await redis.get(keys.ai_error_streak()) is None
    assert await pool.fetchval("SELECT count(*) FROM agent_decisions") == 0


async def test_rules_only_fallback_approves_on_the_rules(build: Any, fake: Any) -> None:
    """ai.on_unavailable: rules_only lets the rules and the risk manager decide alone."""
    step, _ = await build(on_unavailable="rules_only")
    verdict = await step.review(candidate())
    assert (verdict.approved, verdict.reason_code) == (True, "rules_only")
    assert fake.count == 0


async def test_unknown_model_is_named_too(build: Any, fake: Any) -> None:
    """An id the Models API does not know (404) stops the step the same way."""
    price = {"input_per_mtok": 1, "output_per_mtok": 1, "cache_write_per_mtok": 1,
             "cache_read_per_mtok": 1}  # fmt: skip
    prices = {"claude-sonnet-9": price, "claude-haiku-5-5": price}
    with structlog.testing.capture_logs() as logs:
        step, deps = await build(prod="claude-sonnet-9", prices=prices)
    (line,) = [e for e in logs if e["event"] == "ai_misconfigured"]
    assert line["model"] == "claude-sonnet-9"
    assert "unknown" in line["message"]
    assert gauge(deps) == 1
    assert (await step.review(candidate())).reason_code == "unavailable"


async def test_deprecated_model_warns_and_keeps_working(build: Any, fake: Any) -> None:
    """The day before retirement Sonnet 4.5 is deprecated: a warning with the date, no stop."""
    fake.today = BEFORE
    with structlog.testing.capture_logs() as logs:
        step, deps = await build()
    (line,) = [e for e in logs if e["event"] == "ai_model_deprecated"]
    assert line["retires_at"].startswith("2026-11-30")
    assert gauge(deps) == 0
    assert (await step.review(candidate())).approved


async def test_an_unreachable_models_api_only_warns(
    make_settings: Callable[..., Any], pool: Any, redis: Any, keys: Any
) -> None:
    """A lookup that fails for a transient reason does not stop the step (requests will tell)."""
    env = {"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    deps = deps_for(make_settings(env=env), pool, redis, keys)
    with structlog.testing.capture_logs() as logs:
        step = build_ai_step(deps)
        assert isinstance(step, AgentRunner)
        assert step._check is not None
        await step._check
    await step.aclose()
    (line,) = [e for e in logs if e["event"] == "ai_model_check_failed"]
    assert line["code"] == "connection_error"
    assert step.unavailable is None
    assert gauge(deps) == 0


async def test_retirement_at_run_time_is_a_configuration_error_not_a_streak(
    build: Any, fake: Any, pool: Any, redis: Any, keys: Any
) -> None:
    """Checked fine at start-up, 404 later: one request (no retry), the decision recorded as
    config_error, the step stopped, no error streak and no global block after many entries."""
    fake.today = BEFORE
    step, deps = await build(max_attempts=3)
    fake.today = RETIRED_DAY
    with structlog.testing.capture_logs() as logs:
        first = await step.review(candidate("KRW-BTC"))
        later = [await step.review(candidate(s)) for s in ("KRW-ETH", "KRW-XRP") * 3]
    assert (first.approved, first.reason_code) == (False, "config_error")
    assert "not_found_error" in first.reasoning
    assert len(fake.rejected) == 1  # one request reached the API, none after
    assert {v.reason_code for v in later} == {"unavailable"}
    assert [e["event"] for e in logs].count("ai_misconfigured") == 1
    assert gauge(deps) == 1
    assert len(await system_rows(pool)) == 1
    row = await pool.fetchrow("SELECT reason_code FROM agent_decisions")
    assert row["reason_code"] == "config_error"
    assert await redis.get(keys.ai_error_streak()) is None
    assert await redis.get(keys.ai_global_block()) is None
    assert await redis.ttl(keys.ai_symbol_cooldown("KRW-BTC")) == -2


async def test_a_refused_setting_is_a_configuration_error(build: Any, fake: Any) -> None:
    """effort configured for Haiku 4.5, which takes none: the 400 stops the step at once."""
    step, deps = await build(
        prod="claude-haiku-4-5", model_settings={"claude-haiku-4-5": {"effort": "low"}}
    )
    verdict = await step.review(candidate())
    assert verdict.reason_code == "config_error"
    assert "effort" in verdict.reasoning
    assert gauge(deps) == 1
    assert len(fake.rejected) == 1


@pytest.mark.parametrize(("fallback", "bought"), [("reject", False), ("rules_only", True)])
async def test_the_bot_follows_on_unavailable(
    pool: Any,
    redis: Any,
    keys: Any,
    data_dir: Path,
    make_settings: Callable[..., Any],
    fake: Any,
    fallback: str,
    bought: bool,
) -> None:
    """A replay of real candles with the retired model: rules_only buys, reject does not,
    and the model is never asked."""  # fmt: skip
    symbols = ["KRW-AVAX", "KRW-BTC"]
    env = {"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": fake.base_url,
           "LLM_MODE": "prod"}  # fmt: skip
    ai = {"models": {"dev": "claude-haiku-5-5", "prod": "claude-sonnet-4-5"},
          "on_unavailable": fallback}  # fmt: skip
    settings = make_settings(env=env, symbols=symbols, ai=ai)
    start = BASE + timedelta(days=9, hours=1, minutes=10)  # MA200 needs 200 hours first
    rp = Replay(settings, pool, redis, keys, aligned_rows(data_dir, symbols), start)
    step = build_ai_step(
        SimpleNamespace(settings=settings, pool=pool, redis=redis, keys=keys, clock=rp.clock,
                        metrics=rp.metrics, extras={})
    )  # fmt: skip
    assert isinstance(step, AgentRunner)
    rp.ai = step
    try:
        async with rp:
            await rp.preload(start)
            await rp.run_until(start + timedelta(hours=2))
            assert rp.bot is not None
            await rp.bot.drain(30)
    finally:
        await step.aclose()
    buys = await pool.fetchval("SELECT count(*) FROM trading_history WHERE side = 'BUY'")
    assert (buys > 0) is bought
    reasons = await pool.fetchval("SELECT count(*) FROM agent_decisions")
    assert (reasons, fake.count, fake.lookups) == (0, 0, ["claude-sonnet-4-5"])
    assert rp.metrics.registry.get_sample_value(
        "coinpilot_ai_decisions_total",
        {"outcome": "approved" if bought else "rejected",
         "reason": "rules_only" if bought else "unavailable"},
    )  # fmt: skip
    assert await redis.get(keys.ai_global_block()) is None


@needs_promtool
def test_alert_fires_on_the_gauge(tmp_path: Path) -> None:
    """`promtool test rules`: CoinPilotAiMisconfigured fires as soon as the gauge is 1."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    bare = tmp_path / "alerts.yml"
    bare.write_text(yaml.safe_dump(rules))
    spec = tmp_path / "t.yml"
    spec.write_text(
        textwrap.dedent(f"""
        rule_files: [{bare}]
        evaluation_interval: 1m
        tests:
          - interval: 1m
            input_series:
              - series: 'coinpilot_ai_misconfigured{{job="coinpilot",instance="a"}}'
                values: '0 0 1 1'
            alert_rule_test:
              - eval_time: 1m
                alertname: CoinPilotAiMisconfigured
                exp_alerts: []
              - eval_time: 2m
                alertname: CoinPilotAiMisconfigured
                exp_alerts:
                  - exp_labels: {{severity: critical, job: coinpilot, instance: a}}
        """)
    )
    out = _promtool("test", "rules", str(spec))
    assert out.returncode == 0, out.stdout + out.stderr


async def test_daemon_with_the_retired_default_says_so_once(
    db_dsn: str, redis_url_base: str, fake: Any, tmp_path: Path
) -> None:
    """`coinpilot run` with ai.models.prod: claude-sonnet-4-5 on the day after retirement:
    one log line naming the model and the key, /metrics shows the gauge at 1."""
    data = yaml.safe_load((ROOT / "config" / "coinpilot.yaml").read_text())
    data["ai"]["models"]["prod"] = "claude-sonnet-4-5"
    config = tmp_path / "coinpilot.yaml"
    config.write_text(yaml.safe_dump(data))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("COINPILOT_", "WATCHDOG_"))},
        "COINPILOT_CONFIG": str(config),
        "COINPILOT_DATABASE_URL": db_dsn,
        "COINPILOT_REDIS_URL": redis_url_base,
        "COINPILOT_REDIS_KEY_PREFIX": f"t{uuid.uuid4().hex[:10]}:",
        "COINPILOT_HTTP_PORT": str(port),
        "COINPILOT_UPBIT_URL": f"http://127.0.0.1:{free_port()}",  # nothing answers: no network
        "STATE_DIRECTORY": str(tmp_path / "state"),
        "ANTHROPIC_API_KEY": "sk-test",
        "ANTHROPIC_BASE_URL": fake.base_url,
        "LLM_MODE": "prod",
        "OPENAI_API_KEY": "",
    }
    out_path = tmp_path / "stdout.log"
    with out_path.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "coinpilot", "run", cwd=ROOT, env=env, stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            value = await _poll_gauge(port, proc, deadline=time.monotonic() + 90)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 15)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    text = out_path.read_text(errors="replace")
    assert value == "1", text[-3000:]
    assert code == 0, text[-3000:]
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    lines = [r for r in records if r["event"] == "ai_misconfigured"]
    assert len(lines) == 1, text[-3000:]
    assert lines[0]["model"] == "claude-sonnet-4-5"
    assert lines[0]["config_key"] == "ai.models.prod"
    assert not [r for r in records if r["event"] == "ai_global_block"]
    assert fake.lookups == ["claude-sonnet-4-5"]


async def _poll_gauge(port: int, proc: Any, deadline: float) -> str | None:
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                return None
            try:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    for line in (await resp.text()).splitlines():
                        if line.startswith("coinpilot_ai_misconfigured "):
                            value = line.split()[1].removesuffix(".0")
                            if value == "1":
                                return value
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    return None

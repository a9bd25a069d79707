"""`coinpilot ai-review` as an operator runs it: a real process, the fake over a socket.

The default config with LLM_MODE=prod reviews with Sonnet 5.5 through structured outputs,
prints verdict, model, tokens, cost and latency, and writes nothing anywhere.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml

from tests.fakes import anthropic as fk
from tests.integration.ai_support import CANDLE_TS, insert_minutes, minute_rows

ROOT = Path(__file__).resolve().parents[2]
AT = "2026-11-24T12:00:30Z"


@pytest.fixture
async def fake() -> AsyncIterator[fk.FakeAnthropic]:
    server = fk.FakeAnthropic(today=date(2026, 12, 1))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def market(pool: Any) -> None:
    await insert_minutes(pool, minute_rows("KRW-BTC", CANDLE_TS + timedelta(minutes=1), 36))


async def ai_review(
    fake: Any, db_dsn: str, redis_url: str, prefix: str, *args: str, **env: str
) -> tuple[int, str, str]:
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COINPILOT_")},
        "COINPILOT_DATABASE_URL": db_dsn,
        "COINPILOT_REDIS_URL": redis_url,
        "COINPILOT_REDIS_KEY_PREFIX": prefix,
        "ANTHROPIC_API_KEY": "sk-test",
        "ANTHROPIC_BASE_URL": fake.base_url,
        "LLM_MODE": "prod",
        **env,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coinpilot", "ai-review", "--symbol", "KRW-BTC", *args,
        cwd=ROOT, env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def untouched(pool: Any, redis_url: str, prefix: str) -> None:
    for table in ("agent_decisions", "outbox", "trading_history", "risk_audit"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert [k async for k in client.scan_iter(match=prefix + "*")] == []
    finally:
        await client.aclose()


async def test_default_config_prints_a_verdict_at_the_configured_price(
    fake: Any, pool: Any, db_dsn: str, redis_url_base: str, market: None
) -> None:
    """Exit 0 with the verdict; the requests used output_config.format, no forced tool."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    code, out, err = await ai_review(fake, db_dsn, redis_url_base, prefix, "--at", AT)
    assert code == 0, out + err
    assert "verdict    CONFIRM (approved) confidence 80" in out
    assert "model      claude-sonnet-5-5" in out
    # Two requests of 420 in and 60 + 90 thinking out on Sonnet 5.5 ($2 / $10 per MTok):
    # 840×2 + 300×10 = 4680 µ$.
    assert "tokens     840 in / 300 out" in out
    assert "cost       $0.004680" in out
    assert "latency    " in out
    assert "pre-filter " in out
    assert fake.lookups == ["claude-sonnet-5-5"]
    assert len(fake.requests) == 2
    for seen in fake.requests:
        assert seen.body["model"] == "claude-sonnet-5-5"
        assert seen.body["output_config"]["format"]["type"] == "json_schema"
        assert "tool_choice" not in seen.body
    await untouched(pool, redis_url_base, prefix)


async def test_a_rejecting_verdict_also_exits_0(
    fake: Any, pool: Any, db_dsn: str, redis_url_base: str, market: None
) -> None:
    """A REJECT is a verdict too: exit 0, nothing recorded, no cooldown set."""
    fake.script(fk.reject(reasoning="Falling knife."))
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    code, out, _ = await ai_review(fake, db_dsn, redis_url_base, prefix, "--at", AT)
    assert code == 0
    assert "verdict    REJECT (analyst_reject)" in out
    assert "Falling knife." in out
    await untouched(pool, redis_url_base, prefix)


async def test_retired_model_is_a_config_error_naming_the_key(
    fake: Any, pool: Any, db_dsn: str, redis_url_base: str, market: None, tmp_path: Path
) -> None:
    """ai.models.prod: claude-sonnet-4-5 after retirement → exit 2 naming ai.models.prod."""
    data = yaml.safe_load((ROOT / "config" / "coinpilot.yaml").read_text())
    data["ai"]["models"]["prod"] = "claude-sonnet-4-5"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    code, _, err = await ai_review(
        fake, db_dsn, redis_url_base, prefix, "--at", AT, "--config", str(config)
    )
    assert code == 2
    assert "ai.models.prod = claude-sonnet-4-5" in err
    assert fake.count == 0
    await untouched(pool, redis_url_base, prefix)


async def test_missing_key_is_a_config_error(
    fake: Any, db_dsn: str, redis_url_base: str, market: None
) -> None:
    """Without ANTHROPIC_API_KEY: exit 2 naming the variable."""
    code, _, err = await ai_review(fake, db_dsn, redis_url_base, "x:", ANTHROPIC_API_KEY="")
    assert code == 2
    assert "ANTHROPIC_API_KEY" in err


async def test_transient_failure_exits_1(
    fake: Any, pool: Any, db_dsn: str, redis_url_base: str, market: None
) -> None:
    """Overloaded on every attempt: exit 1, the cause printed, nothing recorded."""
    fake.script(*[fk.overloaded() for _ in range(3)])
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    code, out, _ = await ai_review(fake, db_dsn, redis_url_base, prefix, "--at", AT)
    assert code == 1
    assert "(overloaded)" in out
    await untouched(pool, redis_url_base, prefix)

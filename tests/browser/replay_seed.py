"""Dashboard data from a replay of the shared real candles through the live path.

Four hours of KRW-AVAX (real downtrend minutes) and KRW-BTC (real uptrend minutes) go
through the collector, the regime job, the bot loop, the risk manager, the ledger and the
AI step (Claude's wire format served by the local fake, alternating CONFIRM and REJECT),
after nine days of preloaded history. Whatever that produces is what the pages must show.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import yaml

from coinpilot.adapters.cache import Keys
from coinpilot.config import Settings, load_config
from tests.fakes import anthropic as fk
from tests.integration.ai_support import built_ai_step
from tests.integration.replay_data import BASE, aligned_rows
from tests.replay import Replay

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ["KRW-AVAX", "KRW-BTC"]
START = BASE + timedelta(days=9, hours=1, minutes=10)  # the hourly MA200 needs 200 hours
HOURS = 4
CONFIRM_TEXT = "Replay: hammer after a shallow pullback, volume returning."
REJECT_TEXT = "Replay: long bearish candles, still falling."


@dataclass(frozen=True)
class Replayed:
    now: datetime
    trades: list[dict[str, Any]]
    decisions: list[dict[str, Any]]


def replay_settings(tmp: Path, env: dict[str, str]) -> Settings:
    """The shipped YAML with the replay's symbols and guardrail budgets that never bind."""
    data = yaml.safe_load((ROOT / "config" / "coinpilot.yaml").read_text())
    data["symbols"] = SYMBOLS
    data.setdefault("ai", {})["guardrails"] = {
        **data["ai"].get("guardrails", {}),
        "max_calls_per_hour": 10_000,
        "max_calls_per_day": 10_000,
    }
    path = tmp / f"replay-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ=env)


def _alternating() -> Any:
    turn = itertools.count()

    def answer(body: dict[str, Any]) -> fk.Reply:
        if fk.role_of(body) != "analyst":
            return fk.safe()
        if next(turn) % 2 == 0:
            return fk.confirm(85, reasoning=CONFIRM_TEXT)
        return fk.reject(80, reasoning=REJECT_TEXT)

    return answer


async def replay_into(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    tmp: Path,
    token: str,
) -> tuple[Settings, Replayed]:
    """Run the replay; return the dashboard's settings and what the database now holds."""
    fake = fk.FakeAnthropic()
    await fake.start()
    fake.default = _alternating()
    env = {"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": fake.base_url}
    settings = replay_settings(tmp, env)
    try:
        # The fake answers in milliseconds, so each review ends within its own minute: the
        # replay waits for it there, which keeps the seeded trades (and what the pages must
        # show) independent of how fast this machine is, as on a cold first browser run.
        rows = aligned_rows(data_dir, SYMBOLS)
        rp = Replay(settings, pool, redis, keys, rows, START, settle_ai=True)
        deps = SimpleNamespace(settings=settings, pool=pool, redis=redis, keys=keys,
                               clock=rp.clock, metrics=rp.metrics, extras={})  # fmt: skip
        async with built_ai_step(deps) as step:
            rp.ai = step
            async with rp:
                await rp.preload(START)
                await rp.run_until(START + timedelta(hours=HOURS))
        now = rp.clock.now()
    finally:
        await fake.stop()
    trades = [dict(r) for r in await pool.fetch("SELECT * FROM trading_history")]
    decisions = [dict(r) for r in await pool.fetch("SELECT * FROM agent_decisions")]
    dashboard = replay_settings(tmp, {**env, "COINPILOT_DASHBOARD_TOKEN": token})
    return dashboard, Replayed(now, trades, decisions)

"""The AI scoreboard over recorded decisions and stored candles (real PostgreSQL, fake model)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from coinpilot.commands.ai_report import render
from coinpilot.services.ai_scoreboard import build_scoreboard
from tests.fakes import anthropic as fk
from tests.integration.ai_support import (
    CANDLE_TS,
    NOW,
    built_ai_step,
    candidate,
    deps_for,
    insert_minutes,
    minute_rows,
)


def after_entry(symbol: str, slope: float) -> list[tuple[Any, ...]]:
    """Four hours of minutes after the candidate, trending from its price by ``slope``/minute."""
    rows, prev = [], 100_250.0
    for k in range(240):
        close = 100_250.0 * (1 + slope * (k + 1))
        ts = CANDLE_TS + timedelta(minutes=k + 1)
        rows.append((symbol, "1m", ts, prev, max(prev, close), min(prev, close), close, 1.0, None))
        prev = close
    return rows


@pytest.fixture
async def fake() -> Any:
    server = fk.FakeAnthropic()
    await server.start()
    yield server
    await server.stop()


async def test_scoreboard_compares_approved_and_rejected_shadow_trades(
    make_settings: Any, pool: Any, redis: Any, keys: Any, fake: Any
) -> None:
    """An approved riser wins and a rejected faller loses under the exit rules; cost is summed."""
    for i, (sym, slope) in enumerate((("KRW-BTC", 0.0003), ("KRW-ETH", -0.0003))):
        await insert_minutes(pool, minute_rows(sym, CANDLE_TS + timedelta(minutes=1), 36, seed=i))
        await insert_minutes(pool, after_entry(sym, slope))
    fake.script(fk.reject(match="KRW-ETH"))
    env = {"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": fake.base_url}
    settings = make_settings(env=env)
    async with built_ai_step(deps_for(make_settings(env=env), pool, redis, keys)) as step:
        assert (await step.review(candidate("KRW-BTC"))).approved
        assert not (await step.review(candidate("KRW-ETH"))).approved

    board = await build_scoreboard(
        pool, settings, NOW - timedelta(days=1), NOW + timedelta(hours=5)
    )
    by = {g.name: g for g in board.groups}
    assert (by["approved"].closed, by["approved"].wins) == (1, 1)
    assert (by["rejected_by_model"].closed, by["rejected_by_model"].wins) == (1, 0)
    assert by["approved"].total_pnl_pct > 0 > by["rejected_by_model"].total_pnl_pct
    assert by["rules_alone"].candidates == 2
    assert board.model_runs == 2
    assert board.cost_usd > 0
    stored = await pool.fetchval("SELECT count(*) FROM ai_shadow_outcomes")
    assert stored == 2
    text = render(board, 1)
    assert "the AI filter beats the rules alone" in text
    again = await build_scoreboard(
        pool, settings, NOW - timedelta(days=1), NOW + timedelta(hours=5)
    )
    assert again.groups == board.groups  # stored outcomes are reused, not duplicated

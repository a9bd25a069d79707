"""A backtest on real candles through the AI step, then the same backtest replayed from records."""

from __future__ import annotations

import itertools
from typing import Any

from coinpilot.adapters.csvdata import read_csv, to_candles
from coinpilot.adapters.marketdata import upsert_candles
from coinpilot.backtest.engine import run_backtest
from tests.fakes import anthropic as fk
from tests.integration.ai_support import built_ai_step, deps_for

ETH = "binance_ETHUSDT_1m_2025-12-18_2025-12-29.csv"


async def test_recorded_backtest_replays_every_decision_without_requests(
    data_dir: Any, make_settings: Any, pool: Any, redis: Any, keys: Any
) -> None:
    """Approved candidates become trades; replay gives the same trades with zero model requests."""
    rows = read_csv(data_dir / ETH, "KRW-ETH")
    await upsert_candles(pool, rows)
    candles = {"KRW-ETH": to_candles(rows, "KRW-ETH")}
    fake = fk.FakeAnthropic()
    await fake.start()
    turn = itertools.count()

    def alternate(body: dict[str, Any]) -> fk.Reply:
        if fk.role_of(body) != "analyst":
            return fk.safe()
        return fk.confirm(85) if next(turn) % 3 != 2 else fk.confirm(40)

    fake.default = alternate
    try:
        env = {"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": fake.base_url}
        limits = {"guardrails": {"max_calls_per_hour": 10_000, "max_calls_per_day": 10_000}}
        live_settings = make_settings(env=env, ai=limits)
        async with built_ai_step(deps_for(live_settings, pool, redis, keys)) as live:
            recorded = await run_backtest(candles, live_settings.app, ai=live)
        used = fake.count
        replay_settings = make_settings(env=env, ai={**limits, "mode": "replay"})
        async with built_ai_step(deps_for(replay_settings, pool, redis, keys)) as replay:
            replayed = await run_backtest(candles, replay_settings.app, ai=replay)
    finally:
        await fake.stop()
    decisions = await pool.fetch("SELECT decision, reason_code FROM agent_decisions")
    assert used > 0
    assert any(d["decision"] == "CONFIRM" for d in decisions)
    assert any(d["reason_code"] == "low_confidence" for d in decisions)
    assert recorded.trades
    assert replayed.trades == recorded.trades
    assert replayed.funnel == recorded.funnel
    assert fake.count == used

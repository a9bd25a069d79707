"""Shared set-up for the AI integration tests: candles in PostgreSQL, a runner on the fake."""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import asyncpg

from coinpilot.clock import SimulatedClock
from coinpilot.domain.ai_types import AiStep, EntryCandidate
from coinpilot.observability import Metrics
from coinpilot.services.agent import AgentRunner, build_ai_step

NOW = datetime(2026, 11, 24, 12, 0, 30, tzinfo=UTC)
CANDLE_TS = datetime(2026, 11, 24, 11, 59, tzinfo=UTC)


def minute_rows(
    symbol: str, end: datetime, hours: int, drift: float = 0.0, seed: int = 7
) -> list[tuple[Any, ...]]:
    """Closed 1-minute candles ending at ``end`` (exclusive): a gentle wave plus noise."""
    rng = random.Random(seed)
    start = end - timedelta(hours=hours)
    rows, price = [], 100_000.0
    for i in range(hours * 60):
        ts = start + timedelta(minutes=i)
        target = 100_000.0 * (1 + 0.01 * math.sin(i / 90) + drift * i)
        close = target * (1 + rng.uniform(-0.0008, 0.0008))
        hi, lo = max(price, close) * 1.0004, min(price, close) * 0.9996
        rows.append((symbol, "1m", ts, price, hi, lo, close, 1.0 + rng.random(), None))
        price = close
    return rows


async def insert_minutes(pool: asyncpg.Pool, rows: list[tuple[Any, ...]]) -> None:
    await pool.copy_records_to_table(
        "market_data",
        records=rows,
        columns=[
            "symbol", "interval", "ts", "open_price", "high_price", "low_price",
            "close_price", "volume", "value_krw",
        ],
    )  # fmt: skip


def candidate(
    symbol: str = "KRW-BTC", regime: str = "SIDEWAYS", candle_ts: datetime = CANDLE_TS
) -> EntryCandidate:
    return EntryCandidate(
        symbol=symbol,
        regime=regime,
        candle_ts=candle_ts,
        price=100_250.0,
        indicators={"rsi_14": 41.2, "rsi_7": 38.5, "ma_20": 100_400.0, "vol_ratio": 0.8},
        entry_config={"rsi_14_max": 48, "ma_condition": "proximity"},
        order_krw=400_000.0,
    )


def deps_for(settings: Any, pool: Any, redis: Any, keys: Any) -> SimpleNamespace:
    """The slice of app.Deps that build_ai_step reads."""
    return SimpleNamespace(
        settings=settings,
        pool=pool,
        redis=redis,
        keys=keys,
        clock=SimulatedClock(NOW),
        metrics=Metrics(),
        extras={},
    )


@contextlib.asynccontextmanager
async def built_ai_step(deps: Any) -> AsyncIterator[AiStep]:
    """The production factory's AiStep, closed afterwards as the daemon closes it at shutdown
    (the SDK client's connections and a model check still running)."""
    step = build_ai_step(deps)
    try:
        yield step
    finally:
        if isinstance(step, AgentRunner):
            await step.aclose()

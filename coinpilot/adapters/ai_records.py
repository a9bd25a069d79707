"""PostgreSQL side of the AI step: its candle window, decision rows and shadow outcomes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from coinpilot.adapters.outbox import enqueue

DECISION_COLUMNS = (
    "symbol", "strategy_name", "decision", "reason_code", "reasoning", "confidence",
    "model_used", "price_at_decision", "regime", "candle_ts", "latency_ms", "input_tokens",
    "output_tokens", "cost_usd", "input_hash", "request", "raw_output",
)  # fmt: skip


async def latest_ma_gap(pool: asyncpg.Pool, symbol: str) -> float | None:
    """The regime job's latest (MA50 − MA200) / MA200 × 100 for the symbol."""
    value = await pool.fetchval(
        """SELECT diff_pct FROM regime_history WHERE symbol = $1 AND diff_pct IS NOT NULL
            ORDER BY detected_at DESC LIMIT 1""",
        symbol,
    )
    return None if value is None else float(value)


async def record_decision(
    pool: asyncpg.Pool, row: dict[str, Any], notify: dict[str, Any] | None
) -> int:
    """One agent_decisions row and its notification, in one transaction of their own."""
    values = [row.get(c) for c in DECISION_COLUMNS]
    marks = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    async with pool.acquire() as conn, conn.transaction():
        decision_id = int(
            await conn.fetchval(
                f"INSERT INTO agent_decisions ({', '.join(DECISION_COLUMNS)}) "
                f"VALUES ({marks}) RETURNING id",
                *values,
            )
        )
        if notify is not None:
            await enqueue(conn, "ai-decision", {**notify, "decision_id": decision_id})
    return decision_id


async def find_by_hash(pool: asyncpg.Pool, input_hash: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        """SELECT id, decision, reason_code, reasoning, confidence FROM agent_decisions
            WHERE input_hash = $1 ORDER BY created_at DESC, id DESC LIMIT 1""",
        input_hash,
    )


async def decisions_since(pool: asyncpg.Pool, since: datetime) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT d.id, d.symbol, d.decision, d.reason_code, d.regime, d.candle_ts,
                  d.price_at_decision, d.cost_usd, d.model_used, d.input_tokens,
                  d.output_tokens, s.pnl_pct, s.exit_reason
             FROM agent_decisions d LEFT JOIN ai_shadow_outcomes s ON s.decision_id = d.id
            WHERE d.created_at >= $1 ORDER BY d.id""",
        since,
    )


async def save_shadow(
    pool: asyncpg.Pool,
    decision_id: int,
    symbol: str,
    entry: tuple[datetime, Decimal],
    exit_: tuple[datetime, Decimal, str],
    pnl_pct: Decimal,
) -> None:
    await pool.execute(
        """INSERT INTO ai_shadow_outcomes (decision_id, symbol, entry_ts, entry_price,
                   exit_ts, exit_price, exit_reason, pnl_pct)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (decision_id) DO NOTHING""",
        decision_id, symbol, entry[0], entry[1], exit_[0], exit_[1], exit_[2], pnl_pct,
    )  # fmt: skip

"""The AI scoreboard: shadow outcomes for reviewed candidates, grouped by verdict, plus cost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import numpy as np
import structlog

from coinpilot.adapters import ai_records, marketdata
from coinpilot.config import RegimeParams, Settings
from coinpilot.domain.ai_shadow import GroupStats, group_stats, simulate_exit
from coinpilot.domain.guardrail_rules import CONFIG_CODES, CREDIT_CODES, ERROR_CODES
from coinpilot.domain.indicators import rsi

log = structlog.get_logger(__name__)

MODEL_REJECTS = frozenset({"analyst_reject", "low_confidence", "guardian_warning", "refusal"})
RSI_WARMUP = timedelta(minutes=200)


def group_of(row: Any) -> str:
    if row["decision"] == "CONFIRM":
        return "approved"
    code = row["reason_code"] or ""
    if code in MODEL_REJECTS:
        return "rejected_by_model"
    failures = ERROR_CODES | CREDIT_CODES | CONFIG_CODES | {"guardrails_unavailable"}
    if code in failures:
        return "rejected_on_failure"
    return "blocked_before_model"


async def update_shadows(
    pool: asyncpg.Pool, settings: Settings, since: datetime, now: datetime
) -> int:
    """Simulate the exit of every candidate without a stored outcome; return how many closed."""
    regimes: dict[str, RegimeParams] = {str(k): v for k, v in settings.app.regimes.items()}
    saved = 0
    for row in await ai_records.decisions_since(pool, since):
        if row["pnl_pct"] is not None or row["candle_ts"] is None or row["regime"] not in regimes:
            continue
        entry_ts = row["candle_ts"] + timedelta(minutes=1)
        limit = timedelta(hours=regimes[row["regime"]].exit.time_limit_hours)
        end = min(now, entry_ts + limit + timedelta(minutes=2))
        minutes = await marketdata.load_range(
            pool, row["symbol"], row["candle_ts"] - RSI_WARMUP, end
        )
        start = int(np.searchsorted(minutes.ts, int(entry_ts.timestamp())))
        outcome = simulate_exit(
            minutes.slice(start, len(minutes)),
            rsi(minutes.close, 14)[start:],
            entry_ts=entry_ts,
            entry_close=float(row["price_at_decision"]),
            regime=row["regime"],
            regimes=regimes,
            fills=settings.app.fills,
        )
        if outcome is None:
            continue
        await ai_records.save_shadow(
            pool,
            row["id"],
            row["symbol"],
            (entry_ts, row["price_at_decision"]),
            (outcome.exit_ts, outcome.exit_price, outcome.reason),
            outcome.pnl_pct,
        )
        saved += 1
    return saved


@dataclass(frozen=True)
class Scoreboard:
    groups: list[GroupStats]
    model_runs: int
    cost_usd: Decimal
    input_tokens: int
    output_tokens: int


async def build_scoreboard(
    pool: asyncpg.Pool, settings: Settings, since: datetime, now: datetime
) -> Scoreboard:
    await update_shadows(pool, settings, since, now)
    rows = await ai_records.decisions_since(pool, since)
    names = ("approved", "rejected_by_model", "rejected_on_failure", "blocked_before_model")
    groups = [group_stats(n, (r["pnl_pct"] for r in rows if group_of(r) == n)) for n in names]
    groups.append(group_stats("rules_alone", (r["pnl_pct"] for r in rows)))
    called = [r for r in rows if r["model_used"] is not None]
    return Scoreboard(
        groups=groups,
        model_runs=len(called),
        cost_usd=sum((r["cost_usd"] or Decimal(0) for r in called), Decimal(0)),
        input_tokens=sum(r["input_tokens"] or 0 for r in called),
        output_tokens=sum(r["output_tokens"] or 0 for r in called),
    )

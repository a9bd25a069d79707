"""The live path replayed on real candles: trades happen, limits hold, the ledger balances."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from coinpilot.adapters import ledger
from coinpilot.adapters.cache import Keys
from coinpilot.config import Settings
from coinpilot.services.bot import Outcome
from tests.integration.replay_data import BASE, aligned_rows
from tests.replay import Replay

pytestmark = pytest.mark.slow
HISTORY = timedelta(days=9)  # hourly MA200 needs 200 closed hours before the first decision


async def _check_cycle(pool: asyncpg.Pool, app_risk: object, now: datetime) -> None:
    check = await ledger.verify(pool)
    assert check.ok, f"ledger invariant broken at {now}: {check}"
    n_pos = await pool.fetchval("SELECT count(*) FROM positions")
    assert n_pos <= app_risk.max_concurrent_positions  # type: ignore[attr-defined]


async def test_replay_trades_in_both_trends_within_limits(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """Downtrend AVAX and uptrend BTC: trades on both, invariant every cycle, limits hold."""
    symbols = ["KRW-AVAX", "KRW-BTC"]
    settings = make_settings(symbols=symbols)
    app = settings.app
    rows = aligned_rows(data_dir, symbols)
    start = BASE + HISTORY
    exposure_ok: list[bool] = []

    async def after(now: datetime, outcomes: dict[str, Outcome]) -> None:
        await _check_cycle(pool, app.risk, now)
        if any(o.action == "BUY" for o in outcomes.values()):
            cost = await pool.fetchval("SELECT COALESCE(sum(cost_basis), 0) FROM positions")
            cash = await pool.fetchval("SELECT cash FROM account_state")
            exposure_ok.append(cost <= (cash + cost) * Decimal(repr(app.risk.max_total_exposure)))

    async with Replay(settings, pool, redis, keys, rows, start) as rp:
        await rp.preload(start)
        cycles = await rp.run_until(start + timedelta(hours=6), after)
    assert cycles == 6 * 60
    buys = await pool.fetch(
        "SELECT symbol, count(*) AS n FROM trading_history WHERE side = 'BUY' GROUP BY symbol"
    )
    by_symbol = {r["symbol"]: r["n"] for r in buys}
    assert by_symbol.get("KRW-AVAX", 0) >= 1, by_symbol
    assert by_symbol.get("KRW-BTC", 0) >= 1, by_symbol
    assert exposure_ok
    assert all(exposure_ok)
    per_day = await pool.fetch(
        """SELECT (executed_at AT TIME ZONE 'Asia/Seoul')::date AS d, count(*) AS n
           FROM trading_history WHERE side = 'BUY' GROUP BY 1"""
    )
    assert all(r["n"] <= app.risk.max_daily_trades for r in per_day)
    regimes = {r["regime"] for r in await pool.fetch("SELECT regime FROM regime_history")}
    assert regimes & {"BULL", "BEAR", "SIDEWAYS"}


async def test_tight_limits_bind_and_are_never_exceeded(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """With one position and two buys a day allowed, the risk manager refuses and audits."""
    symbols = ["KRW-AVAX", "KRW-BTC", "KRW-ETH"]
    settings = make_settings(
        symbols=symbols, risk={"max_concurrent_positions": 1, "max_daily_trades": 2}
    )
    rows = aligned_rows(data_dir, symbols)
    start = BASE + HISTORY

    async def after(now: datetime, outcomes: dict[str, Outcome]) -> None:
        await _check_cycle(pool, settings.app.risk, now)

    async with Replay(settings, pool, redis, keys, rows, start) as rp:
        await rp.preload(start)
        await rp.run_until(start + timedelta(hours=6), after)
    per_day = await pool.fetch(
        """SELECT (executed_at AT TIME ZONE 'Asia/Seoul')::date AS d, count(*) AS n
           FROM trading_history WHERE side = 'BUY' GROUP BY 1"""
    )
    assert per_day
    assert all(r["n"] <= 2 for r in per_day)
    audited = {
        r["violation_type"] for r in await pool.fetch("SELECT violation_type FROM risk_audit")
    }
    assert audited & {"max_concurrent_positions", "max_daily_trades"}

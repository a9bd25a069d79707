"""Dashboard test data: real KRW-BTC minutes plus a small, known book written row by row.

The candles come from the shared real Upbit file through the market-data adapter. Trades,
decisions, risk rows, jobs, outbox rows and Redis status are inserted directly with values
chosen so every figure the dashboard derives can be checked by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from coinpilot.adapters.cache import Keys
from coinpilot.adapters.csvdata import read_csv
from coinpilot.adapters.marketdata import upsert_candles
from coinpilot.app import Deps
from coinpilot.clock import SimulatedClock
from coinpilot.config import Settings
from coinpilot.httpserver import start_http
from coinpilot.web.routes import install

BTC_FILE = "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv"
MINUTES = 600
XSS = "<script>window.__pwned = 1</script>"


@dataclass(frozen=True)
class Seeded:
    last_candle: datetime
    last_close: Decimal
    now: datetime
    buy_ts: datetime
    sell_ts: datetime


async def load_btc(pool: asyncpg.Pool, data_dir: Path, minutes: int = MINUTES) -> list[Any]:
    rows = read_csv(data_dir / BTC_FILE)[-minutes:]
    await upsert_candles(pool, rows)
    return rows


async def seed_book(
    pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, data_dir: Path
) -> Seeded:
    """Candles, one open BTC position, a closed ETH round trip, AI decisions and system rows."""
    rows = await load_btc(pool, data_dir)
    last = rows[-1]
    now = last.ts + timedelta(seconds=90)
    buy_ts, sell_ts = rows[-200].ts, rows[-120].ts
    async with pool.acquire() as conn, conn.transaction():
        await _ledger(conn, now, buy_ts, sell_ts)
        await _decisions(conn, buy_ts)
        await _system_rows(conn, now, buy_ts)
    await _redis(redis, keys, last.close_price, now)
    return Seeded(last.ts, last.close_price, now, buy_ts, sell_ts)


async def _ledger(
    conn: asyncpg.Connection, now: datetime, buy_ts: datetime, sell_ts: datetime
) -> None:
    await conn.execute(
        "INSERT INTO account_state (id, initial_balance, cash, realized_pnl, fees_paid,"
        " consecutive_losses, cooldown_until) VALUES (1, 10000000, 9500000, 12000, 800, 1, NULL)"
    )
    await conn.execute(
        "INSERT INTO positions (symbol, quantity, avg_price, cost_basis, regime, high_water_mark,"
        " opened_at) VALUES ('KRW-BTC', 0.04, 11000000, 440000, 'BEAR', 11500000, $1)",
        buy_ts,
    )
    trades = [
        ("KRW-BTC|buy", "KRW-BTC", "BUY", "11000000", "0.04", None, None, buy_ts),
        ("KRW-ETH|buy", "KRW-ETH", "BUY", "1200000", "0.5", None, None, buy_ts),
        ("KRW-ETH|sell", "KRW-ETH", "SELL", "1224000", "0.5", "12000", "TAKE_PROFIT", sell_ts),
    ]
    for key, sym, side, price, q, pnl, reason, ts in trades:
        await conn.execute(
            "INSERT INTO trading_history (idempotency_key, symbol, side, price, quantity,"
            " notional, fee, realized_pnl, strategy_name, regime, exit_reason, candle_ts,"
            " executed_at) VALUES ($1, $2, $3, $4::numeric, $5::numeric,"
            " $4::numeric * $5::numeric, 100, $6::numeric, 'AdaptiveMeanReversion', 'BEAR', $7,"
            " $8::timestamptz, $8::timestamptz + interval '5 seconds')",
            key, sym, side, price, q, pnl, reason, ts,
        )  # fmt: skip
    await conn.execute(
        "INSERT INTO daily_risk_state (trade_date, opening_equity, realized_pnl, fees_paid,"
        " trade_count, buy_count, sell_count) VALUES ($1, 10000000, 12000, 300, 3, 2, 1)",
        now.astimezone(ZoneInfo("Asia/Seoul")).date(),
    )


async def _decisions(conn: asyncpg.Connection, at: datetime) -> None:
    rows = [
        ("KRW-BTC", "CONFIRM", "RULES_OK", "Oversold bounce with volume; rules agree.", 78),
        ("KRW-ETH", "REJECT", "LOW_CONFIDENCE", f"Falling knife. {XSS}", 41),
    ]
    for i, (sym, verdict, code, reasoning, conf) in enumerate(rows):
        await conn.execute(
            "INSERT INTO agent_decisions (symbol, strategy_name, decision, reason_code,"
            " reasoning, confidence, model_used, price_at_decision, regime, candle_ts,"
            " latency_ms, input_tokens, output_tokens, cost_usd, created_at) VALUES"
            " ($1, 'AdaptiveMeanReversion', $2, $3, $4, $5, 'claude-test-model', 11000000,"
            " 'BEAR', $6::timestamptz, 1800, 1200, 150, 0.0061,"
            " $6::timestamptz + make_interval(secs => $7))",
            sym, verdict, code, reasoning, conf, at, float(i),
        )  # fmt: skip


async def _system_rows(conn: asyncpg.Connection, now: datetime, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO regime_history (symbol, regime, diff_pct, hourly_candles, detected_at)"
        " VALUES ('KRW-BTC', 'SIDEWAYS', -1.2, 200, $1), ('KRW-BTC', 'BEAR', -2.6, 200, $2)",
        at - timedelta(days=2),
        at - timedelta(hours=2),
    )
    await conn.execute(
        "INSERT INTO risk_audit (violation_type, symbol, description, ts)"
        " VALUES ('MAX_POSITIONS', 'KRW-SOL', 'three positions already open', $1)",
        at,
    )
    await conn.execute(
        "INSERT INTO job_runs (job, started_at, finished_at, status, detail) VALUES"
        " ('regime', $1::timestamptz, $1::timestamptz + interval '2 seconds', 'ok', '5 symbols'),"
        " ('volatility', $1::timestamptz, $1::timestamptz + interval '9 seconds', 'error',"
        " 'too few candles')",
        now - timedelta(minutes=30),
    )
    await conn.execute(
        "INSERT INTO outbox (kind, payload, status, attempts, last_error) VALUES"
        " ('trade', '{}', 'pending', 0, NULL), ('trade', '{}', 'pending', 1, NULL),"
        " ('risk', '{}', 'failed', 3, 'HTTP 500 from webhook')"
    )


async def _redis(redis: aioredis.Redis, keys: Keys, price: Decimal, now: datetime) -> None:
    status = {
        "timestamp": now.isoformat(),
        "symbol": "KRW-BTC",
        "current_price": float(price),
        "regime": "BEAR",
        "indicators": {"rsi": 41.2, "ma_trend": "down", "hwm": 11500000},
        "position": {"has_position": True, "avg_price": 11000000, "quantity": 0.04},
        "action": "HOLD (POS)",
        "reason": "[BEAR] holding position (PnL 2.28%, vs HWM -2.17%)",
        "reason_code": "HOLDING",
    }
    await redis.set(keys.status("KRW-BTC"), json.dumps(status), ex=300)
    await redis.set(keys.regime("KRW-BTC"), "BEAR", ex=7200)
    await redis.set(keys.ai_symbol_cooldown("KRW-ETH"), "10", ex=600)
    await redis.set(keys.ai_reject_count("KRW-ETH"), "2", ex=1800)
    await redis.set(keys.ai_usage_hour(now), "3", ex=7200)
    await redis.set(keys.ai_usage_day(now), "7", ex=172800)


async def start_dashboard(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, now: datetime
) -> tuple[Deps, web.AppRunner, str]:
    """The daemon's HTTP server with the dashboard installed, on a free loopback port.

    The clock is fixed at ``now`` (the data's time), so candle ages and "today" match it.
    """
    deps = Deps(
        settings=settings,
        pool=pool,
        redis=redis,
        http=aiohttp.ClientSession(),
        clock=SimulatedClock(now),
        keys=keys,
    )
    runner, port = await start_http(deps, "127.0.0.1", 0, [install(deps)])
    return deps, runner, f"http://127.0.0.1:{port}"

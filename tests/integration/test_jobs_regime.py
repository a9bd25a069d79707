"""The regime job over real candles in PostgreSQL, publishing to Redis."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from coinpilot.adapters.cache import Keys, create_redis
from coinpilot.adapters.marketdata import load_range
from coinpilot.config import Settings
from coinpilot.domain.regime import resample_hourly
from coinpilot.observability import Metrics
from coinpilot.services.jobs import JobContext, PartialFailure
from coinpilot.services.jobs.regime import closed_hours_window, hourly_closes, run_regime_job
from tests.integration.jobdata import load_csv

BTC_FEB_2024 = "binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv"
AVAX_FEB_2025 = "binance_AVAXUSDT_1m_2025-02-01_2025-02-28.csv"
TEN_DAYS = 10 * 24 * 60


def context(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys
) -> JobContext:
    return JobContext(settings=settings, pool=pool, redis=redis, keys=keys, metrics=Metrics())


async def history(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM regime_history ORDER BY id")


async def test_btc_february_2024_ends_bull(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """A month of rising BTC ends BULL in Redis (with TTL), regime_history and the gauge."""
    last = await load_csv(pool, data_dir / BTC_FEB_2024, "KRW-BTC")
    ctx = context(make_settings(symbols=["KRW-BTC"]), pool, redis, keys)
    await run_regime_job(ctx, last + timedelta(minutes=1, seconds=5))
    assert await redis.get(keys.regime("KRW-BTC")) == "BULL"
    assert 7000 < await redis.ttl(keys.regime("KRW-BTC")) <= 7200
    (row,) = await history(pool)
    assert (row["symbol"], row["regime"], row["hourly_candles"]) == ("KRW-BTC", "BULL", 400)
    assert row["ma_fast"] > row["ma_slow"]
    assert row["diff_pct"] == round((row["ma_fast"] - row["ma_slow"]) / row["ma_slow"] * 100, 4)
    gauge = ctx.metrics.regime.labels(symbol="KRW-BTC", regime="BULL")._value.get()
    assert gauge == 1


async def test_avax_february_2025_ends_bear(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """A month of falling AVAX ends BEAR with a history row."""
    last = await load_csv(pool, data_dir / AVAX_FEB_2025, "KRW-AVAX")
    ctx = context(make_settings(symbols=["KRW-AVAX"]), pool, redis, keys)
    await run_regime_job(ctx, last + timedelta(minutes=1))
    assert await redis.get(keys.regime("KRW-AVAX")) == "BEAR"
    assert [(r["symbol"], r["regime"]) for r in await history(pool)] == [("KRW-AVAX", "BEAR")]


async def test_still_forming_hour_is_ignored(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """Minutes of the current hour never enter the hourly closes."""
    last = await load_csv(pool, data_dir / BTC_FEB_2024, "KRW-BTC", last=TEN_DAYS)
    ctx = context(make_settings(symbols=["KRW-BTC"]), pool, redis, keys)
    await run_regime_job(ctx, last - timedelta(minutes=29))  # 23:30, the 23:00 hour is open
    (row,) = await history(pool)
    assert row["hourly_candles"] == TEN_DAYS // 60 - 1  # 240 hours loaded, the last still open


async def test_short_history_is_unknown_and_isolated(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """A symbol with under 200 closed hours is UNKNOWN without a row; the other still runs."""
    last = await load_csv(pool, data_dir / BTC_FEB_2024, "KRW-BTC", last=TEN_DAYS)
    await load_csv(pool, data_dir / BTC_FEB_2024, "KRW-ETH", last=24 * 60)
    ctx = context(make_settings(symbols=["KRW-ETH", "KRW-BTC"]), pool, redis, keys)
    await run_regime_job(ctx, last + timedelta(minutes=2))
    assert await redis.get(keys.regime("KRW-ETH")) == "UNKNOWN"
    assert await redis.ttl(keys.regime("KRW-ETH")) > 0
    assert await redis.get(keys.regime("KRW-BTC")) == "BULL"
    assert [r["symbol"] for r in await history(pool)] == ["KRW-BTC"]


async def test_one_symbol_failing_does_not_affect_another(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """A database error while recording one symbol leaves the other symbol's row in place."""
    last = await load_csv(pool, data_dir / BTC_FEB_2024, "KRW-BTC", last=TEN_DAYS)
    await load_csv(pool, data_dir / BTC_FEB_2024, "KRW-XRP", last=TEN_DAYS)
    await pool.execute("""
        CREATE FUNCTION refuse_xrp() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.symbol = 'KRW-XRP' THEN RAISE EXCEPTION 'disk full'; END IF;
        RETURN NEW; END $$;
        CREATE TRIGGER refuse_xrp BEFORE INSERT ON regime_history
        FOR EACH ROW EXECUTE FUNCTION refuse_xrp();""")
    ctx = context(make_settings(symbols=["KRW-XRP", "KRW-BTC"]), pool, redis, keys)
    with pytest.raises(PartialFailure, match="KRW-XRP"):
        await run_regime_job(ctx, last + timedelta(minutes=2))
    assert [r["symbol"] for r in await history(pool)] == ["KRW-BTC"]
    assert ctx.metrics.symbol_errors.labels(symbol="KRW-XRP")._value.get() == 1


async def test_change_is_notified_once(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """A regime differing from the last recorded one queues one regime-change row."""
    last = await load_csv(pool, data_dir / BTC_FEB_2024, "KRW-BTC", last=TEN_DAYS)
    await pool.execute(
        "INSERT INTO regime_history (symbol, regime, hourly_candles, detected_at) "
        "VALUES ('KRW-BTC', 'SIDEWAYS', 200, $1)",
        datetime(2024, 2, 20, tzinfo=UTC),
    )
    ctx = context(make_settings(symbols=["KRW-BTC"]), pool, redis, keys)
    now = last + timedelta(minutes=2)
    await run_regime_job(ctx, now)
    await run_regime_job(ctx, now + timedelta(hours=1))
    rows = await pool.fetch("SELECT kind, payload FROM outbox")
    assert [(r["kind"], r["payload"]["previous"], r["payload"]["regime"]) for r in rows] == [
        ("regime-change", "SIDEWAYS", "BULL")
    ]


async def test_sql_hourly_closes_match_the_strategy_resampler(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """The job's in-database hourly closes equal resample_hourly over the same minutes."""
    last = await load_csv(pool, data_dir / BTC_FEB_2024, "KRW-BTC", last=TEN_DAYS)
    settings = make_settings(symbols=["KRW-BTC"])
    now = last - timedelta(minutes=29)
    got = await hourly_closes(context(settings, pool, redis, keys), "KRW-BTC", now)
    start, end = closed_hours_window(now, settings.app.regime_detection)
    minutes = await load_range(pool, "KRW-BTC", start, end)
    assert got.tolist() == resample_hourly(minutes, now.timestamp()).close.tolist()


async def test_redis_down_still_records_history(
    pool: asyncpg.Pool,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """With Redis unreachable the regime is still recorded in PostgreSQL and the error counted."""
    last = await load_csv(pool, data_dir / BTC_FEB_2024, "KRW-BTC", last=TEN_DAYS)
    dead = create_redis("redis://127.0.0.1:1/0")
    try:
        ctx = context(make_settings(symbols=["KRW-BTC"]), pool, dead, keys)
        assert await run_regime_job(ctx, last + timedelta(minutes=2)) == "KRW-BTC=BULL"
    finally:
        await dead.aclose()
    assert [r["regime"] for r in await history(pool)] == ["BULL"]
    errors = ctx.metrics.dependency_errors.labels(dependency="redis", kind="ConnectionError")
    assert errors._value.get() == 1


async def test_hours_are_utc_hours_whatever_the_session_time_zone(
    db_dsn: str, redis: aioredis.Redis, keys: Keys, make_settings: Callable[..., Settings]
) -> None:
    """Two hours of minutes whose close is the minute of the day; a +5:30 session zone."""
    from decimal import Decimal

    from coinpilot.adapters import db as dbmod
    from coinpilot.adapters import marketdata as md

    start = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    rows = [
        md.CandleRow("KRW-BTC", "1m", start + timedelta(minutes=i), Decimal(1), Decimal(1),
                     Decimal(1), Decimal(600 + i), Decimal(1), None)
        for i in range(120)
    ]  # fmt: skip
    pool = await dbmod.create_pool(db_dsn, min_size=1, max_size=2)
    try:
        await md.upsert_candles(pool, rows)
        kolkata = await asyncpg.create_pool(
            db_dsn, min_size=1, max_size=1, server_settings={"timezone": "Asia/Kolkata"}
        )
        assert kolkata is not None
        try:
            ctx = JobContext(make_settings(), kolkata, redis, keys, Metrics())
            closes = await hourly_closes(ctx, "KRW-BTC", start + timedelta(hours=2, minutes=1))
        finally:
            await kolkata.close()
    finally:
        await pool.close()
    # UTC hours 10:00 and 11:00 close at 10:59 (minute 659) and 11:59 (minute 719).
    assert list(closes) == [659.0, 719.0]

"""Decisions driven by "minute stored" events, and the start-up order.

Defect 1: the clock-driven bot read every symbol at +6 s; a symbol the collector had not
stored yet looked 126 s old (stale_data) and that minute was never decided. Defect 3: the
first cycle after a restart raced the catch-up (an exit at a days-old price) and the
start-up regime job ran before the backfill (every symbol UNKNOWN for up to an hour).
These tests drive the bot's event loop on a simulated clock; the real-time proofs are in
test_realtime_soak.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from coinpilot.adapters import ledger
from coinpilot.adapters import marketdata as md
from coinpilot.adapters.cache import Keys
from coinpilot.adapters.marketdata import CandleRow
from coinpilot.clock import SimulatedClock
from coinpilot.config import Settings
from coinpilot.observability import Health, Metrics
from coinpilot.services.bot import BotService, Outcome
from coinpilot.services.collector import replay_collector
from coinpilot.services.jobs import JobContext
from coinpilot.services.minute_events import MinuteEvents
from coinpilot.services.scheduler import JobScheduler
from tests.fakes.upbit import FakeUpbit, running_fake_upbit
from tests.integration.replay_data import BASE, aligned_rows

pytestmark = pytest.mark.slow
MINUTE = timedelta(minutes=1)
DAY = BASE + timedelta(days=9)
PAIR = ["KRW-AVAX", "KRW-BTC"]


def _bot(
    settings: Settings,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    clock: SimulatedClock,
    hub: MinuteEvents,
    **extra: Any,
) -> tuple[BotService, list[Outcome]]:
    bot = BotService(settings=settings, pool=pool, redis=redis, keys=keys, clock=clock,
                     health=Health(), metrics=Metrics(), events=hub, **extra)  # fmt: skip
    seen: list[Outcome] = []
    log = bot._log

    def record(o: Outcome) -> None:  # every decision log line, as the daemon writes it
        seen.append(o)
        log(o)

    bot._log = record  # type: ignore[method-assign]
    return bot, seen


def _by_minute(rows: list[CandleRow]) -> dict[datetime, CandleRow]:
    return {r.ts: r for r in rows}


async def _store(pool: asyncpg.Pool, hub: MinuteEvents, row: CandleRow) -> None:
    """What the collector does: commit the minute, then say so."""
    await md.upsert_candles(pool, [row])
    hub.publish(row.symbol, row.ts)


async def test_a_symbol_stored_late_is_decided_late_never_skipped(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """BTC is stored 10 s, then 90 s after each close: every minute of both is decided once."""
    settings = make_settings(symbols=PAIR)
    rows = {s: _by_minute(r) for s, r in aligned_rows(data_dir, PAIR).items()}
    history = [r for rs in rows.values() for r in rs.values() if r.ts < DAY]
    await md.upsert_candles(pool, history)
    for s in PAIR:
        await redis.set(keys.regime(s), "SIDEWAYS")
    clock = SimulatedClock(DAY + timedelta(seconds=1))
    hub = MinuteEvents()
    bot, seen = _bot(settings, pool, redis, keys, clock, hub)
    hub.caught_up.set()  # the catch-up stored everything before DAY
    await bot.startup()
    await bot.decide_ready()
    minutes = [DAY + i * MINUTE for i in range(-2, 8)]
    assert sorted((o.symbol, o.minute) for o in seen) == sorted(
        (s, m) for s in PAIR for m in minutes[:2]
    )  # the minutes that closed within max_candle_age_s before the start
    minutes = minutes[2:]
    seen.clear()
    bot.metrics.minutes_decided._value.set(0)
    for i, m in enumerate(minutes):
        close = m + MINUTE
        clock.set(close + timedelta(seconds=1))
        await _store(pool, hub, rows["KRW-AVAX"][m])
        await bot.decide_ready()  # AVAX waits for BTC (within late_symbol_s)
        late = timedelta(seconds=10 if i < 4 else 90)
        if i >= 4:  # past the timeout AVAX goes on alone
            clock.set(close + timedelta(seconds=settings.app.bot.late_symbol_s + 1))
            await bot.decide_ready()
        clock.set(close + late)
        await _store(pool, hub, rows["KRW-BTC"][m])
        await bot.decide_ready()
    decided = sorted((o.symbol, o.minute) for o in seen if o.minute is not None)
    assert decided == sorted((s, m) for s in PAIR for m in minutes)  # each exactly once
    # Every decision saw its own minute's candle: nothing was judged stale.
    assert all(o.candle_ts == o.minute and o.reason_code != "stale_data" for o in seen), seen
    assert bot.metrics.minutes_decided._value.get() == 2 * len(minutes)
    assert bot.metrics.minutes_missed._value.get() == 0
    persisted = await pool.fetch("SELECT symbol, minute FROM bot_decided_minutes ORDER BY 1")
    assert [(r["symbol"], r["minute"]) for r in persisted] == [(s, minutes[-1]) for s in PAIR]

    # A restart a few seconds later resumes after the last decided minute: none twice.
    clock.set(minutes[-1] + MINUTE + timedelta(seconds=40))
    again, seen_again = _bot(settings, pool, redis, keys, clock, hub)
    await again.startup()
    nxt = minutes[-1] + MINUTE
    for s in PAIR:
        corrected = rows[s][minutes[-1]]._replace(volume=Decimal(1))
        await _store(pool, hub, corrected)  # a late correction of a decided minute
        await _store(pool, hub, rows[s][nxt])
    clock.set(nxt + MINUTE + timedelta(seconds=2))
    await again.decide_ready()
    assert sorted((o.symbol, o.minute) for o in seen_again) == [(s, nxt) for s in PAIR]


async def test_after_days_down_an_exit_waits_for_a_fresh_candle(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """A position held through 3 days of downtime is never sold at a 3-day-old close."""
    settings = make_settings(symbols=["KRW-AVAX"])
    rows = _by_minute(aligned_rows(data_dir, ["KRW-AVAX"])["KRW-AVAX"])
    await md.upsert_candles(pool, [r for r in rows.values() if r.ts < DAY])
    await redis.set(keys.regime("KRW-AVAX"), "SIDEWAYS")
    await ledger.ensure_account(pool, settings.app.risk.initial_balance_krw)
    opened = DAY - MINUTE
    order = ledger.BuyOrder("KRW-AVAX", opened, rows[opened].close_price, Decimal(1_000_000),
                            "SIDEWAYS", {})  # fmt: skip
    assert await ledger.buy(pool, order, settings.app, opened + MINUTE) is not None
    back = DAY + timedelta(days=3)  # the time limit (and more) expired while down
    clock = SimulatedClock(back + timedelta(seconds=30))
    hub = MinuteEvents()
    bot, seen = _bot(settings, pool, redis, keys, clock, hub)
    hub.caught_up.set()  # the catch-up found nothing newer: the newest candle is 3 days old
    await bot.startup()
    await bot.decide_ready()
    assert not seen  # nothing to decide on yet
    status = json.loads(await redis.get(keys.status("KRW-AVAX")) or "{}")
    assert status["reason_code"] == "stale_data"
    assert "no older than 120 s" in status["reason"]
    assert "259" in status["reason"]  # 3 days (259 200 s and a bit) old
    # The first fresh candle: the minutes before it had no trades and are decided once it
    # is stored (on old prices: no exit), then the exit fills at the fresh close.
    fresh = rows[back - timedelta(days=3) - MINUTE]._replace(ts=back)
    clock.set(back + MINUTE + timedelta(seconds=1))
    await _store(pool, hub, fresh)
    await bot.decide_ready()
    assert [o.minute for o in seen] == [back - 2 * MINUTE, back - MINUTE, back]
    assert all(o.reason_code == "stale_data" for o in seen[:2]), seen
    sell = await pool.fetchrow("SELECT candle_ts, exit_reason FROM trading_history "
                               "WHERE side = 'SELL'")  # fmt: skip
    assert sell is not None
    assert sell["candle_ts"] == back
    assert seen[-1].action == "SELL"


async def test_start_up_backfills_then_computes_regime_and_volatility_then_decides(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """A fresh install with 9 days on Upbit: the first decision already knows the regime."""
    settings = make_settings(symbols=["KRW-AVAX"])
    app = settings.app
    start = DAY + timedelta(minutes=30, seconds=20)
    clock = SimulatedClock(start)
    fake = FakeUpbit(clock=clock, limit_per_s=None)
    fake.add_rows(aligned_rows(data_dir, ["KRW-AVAX"])["KRW-AVAX"])
    metrics, health, hub = Metrics(), Health(), MinuteEvents()
    async with running_fake_upbit(fake) as (_, url), aiohttp.ClientSession() as http:
        collector = replay_collector(http=http, base_url=url, pool=pool, symbols=app.symbols,
                                     config=app.collector, clock=clock, metrics=metrics,
                                     health=health)  # fmt: skip
        collector.events, collector.filler.on_stored = hub, collector.announce
        ctx = JobContext(settings, pool, redis, keys, metrics)
        jobs = JobScheduler(ctx, clock=clock, health=health, metrics=metrics)
        bot, seen = _bot(settings, pool, redis, keys, clock, hub, collector=collector, jobs=jobs)
        # As the daemon starts them: concurrently; the bot waits for the catch-up.
        await asyncio.gather(collector.startup(), bot.startup())
        stored = await pool.fetchval("SELECT min(ts) FROM market_data")
        await bot.decide_ready()
    assert stored <= start - timedelta(days=app.collector.backfill_days - 0.01)
    assert await redis.get(keys.regime("KRW-AVAX")) not in (None, "UNKNOWN")
    assert await redis.get(keys.volatility("KRW-AVAX")) is not None
    assert seen, "nothing was decided after the start-up"
    assert all(o.regime != "UNKNOWN" for o in seen), seen
    assert all(o.reason_code != "regime_unknown" for o in seen)
    runs = await pool.fetch("SELECT job, status FROM job_runs ORDER BY job")
    assert [(r["job"], r["status"]) for r in runs] == [("regime", "ok"), ("volatility", "ok")]

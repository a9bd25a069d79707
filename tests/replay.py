"""Replay driver: the live path, minute by minute, on a simulated clock, without sleeping.

collector (through the real Upbit client) → local Upbit fake serving a CSV → PostgreSQL →
regime job (at start and at `schedules.regime_minute` past each hour, as the scheduler
runs it) → bot loop. History before ``start`` can be preloaded straight into the database
(the hourly MA200 needs ~9 days of it); from ``start`` on, every minute goes through the
collector exactly as in production.

    async with Replay(settings, pool, redis, keys, {"KRW-BTC": rows}, start) as rp:
        await rp.run_until(end, after_cycle=check)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from coinpilot.adapters import marketdata as md
from coinpilot.adapters.cache import Keys
from coinpilot.adapters.marketdata import CandleRow
from coinpilot.clock import SimulatedClock
from coinpilot.config import Settings
from coinpilot.domain.ai_types import AiStep
from coinpilot.observability import Health, Metrics
from coinpilot.services.bot import BotService, Outcome
from coinpilot.services.collector import Collector, replay_collector
from coinpilot.services.jobs import JobContext
from coinpilot.services.jobs.regime import run_regime_job
from tests.fakes.upbit import FakeUpbit, start_fake_upbit

MINUTE = timedelta(minutes=1)
AfterCycle = Callable[[datetime, dict[str, Outcome]], Awaitable[None]]


class Replay:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        keys: Keys,
        rows: Mapping[str, Sequence[CandleRow]],
        start: datetime,
        *,
        fixed_regime: str | None = None,
        ai: AiStep | None = None,
        metrics: Metrics | None = None,
        resume: bool = False,
        settle_ai: bool = False,
    ) -> None:
        self.settings, self.pool, self.redis, self.keys = settings, pool, redis, keys
        self.rows, self.start = rows, start
        self.fixed_regime, self.ai = fixed_regime, ai
        self.metrics = metrics or Metrics()
        self.health = Health()
        app = settings.app
        # The daemon ticks `bot.offset_s` after each minute; the collector runs just before.
        self.clock = SimulatedClock(start + timedelta(seconds=app.bot.offset_s))
        self.fake = FakeUpbit(clock=self.clock, limit_per_s=None)
        self._runner: Any = None
        self._http: aiohttp.ClientSession | None = None
        self.collector: Collector | None = None
        self.bot: BotService | None = None
        self._last_regime_hour: datetime | None = None
        # A resumed replay picks up the regime the last hourly run would have produced.
        self.resume = resume
        # Each minute's AI reviews end before the clock moves on (see step).
        self.settle_ai = settle_ai

    async def __aenter__(self) -> Replay:
        for symbol_rows in self.rows.values():
            self.fake.add_rows(list(symbol_rows))
        _, self._runner, url = await start_fake_upbit(self.fake)
        self._http = aiohttp.ClientSession()
        app = self.settings.app
        # Generous timeout and immediate retries: a busy machine must not drop a minute.
        self.collector = replay_collector(
            http=self._http, base_url=url, pool=self.pool, symbols=app.symbols,
            config=app.collector, clock=self.clock, metrics=self.metrics, health=self.health,
        )  # fmt: skip
        self.bot = BotService(
            settings=self.settings, pool=self.pool, redis=self.redis, keys=self.keys,
            clock=self.clock, health=self.health, metrics=self.metrics, ai=self.ai,
        )  # fmt: skip
        await self.bot.startup()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            self.fake.release.set()
            await self._runner.cleanup()

    async def preload(self, until: datetime) -> int:
        """Store every candle that closed before ``until`` directly (history, not replayed)."""
        rows = [r for rs in self.rows.values() for r in rs if r.ts + MINUTE <= until]
        return await md.upsert_candles(self.pool, rows)

    async def _regimes(self, now: datetime) -> None:
        app = self.settings.app
        if self.fixed_regime is not None:
            for s in app.symbols:
                await self.redis.set(self.keys.regime(s), self.fixed_regime,
                                     ex=app.regime_detection.redis_ttl_s)  # fmt: skip
            return
        hour = now.replace(minute=0, second=0, microsecond=0)
        due = now >= hour + timedelta(minutes=app.schedules.regime_minute)
        if self._last_regime_hour is None or (due and hour != self._last_regime_hour):
            ctx = JobContext(self.settings, self.pool, self.redis, self.keys, self.metrics)
            as_of = now
            if self.resume and self._last_regime_hour is None:
                last_hour = hour if due else hour - timedelta(hours=1)
                as_of = last_hour + timedelta(minutes=app.schedules.regime_minute)
            await run_regime_job(ctx, as_of)
            self._last_regime_hour = hour if due else hour - timedelta(hours=1)

    async def step(self) -> dict[str, Outcome]:
        """One minute: collect, maybe update regimes, run the bot cycle; then advance."""
        assert self.collector is not None
        assert self.bot is not None
        now = self.clock.now()
        await self.collector.run_once()
        await self._regimes(now)
        outcomes = await self.bot.run_once()
        if self.settle_ai:
            # A review's time budget runs on this clock. A model answering in milliseconds
            # ends its review within the minute, so let the reviews end before the clock
            # jumps a whole minute (which would spend their budget at once): the replay is
            # then the same on a fast and a slow machine.
            await self.bot.drain(30)
        self.clock.advance(MINUTE)
        return outcomes

    async def run_until(self, end: datetime, after_cycle: AfterCycle | None = None) -> int:
        cycles = 0
        while self.clock.now() < end:
            now = self.clock.now()
            outcomes = await self.step()
            cycles += 1
            if after_cycle is not None:
                await after_cycle(now, outcomes)
        return cycles

"""AI guardrails in Redis: block check, usage marks and what a finished run leaves behind.

Fail closed: every Redis error surfaces as DependencyDown, and the runner then rejects the
entry with "guardrails unavailable" instead of calling the model unguarded.
"""

from __future__ import annotations

from datetime import datetime

import redis.asyncio as aioredis
import structlog

from coinpilot.adapters.cache import REDIS_ERRORS, Keys, redis_down
from coinpilot.config import GuardrailConfig
from coinpilot.domain.guardrail_rules import Block, Settle, check_block, cooldown_minutes

log = structlog.get_logger(__name__)

HOUR_TTL_S = 7200
DAY_TTL_S = 172800
STREAK_TTL_S = 3600


class Guardrails:
    def __init__(self, redis: aioredis.Redis, keys: Keys, cfg: GuardrailConfig) -> None:
        self.redis, self.keys, self.cfg = redis, keys, cfg

    async def blocked(self, symbol: str, now: datetime) -> Block | None:
        k = self.keys
        try:
            async with self.redis.pipeline(transaction=False) as p:
                p.ttl(k.ai_global_block())
                p.ttl(k.ai_symbol_cooldown(symbol))
                p.get(k.ai_usage_hour(now))
                p.get(k.ai_usage_day(now))
                g_ttl, c_ttl, hour, day = await p.execute()
        except REDIS_ERRORS as exc:
            raise redis_down(exc) from exc
        return check_block(int(g_ttl), int(c_ttl), int(hour or 0), int(day or 0), self.cfg)

    async def mark_call(self, now: datetime) -> None:
        """Count one model request against the hourly and daily budgets (UTC buckets)."""
        k = self.keys
        try:
            async with self.redis.pipeline(transaction=True) as p:
                p.incr(k.ai_usage_hour(now))
                p.expire(k.ai_usage_hour(now), HOUR_TTL_S)
                p.incr(k.ai_usage_day(now))
                p.expire(k.ai_usage_day(now), DAY_TTL_S)
                await p.execute()
        except REDIS_ERRORS as exc:
            raise redis_down(exc) from exc

    async def settle(self, symbol: str, kind: Settle) -> str | None:
        """Apply a finished run; return the global block reason if one was set."""
        try:
            return await self._settle(symbol, kind)
        except REDIS_ERRORS as exc:
            raise redis_down(exc) from exc

    async def _settle(self, symbol: str, kind: Settle) -> str | None:
        k, r = self.keys, self.redis
        if kind is Settle.APPROVED:
            await r.delete(k.ai_reject_count(symbol), k.ai_error_streak())
            return None
        count = int(await r.incr(k.ai_reject_count(symbol)))
        await r.expire(k.ai_reject_count(symbol), max(60, self.cfg.reject_cooldown_window_min * 60))
        minutes = cooldown_minutes(count, self.cfg)
        await r.set(k.ai_symbol_cooldown(symbol), str(minutes), ex=max(60, minutes * 60))
        if kind is Settle.LOW_CREDIT:
            await r.set(k.ai_global_block(), "low_credit", ex=self.cfg.credit_block_minutes * 60)
            return "low_credit"
        if kind is Settle.ERROR:
            streak = int(await r.incr(k.ai_error_streak()))
            await r.expire(k.ai_error_streak(), STREAK_TTL_S)
            if streak >= self.cfg.error_streak_threshold:
                await r.set(
                    k.ai_global_block(), "error_streak", ex=self.cfg.error_block_minutes * 60
                )
                return "error_streak"
            return None
        await r.delete(k.ai_error_streak())
        return None

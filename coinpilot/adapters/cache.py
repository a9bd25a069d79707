"""Redis: the client and every key CoinPilot uses, in one place.

Redis is a cache and a guardrail store, never the source of truth: regime and HWM fall back
to PostgreSQL when Redis is down; AI guardrails fail closed (no model call without them).

Key                                   value                          TTL
market:regime:{symbol}                BULL|SIDEWAYS|BEAR|UNKNOWN     regime_detection.redis_ttl_s
bot:status:{symbol}                   JSON status of the last cycle  bot.status_ttl_s
position:{symbol}:hwm                 decimal string                 none (deleted on SELL)
coinpilot:volatility:{symbol}         JSON {volatility_pct, is_high, computed_at}  none
ai:guard:global:block                 reason                         credit/error block
ai:guard:symbol:{symbol}:cooldown     minutes                        cooldown
ai:guard:symbol:{symbol}:reject_count integer                        reject window
ai:guard:error_streak                 integer                        3600 s
ai:usage:hour:{YYYYMMDDHH}            integer (UTC hour)             7200 s
ai:usage:day:{YYYYMMDD}               integer (UTC day)              172800 s
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from coinpilot.errors import DependencyDown


@dataclass(frozen=True)
class Keys:
    """Key builders. ``prefix`` isolates tests that share one Redis server."""

    prefix: str = ""

    def _k(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def regime(self, symbol: str) -> str:
        return self._k(f"market:regime:{symbol}")

    def status(self, symbol: str) -> str:
        return self._k(f"bot:status:{symbol}")

    def hwm(self, symbol: str) -> str:
        return self._k(f"position:{symbol}:hwm")

    def volatility(self, symbol: str) -> str:
        return self._k(f"coinpilot:volatility:{symbol}")

    def ai_global_block(self) -> str:
        return self._k("ai:guard:global:block")

    def ai_symbol_cooldown(self, symbol: str) -> str:
        return self._k(f"ai:guard:symbol:{symbol}:cooldown")

    def ai_reject_count(self, symbol: str) -> str:
        return self._k(f"ai:guard:symbol:{symbol}:reject_count")

    def ai_error_streak(self) -> str:
        return self._k("ai:guard:error_streak")

    def ai_usage_hour(self, now: datetime) -> str:
        return self._k(f"ai:usage:hour:{now:%Y%m%d%H}")

    def ai_usage_day(self, now: datetime) -> str:
        return self._k(f"ai:usage:day:{now:%Y%m%d}")


def create_redis(url: str) -> aioredis.Redis:
    """A client with short timeouts: a dead Redis must cost a cycle little time."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        health_check_interval=15,
    )


async def ping(client: aioredis.Redis) -> bool:
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False


REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


def redis_down(exc: BaseException) -> DependencyDown:
    return DependencyDown(f"redis unavailable: {type(exc).__name__}")

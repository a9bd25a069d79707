"""Scheduled jobs: regime, volatility and the daily report.

Each job is ``async def job(ctx, now) -> str`` returning a one-line detail for job_runs.
The daemon's scheduler and `coinpilot job …` run the same functions through
``coinpilot.services.scheduler.run_recorded``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from coinpilot.adapters.cache import Keys
from coinpilot.config import Settings
from coinpilot.observability import Metrics


@dataclass
class JobContext:
    """What the jobs need; built from the daemon's Deps or by the CLI."""

    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    keys: Keys
    metrics: Metrics
    http: aiohttp.ClientSession | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class PartialFailure(Exception):
    """Some symbols failed while others succeeded; the message lists both."""

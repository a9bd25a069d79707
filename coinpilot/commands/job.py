"""`coinpilot job regime|volatility|report`: run one scheduled job now, then exit.

Safe next to a running daemon: it takes no daemon lock, and the jobs only write what a
scheduled run would (Redis state, history rows, outbox rows for the daemon to send).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from coinpilot.adapters import db
from coinpilot.adapters.cache import Keys, create_redis
from coinpilot.clock import SystemClock
from coinpilot.config import Settings
from coinpilot.observability import Metrics
from coinpilot.services.jobs import JobContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", choices=("regime", "volatility", "report"))


async def open_job_context(stack: contextlib.AsyncExitStack, settings: Settings) -> JobContext:
    from coinpilot.app import resolve_urls

    dsn, redis_url = await resolve_urls(stack, settings)
    pool = await db.create_pool(dsn, min_size=1, max_size=4)
    stack.push_async_callback(pool.close)
    async with pool.acquire() as conn:
        await db.migrate(conn)
    redis = create_redis(redis_url)
    stack.push_async_callback(redis.aclose)
    return JobContext(
        settings=settings,
        pool=pool,
        redis=redis,
        keys=Keys(settings.redis_key_prefix),
        metrics=Metrics(),
    )


async def _run(settings: Settings, name: str) -> str:
    from coinpilot.services.scheduler import JOBS, run_recorded

    async with contextlib.AsyncExitStack() as stack:
        ctx = await open_job_context(stack, settings)
        status = await run_recorded(ctx, name, JOBS[name], SystemClock())
        detail = await ctx.pool.fetchval("SELECT detail FROM job_runs WHERE job = $1", name)
        print(f"{name}: {status}" + (f" ({detail})" if detail else ""))
        return status


def main(args: argparse.Namespace, settings: Settings) -> int:
    status = asyncio.run(_run(settings, args.job))
    return {"ok": 0, "partial": 1}.get(status, 1)

"""`coinpilot migrate`: apply pending SQL migrations and exit."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from coinpilot.adapters import db
from coinpilot.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


async def _migrate(settings: Settings) -> list[str]:
    from coinpilot.app import resolve_urls

    async with contextlib.AsyncExitStack() as stack:
        dsn, _ = await resolve_urls(stack, settings)
        pool = await db.create_pool(dsn, min_size=1, max_size=1)
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            return await db.migrate(conn)


def main(args: argparse.Namespace, settings: Settings) -> int:
    applied = asyncio.run(_migrate(settings))
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0

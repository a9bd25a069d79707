"""Run a replay in its own process, so tests can SIGKILL it and start it again.

    python -m tests.replay_cli --dsn DSN --redis URL --prefix P --data DIR --config FILE
        --cache FILE --hours H [--resume]

On --resume the replay continues from the newest stored candle: the crash-only path the
daemon takes at every start (reconcile from the database, re-run the interrupted minute).
Prints "ready" once running and "done" at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
from datetime import datetime, timedelta
from pathlib import Path

from coinpilot.adapters import db
from coinpilot.adapters.cache import Keys, create_redis
from coinpilot.adapters.marketdata import CandleRow
from coinpilot.config import load_config
from coinpilot.observability import configure_logging
from tests.integration.replay_data import BASE, aligned_rows
from tests.replay import Replay

HISTORY = timedelta(days=9)
Rows = dict[str, list[CandleRow]]


def load_rows(data: Path, symbols: list[str], end: datetime, cache: Path) -> Rows:
    """Parse the CSVs once per test; restarts read a pickle (parsing dominates start-up)."""
    if cache.exists():
        loaded: Rows = pickle.loads(cache.read_bytes())
        return loaded
    rows = {s: [r for r in rs if r.ts < end] for s, rs in aligned_rows(data, symbols).items()}
    cache.write_bytes(pickle.dumps(rows))
    return rows


async def main(ns: argparse.Namespace) -> None:
    configure_logging("WARNING", "json")
    settings = load_config(ns.config, environ={})
    symbols = list(settings.app.symbols)
    first = BASE + HISTORY
    end = first + timedelta(hours=ns.hours)
    rows = load_rows(Path(ns.data), symbols, end, Path(ns.cache))
    pool = await db.create_pool(ns.dsn, min_size=1, max_size=4)
    redis = create_redis(ns.redis)
    try:
        start = first
        if ns.resume:
            newest = await pool.fetchval("SELECT max(ts) FROM market_data")
            start = max(first, newest + timedelta(minutes=1)) if newest else first
        async with Replay(settings, pool, redis, Keys(ns.prefix), rows, start,
                          resume=ns.resume) as rp:  # fmt: skip
            if not ns.resume:
                await rp.preload(first)
            print("ready", flush=True)
            await rp.run_until(end)
        print("done", flush=True)
    finally:
        await redis.aclose()
        await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("--dsn", "--redis", "--prefix", "--data", "--config", "--cache"):
        parser.add_argument(name, required=True)
    parser.add_argument("--hours", type=float, required=True)
    parser.add_argument("--resume", action="store_true")
    asyncio.run(main(parser.parse_args()))

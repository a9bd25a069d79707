"""Child process for the RSS figure: an hour of simulated trading on the live services.

Run as ``python -m bench.rss_replay SYMBOLS``: collector → PostgreSQL → regime → bot loop
through the replay driver, 60 one-minute cycles over ``SYMBOLS`` markets (copies of one real
file, each shifted in time so their signals differ), regime pinned to SIDEWAYS so a short
history trades, then the volatility (fits in its child process) and report jobs once.
Prints one JSON line with the peak RSS of this process from the start of the run (the
harness's reading of the candle file before it is not counted; the local Upbit fake and
its rows are, so the figure is an upper bound for the daemon alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import resource
import socket
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

from coinpilot.adapters import db
from coinpilot.adapters.cache import Keys, create_redis
from coinpilot.adapters.csvdata import frame_rows, read_frame
from coinpilot.config import load_config
from coinpilot.embedded import EmbeddedPostgres, EmbeddedRedis
from coinpilot.observability import Metrics
from coinpilot.services.jobs import JobContext
from coinpilot.services.jobs.report import run_report_job
from coinpilot.services.jobs.volatility import run_volatility_job
from tests.replay import Replay

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("COINPILOT_DATA_DIR", ROOT.parent / "shared" / "data"))
FILE = "binance_AVAXUSDT_1m_2025-02-01_2025-02-28.csv"
HISTORY_MIN, CYCLES = 300, 60


def _up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _servers(stack: list[Any]) -> tuple[str, str]:
    pg = os.environ.get("COINPILOT_TEST_DATABASE_URL")
    rd = os.environ.get("COINPILOT_TEST_REDIS_URL")
    if not pg:
        if _up(5432):
            pg = "postgresql://postgres@127.0.0.1:5432/postgres"
        else:
            stack.append(EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="cp-rss-pg-"))))
            pg = stack[-1].start()
    if not rd:
        if _up(6379):
            rd = "redis://127.0.0.1:6379/0"
        else:
            stack.append(EmbeddedRedis(Path(tempfile.mkdtemp(prefix="cp-rss-redis-"))))
            rd = stack[-1].start()
    return pg, rd


def _rows(symbols: int) -> tuple[dict[str, list[Any]], Any]:
    """Per symbol only the minutes the run uses, so the test data does not swell the RSS."""
    import polars as pl

    base = read_frame(DATA / FILE, "KRW-X")
    first = base["ts"][0]
    start = first + timedelta(minutes=HISTORY_MIN + 7 * symbols)
    lo, hi = start - timedelta(minutes=HISTORY_MIN), start + timedelta(minutes=CYCLES + 2)
    out = {}
    for j in range(symbols):
        name, shift = f"KRW-S{j:03d}", timedelta(minutes=7 * j)
        mine = base.filter((pl.col("ts") >= lo + shift) & (pl.col("ts") < hi + shift))
        out[name] = [r._replace(symbol=name, ts=r.ts - shift) for r in frame_rows(mine)]
    return out, start


def _reset_peak() -> None:
    """Start the peak afresh (Linux): the test data loaded above is not the daemon's."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_kb() -> int:
    """Peak RSS of this process image. ru_maxrss survives exec, so a child forked from a
    big parent would report the parent's size; VmHWM starts afresh with the new image."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def _main(symbols: int) -> dict[str, Any]:
    stack: list[Any] = []
    admin, redis_url = _servers(stack)
    name = f"cp_rss_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    head, _, query = admin.partition("?")
    dsn = f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    pool = await db.create_pool(dsn, min_size=1, max_size=4)
    redis = create_redis(redis_url)
    try:
        async with pool.acquire() as c:
            await db.migrate(c)
        rows, start = _rows(symbols)
        gc.collect()
        _reset_peak()
        data = load_config(environ={}).app.model_dump(mode="json")
        data["symbols"] = sorted(rows)
        # The hour of history is enough for a fit; the daily job wants 500 candles by default.
        data["volatility"]["min_candles"] = HISTORY_MIN
        cfg = ROOT / "var" / f"rss-{name}.yaml"
        cfg.parent.mkdir(exist_ok=True)
        cfg.write_text(json.dumps(data))
        settings = load_config(cfg, environ={})
        keys = Keys(f"rss{uuid.uuid4().hex[:6]}:")
        started = time.perf_counter()
        async with Replay(settings, pool, redis, keys, rows, start, fixed_regime="SIDEWAYS") as rp:
            await rp.preload(start)
            await rp.run_until(start + timedelta(minutes=CYCLES))
            # Every scheduled job once (the regime job ran with the replay), as the daemon.
            ctx = JobContext(settings, pool, redis, keys, Metrics())
            now = start + timedelta(minutes=CYCLES)
            jobs = [await run_volatility_job(ctx, now), await run_report_job(ctx, now)]
        elapsed = time.perf_counter() - started
        trades = await pool.fetchval("SELECT count(*) FROM trading_history")
        cfg.unlink()
    finally:
        await pool.close()
        await redis.aclose()
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
        for server in stack:
            server.stop()
    peak_kb = _peak_kb()
    return {"symbols": symbols, "peak_rss_mb": round(peak_kb / 1024, 1), "trades": trades,
            "seconds": round(elapsed, 1), "jobs": [j[:60] for j in jobs],
            "arch_loaded": "arch" in sys.modules}  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_main(int(sys.argv[1])))))

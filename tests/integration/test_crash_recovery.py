"""SIGKILL at random points of a replay: the restarted run ends with the same ledger."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from coinpilot.adapters import ledger
from coinpilot.config import Settings
from tests.conftest import ROOT, fresh_database

pytestmark = pytest.mark.slow
KILLS = int(os.environ.get("COINPILOT_CRASH_POINTS", "20"))
HOURS = 6.0


@pytest.fixture
async def second_db(pg_admin_dsn: str, pg_template: str) -> AsyncIterator[str]:
    async with fresh_database(pg_admin_dsn, "cp_t", pg_template) as dsn:
        yield dsn


def _args(dsn: str, redis_url: str, prefix: str, data: Path, settings: Settings) -> list[str]:
    cache = Path(settings.source).with_suffix(".rows.pickle")
    return [sys.executable, "-m", "tests.replay_cli", "--dsn", dsn, "--redis", redis_url,
            "--prefix", prefix, "--data", str(data), "--config", settings.source,
            "--cache", str(cache), "--hours", str(HOURS)]  # fmt: skip


async def _run(args: list[str], kill_after: float | None) -> bool:
    """Run to the end (True) or SIGKILL ``kill_after`` seconds after it is ready (False)."""
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    if kill_after is not None and line.startswith(b"ready"):
        await asyncio.sleep(kill_after)
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            return False
    rest = await proc.stdout.read()
    code = await proc.wait()
    assert code == 0, rest
    return b"done" in line + rest


async def _ledger(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        trades = await conn.fetch(
            """SELECT symbol, side, price, quantity, fee, realized_pnl, exit_reason, candle_ts,
                      executed_at FROM trading_history ORDER BY executed_at, symbol, side"""
        )
        account = await conn.fetchrow(
            "SELECT cash, realized_pnl, fees_paid, consecutive_losses, cooldown_until "
            "FROM account_state"
        )
        positions = await conn.fetch("SELECT symbol, quantity, avg_price, high_water_mark "
                                     "FROM positions ORDER BY symbol")  # fmt: skip
        check = await ledger.verify(conn)
        dupes = await conn.fetchval(
            "SELECT count(*) FROM (SELECT symbol, ts FROM market_data GROUP BY 1, 2 "
            "HAVING count(*) > 1) d"
        )
    finally:
        await conn.close()
    return {"trades": [dict(t) for t in trades], "account": dict(account or {}),
            "positions": [dict(p) for p in positions], "ok": check.ok, "dupes": dupes}  # fmt: skip


async def test_sigkill_at_random_points_leaves_the_same_final_ledger(
    db_dsn: str,
    second_db: str,
    redis_url_base: str,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """An uninterrupted run and a run killed KILLS times end with identical ledgers."""
    settings = make_settings(symbols=["KRW-AVAX", "KRW-ETH"])
    rng = random.Random(20260302)
    base = _args(db_dsn, redis_url_base, f"t{uuid.uuid4().hex[:8]}:", data_dir, settings)
    assert await _run(base, None)
    reference = await _ledger(db_dsn)
    assert reference["trades"], "the reference replay made no trade; the test would prove nothing"

    crash = _args(second_db, redis_url_base, f"t{uuid.uuid4().hex[:8]}:", data_dir, settings)
    finished = await _run(crash, rng.uniform(0.2, 1.5))
    kills = 0 if finished else 1
    while not finished:
        state = await _ledger(second_db)
        assert state["ok"], f"ledger inconsistent after kill {kills}"
        assert state["dupes"] == 0
        delay = rng.uniform(0.2, 1.5) if kills < KILLS else None
        finished = await _run([*crash, "--resume"], delay)
        kills += 0 if finished else 1
    final = await _ledger(second_db)
    assert kills >= min(KILLS, 3)
    assert final == reference

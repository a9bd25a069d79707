"""A PostgreSQL outage under a running loop: one warning line, every failed cycle counted."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from coinpilot.adapters import db
from coinpilot.clock import SystemClock
from coinpilot.config import Settings
from coinpilot.embedded import EmbeddedPostgres
from coinpilot.observability import Health, Metrics
from coinpilot.services.outbox_sender import OutboxSender


async def test_a_database_outage_logs_one_warning_and_counts_each_failed_cycle(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = Path(tempfile.mkdtemp(prefix="cp-o-"))  # short: unix socket paths are limited
    (base / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base / "run"))
    pg = EmbeddedPostgres(base / "pg")
    dsn = await asyncio.to_thread(pg.start)
    metrics = Metrics()
    try:
        pool = await db.create_pool(dsn, min_size=1, max_size=2)
        async with pool.acquire() as conn:
            await db.migrate(conn)
        async with aiohttp.ClientSession() as http:
            sender = OutboxSender(settings=make_settings(), pool=pool, http=http,
                                  clock=SystemClock(), health=Health(),
                                  metrics=metrics)  # fmt: skip
            assert await sender.cycle()
            await asyncio.to_thread(pg.stop)
            with capture_logs() as logs:
                results = [await sender.cycle() for _ in range(30)]  # a minute at 2 s a cycle
                await asyncio.to_thread(pg.start)
                recovered = await sender.cycle()
        await pool.close()
    finally:
        await asyncio.to_thread(pg.stop)
        shutil.rmtree(base, ignore_errors=True)
    assert results == [False] * 30
    assert recovered
    failed = [e for e in logs if e["event"] == "cycle_failed"]
    assert len(failed) <= 2, failed  # the refused connect, maybe first a dropped session
    assert all(e["log_level"] == "warning" and "exc_info" not in e for e in failed)
    counted = sum(
        s.value
        for fam in metrics.registry.collect()
        if fam.name == "coinpilot_dependency_errors"
        for s in fam.samples
        if s.name.endswith("_total")
    )
    assert counted == 30
    assert [e["failed_cycles"] for e in logs if e["event"] == "cycle_recovered"] == [30]

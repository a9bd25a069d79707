"""The one-daemon lock survives a PostgreSQL restart under a running `coinpilot run`.

A session advisory lock dies with its session: after a restart the daemon must notice, stop
trading, take the lock back, and a second daemon must still be refused. When another
process takes the lock first, the daemon exits non-zero (systemd restarts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from coinpilot.adapters import db
from coinpilot.app import open_deps
from coinpilot.config import Settings
from coinpilot.embedded import EmbeddedPostgres, EmbeddedRedis
from coinpilot.errors import FatalError
from tests.integration.ops_support import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def private_servers(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[EmbeddedPostgres, str, str]]:
    """A PostgreSQL and a Redis of this test's own, so the test may restart the database."""
    base = Path(tempfile.mkdtemp(prefix="cp-l-"))  # short: unix socket paths are limited
    (base / "run").mkdir(mode=0o700)  # as under systemd: a private runtime directory
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base / "run"))
    pg, rd = EmbeddedPostgres(base / "pg"), EmbeddedRedis(base / "rd")
    dsn = await asyncio.to_thread(pg.start)
    redis_url = rd.start()
    try:
        yield pg, dsn, redis_url
    finally:
        rd.stop()
        await asyncio.to_thread(pg.stop)
        shutil.rmtree(base, ignore_errors=True)


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


def _events(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


async def _wait(what: str, check: Callable[[], Any], proc: subprocess.Popen[bytes],
                log: Path, timeout_s: float = 60) -> Any:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            got = await check()
            if got:
                return got
        if proc.poll() is not None:
            tail = await asyncio.to_thread(_tail, log)
            raise AssertionError(f"daemon exited {proc.returncode} waiting for {what}:\n{tail}")
        if time.monotonic() > deadline:
            tail = await asyncio.to_thread(_tail, log)
            raise AssertionError(f"no {what} in {timeout_s} s:\n{tail}")
        await asyncio.sleep(0.2)


async def test_after_a_postgres_restart_a_second_daemon_is_still_refused(
    private_servers: tuple[EmbeddedPostgres, str, str],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    pg, dsn, redis_url = private_servers
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("COINPILOT_", "WATCHDOG_"))},
        "COINPILOT_DATABASE_URL": dsn,
        "COINPILOT_REDIS_URL": redis_url,
        "COINPILOT_HTTP_PORT": str(port),
        "COINPILOT_UPBIT_URL": f"http://127.0.0.1:{free_port()}",  # nothing answers
        "STATE_DIRECTORY": str(tmp_path / "state"),
        "ANTHROPIC_API_KEY": "",
        "OPENAI_API_KEY": "",
    }
    settings = make_settings(env={"COINPILOT_DATABASE_URL": dsn, "COINPILOT_REDIS_URL": redis_url})
    log = tmp_path / "daemon.log"
    health_url = f"http://127.0.0.1:{port}/health"

    async def health() -> dict[str, Any]:
        async with aiohttp.ClientSession() as s, s.get(health_url) as r:
            return dict(await r.json())

    async def lock_ok() -> bool:
        body = await health()
        lock = body["services"].get("daemon_lock", {})
        return body["database"] and lock.get("last_success") and not lock.get("degraded")

    with log.open("wb") as out:
        argv = [sys.executable, "-m", "coinpilot", "run"]
        proc = await asyncio.to_thread(subprocess.Popen, argv, cwd=ROOT, env=env, stdout=out,
                                       stderr=subprocess.STDOUT)  # fmt: skip
        try:

            async def up() -> bool:
                return bool((await health())["database"])

            await _wait("a daemon answering /health", up, proc, log, 90)
            await asyncio.to_thread(pg.stop)

            async def lost_reported() -> bool:
                body = await health()
                return any("daemon lock lost" in p for p in body["problems"])

            seen_lost = await _wait("the loss in /health", lost_reported, proc, log, 30)
            await asyncio.to_thread(pg.start)
            await _wait("the lock taken back", lock_ok, proc, log, 60)
            with pytest.raises(FatalError, match="another coinpilot daemon is already running"):
                async with asyncio.timeout(30), contextlib.AsyncExitStack() as stack:
                    await open_deps(stack, settings)

            # Another process takes the lock while the daemon's session is gone: it must exit
            # non-zero rather than trade beside it.
            admin = await asyncpg.connect(dsn)
            try:
                await admin.execute(
                    """SELECT pg_terminate_backend(pid) FROM pg_locks
                       WHERE locktype = 'advisory' AND classid = $1 AND objid = $2""",
                    *db.DAEMON_LOCK,
                )
                for _ in range(200):
                    if await admin.fetchval("SELECT pg_try_advisory_lock($1, $2)",
                                            *db.DAEMON_LOCK):  # fmt: skip
                        break
                    await asyncio.sleep(0.01)
                else:
                    raise AssertionError("the test could not take the freed lock")
                code = await asyncio.to_thread(proc.wait, 60)
            finally:
                await admin.close()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    events = [e["event"] for e in await asyncio.to_thread(_events, log)]
    assert seen_lost
    assert "daemon_lock_lost" in events
    assert "daemon_lock_reacquired" in events
    assert code != 0, await asyncio.to_thread(_tail, log)
    assert "daemon_fatal" in events

"""The daemon's foundation against real servers: CLI, migrations, single daemon, embedded
servers, /health and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
import structlog
import yaml
from prometheus_client.parser import text_string_to_metric_families

from coinpilot import cli
from coinpilot.adapters import db
from coinpilot.adapters.cache import Keys, create_redis
from coinpilot.app import Deps, open_deps
from coinpilot.config import DEFAULT_CONFIG_PATH, Settings
from coinpilot.embedded import EmbeddedPostgres, EmbeddedRedis
from coinpilot.errors import FatalError
from coinpilot.httpserver import start_http
from tests.integration.ops_support import free_port, running_app, touch_every_metric

ROOT = Path(__file__).resolve().parents[2]


def _env(db_dsn: str, redis_url: str) -> dict[str, str]:
    return {"COINPILOT_DATABASE_URL": db_dsn, "COINPILOT_REDIS_URL": redis_url}


# --- CLI -------------------------------------------------------------------------------


def test_check_config_bad_value_exits_2_naming_the_field(tmp_path: Path) -> None:
    """`coinpilot check-config` with rsi_14_max "abc" exits 2, names the path, no traceback."""
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    data["regimes"]["BULL"]["entry"]["rsi_14_max"] = "abc"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COINPILOT_")}
    out = subprocess.run(
        [sys.executable, "-m", "coinpilot", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "regimes.BULL.entry.rsi_14_max" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """cli.main configures logging onto the captured stdout; undo that afterwards."""
    yield
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_check_config_masks_secrets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`coinpilot check-config` prints the effective config with every secret masked."""
    secrets = {
        "ANTHROPIC_API_KEY": "sk-ant-do-not-print",
        "OPENAI_API_KEY": "sk-openai-do-not-print",
        "COINPILOT_DATABASE_URL": "postgresql://cp:pg-password-xyz@db.internal/cp",
        "COINPILOT_REDIS_URL": "redis://:redis-password-xyz@cache.internal/0",
        "COINPILOT_DISCORD_WEBHOOK_URL": "https://discord.test/api/webhooks/9/hook-token-xyz",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["check-config", "--config", str(DEFAULT_CONFIG_PATH)]) == 0
    out = capsys.readouterr()
    printed = out.out + out.err
    for value in secrets.values():
        assert value not in printed
    for word in ("do-not-print", "password-xyz", "hook-token-xyz"):
        assert word not in printed
    shown = yaml.safe_load(printed.rsplit("config ok", 1)[0])
    assert shown["environment"]["anthropic_api_key"] == "********"
    assert shown["environment"]["database_url"] == "********"
    assert shown["config"]["regimes"]["BULL"]["entry"]["rsi_14_max"] == 50


# --- migrations ------------------------------------------------------------------------


async def test_migrations_are_idempotent(empty_db_dsn: str) -> None:
    """A second migrate applies nothing and leaves the schema as it was."""
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        first = await db.migrate(conn)
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        second = await db.migrate(conn)
        again = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        recorded = await conn.fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        await conn.close()
    assert first == [m.version for m in db.discover()]
    assert second == []
    assert sorted(tables) == sorted(again)
    assert recorded == len(first)
    assert {"positions", "market_data", "outbox"} <= {r["tablename"] for r in tables}


async def test_concurrent_migrations_apply_each_version_once(empty_db_dsn: str) -> None:
    """Two processes migrating the same empty database at once: each version applied once."""
    conns = [await asyncpg.connect(empty_db_dsn) for _ in range(2)]
    try:
        results = await asyncio.gather(*(db.migrate(c) for c in conns))
        rows = await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        for c in conns:
            await c.close()
    applied = results[0] + results[1]
    assert sorted(applied) == [m.version for m in db.discover()]
    assert [r["version"] for r in rows] == sorted(applied)


# --- single daemon ---------------------------------------------------------------------


async def test_second_daemon_refuses_to_start(
    db_dsn: str, redis_url_base: str, keys: Keys, make_settings: Callable[..., Settings]
) -> None:
    """While one daemon holds the database, a second open_deps fails with a clear message."""
    settings = make_settings(env=_env(db_dsn, redis_url_base))
    async with running_app(settings, keys):
        with pytest.raises(FatalError, match="another coinpilot daemon is already running"):
            async with asyncio.timeout(30), contextlib.AsyncExitStack() as stack:
                await open_deps(stack, settings, keys=keys)
    # Once the first one is gone the lock is free again.
    async with running_app(settings, keys):
        pass


# --- embedded servers ------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    """A pid that is gone or a zombie (exited, not yet reaped by init) is not running."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


async def test_embedded_postgres_and_redis_start_and_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded servers answer queries, listen on no TCP port, and leave nothing behind."""
    base = Path(tempfile.mkdtemp(prefix="cp-emb-"))
    # As under systemd (RuntimeDirectory) or a login session: a private runtime directory.
    (base / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base / "run"))
    pg, rd = EmbeddedPostgres(base / "pg"), EmbeddedRedis(base / "redis")
    dsn = await asyncio.to_thread(pg.start)
    try:
        url = rd.start()
        try:
            conn = await asyncpg.connect(dsn)
            try:
                assert await conn.fetchval("SELECT 1") == 1
                assert await conn.fetchval("SHOW listen_addresses") == ""
            finally:
                await conn.close()
            client = create_redis(url)
            try:
                assert await client.ping()
                assert (await client.config_get("port"))["port"] == "0"
            finally:
                await client.aclose()
            pg_pid = pg._server.get_pid()  # type: ignore[attr-defined]
            redis_pid = rd._proc.pid  # type: ignore[union-attr]
        finally:
            rd.stop()
    finally:
        await asyncio.to_thread(pg.stop)
    assert pg_pid is not None
    assert not _pid_alive(pg_pid)
    assert not _pid_alive(redis_pid)
    assert not rd.socket.exists()
    with pytest.raises((OSError, asyncpg.PostgresError)):
        await asyncpg.connect(dsn, timeout=3)


# --- /health and /metrics --------------------------------------------------------------


async def test_health_ok_with_database_and_redis(
    db_dsn: str, redis_url_base: str, keys: Keys, make_settings: Callable[..., Settings]
) -> None:
    """With both servers reachable and fresh candles /health answers 200 ok."""
    settings = make_settings(env=_env(db_dsn, redis_url_base))
    async with running_app(settings, keys) as app:
        closed = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
        for symbol in settings.app.symbols:
            await app.deps.pool.execute(
                "INSERT INTO market_data (symbol, interval, ts, open_price, high_price,"
                " low_price, close_price, volume) VALUES ($1, '1m', $2, 1, 1, 1, 1, 0)",
                symbol,
                closed,
            )
        async with aiohttp.ClientSession() as http, http.get(f"{app.base_url}/health") as r:
            body = await r.json()
            assert r.status == 200
    assert body["status"] == "ok", body["problems"]
    assert body["database"] is True
    assert body["redis"] is True


async def test_health_degraded_when_redis_unreachable(
    pool: asyncpg.Pool, make_settings: Callable[..., Settings]
) -> None:
    """With Redis at a dead port /health answers 200 degraded: trading goes on from the
    database (503 is only for the database or a stopped loop)."""
    dead = create_redis(f"redis://127.0.0.1:{free_port()}/0")
    async with aiohttp.ClientSession() as session:
        deps = Deps(settings=make_settings(), pool=pool, redis=dead, http=session)
        runner, port = await start_http(deps, "127.0.0.1", 0)
        try:
            async with session.get(f"http://127.0.0.1:{port}/health") as r:
                body = await r.json()
                status = r.status
        finally:
            await runner.cleanup()
            await dead.aclose()
    assert (status, body["status"]) == (200, "degraded")
    assert body["redis"] is False
    assert body["database"] is True
    assert any("redis" in p for p in body["problems"])


async def test_metrics_parse_as_prometheus_text(
    db_dsn: str, redis_url_base: str, keys: Keys, make_settings: Callable[..., Settings]
) -> None:
    """/metrics parses with prometheus_client's parser; names and labels follow conventions."""
    async with running_app(make_settings(env=_env(db_dsn, redis_url_base)), keys) as app:
        touch_every_metric(app.deps.metrics)
        async with aiohttp.ClientSession() as http, http.get(f"{app.base_url}/metrics") as r:
            assert r.status == 200
            ctype = r.headers["Content-Type"]
            body = await r.text()
    assert ctype.startswith("text/plain")
    assert "version=" in ctype
    families = list(text_string_to_metric_families(body))
    ours = [f for f in families if f.name.startswith("coinpilot_")]
    assert len(ours) >= 30
    for fam in ours:
        assert re.fullmatch(r"coinpilot_[a-z0-9_]+", fam.name), fam.name
        if fam.type == "counter":
            assert any(s.name == f"{fam.name}_total" for s in fam.samples), fam.name
        labels = {k for s in fam.samples for k in s.labels if k not in ("le", "quantile")}
        assert labels <= BOUNDED_LABELS, (fam.name, labels - BOUNDED_LABELS)


# Label names whose values come from config or fixed code lists, never from free text.
BOUNDED_LABELS = {
    "symbol",
    "reason",
    "outcome",
    "dependency",
    "kind",
    "service",
    "job",
    "side",
    "direction",
    "regime",
}


async def test_redis_fixture_isolation(redis: aioredis.Redis, keys: Keys) -> None:
    """Keys built through the fixture's prefix stay inside this test's namespace."""
    await redis.set(keys.regime("KRW-BTC"), "BULL")
    assert keys.regime("KRW-BTC").startswith(keys.prefix)
    assert await redis.get(keys.regime("KRW-BTC")) == "BULL"

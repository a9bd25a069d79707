"""Shared fixtures: real PostgreSQL and Redis, each test isolated.

COINPILOT_TEST_DATABASE_URL / COINPILOT_TEST_REDIS_URL choose the servers; otherwise the local
ones on 127.0.0.1 are used when reachable (Redis database 15, never 0), else the same embedded
ones `coinpilot run` starts, once per session. Each test gets its own database (cloned from a
migrated template) and its own Redis key prefix; daemons and CLIs a test starts get that
prefix through COINPILOT_REDIS_KEY_PREFIX.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
import structlog

from coinpilot.adapters import db as dbmod
from coinpilot.adapters.cache import Keys, create_redis
from coinpilot.config import Settings, load_config
from coinpilot.embedded import EmbeddedPostgres, EmbeddedRedis
from tests import hygiene, kept_db
from tests.hygiene import (  # noqa: F401  (hooks: pytest finds them by name here)
    pytest_collection_finish,
    pytest_runtest_teardown,
    pytest_sessionfinish,
    pytest_sessionstart,
)

ROOT = Path(__file__).resolve().parent.parent
TEST_REDIS_DB = 15


@pytest.fixture(autouse=True)
def _own_log_config() -> Iterator[None]:
    """Each test starts from structlog's defaults: a CLI run in-process (quiet at WARNING),
    even one in a module fixture, must not filter the info lines a later test captures."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _with_db(dsn: str, name: str) -> str:
    """Replace the database name of a postgresql:// URI (keeps ?host=... for sockets)."""
    head, _, query = dsn.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def pg_admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A superuser DSN to the `postgres` database of a real server."""
    env = os.environ.get("COINPILOT_TEST_DATABASE_URL")
    if env:
        hygiene.remember_servers(pg_dsn=env)
        yield env
        return
    if _reachable("127.0.0.1", 5432):
        dsn = "postgresql://postgres@127.0.0.1:5432/postgres"
        hygiene.remember_servers(pg_dsn=dsn)
        yield dsn
        return
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="cp-pg-")))
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def redis_url_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = os.environ.get("COINPILOT_TEST_REDIS_URL")
    if env:
        hygiene.remember_servers(redis_url=env)
        yield env
        return
    if _reachable("127.0.0.1", 6379):
        # Not DB 0, which a daemon on this host uses by default: the suite gets its own.
        url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
        hygiene.remember_servers(redis_url=url)
        yield url
        return
    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="cp-redis-")))
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def pg_template(pg_admin_dsn: str) -> Iterator[str]:
    """A database migrated once per session; tests clone it (fast, isolated)."""
    if kept_db.enabled():
        yield asyncio.run(kept_db.template(pg_admin_dsn))
        return
    name = f"cp_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    hygiene.DATABASES.add(name)

    async def create() -> None:
        admin = await asyncpg.connect(pg_admin_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(_with_db(pg_admin_dsn, name))
        try:
            await dbmod.migrate(conn)
        finally:
            await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(pg_admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(create())
    yield name
    asyncio.run(drop())


@contextlib.asynccontextmanager
async def fresh_database(
    admin_dsn: str, prefix: str, template: str | None = None
) -> AsyncIterator[str]:
    """Create a uniquely named database (optionally cloned from ``template``), then drop it."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    hygiene.DATABASES.add(name)
    clone = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{clone}')
    finally:
        await admin.close()
    try:
        yield _with_db(admin_dsn, name)
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def kept_slot(pg_admin_dsn: str) -> Iterator[kept_db.Slot | None]:
    """Under COINPILOT_TEST_KEEP_DB=1 (`make mutation`) this session's kept database."""
    if not kept_db.enabled():
        yield None
        return
    slot = asyncio.run(kept_db.acquire(pg_admin_dsn))
    yield slot
    slot.release()


@pytest.fixture
async def db_dsn(
    pg_admin_dsn: str, pg_template: str, kept_slot: kept_db.Slot | None
) -> AsyncIterator[str]:
    """A fresh, fully migrated database for this test (a kept one reset, see kept_db)."""
    if kept_slot is not None:
        await kept_slot.reset()
        yield kept_slot.dsn
        return
    async with fresh_database(pg_admin_dsn, "cp_t", pg_template) as dsn:
        yield dsn


@pytest.fixture
async def empty_db_dsn(pg_admin_dsn: str) -> AsyncIterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    async with fresh_database(pg_admin_dsn, "cp_e") as dsn:
        yield dsn


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await dbmod.create_pool(db_dsn, min_size=1, max_size=8)
    yield p
    await p.close()


@pytest.fixture
def keys() -> Keys:
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    hygiene.PREFIXES.add(prefix)
    return Keys(prefix=prefix)


@pytest.fixture
async def redis(redis_url_base: str, keys: Keys) -> AsyncIterator[aioredis.Redis]:
    client = create_redis(redis_url_base)
    yield client
    try:
        async for key in client.scan_iter(match=f"{keys.prefix}*", count=500):
            await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build Settings from the shipped YAML with overrides: make_settings(bot={"interval_s": 1})."""
    import yaml

    def build(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        data = yaml.safe_load((ROOT / "config" / "coinpilot.yaml").read_text())
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        path = tmp_path / f"cfg-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(data))
        return load_config(path, environ=env or {})

    return build


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real-candle directory; tests needing it skip where it is absent."""
    if os.environ.get("COINPILOT_LEDGER_PROFILE") == "mutation":
        # mutmut forks a child per mutant from a process whose polars thread pool does not
        # survive the fork: a large parallel read in the child would wait forever.
        pytest.skip("real candle data is not read under `make mutation` (polars after fork)")
    path = Path(os.environ.get("COINPILOT_DATA_DIR", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"real candle data not found at {path} (set COINPILOT_DATA_DIR)")
    return path

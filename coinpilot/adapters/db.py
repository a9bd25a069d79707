"""PostgreSQL: the pool, versioned migrations and the one-daemon-per-account lock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from coinpilot.errors import DependencyDown, FatalError

log = structlog.get_logger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent.parent / "sql"
# Arbitrary but fixed advisory-lock keys (two 32-bit ints in one namespace of ours).
MIGRATION_LOCK = (0x436F696E, 1)
DAEMON_LOCK = (0x436F696E, 2)
_REQUIRES = re.compile(r"^--\s*requires-extension:\s*(\w+)", re.MULTILINE)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ,
            encoder=lambda v: json.dumps(v, default=str),
            decoder=json.loads,
            schema="pg_catalog",
        )


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections decode json/jsonb to Python objects."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            command_timeout=60,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DependencyDown(f"database unreachable: {type(exc).__name__}") from exc
    assert pool is not None
    return pool


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path
    requires_extension: str | None

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    found = []
    for path in sorted(sql_dir.glob("[0-9][0-9][0-9]_*.sql")):
        match = _REQUIRES.search(path.read_text(encoding="utf-8"))
        found.append(Migration(path.stem, path, match.group(1) if match else None))
    return found


async def _available_extensions(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT name FROM pg_available_extensions")
    return {r["name"] for r in rows}


async def migrate(conn: asyncpg.Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction; return the versions applied.

    Safe when several processes start at once: a session advisory lock serialises them and
    the second one finds nothing left to do. A migration that needs an extension the server
    lacks is recorded as skipped, so the schema still works without it.
    """
    await conn.execute("SELECT pg_advisory_lock($1, $2)", *MIGRATION_LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    text PRIMARY KEY,
                   applied_at timestamptz NOT NULL DEFAULT now(),
                   skipped    boolean NOT NULL DEFAULT false)"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        extensions = await _available_extensions(conn)
        applied = []
        for mig in discover(sql_dir):
            if mig.version in done:
                continue
            skip = mig.requires_extension is not None and mig.requires_extension not in extensions
            async with conn.transaction():
                if not skip:
                    await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, skipped) VALUES ($1, $2)",
                    mig.version,
                    skip,
                )
            log.info("migration_applied", version=mig.version, skipped=skip)
            applied.append(mig.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", *MIGRATION_LOCK)


async def acquire_daemon_lock(conn: asyncpg.Connection) -> None:
    """Hold, for this connection's lifetime, the lock that makes us the account's only daemon."""
    got = await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *DAEMON_LOCK)
    if not got:
        raise FatalError(
            "another coinpilot daemon is already running against this database; "
            "stop it first (two daemons would trade the same ledger)"
        )


class DaemonLock:
    """The one-daemon lock, held on a connection of its own and re-verified every cycle.

    PostgreSQL frees a session advisory lock with its session, silently: a server restart or
    a terminated backend would let a second daemon take the same ledger. ``check`` proves
    the session is still alive (so the lock is still ours); after a loss it reconnects and
    tries to take the lock back, and raises ``FatalError`` when another daemon has it. The
    bot trades only while ``held``.
    """

    def __init__(self, dsn: str, timeout_s: float = 5.0) -> None:
        self.dsn, self.timeout_s = dsn, timeout_s
        self.held = False
        self.lost_reason: str | None = None
        self._conn: asyncpg.Connection | None = None
        self._guard = asyncio.Lock()

    async def acquire(self) -> None:
        """Take the lock at start-up: ``FatalError`` when another daemon holds it."""
        try:
            self._conn = await asyncpg.connect(self.dsn, timeout=self.timeout_s)
        except (OSError, asyncpg.PostgresError) as exc:
            raise DependencyDown(f"database unreachable: {type(exc).__name__}") from exc
        try:
            await acquire_daemon_lock(self._conn)
        except FatalError:
            await self.close()
            raise
        self.held = True

    async def check(self) -> bool:
        """Whether we still hold the lock; after a loss, one attempt to take it back."""
        async with self._guard:
            if self.held and await self._alive():
                return True
            if self.held:
                self.held = False
                self.lost_reason = "daemon lock lost (database session ended): not trading"
                log.error("daemon_lock_lost", action="trading stopped until it is re-acquired")
                await self.close()
            try:
                await self.acquire()
            except DependencyDown:
                return False  # the database is still away: try again next time
            log.warning("daemon_lock_reacquired")
            self.lost_reason = None
            return True

    async def _alive(self) -> bool:
        if self._conn is None or self._conn.is_closed():
            return False
        try:
            await self._conn.fetchval("SELECT 1", timeout=self.timeout_s)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(
                OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError
            ):
                await asyncio.wait_for(conn.close(), timeout=self.timeout_s)
        if conn is not None and not conn.is_closed():
            conn.terminate()


async def ping(pool: asyncpg.Pool, timeout_s: float = 2.0) -> bool:
    try:
        await pool.fetchval("SELECT 1", timeout=timeout_s)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False
    return True


def record_to_dict(record: asyncpg.Record | None) -> dict[str, Any] | None:
    return None if record is None else dict(record)

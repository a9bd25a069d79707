"""Kept databases for `make mutation`: one migrated database reused test after test.

A mutation run starts a new test session for every mutant. Creating, migrating and
dropping a database costs PostgreSQL a second or two each (a drop waits for every backend
to release the files), so the usual fresh database per test, cloned from a template made
per session, cost far more than the ledger tests themselves.

With COINPILOT_TEST_KEEP_DB=1 a session takes one of a few kept databases (a lock file
says which one is free, so parallel sessions never share one) and every
test gets it back as the migrations left it: extra tables, triggers and functions a test
created dropped, every table emptied and its sequences restarted, and the rows the
migrations seed put back. The template is kept too. `python -m tests.kept_db drop`
removes them all (`make mutation` does, at the end).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import asyncpg

from coinpilot.adapters import db as dbmod

ENV = "COINPILOT_TEST_KEEP_DB"
ROOT = Path(__file__).resolve().parent.parent
# mutmut runs the tests from its copy of the project in mutants/: the same checkout.
CHECKOUT = ROOT.parent if ROOT.name == "mutants" else ROOT
# One set per checkout, so two checkouts sharing a server never take each other's.
PREFIX = "cp_keep_" + hashlib.sha256(str(CHECKOUT).encode()).hexdigest()[:8]
TEMPLATE = f"{PREFIX}_tpl"
SLOTS = 8
LOCK_CLASS = 0x6B657074  # "kept": advisory lock key space of these databases
LOCKS = Path(tempfile.gettempdir())
BASELINE = "_kept_baseline"  # what the migrations left, recorded once per kept database


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


def _with_db(dsn: str, name: str) -> str:
    head, _, query = dsn.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


async def _exists(admin: asyncpg.Connection, name: str) -> bool:
    return bool(await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))


async def template(admin_dsn: str) -> str:
    """The kept migrated template, made once (under a lock: sessions may start together)."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute("SELECT pg_advisory_lock($1, $2)", LOCK_CLASS, SLOTS)
        if not await _exists(admin, TEMPLATE):
            await admin.execute(f'CREATE DATABASE "{TEMPLATE}_new"')
            conn = await asyncpg.connect(_with_db(admin_dsn, f"{TEMPLATE}_new"))
            try:
                await dbmod.migrate(conn)
            finally:
                await conn.close()
            # Only a completely migrated template gets the name that is looked for.
            await admin.execute(f'ALTER DATABASE "{TEMPLATE}_new" RENAME TO "{TEMPLATE}"')
        return TEMPLATE
    finally:
        await admin.close()


class Slot:
    """One kept database held by this session until ``release``."""

    def __init__(self, admin_dsn: str, lock: int, name: str) -> None:
        self.dsn = _with_db(admin_dsn, name)
        self.name = name
        self._lock = lock

    def release(self) -> None:
        os.close(self._lock)  # and with it the lock (also when the process dies)

    async def reset(self) -> None:
        """Back to the state the migrations left: see the module docstring."""
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                   WHERE datname = current_database() AND pid <> pg_backend_pid()"""
            )
            base = {
                r["kind"]: json.loads(r["data"])
                for r in await conn.fetch(f"SELECT kind, data::text FROM {BASELINE}")
            }
            now = await _catalog(conn)
            for trigger, table in set(map(tuple, now["triggers"])) - set(
                map(tuple, base["triggers"])
            ):
                await conn.execute(f'DROP TRIGGER IF EXISTS "{trigger}" ON {table}')
            for fn in set(now["functions"]) - set(base["functions"]):
                await conn.execute(f"DROP FUNCTION IF EXISTS {fn} CASCADE")
            for table in set(now["tables"]) - {*base["tables"], BASELINE}:
                await conn.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
            tables = [t for t in base["tables"] if t not in ("schema_migrations", BASELINE)]
            sequences = await conn.fetch(
                "SELECT schemaname, sequencename FROM pg_sequences WHERE schemaname = 'public'"
            )
            # DELETE, not TRUNCATE: the tables are tiny and a TRUNCATE writes new files.
            # The replica role skips the foreign-key triggers, so the order does not matter.
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                for table in tables:
                    await conn.execute(f"DELETE FROM {table}")
                for seq in sequences:
                    await conn.execute(f'ALTER SEQUENCE "{seq["sequencename"]}" RESTART')
                for table, rows in base["seeds"].items():
                    await conn.execute(
                        f"""INSERT INTO {table} OVERRIDING SYSTEM VALUE
                            SELECT * FROM jsonb_populate_recordset(NULL::{table}, $1::jsonb)""",
                        json.dumps(rows),
                    )
        finally:
            await conn.close()


async def _catalog(conn: asyncpg.Connection) -> dict[str, list]:  # type: ignore[type-arg]
    tables = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    )
    triggers = await conn.fetch(
        """SELECT t.tgname, t.tgrelid::regclass::text AS tbl FROM pg_trigger t
           JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE NOT t.tgisinternal AND n.nspname = 'public'"""
    )
    functions = await conn.fetch(
        """SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"""
    )
    return {
        "tables": [r["tablename"] for r in tables],
        "triggers": [[r["tgname"], r["tbl"]] for r in triggers],
        "functions": [r["fn"] for r in functions],
    }


async def _prepare(admin_dsn: str, admin: asyncpg.Connection, name: str) -> None:
    """Clone the template and record its baseline; a half-made one is made again."""
    if await _exists(admin, name):
        conn = await asyncpg.connect(_with_db(admin_dsn, name))
        try:
            ready = await conn.fetchval(
                f"SELECT 1 FROM pg_tables WHERE tablename = '{BASELINE}'"
            ) and await conn.fetchval(f"SELECT 1 FROM {BASELINE} WHERE kind = 'ready'")
        finally:
            await conn.close()
        if ready:
            return
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{await template(admin_dsn)}"')
    conn = await asyncpg.connect(_with_db(admin_dsn, name))
    try:
        catalog = await _catalog(conn)
        seeds = {}
        for table in catalog["tables"]:
            if table == "schema_migrations":
                continue
            rows = await conn.fetchval(f"SELECT jsonb_agg(t) FROM {table} t")
            if rows is not None:
                seeds[table] = json.loads(rows)
        await conn.execute(f"CREATE TABLE {BASELINE} (kind text PRIMARY KEY, data jsonb)")
        for kind, data in [*catalog.items(), ("seeds", seeds), ("ready", True)]:
            await conn.execute(
                f"INSERT INTO {BASELINE} VALUES ($1, $2::jsonb)", kind, json.dumps(data)
            )
    finally:
        await conn.close()


async def acquire(admin_dsn: str) -> Slot:
    """A free kept database, made when missing; held until ``Slot.release``."""
    for i in range(SLOTS):
        name = f"{PREFIX}_{i}"
        lock = os.open(LOCKS / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            continue
        try:
            admin = await asyncpg.connect(admin_dsn)
            try:
                await _prepare(admin_dsn, admin, name)
            finally:
                await admin.close()
        except BaseException:
            os.close(lock)
            raise
        return Slot(admin_dsn, lock, name)
    raise RuntimeError(f"all {SLOTS} kept test databases are in use")


async def drop_all(admin_dsn: str) -> list[str]:
    admin = await asyncpg.connect(admin_dsn)
    try:
        names = [
            r["datname"]
            for r in await admin.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", PREFIX + "%"
            )
        ]
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return names
    finally:
        await admin.close()


def main(argv: list[str]) -> int:
    if argv[1:] != ["drop"]:
        print("usage: python -m tests.kept_db drop", file=sys.stderr)
        return 2
    dsn = os.environ.get(
        "COINPILOT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    for name in asyncio.run(drop_all(dsn)):
        print(f"dropped {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

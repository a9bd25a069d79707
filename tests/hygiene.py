"""Suite hygiene, checked by the test run itself.

- At the end of the session nothing this session created may be left behind: no database
  it made, no Redis key under a prefix it handed out, and no new Redis key written
  without any prefix at all (a test that forgot its own). A leftover fails the session.
- An asyncio error logged while a test ran ("Task exception was never retrieved", "Task was
  destroyed but it is pending", an exception in a callback) fails that test's teardown; one
  logged after the last test fails the session.
- ResourceWarning (an unclosed client, socket, transport or loop) and unraisable exceptions
  are errors through pyproject's filterwarnings ("error" with no ignore for them): whatever
  a test opens, it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

import pytest

try:  # pytest's own per-phase check; only its timing is changed here
    from _pytest.unraisableexception import collect_unraisable
except ImportError:  # pragma: no cover - a pytest without it reports at the next phase
    collect_unraisable = None  # type: ignore[assignment]

# Databases and key prefixes this session created, and where the servers are.
DATABASES: set[str] = set()
PREFIXES: set[str] = set()
SERVERS: dict[str, str] = {}
BARE_AT_START: set[str] = set()  # unprefixed keys already there (not this session's)
# Key roots of coinpilot.adapters.cache.Keys: a key starting with one has no test prefix.
UNPREFIXED_ROOTS = ("market:", "bot:", "position:", "coinpilot:", "ai:")


class _AsyncioErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage().splitlines()[0])

    def drain(self) -> list[str]:
        out, self.records = self.records, []
        return out


ASYNCIO_ERRORS = _AsyncioErrors()


def pytest_sessionstart(session: pytest.Session) -> None:
    logging.getLogger("asyncio").addHandler(ASYNCIO_ERRORS)


def pytest_collection_finish(session: pytest.Session) -> None:
    # The libraries and test modules imported by now live as long as the session; moved out
    # of the collector's view, they make the collection after each test cheap.
    gc.collect()
    gc.freeze()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    result = yield
    # An object dropped unclosed (or a task dropped with its exception) reports itself when
    # collected; collect now so the report names this test, not whichever runs next.
    gc.collect()
    if collect_unraisable is not None:
        collect_unraisable(item.config)
    problems = ASYNCIO_ERRORS.drain()
    if problems:
        raise AssertionError(f"asyncio reported during {item.nodeid}: {problems}")
    return result


def remember_servers(*, redis_url: str | None = None, pg_dsn: str | None = None) -> None:
    if redis_url is not None and "redis" not in SERVERS:
        SERVERS["redis"] = redis_url
        BARE_AT_START.update(_unprefixed_redis_keys(redis_url)[1])
    if pg_dsn is not None:
        SERVERS.setdefault("postgres", pg_dsn)


def _unprefixed_redis_keys(url: str) -> tuple[list[str], list[str]]:
    import redis

    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        mine, bare = [], []
        for key in client.scan_iter(count=1000):
            if any(key.startswith(p) for p in PREFIXES):
                mine.append(key)
            elif key.startswith(UNPREFIXED_ROOTS) and key not in BARE_AT_START:
                bare.append(key)
        return mine, bare
    finally:
        client.close()


async def _databases_left(dsn: str) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname = ANY($1::text[])", sorted(DATABASES)
        )
        return [r["datname"] for r in rows]
    finally:
        await conn.close()


def leftovers() -> list[str]:
    """What this session left behind, described; [] when clean."""
    found: list[str] = []
    gc.collect()  # a task dropped without being awaited reports itself when collected
    found += [f"asyncio after the last test: {m}" for m in ASYNCIO_ERRORS.drain()]
    url = SERVERS.get("redis")
    if url:
        try:
            mine, bare = _unprefixed_redis_keys(url)
        except OSError:  # an embedded server stopped with the session: nothing left on it
            mine, bare = [], []
        found += [f"redis key left under a test prefix: {k}" for k in mine[:20]]
        # Keys with no prefix at all: a concurrent daemon on this Redis database would show
        # here too, which is why the suite uses its own database number.
        found += [f"redis key written without a test prefix: {k}" for k in bare[:20]]
    dsn = SERVERS.get("postgres")
    if dsn and DATABASES:
        with contextlib.suppress(OSError):  # an embedded server stopped with the session
            found += [f"database left: {d}" for d in asyncio.run(_databases_left(dsn))]
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    problems = leftovers()
    if not problems:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "left behind by this test session", red=True)
        for line in problems:
            reporter.write_line(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED

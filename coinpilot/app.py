"""Composition root: builds every dependency and service, owns start-up and shutdown.

Start-up: embedded servers when no URLs are set → pool → migrations → single-daemon lock (on
its own connection, re-verified every cycle) → Redis → HTTP → services → READY=1; a failure
on the way is one log line naming the setting (daemon_start_failed). Shutdown (SIGTERM,
SIGINT, or SIGHUP when the terminal closes): stop intake, let the current cycles finish
within the drain budget, cancel what is left, close resources in reverse order, STOPPING=1,
exit 0. An unexpected error in a service ends the process non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import asyncpg
import redis.asyncio as aioredis
import structlog

from coinpilot.adapters import db
from coinpilot.adapters.cache import Keys, create_redis
from coinpilot.clock import Clock, SystemClock
from coinpilot.config import Settings
from coinpilot.embedded import EmbeddedPostgres, EmbeddedRedis, state_path
from coinpilot.errors import DependencyDown, FatalError
from coinpilot.observability import Health, Metrics
from coinpilot.sdnotify import SdNotifier, watchdog_interval_s
from coinpilot.services.minute_events import MinuteEvents

log = structlog.get_logger(__name__)


class Service(Protocol):
    name: str

    @property
    def max_silence_s(self) -> float: ...

    async def run(self, stop: asyncio.Event) -> None: ...


@dataclass
class Deps:
    """Everything services share. Built once by `open_deps`, closed in reverse order."""

    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    http: aiohttp.ClientSession
    clock: Clock = field(default_factory=SystemClock)
    metrics: Metrics = field(default_factory=Metrics)
    health: Health = field(default_factory=Health)
    keys: Keys = field(default_factory=Keys)
    services: list[Service] = field(default_factory=list)
    before_scrape: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    # "Minute stored" events: the collector publishes, the bot subscribes.
    minute_events: MinuteEvents = field(default_factory=MinuteEvents)
    lock: db.DaemonLock | None = None  # the one-daemon lock; trading stops while it is lost


class StartupError(FatalError):
    """The daemon cannot start; the message names the setting to change."""


def _state_dir(settings: Settings, *parts: str) -> Path:
    try:
        return state_path(settings.state_dir, *parts)
    except OSError as exc:
        raise StartupError(
            f"state_dir: cannot use {settings.state_dir / Path(*parts)} ({exc.strerror}); "
            "set STATE_DIRECTORY or state_dir to a writable directory"
        ) from exc


async def resolve_urls(stack: contextlib.AsyncExitStack, settings: Settings) -> tuple[str, str]:
    """The database and Redis URLs: from the environment, or embedded servers we start."""
    if settings.env.database_url is not None:
        dsn = settings.env.database_url.get_secret_value()
    else:
        pg = EmbeddedPostgres(_state_dir(settings, "postgres"))
        try:
            dsn = await asyncio.to_thread(pg.start)
        except Exception as exc:
            raise StartupError(
                f"COINPILOT_DATABASE_URL is not set and the embedded database under "
                f"{pg.data_dir} did not start ({type(exc).__name__}: {exc})"
            ) from exc
        stack.callback(pg.stop)
        log.info("embedded_database", reason="COINPILOT_DATABASE_URL is not set")
    if settings.env.redis_url is not None:
        url = settings.env.redis_url.get_secret_value()
    else:
        rd = EmbeddedRedis(_state_dir(settings, "redis"))
        try:
            url = await asyncio.to_thread(rd.start)
        except (OSError, RuntimeError) as exc:
            raise StartupError(
                f"COINPILOT_REDIS_URL is not set and the embedded Redis under {rd.data_dir} "
                f"did not start ({exc})"
            ) from exc
        stack.callback(rd.stop)
        log.info("embedded_redis", reason="COINPILOT_REDIS_URL is not set")
    return dsn, url


async def open_database(
    stack: contextlib.AsyncExitStack, settings: Settings, max_size: int = 2
) -> asyncpg.Pool:
    """A migrated pool for a command, closed (and any embedded server stopped) by ``stack``."""
    dsn, _ = await resolve_urls(stack, settings)
    pool = await db.create_pool(dsn, min_size=1, max_size=max_size)
    stack.push_async_callback(pool.close)
    async with pool.acquire() as conn:
        await db.migrate(conn)
    return pool


async def open_deps(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    *,
    clock: Clock | None = None,
    keys: Keys | None = None,
) -> Deps:
    dsn, redis_url = await resolve_urls(stack, settings)
    try:
        pool = await db.create_pool(dsn, min_size=2, max_size=10)
    except DependencyDown as exc:
        cause = exc.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
        where = (
            "COINPILOT_DATABASE_URL"
            if settings.env.database_url is not None
            else "the embedded database"
        )
        raise StartupError(f"{where}: database unreachable ({detail})") from exc
    stack.push_async_callback(pool.close)
    async with pool.acquire() as conn:
        await db.migrate(conn)
    # The lock lives on a connection of its own, re-verified every cycle (DaemonLock).
    lock = db.DaemonLock(dsn)
    await lock.acquire()
    stack.push_async_callback(lock.close)
    redis = create_redis(redis_url)
    stack.push_async_callback(redis.aclose)
    http = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30), headers={"User-Agent": "coinpilot"}
    )
    stack.push_async_callback(http.close)
    return Deps(
        settings=settings,
        pool=pool,
        redis=redis,
        http=http,
        clock=clock or SystemClock(),
        keys=keys or Keys(settings.redis_key_prefix),
        lock=lock,
    )


def build_services(deps: Deps) -> list[Service]:
    """Every long-running service, in start order. Each plugs in here and nowhere else."""
    services: list[Service] = []
    for factory in SERVICE_FACTORIES:
        services.extend(factory(deps))
    return services


ServiceFactory = Callable[[Deps], Sequence[Service]]
SERVICE_FACTORIES: list[ServiceFactory] = []
HTTP_INSTALLERS: list[Callable[[Deps], Any]] = []


def services_healthy(deps: Deps) -> bool:
    now = deps.clock.now()
    for svc in deps.services:
        state = deps.health.service(svc.name)
        if not state.running:
            return False
        seen = state.last_cycle or state.last_success
        if seen is not None and now - seen > timedelta(seconds=svc.max_silence_s):
            return False
    return True


async def _watchdog(deps: Deps, notifier: SdNotifier, stop: asyncio.Event) -> None:
    """Ping systemd only while every loop is alive, so a hung loop gets us restarted."""
    interval = watchdog_interval_s()
    if interval is None:
        return
    while not stop.is_set():
        if services_healthy(deps):
            notifier.notify("WATCHDOG=1")
        else:
            log.warning("watchdog_withheld", services=deps.health.snapshot())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Run the daemon until `stop` is set or a signal arrives; return the exit status."""
    from coinpilot.web.auth import require_token_when_exposed

    # Before anything starts: a public bind without a dashboard token is a config error.
    require_token_when_exposed(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP too: closing the terminal of `make run` must stop (and clean up) like SIGTERM.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    notifier = SdNotifier()
    try:
        async with contextlib.AsyncExitStack() as stack:
            deps = await open_deps(stack, settings)
            deps.services = build_services(deps)
            installers = [inst(deps) for inst in HTTP_INSTALLERS]
            runner, port = await _listen(deps, installers)
            stack.push_async_callback(runner.cleanup)
            log.info(
                "daemon_ready",
                http=f"{settings.app.http.host}:{port}",
                symbols=list(settings.app.symbols),
                ai_mode=settings.ai_mode,
                services=[s.name for s in deps.services],
            )
            if settings.ai_mode == "off":
                log.info("ai_off", reason="no ANTHROPIC_API_KEY or ai.mode: off")
            notifier.notify("READY=1")
            await _run_services(deps, notifier, stop)
            notifier.notify("STOPPING=1")
            log.info("daemon_stopping")
    except StartupError as exc:
        log.error("daemon_start_failed", error=str(exc))
        return 1
    except FatalError as exc:
        log.error("daemon_fatal", error=str(exc))
        return 1
    except DependencyDown as exc:
        log.error("daemon_dependency_down", error=str(exc))
        return 1
    log.info("daemon_stopped")
    return 0


async def _listen(deps: Deps, installers: list[Any]) -> tuple[Any, int]:
    from coinpilot.httpserver import start_http

    host, port = deps.settings.app.http.host, deps.settings.app.http.port
    try:
        return await start_http(deps, host, port, installers)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StartupError(
            f"http.port: cannot listen on {host}:{port} ({reason}); choose another with "
            "COINPILOT_HTTP_PORT or http.port (and COINPILOT_HTTP_HOST or http.host)"
        ) from exc


async def _run_services(deps: Deps, notifier: SdNotifier, stop: asyncio.Event) -> None:
    tasks = [asyncio.create_task(svc.run(stop), name=svc.name) for svc in deps.services]
    tasks.append(asyncio.create_task(_watchdog(deps, notifier, stop), name="watchdog"))
    stopper = asyncio.create_task(stop.wait(), name="stop")
    pending: set[asyncio.Task[Any]] = set(tasks)
    failure: BaseException | None = None
    while not stop.is_set():
        done, pending = await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
        pending.discard(stopper)
        for task in done - {stopper}:
            if not task.cancelled() and task.exception() is not None:
                failure = task.exception()
                log.error("service_crashed", service=task.get_name(), error=repr(failure))
                stop.set()
    stop.set()
    notifier.notify("STOPPING=1")
    budget = deps.settings.app.bot.drain_budget_s
    if pending:
        _, still = await asyncio.wait(pending, timeout=budget)
        for task in still:
            task.cancel()
        if still:
            log.warning("drain_budget_exceeded", cancelled=[t.get_name() for t in still])
            await asyncio.gather(*still, return_exceptions=True)
    stopper.cancel()
    if failure is not None:
        raise FatalError(f"a service stopped unexpectedly: {failure!r}") from failure

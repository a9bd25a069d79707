"""Collector: closed 1-minute candles from Upbit into market_data, gaps filled on the way.

Filling walks FORWARD in windows of ``per_request`` minutes: each request asks for the
candles before ``window_end`` (Upbit's ``to`` is exclusive), and each window is stored in
its own transaction before the next is asked for. So whatever is stored is a contiguous
prefix of the range, the newest stored minute is the resume point after a crash, and a
window without trades is asked for exactly once, never again.

Every window ends at or before the current minute's start, so the still-forming minute is
never requested; a row is additionally stored only when ``ts + 60 s <= now``. Each cycle
re-reads the last ``recent_candles`` stored minutes, so a closed minute Upbit revises later
(or one stored while clocks disagreed) is replaced by the upsert.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from coinpilot.adapters import marketdata as md
from coinpilot.adapters.upbit import MAX_COUNT, UpbitClient, UpbitError, unknown_symbols
from coinpilot.clock import Clock, floor_minute
from coinpilot.config import CollectorConfig
from coinpilot.errors import DependencyDown
from coinpilot.observability import Health, Metrics
from coinpilot.services.base import PeriodicService
from coinpilot.services.candle_stream import CandleStream
from coinpilot.services.fanout import gather_or_cancel
from coinpilot.services.minute_events import MinuteEvents

log = structlog.get_logger(__name__)

MINUTE = timedelta(minutes=1)
ProgressFn = Callable[[str, int, datetime, datetime], None]
StoredFn = Callable[[list[md.StoredMinute]], None]
# The markets with an open position (the ledger's), watched even when not configured.
HeldFn = Callable[[], Collection[str] | Awaitable[Collection[str]]]


@dataclass
class SyncResult:
    symbol: str
    stored: int = 0
    requests: int = 0
    newest: datetime | None = None
    error: str | None = None


class CandleFiller:
    """Pages one symbol's closed candles over [start, end) into the database."""

    def __init__(
        self,
        client: UpbitClient,
        pool: asyncpg.Pool,
        metrics: Metrics,
        *,
        per_request: int = MAX_COUNT,
        on_page: ProgressFn | None = None,
        on_stored: StoredFn | None = None,
    ) -> None:
        self.client = client
        self.pool = pool
        self.metrics = metrics
        self.per_request = per_request
        self.on_page = on_page
        # Told, after each commit, which minutes were inserted or changed.
        self.on_stored = on_stored

    async def fill(self, symbol: str, start: datetime, end: datetime, now: datetime) -> SyncResult:
        """Store every closed candle with start <= ts < end; resumable window by window."""
        result = SyncResult(symbol)
        end = min(end, floor_minute(now))
        cursor = floor_minute(start)
        while cursor < end:
            window_end = min(cursor + self.per_request * MINUTE, end)
            minutes = int((window_end - cursor) / MINUTE)
            page = await self.client.candles(symbol, to=window_end, count=minutes)
            result.requests += 1
            rows = [r for r in page.rows if cursor <= r.ts < window_end and r.ts + MINUTE <= now]
            stored = await self._store(rows)
            if stored:
                self.metrics.candles_stored.labels(symbol=symbol).inc(stored)
            result.stored += stored
            if rows:
                result.newest = max(result.newest or rows[-1].ts, rows[-1].ts)
            cursor = window_end
            if self.on_page is not None:
                self.on_page(symbol, stored, cursor, end)
        return result

    async def _store(self, rows: list[md.CandleRow]) -> int:
        if self.on_stored is None:
            return await md.upsert_candles(self.pool, rows)
        changed = await md.upsert_candles_changed(self.pool, rows)
        if changed:
            self.on_stored(changed)
        return len(changed)

    async def resume_point(self, symbol: str, start: datetime, end: datetime) -> datetime:
        """Where a fill of [start, end) continues: just after the newest minute stored in it."""
        newest = await self.pool.fetchval(
            """SELECT max(ts) FROM market_data
               WHERE symbol = $1 AND interval = $2 AND ts >= $3 AND ts < $4""",
            symbol,
            md.INTERVAL,
            start,
            end,
        )
        return start if newest is None else max(start, newest + MINUTE)


class _BackfillProgress:
    PROGRESS_S = 10.0

    def __init__(self, symbols: int) -> None:
        self.symbols, self.stored, self.done = symbols, 0, 0
        self.last = time.monotonic()

    def __call__(self, symbol: str, stored: int, cursor: datetime, end: datetime) -> None:
        self.stored += stored
        self.done += cursor >= end
        if time.monotonic() - self.last >= self.PROGRESS_S:
            self.last = time.monotonic()
            log.info("collector_backfill_progress", symbols_done=self.done,
                     symbols=self.symbols, stored=self.stored)  # fmt: skip


class Collector(PeriodicService):
    name = "collector"

    def __init__(
        self,
        *,
        client: UpbitClient,
        pool: asyncpg.Pool,
        symbols: Sequence[str],
        config: CollectorConfig,
        clock: Clock,
        health: Health,
        metrics: Metrics,
        events: MinuteEvents | None = None,
        held: HeldFn | None = None,
    ) -> None:
        super().__init__(
            clock=clock,
            health=health,
            metrics=metrics,
            interval_s=config.interval_s,
            offset_s=config.offset_s,
        )
        self.client = client
        self.pool = pool
        self.config = config
        self.symbols = list(symbols)
        self.active_symbols = list(symbols)
        self.symbols_checked = False
        self.events = events
        self.held = held
        self.held_symbols: list[str] = []  # held markets that are not configured
        # The start-up catch-up stores days of minutes: those are not announced one by one.
        self.announcing = False
        self.filler = CandleFiller(
            client,
            pool,
            metrics,
            per_request=config.candles_per_request,
            on_stored=self.announce if events is not None else None,
        )
        # collector.source: websocket sets this; REST then fills gaps and re-reads minutes.
        self.stream: CandleStream | None = None
        self._sync = asyncio.Lock()
        self._stop: asyncio.Event | None = None
        self._stream_task: asyncio.Task[None] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """REST cycles as always; with a stream, the socket runs beside them after start-up."""
        self._stop = stop
        try:
            await super().run(stop)
        finally:
            if self._stream_task is not None:
                await self._stream_task

    def _start_stream(self) -> None:
        if self.stream is not None and self._stop is not None and self._stream_task is None:
            self._stream_task = asyncio.create_task(self.stream.run(self._stop), name="stream")

    async def startup(self) -> None:
        """Check the symbols once, then catch up (the backfill) before the first cycle.

        Bounded by ``backfill_days``; a line of progress at most every ``PROGRESS_S``.
        """
        await self.check_symbols()
        self.filler.on_page = _BackfillProgress(len(self.active_symbols))
        try:
            results = await self.run_once()
        except UpbitError as exc:
            log.error("collector_backfill_failed", error=str(exc))
            return
        finally:
            self.filler.on_page = None
            self.announcing = True
            if self.events is not None:
                self.events.caught_up.set()
            self._start_stream()
        log.info(
            "collector_backfilled",
            stored=sum(r.stored for r in results),
            requests=sum(r.requests for r in results),
            failed=[r.symbol for r in results if r.error],
        )

    async def check_symbols(self) -> list[str]:
        """Leave out markets Upbit does not list; report them once. Returns those left out."""
        try:
            listed = await self.client.listed_markets()
        except UpbitError as exc:
            log.warning("symbols_check_failed", error=str(exc), kind=exc.kind)
            return []
        self.symbols_checked = True
        missing = unknown_symbols(self.symbols, listed)
        if missing:
            log.error("symbols_unavailable", symbols=missing, reason="not listed by Upbit")
        self.active_symbols = [s for s in self.symbols if s not in missing]
        return missing

    def announce(self, changed: list[md.StoredMinute]) -> None:
        """Publish each minute a commit inserted or changed (not during the catch-up)."""
        if self.events is None or not self.announcing:
            return
        now = self.clock.now()
        for minute in changed:
            latency = (now - minute.ts - MINUTE).total_seconds()
            self.metrics.minute_store_latency.labels(kind="rest").observe(max(0.0, latency))
            self.events.publish(
                minute.symbol, minute.ts, corrected=not minute.inserted, source="rest"
            )

    async def refresh_held(self) -> list[str]:
        """The held markets outside the configuration; a start-up warning names them once."""
        if self.held is None:
            return self.held_symbols
        try:
            got = self.held()
            held = await got if inspect.isawaitable(got) else got
        except (asyncpg.PostgresError, OSError, DependencyDown) as exc:
            log.warning("held_symbols_unreadable", error=str(exc)[:200])
            return self.held_symbols
        extra = sorted(set(held) - set(self.symbols))
        if extra and extra != self.held_symbols:
            log.warning(
                "watching_held_symbols", symbols=extra, reason="open position, not in config"
            )
        self.held_symbols = extra
        return extra

    def watched(self) -> list[str]:
        """Every market collected: the configured ones Upbit lists, then the held ones."""
        return self.active_symbols + [s for s in self.held_symbols if s not in self.active_symbols]

    async def run_once(self, *, upto: datetime | None = None) -> list[SyncResult]:
        """Fetch and store every watched symbol's closed candles up to the clock's now
        (or only the minutes before ``upto``). While the stream is up, the minute that just
        closed is the stream's: REST re-reads the ones before it (late corrections, misses)."""
        if upto is None and self.stream is not None and self.stream.connected:
            upto = floor_minute(self.clock.now()) - MINUTE
        async with self._sync:
            return await self._run_once(upto)

    async def fill_gap(self) -> list[SyncResult]:
        """Every closed minute up to now over REST (after the stream was down)."""
        async with self._sync:
            return await self._run_once(None)

    async def _run_once(self, upto: datetime | None) -> list[SyncResult]:
        if not self.symbols_checked:
            await self.check_symbols()
        await self.refresh_held()
        now = self.clock.now()
        symbols = self.watched()
        newest = await md.newest_closed_ts_many(self.pool, symbols)
        results = await gather_or_cancel(
            self.sync_symbol(s, newest.get(s), now, upto=upto) for s in symbols
        )
        failed = [r for r in results if r.error]
        log.info(
            "collect_cycle",
            symbols=len(results),
            stored=sum(r.stored for r in results),
            requests=sum(r.requests for r in results),
            failed=[r.symbol for r in failed],
        )
        if failed and len(failed) == len(results):
            raise UpbitError("all_failed", f"no symbol collected ({failed[0].error})")
        return list(results)

    async def sync_symbol(
        self, symbol: str, newest: datetime | None, now: datetime, *, upto: datetime | None = None
    ) -> SyncResult:
        """One symbol's fill; any failure is logged and counted here and never spreads."""
        floor = floor_minute(now) - timedelta(days=self.config.backfill_days)
        start = (
            floor
            if newest is None
            else max(floor, newest - (self.config.recent_candles - 1) * MINUTE)
        )
        end = floor_minute(now) if upto is None else min(floor_minute(now), upto)
        try:
            result = await self.filler.fill(symbol, start, end, now)
        except (UpbitError, DependencyDown, asyncpg.PostgresError, OSError) as exc:
            return self._failed(symbol, newest, now, exc)
        except Exception as exc:  # a bug for one symbol must not stop the others
            log.exception("collect_crashed", symbol=symbol)
            return self._failed(symbol, newest, now, exc)
        stored_newest = max(filter(None, (newest, result.newest)), default=None)
        self._record_age(symbol, stored_newest, now)
        result.newest = stored_newest
        return result

    def _failed(
        self, symbol: str, newest: datetime | None, now: datetime, exc: Exception
    ) -> SyncResult:
        kind = getattr(exc, "kind", type(exc).__name__)
        self.metrics.symbol_errors.labels(symbol=symbol).inc()
        log.warning("collect_failed", symbol=symbol, kind=kind, error=str(exc)[:200])
        self._record_age(symbol, newest, now)
        return SyncResult(symbol, newest=newest, error=f"{kind}: {exc}"[:300])

    def _record_age(self, symbol: str, newest: datetime | None, now: datetime) -> None:
        if newest is not None:
            self.metrics.candle_age.labels(symbol=symbol).set((now - newest).total_seconds())


def replay_collector(
    *,
    http: Any,
    base_url: str,
    pool: asyncpg.Pool,
    symbols: Sequence[str],
    config: CollectorConfig,
    clock: Clock,
    metrics: Metrics,
    health: Health,
) -> Collector:
    """A collector for simulated-clock replays: no pacing and no backoff, so nothing sleeps.

    Pair it with a fake whose clock is the same SimulatedClock and whose rate limit is off;
    then ``await collector.run_once()`` after each ``clock.advance(60)`` stores exactly the
    minutes that closed. A busy machine must not change a replay's outcome, so the timeout
    is generous and a failed request is retried at once (the simulated clock does not move).
    """
    client = UpbitClient(
        http,
        base_url,
        clock=clock,
        metrics=metrics,
        timeout_s=60.0,
        requests_per_second=None,
        max_retries=3,
        retry_base_s=0.0,
    )
    return Collector(
        client=client,
        pool=pool,
        symbols=symbols,
        config=config,
        clock=clock,
        health=health,
        metrics=metrics,
    )


async def held_markets(pool: asyncpg.Pool) -> set[str]:
    """Markets with an open position in the paper ledger."""
    from coinpilot.adapters.ledger import positions

    return set(await positions(pool))


def build_collector(deps: Any) -> Collector:
    from coinpilot.adapters.upbit import client_from_settings
    from coinpilot.adapters.upbit_ws import stream_url

    client = client_from_settings(deps.http, deps.settings, deps.clock, deps.metrics)
    collector = Collector(
        client=client,
        pool=deps.pool,
        symbols=deps.settings.app.symbols,
        config=deps.settings.app.collector,
        clock=deps.clock,
        health=deps.health,
        metrics=deps.metrics,
        events=deps.minute_events,
        held=lambda: held_markets(deps.pool),
    )
    app = deps.settings.app
    if app.collector.source == "websocket":
        collector.stream = CandleStream(
            http=deps.http,
            url=stream_url(app.upbit.base_url, app.upbit.ws_url),
            symbols=collector.watched,
            pool=deps.pool,
            config=app.collector,
            clock=deps.clock,
            metrics=deps.metrics,
            events=deps.minute_events,
            on_reconnect=collector.fill_gap,
        )
    # Other services read the symbols that survived the start-up check from here.
    deps.extras["collector"] = collector
    return collector


def collector_factory(deps: Any) -> list[Collector]:
    return [build_collector(deps)]

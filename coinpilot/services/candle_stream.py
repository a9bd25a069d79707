"""Real-time minutes from Upbit's candle WebSocket, closed, stored and announced.

One connection carries ``candle.1m`` for every watched market (the configured ones Upbit
lists and the held ones). The stream re-sends the forming candle about once a second and
never says a minute is over, so a minute is closed here when a later minute of the same
market arrives or when the clock passes the minute's end plus ``close_grace_s``; its last
values are stored (upsert) and announced after the commit.

Connection care: aiohttp's heartbeat pings (a stalled server that withholds pongs is
dropped), reconnect with jittered exponential backoff, each disconnect reason counted.
Minutes still forming when the connection went are forgotten (their values may be
incomplete): ``on_reconnect`` lets the caller fill the gap over REST, and while the
socket is down the caller's REST cycles collect everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import aiohttp
import asyncpg
import structlog

from coinpilot.adapters import marketdata as md
from coinpilot.adapters.marketdata import CandleRow
from coinpilot.adapters.upbit_ws import MalformedFrame, parse_frame, subscribe_message
from coinpilot.clock import Clock
from coinpilot.config import CollectorConfig
from coinpilot.errors import DependencyDown
from coinpilot.observability import Metrics
from coinpilot.services.minute_events import MinuteEvents

log = structlog.get_logger(__name__)

MINUTE = timedelta(minutes=1)
_TICK_S = 0.25


class MinuteCloser:
    """Per market, the forming minute's last values; hands out the minutes that closed."""

    def __init__(self, grace_s: float) -> None:
        self.grace = timedelta(seconds=grace_s)
        self.forming: dict[str, CandleRow] = {}
        self.closed_upto: dict[str, datetime] = {}
        self.late = 0  # messages for a minute already closed (never overwrite a newer one)

    def update(self, row: CandleRow) -> list[CandleRow]:
        """Take one candle message; returns the minute it closed, if any."""
        done = self.closed_upto.get(row.symbol)
        if done is not None and row.ts <= done:
            self.late += 1
            return []
        current = self.forming.get(row.symbol)
        if current is not None and row.ts < current.ts:
            self.late += 1
            return []
        self.forming[row.symbol] = row
        if current is None or row.ts == current.ts:
            return []
        self.closed_upto[row.symbol] = current.ts
        return [current]

    def due(self, now: datetime) -> list[CandleRow]:
        """Minutes whose end plus the grace has passed without a later minute arriving."""
        out = [r for r in self.forming.values() if r.ts + MINUTE + self.grace <= now]
        for row in out:
            del self.forming[row.symbol]
            self.closed_upto[row.symbol] = row.ts
        return out

    def forget_forming(self) -> int:
        """After a disconnect: values seen so far may be incomplete, REST fills those minutes."""
        lost = len(self.forming)
        self.forming.clear()
        return lost


class Disconnected(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class CandleStream:
    """The WebSocket side of the collector (``collector.source: websocket``)."""

    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        url: str,
        symbols: Callable[[], Sequence[str]],
        pool: asyncpg.Pool,
        config: CollectorConfig,
        clock: Clock,
        metrics: Metrics,
        events: MinuteEvents | None = None,
        on_reconnect: Callable[[], Awaitable[object]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.http = http
        self.url = url
        self.symbols = symbols
        self.pool = pool
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.events = events
        self.on_reconnect = on_reconnect
        self.rng = rng or random.Random()
        self.closer = MinuteCloser(config.close_grace_s)
        self.connected = False
        self.up = asyncio.Event()  # set while connected and subscribed
        self.connections = 0
        self.attempt = 0
        self._pending: list[CandleRow] = []
        self._wake = asyncio.Event()
        self._subscribed: tuple[str, ...] = ()
        self._gap: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ the loop
    async def run(self, stop: asyncio.Event) -> None:
        writer = asyncio.create_task(self._writer(), name="candle-stream-writer")
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    await self._connection(stop)
                    reason = "stopped"
                except Disconnected as exc:
                    reason = exc.reason
                    self._disconnected(exc)
                if stop.is_set():
                    break
                if time.monotonic() - started >= self.config.ws_reconnect_max_s:
                    self.attempt = 0  # it ran fine for a while: start the backoff afresh
                self.attempt += 1
                delay = self.backoff(self.attempt)
                log.info("ws_reconnect_in", delay_s=round(delay, 2), reason=reason)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
        finally:
            self._set_connected(False)
            if self._gap is not None:
                self._gap.cancel()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await self._flush()

    def backoff(self, attempt: int) -> float:
        """Exponential from ``ws_reconnect_min_s`` up to the max, times a 0.5–1.0 jitter."""
        cfg = self.config
        cap = min(cfg.ws_reconnect_max_s, cfg.ws_reconnect_min_s * 2 ** (attempt - 1))
        return cap * self.rng.uniform(0.5, 1.0)

    def _disconnected(self, exc: Disconnected) -> None:
        self._set_connected(False)
        self.metrics.ws_disconnects.labels(reason=exc.reason).inc()
        lost = self.closer.forget_forming()
        log.warning("ws_disconnected", reason=exc.reason, error=str(exc)[:200], forming_lost=lost)

    def _set_connected(self, up: bool) -> None:
        self.connected = up
        if up:
            self.up.set()
        else:
            self.up.clear()
        self.metrics.ws_connected.set(1 if up else 0)

    async def _connection(self, stop: asyncio.Event) -> None:
        try:
            ws = await self.http.ws_connect(
                self.url,
                heartbeat=self.config.ws_ping_interval_s,
                autoping=True,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise Disconnected("handshake_refused", f"HTTP {exc.status}") from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise Disconnected("connect_failed", type(exc).__name__) from exc
        async with ws:
            self.connections += 1
            await self._subscribe(ws)
            self._set_connected(True)
            log.info("ws_connected", url=self.url, markets=len(self._subscribed))
            # Minutes that closed while no socket was up (or before the first) come over REST.
            if self.on_reconnect is not None:
                self._gap = asyncio.create_task(self._fill_gap(), name="candle-stream-gap")
            ticker = asyncio.create_task(self._ticker(ws, stop), name="candle-stream-ticker")
            closer = asyncio.create_task(self._close_on(stop, ws), name="candle-stream-stop")
            try:
                await self._read(ws, stop)
            finally:
                for task in (ticker, closer):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Disconnected):
                        await task

    @staticmethod
    async def _close_on(stop: asyncio.Event, ws: aiohttp.ClientWebSocketResponse) -> None:
        await stop.wait()
        await ws.close()

    async def _fill_gap(self) -> None:
        assert self.on_reconnect is not None
        try:
            await self.on_reconnect()
        except Exception:  # the next REST cycle retries; the stream keeps going
            log.exception("ws_gap_fill_failed")

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        codes = tuple(self.symbols())
        try:
            await ws.send_str(subscribe_message(codes))
        except (aiohttp.ClientError, OSError) as exc:
            raise Disconnected("dropped", f"subscribe: {type(exc).__name__}") from exc
        self._subscribed = codes

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> None:
        while True:
            msg = await ws.receive()
            if stop.is_set():
                return
            if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                self._frame(msg.data)
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
                raise Disconnected("closed_by_server", f"code {ws.close_code}")
            elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                error = ws.exception()
                if isinstance(error, aiohttp.ServerTimeoutError):
                    raise Disconnected("stall", "no pong to our ping")
                raise Disconnected("dropped", repr(error) if error else "connection lost")

    def _frame(self, data: bytes | str) -> None:
        try:
            frame = parse_frame(data)
        except MalformedFrame:
            self.metrics.ws_frames.labels(kind="malformed").inc()
            log.warning("ws_frame_malformed", size=len(data))
            return
        if frame.status:
            self.metrics.ws_frames.labels(kind="status").inc(frame.status)
        if frame.other:
            self.metrics.ws_frames.labels(kind="other").inc(frame.other)
        for error in frame.errors:
            self.metrics.ws_frames.labels(kind="error").inc()
            log.error("ws_server_error", error=error)
        for reason in frame.rejected:
            self.metrics.ws_frames.labels(kind="rejected").inc()
            self.metrics.candles_rejected.labels(reason=reason).inc()
        if frame.candles:
            self.metrics.ws_frames.labels(kind="candle").inc(len(frame.candles))
        for row in frame.candles:
            self._closed(self.closer.update(row))

    def _closed(self, rows: list[CandleRow]) -> None:
        if rows:
            self._pending.extend(rows)
            self._wake.set()

    async def _ticker(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> None:
        """Close minutes by the clock; re-subscribe when the watched markets change."""
        while not stop.is_set():
            await asyncio.sleep(_TICK_S)
            self._closed(self.closer.due(self.clock.now()))
            if tuple(self.symbols()) != self._subscribed:
                await self._subscribe(ws)
                log.info("ws_resubscribed", markets=len(self._subscribed))

    # ------------------------------------------------------------ storing
    async def _writer(self) -> None:
        """Stores what closed in batches: while one commit runs, the next batch gathers."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        rows, self._pending = self._pending, []
        if not rows:
            return
        try:
            changed = await md.upsert_candles_changed(self.pool, rows)
        except (asyncpg.PostgresError, OSError, DependencyDown) as exc:
            # REST's re-read of the last minutes stores them once the database is back.
            log.warning("ws_store_failed", minutes=len(rows), error=str(exc)[:200])
            self.metrics.dependency_errors.labels(dependency="postgres", kind="store").inc()
            return
        now = self.clock.now()
        for minute in changed:
            self.metrics.candles_stored.labels(symbol=minute.symbol).inc()
            if minute.inserted:
                age = (now - minute.ts).total_seconds()
                self.metrics.candle_age.labels(symbol=minute.symbol).set(age)
            latency = (now - minute.ts - MINUTE).total_seconds()
            self.metrics.minute_store_latency.labels(kind="websocket").observe(max(0.0, latency))
            if self.events is not None:
                self.events.publish(
                    minute.symbol, minute.ts, corrected=not minute.inserted, source="websocket"
                )

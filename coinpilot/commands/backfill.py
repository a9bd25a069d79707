"""`coinpilot backfill`: fill closed 1-minute candles from Upbit for a range, then exit.

Resumable: each 200-minute window is committed before the next is requested, so after a
crash the same command continues just after the newest minute stored in the range.
Safe next to a running daemon (no daemon lock; upserts are idempotent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp

from coinpilot.adapters.upbit import (
    UpbitClient,
    UpbitError,
    client_from_settings,
    unknown_symbols,
)
from coinpilot.clock import SystemClock, floor_minute
from coinpilot.config import Settings
from coinpilot.errors import DependencyDown
from coinpilot.observability import Metrics
from coinpilot.services.collector import CandleFiller, SyncResult
from coinpilot.services.fanout import gather_or_cancel


def _utc(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--symbols", help="comma-separated markets (default: config symbols)")
    parser.add_argument("--days", type=float, help="how far back from now (default: config)")
    parser.add_argument("--from", dest="start", type=_utc, help="range start, UTC (inclusive)")
    parser.add_argument("--to", dest="end", type=_utc, help="range end, UTC (exclusive)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


@dataclass
class Progress:
    """A one-line progress bar over every symbol's minutes, on stderr."""

    enabled: bool
    spans: dict[str, tuple[datetime, datetime, datetime]] = field(default_factory=dict)
    stored: int = 0
    _last_drawn: float = 0.0

    def start(self, symbol: str, start: datetime, resume: datetime, end: datetime) -> None:
        """Minutes already stored before this run count as done."""
        self.spans[symbol] = (start, resume, end)

    def page(self, symbol: str, stored: int, cursor: datetime, end: datetime) -> None:
        self.stored += stored
        start, _, _ = self.spans.get(symbol, (cursor, cursor, end))
        self.spans[symbol] = (start, cursor, end)
        now = time.monotonic()
        if self.enabled and now - self._last_drawn >= 0.2:
            self._last_drawn = now
            self.draw()

    def fraction(self) -> float:
        total = sum((e - s).total_seconds() for s, _, e in self.spans.values())
        done = sum((c - s).total_seconds() for s, c, _ in self.spans.values())
        return min(1.0, done / total) if total > 0 else 1.0

    def draw(self, final: bool = False) -> None:
        frac = self.fraction()
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r[{bar:<30}] {frac:6.1%}  {self.stored:,} candles stored")
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


def plan_range(
    args: argparse.Namespace, settings: Settings, now: datetime
) -> tuple[datetime, datetime]:
    end = min(args.end, floor_minute(now)) if args.end else floor_minute(now)
    if args.start is not None:
        return floor_minute(args.start), end
    days = args.days if args.days is not None else settings.app.collector.backfill_days
    return floor_minute(end - timedelta(days=days)), end


async def _backfill(args: argparse.Namespace, settings: Settings) -> int:
    from coinpilot.app import open_database

    clock = SystemClock()
    metrics = Metrics()
    symbols = [s.strip() for s in (args.symbols or "").split(",") if s.strip()]
    symbols = symbols or list(settings.app.symbols)
    start, end = plan_range(args, settings, clock.now())
    if start >= end:
        print(f"coinpilot backfill: empty range {start} .. {end}", file=sys.stderr)
        return 2
    async with contextlib.AsyncExitStack() as stack:
        pool = await open_database(stack, settings, max_size=max(2, len(symbols) + 1))
        http = aiohttp.ClientSession(headers={"User-Agent": "coinpilot"})
        stack.push_async_callback(http.close)
        client = client_from_settings(http, settings, clock, metrics)
        symbols = await _checked(client, symbols)
        progress = Progress(not args.no_progress)
        filler = CandleFiller(client, pool, metrics, on_page=progress.page)
        started = time.perf_counter()
        results = await gather_or_cancel(
            _one(filler, progress, s, start, end, clock) for s in symbols
        )
        seconds = time.perf_counter() - started
        if progress.enabled:
            progress.draw(final=True)
        return _report(results, client.requests, seconds)


async def _checked(client: UpbitClient, symbols: list[str]) -> list[str]:
    try:
        listed = await client.listed_markets()
    except UpbitError as exc:
        print(f"warning: market list unavailable ({exc}); trying every symbol", file=sys.stderr)
        return symbols
    missing = unknown_symbols(symbols, listed)
    if missing:
        print(f"skipping markets Upbit does not list: {', '.join(missing)}", file=sys.stderr)
    return [s for s in symbols if s not in missing]


async def _one(
    filler: CandleFiller,
    progress: Progress,
    symbol: str,
    start: datetime,
    end: datetime,
    clock: SystemClock,
) -> SyncResult:
    try:
        resume = await filler.resume_point(symbol, start, end)
        progress.start(symbol, start, resume, end)
        return await filler.fill(symbol, resume, end, clock.now())
    except UpbitError as exc:
        return SyncResult(symbol, error=f"{exc.kind}: {exc}")


def _report(results: list[SyncResult], requests: int, seconds: float) -> int:
    for r in results:
        if r.error:
            print(f"{r.symbol}: failed: {r.error}", file=sys.stderr)
    stored = sum(r.stored for r in results)
    rate = stored / seconds if seconds > 0 else 0.0
    print(
        f"candles stored: {stored}, requests: {requests}, "
        f"seconds: {seconds:.1f}, candles/s: {rate:.0f}"
    )
    return 1 if any(r.error for r in results) else 0


def main(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_backfill(args, settings))
    except DependencyDown as exc:
        print(f"coinpilot backfill: {exc}", file=sys.stderr)
        return 1

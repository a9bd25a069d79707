"""`coinpilot backtest`: what would this config have done over history?

History comes from candle CSV files (``--csv FILE[=SYMBOL] ...``) or the database
(``--symbols``, ``--from``, ``--to``). The run uses the live strategy, risk, sizing and fill
code on a simulated clock; see coinpilot/backtest/engine.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from coinpilot.config import Settings

log = structlog.get_logger(__name__)


def _utc(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date or time like 2024-02-01"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("history (one of)")
    src.add_argument("--csv", nargs="+", metavar="FILE[=SYMBOL]", help="1-minute candle CSVs")
    src.add_argument("--symbols", help="comma-separated markets read from the database")
    src.add_argument("--from", dest="start", type=_utc, help="UTC start (database)")
    src.add_argument("--to", dest="end", type=_utc, help="UTC end, exclusive (database)")
    parser.add_argument(
        "--ai",
        choices=("off", "replay"),
        default="off",
        help="off: rules alone; replay: recorded AI decisions (needs the database)",
    )
    parser.add_argument("--json", dest="json_out", type=Path, metavar="OUT", help="write JSON")
    parser.add_argument("--report", type=Path, metavar="OUT.html", help="write an HTML report")
    parser.add_argument("--trades", action="store_true", help="print the trade list")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _check(args: argparse.Namespace) -> str | None:
    if bool(args.csv) == bool(args.symbols):
        return "give either --csv FILE... or --symbols with --from/--to"
    if args.symbols and (args.start is None or args.end is None):
        return "--symbols needs --from and --to"
    if args.start and args.end and args.start >= args.end:
        return "--from must be before --to"
    return None


class Progress:
    """A one-line progress bar on stderr, shown only once a run has taken a couple of seconds."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.start, self.last = enabled, time.monotonic(), 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.start < 2.0 or now - self.last < 0.25:
            return
        self.last = now
        frac = done / total if total else 1.0
        bar = "#" * int(frac * 30)
        print(f"\rbacktest [{bar:<30}] {frac:6.1%}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.last:
            print(file=sys.stderr)


async def _run(args: argparse.Namespace, settings: Settings, progress: Progress) -> Any:
    from coinpilot.backtest import data
    from coinpilot.backtest.engine import run_backtest

    async with contextlib.AsyncExitStack() as stack:
        pool = None
        if args.symbols or args.ai == "replay":
            from coinpilot.commands.job import open_job_context

            pool = (await open_job_context(stack, settings)).pool
        if args.csv:
            candles = data.load_csvs(args.csv)
        else:
            symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
            candles = await data.load_db(pool, symbols, args.start, args.end)
        ai = None
        if args.ai == "replay":
            from coinpilot.observability import Metrics
            from coinpilot.services.ai_replay import ReplayStep

            ai = ReplayStep(settings=settings, pool=pool, metrics=Metrics())
        started = time.perf_counter()
        result = await run_backtest(candles, settings.app, ai=ai, progress=progress)
        return candles, result, time.perf_counter() - started


def _print_summary(summary: Any) -> None:
    for key, value in summary.__dict__.items():
        if isinstance(value, float):
            value = f"{value:,.4f}"
        print(f"{key:>16}: {value}")


def main(args: argparse.Namespace, settings: Settings) -> int:
    from coinpilot.backtest import data, jsonout, report_html
    from coinpilot.backtest.summary import summarize

    problem = _check(args)
    if problem:
        print(f"coinpilot backtest: {problem}", file=sys.stderr)
        return 2
    progress = Progress(enabled=not args.quiet and sys.stderr.isatty())
    try:
        candles, result, elapsed = asyncio.run(_run(args, settings, progress))
    except data.DataError as exc:
        progress.close()
        log.error("backtest_bad_input", error=str(exc))
        print(f"coinpilot backtest: {exc}", file=sys.stderr)
        return 2
    progress.close()
    tz = settings.app.tz
    summary = summarize(result, tz)
    ts = result.equity_ts
    meta = {
        "config": settings.source,
        "ai": args.ai,
        "symbols": ",".join(sorted(candles)),
        "from": jsonout.iso(int(ts[0])) if len(ts) else None,
        "to": jsonout.iso(int(ts[-1])) if len(ts) else None,
    }
    _print_summary(summary)
    if args.trades:
        for t in result.trades:
            print(jsonout.trade_record(t))
    if args.json_out:
        args.json_out.write_text(jsonout.dumps(jsonout.to_document(result, summary, tz, meta)))
    if args.report:
        prices = {s: (c.ts, c.close) for s, c in candles.items()}
        args.report.write_text(report_html.render(result, summary, prices, meta))
    rate = result.candle_steps / elapsed if elapsed > 0 else 0.0
    print(
        f"{result.candle_steps:,} candle-steps in {elapsed:.2f} s ({rate:,.0f}/s)", file=sys.stderr
    )
    return 0

"""`coinpilot backtest`: what would this config have done over history?

History comes from candle CSV files (``--csv FILE[=SYMBOL] ...``) or the database
(``--symbols``, ``--from``, ``--to``). ``--start``/``--end`` set the window the simulated
daemon runs in (candles before ``--start`` are history it already sees, as in a daemon
started then), so a live window can be reproduced. The run uses the live strategy, risk,
sizing and fill code on a simulated clock; see coinpilot/backtest/engine.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from datetime import UTC, datetime, timedelta
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
    window = parser.add_argument_group("run window (optional)")
    window.add_argument(
        "--start",
        dest="run_start",
        type=_utc,
        help="UTC time the simulated daemon starts; earlier candles are history only "
        "(with --symbols, --from defaults to the regime's look-back before it)",
    )
    window.add_argument(
        "--end",
        dest="run_end",
        type=_utc,
        help="UTC end of the candles the run decides on, exclusive",
    )
    parser.add_argument(
        "--ai",
        choices=("off", "replay"),
        default="off",
        help="off: rules alone; replay: recorded AI decisions (needs the database)",
    )
    parser.add_argument("--json", dest="json_out", type=Path, metavar="OUT", help="write JSON")
    parser.add_argument("--report", type=Path, metavar="OUT.html", help="write an HTML report")
    parser.add_argument(
        "--compare", type=Path, metavar="OTHER.json", help="compare with a run's --json output"
    )
    parser.add_argument("--trades", action="store_true", help="print the round trips")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _check(args: argparse.Namespace) -> str | None:
    if bool(args.csv) == bool(args.symbols):
        return "give either --csv FILE... or --symbols with --from/--to"
    if args.symbols and (args.start or args.run_start) is None:
        return "--symbols needs --from (or --start)"
    if args.symbols and (args.end or args.run_end) is None:
        return "--symbols needs --to (or --end)"
    if args.start and args.end and args.start >= args.end:
        return "--from must be before --to"
    if args.run_start and args.run_end and args.run_start >= args.run_end:
        return "--start must be before --end"
    return None


def _window(args: argparse.Namespace, settings: Settings) -> tuple[datetime, datetime]:
    """The database range: --from/--to, else the run window plus the regime's look-back."""
    look_back = timedelta(hours=2 * settings.app.regime_detection.min_hourly_candles)
    start = args.start or args.run_start - look_back
    return start, args.end or args.run_end


def _cut(candles: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Candles before --end only; refuse a window that leaves a symbol nothing to run on."""
    import numpy as np

    from coinpilot.backtest import data

    out = {}
    for symbol, c in candles.items():
        if args.run_end is not None:
            c = c.slice(0, int(np.searchsorted(c.ts, int(args.run_end.timestamp()))))
        first_tick = None if args.run_start is None else int(args.run_start.timestamp())
        if len(c) == 0 or (first_tick is not None and int(c.ts[-1]) < first_tick - 60):
            raise data.DataError(
                f"{symbol}: no candles inside the run window "
                f"{args.run_start or 'start of data'} .. {args.run_end or 'end of data'}"
            )
        out[symbol] = c
    return out


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
    from coinpilot.backtest.history import regime_notes

    async with contextlib.AsyncExitStack() as stack:
        pool = None
        if args.symbols or args.ai == "replay":
            from coinpilot.commands.job import open_job_context

            pool = (await open_job_context(stack, settings)).pool
        if args.csv:
            candles = data.load_csvs(args.csv)
        else:
            symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
            candles = await data.load_db(pool, symbols, *_window(args, settings))
        candles = _cut(candles, args)
        for note in regime_notes(candles, settings.app, args.run_start):
            print(f"coinpilot backtest: {note}", file=sys.stderr)
        ai = None
        if args.ai == "replay":
            from coinpilot.observability import Metrics
            from coinpilot.services.ai_replay import ReplayStep

            ai = ReplayStep(settings=settings, pool=pool, metrics=Metrics())
        started = time.perf_counter()
        result = await run_backtest(
            candles, settings.app, ai=ai, progress=progress, start=args.run_start
        )
        return candles, result, time.perf_counter() - started


def _print_summary(shown: dict[str, str], compared: list[tuple[str, ...]] | None) -> None:
    for label, value in shown.items():
        print(f"{label:>16}: {value}")
    if compared:
        width = max(len(r[0]) for r in compared)
        print()
        head = ("", "this run", "other run", "difference")
        for row in [head, *compared]:
            print(f"{row[0]:>{width}}  " + "  ".join(f"{c:>14}" for c in row[1:]))


def _load_other(path: Path) -> dict[str, Any]:
    import json

    from coinpilot.backtest import data

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise data.DataError(f"--compare {path}: not a readable backtest JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("summary"), dict):
        raise data.DataError(f"--compare {path}: no summary (write it with --json)")
    return doc


def main(args: argparse.Namespace, settings: Settings) -> int:
    from coinpilot.backtest import analysis, data, jsonout, report_html
    from coinpilot.backtest.summary import summarize

    problem = _check(args)
    if problem:
        print(f"coinpilot backtest: {problem}", file=sys.stderr)
        return 2
    progress = Progress(enabled=not args.quiet and sys.stderr.isatty())
    try:
        other = _load_other(args.compare) if args.compare else None
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
    prices = {s: (c.ts, c.close) for s, c in candles.items()}
    bench = analysis.buy_and_hold(prices, ts, float(result.initial_equity))
    bench_pct = analysis.total_return_pct(bench, float(result.initial_equity))
    shown = analysis.display(summary, result, bench_pct)
    document = jsonout.to_document(result, summary, tz, meta)
    document["benchmark"] = {"buy_and_hold_return_pct": round(bench_pct, 10)}
    document["display"] = shown
    compared = analysis.compare_rows(document, other) if other is not None else None
    _print_summary(shown, compared)
    if args.trades:
        for t in result.trades:
            print(analysis.round_trip_line(t, tz))
    if args.json_out:
        args.json_out.write_text(jsonout.dumps(document))
    if args.report:
        page = report_html.render(
            result, summary, prices, meta, tz=tz, benchmark=bench, shown=shown, compared=compared
        )
        args.report.write_text(page)
    rate = result.candle_steps / elapsed if elapsed > 0 else 0.0
    print(
        f"{result.candle_steps:,} candle-steps in {elapsed:.2f} s ({rate:,.0f}/s)", file=sys.stderr
    )
    return 0

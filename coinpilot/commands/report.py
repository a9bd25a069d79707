"""`coinpilot report [--date YYYY-MM-DD]`: print the daily report for a local day."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import date

from coinpilot.clock import SystemClock
from coinpilot.config import Settings


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2026-03-02") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--date",
        type=_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="local calendar day to report (default: today)",
    )


async def _report(settings: Settings, day: date | None) -> str:
    from coinpilot.commands.job import open_job_context
    from coinpilot.services.jobs.report import render_report

    async with contextlib.AsyncExitStack() as stack:
        ctx = await open_job_context(stack, settings)
        rendered = await render_report(ctx, SystemClock().now(), day)
        return rendered.text(settings.app.timezone)


def main(args: argparse.Namespace, settings: Settings) -> int:
    today = SystemClock().now().astimezone(settings.app.tz).date()
    if args.date is not None and args.date > today:
        print(
            f"coinpilot report: --date {args.date} is in the future (today is {today})",
            file=sys.stderr,
        )
        return 2
    print(asyncio.run(_report(settings, args.date)))
    return 0

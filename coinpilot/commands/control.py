"""`coinpilot pause|resume|force-exit SYMBOL|reset-account`: the operator's controls.

Each writes to the database (audited, announced on Discord); a running daemon honours it
within one cycle, and they work as well with the daemon stopped. Results on stdout; exit 0
when done, 1 when there was nothing to do that way, 2 for a refused request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from coinpilot.commands.job import open_job_context
from coinpilot.config import Settings
from coinpilot.domain.money_format import krw, price
from coinpilot.services import control


def operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


async def _with_pool(settings: Settings, work: Callable[..., Awaitable[int]]) -> int:
    async with contextlib.AsyncExitStack() as stack:
        ctx = await open_job_context(stack, settings)
        return await work(ctx.pool)


def _pause(paused: bool) -> Callable[[argparse.Namespace, Settings], int]:
    def main(args: argparse.Namespace, settings: Settings) -> int:
        async def work(pool: object) -> int:
            changed = await control.set_entries_paused(
                pool,  # type: ignore[arg-type]
                paused,
                by=operator(),
                reason=getattr(args, "reason", None),
                now=datetime.now(UTC),
            )
            word = "paused" if paused else "resumed"
            print(f"entries {word}" if changed else f"entries were already {word}")
            return 0 if changed else 1

        return asyncio.run(_with_pool(settings, work))

    return main


def pause_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", default=None, help="why (kept in the audit and the notice)")


def no_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


pause_main = _pause(True)
resume_main = _pause(False)


def force_exit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("symbol", help="the market to sell, e.g. KRW-BTC")


def force_exit_main(args: argparse.Namespace, settings: Settings) -> int:
    async def work(pool: object) -> int:
        try:
            sold = await control.force_exit(
                pool,  # type: ignore[arg-type]
                settings.app,
                args.symbol,
                by=operator(),
                now=datetime.now(UTC),
            )
        except control.ControlError as exc:
            print(f"coinpilot: {exc}", file=sys.stderr)
            return 1
        print(f"{args.symbol} sold at {price(sold.fill.price)}: PnL {krw(sold.net_pnl, sign=True)}")
        return 0

    return asyncio.run(_with_pool(settings, work))


def reset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--yes",
        action="store_true",
        help=f"confirm without the prompt (otherwise type {control.RESET_CONFIRMATION})",
    )


def reset_main(args: argparse.Namespace, settings: Settings) -> int:
    if args.yes:
        confirmation = control.RESET_CONFIRMATION
    elif sys.stdin.isatty():
        print(
            "This closes every paper position without a trade and starts the account again at "
            f"{krw(settings.app.risk.initial_balance_krw)}. "
            f"Type {control.RESET_CONFIRMATION} to confirm: ",
            end="",
            flush=True,
        )
        confirmation = sys.stdin.readline().strip()
    else:
        print("coinpilot: reset-account needs --yes when not run from a terminal", file=sys.stderr)
        return 2

    async def work(pool: object) -> int:
        try:
            summary = await control.reset_account(
                pool,  # type: ignore[arg-type]
                settings.app,
                by=operator(),
                confirmation=confirmation,
                now=datetime.now(UTC),
            )
        except control.ControlError as exc:
            print(f"coinpilot: {exc}", file=sys.stderr)
            return 2
        dropped = summary["positions_dropped"]
        print(
            f"account reset to {krw(summary['initial_balance'])}"
            + (f"; positions dropped: {', '.join(dropped)}" if dropped else "")
        )
        return 0

    return asyncio.run(_with_pool(settings, work))

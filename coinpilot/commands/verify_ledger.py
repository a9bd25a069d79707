"""`coinpilot verify-ledger`: check the paper ledger's invariant, exactly.

    cash + Σ cost basis of open positions = initial balance + realized PnL − fees

Exit 0 when it holds, 1 with the difference when it does not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from coinpilot.adapters import ledger
from coinpilot.commands.job import open_job_context
from coinpilot.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


async def _verify(settings: Settings) -> ledger.Verification:
    async with contextlib.AsyncExitStack() as stack:
        ctx = await open_job_context(stack, settings)
        return await ledger.verify(ctx.pool)


def main(args: argparse.Namespace, settings: Settings) -> int:
    check = asyncio.run(_verify(settings))
    print(f"cash + cost basis            = {check.left}")
    print(f"initial + realized - fees    = {check.right}")
    if not check.history_ok:
        print("account totals differ from the sums over trading_history")
    if check.ok:
        print("ledger ok")
        return 0
    print(f"LEDGER VIOLATION: difference {check.difference}")
    return 1

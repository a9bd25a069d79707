"""`coinpilot ai-report [--days N]`: does the AI filter beat the rules alone, and at what cost?"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from datetime import timedelta

from coinpilot.clock import SystemClock
from coinpilot.config import Settings
from coinpilot.services.ai_scoreboard import Scoreboard, build_scoreboard

LABELS = {
    "approved": "approved (taken)",
    "rejected_by_model": "rejected by the model",
    "rejected_on_failure": "rejected on error/timeout",
    "blocked_before_model": "pre-filter / guardrail",
    "rules_alone": "all candidates (rules alone)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=float, default=7.0, help="look back N days (default 7)")


def _pct(value: object) -> str:
    return "-" if value is None else f"{float(value):+.2f}%"  # type: ignore[arg-type]


def render(board: Scoreboard, days: float) -> str:
    lines = [
        f"AI scoreboard, last {days:g} day(s); shadow trades under the exit rules, net of fees",
        f"{'group':32} {'cands':>6} {'closed':>6} {'win rate':>9} {'avg pnl':>9} {'sum pnl':>9}",
    ]
    for g in board.groups:
        rate = "-" if g.win_rate is None else f"{g.win_rate * 100:.1f}%"
        lines.append(
            f"{LABELS[g.name]:32} {g.candidates:>6} {g.closed:>6} {rate:>9} "
            f"{_pct(g.avg_pnl_pct):>9} {_pct(g.total_pnl_pct if g.closed else None):>9}"
        )
    by = {g.name: g for g in board.groups}
    a, r = by["approved"].avg_pnl_pct, by["rules_alone"].avg_pnl_pct
    if a is not None and r is not None:
        verdict = "beats" if a > r else "does not beat"
        lines.append(f"the AI filter {verdict} the rules alone ({_pct(a)} vs {_pct(r)} per trade)")
    else:
        lines.append("not enough closed shadow trades to compare the filter with the rules alone")
    lines.append(
        f"AI cost: ${board.cost_usd:.4f} over {board.model_runs} model run(s), "
        f"{board.input_tokens} input / {board.output_tokens} output tokens"
    )
    return "\n".join(lines)


async def _report(settings: Settings, days: float) -> str:
    from coinpilot.app import open_database

    async with contextlib.AsyncExitStack() as stack:
        pool = await open_database(stack, settings)
        now = SystemClock().now()
        board = await build_scoreboard(pool, settings, now - timedelta(days=days), now)
        return render(board, days)


def main(args: argparse.Namespace, settings: Settings) -> int:
    if args.days <= 0:
        print("--days must be positive")
        return 2
    print(asyncio.run(_report(settings, args.days)))
    return 0

"""`coinpilot ai-review --symbol KRW-BTC [--at ISO-TIME]`: one AI review now, as the bot would.

For trying a new model or key before a restart. The candidate is built from the stored
candles (regime, indicators, entry config, a nominal order size); the Analyst → Guardian run
is the daemon's own code. The pre-filter is shown but does not stop the run, no guardrail
is consumed and nothing is written (no decision row, no notification, no ledger change).

Exit status: 0 on a verdict (either way), 2 on a configuration error (the key is named),
1 on a transient failure (timeout, overload, no data…).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from coinpilot.adapters import marketdata
from coinpilot.adapters.cache import Keys
from coinpilot.adapters.llm import create_client
from coinpilot.clock import SystemClock
from coinpilot.config import Settings
from coinpilot.domain.ai_types import EntryCandidate
from coinpilot.domain.regime import regime_from_candles
from coinpilot.domain.snapshot import compute_snapshot
from coinpilot.errors import ConfigError
from coinpilot.observability import Metrics

# Reason codes that are the model's own verdict, approving or not.
VERDICTS = frozenset(
    {"approved", "analyst_reject", "low_confidence", "guardian_warning", "refusal"}
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--symbol", required=True, help="KRW market, e.g. KRW-BTC")
    parser.add_argument(
        "--at",
        type=_instant,
        default=None,
        help="review as of this ISO time (default: just after the newest stored candle)",
    )


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def build_candidate(pool: Any, settings: Settings, symbol: str, at: datetime | None) -> Any:
    """The EntryCandidate the bot would build for ``symbol`` at ``at``, or an error text."""
    app = settings.app
    if at is None:
        newest = await marketdata.newest_closed_ts(pool, symbol)
        if newest is None:
            return f"no stored candles for {symbol}"
        at = newest + timedelta(minutes=1, seconds=1)
    candles = await marketdata.load_last_closed(pool, symbol, app.bot.candle_window, at)
    if len(candles) == 0 or candles.last_ts is None:
        return f"no stored candles for {symbol} before {at.isoformat()}"
    det = app.regime_detection
    hours = await marketdata.load_range(
        pool, symbol, at - timedelta(hours=2 * det.min_hourly_candles), at
    )
    regime = regime_from_candles(hours, at.timestamp(), det).regime
    params = app.regimes.get(regime)
    snap = compute_snapshot(candles, params.entry if params else None, app.bot.candle_window)
    ratio = Decimal(str(params.position_size_ratio if params else 1.0))
    order = app.risk.initial_balance_krw * Decimal(str(app.risk.max_position_size)) * ratio
    return EntryCandidate(
        symbol=symbol,
        regime=regime,
        candle_ts=candles.last_ts,
        price=float(candles.close[-1]),
        indicators=snap.as_dict(),
        entry_config=params.entry.model_dump() if params else {},
        order_krw=float(order),
    )


def render(prep: Any, row: dict[str, Any], settings: Settings) -> str:
    cand = prep.candidate
    pre = prep.prefilter
    shown = "run" if pre.run else f"skip ({pre.reason}); the bot would not ask, reviewed anyway"
    cost = row["cost_usd"]
    lines = [
        f"symbol     {cand.symbol} at {cand.candle_ts.isoformat()} close {cand.price:g}"
        f" regime {cand.regime}",
        f"pre-filter {shown}",
        f"verdict    {row['decision']} ({row['reason_code']})"
        + (f" confidence {row['confidence']}" if row["confidence"] is not None else ""),
        f"reasoning  {row['reasoning']}",
        f"model      {settings.model_id}",
        f"tokens     {row['input_tokens']} in / {row['output_tokens']} out",
        f"cost       {'-' if cost is None else f'${cost:.6f}'}",
        f"latency    {row['latency_ms']} ms",
    ]
    return "\n".join(lines)


async def _run(settings: Settings, symbol: str, at: datetime | None) -> int:
    from coinpilot.app import open_database
    from coinpilot.services.agent import AgentRunner

    key = settings.env.anthropic_api_key
    if key is None:
        raise ConfigError("environment variable ANTHROPIC_API_KEY: not set (needed for a review)")
    async with contextlib.AsyncExitStack() as stack:
        pool = await open_database(stack, settings)
        cand = await build_candidate(pool, settings, symbol, at)
        if isinstance(cand, str):
            print(f"coinpilot: {cand}", file=sys.stderr)
            return 1
        client = create_client(key.get_secret_value(), settings.env.anthropic_base_url)
        stack.push_async_callback(client.close)
        runner = AgentRunner(
            settings=settings, pool=pool, redis=None, keys=Keys(),  # type: ignore[arg-type]
            clock=SystemClock(), metrics=Metrics(), client=client, dry_run=True,
        )  # fmt: skip
        await runner.check_model()
        if runner.unavailable is None:
            prep, row = await runner.review_once(cand)
            print(render(prep, row, settings))
            if row["reason_code"] in VERDICTS:
                return 0
        if runner.unavailable is not None:
            print(f"coinpilot: config error: {runner.unavailable.text('reject')}", file=sys.stderr)
            return 2
        return 1


def main(args: argparse.Namespace, settings: Settings) -> int:
    symbol = args.symbol.upper()
    if symbol not in settings.app.symbols:
        print(f"note: {symbol} is not in the configured symbols", file=sys.stderr)
    return asyncio.run(_run(settings, symbol, args.at))

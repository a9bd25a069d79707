"""Machine-readable output: the summary, the trade list and the daily equity, as JSON.

Decimals are written as strings so no precision is lost; keys are sorted and floats are
rounded the same way every time, so two runs of the same backtest give the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from coinpilot.backtest.model import BacktestResult, Trade
from coinpilot.backtest.summary import Summary, daily_closes, day_keys


def iso(ts: int | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return round(value, 10)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def trade_record(t: Trade) -> dict[str, Any]:
    return {
        "symbol": t.symbol,
        "regime": t.regime,
        "entry_time": iso(t.entry_ts),
        "entry_price": str(t.entry_price),
        "quantity": str(t.quantity),
        "entry_fee": str(t.entry_fee),
        "exit_time": iso(t.exit_ts),
        "exit_price": None if t.exit_price is None else str(t.exit_price),
        "exit_fee": str(t.exit_fee),
        "exit_reason": t.exit_reason,
        "pnl": str(t.pnl),
    }


def daily_equity(result: BacktestResult, tz: ZoneInfo) -> list[dict[str, Any]]:
    keys = day_keys(result.equity_ts, tz)
    closes = daily_closes(result.equity_ts, result.equity, tz)
    days = sorted(set(keys.tolist()))
    return [
        {"day": datetime.fromtimestamp(d * 86400, UTC).date().isoformat(), "equity": e}
        for d, e in zip(days, closes.tolist(), strict=True)
    ]


def to_document(
    result: BacktestResult, summary: Summary, tz: ZoneInfo, meta: dict[str, Any]
) -> dict[str, Any]:
    return _plain(
        {
            "meta": meta,
            "summary": asdict(summary),
            "final_cash": result.final_cash,
            "candle_steps": result.candle_steps,
            "trades": [trade_record(t) for t in result.trades],
            "daily_equity": daily_equity(result, tz),
        }
    )


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"

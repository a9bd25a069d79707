"""`coinpilot status`: what the bot is doing and why, per symbol, plus the account."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from coinpilot.adapters import ledger
from coinpilot.adapters import marketdata as md
from coinpilot.adapters.cache import REDIS_ERRORS
from coinpilot.commands.job import open_job_context
from coinpilot.config import Settings
from coinpilot.domain import money_format as mf
from coinpilot.services.jobs import JobContext
from coinpilot.services.outbox_sender import outbox_summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


async def _statuses(ctx: JobContext, symbols: list[str]) -> dict[str, dict[str, Any]]:
    try:
        raw = await ctx.redis.mget([ctx.keys.status(s) for s in symbols])
    except REDIS_ERRORS:
        return {}
    return {s: json.loads(v) for s, v in zip(symbols, raw, strict=True) if v}


async def collect(ctx: JobContext) -> dict[str, Any]:
    app = ctx.settings.app
    now = datetime.now(UTC)
    symbols = list(app.symbols)
    candles = await md.load_closed_candles(ctx.pool, symbols, 1, now)
    marks = {s: float(c.close[-1]) for s, c in candles.items() if len(c)}
    state = await ledger.load_state(ctx.pool, app, now, marks, read_only=True)
    statuses = await _statuses(ctx, symbols)
    rows = []
    for sym in symbols:
        c, st, pos = candles.get(sym), statuses.get(sym, {}), state.positions.get(sym)
        last = c.last_ts if c is not None and len(c) else None
        price = marks.get(sym)
        pnl = float((price - float(pos.avg_price)) / float(pos.avg_price) * 100) if (
            pos and price) else None  # fmt: skip
        rows.append({
            "symbol": sym, "price": price,
            "candle_age_s": round((now - last).total_seconds()) if last else None,
            "regime": st.get("regime", "?"),
            "quantity": str(pos.quantity) if pos else None,
            "avg_price": str(pos.avg_price) if pos else None,
            "pnl_pct": None if pnl is None else round(pnl, 2),
            "action": st.get("action", "-"), "reason_code": st.get("reason_code", "-"),
            "reason": (st.get("reason") or "").split("\n")[0],
        })  # fmt: skip
    day = state.day
    return {
        "symbols": rows,
        "account": {
            "equity": str(state.equity(marks)), "cash": str(state.account.cash),
            "exposure": str(state.exposure(marks)),
            "cooldown_until": state.account.cooldown_until.isoformat()
            if state.account.cooldown_until else None,
        },
        "today": {"date": day.trade_date.isoformat(), "buys": day.buy_count,
                  "sells": day.sell_count, "realized_pnl": str(day.realized_pnl),
                  "fees_paid": str(day.fees_paid),
                  "halted": day.is_trading_halted, "halt_reason": day.halt_reason,
                  "consecutive_losses": state.account.consecutive_losses},
        "outbox": await outbox_summary(ctx.pool),
    }  # fmt: skip


def _cells(r: dict[str, Any]) -> tuple[str, ...]:
    """One row as people read it (the JSON keeps the exact values)."""
    held = r.get("quantity") is not None
    return (
        r["symbol"],
        "" if r["price"] is None else mf.price(r["price"]),
        "" if r["candle_age_s"] is None else str(r["candle_age_s"]),
        str(r["regime"]),
        f"{mf.quantity(r['quantity'])} @ {mf.price(r['avg_price'])}" if held else "-",
        "" if r["pnl_pct"] is None else mf.percent(r["pnl_pct"], sign=True),
        str(r["action"]),
        str(r["reason_code"]),
        str(r["reason"]),
    )


def render(data: dict[str, Any]) -> str:
    cols = ("symbol", "price", "candle_age_s", "regime", "position", "pnl_pct", "action",
            "reason_code", "reason")  # fmt: skip
    table = [cols] + [_cells(r) for r in data["symbols"]]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols) - 1)]
    lines = []
    for row in table:
        cells = [row[i].ljust(widths[i]) for i in range(len(cols) - 1)] + [row[-1][:60]]
        lines.append("  ".join(cells))
    a, t = data["account"], data["today"]
    lines += [
        "",
        f"equity {mf.krw(a['equity'])}   cash {mf.krw(a['cash'])}   "
        f"exposure {mf.krw(a['exposure'])}",
        f"today {t['date']}: buys {t['buys']}, sells {t['sells']}, realized "
        f"{_net(t)}, consecutive losses {t['consecutive_losses']}, "
        f"halted {'yes: ' + str(t['halt_reason']) if t['halted'] else 'no'}, "
        f"cooldown until {a['cooldown_until'] or '-'}",
    ]
    counts = data["outbox"]["counts"]
    lines.append("outbox: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty"))
    for row in data["outbox"]["undelivered"]:
        lines.append(f"  undelivered #{row['id']} {row['kind']} ({row['status']}, "
                     f"{row['attempts']} attempts): {row['last_error']}")  # fmt: skip
    return "\n".join(lines)


def _net(today: dict[str, Any]) -> str:
    """Today's realized PnL net of fees, gross and fees beside it."""
    gross = Decimal(today["realized_pnl"])
    fees = Decimal(today.get("fees_paid") or 0)
    return mf.pnl_breakdown(gross - fees, gross, fees)


async def _run(settings: Settings, as_json: bool) -> None:
    async with contextlib.AsyncExitStack() as stack:
        ctx = await open_job_context(stack, settings)
        data = await collect(ctx)
    print(json.dumps(data, default=str, indent=2) if as_json else render(data))


def main(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(_run(settings, args.json))
    return 0

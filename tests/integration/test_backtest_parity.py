"""Parity: the live path (collector → database → bot loop) and the backtester trade alike.

The replay driver runs the daemon's own services minute by minute on a simulated clock
against the local Upbit fake; the backtester runs over the same candles. Both derive the
regime from the data (the hourly job on the live side), so the history before the start is
preloaded: the MA200 needs 200 closed hours.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

from coinpilot.adapters.csvdata import read_csv, to_candles
from coinpilot.backtest.engine import run_backtest
from coinpilot.backtest.model import Trade
from coinpilot.domain.candles import Candles
from tests.replay import Replay

AVAX = "binance_AVAXUSDT_1m_2025-02-01_2025-02-28.csv"
START = datetime(2025, 2, 10, tzinfo=UTC)  # 9 days of history before it
DAYS = 3


async def _live_trades(pool: asyncpg.Pool) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(
        "SELECT symbol, side, price, quantity, exit_reason, executed_at FROM trading_history "
        "ORDER BY executed_at, id"
    )
    open_: dict[str, list[Any]] = {}
    done: list[tuple[Any, ...]] = []
    for r in rows:
        when = int(r["executed_at"].timestamp())
        if r["side"] == "BUY":
            open_[r["symbol"]] = [r["symbol"], when, r["price"], r["quantity"]]
        else:
            entry = open_.pop(r["symbol"])
            done.append((*entry, when, r["price"], r["exit_reason"]))
    done.extend((*e, None, None, "") for e in open_.values())
    return sorted(done, key=lambda t: (t[1], t[0]))


def _bt_trades(trades: list[Trade]) -> list[tuple[Any, ...]]:
    rows = [(t.symbol, t.entry_ts, t.entry_price, t.quantity, t.exit_ts, t.exit_price,
             t.exit_reason) for t in trades]  # fmt: skip
    return sorted(rows, key=lambda t: (t[1], t[0]))


def _closed_by(c: Candles, end: datetime) -> Candles:
    """Candles the last live cycle before ``end`` has seen (closed a minute before it)."""
    last_cycle_minute = int(end.timestamp()) - 60
    return c.slice(0, int(np.searchsorted(c.ts, last_cycle_minute - 60, side="right")))


# Three days are 4,320 live cycles (collector, database, bot): minutes, not seconds.
@pytest.mark.timeout(900)
async def test_replay_and_backtest_make_the_same_trades(
    data_dir: Path, make_settings: Any, pool: asyncpg.Pool, redis: Any, keys: Any
) -> None:
    """Same trades (times, prices, quantities, reasons) and the same final ledger."""
    rows = read_csv(data_dir / AVAX, "KRW-AVAX")
    settings = make_settings(symbols=["KRW-AVAX"])
    end = START + timedelta(days=DAYS)
    async with Replay(settings, pool, redis, keys, {"KRW-AVAX": rows}, START) as rp:
        await rp.preload(START)
        await rp.run_until(end)
    live = await _live_trades(pool)
    candles = {"KRW-AVAX": _closed_by(to_candles(rows, "KRW-AVAX"), end)}
    result = await run_backtest(candles, settings.app, start=START)
    assert len(live) >= 5  # three days of a falling market trade several times
    assert len({t[6] for t in live}) >= 2
    assert _bt_trades(result.trades) == live
    cash = await pool.fetchval("SELECT cash FROM account_state WHERE id = 1")
    assert result.final_cash == cash
    held = await pool.fetch("SELECT symbol, quantity, avg_price FROM positions ORDER BY symbol")
    assert {r["symbol"]: (r["quantity"], r["avg_price"]) for r in held} == result.open_positions
    assert cash != Decimal(settings.app.risk.initial_balance_krw)

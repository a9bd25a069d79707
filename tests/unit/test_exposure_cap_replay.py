"""The total-exposure cap binds in a replay, with open positions marked at moving prices.

Under the shipped limits (3 positions × 5 % against a 20 % cap) the exposure cap can never
bind, so this replay allows five positions of 15 % × the regime ratio (7.5 % in BEAR): the
first fill whole, the next gets only the room left under 20 % of equity, later ones get
what the marked prices free up or are refused below the minimum order.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from coinpilot.backtest.data import load_csv, shifted
from coinpilot.backtest.engine import run_backtest
from coinpilot.config import AppConfig, load_config
from coinpilot.domain.fills import to_decimal

AVAX = "binance_AVAXUSDT_1m_2025-02-01_2025-02-28.csv"
D = Decimal


@pytest.fixture(scope="module")
def app() -> AppConfig:
    shipped = load_config(environ={}).app
    risk = shipped.risk.model_copy(
        update={"max_position_size": 0.15, "max_concurrent_positions": 5}
    )
    return shipped.model_copy(update={"risk": risk})


def test_exposure_cap_binds_and_holds_on_marked_prices(data_dir: Path, app: AppConfig) -> None:
    base = load_csv(f"{data_dir / AVAX}=KRW-AVAX")
    symbols = ["KRW-A", "KRW-B", "KRW-C", "KRW-D", "KRW-E"]
    # Same prices under five names, each starting a few minutes later: signals coincide.
    candles = {s: shifted(base, s, 0).slice(i * 7, len(base)) for i, s in enumerate(symbols)}
    r = asyncio.run(run_backtest(candles, app))
    assert r.trades
    initial = app.risk.initial_balance_krw
    cap = to_decimal(app.risk.max_total_exposure)
    room_bound = 0
    for n, new in enumerate(r.trades):
        tick = new.entry_ts
        # The newest closed candle at the decision tick marks every open position.
        k = int(np.searchsorted(base.ts, tick - 60, side="right")) - 1
        mark = to_decimal(float(base.close[k]))
        before = r.trades[:n]
        held = [t for t in before if t.exit_ts is None or t.exit_ts > tick]
        closed = [t for t in before if t.exit_ts is not None and t.exit_ts <= tick]
        cash = initial + sum((t.pnl for t in closed), D(0)) - sum((t.cost for t in held), D(0))
        exposure = sum((t.quantity * mark for t in held), D(0))
        equity = cash + exposure
        notional = new.entry_price * new.quantity
        # Sizing asked for at most the room under the cap, at these marks.
        assert notional <= equity * cap - exposure, (n, notional, equity, exposure)
        ratio = to_decimal(app.regimes[new.regime].position_size_ratio)
        wanted = equity * to_decimal(app.risk.max_position_size) * ratio
        if notional < wanted * D("0.9"):
            room_bound += 1
            # Cash was never short (most of equity stays in cash): the room bound.
            assert cash * D("0.998") > wanted
    assert room_bound >= 3
    assert r.funnel.get("risk:below_min_order", 0) > 0  # no room at all, later on

"""Backtest statistics against figures computed by hand."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from coinpilot.backtest.jsonout import dumps, to_document
from coinpilot.backtest.model import BacktestResult, Trade
from coinpilot.backtest.summary import daily_closes, max_drawdown, sharpe_daily, summarize

KST = ZoneInfo("Asia/Seoul")
D = Decimal


def _trade(regime: str, entry: str, exit_: str | None, reason: str = "TAKE_PROFIT") -> Trade:
    return Trade(
        symbol="KRW-BTC",
        regime=regime,
        entry_ts=0,
        entry_price=D(entry),
        quantity=D("2"),
        entry_fee=D("1"),
        exit_ts=None if exit_ is None else 60,
        exit_price=None if exit_ is None else D(exit_),
        exit_fee=D("0") if exit_ is None else D("1"),
        exit_reason="" if exit_ is None else reason,
    )


def _result(
    trades: list[Trade], equity: list[float], ts: list[int] | None = None
) -> BacktestResult:
    n = len(equity)
    return BacktestResult(
        initial_equity=D("1000"),
        final_cash=D("1000"),
        trades=trades,
        equity_ts=np.array(ts if ts is not None else [i * 60 for i in range(n)], dtype=np.int64),
        equity=np.array(equity, dtype=np.float64),
        in_market=np.array([i % 2 == 0 for i in range(n)]),
        funnel={"rsi14": 5, "volume": 2},
    )


def test_trade_pnl_includes_both_fees() -> None:
    """PnL is exit value minus exit fee minus entry cost including the entry fee."""
    t = _trade("BULL", "100", "110")
    # 2 × 110 − 1 − (2 × 100 + 1) = 18
    assert t.pnl == D("18")
    assert t.fees == D("2")


def test_max_drawdown_by_hand() -> None:
    """The deepest fall is from 120 to 90: 25 %."""
    assert max_drawdown(np.array([100.0, 120.0, 110.0, 90.0, 130.0, 125.0])) == pytest.approx(0.25)
    assert max_drawdown(np.array([1.0, 2.0, 3.0])) == 0.0


def test_daily_closes_follow_kst_days() -> None:
    """14:59 UTC and 15:00 UTC fall on different KST days (KST = UTC+9)."""
    ts = np.array([14 * 3600 + 59 * 60, 15 * 3600, 16 * 3600], dtype=np.int64)
    eq = np.array([1.0, 2.0, 3.0])
    assert daily_closes(ts, eq, KST).tolist() == [1.0, 3.0]
    assert daily_closes(ts, eq, ZoneInfo("UTC")).tolist() == [3.0]


def test_sharpe_by_hand() -> None:
    """Returns +10 % then −10 %: mean 0, so Sharpe 0; +10 %, +20 % gives a known value."""
    assert sharpe_daily(np.array([110.0, 99.0]), 100.0) == pytest.approx(0.0)
    r = np.array([0.1, 0.2])
    expected = r.mean() / r.std(ddof=1) * math.sqrt(365)
    assert sharpe_daily(np.array([110.0, 132.0]), 100.0) == pytest.approx(expected)
    assert sharpe_daily(np.array([110.0]), 100.0) is None


def test_summary_counts_and_regimes() -> None:
    """Win rate, per-regime PnL, exit reasons and open trades add up."""
    trades = [
        _trade("BULL", "100", "110"),  # +18
        _trade("BULL", "100", "95", "STOP_LOSS"),  # 190 − 1 − 201 = −12
        _trade("BEAR", "100", "100", "TIME_LIMIT"),  # −2, not a win
        _trade("BEAR", "100", None),  # open
    ]
    s = summarize(_result(trades, [1000.0, 1010.0, 990.0, 1004.0]), KST)
    assert (s.trades, s.wins, s.losses, s.open_trades) == (3, 1, 2, 1)
    assert s.win_rate == pytest.approx(1 / 3)
    assert s.total_pnl == D("4")
    assert s.pnl_by_regime == {"BEAR": D("-2"), "BULL": D("6")}
    assert s.fees_paid == D("7")
    assert s.exit_reasons == {"STOP_LOSS": 1, "TAKE_PROFIT": 1, "TIME_LIMIT": 1}
    assert s.time_in_market == pytest.approx(0.5)
    assert s.max_drawdown == pytest.approx(20 / 1010)
    assert s.return_pct == pytest.approx(0.4)
    assert s.funnel == {"rsi14": 5, "volume": 2}


def test_summary_of_an_empty_run() -> None:
    """No trades and no equity points give neutral figures rather than errors."""
    s = summarize(_result([], []), KST)
    assert s.trades == 0
    assert s.win_rate is None
    assert s.sharpe is None
    assert s.final_equity == 1000.0
    assert s.max_drawdown == 0.0


def test_json_is_exact_and_stable() -> None:
    """Decimals survive as strings and the same result serialises to the same bytes."""
    trades = [_trade("BULL", "100.12345678", "110")]
    r = _result(trades, [1000.0, 1010.0])
    doc = to_document(r, summarize(r, KST), KST, {"config": "x"})
    text = dumps(doc)
    assert text == dumps(to_document(r, summarize(r, KST), KST, {"config": "x"}))
    back = json.loads(text)
    assert back["trades"][0]["entry_price"] == "100.12345678"
    assert back["trades"][0]["exit_time"] == "1970-01-01T00:01:00+00:00"
    assert back["summary"]["total_pnl"] == str(trades[0].pnl)

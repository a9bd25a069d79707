"""Analyst figures of a backtest, checked against sums done by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from coinpilot.backtest import analysis
from coinpilot.backtest.history import regime_notes, regime_ready_at
from coinpilot.backtest.model import Trade
from coinpilot.config import load_config
from coinpilot.domain.candles import Candles

D = Decimal
HOUR = 3600


def test_buy_and_hold_is_equal_weight_on_closed_candles() -> None:
    """Half in each symbol at the first tick's closed candle: 500 x 1.05 + 500 x 0.8 = 925."""
    ts = np.array([0, 60, 120], dtype=np.int64)
    prices = {
        "KRW-A": (ts, np.array([100.0, 105.0, 110.0])),
        "KRW-B": (ts, np.array([50.0, 40.0, 45.0])),
    }
    ticks = np.array([60, 120, 180], dtype=np.int64)  # each sees the candle a minute before
    curve = analysis.buy_and_hold(prices, ticks, 1000.0)
    assert curve.tolist() == [1000.0, 925.0, 1000.0]
    assert analysis.total_return_pct(np.array([1000.0, 1050.0]), 1000.0) == pytest.approx(5.0)


def test_months_are_local_and_chain_from_the_initial_balance() -> None:
    """23:00 KST on 31 January is January; 00:30 KST on 1 February is February."""
    ts = np.array(
        [
            datetime(2024, 1, 31, 13, 0, tzinfo=UTC).timestamp(),
            datetime(2024, 1, 31, 14, 0, tzinfo=UTC).timestamp(),
            datetime(2024, 1, 31, 15, 30, tzinfo=UTC).timestamp(),
        ],
        dtype=np.int64,
    )
    months = analysis.monthly_returns(
        ts, np.array([1000.0, 1100.0, 990.0]), 1000.0, ZoneInfo("Asia/Seoul")
    )
    assert [(m.month, m.start_equity, m.end_equity) for m in months] == [
        ("2024-01", 1000.0, 1100.0),
        ("2024-02", 1100.0, 990.0),
    ]
    assert round(months[0].return_pct, 10) == 10.0
    assert round(months[1].return_pct, 10) == -10.0


def test_groups_net_gross_and_fees() -> None:
    """Win: 110 - 0.055 - (100 + 0.05) = 9.895; loss: 190 - 0.095 - (200 + 0.1) = -10.195."""
    win = Trade("KRW-A", "BULL", 0, D(100), D(1), D("0.05"), 60, D(110), D("0.055"), "TP")
    loss = Trade("KRW-B", "BULL", 0, D(100), D(2), D("0.1"), 60, D(95), D("0.095"), "SL")
    still_open = Trade("KRW-A", "BEAR", 0, D(100), D(1), D("0.05"))
    (bull,) = analysis.groups([win, loss, still_open], lambda t: t.regime)
    assert (bull.key, bull.trades, bull.wins) == ("BULL", 2, 1)
    assert bull.net == D("-0.300")
    assert bull.fees == D("0.300")
    assert bull.gross == 0
    assert bull.win_rate_pct == 50.0
    by_reason = analysis.groups([win, loss], lambda t: t.exit_reason)
    assert [(g.key, g.net) for g in by_reason] == [("SL", D("-10.195")), ("TP", D("9.895"))]


def test_compare_rows_show_both_runs_and_the_difference() -> None:
    this = {
        "summary": {"total_pnl": "46546.4", "return_pct": 0.4654, "max_drawdown": 0.0022,
                    "trades": 23, "win_rate": 0.7826, "fees_paid": "10757.1", "sharpe": 4.9},
        "benchmark": {"buy_and_hold_return_pct": 43.39},
    }  # fmt: skip
    other = {
        "summary": {"total_pnl": "-1000", "return_pct": -0.01, "max_drawdown": 0.01,
                    "trades": 3, "win_rate": None, "fees_paid": "300", "sharpe": None}
    }  # fmt: skip
    rows = {r[0]: r[1:] for r in analysis.compare_rows(this, other)}
    assert rows["Net PnL (KRW)"] == ("46,546", "-1,000", "+47,546")
    assert rows["Return"] == ("0.47%", "-0.01%", "+0.48%")
    assert rows["Max drawdown"] == ("0.22%", "1.00%", "-0.78%")
    assert rows["Round trips"] == ("23", "3", "+20")
    assert rows["Win rate"] == ("78.26%", "—", "—")
    assert rows["Buy and hold"] == ("43.39%", "—", "—")
    assert rows["Sharpe (daily)"] == ("4.90", "—", "—")


def _hourly(hours: list[int]) -> Candles:
    ts = np.array([h * HOUR for h in hours], dtype=np.int64)
    ones = np.ones(len(ts))
    return Candles("KRW-BTC", ts, ones, ones, ones, ones, ones)


def test_regime_is_ready_once_enough_hours_have_closed_inside_the_look_back() -> None:
    """200 closed hours are needed within 400: hour 199 closes at 200 h."""
    assert regime_ready_at(_hourly(list(range(200))), 200) == 200 * HOUR
    assert regime_ready_at(_hourly(list(range(199))), 200) is None
    # 100 hours, a 200-hour gap, 100 more: the 200th closes at 400 h, all still in the window.
    assert regime_ready_at(_hourly([*range(100), *range(300, 400)]), 200) == 400 * HOUR
    # A longer gap pushes the first hours out of the look-back: 100 more are needed.
    gapped = _hourly([*range(100), *range(500, 700)])
    assert regime_ready_at(gapped, 200) == 700 * HOUR


def test_short_history_is_said_in_days() -> None:
    """Seven days of hours: 168 hourly candles, 7.0 days, where 200 (8.3 days) are needed."""
    app = load_config(environ={}).app
    (note,) = regime_notes({"KRW-BTC": _hourly(list(range(168)))}, app)
    assert note.startswith("KRW-BTC: 168 hourly candles (7.0 days) of history")
    assert "needs 200 closed hourly candles (8.3 days)" in note
    assert "no trade can be entered" in note
    (late,) = regime_notes({"KRW-BTC": _hourly(list(range(300)))}, app)
    assert "unknown (no entries) until 1970-01-09 08:00 UTC, 8.3 of the run's 12.5 days" in late
    assert (
        regime_notes({"KRW-BTC": _hourly(list(range(300)))}, app, datetime(1970, 1, 10, tzinfo=UTC))
        == []
    )


def test_a_round_trip_reads_on_one_line() -> None:
    """Bought 0.01 at 95,123,456 (fee 475.6), sold at 96,000,000 (fee 480): gross
    0.01 x 876,544 = 8,765.44, fees 955.6, net 7,809.84."""
    t = Trade(
        "KRW-BTC", "BULL", 1707528180, D("95123456"), D("0.01"), D("475.6"),
        1707535800, D("96000000"), D("480"), "TAKE_PROFIT",
    )  # fmt: skip
    line = analysis.round_trip_line(t, ZoneInfo("Asia/Seoul"))
    assert line == (
        "KRW-BTC BULL     2024-02-10 10:23 KST @ 95,123,000 -> 2024-02-10 12:30 KST @ "
        "96,000,000, quantity 0.01000000, TAKE_PROFIT: +7,810 KRW (gross +8,765, fees 956)"
    )

"""Shadow exits under the live exit rules, and the scoreboard's group statistics."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from coinpilot.config import FillParams, load_config
from coinpilot.domain.ai_shadow import group_stats, simulate_exit
from coinpilot.domain.candles import Candles

SETTINGS = load_config(environ={})
ENTRY = datetime(2026, 11, 1, 0, 1, tzinfo=UTC)


def path(closes: list[float]) -> Candles:
    n = len(closes)
    ts = int(ENTRY.timestamp()) + 60 * np.arange(n, dtype=np.int64)
    c = np.asarray(closes, dtype=np.float64)
    return Candles("KRW-BTC", ts, c, c, c, c, np.ones(n))


def run(closes: list[float], fills: FillParams | None = None):
    return simulate_exit(
        path(closes),
        np.full(len(closes), np.nan),
        entry_ts=ENTRY,
        entry_close=100.0,
        regime="SIDEWAYS",
        regimes=SETTINGS.app.regimes,
        fills=fills or FillParams(fee_rate=Decimal(0), slippage=Decimal(0)),
    )


def test_take_profit_at_three_percent() -> None:
    """A steady rise exits at SIDEWAYS take profit (3 %) with exact PnL when costs are zero."""
    out = run([100.0, 101.0, 102.0, 103.0, 104.0])
    assert out is not None
    assert (out.reason, out.exit_price, out.pnl_pct) == (
        "TAKE_PROFIT",
        Decimal("103.0"),
        Decimal("3.0000"),
    )


def test_stop_loss_and_fees() -> None:
    """A fall to −4 % stops out; fees and slippage make the net loss larger."""
    fills = FillParams(fee_rate=Decimal("0.0005"), slippage=Decimal("0.0005"))
    out = run([99.0, 97.0, 96.0], fills)
    assert out is not None
    assert out.reason == "STOP_LOSS"
    assert out.pnl_pct < Decimal("-4")


def test_still_open_when_no_rule_fires() -> None:
    """Without any exit condition the outcome is unknown yet."""
    assert run([100.1, 99.9, 100.2]) is None


def test_group_stats_count_open_trades_as_candidates_only() -> None:
    """Win rate and PnL use closed trades; open ones still count as candidates."""
    g = group_stats("x", [Decimal("2"), Decimal("-1"), None, Decimal("1")])
    assert (g.candidates, g.closed, g.wins) == (4, 3, 2)
    assert g.avg_pnl_pct == Decimal("0.6667")
    assert group_stats("y", [None]).win_rate is None

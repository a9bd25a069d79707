"""Shadow exits under the live exit rules, and the scoreboard's group statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from coinpilot.config import ExitParams, FillParams, load_config
from coinpilot.domain.ai_shadow import GroupStats, ShadowOutcome, group_stats, simulate_exit
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


# Exits chosen for these paths: TP 3 %, SL 4 %, trailing 2 % once 1 % up, RSI above 70 with
# at least 0.5 % profit, one hour at most. BEAR differs only in a wider stop (6 %).
EXITS = ExitParams(take_profit_pct=0.03, stop_loss_pct=0.04, trailing_stop_pct=0.02,
                   trailing_stop_activation_pct=0.01, rsi_overbought=70,
                   rsi_exit_min_profit_pct=0.005, time_limit_hours=1.0)  # fmt: skip
BASE = SETTINGS.app.regimes["SIDEWAYS"]
REGIMES = {
    "SIDEWAYS": BASE.model_copy(update={"exit": EXITS}),
    "BEAR": BASE.model_copy(update={"exit": EXITS.model_copy(update={"stop_loss_pct": 0.06})}),
}
FREE = FillParams(fee_rate=Decimal(0), slippage=Decimal(0))


def walk(closes: list[float], rsi: list[float] | None = None, *, regime: str = "SIDEWAYS",
         fills: FillParams = FREE):  # fmt: skip
    return simulate_exit(
        path(closes),
        np.asarray(rsi if rsi is not None else [np.nan] * len(closes), dtype=np.float64),
        entry_ts=ENTRY,
        entry_close=100.0,
        regime=regime,
        regimes=REGIMES,
        fills=fills,
    )


def minute(n: int) -> datetime:
    """The close time of the n-th candle after entry (the first opens at ENTRY)."""
    return ENTRY + timedelta(minutes=n)


def test_fees_and_slippage_on_both_sides_by_hand() -> None:
    """Entry 100 × 1.001 = 100.1; 101 is +0.9 %, 103.2 is +3.1 %: take profit at the second
    candle's close, exit 103.2 × 0.999 = 103.0968. Cost 100.1 × 1.0005 = 100.15005, proceeds
    103.0968 × 0.9995 = 103.0452516: net 2.8952016 / 100.15005 = 2.89086… % -> 2.8909."""
    fills = FillParams(fee_rate=Decimal("0.0005"), slippage=Decimal("0.001"))
    out = walk([101.0, 103.2], fills=fills)
    assert out == ShadowOutcome(minute(2), Decimal("103.0968"), "TAKE_PROFIT", Decimal("2.8909"))
    assert out.exit_ts.tzinfo is UTC


def test_the_high_water_mark_is_carried_between_minutes() -> None:
    """102 (+2 %) arms the trailing stop at 102 × 0.98 = 99.96; 101 keeps the mark at 102;
    99.9 is below 99.96 and trails out, though it is only −0.1 % from entry."""
    out = walk([102.0, 101.0, 99.9])
    assert out == ShadowOutcome(minute(3), Decimal("99.9"), "TRAILING_STOP", Decimal("-0.1000"))


def test_rsi_exit_reads_each_minutes_rsi() -> None:
    """+1 % every minute; RSI unknown (NaN) at the first, 75 > 70 at the second: exit there."""
    out = walk([101.0, 101.0, 101.0], [np.nan, 75.0, 80.0])
    assert out == ShadowOutcome(minute(2), Decimal("101.0"), "RSI_OVERBOUGHT", Decimal("1.0000"))


def test_a_short_rsi_series_leaves_later_minutes_without_rsi() -> None:
    """RSI for the first minute only: the walk goes on without it to take profit at +3.5 %."""
    out = walk([100.5, 101.5, 103.5], [np.nan])
    assert out == ShadowOutcome(minute(3), Decimal("103.5"), "TAKE_PROFIT", Decimal("3.5000"))


def test_time_limit_counts_from_the_entry() -> None:
    """Flat at 100 with a one-hour limit: the 61st candle closes at entry + 61 min, the first
    close strictly past the hour."""
    out = walk([100.0] * 62)
    assert out == ShadowOutcome(minute(61), Decimal("100.0"), "TIME_LIMIT", Decimal("0.0000"))


def test_the_entry_regime_decides_the_exits() -> None:
    """In BEAR the stop is 6 %: −4.5 % holds (SIDEWAYS would stop at 4 %), then +3 % takes
    profit."""
    out = walk([95.5, 103.0], regime="BEAR")
    assert out == ShadowOutcome(minute(2), Decimal("103.0"), "TAKE_PROFIT", Decimal("3.0000"))
    sideways = walk([95.5, 103.0])
    assert sideways is not None
    assert sideways.reason == "STOP_LOSS"


def test_group_stats_by_hand() -> None:
    """A break-even trade is not a win; the group keeps its name; totals stay Decimal."""
    g = group_stats("approved", [Decimal("0"), Decimal("2.5"), None, Decimal("-1.25")])
    # closed: 0, 2.5, -1.25 -> 3 closed, 1 win, total 1.25, average 0.4167 (1.25 / 3)
    assert g == GroupStats("approved", 4, 3, 1, Decimal("1.25"))
    assert g.win_rate == 1 / 3
    assert g.avg_pnl_pct == Decimal("0.4167")
    empty = group_stats("rejected", [None, None])
    assert empty == GroupStats("rejected", 2, 0, 0, Decimal(0))
    assert type(empty.total_pnl_pct) is Decimal
    assert (empty.win_rate, empty.avg_pnl_pct) == (None, None)

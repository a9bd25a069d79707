"""Exit decisions beyond the reason: the PnL and parameters they carry, integer and non-UTC
inputs, and the trailing-stop activation measured as a fraction of the average price.

Shipped exits (config/coinpilot.yaml): BULL stop loss 3 %, take profit 5 %, trailing 3 % once
1 % up, RSI overbought 75 with at least 1 % profit, 72 h; SIDEWAYS 4 % / 3 % / 2.5 % / 70 / 48 h.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from coinpilot.config import RegimeParams
from coinpilot.domain.exits import ExitDecision, effective_exit_params, evaluate_exit
from tests.unit.strategy_support import shipped_config

REGIMES = shipped_config().regimes
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KST = timezone(timedelta(hours=9))


def decide(
    close: float | None,
    *,
    avg: float = 100.0,
    hwm: float | None = None,
    rsi14: float | None = 50.0,
    opened_at: datetime = NOW - timedelta(hours=1),
    regimes: Mapping[str, RegimeParams] = REGIMES,
) -> ExitDecision:
    return evaluate_exit(
        avg_price=avg,
        opened_at=opened_at,
        entry_regime="BULL",
        hwm=hwm,
        close=close,
        rsi14=rsi14,
        current_regime="BULL",
        regimes=regimes,
        now=NOW,
    )


def test_each_decision_carries_its_pnl() -> None:
    """pnl = (close − 100) / 100: −3 % at 97 (stop loss), −2.03 % at 97.97 under a 101 HWM
    (trailing: 97.97 ≤ 101 × 0.97 = 97.97), +1 % at 101 (no exit)."""
    assert decide(97.0).pnl_pct == -0.03
    trailing = decide(97.97, hwm=101.0)
    assert (trailing.reason, trailing.pnl_pct) == ("TRAILING_STOP", -0.0203)
    held = decide(101.0)
    assert (held.reason, held.pnl_pct) == (None, 0.01)


def test_decisions_without_a_price_or_an_average_carry_the_parameters() -> None:
    bull = REGIMES["BULL"].exit
    assert decide(None).params == bull
    assert decide(50.0, avg=0.0).params == bull


def test_integer_prices() -> None:
    """Integer prices are exact: 97 against 100 is exactly −3 %, the BULL stop loss."""
    stop = decide(97, avg=100, hwm=100)
    assert (stop.reason, stop.pnl_pct) == ("STOP_LOSS", -0.03)
    take = decide(105, avg=100, hwm=100)
    assert (take.reason, take.new_hwm) == ("TAKE_PROFIT", Decimal(105))


def test_a_price_that_is_not_finite_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"^price must be finite, got nan$"):
        decide(math.nan)


def test_no_current_regime_keeps_the_entry_regimes_exits() -> None:
    """Entered BULL, current regime unknown (None): BULL's own exits, not the fallback's."""
    assert effective_exit_params("BULL", None, REGIMES) == REGIMES["BULL"].exit


def test_an_aware_opening_time_in_another_zone_is_that_instant() -> None:
    """Opened 73 h ago, written in KST (+09:00): past BULL's 72 h, whatever the zone."""
    opened = (NOW - timedelta(hours=73)).astimezone(KST)
    assert decide(100.0, opened_at=opened).reason == "TIME_LIMIT"
    recent = (NOW - timedelta(hours=71)).astimezone(KST)
    assert decide(100.0, opened_at=recent).reason is None


def test_the_activation_is_a_fraction_of_the_average_price() -> None:
    """A stored HWM of 100.5 is 0.5 % up, below the 1 % activation: a close of 97.4
    (−2.6 %, above the stop loss) is under 100.5 × 0.97 = 97.485 but no trailing stop."""
    assert decide(97.4, hwm=100.5).reason is None
    assert decide(97.4, hwm=101.0).reason == "TRAILING_STOP"  # 1 % up: 97.4 ≤ 97.97


def test_any_rsi_above_a_low_threshold_counts() -> None:
    """With rsi_overbought 0.5, an RSI of 1 is overbought; None, NaN and 0 mean no RSI."""
    low = {
        name: r.model_copy(update={"exit": r.exit.model_copy(update={"rsi_overbought": 0.5})})
        for name, r in REGIMES.items()
    }
    assert decide(101.0, rsi14=1.0, regimes=low).reason == "RSI_OVERBOUGHT"
    for absent in (None, math.nan, 0.0):
        assert decide(101.0, rsi14=absent, regimes=low).reason is None


def ledger_exit(avg: str, hwm: str, close: str) -> ExitDecision:
    return evaluate_exit(
        avg_price=Decimal(avg),
        opened_at=NOW - timedelta(hours=1),
        entry_regime="BULL",
        hwm=Decimal(hwm),
        close=Decimal(close),
        rsi14=50.0,
        current_regime="BULL",
        regimes=REGIMES,
        now=NOW,
    )


def test_decimal_prices_as_the_ledger_stores_them() -> None:
    """The bot passes the ledger's Decimals unchanged.

    avg 100.5, close 97.485: (97.485 − 100.5) / 100.5 = −3.015 / 100.5 = exactly −3 %, the
    BULL stop loss (the caller keeps the stored mark, so none is returned).
    avg 100.5, mark 103.5 (+2.99 %, past the 1 % activation), close 100.395 = 103.5 × 0.97:
    the trailing stop, at −0.105 / 100.5 = −0.104478 %, keeping the mark 103.5.
    """
    stop = ledger_exit("100.5", "100.5", "97.485")
    assert (stop.reason, stop.pnl_pct, stop.new_hwm) == ("STOP_LOSS", -0.03, None)
    trail = ledger_exit("100.5", "103.5", "100.395")
    assert (trail.reason, trail.new_hwm) == ("TRAILING_STOP", Decimal("103.5"))
    assert trail.pnl_pct == pytest.approx(-0.00104478, abs=1e-8)

"""Exit rules (SPEC §7): thresholds, precedence, regime-change parameters and the HWM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coinpilot.domain.strategy import effective_exit_params, evaluate_exit
from tests.unit.strategy_support import shipped_config

REGIMES = shipped_config().regimes
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def exit_for(
    close: float | Decimal | None,
    *,
    avg: float | Decimal = 100.0,
    hwm: float | Decimal | None = None,
    rsi14: float | None = 50.0,
    entry: str | None = "BULL",
    current: str | None = "BULL",
    age: timedelta = timedelta(hours=1),
    opened_at: datetime | str | None = "auto",
):
    return evaluate_exit(
        avg_price=avg,
        opened_at=NOW - age if opened_at == "auto" else opened_at,  # type: ignore[arg-type]
        entry_regime=entry,
        hwm=hwm,
        close=close,
        rsi14=rsi14,
        current_regime=current,
        regimes=REGIMES,
        now=NOW,
    )


@pytest.mark.parametrize(
    ("close", "kwargs", "reason"),
    [
        (97.0, {}, "STOP_LOSS"),  # exactly −3 % (BULL) is inclusive
        (97.01, {}, None),
        (96.0, {"entry": "SIDEWAYS", "current": "SIDEWAYS"}, "STOP_LOSS"),  # −4 %
        (96.01, {"entry": "SIDEWAYS", "current": "SIDEWAYS"}, None),
        (95.0, {"entry": "BEAR", "current": "BEAR"}, "STOP_LOSS"),
        (105.0, {}, "TAKE_PROFIT"),  # exactly +5 % is inclusive
        (104.99, {}, None),
        (103.0, {"entry": "SIDEWAYS", "current": "SIDEWAYS"}, "TAKE_PROFIT"),
        (101.0, {"rsi14": 75.0}, None),  # overbought is strict
        (101.0, {"rsi14": 75.01}, "RSI_OVERBOUGHT"),  # +1 % is exactly the minimum profit
        (100.99, {"rsi14": 90.0}, None),
        (100.5, {"rsi14": 70.5, "entry": "BEAR", "current": "BEAR"}, "RSI_OVERBOUGHT"),
        (100.49, {"rsi14": 70.5, "entry": "BEAR", "current": "BEAR"}, None),
        (100.0, {"age": timedelta(hours=72)}, None),  # the time limit is strict
        (100.0, {"age": timedelta(hours=72, seconds=1)}, "TIME_LIMIT"),
        (
            100.0,
            {"age": timedelta(hours=24, seconds=1), "entry": "BEAR", "current": "BEAR"},
            "TIME_LIMIT",
        ),
    ],
)
def test_thresholds(close: float, kwargs: dict[str, object], reason: str | None) -> None:
    """Each exit fires exactly at its documented threshold and not just before it."""
    assert exit_for(close, **kwargs).reason == reason  # type: ignore[arg-type]


def test_trailing_stop_activation_and_trigger() -> None:
    """Trailing stop: active once the HWM is 1 % up, fires at HWM × (1 − 3 %), even at a loss."""
    assert exit_for(97.97, hwm=101.0).reason == "TRAILING_STOP"  # −2.03 %, not yet a stop loss
    assert exit_for(97.98, hwm=101.0).reason is None
    assert exit_for(97.97, hwm=100.99).reason is None  # never activated
    assert exit_for(100.0, hwm=110.0).reason == "TRAILING_STOP"
    fired = exit_for(Decimal("106.7"), hwm=Decimal("110"))
    assert fired.reason == "TRAILING_STOP"
    assert fired.new_hwm == Decimal("110")


def test_trailing_stop_activates_on_the_current_close() -> None:
    """A close 1 % up activates the stop in the same evaluation and becomes the new HWM."""
    decision = exit_for(101.0, hwm=None)
    assert decision.reason is None
    assert decision.new_hwm == Decimal("101.0")


@pytest.mark.parametrize(
    ("close", "kwargs", "reason"),
    [
        # stop loss and time limit both hold
        (96.0, {"age": timedelta(hours=100)}, "STOP_LOSS"),
        # trailing stop and take profit both hold (HWM far above)
        (106.0, {"hwm": 120.0}, "TRAILING_STOP"),
        # take profit and RSI overbought and time limit all hold
        (106.0, {"rsi14": 90.0, "age": timedelta(hours=100)}, "TAKE_PROFIT"),
        # RSI overbought and time limit both hold
        (102.0, {"rsi14": 90.0, "age": timedelta(hours=100)}, "RSI_OVERBOUGHT"),
        # stop loss and trailing stop both hold
        (96.0, {"hwm": 120.0}, "STOP_LOSS"),
    ],
)
def test_precedence(close: float, kwargs: dict[str, object], reason: str) -> None:
    """When several exits hold at once the first in SPEC §7.2's order wins."""
    assert exit_for(close, **kwargs).reason == reason  # type: ignore[arg-type]


def test_stop_loss_keeps_no_hwm() -> None:
    """A STOP_LOSS exit does not turn the exit price into the high-water mark."""
    decision = exit_for(90.0, hwm=104.0)
    assert decision.reason == "STOP_LOSS"
    assert decision.new_hwm is None


def test_hwm_only_rises() -> None:
    """The new HWM is the higher of the stored HWM and the close."""
    assert exit_for(100.5, hwm=100.8).new_hwm == Decimal("100.8")
    assert exit_for(100.9, hwm=100.8).new_hwm == Decimal("100.9")
    assert exit_for(100.2, hwm=None).new_hwm == Decimal("100.2")


def test_without_price_only_the_time_limit_applies() -> None:
    """With no fresh price the position still times out, and nothing else is decided."""
    assert exit_for(None, age=timedelta(hours=80)).reason == "TIME_LIMIT"
    late = exit_for(None, age=timedelta(hours=1))
    assert late.reason is None
    assert late.new_hwm is None


def test_naive_opened_at_is_utc_and_missing_never_times_out() -> None:
    """A naive opening time reads as UTC; no opening time means no time limit."""
    naive = (NOW - timedelta(hours=73)).replace(tzinfo=None)
    assert exit_for(100.0, opened_at=naive).reason == "TIME_LIMIT"
    assert exit_for(100.0, opened_at=None).reason is None


def test_zero_average_price_never_exits() -> None:
    """A position without an average price is never closed by the rules."""
    assert exit_for(1.0, avg=0.0, age=timedelta(days=30)).reason is None


@pytest.mark.parametrize(
    ("entry", "current", "expected"),
    [
        (
            "BULL",
            "BEAR",
            {
                "stop_loss_pct": 0.03,
                "take_profit_pct": 0.03,
                "trailing_stop_pct": 0.02,
                "rsi_overbought": 70.0,
                "rsi_exit_min_profit_pct": 0.005,
                "time_limit_hours": 24.0,
            },
        ),
        (
            "BEAR",
            "BULL",
            {"stop_loss_pct": 0.03, "take_profit_pct": 0.05, "time_limit_hours": 72.0},
        ),
        (
            "BULL",
            "UNKNOWN",
            {"stop_loss_pct": 0.03, "take_profit_pct": 0.03, "time_limit_hours": 48.0},
        ),
        (None, None, {"stop_loss_pct": 0.04, "time_limit_hours": 48.0}),
        ("BEAR", "BEAR", {"stop_loss_pct": 0.05, "time_limit_hours": 24.0}),
    ],
)
def test_regime_change_parameters(
    entry: str | None, current: str | None, expected: dict[str, float]
) -> None:
    """After a regime change the current regime's exits apply with the tighter stop loss."""
    params = effective_exit_params(entry, current, REGIMES)
    for key, value in expected.items():
        assert getattr(params, key) == value, key


def test_regime_change_reaches_the_decision() -> None:
    """Entered BULL, now BEAR: +3 % takes profit and 25 h is past the time limit."""
    assert exit_for(103.0, current="BEAR").reason == "TAKE_PROFIT"
    assert exit_for(100.0, current="BEAR", age=timedelta(hours=25)).reason == "TIME_LIMIT"
    assert exit_for(103.0, current="BULL").reason is None


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=1.0, max_value=1e7),
    st.floats(min_value=0.5, max_value=1.5),
    st.one_of(st.none(), st.floats(min_value=0.9, max_value=1.5)),
    st.sampled_from(["BULL", "SIDEWAYS", "BEAR", "UNKNOWN"]),
)
def test_exit_properties(avg: float, move: float, hwm_move: float | None, regime: str) -> None:
    """Stop loss iff pnl ≤ −SL; otherwise the new HWM is at least the stored HWM and the close."""
    close = avg * move
    hwm = None if hwm_move is None else avg * hwm_move
    decision = exit_for(close, avg=avg, hwm=hwm, entry="BULL", current=regime)
    pnl = float((Decimal(repr(close)) - Decimal(repr(avg))) / Decimal(repr(avg)))
    assert (decision.reason == "STOP_LOSS") == (pnl <= -decision.params.stop_loss_pct)
    if decision.reason != "STOP_LOSS":
        assert decision.new_hwm is not None
        assert decision.new_hwm >= Decimal(repr(close))
        assert decision.new_hwm >= Decimal(repr(hwm if hwm is not None else avg))

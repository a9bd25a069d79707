"""Pure risk rules, sizing and fills: boundaries and order of checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from coinpilot.config import FillParams, RiskLimits
from coinpilot.domain import risk
from coinpilot.domain.fills import buy_fill, net_pnl, sell_fill, to_decimal
from coinpilot.domain.sizing import order_amount, volatility_factor

NOW = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
LIMITS = RiskLimits()
D = Decimal


def state(**over: object) -> risk.RiskState:
    base: dict[str, object] = {
        "equity": D(10_000_000), "opening_equity": D(10_000_000), "buy_count": 0,
        "halted": False, "cooldown_until": None, "open_symbols": frozenset(),
    }  # fmt: skip
    base.update(over)
    return risk.RiskState(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("over", "code", "halt"),
    [
        ({}, "", False),
        ({"halted": True, "buy_count": 99}, "trading_halted", False),
        ({"cooldown_until": NOW + timedelta(seconds=1), "buy_count": 99}, "cooldown", False),
        ({"cooldown_until": NOW}, "", False),
        ({"buy_count": 9}, "", False),
        ({"buy_count": 10}, "max_daily_trades", False),
        ({"equity": D(9_500_000)}, "daily_loss_limit", True),
        ({"equity": D("9500000.01")}, "", False),
        ({"open_symbols": frozenset({"A", "B", "C"})}, "max_concurrent_positions", False),
        ({"open_symbols": frozenset({"A", "B"})}, "", False),
        ({"open_symbols": frozenset({"KRW-BTC"})}, "duplicate_position", False),
    ],
)
def test_check_entry_boundaries(over: dict[str, object], code: str, halt: bool) -> None:
    """Each check fails exactly at its limit, in SPEC order, and only the loss limit halts."""
    verdict = risk.check_entry(state(**over), "KRW-BTC", LIMITS, NOW)
    assert verdict.ok is (code == "")
    assert verdict.reason_code == code
    assert verdict.halt is halt


def test_trade_date_is_the_kst_calendar_day() -> None:
    """15:00 UTC is already the next day in Seoul."""
    tz = ZoneInfo("Asia/Seoul")
    assert risk.trade_date(datetime(2026, 3, 2, 14, 59, tzinfo=UTC), tz).day == 2
    assert risk.trade_date(datetime(2026, 3, 2, 15, 0, tzinfo=UTC), tz).day == 3


def test_loss_streak_starts_cooldown_and_only_a_win_resets() -> None:
    """Three closes that are not wins start a full-length cooldown; a win resets the streak.

    A scratch (net 0 after both fees) is not a win (``fills.is_win``, as in the win rate).
    """
    streak, until = risk.after_close(0, D(-1), LIMITS, NOW)
    assert (streak, until) == (1, None)
    streak, until = risk.after_close(2, D("-0.01"), LIMITS, NOW)
    assert (streak, until) == (0, NOW + timedelta(hours=2))
    assert risk.after_close(2, D(0), LIMITS, NOW) == (0, NOW + timedelta(hours=2))
    assert risk.after_close(1, D(0), LIMITS, NOW) == (2, None)
    assert risk.after_close(2, D("0.01"), LIMITS, NOW) == (0, None)


def test_order_amount_takes_the_smallest_cap() -> None:
    """Position cap, cash less buffer and remaining exposure room each bind in turn."""
    args = {"equity": D(10_000_000), "cash": D(10_000_000), "exposure": D(0),
            "regime_ratio": 1.0, "vol_factor": 1.0, "limits": LIMITS}  # fmt: skip
    assert order_amount(**args) == D("500000.00")  # type: ignore[arg-type]
    assert order_amount(**{**args, "regime_ratio": 0.5}) == D("250000.000")  # type: ignore[arg-type]
    assert order_amount(**{**args, "cash": D(100_000)}) == D("99800.000")  # type: ignore[arg-type]
    assert order_amount(**{**args, "exposure": D(1_800_000)}) == D("200000.00")  # type: ignore[arg-type]
    assert order_amount(**{**args, "exposure": D(2_500_000)}) == 0  # type: ignore[arg-type]
    assert volatility_factor(True, LIMITS) == 0.5
    assert order_amount(**{**args, "vol_factor": 0.5}) == D("250000.000")  # type: ignore[arg-type]


def test_buy_fill_rounds_quantity_down_before_the_debit() -> None:
    """Quantity is floored to 8 decimals; fee is 0.05 % of the exact notional."""
    f = FillParams()
    fill = buy_fill(D("100000000"), D("500000"), f)
    assert fill is not None
    assert fill.price == D("100050000.0000")
    assert fill.quantity == D("0.00499750")
    assert fill.notional <= D("500000")
    assert fill.fee == fill.notional * D("0.0005")


def test_buy_fill_refuses_orders_below_the_minimum() -> None:
    """4,999 KRW is not an order; 5,000 KRW worth after rounding is."""
    f = FillParams(slippage=D(0))
    assert buy_fill(D(1), D(4999), f) is None
    assert buy_fill(D(1), D(5000), f) is not None


def test_round_trip_pnl_is_net_of_both_fees() -> None:
    """A flat price round trip loses exactly the two fees and the slippage."""
    f = FillParams()
    buy = buy_fill(D(1000), D(100000), f)
    assert buy is not None
    sell = sell_fill(D(1000), buy.quantity, f)
    expected = sell.notional - sell.fee - buy.notional - buy.fee
    assert net_pnl(buy, sell) == expected < 0


def test_float_prices_enter_through_their_shortest_repr() -> None:
    """0.1 becomes Decimal('0.1'), not its binary expansion."""
    assert to_decimal(0.1) == D("0.1")
    assert to_decimal(D("2.5")) == D("2.5")

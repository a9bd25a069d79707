"""Fills against a table worked out by hand from the rules, not from the code's output.

Rules (DECISIONS "Upbit-faithful fills"): a BUY fills at close × (1 + slippage), a SELL at
close × (1 − slippage); the quantity is rounded DOWN to 8 decimals before any money moves;
the fee is 0.05 % of price × rounded quantity; an order worth less than 5,000 KRW after
rounding is not placed. The arithmetic of each row is written out next to it.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from coinpilot.config import FillParams
from coinpilot.domain.fills import Fill, buy_fill, net_pnl, sell_fill, to_decimal

D = Decimal
SHIPPED = FillParams()  # fee 0.0005, slippage 0.0005, min 5,000 KRW, 8 decimals


@pytest.mark.parametrize(
    ("close", "amount", "price", "quantity", "notional", "fee"),
    [
        # 90,000,000 × 1.0005 = 90,045,000; 500,000 / 90,045,000 = 0.005552779165…
        # → 0.00555277 (down; half-even would give …78); 90,045 × 5.55277 = 499,999.17465
        ("90000000", "500000", "90045000", "0.00555277", "499999.17465", "249.999587325"),
        # 100,050,000 per coin; 5,002 / 100,050,000 = 0.0000499950… → 0.00004999;
        # 100,050,000 × 0.00004999 = 5,001.4995 ≥ 5,000: placed
        ("100000000", "5002", "100050000", "0.00004999", "5001.4995", "2.50074975"),
        # 1,000 × 1.0005 = 1,000.5; 100,000 / 1,000.5 = 99.950024987… → 99.95002498;
        # 1,000.5 × 99.95002498 = 99,999.999992490
        ("1000", "100000", "1000.5", "99.95002498", "99999.99999249", "49.999999996245"),
    ],
)
def test_buy_fill_table(
    close: str, amount: str, price: str, quantity: str, notional: str, fee: str
) -> None:
    fill = buy_fill(D(close), D(amount), SHIPPED)
    assert fill is not None
    assert fill.price == D(price)
    assert fill.quantity == D(quantity)
    assert fill.notional == D(notional)
    assert fill.fee == D(fee)
    assert fill.notional <= D(amount)


@pytest.mark.parametrize(
    ("close", "quantity", "price", "notional", "fee"),
    [
        # 91,000,000 × (1 − 0.0005) = 90,954,500, below the close: a SELL gets less
        # 90,954.5 × 5.55277 = 505,049.418965; fee 0.0005 × that = 252.5247094825
        ("91000000", "0.00555277", "90954500", "505049.418965", "252.5247094825"),
        # 1,000 × 0.9995 = 999.5; 999.5 × 2 = 1,999; fee 0.9995
        ("1000", "2", "999.5", "1999", "0.9995"),
    ],
)
def test_sell_fill_table(close: str, quantity: str, price: str, notional: str, fee: str) -> None:
    fill = sell_fill(D(close), D(quantity), SHIPPED)
    assert fill.price == D(price)
    assert fill.price < D(close)
    assert fill.quantity == D(quantity)
    assert fill.notional == D(notional)
    assert fill.fee == D(fee)


def test_a_sell_is_never_refused_for_its_size() -> None:
    """Exits are never partial and never skipped: 1 KRW worth still sells (999.5 × 0.001)."""
    fill = sell_fill(D(1000), D("0.001"), SHIPPED)
    assert (fill.price, fill.notional, fill.fee) == (D("999.5"), D("0.9995"), D("0.00049975"))


@pytest.mark.parametrize(
    ("close", "amount", "params", "placed"),
    [
        # 5,000 / 100,050,000 = 0.0000499750… → 0.00004997 → 4,999.4985 KRW: below 5,000
        # after rounding, so not placed although the amount asked for was 5,000
        ("100000000", "5000", SHIPPED, False),
        # below the minimum before any rounding
        ("1000", "4999.99", FillParams(slippage=D(0)), False),
        # exactly 5,000 with no slippage: 5 coins at 1,000, the minimum itself is allowed
        ("1000", "5000", FillParams(slippage=D(0)), True),
        # a close of 0 or below is no price at all
        ("0", "500000", SHIPPED, False),
        ("-1", "500000", SHIPPED, False),
        # no minimum, but 0.000000001 KRW buys 0 coins after rounding: nothing to place
        ("100", "0.000000001", FillParams(min_order_krw=D(0)), False),
    ],
)
def test_minimum_order_is_checked_after_rounding(
    close: str, amount: str, params: FillParams, placed: bool
) -> None:
    assert (buy_fill(D(close), D(amount), params) is not None) is placed


def test_quantity_decimals_is_the_rounding_step() -> None:
    """4 decimals, no slippage: 12,345.678 KRW at 1,000 = 12.345678 coins → 12.3456."""
    fill = buy_fill(D(1000), D("12345.678"), FillParams(slippage=D(0), quantity_decimals=4))
    assert fill is not None
    assert fill.quantity == D("12.3456")
    assert fill.notional == D("12345.6")


def test_net_pnl_subtracts_both_fees() -> None:
    """Bought 2 at 100 (fee 0.10), sold 2 at 110 (fee 0.11): 220 − 0.11 − 200 − 0.10."""
    entry = Fill(D(100), D(2), D("0.10"))
    exit_ = Fill(D(110), D(2), D("0.11"))
    assert entry.notional == D(200)
    assert net_pnl(entry, exit_) == D("19.79")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.1, D("0.1")), (1e-08, D("1E-8")), ("1.50", D("1.50")), (D("2.5"), D("2.5")), (3, D(3))],
)
def test_to_decimal_table(value: float | str | Decimal, expected: Decimal) -> None:
    """Floats by their shortest repr, strings and ints as written, Decimals unchanged."""
    got = to_decimal(value)
    assert isinstance(got, Decimal)
    assert got == expected
    assert str(got) == str(expected)

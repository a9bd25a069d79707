"""Money shown to people: expectations written by hand from the Upbit KRW tick table."""

from __future__ import annotations

from decimal import Decimal

import pytest

from coinpilot.domain import money_format as mf


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("124.9999999998967748175"), "125"),  # the fee Discord used to show
        (Decimal("1234567.5"), "1,234,568"),  # half rounds away from zero
        (Decimal("-1234567.5"), "-1,234,568"),
        (Decimal("999.49"), "999"),
        (0, "0"),
        (Decimal("-0.4"), "0"),  # never "-0"
        ("4115.2", "4,115"),
        (1e6, "1,000,000"),
    ],
)
def test_won_rounds_to_the_won_with_separators(value: object, text: str) -> None:
    assert mf.won(value) == text


def test_krw_signs_and_units() -> None:
    assert mf.krw(Decimal("4115.4")) == "4,115 KRW"
    assert mf.krw(Decimal("4115.4"), sign=True) == "+4,115 KRW"
    assert mf.krw(Decimal("-252"), sign=True) == "-252 KRW"
    assert mf.won(Decimal("0.2"), sign=True) == "+0"


@pytest.mark.parametrize("value", [None, "abc", float("nan"), Decimal("Infinity"), True])
def test_missing_or_not_a_number_is_a_dash(value: object) -> None:
    for fn in (mf.won, mf.krw, mf.price, mf.quantity, mf.percent):
        assert fn(value) == "—"


@pytest.mark.parametrize(
    ("price", "tick"),
    [
        ("2500000", "1000"),
        ("1000000", "1000"),
        ("999999", "500"),
        ("500000", "500"),
        ("499999", "100"),
        ("100000", "100"),
        ("99999", "50"),
        ("50000", "50"),
        ("49999", "10"),
        ("10000", "10"),
        ("9999", "5"),
        ("5000", "5"),
        ("4999", "1"),
        ("100", "1"),
        ("99.9", "0.1"),
        ("10", "0.1"),
        ("9.99", "0.01"),
        ("1", "0.01"),
        ("0.999", "0.001"),
        ("0.1", "0.001"),
        ("0.0999", "0.0001"),
        ("0.01", "0.0001"),
        ("0.00999", "0.00001"),
        ("0.001", "0.00001"),
        ("0.000999", "0.000001"),
        ("0.0001", "0.000001"),
        ("0.0000999", "0.0000001"),
        ("0.00001", "0.0000001"),
        ("0.00000999", "0.00000001"),
    ],
)
def test_tick_size_follows_the_krw_table(price: str, tick: str) -> None:
    assert mf.tick_size(Decimal(price)) == Decimal(tick)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("95123456.78"), "95,123,000"),  # tick 1,000
        (Decimal("95123500"), "95,124,000"),  # half a tick rounds up
        (Decimal("712340"), "712,500"),  # tick 500: 712,340 is nearer 712,500 than 712,000
        (Decimal("712240"), "712,000"),
        (Decimal("123456"), "123,500"),  # tick 100
        (Decimal("61234"), "61,250"),  # tick 50
        (Decimal("7777"), "7,775"),  # tick 5
        (Decimal("1234.56"), "1,235"),  # tick 1
        (Decimal("523.4"), "523"),
        (Decimal("45.678"), "45.7"),  # tick 0.1
        (Decimal("1.23456"), "1.23"),  # tick 0.01
        (Decimal("0.123456"), "0.123"),  # tick 0.001
        (Decimal("0.0123456"), "0.0123"),  # tick 0.0001
        (Decimal("0.00000123456"), "0.00000123"),  # tick 1e-8
    ],
)
def test_price_at_the_tick(value: Decimal, text: str) -> None:
    assert mf.price(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0.001052631578947368"), "0.00105263"),
        (Decimal("1000.5"), "1,000.50000000"),
        (Decimal("0.000000005"), "0.00000001"),
        (3, "3.00000000"),
    ],
)
def test_quantity_to_eight_places(value: Decimal, text: str) -> None:
    assert mf.quantity(value) == text


@pytest.mark.parametrize(
    ("value", "sign", "text"),
    [
        (Decimal("1.005"), False, "1.01%"),
        (Decimal("-3.14159"), False, "-3.14%"),
        (Decimal("12.3"), True, "+12.30%"),
        (Decimal("-0.001"), True, "+0.00%"),
        (0, False, "0.00%"),
    ],
)
def test_percent_to_two_places(value: Decimal, sign: bool, text: str) -> None:
    assert mf.percent(value, sign=sign) == text


def test_pnl_breakdown_leads_with_the_net() -> None:
    """The same trade reads alike everywhere: net after both fees, then gross and fees."""
    # Bought 1,000,000 KRW of coin (fee 500), sold for 1,004,367 (fee 502.18): gross +4,367,
    # fees 1,002.18, net 4,367 - 1,002.18 = 3,364.82.
    net = Decimal("4367") - Decimal("500") - Decimal("502.18")
    text = mf.pnl_breakdown(net, Decimal("4367"), Decimal("1002.18"))
    assert text == "+3,365 KRW (gross +4,367, fees 1,002)"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        # ties whose lower neighbour is even: half away from zero goes up, where banker's
        # rounding would stay on the even tick
        (Decimal("95122500"), "95,123,000"),  # 95,122.5 ticks of 1,000
        (Decimal("-95122500"), "-95,123,000"),  # the tick comes from the magnitude
        (Decimal("7770") + Decimal("2.5"), "7,775"),  # 1,554.5 ticks of 5
        (Decimal("0.01225"), "0.0123"),  # 122.5 ticks of 0.0001 (band 0.01 to 0.1)
        (Decimal("0.000000025"), "0.00000003"),  # 2.5 ticks of 1e-8
    ],
)
def test_price_ties_round_away_from_zero(value: Decimal, text: str) -> None:
    assert mf.price(value) == text

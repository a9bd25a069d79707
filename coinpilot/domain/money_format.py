"""Money as people read it: the one place that rounds values for display.

Values stay exact Decimals everywhere else (ledger, JSON); only text meant for a person
goes through here. KRW is shown to the won with thousands separators, prices at Upbit's
KRW tick size (the table in force since 2025-07-31), quantities to 8 decimals and
percentages to 2. Every function accepts None (and non-finite numbers) and shows a dash,
so a missing value never becomes ``None`` or ``NaN`` on a screen.

Rounding is half away from zero, the way people round by hand; the ledger's own
rounding (fills, fees) is not done here.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

MISSING = "—"
WON = Decimal(1)
QUANTITY_STEP = Decimal("0.00000001")
PERCENT_STEP = Decimal("0.01")

# (lower bound, tick) from the highest band down; below the last bound the tick is 1e-8.
KRW_TICKS: tuple[tuple[Decimal, Decimal], ...] = tuple(
    (Decimal(lo), Decimal(tick))
    for lo, tick in (
        ("1000000", "1000"),
        ("500000", "500"),
        ("100000", "100"),
        ("50000", "50"),
        ("10000", "10"),
        ("5000", "5"),
        ("100", "1"),
        ("10", "0.1"),
        ("1", "0.01"),
        ("0.1", "0.001"),
        ("0.01", "0.0001"),
        ("0.001", "0.00001"),
        ("0.0001", "0.000001"),
        ("0.00001", "0.0000001"),
    )
)
SMALLEST_TICK = Decimal("0.00000001")


def to_decimal(value: Any) -> Decimal | None:
    """The value as a finite Decimal, or None when it is missing or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def tick_size(price: Decimal) -> Decimal:
    """Upbit's KRW-market price unit for a price (by its absolute value)."""
    magnitude = abs(price)
    for lower, tick in KRW_TICKS:
        if magnitude >= lower:
            return tick
    return SMALLEST_TICK


def _grouped(number: Decimal, step: Decimal, sign: bool) -> str:
    rounded = number.quantize(step, rounding=ROUND_HALF_UP)
    if rounded == 0:
        rounded = abs(rounded)  # never "-0"
    return f"{rounded:{'+' if sign else ''},f}"


def won(value: Any, *, sign: bool = False) -> str:
    """KRW to the won with thousands separators: 1234567.5 -> ``1,234,568``."""
    number = to_decimal(value)
    return MISSING if number is None else _grouped(number, WON, sign)


def krw(value: Any, *, sign: bool = False) -> str:
    """``won`` with the currency: ``1,234,568 KRW`` (or ``+4,115 KRW`` with sign)."""
    text = won(value, sign=sign)
    return text if text == MISSING else f"{text} KRW"


def price(value: Any) -> str:
    """A KRW price at its tick: 95123456 -> ``95,123,000``, 1.23456 -> ``1.23``."""
    number = to_decimal(value)
    if number is None:
        return MISSING
    tick = tick_size(number)
    rounded = (number / tick).quantize(WON, rounding=ROUND_HALF_UP) * tick
    # quantize takes only the tick's exponent: ticks of 1 and up ("5", "1000") show whole won
    return _grouped(rounded, tick, False)


def quantity(value: Any) -> str:
    """A coin quantity to 8 decimals: ``0.00105263``."""
    number = to_decimal(value)
    return MISSING if number is None else _grouped(number, QUANTITY_STEP, False)


def percent(value: Any, *, sign: bool = False) -> str:
    """A percentage (already in percent) to 2 decimals: 1.005 -> ``1.01%``."""
    number = to_decimal(value)
    return MISSING if number is None else f"{_grouped(number, PERCENT_STEP, sign)}%"


def pnl_breakdown(net: Any, gross: Any, fees: Any) -> str:
    """Net PnL first, with the gross and the fees that make it: ``+4,115 KRW (gross +4,367,
    fees 252)``."""
    return f"{krw(net, sign=True)} (gross {won(gross, sign=True)}, fees {won(fees)})"

"""Order sizing against a hand-computed table: each of the three caps binds in turn.

amount = min(equity × max_position_size × regime ratio × volatility factor,
             cash × (1 − fee_buffer),
             equity × max_total_exposure − exposure), never below 0
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from coinpilot.config import RiskLimits
from coinpilot.domain.sizing import order_amount, volatility_factor

D = Decimal
SHIPPED = RiskLimits()  # position 5 %, exposure 20 %, fee buffer 0.2 %, high-vol factor 0.5
WIDE = RiskLimits(max_position_size=0.5, max_total_exposure=1.0)


@pytest.mark.parametrize(
    ("equity", "cash", "exposure", "ratio", "high_vol", "limits", "amount"),
    [
        # position cap: 10,000,000 × 0.05 × 1.0 × 1 = 500,000
        # (cash cap 9,980,000, room 2,000,000)
        ("10000000", "10000000", "0", 1.0, False, SHIPPED, "500000"),
        # the regime ratio scales it: 10,000,000 × 0.05 × 0.7 = 350,000
        ("10000000", "10000000", "0", 0.7, False, SHIPPED, "350000"),
        # high volatility halves it: 10,000,000 × 0.05 × 1.0 × 0.5 = 250,000
        ("10000000", "10000000", "0", 1.0, True, SHIPPED, "250000"),
        # both: 10,000,000 × 0.05 × 0.6 × 0.5 = 150,000
        ("10000000", "10000000", "0", 0.6, True, SHIPPED, "150000"),
        # cash cap: want 1,000,000 × 0.5 = 500,000, room 1,000,000 − 800,000 = 200,000,
        # cash 200,000 × (1 − 0.002) = 199,600 is the smallest
        ("1000000", "200000", "800000", 1.0, False, WIDE, "199600"),
        # exposure room: 10,000,000 × 0.20 − 1,800,000 = 200,000 < 500,000 wanted
        ("10000000", "8200000", "1800000", 1.0, False, SHIPPED, "200000"),
        # room of exactly one position: 10,000,000 × 0.20 − 1,500,000 = 500,000 = wanted
        ("10000000", "8500000", "1500000", 1.0, False, SHIPPED, "500000"),
        # over the cap (prices rose): room 2,000,000 − 2,100,000 = −100,000 → 0, never negative
        ("10000000", "7900000", "2100000", 1.0, False, SHIPPED, "0"),
        # equity counts the marked positions: 12,000,000 × 0.05 = 600,000 wanted,
        # room 12,000,000 × 0.20 − 2,000,000 = 400,000 binds
        ("12000000", "10000000", "2000000", 1.0, False, SHIPPED, "400000"),
    ],
)
def test_order_amount_table(
    equity: str,
    cash: str,
    exposure: str,
    ratio: float,
    high_vol: bool,
    limits: RiskLimits,
    amount: str,
) -> None:
    got = order_amount(
        equity=D(equity),
        cash=D(cash),
        exposure=D(exposure),
        regime_ratio=ratio,
        vol_factor=volatility_factor(high_vol, limits),
        limits=limits,
    )
    assert got == D(amount)
    assert got >= 0


def test_volatility_factors_are_one_and_the_configured_half() -> None:
    """An ordinary order is not scaled at all; a high-volatility one by the configured 0.5."""
    assert volatility_factor(False, SHIPPED) == 1.0
    assert volatility_factor(True, SHIPPED) == 0.5
    assert volatility_factor(True, RiskLimits(high_volatility_factor=0.25)) == 0.25
    assert volatility_factor(False, RiskLimits(high_volatility_factor=0.25)) == 1.0

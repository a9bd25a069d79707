"""Order sizing (DECISIONS "Sizing"): the smallest of three caps, never negative.

    amount = min(equity × max_position_size × regime ratio × volatility factor,
                 cash × (1 − fee_buffer),
                 equity × max_total_exposure − current exposure)

High volatility halves the order (factor ``risk.high_volatility_factor``) rather than
blocking entries. Equity = cash + open positions marked at their newest close.
"""

from __future__ import annotations

from decimal import Decimal

from coinpilot.config import RiskLimits
from coinpilot.domain.fills import ONE, ZERO, to_decimal


def volatility_factor(is_high_volatility: bool, limits: RiskLimits) -> float:
    return limits.high_volatility_factor if is_high_volatility else 1.0


def order_amount(
    *,
    equity: Decimal,
    cash: Decimal,
    exposure: Decimal,
    regime_ratio: float,
    vol_factor: float,
    limits: RiskLimits,
) -> Decimal:
    want = equity * to_decimal(limits.max_position_size) * to_decimal(regime_ratio)
    want *= to_decimal(vol_factor)
    cash_cap = cash * (ONE - to_decimal(limits.fee_buffer))
    room = equity * to_decimal(limits.max_total_exposure) - exposure
    return max(ZERO, min(want, cash_cap, room))

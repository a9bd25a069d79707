"""Entry decisions' texts and shapes that the boundary tables leave open (SPEC §5.1, §6.3).

The snapshots are test_strategy's hand-made base snapshots, which pass every check of their
regime with room to spare; each test changes one field.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from coinpilot.domain.strategy import evaluate_entry
from tests.unit.strategy_support import shipped_config
from tests.unit.test_strategy import base

REGIMES = shipped_config().regimes
NAN = math.nan


@pytest.mark.parametrize(
    ("field", "text", "checks_before"),
    [
        ("rsi14", "RSI14 data missing", 0),
        ("rsi7", "RSI7 data insufficient", 1),
        ("ma", "MA/price data insufficient", 3),
        ("bb_lower", "BB data insufficient", 4),
        ("vol_ratio", "volume data insufficient", 5),
    ],
)
def test_missing_data_texts(field: str, text: str, checks_before: int) -> None:
    """SIDEWAYS checks RSI14, RSI7, the bounce, MA proximity, the BB floor and the volume
    minimum in that order; a NaN fails its own check with SPEC's text, after the regime line
    and the checks that passed before it."""
    decision = evaluate_entry(dataclasses.replace(base("SIDEWAYS"), **{field: NAN}), "SIDEWAYS",
                              REGIMES)  # fmt: skip
    assert decision.passed is False
    assert decision.text == text
    assert decision.status_text("SIDEWAYS") == f"[SIDEWAYS] {text}"
    assert isinstance(decision.checks_passed, tuple)
    assert len(decision.checks_passed) == 1 + checks_before
    assert decision.checks_passed[0] == "Market Regime: SIDEWAYS"


def test_unconfigured_regime_text() -> None:
    decision = evaluate_entry(base("BULL"), "CRAB", REGIMES)
    assert (decision.passed, decision.text, decision.checks_passed) == (
        False,
        "config load failed",
        (),
    )
    assert decision.status_text("CRAB") == "[CRAB] config load failed"


def test_insufficient_data_status_has_no_regime_prefix() -> None:
    decision = evaluate_entry(dataclasses.replace(base("BULL"), n_candles=39), "BULL", REGIMES)
    assert decision.status_text("BULL") == "data insufficient: 39 lines"
    assert decision.checks_passed == ()


def test_bear_pass_lists_every_check_with_the_surge_check() -> None:
    """BEAR (RSI14 ≤ 42, RSI7 min < 30 then ≥ 30, bounce ≥ 2, proximity_or_above 0.97, BB
    floor, volume min 0.2, surge check at 2.0 over the last 3 ratios) on the base snapshot:
    RSI14 40, RSI7 min 28 then 33 (bounce 5), close 101 over MA 100, BB lower 95,
    volume ratio 1.5, recent ratios 1, 1, 1.5."""
    decision = evaluate_entry(base("BEAR"), "BEAR", REGIMES)
    assert (decision.passed, decision.reason_code, decision.text) == (
        True,
        "passed",
        "entry conditions met",
    )
    assert decision.checks_passed == (
        "Market Regime: BEAR",
        "✓ RSI14(40.0) ≤ 42",
        "✓ RSI7 min(28.0) oversold(<30) then bounce(33.0 ≥ 30) confirmed",
        "✓ RSI7 bounce sufficient (5.0 pt)",
        "✓ proximity_or_above filter passed",
        "✓ above BB lower confirmed",
        "✓ volume condition passed (1.50x)",
        "✓ no volume surge",
        "✓ all conditions passed",
    )


def test_the_touch_recovery_check_is_for_sideways_with_bands_enabled() -> None:
    """BULL with bb_enabled still ignores the touch; SIDEWAYS with bb_enabled off does too."""
    no_touch = {"bb_touch_recovery": False}
    bull = REGIMES["BULL"].entry.model_copy(update={"bb_enabled": True})
    assert evaluate_entry(dataclasses.replace(base("BULL"), **no_touch), "BULL", bull).passed
    sideways = REGIMES["SIDEWAYS"].entry.model_copy(update={"bb_enabled": False})
    snap = dataclasses.replace(base("SIDEWAYS"), **no_touch)
    assert evaluate_entry(snap, "SIDEWAYS", sideways).passed
    assert evaluate_entry(snap, "SIDEWAYS", REGIMES).reason_code == "bb_touch_recovery_pending"

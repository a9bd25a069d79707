"""The regime thresholds at their boundaries, in the job's classifier and the backtest's.

MA50/MA200 shrunk to MA2/MA4 over four hourly closes so each MA is worked out by hand:
closes 98, 98, 102, 102 give MA2 = 102 and MA4 = 100, a gap of exactly +2.0 %, which is
still SIDEWAYS (BULL needs more than the threshold, BEAR less than its negative).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from coinpilot.config import RegimeDetection
from coinpilot.domain.regime import REGIME_INDEX, _regime_by_count, regime_from_closes

CFG = RegimeDetection(ma_fast_period=2, ma_slow_period=4, min_hourly_candles=4)
NAMES = {v: k for k, v in REGIME_INDEX.items()}


@pytest.mark.parametrize(
    ("closes", "regime", "diff"),
    [
        ([98, 98, 102, 102], "SIDEWAYS", 2.0),  # (102 − 100) / 100 = exactly the threshold
        ([102, 102, 98, 98], "SIDEWAYS", -2.0),  # (98 − 100) / 100 = exactly −threshold
        ([98, 98, 103, 103], "BULL", 2.4875621890547266),  # (103 − 100.5) / 100.5
        ([103, 103, 98, 98], "BEAR", -2.4875621890547266),  # (98 − 100.5) / 100.5
        ([100, 100, 100, 100], "SIDEWAYS", 0.0),
        ([97.9, 98, 102, 102], "BULL", 2.025506376594154),  # 2.025 / 99.975: just over
    ],
)
def test_threshold_table(closes: list[float], regime: str, diff: float) -> None:
    reading = regime_from_closes(closes, CFG)
    assert reading.regime == regime
    assert reading.diff_pct == pytest.approx(diff, abs=1e-12)
    assert reading.hourly_candles == 4
    codes = _regime_by_count(np.asarray(closes, dtype=np.float64), CFG)
    assert [NAMES[int(c)] for c in codes] == ["UNKNOWN"] * 4 + [regime]


def test_too_few_closes_or_a_zero_ma_is_unknown() -> None:
    assert regime_from_closes([98, 102, 102], CFG).regime == "UNKNOWN"
    assert regime_from_closes([0, 0, 0, 0], CFG).regime == "UNKNOWN"
    assert regime_from_closes([1, 1, math.nan, 1], CFG).regime == "UNKNOWN"
    codes = _regime_by_count(np.array([0.0, 0.0, 0.0, 0.0]), CFG)
    assert {NAMES[int(c)] for c in codes} == {"UNKNOWN"}


def test_each_count_is_classified_on_its_own_last_closes() -> None:
    """Five closes: after four the gap is +2.0 % (SIDEWAYS), after five 98, 102, 102, 110
    give MA2 106 over MA4 103: +2.91 % (BULL)."""
    closes = np.array([98.0, 98.0, 102.0, 102.0, 110.0])
    codes = _regime_by_count(closes, CFG)
    assert [NAMES[int(c)] for c in codes] == ["UNKNOWN"] * 4 + ["SIDEWAYS", "BULL"]
    assert regime_from_closes(closes, CFG).regime == "BULL"


def test_thresholds_come_from_config() -> None:
    wide = RegimeDetection(ma_fast_period=2, ma_slow_period=4, min_hourly_candles=4,
                           bull_threshold_pct=3.0, bear_threshold_pct=-3.0)  # fmt: skip
    assert regime_from_closes([98, 98, 103, 103], wide).regime == "SIDEWAYS"
    assert regime_from_closes([103, 103, 98, 98], wide).regime == "SIDEWAYS"
    codes = _regime_by_count(np.array([103.0, 103.0, 98.0, 98.0]), wide)
    assert NAMES[int(codes[-1])] == "SIDEWAYS"

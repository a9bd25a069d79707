"""Entry rules (SPEC §6) at every check's boundary, with the shipped per-regime thresholds."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from coinpilot.domain.snapshot import IndicatorParams, IndicatorSnapshot
from coinpilot.domain.strategy import ENTRY_CODES, evaluate_entry
from tests.unit.strategy_support import shipped_config

CFG = shipped_config()
REGIMES = CFG.regimes
NAN = float("nan")


def below(x: float) -> float:
    return float(np.nextafter(x, -math.inf))


def above(x: float) -> float:
    return float(np.nextafter(x, math.inf))


def base(regime: str) -> IndicatorSnapshot:
    """A snapshot that passes every check of ``regime`` with some room to spare."""
    common = {
        "symbol": "KRW-BTC",
        "ts": 1_700_000_000,
        "n_candles": 200,
        "close": 101.0,
        "volume": 10.0,
        "ma": 100.0,
        "bb_lower": 95.0,
        "bb_mid": 100.0,
        "bb_upper": 105.0,
        "vol_ratio": 1.5,
        "recent_vol_ratios": (1.0, 1.0, 1.0, 1.0, 1.5),
        "bb_touch_recovery": True,
        "params": IndicatorParams.for_regime(regime, REGIMES),
    }
    rsi = {
        "BULL": {"rsi14": 45.0, "rsi7": 45.0, "rsi7_prev": 40.0, "rsi7_min_lookback": 38.0},
        "SIDEWAYS": {"rsi14": 45.0, "rsi7": 45.0, "rsi7_prev": 40.0, "rsi7_min_lookback": 36.0},
        "BEAR": {"rsi14": 40.0, "rsi7": 33.0, "rsi7_prev": 29.0, "rsi7_min_lookback": 28.0},
    }[regime]
    return IndicatorSnapshot(**common, **rsi)


def code(regime: str, **changes: object) -> str:
    snap = dataclasses.replace(base(regime), **changes)
    return evaluate_entry(snap, regime, REGIMES).reason_code


@pytest.mark.parametrize("regime", ["BULL", "SIDEWAYS", "BEAR"])
def test_base_snapshots_pass(regime: str) -> None:
    """The hand-made base snapshot of each regime passes, so each table row tests one check."""
    decision = evaluate_entry(base(regime), regime, REGIMES)
    assert decision.passed
    assert decision.reason_code == "passed"
    assert decision.checks_passed[0] == f"Market Regime: {regime}"
    assert decision.checks_passed[-1] == "✓ all conditions passed"


BOUNDARIES = [
    # regime, field changes, expected code: equal, just above, just below each threshold.
    ("BULL", {"rsi14": 50.0}, "passed"),
    ("BULL", {"rsi14": above(50.0)}, "rsi14_above_max"),
    ("BULL", {"rsi14": below(50.0)}, "passed"),
    ("SIDEWAYS", {"rsi14": 48.0}, "passed"),
    ("SIDEWAYS", {"rsi14": above(48.0)}, "rsi14_above_max"),
    ("BEAR", {"rsi14": 42.0}, "passed"),
    ("BEAR", {"rsi14": above(42.0)}, "rsi14_above_max"),
    ("BULL", {"rsi7_min_lookback": 42.0, "rsi7": 45.0}, "rsi7_not_oversold"),
    ("BULL", {"rsi7_min_lookback": above(42.0), "rsi7": 45.0}, "rsi7_not_oversold"),
    ("BULL", {"rsi7_min_lookback": below(42.0), "rsi7": 45.0}, "passed"),
    ("SIDEWAYS", {"rsi7_min_lookback": 40.0}, "rsi7_not_oversold"),
    ("SIDEWAYS", {"rsi7_min_lookback": below(40.0)}, "passed"),
    ("BEAR", {"rsi7_min_lookback": 30.0}, "rsi7_not_oversold"),
    ("BEAR", {"rsi7_min_lookback": below(30.0), "rsi7": 33.0}, "passed"),
    ("BULL", {"rsi7": 42.0, "rsi7_min_lookback": 38.0}, "passed"),
    ("BULL", {"rsi7": below(42.0), "rsi7_min_lookback": 38.0}, "rsi7_no_rebound"),
    ("BULL", {"rsi7": above(42.0), "rsi7_min_lookback": 38.0}, "passed"),
    ("SIDEWAYS", {"rsi7": 42.0, "rsi7_min_lookback": 36.0}, "passed"),
    ("SIDEWAYS", {"rsi7": below(42.0), "rsi7_min_lookback": 36.0}, "rsi7_no_rebound"),
    ("BEAR", {"rsi7": 30.0, "rsi7_min_lookback": 27.5}, "passed"),
    ("BEAR", {"rsi7": below(30.0), "rsi7_min_lookback": 27.5}, "rsi7_no_rebound"),
    ("BULL", {"rsi7": 43.5, "rsi7_min_lookback": 41.5}, "passed"),  # bounce exactly 2.0
    ("BULL", {"rsi7": 43.5, "rsi7_min_lookback": above(41.5)}, "rsi7_bounce_too_small"),
    ("BULL", {"rsi7": 43.5, "rsi7_min_lookback": below(41.5)}, "passed"),
    ("SIDEWAYS", {"rsi7": 42.5, "rsi7_min_lookback": 39.5}, "passed"),  # bounce exactly 3.0
    ("SIDEWAYS", {"rsi7": 42.5, "rsi7_min_lookback": above(39.5)}, "rsi7_bounce_too_small"),
    ("BEAR", {"rsi7": 31.0, "rsi7_min_lookback": 29.0}, "passed"),  # bounce exactly 2.0
    ("BEAR", {"rsi7": 31.0, "rsi7_min_lookback": above(29.0)}, "rsi7_bounce_too_small"),
    ("BULL", {"close": 100.0, "ma": 100.0}, "price_below_ma"),  # crossover is strict
    ("BULL", {"close": above(100.0), "ma": 100.0}, "passed"),
    ("BULL", {"close": below(100.0), "ma": 100.0}, "price_below_ma"),
    ("SIDEWAYS", {"close": 200.0 * 0.985, "ma": 200.0, "bb_lower": 150.0}, "passed"),
    (
        "SIDEWAYS",
        {"close": below(200.0 * 0.985), "ma": 200.0, "bb_lower": 150.0},
        "price_below_ma_proximity",
    ),
    ("BEAR", {"close": 200.0 * 0.97, "ma": 200.0, "bb_lower": 150.0}, "passed"),
    (
        "BEAR",
        {"close": below(200.0 * 0.97), "ma": 200.0, "bb_lower": 150.0},
        "price_below_ma_proximity",
    ),
    ("SIDEWAYS", {"bb_lower": 101.0}, "passed"),  # a close exactly on the band passes
    ("SIDEWAYS", {"bb_lower": above(101.0)}, "price_below_bb_lower"),
    ("BEAR", {"bb_lower": 101.0}, "passed"),
    ("BEAR", {"bb_lower": above(101.0)}, "price_below_bb_lower"),
    ("BULL", {"bb_lower": 200.0}, "passed"),  # BULL does not require the BB floor
    ("BULL", {"vol_ratio": 1.0}, "passed"),
    ("BULL", {"vol_ratio": below(1.0)}, "volume_below_ratio"),
    ("SIDEWAYS", {"vol_ratio": 0.4}, "passed"),
    ("SIDEWAYS", {"vol_ratio": below(0.4)}, "volume_below_min"),
    ("BEAR", {"vol_ratio": 0.2}, "passed"),
    ("BEAR", {"vol_ratio": below(0.2)}, "volume_below_min"),
    ("BEAR", {"recent_vol_ratios": (1.0, 1.0, 2.0, 1.0, 1.0)}, "volume_surge"),
    ("BEAR", {"recent_vol_ratios": (1.0, 1.0, 1.0, 1.0, 2.0)}, "volume_surge"),
    ("BEAR", {"recent_vol_ratios": (1.0, 1.0, below(2.0), 1.0, 1.0)}, "passed"),
    ("BEAR", {"recent_vol_ratios": (1.0, 9.0, 1.0, 1.0, 1.0)}, "passed"),  # outside the 3
    ("BEAR", {"recent_vol_ratios": (1.0, 1.0, 1.0, math.inf, 1.0)}, "volume_surge"),
    ("BULL", {"recent_vol_ratios": (1.0, 1.0, 9.0, 9.0, 9.0)}, "passed"),  # no surge check
    ("SIDEWAYS", {"bb_touch_recovery": False}, "bb_touch_recovery_pending"),
    ("BEAR", {"bb_touch_recovery": False}, "passed"),
    ("BULL", {"bb_touch_recovery": False}, "passed"),
    ("BULL", {"n_candles": 39}, "insufficient_data"),
    ("BULL", {"n_candles": 40}, "passed"),
]


@pytest.mark.parametrize(("regime", "changes", "expected"), BOUNDARIES)
def test_check_boundaries(regime: str, changes: dict[str, object], expected: str) -> None:
    """Each check passes or fails exactly at its documented boundary."""
    assert code(regime, **changes) == expected


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("rsi14", "rsi14_missing"),
        ("rsi7", "rsi7_missing"),
        ("rsi7_prev", "rsi7_missing"),
        ("rsi7_min_lookback", "rsi7_missing"),
        ("ma", "ma_missing"),
        ("close", "ma_missing"),
        ("bb_lower", "bb_missing"),
        ("vol_ratio", "volume_missing"),
    ],
)
def test_nan_inputs_fail_their_check(field: str, expected: str) -> None:
    """A NaN input never passes the check that reads it (SPEC §19.30)."""
    assert code("SIDEWAYS", **{field: NAN}) == expected


def test_first_failure_wins() -> None:
    """With several failing checks the earliest one in SPEC §6.1's order is reported."""
    assert code("BEAR", rsi14=60.0, vol_ratio=0.0, bb_lower=500.0) == "rsi14_above_max"
    assert code("BEAR", vol_ratio=0.0, bb_lower=500.0) == "price_below_bb_lower"


def test_unknown_and_unconfigured_regimes() -> None:
    """UNKNOWN and a regime missing from the config never enter."""
    snap = base("BULL")
    assert evaluate_entry(snap, "UNKNOWN", REGIMES).reason_code == "regime_unknown"
    assert evaluate_entry(snap, None, REGIMES).reason_code == "regime_unknown"
    assert evaluate_entry(snap, "CRAB", REGIMES).reason_code == "regime_not_configured"


def test_insufficient_data_comes_before_the_regime() -> None:
    """Too few candles is reported even when the regime is also unknown (SPEC §5 order)."""
    snap = dataclasses.replace(base("BULL"), n_candles=12)
    decision = evaluate_entry(snap, "UNKNOWN", REGIMES)
    assert decision.reason_code == "insufficient_data"
    assert decision.text == "data insufficient: 12 lines"
    assert evaluate_entry(snap, "BULL", REGIMES, min_candles=10).passed


def test_params_may_be_the_regime_or_its_entry() -> None:
    """RegimeParams, EntryParams and the whole regimes mapping give the same answer."""
    snap = dataclasses.replace(base("BEAR"), vol_ratio=0.1)
    for params in (REGIMES, REGIMES["BEAR"], REGIMES["BEAR"].entry):
        assert evaluate_entry(snap, "BEAR", params).reason_code == "volume_below_min"


def test_unset_optional_checks_are_skipped() -> None:
    """No bounce minimum, no volume bounds and ma_condition 'none' skip those checks."""
    entry = REGIMES["BULL"].entry.model_copy(
        update={"min_rsi_7_bounce_pct": None, "volume_ratio": None, "ma_condition": "none"}
    )
    snap = dataclasses.replace(
        base("BULL"), rsi7=42.0, rsi7_min_lookback=41.9, close=50.0, vol_ratio=0.0
    )
    decision = evaluate_entry(snap, "BULL", entry)
    assert decision.passed
    assert not any("volume" in line for line in decision.checks_passed)


@pytest.mark.parametrize(
    ("regime", "changes", "text"),
    [
        ("BULL", {"rsi14": 50.06}, "watching: RSI14(50.1) > 50"),
        (
            "SIDEWAYS",
            {"rsi7_min_lookback": 41.0},
            "waiting for oversold: last 5 candles RSI7 min(41.0) ≥ 40",
        ),
        (
            "BEAR",
            {"rsi7": 29.0, "rsi7_min_lookback": 25.0},
            "waiting for bounce: RSI7(29.0) needs ≥ 30 (recent min: 25.0)",
        ),
        (
            "SIDEWAYS",
            {"rsi7": 42.0, "rsi7_min_lookback": 39.5},
            "bounce too small: RSI7 bounce 2.5 pt < 3 pt",
        ),
        ("BULL", {"close": 99.0}, "waiting for trend: price ≤ MA20"),
        ("SIDEWAYS", {"close": 90.0, "bb_lower": 80.0}, "waiting for trend: price < MA20×0.985"),
        ("SIDEWAYS", {"bb_lower": 102.0}, "below BB lower: price < BB lower"),
        ("BULL", {"vol_ratio": 0.5}, "volume insufficient: 0.50x < ratio 1x"),
        ("SIDEWAYS", {"vol_ratio": 0.25}, "volume insufficient: 0.25x < min 0.4x"),
        (
            "BEAR",
            {"recent_vol_ratios": (1.0, 1.0, 1.0, 3.0, 1.0)},
            "volume surge detected: possible panic selling",
        ),
        (
            "SIDEWAYS",
            {"bb_touch_recovery": False},
            "waiting for BB touch recovery: touch-and-return not confirmed",
        ),
    ],
)
def test_failure_texts(regime: str, changes: dict[str, object], text: str) -> None:
    """Each failure carries SPEC §6.3's text, prefixed with the regime in the status line."""
    snap = dataclasses.replace(base(regime), **changes)
    decision = evaluate_entry(snap, regime, REGIMES)
    assert decision.text == text
    assert decision.status_text(regime) == f"[{regime}] {text}"


def test_passed_status_lists_the_checks() -> None:
    """A pass reads as SPEC §5.1's 'entry conditions met' followed by the passed checks."""
    decision = evaluate_entry(base("SIDEWAYS"), "SIDEWAYS", REGIMES)
    lines = decision.status_text("SIDEWAYS").splitlines()
    assert lines[0] == "✅ [SIDEWAYS] entry conditions met! waiting for AI…"
    assert lines[1:] == [
        "Market Regime: SIDEWAYS",
        "✓ RSI14(45.0) ≤ 48",
        "✓ RSI7 min(36.0) oversold(<40) then bounce(45.0 ≥ 42) confirmed",
        "✓ RSI7 bounce sufficient (9.0 pt)",
        "✓ proximity filter passed",
        "✓ above BB lower confirmed",
        "✓ volume condition passed (1.50x)",
        "✓ BB touch recovery confirmed",
        "✓ all conditions passed",
    ]


def test_unknown_status_text() -> None:
    """The UNKNOWN status says how much history the regime needs."""
    decision = evaluate_entry(base("BULL"), "UNKNOWN", REGIMES)
    assert decision.status_text("UNKNOWN") == (
        "collecting data: waiting for regime (~8.3 days needed)"
    )


def test_reason_codes_are_stable_snake_case() -> None:
    """Every reason code is unique snake_case, so dashboards and metrics can key on it."""
    assert len(set(ENTRY_CODES)) == len(ENTRY_CODES)
    for name in ENTRY_CODES:
        assert name == name.lower()
        assert name.replace("_", "").isalnum()


def test_indicator_params_follow_the_regime() -> None:
    """Periods come from the regime's entry config; UNKNOWN uses the defaults 20 / 5 / 30 / 1."""
    sideways = IndicatorParams.for_regime("SIDEWAYS", REGIMES)
    assert sideways.bb_recovery_sustain_candles == 2
    assert sideways.ma_period == REGIMES["SIDEWAYS"].entry.ma_period
    unknown = IndicatorParams.for_regime("UNKNOWN", REGIMES)
    assert (unknown.ma_period, unknown.rsi_7_recovery_lookback) == (20, 5)
    assert (unknown.bb_touch_lookback, unknown.bb_recovery_sustain_candles) == (30, 1)


def test_snapshot_as_dict_has_no_nan() -> None:
    """The plain-data view reads a missing (NaN) value as None and keeps the rest as is."""
    snap = dataclasses.replace(base("BULL"), ma=NAN, recent_vol_ratios=(0.0, math.inf))
    plain = snap.as_dict()
    assert plain["ma"] is None
    assert plain["rsi14"] == 45.0
    assert plain["recent_vol_ratios"] == [0.0, math.inf]

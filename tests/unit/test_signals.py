"""The live window and the whole-history pass: same numbers, same decisions, no lookahead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from coinpilot.domain.candles import Candles
from coinpilot.domain.regime import REGIME_INDEX, regime_over_history
from coinpilot.domain.signals import WindowedRsi, entry_signals, windowed_indicators
from coinpilot.domain.snapshot import IndicatorParams, compute_snapshot, compute_snapshots
from coinpilot.domain.strategy import ENTRY_CODES, evaluate_entry
from tests.unit.strategy_support import (
    load_candles,
    one_minute_files,
    pd_bollinger,
    pd_rsi,
    pd_touch_recovery,
    pd_volume_ratios,
    shipped_config,
)

CFG = shipped_config()
REGIMES = CFG.regimes
TOL = {"rel": 1e-9, "abs": 1e-9, "nan_ok": True}


@pytest.fixture(scope="module")
def histories(data_dir: Path) -> dict[str, Candles]:
    return {path.name: load_candles(path) for path in one_minute_files(data_dir)}


def reference_snapshot(c: Candles, t: int, p: IndicatorParams, window: int) -> dict[str, object]:
    """SPEC §3 in pandas on the live window ending at t."""
    start = max(0, t - window + 1)
    close = pd.Series(c.close[start : t + 1])
    volume = pd.Series(c.volume[start : t + 1])
    rsi7 = pd_rsi(close, p.rsi_short_period)
    lower, mid, upper = pd_bollinger(close, p.bb_period, p.bb_std)
    ratios = pd_volume_ratios(volume, p.volume_period)
    prev_mean = volume.rolling(p.volume_period).mean().shift(1).iloc[-1]
    vol_ratio = np.nan if len(volume) <= p.volume_period else ratios.iloc[-1]
    if prev_mean == 0:
        vol_ratio = 0.0
    return {
        "rsi14": pd_rsi(close, p.rsi_period).iloc[-1],
        "rsi7": rsi7.iloc[-1],
        "rsi7_prev": rsi7.iloc[-2] if len(rsi7) > 1 else np.nan,
        "rsi7_min_lookback": rsi7.iloc[-p.rsi_7_recovery_lookback :].min(),
        "ma": close.rolling(p.ma_period).mean().iloc[-1],
        "bb_lower": lower.iloc[-1],
        "bb_mid": mid.iloc[-1],
        "bb_upper": upper.iloc[-1],
        "vol_ratio": vol_ratio,
        "recent_vol_ratios": tuple(ratios.iloc[-p.recent_count :].fillna(0.0)),
        "bb_touch_recovery": pd_touch_recovery(
            close, lower, p.bb_touch_lookback, p.bb_recovery_sustain_candles, p.bb_period
        ),
    }


WINDOWED_FIELDS = ("rsi14", "rsi7", "rsi7_prev", "rsi7_min_lookback", "ma", "bb_lower")


@pytest.mark.parametrize("window", [200, 60])
def test_live_and_history_values_match_pandas(histories, window: int) -> None:
    """Snapshot and whole-history values equal pandas on each sampled live window to 1e-9."""
    rng = np.random.default_rng(window)
    for name, c in histories.items():
        for regime in ("SIDEWAYS", "BEAR"):
            p = IndicatorParams.for_regime(regime, REGIMES)
            hist = windowed_indicators(c, p, window)
            picks = np.r_[rng.choice(45, 10, replace=False), rng.choice(len(c), 20, replace=False)]
            for t in picks:
                ref = reference_snapshot(c, int(t), p, window)
                snap = compute_snapshot(c.slice(0, int(t) + 1), p, window)
                for key, value in ref.items():
                    got = getattr(snap, key)
                    if key == "recent_vol_ratios":
                        assert got == pytest.approx(value[-len(got) :], **TOL), (name, t, key)
                    else:
                        assert got == pytest.approx(value, **TOL), (name, t, key)
                for key in WINDOWED_FIELDS:
                    assert getattr(hist, key)[t] == pytest.approx(ref[key], **TOL), (name, t, key)
                assert bool(hist.bb_touch_recovery[t]) == ref["bb_touch_recovery"]
                assert hist.vol_ratio[t] == pytest.approx(ref["vol_ratio"], **TOL)


def pandas_window_rsi(
    close: np.ndarray, period: int, window: int, lags: int, stride: int
) -> np.ndarray:
    """RSI of every ``stride``-th full live window by pandas, read at its last ``lags`` candles.

    Each window is one DataFrame column, so pandas runs the recursion on all of them at once,
    restarting at each window's first candle with a zero first change.
    """
    frames = sliding_window_view(close, window)[::stride]
    delta = np.zeros_like(frames)
    delta[:, 1:] = np.diff(frames, axis=1)
    gain = pd.DataFrame(np.where(delta > 0, delta, 0.0).T)
    loss = pd.DataFrame(np.where(delta < 0, -delta, 0.0).T)
    ewm = {"alpha": 1.0 / period, "adjust": False, "min_periods": period}
    rsi = 100.0 - 100.0 / (1.0 + gain.ewm(**ewm).mean() / loss.ewm(**ewm).mean())
    return rsi.iloc[window - lags :][::-1].to_numpy()


def test_windowed_rsi_matches_pandas_at_every_minute(histories) -> None:
    """The window correction equals pandas on every full window of the Upbit file (and every
    10th of the others), for RSI14 and for RSI7 at each lookback candle."""
    window = 200
    for name, c in histories.items():
        stride = 1 if name.startswith("upbit_") else 10
        for period, lags in ((14, 1), (7, 5)):
            ref = pandas_window_rsi(c.close, period, window, lags, stride)
            ours = WindowedRsi(c.close, period, window)
            for lag in range(lags):
                np.testing.assert_allclose(
                    ours.at_lag(lag)[window - 1 :: stride], ref[lag], rtol=1e-9, atol=1e-9,
                    err_msg=f"{name} RSI{period} lag {lag}",
                )  # fmt: skip


def stratified(codes: np.ndarray, per_code: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``per_code`` candles of each outcome (passes get four times as many)."""
    picks = []
    for value in np.unique(codes):
        rows = np.flatnonzero(codes == value)
        take = per_code * 4 if value == 0 else per_code
        picks.append(rng.choice(rows, min(take, len(rows)), replace=False))
    return np.unique(np.concatenate(picks))


def assert_matches_live(c: Candles, regimes: np.ndarray, window: int, rows: np.ndarray) -> None:
    signals = entry_signals(c, regimes, REGIMES, window=window, min_candles=40)
    names = [("BULL", "SIDEWAYS", "BEAR", "UNKNOWN")[r] for r in regimes]
    for t in rows:
        regime = names[t]
        p = IndicatorParams.for_regime(regime, REGIMES)
        snap = compute_snapshot(c.slice(0, int(t) + 1), p, window)
        live = evaluate_entry(snap, regime, REGIMES, min_candles=40)
        assert live.reason_code == signals.reason(int(t)), (c.symbol, int(t), regime)


@pytest.mark.parametrize("regime", ["BULL", "SIDEWAYS", "BEAR"])
def test_history_pass_equals_minute_by_minute(histories, regime: str) -> None:
    """The whole-history outcome equals evaluate_entry on each candle's own live window."""
    rng = np.random.default_rng(len(regime))
    for c in histories.values():
        regimes = np.full(len(c), REGIME_INDEX[regime], dtype=np.int8)
        codes = entry_signals(c, regime, REGIMES).codes
        assert (codes == 0).any()
        rows = np.r_[stratified(codes, 25, rng), np.arange(0, 45, 4)]
        assert_matches_live(c, regimes, 200, rows)


def test_history_pass_with_a_short_window_and_changing_regimes(histories) -> None:
    """With a 60-candle window (a large RSI correction) and regimes switching every few hours."""
    rng = np.random.default_rng(5)
    for c in histories.values():
        regimes = np.repeat(rng.integers(0, 4, len(c) // 180 + 1), 180)[: len(c)].astype(np.int8)
        codes = entry_signals(c, regimes, REGIMES, window=60).codes
        rows = stratified(codes, 12, rng)
        assert_matches_live(c, regimes, 60, rows)


def test_history_pass_with_the_hourly_regime(histories) -> None:
    """Fed the regime-over-history codes, the pass agrees with the live evaluation."""
    rng = np.random.default_rng(9)
    c = next(h for name, h in histories.items() if "AVAXUSDT" in name)
    regimes = regime_over_history(c, CFG.regime_detection, CFG.schedules.regime_minute)
    codes = entry_signals(c, regimes, REGIMES).codes
    assert ENTRY_CODES.index("regime_unknown") in codes
    assert_matches_live(c, regimes, 200, stratified(codes, 20, rng))


def test_no_lookahead_on_real_data(histories) -> None:
    """Removing the candles after t changes neither the snapshot nor the outcome at t."""
    rng = np.random.default_rng(1)
    c = next(h for name, h in histories.items() if "ETHUSDT" in name)
    full = entry_signals(c, "SIDEWAYS", REGIMES).codes
    p = IndicatorParams.for_regime("SIDEWAYS", REGIMES)
    for t in rng.choice(len(c) - 1, 20, replace=False):
        cut = c.slice(0, int(t) + 1)
        assert entry_signals(cut, "SIDEWAYS", REGIMES).codes[-1] == full[t]
        assert compute_snapshot(cut, p) == compute_snapshot(c.slice(0, int(t) + 1), p)


def synthetic(prices: list[float], volumes: list[float]) -> Candles:
    n = min(len(prices), len(volumes))
    close = np.array(prices[:n])
    ts = np.arange(n, dtype=np.int64) * 60 + 1_700_000_000
    return Candles("KRW-TEST", ts, close, close, close, close, np.array(volumes[:n]))


walk = st.lists(
    st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.0, 0.5, 1.0, 2.0]), min_size=41, max_size=160
)
vols = st.lists(st.sampled_from([0.0, 0.5, 1.0, 3.0, 10.0]), min_size=160, max_size=160)


@settings(max_examples=150, deadline=None)
@given(walk, vols, st.sampled_from(["BULL", "SIDEWAYS", "BEAR"]), st.integers(0, 200))
def test_no_lookahead_and_equality_property(
    steps: list[float], volumes: list[float], regime: str, cut_at: int
) -> None:
    """On random walks with flat stretches and idle minutes, history = live, and no lookahead."""
    c = synthetic(list(1000.0 + np.cumsum(steps)), volumes)
    t = cut_at % len(c)
    full = entry_signals(c, regime, REGIMES, window=50, min_candles=40)
    cut = entry_signals(c.slice(0, t + 1), regime, REGIMES, window=50, min_candles=40)
    assert cut.codes[-1] == full.codes[t]
    p = IndicatorParams.for_regime(regime, REGIMES)
    live = evaluate_entry(compute_snapshot(c.slice(0, t + 1), p, 50), regime, REGIMES)
    assert live.reason_code == full.reason(t)


def test_batch_snapshots_equal_single_ones(histories) -> None:
    """compute_snapshots gives each symbol exactly its compute_snapshot, whatever the mix."""
    rng = np.random.default_rng(2)
    batch, params = [], []
    for c in histories.values():
        for _ in range(6):
            end = int(rng.integers(1, len(c)))
            batch.append(c.slice(max(0, end - int(rng.integers(150, 260))), end))
            params.append(IndicatorParams.for_regime(rng.choice(list(REGIMES)), REGIMES))
    snaps = compute_snapshots(batch, params, window=200)
    for candles, p, snap in zip(batch, params, snaps, strict=True):
        single = compute_snapshot(candles, p, 200)
        assert snap == single or _same_with_nans(snap, single)


def _same_with_nans(a: object, b: object) -> bool:
    for key in a.__dataclass_fields__:  # type: ignore[attr-defined]
        x, y = getattr(a, key), getattr(b, key)
        if x != y and not (isinstance(x, float) and np.isnan(x) and np.isnan(y)):
            return False
    return True


def test_empty_input_is_a_clear_error() -> None:
    """Asking for a snapshot of no candles raises instead of returning garbage."""
    with pytest.raises(ValueError, match="no candles"):
        compute_snapshot(Candles.empty("KRW-BTC"))
    with pytest.raises(ValueError, match="one regime code per candle"):
        entry_signals(synthetic([1.0, 2.0], [1.0, 1.0]), np.zeros(3), REGIMES)
    with pytest.raises(ValueError, match="unknown regime 'CRAB'"):
        entry_signals(synthetic([1.0, 2.0], [1.0, 1.0]), "CRAB", REGIMES)

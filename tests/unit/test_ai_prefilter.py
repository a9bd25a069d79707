"""The AI pre-filter (SPEC §10.3) with limits from config."""

from __future__ import annotations

from coinpilot.config import PrefilterConfig
from coinpilot.domain.ai_context import AiContext
from coinpilot.domain.ai_prefilter import should_run_ai

CFG = PrefilterConfig()


def ctx(n: int = 24, down: float = 0.5, rebound: float = 1.0, vol: float = 1.0) -> AiContext:
    bear = {
        "bear_downtrend_ratio_8h": down,
        "bear_rebound_from_recent_low_pct_8h": rebound,
        "bear_volume_recovery_ratio_8h": vol,
    }
    return AiContext(bars=[{}] * n, patterns={}, bear=bear)


def test_thin_context_is_skipped_in_any_regime() -> None:
    """Fewer than 12 hourly candles skip the model."""
    r = should_run_ai(ctx(n=11), "BULL", CFG)
    assert not r.run
    assert r.reason == "AI context insufficient (11 < 12)"


def test_falling_knife_boundaries() -> None:
    """downtrend ≥ 0.85 and rebound < 0.4 % skips; either condition alone does not."""
    skip = should_run_ai(ctx(down=0.85, rebound=0.39), "BEAR", CFG)
    assert skip.code == "falling_knife"
    assert skip.reason == "Falling knife pre-filter: downtrend=0.85, rebound=0.39%"
    assert should_run_ai(ctx(down=0.84, rebound=0.1), "BEAR", CFG).run
    assert should_run_ai(ctx(down=0.9, rebound=0.4), "BEAR", CFG).run


def test_volume_recovery_only_matters_in_bear() -> None:
    """A weak volume recovery skips a BEAR entry but not a SIDEWAYS one."""
    r = should_run_ai(ctx(vol=0.69), "BEAR", CFG)
    assert r.reason == "Volume recovery pre-filter: 0.69 < 0.70"
    assert should_run_ai(ctx(vol=0.69), "SIDEWAYS", CFG).run


def test_disabled_prefilter_always_runs() -> None:
    """With the pre-filter off even an empty context goes to the model."""
    assert should_run_ai(ctx(n=0), "BEAR", PrefilterConfig(enabled=False)).run

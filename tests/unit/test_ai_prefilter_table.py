"""The AI pre-filter's every boundary: whether the model runs, the code and the reason.

Shipped limits (SPEC §10.3): at least 12 hourly candles; in BEAR, skip a falling knife
(downtrend ratio ≥ 0.85 and rebound < 0.4 %) and a weak volume recovery (< 0.70).
"""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize(
    ("context", "regime", "run", "code", "reason"),
    [
        (ctx(n=12), "BULL", True, "run", ""),  # exactly the minimum is enough
        (ctx(n=11), "BULL", False, "insufficient_context", "AI context insufficient (11 < 12)"),
        (ctx(n=11), "BEAR", False, "insufficient_context", "AI context insufficient (11 < 12)"),
        (ctx(n=12, down=0.85, rebound=0.39), "BEAR", False, "falling_knife",
         "Falling knife pre-filter: downtrend=0.85, rebound=0.39%"),
        (ctx(down=0.85, rebound=-2.0), "BEAR", False, "falling_knife",
         "Falling knife pre-filter: downtrend=0.85, rebound=-2.00%"),
        (ctx(down=0.8499, rebound=0.1), "BEAR", True, "run", ""),  # downtrend just under
        (ctx(down=0.85, rebound=0.4), "BEAR", True, "run", ""),  # rebound exactly enough
        (ctx(down=1.0, rebound=0.4), "BEAR", True, "run", ""),
        (ctx(down=0.85, rebound=0.39), "SIDEWAYS", True, "run", ""),  # only BEAR is filtered
        (ctx(vol=0.69), "BEAR", False, "volume_recovery",
         "Volume recovery pre-filter: 0.69 < 0.70"),
        (ctx(vol=0.0), "BEAR", False, "volume_recovery", "Volume recovery pre-filter: 0.00 < 0.70"),
        (ctx(vol=0.70), "BEAR", True, "run", ""),  # exactly the minimum recovery
        (ctx(vol=0.69), "SIDEWAYS", True, "run", ""),
        (ctx(vol=0.69), "BULL", True, "run", ""),
        # the falling knife is checked first when both would skip
        (ctx(down=0.9, rebound=0.0, vol=0.1), "BEAR", False, "falling_knife",
         "Falling knife pre-filter: downtrend=0.90, rebound=0.00%"),
    ],
)  # fmt: skip
def test_prefilter_table(
    context: AiContext, regime: str, run: bool, code: str, reason: str
) -> None:
    r = should_run_ai(context, regime, CFG)
    assert (r.run, r.code, r.reason) == (run, code, reason)


def test_a_bear_context_without_bear_features_runs() -> None:
    """No BEAR features computed (too little history for them): nothing to filter on."""
    bare = AiContext(bars=[{}] * 24, patterns={}, bear=None)
    r = should_run_ai(bare, "BEAR", CFG)
    assert (r.run, r.code) == (True, "run")


def test_limits_come_from_config() -> None:
    cfg = PrefilterConfig(min_context_candles=5, max_downtrend_ratio=0.5, min_rebound_pct=1.0,
                          min_volume_recovery_ratio=0.9)  # fmt: skip
    assert should_run_ai(ctx(n=5), "BULL", cfg).run
    assert should_run_ai(ctx(n=4), "BULL", cfg).reason == "AI context insufficient (4 < 5)"
    assert should_run_ai(ctx(down=0.5, rebound=0.99), "BEAR", cfg).code == "falling_knife"
    assert should_run_ai(ctx(down=0.5, rebound=1.0, vol=0.89), "BEAR", cfg).reason == (
        "Volume recovery pre-filter: 0.89 < 0.90"
    )
    assert should_run_ai(ctx(down=0.5, rebound=1.0, vol=0.9), "BEAR", cfg).run


def test_disabled_prefilter_runs_even_a_thin_bear_context() -> None:
    off = PrefilterConfig(enabled=False)
    r = should_run_ai(ctx(n=0, down=1.0, rebound=-5.0, vol=0.0), "BEAR", off)
    assert (r.run, r.code, r.reason) == (True, "run", "")

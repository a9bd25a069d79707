"""Pre-filter: cheap checks that skip the model when its answer is a foregone REJECT."""

from __future__ import annotations

from dataclasses import dataclass

from coinpilot.config import PrefilterConfig
from coinpilot.domain.ai_context import AiContext


@dataclass(frozen=True)
class PrefilterResult:
    run: bool
    code: str  # "run", "insufficient_context", "falling_knife", "volume_recovery"
    reason: str = ""


RUN = PrefilterResult(True, "run")


def should_run_ai(ctx: AiContext, regime: str, cfg: PrefilterConfig) -> PrefilterResult:
    """Run the model unless the context is too thin or a BEAR entry is a falling knife."""
    if not cfg.enabled:
        return RUN
    n = ctx.n_candles
    if n < cfg.min_context_candles:
        return PrefilterResult(
            False,
            "insufficient_context",
            f"AI context insufficient ({n} < {cfg.min_context_candles})",
        )
    if regime != "BEAR" or ctx.bear is None:
        return RUN
    down = ctx.bear["bear_downtrend_ratio_8h"]
    rebound = ctx.bear["bear_rebound_from_recent_low_pct_8h"]
    if down >= cfg.max_downtrend_ratio and rebound < cfg.min_rebound_pct:
        return PrefilterResult(
            False,
            "falling_knife",
            f"Falling knife pre-filter: downtrend={down:.2f}, rebound={rebound:.2f}%",
        )
    recovery = ctx.bear["bear_volume_recovery_ratio_8h"]
    if recovery < cfg.min_volume_recovery_ratio:
        return PrefilterResult(
            False,
            "volume_recovery",
            f"Volume recovery pre-filter: {recovery:.2f} < {cfg.min_volume_recovery_ratio:.2f}",
        )
    return RUN

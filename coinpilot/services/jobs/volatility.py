"""Volatility job: a GARCH(1,1) fit per symbol on its last closed 1-minute candles.

The fit is CPU work (tens of milliseconds to seconds) on a heavy library, so it runs in a
child process (fit_pool.py): the event loop keeps serving /health, the bot and the
collector meanwhile, and the daemon never holds ``arch``. A symbol with fewer than
``volatility.min_candles`` candles is skipped and keeps its previous state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import numpy as np
import structlog

from coinpilot.adapters.cache import REDIS_ERRORS
from coinpilot.adapters.marketdata import load_closed_candles
from coinpilot.domain.volatility import VolatilityEstimate
from coinpilot.services.jobs import JobContext, PartialFailure
from coinpilot.services.jobs.fit_pool import Fit, fit_pool, in_thread

log = structlog.get_logger(__name__)

Estimator = Callable[..., VolatilityEstimate]


def state_json(est: VolatilityEstimate, now: datetime) -> str:
    return json.dumps(
        {
            "volatility_pct": est.volatility_pct,
            "is_high": est.is_high,
            "computed_at": now.isoformat(),
        }
    )


async def update_symbol(
    ctx: JobContext, symbol: str, closes: np.ndarray, now: datetime, fit: Fit
) -> VolatilityEstimate | None:
    cfg = ctx.settings.app.volatility
    if len(closes) < cfg.min_candles:
        log.info("volatility_skipped", symbol=symbol, candles=len(closes), needed=cfg.min_candles)
        return None
    est = await fit(closes, threshold_pct=cfg.threshold_pct, min_returns=cfg.min_returns)
    if est.status == "fit_failed":
        ctx.metrics.dependency_error("garch", "fit_failed")
        log.warning("volatility_fit_failed", symbol=symbol, returns=est.returns)
    await ctx.pool.execute(
        """INSERT INTO volatility_state (symbol, volatility_pct, is_high, status, computed_at)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (symbol) DO UPDATE SET volatility_pct = EXCLUDED.volatility_pct,
               is_high = EXCLUDED.is_high, status = EXCLUDED.status,
               computed_at = EXCLUDED.computed_at""",
        symbol, est.volatility_pct, est.is_high, est.status, now,
    )  # fmt: skip
    await ctx.redis.set(ctx.keys.volatility(symbol), state_json(est, now))
    ctx.metrics.volatility.labels(symbol=symbol).set(est.volatility_pct)
    ctx.metrics.high_volatility.labels(symbol=symbol).set(1 if est.is_high else 0)
    log.info(
        "volatility_updated",
        symbol=symbol,
        volatility_pct=round(est.volatility_pct, 6),
        is_high=est.is_high,
        status=est.status,
    )
    return est


async def run_volatility_job(
    ctx: JobContext, now: datetime, estimator: Estimator | None = None
) -> str:
    """Fit every symbol in a child process (``estimator``, when given, runs in a thread)."""
    if estimator is not None:
        return await _run(ctx, now, in_thread(estimator))
    async with fit_pool() as fit:
        return await _run(ctx, now, fit)


async def _run(ctx: JobContext, now: datetime, fit: Fit) -> str:
    symbols = ctx.settings.app.symbols
    lookback = ctx.settings.app.volatility.lookback_candles
    candles = await load_closed_candles(ctx.pool, symbols, lookback, now)
    done: list[str] = []
    failed: list[str] = []
    for symbol in symbols:
        try:
            est = await update_symbol(ctx, symbol, candles[symbol].close, now, fit)
            done.append(f"{symbol}=" + ("skipped" if est is None else f"{est.volatility_pct:.4f}%"))
        except Exception as exc:  # one symbol's failure must not stop the others
            failed.append(symbol)
            if isinstance(exc, REDIS_ERRORS):
                ctx.metrics.dependency_error("redis", type(exc).__name__)
            ctx.metrics.symbol_errors.labels(symbol=symbol).inc()
            log.exception("volatility_symbol_failed", symbol=symbol, error=type(exc).__name__)
    detail = " ".join(done)
    if failed:
        raise PartialFailure(f"{detail} failed: {' '.join(failed)}".strip())
    return detail


async def missing_state(ctx: JobContext) -> bool:
    """True when some symbol has no volatility verdict at all (run the job at start-up)."""
    symbols = ctx.settings.app.symbols
    stored = await ctx.pool.fetchval(
        "SELECT count(*) FROM volatility_state WHERE symbol = ANY($1::text[])", symbols
    )
    return bool(stored < len(set(symbols)))

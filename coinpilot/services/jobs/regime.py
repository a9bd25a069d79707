"""Regime job: closed hourly candles → MA fast / MA slow → BULL | SIDEWAYS | BEAR per symbol.

Each symbol stands alone (DECISIONS): too little history gives UNKNOWN for that symbol only,
and an error in one symbol is logged and counted while the others carry on. A history row
and, when the regime differs from the last recorded one, a 'regime-change' notification are
written in one transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import structlog

from coinpilot.adapters.cache import REDIS_ERRORS
from coinpilot.adapters.outbox import enqueue
from coinpilot.config import RegimeDetection
from coinpilot.domain.regime import REGIMES, RegimeReading, regime_from_closes
from coinpilot.services.jobs import JobContext, PartialFailure

log = structlog.get_logger(__name__)

# One close per closed hour: the close of the hour's last stored minute. Aggregated in
# PostgreSQL (a few hundred rows cross the wire instead of ~24,000 minutes per symbol); the
# classification is the strategy's own ``regime_from_closes``. Hours are UTC hours whatever
# the session's time zone (as in the backtester; a +5:30 zone would shift every bucket).
HOURLY_SQL = """
SELECT date_trunc('hour', ts, 'UTC') AS hour, (array_agg(close_price ORDER BY ts DESC))[1] AS close
FROM market_data
WHERE symbol = $1 AND interval = '1m' AND ts >= $2 AND ts < $3
GROUP BY 1 ORDER BY 1
"""


def closed_hours_window(now: datetime, cfg: RegimeDetection) -> tuple[datetime, datetime]:
    """[start, end): end is the current hour's start, so the still-forming hour is excluded."""
    end = now.replace(minute=0, second=0, microsecond=0)
    # Twice the needed hours leaves room for hours with no trades at all.
    return end - timedelta(hours=2 * cfg.min_hourly_candles), end


async def hourly_closes(ctx: JobContext, symbol: str, now: datetime) -> np.ndarray:
    start, end = closed_hours_window(now, ctx.settings.app.regime_detection)
    rows = await ctx.pool.fetch(HOURLY_SQL, symbol, start, end)
    return np.array([float(r["close"]) for r in rows], dtype=np.float64)


def _dec(value: float | None, places: int) -> Decimal | None:
    return None if value is None else round(Decimal(repr(value)), places)


async def record(ctx: JobContext, symbol: str, reading: RegimeReading, now: datetime) -> str | None:
    """History row + change notification in one transaction; returns the previous regime."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        previous = await conn.fetchval(
            "SELECT regime FROM regime_history WHERE symbol = $1 "
            "ORDER BY detected_at DESC, id DESC LIMIT 1",
            symbol,
        )
        await conn.execute(
            "INSERT INTO regime_history (symbol, regime, ma_fast, ma_slow, diff_pct, "
            "hourly_candles, detected_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            symbol,
            reading.regime,
            _dec(reading.ma_fast, 8),
            _dec(reading.ma_slow, 8),
            _dec(reading.diff_pct, 4),
            reading.hourly_candles,
            now,
        )
        if previous is not None and previous != reading.regime:
            await enqueue(
                conn,
                "regime-change",
                {
                    "symbol": symbol,
                    "previous": previous,
                    "regime": reading.regime,
                    "diff_pct": round(reading.diff_pct or 0.0, 4),
                    "ma_fast": round(reading.ma_fast or 0.0, 4),
                    "ma_slow": round(reading.ma_slow or 0.0, 4),
                    "detected_at": now.isoformat(),
                },
            )
    return previous


async def publish(ctx: JobContext, symbol: str, reading: RegimeReading) -> None:
    ttl = ctx.settings.app.regime_detection.redis_ttl_s
    try:
        await ctx.redis.set(ctx.keys.regime(symbol), reading.regime, ex=ttl)
    except REDIS_ERRORS as exc:
        # Redis is a cache: the history row still records the regime.
        ctx.metrics.dependency_error("redis", type(exc).__name__)
        log.warning("regime_cache_failed", symbol=symbol, error=type(exc).__name__)
    for name in REGIMES:
        ctx.metrics.regime.labels(symbol=symbol, regime=name).set(
            1 if name == reading.regime else 0
        )


async def update_symbol(ctx: JobContext, symbol: str, now: datetime) -> RegimeReading:
    closes = await hourly_closes(ctx, symbol, now)
    reading = regime_from_closes(closes, ctx.settings.app.regime_detection)
    await publish(ctx, symbol, reading)
    previous = None
    if reading.regime != "UNKNOWN":
        previous = await record(ctx, symbol, reading, now)
    log.info(
        "regime_detected",
        symbol=symbol,
        regime=reading.regime,
        previous=previous,
        diff_pct=reading.diff_pct,
        hourly_candles=reading.hourly_candles,
    )
    return reading


async def run_regime_job(ctx: JobContext, now: datetime) -> str:
    results: list[str] = []
    failed: list[str] = []
    for symbol in ctx.settings.app.symbols:
        try:
            reading = await update_symbol(ctx, symbol, now)
            results.append(f"{symbol}={reading.regime}")
        except Exception as exc:  # one symbol's failure must not stop the others
            failed.append(symbol)
            ctx.metrics.symbol_errors.labels(symbol=symbol).inc()
            log.exception("regime_symbol_failed", symbol=symbol, error=type(exc).__name__)
    detail = " ".join(results)
    if failed:
        raise PartialFailure(f"{detail} failed: {' '.join(failed)}".strip())
    return detail

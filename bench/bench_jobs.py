"""Scheduled-job figures: GARCH fit time, event-loop lag while a fit runs, embed building."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path

import numpy as np

from coinpilot.adapters.notify import build_message
from coinpilot.domain.volatility import estimate_volatility
from coinpilot.services.jobs.fit_pool import fit_pool

DATA = Path(
    os.environ.get("COINPILOT_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data")
)
BTC = "binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv"


def closes(n: int = 1000) -> tuple[np.ndarray, str]:
    path = DATA / BTC
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()[-n:]
        return np.array([float(line.split(",")[5]) for line in lines]), "real BTC closes"
    rng = np.random.default_rng(1)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n))), "synthetic closes (data absent)"


def fit_ms(prices: np.ndarray, runs: int = 20) -> float:
    estimate_volatility(prices, threshold_pct=2.0, min_returns=100)  # import and warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        estimate_volatility(prices, threshold_pct=2.0, min_returns=100)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


async def loop_lag_ms(prices: np.ndarray, fits: int = 10) -> float:
    """Largest delay of a 5 ms ticker while fits run in the job's child process (the
    pool's start-up included, as the daemon pays it once per job run)."""
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, (time.perf_counter() - t0) * 1000 - 5)

    task = asyncio.create_task(ticker())
    async with fit_pool() as fit:
        for _ in range(fits):
            await fit(prices, threshold_pct=2.0, min_returns=100)
    done.set()
    await task
    return worst


def embed_us(runs: int = 2000) -> float:
    payload = {f"field_{i}": "x" * 2000 for i in range(40)}
    payload["reason"] = "r" * 10000
    t0 = time.perf_counter()
    for _ in range(runs):
        build_message("ai-decision", payload, footer="coinpilot · #1")
    return (time.perf_counter() - t0) / runs * 1e6


def run() -> list[dict[str, object]]:
    prices, source = closes()
    return [
        {
            "figure": "GARCH(1,1) fit, 1,000 one-minute closes",
            "value": round(fit_ms(prices), 1),
            "unit": "ms (median)",
            "note": source,
        },
        {
            "figure": "event-loop lag while fits run in the child process",
            "value": round(asyncio.run(loop_lag_ms(prices)), 1),
            "unit": "ms (max)",
            "target": "< 50",
            "note": "5 ms ticker, 10 fits",
        },
        {
            "figure": "Discord embed build, oversized payload",
            "value": round(embed_us(), 1),
            "unit": "µs",
        },
    ]

"""AI-step figures that do not depend on the model: building one candidate's context
(24 closed hourly candles from 36 h of minutes, features, both prompts, input hash) and one
review against the local Anthropic fake through the real SDK (request/response overhead).

Inputs are real candles from the shared data when present (BTCUSDT 1-minute), else a
synthetic wave. Each figure is the best of several runs on a warm process.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from coinpilot import prompts
from coinpilot.adapters.llm import build_request, call_json, create_client
from coinpilot.config import ModelSettings
from coinpilot.domain.ai_context import build_context
from coinpilot.domain.candles import Candles
from coinpilot.services.agent import input_hash

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("COINPILOT_DATA_DIR", ROOT.parent / "shared" / "data"))
SOURCE = "binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv"
MINUTES = 36 * 60


def _best_ms(func: Callable[[], object], runs: int) -> float:
    func()
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def _minutes() -> tuple[Candles, str]:
    path = DATA / SOURCE
    if path.exists():
        from coinpilot.adapters.csvdata import load_candles

        return load_candles(path, "KRW-BTC").tail(MINUTES), "real BTCUSDT minutes"
    ts = 1_700_000_000 // 3600 * 3600 + 60 * np.arange(MINUTES, dtype=np.int64)
    close = 100.0 + np.sin(np.arange(MINUTES) / 90)
    return Candles("KRW-BTC", ts, close, close + 0.1, close - 0.1, close, np.ones(MINUTES)), (
        "synthetic minutes"
    )


def _prepare(c: Candles) -> str:
    ctx = build_context(c, int(c.ts[-1]) + 60, "BEAR", ma_gap_pct=-2.5)
    analyst = prompts.analyst_message(
        symbol="KRW-BTC", regime="BEAR", price=float(c.close[-1]), ma_gap_pct=ctx.ma_gap_pct,
        patterns=ctx.patterns, bars=ctx.bars,
    )  # fmt: skip
    signal = {"market_context": ctx.bars, "bear_features": ctx.bear, "rsi_14": 28.0}
    return input_hash(analyst, prompts.guardian_message(symbol="KRW-BTC", signal=signal))


async def _fake_roundtrip_ms(runs: int) -> float:
    from tests.fakes.anthropic import FakeAnthropic

    fake = FakeAnthropic()
    base = await fake.start()
    client = create_client("sk-bench", base)
    req = build_request(
        model="claude-haiku-5-5", system=prompts.ANALYST_SYSTEM, user="x",
        output_format=prompts.output_format("analyst"), options=ModelSettings(max_tokens=256),
    )  # fmt: skip
    try:
        await call_json(client, req, 10)
        best = float("inf")
        for _ in range(runs):
            started = time.perf_counter()
            await call_json(client, req, 10)
            best = min(best, time.perf_counter() - started)
    finally:
        await client.close()
        await fake.stop()
    return best * 1000


def run() -> list[dict[str, object]]:
    candles, note = _minutes()
    return [
        {
            "figure": "AI context + prompts + hash per candidate",
            "value": round(_best_ms(lambda: _prepare(candles), 20), 2),
            "unit": "ms",
            "note": note,
        },
        {
            "figure": "SDK round trip to the local Anthropic fake",
            "value": round(asyncio.run(_fake_roundtrip_ms(20)), 2),
            "unit": "ms",
            "note": "max_retries=0, structured output",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)

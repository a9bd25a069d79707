"""Backtest throughput: candle-steps per second (symbol-minutes simulated per second).

History loading is not timed; everything else is (signal pass, regimes, event loop,
equity curve). Each figure is the best of a few runs on a warm process, AI off.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from coinpilot.backtest.data import load_csv, repeated, shifted
from coinpilot.backtest.engine import run_backtest
from coinpilot.config import AppConfig, load_config
from coinpilot.domain.candles import Candles

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("COINPILOT_DATA_DIR", ROOT.parent / "shared" / "data"))
FILES = {
    "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv": "KRW-BTC",
    "binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv": "KRW-BTC",
    "binance_ETHUSDT_1m_2025-12-18_2025-12-29.csv": "KRW-ETH",
    "binance_AVAXUSDT_1m_2025-02-01_2025-02-28.csv": "KRW-AVAX",
}
YEAR_MINUTES = 525_600
RUNS = 3


def _rate(candles: dict[str, Candles], app: AppConfig) -> tuple[float, int, str]:
    """(best wall-clock candle-steps/s, steps, note with trades and the CPU-time rate)."""
    best = best_cpu = 0.0
    steps = trades = 0
    for _ in range(RUNS):
        started, cpu = time.perf_counter(), time.process_time()
        result = asyncio.run(run_backtest(candles, app))
        elapsed, used = time.perf_counter() - started, time.process_time() - cpu
        steps, trades = result.candle_steps, len(result.trades)
        best = max(best, steps / elapsed)
        best_cpu = max(best_cpu, steps / used) if used > 0 else best_cpu
    # On a busy machine wall time includes waiting; the CPU-time rate shows the work itself.
    return best, steps, f"{steps:,} steps, {trades} trades, {best_cpu:,.0f}/CPU-s"


def _year(base: Candles) -> Candles:
    times = -(-YEAR_MINUTES // len(base))
    return repeated(base, times).slice(0, YEAR_MINUTES)


def run() -> list[dict[str, object]]:
    if not DATA.is_dir():
        return [{"figure": "backtest", "value": 0, "unit": "skipped", "note": f"no data at {DATA}"}]
    app = load_config(environ={}).app
    out: list[dict[str, object]] = []
    loaded = {name: load_csv(f"{DATA / name}={sym}") for name, sym in FILES.items()}
    for name, c in loaded.items():
        rate, _, note = _rate({c.symbol: c}, app)
        out.append({"figure": f"backtest 1 symbol {name.split('_1m_')[0]}", "value": round(rate),
                    "unit": "candle-steps/s", "target": ">= 1,000,000", "note": note})  # fmt: skip
    year = _year(loaded["binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv"])
    rate, _, note = _rate({year.symbol: year}, app)
    out.append({"figure": "backtest 1 symbol, 1 year (BTC Feb 2024 repeated)", "value": round(rate),
                "unit": "candle-steps/s", "target": ">= 1,000,000", "note": note})  # fmt: skip
    five = {f"KRW-S{i}": shifted(year, f"KRW-S{i}", 0).slice(i * 7, len(year)) for i in range(5)}
    rate, _, note = _rate(five, app)
    out.append({"figure": "backtest 5 symbols, 1 year, portfolio limits", "value": round(rate),
                "unit": "candle-steps/s", "target": ">= 300,000", "note": note})  # fmt: skip
    out.extend(_per_step(loaded["binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv"], app))
    out.extend(_rss(n) for n in (5, 200))
    return out


def _per_step(base: Candles, app: AppConfig) -> list[dict[str, object]]:
    """Engine CPU time per candle-step with 1, 5, 20 and 50 symbols of a month each (copies
    of one month, each 7 minutes later, so their entries interleave under the portfolio
    limits); a linear engine keeps the per-step cost flat as symbols are added."""
    out: list[dict[str, object]] = []
    one = 0.0
    for count in (1, 5, 20, 50):
        cs = {f"KRW-S{i}": shifted(base, f"KRW-S{i}", 0).slice(i * 7, len(base))
              for i in range(count)}  # fmt: skip
        best = float("inf")
        for _ in range(RUNS):
            cpu = time.process_time()
            result = asyncio.run(run_backtest(cs, app))
            best = min(best, (time.process_time() - cpu) / result.candle_steps * 1e9)
        one = one or best
        out.append({"figure": f"engine per candle-step, {count} symbol(s) x 1 month",
                    "value": round(best), "unit": "CPU ns",
                    "target": "" if count == 1 else f"<= {1.5 * one:.0f} (1.5x 1 symbol)",
                    "note": f"{result.candle_steps:,} steps, {len(result.trades)} trades, "
                    f"{best / one:.2f}x 1 symbol"})  # fmt: skip
    return out


def _rss(symbols: int) -> dict[str, object]:
    """Peak RSS of a child process running an hour of the live services (replay driver)."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.rss_replay", str(symbols)],
        cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"figure": f"daemon RSS after 1 h, {symbols} symbols", "value": 0,
                "unit": "failed", "note": tail[0][:200]}  # fmt: skip
    got = json.loads(lines[-1])
    return {"figure": f"daemon RSS after 1 h, {symbols} symbols", "value": got["peak_rss_mb"],
            "unit": "MB (peak)", "note": f"{got['trades']} trades, {got['seconds']} s for 60 "
            "cycles; includes the in-process Upbit fake"}  # fmt: skip


if __name__ == "__main__":
    for fig in run():
        print(fig)

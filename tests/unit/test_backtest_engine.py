"""The backtest engine: equal to a naive minute-by-minute loop, deterministic, within limits."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from coinpilot.backtest.data import load_csv, shifted
from coinpilot.backtest.engine import run_backtest
from coinpilot.backtest.jsonout import dumps, to_document
from coinpilot.backtest.model import BacktestResult
from coinpilot.backtest.summary import day_keys, summarize
from coinpilot.backtest.timeline import CODE, build_timeline, hourly_closes, regime_per_tick
from coinpilot.config import AppConfig, load_config
from coinpilot.domain.candles import Candles
from coinpilot.domain.regime import regime_from_closes
from tests.unit.backtest_reference import reference_trades

UPBIT = "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv"
BTC_UP = "binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv"
AVAX = "binance_AVAXUSDT_1m_2025-02-01_2025-02-28.csv"


@pytest.fixture(scope="module")
def app() -> AppConfig:
    return load_config(environ={}).app


_CACHE: dict[str, Candles] = {}


def _load(data_dir: Path, name: str, symbol: str | None = None) -> Candles:
    """The shared reader is strict and slow; read each file once per module."""
    spec = str(data_dir / name) + (f"={symbol}" if symbol else "")
    if spec not in _CACHE:
        _CACHE[spec] = load_csv(spec)
    return _CACHE[spec]


def _run(candles: dict[str, Candles], app: AppConfig, **kw: object) -> BacktestResult:
    return asyncio.run(run_backtest(candles, app, **kw))  # type: ignore[arg-type]


def test_engine_equals_naive_minute_loop(data_dir: Path, app: AppConfig) -> None:
    """Skipping quiet minutes changes nothing: same trades as evaluating every minute."""
    c = _load(data_dir, UPBIT).slice(1200, 2640)
    expected = reference_trades({c.symbol: c}, app, "SIDEWAYS")
    got = _run({c.symbol: c}, app, fixed_regime="SIDEWAYS").trades
    # The day is chosen to trade and to exit in four different ways.
    assert len(expected) >= 8
    assert len({t.exit_reason for t in expected}) >= 4
    assert got == expected


def test_engine_equals_naive_loop_with_two_symbols_competing(
    data_dir: Path, app: AppConfig
) -> None:
    """With room for one position, two symbols compete; both loops pick the same trades."""
    c = _load(data_dir, UPBIT)
    a = c.slice(1200, 2400)
    b = shifted(c.slice(1237, 2437), "KRW-B", -37 * 60)  # other minutes, same clock
    one = app.model_copy(
        update={"risk": app.risk.model_copy(update={"max_concurrent_positions": 1})}
    )
    candles = {"KRW-BTC": a, "KRW-B": b}
    expected = reference_trades(candles, one, "SIDEWAYS")
    result = _run(candles, one, fixed_regime="SIDEWAYS")
    assert {t.symbol for t in expected} == {"KRW-BTC", "KRW-B"}
    assert result.funnel.get("risk:max_concurrent_positions", 0) > 0
    assert result.trades == expected


def test_regime_per_tick_is_the_jobs_classification(data_dir: Path, app: AppConfig) -> None:
    """At every hour the vectorised regime equals regime_from_closes on the job's window."""
    c = _load(data_dir, AVAX, "KRW-AVAX")
    cfg = app.regime_detection
    hours, closes = hourly_closes(c)
    bounds = np.arange(hours[0], hours[-1] + 3600, 3600, dtype=np.int64)
    got = regime_per_tick(c, bounds, cfg)
    window = 2 * cfg.min_hourly_candles * 3600
    for j, end in enumerate(bounds.tolist()):
        mask = (hours >= end - window) & (hours < end)
        assert got[j] == CODE[regime_from_closes(closes[mask], cfg).regime], end
    assert {int(x) for x in got} >= {CODE["UNKNOWN"], CODE["BEAR"]}


def test_regime_switches_a_minute_after_the_hour(app: AppConfig) -> None:
    """The job runs at regime_minute past the hour; ticks before it still see the old hour."""
    minutes = np.arange(0, 4 * 3600, 60, dtype=np.int64) + 10 * 3600
    c = Candles("KRW-X", minutes, *(np.ones(len(minutes)),) * 5)
    tl = build_timeline({"KRW-X": c}, 6)
    from coinpilot.backtest.timeline import regime_boundaries

    b = regime_boundaries(tl, 1)
    ticks = tl.minutes + 66
    # Tick at 11:00:06 is before the 11:01 run: it still uses the run at start-up (10:00).
    assert b[np.searchsorted(ticks, 11 * 3600 + 6)] == 10 * 3600
    assert b[np.searchsorted(ticks, 11 * 3600 + 66)] == 11 * 3600


def test_same_input_same_bytes(data_dir: Path, app: AppConfig) -> None:
    """Two runs give byte-identical JSON (trades and equity)."""
    c = _load(data_dir, BTC_UP, "KRW-BTC")
    docs = []
    for _ in range(2):
        r = _run({c.symbol: c}, app)
        docs.append(dumps(to_document(r, summarize(r, app.tz), app.tz, {})))
        docs.append(r.equity.tobytes())
    assert docs[0] == docs[2]
    assert docs[1] == docs[3]
    assert '"exit_reason"' in docs[0]


def test_no_lookahead(data_dir: Path, app: AppConfig) -> None:
    """Cutting the data at random points leaves every decision before the cut unchanged."""
    c = _load(data_dir, BTC_UP, "KRW-BTC")
    full = _run({c.symbol: c}, app)
    assert len(full.trades) >= 10
    rng = np.random.default_rng(20240201)
    for cut in sorted(rng.integers(15_000, len(c) - 1, size=5).tolist()):
        part = _run({c.symbol: c.slice(0, cut)}, app)
        last_tick = int(part.equity_ts[-1])
        before = [_events(t, last_tick) for t in full.trades if t.entry_ts <= last_tick]
        assert [_events(t, last_tick) for t in part.trades] == before
        n = len(part.equity)
        assert np.array_equal(part.equity, full.equity[:n])


def _events(t: object, until: int) -> tuple[object, ...]:
    """A trade's decisions up to ``until`` (an exit after the cut has not happened yet)."""
    exit_part = (
        (t.exit_ts, t.exit_price, t.exit_reason) if (t.exit_ts or until + 1) <= until else None
    )  # type: ignore[attr-defined]
    return (t.symbol, t.entry_ts, t.entry_price, t.quantity, exit_part)  # type: ignore[attr-defined]


def test_portfolio_limits_hold_with_five_symbols(data_dir: Path, app: AppConfig) -> None:
    """Five symbols trading at once never exceed 3 positions, 20 % exposure or 10 buys a day."""
    base = _load(data_dir, AVAX, "KRW-AVAX")
    symbols = ["KRW-A", "KRW-B", "KRW-C", "KRW-D", "KRW-E"]
    # Shifting each copy by a few minutes makes signals overlap without being identical.
    candles = {s: shifted(base, s, 0).slice(i * 7, len(base)) for i, s in enumerate(symbols)}
    r = _run(candles, app)
    assert len(r.trades) > 20
    events = sorted([(t.entry_ts, 1, t) for t in r.trades]
                    + [(t.exit_ts, 0, t) for t in r.trades if t.exit_ts is not None],
                    key=lambda e: (e[0], e[1]))  # fmt: skip
    open_now: set[str] = set()
    peak = 0
    for _, kind, t in events:
        if kind:
            open_now.add(t.symbol)
        else:
            open_now.discard(t.symbol)
        peak = max(peak, len(open_now))
    assert peak <= app.risk.max_concurrent_positions
    assert peak == app.risk.max_concurrent_positions  # the limit was actually reached
    entries = np.array([t.entry_ts for t in r.trades], dtype=np.int64)
    per_day = Counter(day_keys(entries, app.tz).tolist())
    assert max(per_day.values()) <= app.risk.max_daily_trades
    cap = Decimal(str(app.risk.initial_balance_krw)) * Decimal("0.2") * Decimal("1.05")
    assert sum(t.entry_price * t.quantity for t in r.trades[:3]) <= cap
    assert any(k.startswith("risk:") for k in r.funnel)


def test_precompute_equals_the_strategy_signal_pass(data_dir: Path, app: AppConfig) -> None:
    """The engine's one-pass precomputation gives entry_signals' codes and the live RSI14."""
    from coinpilot.backtest.signals_bt import precompute
    from coinpilot.domain.regime import REGIME_INDEX
    from coinpilot.domain.signals import entry_signals
    from coinpilot.domain.snapshot import IndicatorParams, compute_snapshot

    c = _load(data_dir, AVAX, "KRW-AVAX").slice(0, 6000)
    rng = np.random.default_rng(7)
    # Regimes switching every few hours, all four codes, to exercise every rule table.
    regime = np.repeat(rng.integers(0, 4, size=len(c) // 240 + 1), 240)[: len(c)].astype(np.int8)
    pre = precompute(c, regime, app)
    expected = entry_signals(c, regime, app.regimes, window=200, min_candles=40).codes
    assert np.array_equal(pre.codes, expected.astype(np.int16))
    assert (pre.codes == 0).any()
    for i in rng.integers(0, len(c), size=25).tolist():
        window = c.slice(max(0, i - 199), i + 1)
        for name in ("BULL", "UNKNOWN"):
            params = IndicatorParams.for_regime(name, app.regimes)
            live = compute_snapshot(window, params, 200).rsi14
            got = pre.rsi14[REGIME_INDEX[name]][i]
            assert got == pytest.approx(live, rel=1e-9, abs=1e-9) or (
                np.isnan(got) and np.isnan(live)
            )

"""Candles as columns: construction, cuts and the documented column types."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from coinpilot.domain.candles import Candles

T0 = 1_700_000_040  # a minute start (divisible by 60)
ROWS = [
    (T0, 10, 12, 9, 11, 5),
    (T0 + 60, 11, 13, 10, 12, 6),
    (T0 + 120, 12, 12, 8, 9, 7),
    (T0 + 180, 9, 10, 9, 10, 0),
]


def test_from_rows_reads_integer_rows_as_int64_times_and_float64_values() -> None:
    c = Candles.from_rows("KRW-BTC", ROWS)  # type: ignore[arg-type]
    assert c.symbol == "KRW-BTC"
    assert c.ts.dtype == np.int64
    assert c.ts.tolist() == [T0, T0 + 60, T0 + 120, T0 + 180]
    for name in ("open", "high", "low", "close", "volume"):
        assert getattr(c, name).dtype == np.float64, name
    assert c.open.tolist() == [10.0, 11.0, 12.0, 9.0]
    assert c.high.tolist() == [12.0, 13.0, 12.0, 10.0]
    assert c.low.tolist() == [9.0, 10.0, 8.0, 9.0]
    assert c.close.tolist() == [11.0, 12.0, 9.0, 10.0]
    assert c.volume.tolist() == [5.0, 6.0, 7.0, 0.0]
    # 1 700 000 220 s = 19 675 days of 86 400 s + 80 220 s (22 h 17 min); day 19 675 is
    # 2023-01-01 (53 years, 13 leap days: day 19 358) + 317 days = 14 November
    assert c.last_ts == datetime(2023, 11, 14, 22, 17, 0, tzinfo=UTC)


def test_no_rows_and_empty_keep_the_symbol_and_the_types() -> None:
    for c in (Candles.from_rows("KRW-ETH", []), Candles.empty("KRW-ETH")):
        assert c.symbol == "KRW-ETH"
        assert len(c) == 0
        assert c.last_ts is None
        assert c.ts.dtype == np.int64
        assert c.close.dtype == np.float64


def test_columns_of_different_lengths_are_refused_by_name() -> None:
    ts = np.array([T0, T0 + 60], dtype=np.int64)
    two, one = np.ones(2), np.ones(1)
    with pytest.raises(ValueError, match=r"Candles\.volume has a different length from ts"):
        Candles("KRW-BTC", ts, two, two, two, two, one)


def test_upto_is_inclusive_of_the_given_start() -> None:
    """Starts T0, +60, +120, +180: up to +120 keeps three, up to +119 two, before T0 none."""
    c = Candles.from_rows("KRW-BTC", ROWS)  # type: ignore[arg-type]
    assert len(c.upto(T0 + 120)) == 3
    assert c.upto(T0 + 120).close.tolist() == [11.0, 12.0, 9.0]
    assert c.upto(T0 + 119).ts.tolist() == [T0, T0 + 60]
    assert len(c.upto(T0 - 1)) == 0
    assert len(c.upto(T0 + 10_000)) == 4


def test_tail_and_slice() -> None:
    c = Candles.from_rows("KRW-BTC", ROWS)  # type: ignore[arg-type]
    assert c.tail(2).close.tolist() == [9.0, 10.0]
    assert c.tail(10).close.tolist() == [11.0, 12.0, 9.0, 10.0]
    assert c.slice(1, 3).volume.tolist() == [6.0, 7.0]

"""Chart series for the Market page: MA20, Bollinger bands and regime spans (pure).

Display only: floats are fine here, the ledger never reads these numbers. The bands use the
sample standard deviation (ddof = 1), as the strategy's indicators do, so what the operator
sees matches what the rules saw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

BB_PERIOD = 20
BB_WIDTH = 2.0


def moving_average(values: Sequence[float], period: int) -> list[float | None]:
    """Simple moving average; None until ``period`` values are available."""
    out: list[float | None] = []
    running = 0.0
    for i, v in enumerate(values):
        running += v
        if i >= period:
            running -= values[i - period]
        out.append(running / period if i >= period - 1 else None)
    return out


def bollinger(
    values: Sequence[float], period: int = BB_PERIOD, width: float = BB_WIDTH
) -> tuple[list[float | None], list[float | None], list[float | None]]:
    """(middle, upper, lower) bands with the sample standard deviation."""
    mid = moving_average(values, period)
    upper: list[float | None] = []
    lower: list[float | None] = []
    for i, m in enumerate(mid):
        if m is None:
            upper.append(None)
            lower.append(None)
            continue
        window = values[i - period + 1 : i + 1]
        var = sum((v - m) ** 2 for v in window) / (period - 1)
        sd = math.sqrt(var)
        upper.append(m + width * sd)
        lower.append(m - width * sd)
    return mid, upper, lower


def regime_spans(
    changes: Sequence[tuple[datetime, str]], start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Contiguous [start, end) spans of one regime, clipped to the chart window.

    ``changes`` are (detected_at, regime) in time order, the first possibly before ``start``.
    """
    spans: list[dict[str, Any]] = []
    for i, (when, regime) in enumerate(changes):
        until = changes[i + 1][0] if i + 1 < len(changes) else end
        lo, hi = max(when, start), min(until, end)
        if hi <= lo:
            continue
        if spans and spans[-1]["regime"] == regime and spans[-1]["end"] == lo:
            spans[-1]["end"] = hi
        else:
            spans.append({"start": lo, "end": hi, "regime": regime})
    return spans

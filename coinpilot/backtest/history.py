"""Is there enough history for the regime? Said in words before a run, not found after it.

The regime job needs ``min_hourly_candles`` closed hourly candles within its look-back
(twice that many hours) before it names a regime; until then every entry waits on
``regime_unknown``. With the default MA200 that is 200 hours, about 8.3 days. A run whose
history never reaches that point cannot enter a trade; one that reaches it late enters
nothing before. Both are stated per symbol, with what is there and what is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np

from coinpilot.config import AppConfig
from coinpilot.domain.candles import Candles

HOUR = 3600
DAY = 86400


def regime_ready_at(c: Candles, min_hourly: int) -> int | None:
    """The first hour boundary (epoch s) at which the regime job sees ``min_hourly`` closed
    hours inside its look-back, or None when the candles never get there."""
    if len(c) == 0:
        return None
    hours = np.unique(c.ts - c.ts % HOUR)
    if len(hours) < min_hourly:
        return None
    window = 2 * min_hourly * HOUR
    bounds = hours + HOUR  # an hour counts once it has closed
    inside = np.arange(len(hours)) - np.searchsorted(hours, bounds - window, side="left") + 1
    ready = np.flatnonzero(inside >= min_hourly)
    return int(bounds[ready[0]]) if len(ready) else None


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def regime_notes(
    candles: Mapping[str, Candles], app: AppConfig, start: datetime | None = None
) -> list[str]:
    """One line per symbol whose regime is unknown for all or part of the run."""
    need = app.regime_detection.min_hourly_candles
    need_days = need * HOUR / DAY
    notes = []
    for symbol, c in sorted(candles.items()):
        if len(c) == 0:
            continue
        hours = len(np.unique(c.ts - c.ts % HOUR))
        first = int(c.ts[0]) if start is None else max(int(c.ts[0]), int(start.timestamp()))
        last = int(c.ts[-1])
        ready = regime_ready_at(c, need)
        if ready is None or ready > last:
            notes.append(
                f"{symbol}: {hours} hourly candles ({hours * HOUR / DAY:.1f} days) of history, "
                f"but the regime needs {need} closed hourly candles ({need_days:.1f} days) "
                "before its first reading: no trade can be entered. Give a longer history "
                "(or an earlier --from)."
            )
        elif ready > first:
            notes.append(
                f"{symbol}: the regime is unknown (no entries) until {_utc(ready)}, "
                f"{(ready - first) / DAY:.1f} of the run's {(last - first) / DAY:.1f} days, "
                f"while the first {need} hourly candles ({need_days:.1f} days) accumulate."
            )
    return notes

"""Walk-forward windows: K consecutive train → test pairs over one span of candle times.

The span after the warm-up is cut into K + 1 equal segments on the minute grid. Fold k
(1-based) tests on segment k and trains on segment k − 1 (``rolling``) or on every segment
before k (``anchored``). So a test window starts exactly where its train window ends, test
windows follow each other without overlap, and no train window reaches into its own test.

Windows are half-open ``[start, end)`` in candle start times (epoch seconds). A backtest of
a window sees earlier candles as history only (indicators, the hourly regime) and decides
first on the window's first candle; see ``objective.run_window``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

MINUTE = 60
Mode = Literal["rolling", "anchored"]
MODES: tuple[Mode, ...] = ("rolling", "anchored")


@dataclass(frozen=True)
class Fold:
    index: int  # 1-based
    train_start: int
    train_end: int
    test_start: int
    test_end: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def make_folds(first_ts: int, end_ts: int, k: int, mode: Mode, warmup_s: int) -> list[Fold]:
    """K folds over candles from ``first_ts`` to ``end_ts`` (exclusive), after ``warmup_s``.

    Raises ValueError when the span cannot hold K + 1 segments of at least one hour.
    """
    if k < 1:
        raise ValueError("--folds must be at least 1")
    if mode not in MODES:
        raise ValueError(f"fold mode must be one of {', '.join(MODES)}")
    start = first_ts + warmup_s
    start += -start % MINUTE
    minutes = (end_ts - start) // MINUTE
    seg = minutes // (k + 1)
    if seg < 60:
        raise ValueError(
            f"{k} folds need at least {k + 1} hours of candles after the "
            f"{warmup_s / 3600:.1f} h warm-up; the history has {max(minutes, 0) / 60:.1f} h"
        )
    bounds = [start + i * seg * MINUTE for i in range(k + 2)]
    folds = []
    for i in range(1, k + 1):
        train_start = bounds[i - 1] if mode == "rolling" else bounds[0]
        folds.append(Fold(i, train_start, bounds[i], bounds[i], bounds[i + 1]))
    return folds

"""Walk-forward windows: tests after their train windows, never overlapping, all in range."""

from __future__ import annotations

import itertools

import pytest

from coinpilot.optimize.folds import make_folds

DAY = 86400


@pytest.mark.parametrize("mode", ["rolling", "anchored"])
@pytest.mark.parametrize("k", [1, 2, 4, 7])
def test_folds_follow_each_other_without_leaking(mode: str, k: int) -> None:
    first, end, warmup = 1_700_000_000, 1_700_000_000 + 120 * DAY + 37, 9 * DAY
    folds = make_folds(first, end, k, mode, warmup)  # type: ignore[arg-type]
    assert [f.index for f in folds] == list(range(1, k + 1))
    for f in folds:
        assert f.train_start >= first + warmup  # the warm-up is history, never a window
        assert f.train_start < f.train_end <= f.test_start < f.test_end <= end
        assert f.test_start == f.train_end  # the test window starts where training stops
        for t in (f.train_start, f.train_end, f.test_end):
            assert t % 60 == 0
    for a, b in itertools.pairwise(folds):
        assert a.test_end <= b.test_start  # test windows never overlap
        assert b.train_end == a.test_end
    if mode == "anchored":
        assert len({f.train_start for f in folds}) == 1
    else:
        assert all(f.train_end - f.train_start == f.test_end - f.test_start for f in folds)


def test_segments_are_equal_cuts_of_the_span_after_warmup() -> None:
    # 5 days after a 1-day warm-up, 4 folds: five segments of one day each
    folds = make_folds(0, 6 * DAY, 4, "rolling", DAY)
    assert [(f.train_start, f.test_start, f.test_end) for f in folds] == [
        (DAY, 2 * DAY, 3 * DAY), (2 * DAY, 3 * DAY, 4 * DAY),
        (3 * DAY, 4 * DAY, 5 * DAY), (4 * DAY, 5 * DAY, 6 * DAY),
    ]  # fmt: skip
    anchored = make_folds(0, 6 * DAY, 4, "anchored", DAY)
    assert [(f.train_start, f.train_end) for f in anchored][-1] == (DAY, 5 * DAY)


def test_too_short_a_history_is_refused_with_the_numbers() -> None:
    with pytest.raises(ValueError, match=r"4 folds need at least 5 hours"):
        make_folds(0, 4 * 3600, 4, "rolling", 0)
    with pytest.raises(ValueError, match="at least 1"):
        make_folds(0, DAY, 0, "rolling", 0)

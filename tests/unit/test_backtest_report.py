"""The HTML report is self-contained and shows the run's figures and trades."""

from __future__ import annotations

import base64
import importlib.util
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from coinpilot.backtest.model import BacktestResult, Trade
from coinpilot.backtest.report_html import render
from coinpilot.backtest.summary import summarize

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="HTML reports need the 'report' extra (pip install 'coinpilot[report]')",
)


def test_report_embeds_charts_and_trades() -> None:
    """Charts are inline PNGs, nothing is fetched from outside, the trade row is there."""
    ts = np.arange(0, 600, 60, dtype=np.int64)
    close = np.linspace(100.0, 110.0, len(ts))
    trade = Trade(
        "KRW-BTC", "BULL", 60, Decimal("101"), Decimal("1.5"), Decimal("0.07"),
        300, Decimal("105"), Decimal("0.08"), "TAKE_PROFIT",
    )  # fmt: skip
    result = BacktestResult(
        Decimal("1000"), Decimal("1005.85"), [trade], ts,
        np.linspace(1000.0, 1005.0, len(ts)), np.zeros(len(ts), dtype=bool),
    )  # fmt: skip
    page = render(
        result, summarize(result, ZoneInfo("Asia/Seoul")), {"KRW-BTC": (ts, close)}, {"ai": "off"}
    )
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 3  # equity, drawdown, one price chart
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "http://" not in page
    assert "https://" not in page
    assert "<script" not in page
    assert "TAKE_PROFIT" in page
    assert "1.5" in page


def test_thinning_keeps_each_buckets_extremes() -> None:
    """A one-minute dip inside a long run survives thinning, so the chart shows the deepest
    drawdown the summary reports."""
    from coinpilot.backtest.report_html import MAX_POINTS, _thin

    n = MAX_POINTS * 10 + 7
    ts = np.arange(n, dtype=np.int64) * 60
    ys = np.zeros(n)
    ys[12_345] = -0.22
    ys[23_456] = 0.5
    _, thinned = _thin(ts, ys)
    assert len(thinned) <= 3 * MAX_POINTS
    assert thinned.min() == -0.22
    assert thinned.max() == 0.5
    assert thinned[-1] == ys[-1]

"""The backtest HTML report in headless Chromium: it opens offline and reads at desktop width."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from coinpilot.commands import backtest
from coinpilot.config import load_config
from tests.browser.cdp import launch

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "backtest"
BINANCE = "binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv"

LAYOUT_JS = """
(() => ({
  overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  images: [...document.images].map(i => ({natural: i.naturalWidth, shown: i.clientWidth})),
  tables: document.querySelectorAll("table").length,
  text: document.body.innerText,
}))()
"""


async def test_report_opens_offline_with_charts_wide_enough_to_read(
    chromium: str, data_dir: Path, tmp_path: Path
) -> None:
    """At 1280 px every chart is drawn at least 1,100 px wide from a 1,300 px image, the page
    does not scroll sideways, and the summary reads net PnL beside buy and hold."""
    parser = argparse.ArgumentParser()
    backtest.add_arguments(parser)
    page_path = tmp_path / "report.html"
    args = parser.parse_args(
        ["--csv", f"{data_dir / BINANCE}=KRW-BTC", "--report", str(page_path), "--quiet"]
    )
    assert await asyncio.to_thread(backtest.main, args, load_config(environ={})) == 0
    browser = await launch(chromium, tmp_path / "profile")
    try:
        page = await browser.new_page()
        await page.viewport(1280, 900)
        await page.goto(page_path.as_uri())
        got = await page.eval(LAYOUT_JS)
        await page.screenshot(SHOTS / "report.png")
    finally:
        await browser.close()
    assert got["overflow"] <= 1
    assert len(got["images"]) == 3
    assert all(i["natural"] >= 1300 for i in got["images"]), got["images"]
    assert all(i["shown"] >= 1100 for i in got["images"]), got["images"]
    assert got["tables"] >= 7  # summary, run, months, three groups, round trips
    for needle in ("Net PnL", "Buy and hold", "Monthly returns", "Round trips ("):
        assert needle in got["text"]

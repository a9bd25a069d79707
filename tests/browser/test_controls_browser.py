"""The System page's controls in headless Chromium: plain forms through the token session,
the redirect back, the state shown, nothing refused by the page's own CSP."""

from __future__ import annotations

import json

import pytest

from coinpilot.services import control
from tests.browser.cdp import Page
from tests.browser.test_dashboard_browser import SHOTS, Site, page, site

__all__ = ["page", "site"]  # the fixtures, shared with the dashboard's browser tests
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


async def _text(page: Page) -> str:
    return str(await page.eval("document.body.innerText"))


async def test_pause_and_resume_from_the_system_page(site: Site, page: Page) -> None:
    await page.goto(site.url + "/system")
    assert "New entries are allowed." in await _text(page)
    await page.eval(
        "document.querySelector(\"form[action='/api/control/pause'] input[name=reason]\")"
        f".value = {json.dumps('browser check')}"
    )
    await page.click_and_wait("form[action='/api/control/pause'] button")
    text = await _text(page)
    assert "New entries are paused" in text
    assert "browser check" in text
    assert await control.entries_paused(site.pool)
    await page.screenshot(SHOTS / "system-controls-paused.png")
    await page.click_and_wait("form[action='/api/control/resume'] button")
    assert "New entries are allowed." in await _text(page)
    assert not await control.entries_paused(site.pool)
    audit = await site.pool.fetch(
        "SELECT violation_type, description FROM risk_audit"
        " WHERE violation_type LIKE 'entries_%' ORDER BY id"
    )
    assert [a["violation_type"] for a in audit] == ["entries_paused", "entries_resumed"]
    assert all("dashboard:" in a["description"] for a in audit)
    assert page.errors == []

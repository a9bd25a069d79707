"""A small Chrome DevTools Protocol client over aiohttp's websocket (no extra dependencies).

It starts headless Chromium on a free debugging port, opens one page target, and records
every console error, uncaught exception and browser log error the page produces.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = (
    "--headless",
    "--remote-debugging-port=0",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--force-color-profile=srgb",
)


class CdpError(RuntimeError):
    pass


@dataclass
class Waiter:
    method: str
    session: str | None
    match: Callable[[dict[str, Any]], bool]
    future: asyncio.Future[dict[str, Any]]


@dataclass
class Browser:
    proc: asyncio.subprocess.Process
    ws: aiohttp.ClientWebSocketResponse
    http: aiohttp.ClientSession
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    waiters: list[Waiter] = field(default_factory=list)
    listeners: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> Any:
        msg_id = next(self.ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = fut
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        await self.ws.send_str(json.dumps(msg))
        return await asyncio.wait_for(fut, timeout=30)

    def expect(
        self,
        method: str,
        session: str | None,
        match: Callable[[dict[str, Any]], bool] = lambda p: True,
    ) -> asyncio.Future[dict[str, Any]]:
        """A future for the next event ``method`` on ``session``: register before triggering it."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiters.append(Waiter(method, session, match, fut))
        return fut

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                fut = self.pending.pop(data["id"], None)
                if fut is not None and not fut.done():
                    if "error" in data:
                        fut.set_exception(CdpError(str(data["error"])))
                    else:
                        fut.set_result(data.get("result", {}))
                continue
            for listener in self.listeners:
                listener(data)
            for w in list(self.waiters):
                if (
                    w.method == data.get("method")
                    and w.session == data.get("sessionId")
                    and w.match(data.get("params", {}))
                ):
                    self.waiters.remove(w)
                    if not w.future.done():
                        w.future.set_result(data.get("params", {}))

    async def new_page(self) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"])
        self.listeners.append(page.on_event)
        for domain in ("Page", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        return page

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.send("Browser.close")
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
        await self.ws.close()
        await self.http.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


@dataclass
class Page:
    browser: Browser
    session: str
    errors: list[str] = field(default_factory=list)

    async def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.browser.send(method, params, self.session)

    def on_event(self, data: dict[str, Any]) -> None:
        if data.get("sessionId") != self.session:
            return
        method, params = data.get("method"), data.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            self.errors.append("console: " + " ".join(str(a.get("value", a)) for a in args))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"exception: {text}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())

    async def goto(self, url: str) -> None:
        loaded = self.browser.expect("Page.loadEventFired", self.session)
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CdpError(f"navigation to {url} failed: {result['errorText']}")
        await asyncio.wait_for(loaded, timeout=30)

    async def click_and_wait(self, selector: str) -> None:
        """Click an element that navigates, then wait for the new page's load event."""
        loaded = self.browser.expect("Page.loadEventFired", self.session)
        await self.eval(f"document.querySelector({json.dumps(selector)}).click()")
        await asyncio.wait_for(loaded, timeout=30)

    async def eval(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression[:60]}...: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    async def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )

    async def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page, not just the viewport."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        shot = await self.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": size["width"],
                    "height": size["height"],
                    "scale": 1,
                },
            },
        )
        await asyncio.to_thread(_write, path, base64.b64decode(shot["data"]))
        return path


def _open_log(profile: Path) -> Any:
    profile.mkdir(parents=True, exist_ok=True)
    return (profile / "chromium.log").open("wb")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def launch(executable: str, profile: Path) -> Browser:
    """Start Chromium and connect to its browser-level DevTools websocket."""
    log = await asyncio.to_thread(_open_log, profile)
    proc = await asyncio.create_subprocess_exec(
        executable,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()  # the child holds its own descriptor
    port_file = profile / "DevToolsActivePort"
    for _ in range(300):
        if port_file.exists() and len(port_file.read_text().splitlines()) >= 2:
            break
        if proc.returncode is not None:
            raise CdpError(
                f"chromium exited with {proc.returncode}; see {profile / 'chromium.log'}"
            )
        await asyncio.sleep(0.1)
    else:
        proc.kill()
        raise CdpError("chromium did not open its debugging port within 30 s")
    port, path = port_file.read_text().splitlines()[:2]
    http = aiohttp.ClientSession()
    ws = await http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=64 * 1024 * 1024)
    browser = Browser(proc, ws, http)
    browser.reader = asyncio.create_task(browser._read())
    return browser

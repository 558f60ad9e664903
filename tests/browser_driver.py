"""A tiny Chrome DevTools Protocol driver for Debian's headless `chromium` (no Python browser
package: those download their own browser, which cannot work offline)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--remote-debugging-port=0"]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)")
    return path


class _Page:
    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.next_id = 0
        self.requests: list[str] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.socket.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = json.loads((await self.socket.receive(timeout=30)).data)
            if message.get("method") == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")


async def _drive(url: str, text: str, profile: Path) -> dict[str, Any]:
    process = subprocess.Popen([chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page_target = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(page_target["webSocketDebuggerUrl"], max_msg_size=0) as socket:
                page = _Page(socket)
                await page.call("Network.enable")
                await page.call("Page.enable")
                await page.call("Page.navigate", url=url)
                for _ in range(100):
                    if await page.evaluate("document.readyState === 'complete' && !!document.getElementById('text')"):
                        break
                    await asyncio.sleep(0.1)
                # Type like a user: focus, select all, insert the text, click the button.
                await page.evaluate("document.getElementById('text').focus(); document.getElementById('text').select()")
                await page.call("Input.insertText", text=text)
                box = await page.evaluate(
                    "(() => { const r = document.getElementById('submit').getBoundingClientRect();"
                    " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
                for kind in ("mousePressed", "mouseReleased"):
                    await page.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left",
                                    clickCount=1)
                for _ in range(300):
                    state = await page.evaluate("document.body.dataset.state || ''")
                    if state:
                        break
                    await asyncio.sleep(0.1)
                outcome = await page.evaluate(
                    "({state: document.body.dataset.state || '', label: document.getElementById('label').textContent,"
                    " error: document.getElementById('error').textContent,"
                    " marked: [...document.querySelectorAll('#words mark')].map(m => m.textContent),"
                    " scores: [...document.querySelectorAll('#words mark')].map(m => Number(m.dataset.score)),"
                    " methods: [...document.querySelectorAll('#method option')].map(o => o.value)})")
                outcome["requests"] = list(page.requests)
                return outcome
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def drive_index_page(url: str, text: str, tmp_dir: Path) -> dict[str, Any]:
    """Open the page, type `text`, press Analyse; returns what the page shows and what it fetched."""
    profile = tmp_dir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_drive(url, text, profile))

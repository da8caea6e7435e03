"""Remake docs/status-page.png: run `monitor demo`, post a public update on its first incident
and photograph the demo's status page in Debian's headless Chromium.

    .venv/bin/python docs/status_screenshot.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path

import aiohttp
from playwright.async_api import async_playwright

OUT = Path(__file__).with_name("status-page.png")


async def main(chromium: str) -> int:
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "demo", stdout=asyncio.subprocess.PIPE
    )
    assert demo.stdout is not None
    page_url = token = api = ""
    try:
        async with asyncio.timeout(90):
            while True:
                line = (await demo.stdout.readline()).decode()
                if not line:
                    raise RuntimeError("the demo ended before its first incident")
                print(line, end="")
                if found := re.search(r"monitor serving (\S+)/metrics .*Bearer ([^')]+)'", line):
                    api, token = found[1], found[2]
                if found := re.search(r"status page: (\S+)", line):
                    page_url = found[1]
                if "incident opened INC-1" in line:
                    break
        async with aiohttp.ClientSession() as http:
            await http.post(
                f"{api}/api/incidents/1/updates",
                json={
                    "by": "alice",
                    "stage": "identified",
                    "text": "The shop's application server is failing; we are restarting it.",
                },
                headers={"Authorization": f"Bearer {token}"},
            )
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium, headless=True)
            page = await browser.new_page(viewport={"width": 900, "height": 700})
            await page.goto(page_url)
            await page.screenshot(path=str(OUT), full_page=True)
            await browser.close()
        print(f"wrote {OUT}")
        return 0
    finally:
        demo.terminate()
        await demo.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    sys.exit(asyncio.run(main(parser.parse_args().chromium)))

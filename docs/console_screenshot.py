"""Remake docs/console-queue.png and docs/console-incident.png: run a monitor on two loopback
sites that fail (a Severity 1 and a Severity 2), sign in to its console and photograph the
queue and the Severity 1's page in Debian's headless Chromium.

    .venv/bin/python docs/console_screenshot.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from aiohttp import web
from playwright.async_api import async_playwright

from monitor.app import running_monitor
from monitor.config import load_config_text
from monitor.passwords import hash_password

DOCS = Path(__file__).parent
NAME, PASSWORD = "Alice Operator", "screenshot only"


async def _failing_site(status: int) -> tuple[web.AppRunner, str]:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, text="Internal error")

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def _config(folder: str, shop: str, blog: str) -> str:
    site = {"checks": [{"id": "home", "url": "/", "name": "Home page"}]}
    return json.dumps(
        {
            "database": {"url": f"sqlite+aiosqlite:///{folder}/monitor.db"},
            "server": {"port": 0},
            "defaults": {"interval": "200ms", "failures_to_open": 2},
            "agency": {"name": "Example Agency", "timezone": "Europe/Berlin"},
            "notifications": {"outbox_dir": f"{folder}/outbox"},
            "oncall": {"emails": ["oncall@agency.example"]},
            "operators": [
                {
                    "name": NAME,
                    "email": "alice@agency.example",
                    "password_hash": hash_password(PASSWORD),
                }
            ],
            "clients": [
                {
                    "id": "acme",
                    "name": "Acme Outdoor",
                    "contacts": ["ops@acme.example"],
                    "plan": "retainer",
                    "business_hours": {"timezone": "America/New_York"},
                    "sites": [
                        {"id": "shop", "name": "Acme Shop", "url": shop, **site},
                        {
                            "id": "blog",
                            "name": "Acme Journal",
                            "url": blog,
                            "checks": [{"id": "home", "url": "/", "severity": 2}],
                        },
                    ],
                }
            ],
        }
    )


async def main(chromium: str) -> int:
    shop_runner, shop = await _failing_site(500)
    blog_runner, blog = await _failing_site(503)
    try:
        with tempfile.TemporaryDirectory() as folder:
            config = load_config_text(_config(folder, shop, blog))
            async with running_monitor(config) as running:
                for _ in range(200):
                    if len(await running.store.list_incidents(open_only=True)) == 2:
                        break
                    await asyncio.sleep(0.1)
                incidents = await running.store.list_incidents(open_only=True)
                critical = min(incidents, key=lambda i: int(i.severity))
                async with async_playwright() as playwright:
                    browser = await playwright.chromium.launch(
                        executable_path=chromium, headless=True, args=["--no-sandbox"]
                    )
                    page = await browser.new_page(viewport={"width": 1200, "height": 640})
                    await page.goto(f"{running.url}/ui/queue")
                    await page.get_by_label("Name").fill(NAME)
                    await page.get_by_label("Password").fill(PASSWORD)
                    await page.get_by_role("button", name="Sign in").click()
                    await page.wait_for_selector("#waiting tbody tr")
                    await page.screenshot(path=str(DOCS / "console-queue.png"), full_page=True)
                    await page.goto(f"{running.url}/ui/incidents/{critical.id}")
                    await page.get_by_role("button", name="Acknowledge").click()
                    await page.get_by_label("Text", exact=True).fill(
                        "The shop's application server is failing; we are restarting it."
                    )
                    await page.get_by_role("button", name="Preview").click()
                    await page.screenshot(path=str(DOCS / "console-incident.png"), full_page=True)
                    await browser.close()
        print(f"wrote {DOCS / 'console-queue.png'} and {DOCS / 'console-incident.png'}")
        return 0
    finally:
        await shop_runner.cleanup()
        await blog_runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    sys.exit(asyncio.run(main(parser.parse_args().chromium)))

"""A stand-in monitor process for the SIGKILL test: a browser pool running a journey that
hangs, printing Chromium's pid and the pool's folder once Chromium runs. Run as
`python -m tests.browser_victim <chromium> <url>`; the test kills it with SIGKILL and looks
for orphans and for what it left on disk."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from checks.browser import probe_browser
from checks.browser_spec import BrowserCheckSpec
from monitor.browser_pool import BrowserPool


async def main(chromium: str, url: str) -> None:
    pool = BrowserPool(executable=chromium, max_pages=1)
    check = BrowserCheckSpec.model_validate(
        {
            "url": url,
            "timeout": "10m",
            "steps": [
                {"name": "open", "goto": "/express"},
                {"name": "hang", "wait_for": {"text": "never shown"}, "timeout": "10m"},
            ],
        }
    )

    async def announce() -> None:
        while pool.pid is None:
            await asyncio.sleep(0.05)
        print(pool.pid, pool.folder, flush=True)

    announcing = asyncio.create_task(announce())
    await pool.run(
        lambda open_context: probe_browser(
            check, open_context=open_context, now=lambda: datetime.now(UTC)
        )
    )
    await announcing


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

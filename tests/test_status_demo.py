"""`monitor demo` prints its status page's URL and serves the page while it runs: operational
at first, then the outage its script causes."""

from __future__ import annotations

import asyncio
import re
import sys

import aiohttp
import pytest

from tests.helpers import eventually


async def _page(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        return await response.text()


async def _line_with(stream: asyncio.StreamReader, text: str) -> str:
    while True:
        line = (await stream.readline()).decode()
        assert line, f"the demo ended before printing {text!r}"
        if text in line:
            return line


@pytest.mark.timeout(90)
async def test_demo_prints_and_serves_its_status_page() -> None:
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "demo",
        "--speed",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert demo.stdout is not None
    try:
        async with asyncio.timeout(60):
            line = await _line_with(demo.stdout, "status page: ")
            found = re.search(r"status page: (http://127\.0\.0\.1:\d+/status/demo)\b", line)
            assert found, line
            url = found[1]
            first = await _page(url)
            assert "Demo Shop status" in first and "demo-shop.local" in first
            await _line_with(demo.stdout, "incident opened INC-1")

            async def outage_shown() -> bool:
                return "Major outage" in await _page(url)

            # Its checks are components under the site, by name.
            assert 'class="component-name">Home page<' in await _page(url)

            await eventually(outage_shown, timeout=10)
    finally:
        demo.terminate()
        await demo.wait()

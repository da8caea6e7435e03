"""The status page as a person sees it: rendered by real headless Chromium (Debian's, driven
by Playwright), with JavaScript off as many readers have it, on a desktop and a phone width,
and checked by axe-core for accessibility."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from tests.helpers import serious_axe_violations
from tests.status_helpers import (
    BLOG,
    INTERNAL_NOTE,
    OPERATOR,
    PUBLIC_UPDATE,
    SHOP,
    status_scene,
)

INTERNAL = ("acme/shop", "shop/home", "http_5xx", "127.0.0.1", OPERATOR, INTERNAL_NOTE)
# Browsers are slow to start on a loaded machine.
pytestmark = pytest.mark.timeout(120)


async def test_a_reader_sees_banner_sites_bars_and_the_public_update(
    tmp_path: Path, aiohttp_server: Any, browser: Browser
) -> None:
    async with status_scene(tmp_path, aiohttp_server) as scene:
        context = await browser.new_context(
            java_script_enabled=False, viewport={"width": 1100, "height": 900}
        )
        page = await context.new_page()
        response = await page.goto(scene.page_url)
        assert response is not None and response.ok
        banner = page.get_by_role("heading", level=1)
        assert (await banner.inner_text()).strip() == "Major outage"
        # The banner is coloured by the stylesheet (it loaded under the page's CSP).
        colour = await banner.evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour == "rgb(180, 35, 24)"
        sites = page.locator("article.site")
        assert await sites.count() == 2
        assert await sites.nth(0).get_by_role("heading").inner_text() == SHOP
        assert await sites.nth(0).locator(".site-status").inner_text() == "Major outage"
        assert await sites.nth(1).get_by_role("heading").inner_text() == BLOG
        assert await sites.nth(1).locator(".site-status").inner_text() == "Operational"
        bars = sites.nth(0).locator("ol.bars > li")
        assert await bars.count() == 90
        box = await bars.nth(0).bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 10  # drawn, visible
        # Today's bar: the shop is down, and its tooltip says so in words.
        assert await bars.nth(89).get_attribute("class") == "bar bar-down"
        assert (await bars.nth(89).get_attribute("title") or "").endswith(", incidents: 1")
        active = page.locator("section", has=page.get_by_role("heading", name="Active incidents"))
        text = await active.inner_text()
        assert f"{SHOP} is down" in text
        assert PUBLIC_UPDATE in text and "Identified" in text
        visible = await page.locator("body").inner_text()
        for secret in INTERNAL:
            assert secret not in visible
        await page.screenshot(path=str(tmp_path / "status.png"), full_page=True)

        # A phone: nothing runs off the side.
        phone = await browser.new_context(
            java_script_enabled=False, viewport={"width": 375, "height": 740}
        )
        small = await phone.new_page()
        await small.goto(scene.page_url)
        width = await small.evaluate("document.documentElement.scrollWidth")
        assert width <= 375
        await phone.close()
        await context.close()


async def test_axe_finds_no_serious_violation(
    tmp_path: Path, aiohttp_server: Any, browser: Browser
) -> None:
    # With the checks as components too: their states are text and colour both.
    async with status_scene(tmp_path, aiohttp_server, components="checks") as scene:
        page = await browser.new_page()
        for url in (scene.page_url, f"{scene.page_url}/incidents/{scene.incident.id}"):
            await page.goto(url)
            serious = await serious_axe_violations(page)
            assert serious == [], serious
        await page.close()

"""What the browser-check tests share: Debian's Chromium (or a skip that CI turns into a
failure), a pool around it, a screenshots folder, and a loopback shop with the pages a
browser check must judge (a script error, a payment iframe that never loads, a slow hero
text, a heap that grows without end)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from checks.browser import probe_browser
from checks.browser_spec import BrowserCheckSpec
from checks.result import ProbeResult
from monitor.browser_pool import BrowserPool, find_chromium
from monitor.demo.shop import create_shop_app
from monitor.demo.shop_state import ShopFaults
from monitor.screenshots import PNG_SIGNATURE, ScreenshotFolder
from tests.helpers import skip_unless_required

CHROMIUM = os.environ.get("MONITOR_TEST_CHROMIUM", "chromium")
MB = 1024 * 1024
CLEANUPS = web.AppKey("cleanups", list)
HERO_HITS = web.AppKey("hero_hits", list)


def chromium_or_skip() -> str:
    found = find_chromium(CHROMIUM)
    if found is None:
        skip_unless_required(f"no Chromium ({CHROMIUM}); apt-get install chromium")
    return found


@pytest.fixture
async def pool() -> AsyncIterator[BrowserPool]:
    browser = BrowserPool(executable=chromium_or_skip(), max_pages=2, ping_timeout=5.0)
    try:
        yield browser
    finally:
        await browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> ScreenshotFolder:
    return ScreenshotFolder(
        tmp_path / "shots", max_files=50, max_age=timedelta(days=1), now=lambda: datetime.now(UTC)
    )


def spec(url: str, steps: list[dict[str, Any]], **fields: Any) -> BrowserCheckSpec:
    return BrowserCheckSpec.model_validate(
        {"url": url, "steps": steps, "step_timeout": "2s", **fields}
    )


async def journey(
    pool: BrowserPool,
    check: BrowserCheckSpec,
    *,
    shots: ScreenshotFolder | None = None,
    max_heap_bytes: int | None = 256 * MB,
) -> ProbeResult:
    return await pool.run(
        lambda open_context: probe_browser(
            check,
            open_context=open_context,
            now=lambda: datetime.now(UTC),
            save_screenshot=shots.sink("acme/shop/checkout") if shots is not None else None,
            max_heap_bytes=max_heap_bytes,
        )
    )


def assert_png(path: str | None) -> None:
    assert path is not None
    data = Path(path).read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000  # a rendered page, not an empty image


# -- the loopback shop -------------------------------------------------------------------------

_IFRAME_PAGE = """<!doctype html><html><body><h1>Pay</h1>
<iframe id="payment" src="{frame}" title="Card"></iframe></body></html>"""
# The hero text comes after a script the server is slow to send: it is painted (and becomes
# the Largest Contentful Paint) only once that script arrived.
_HERO_PAGE = """<!doctype html><html><body><p>Hello</p>
<script src="/hero.js"></script>
<h1 style="font-size: 64px">Autumn sale: every mug half price, this week only, while stock
lasts, in every colour we make</h1></body></html>"""
_HEAP_PAGE = """<!doctype html><html><body><p id="state">growing</p><script>
window.hoard = [];
setInterval(() => {
  for (let i = 0; i < 20; i++) window.hoard.push(new Array(250000).fill(i));
}, 20);
</script></body></html>"""


def test_shop_app(faults: ShopFaults, *, hero_delay: float = 0.0) -> web.Application:
    """The demo shop (its express checkout included) plus the pages only these tests need."""
    app = create_shop_app(faults)
    never = asyncio.Event()
    cleanups: list[str] = []
    app[CLEANUPS] = cleanups
    hero_hits: list[float] = []
    app[HERO_HITS] = hero_hits

    async def iframe_page(request: web.Request) -> web.StreamResponse:
        frame = f"http://localhost:{request.url.port}/pay-frame"
        return web.Response(text=_IFRAME_PAGE.format(frame=frame), content_type="text/html")

    async def pay_frame(request: web.Request) -> web.StreamResponse:
        await never.wait()  # the payment provider never answers
        raise AssertionError("unreachable")

    async def hero_page(request: web.Request) -> web.StreamResponse:
        return web.Response(text=_HERO_PAGE, content_type="text/html")

    async def hero(request: web.Request) -> web.StreamResponse:
        hero_hits.append(hero_delay)
        await asyncio.sleep(hero_delay)
        return web.Response(text="window.heroReady = true;", content_type="text/javascript")

    async def heap_page(request: web.Request) -> web.StreamResponse:
        return web.Response(text=_HEAP_PAGE, content_type="text/html")

    async def cleanup(request: web.Request) -> web.StreamResponse:
        cleanups.append(request.query.get("why", ""))
        return web.Response(text="<p>cleaned</p>", content_type="text/html")

    app.router.add_get("/pay-iframe", iframe_page)
    app.router.add_get("/pay-frame", pay_frame)
    app.router.add_get("/hero", hero_page)
    app.router.add_get("/hero.js", hero)
    app.router.add_get("/heap", heap_page)
    app.router.add_get("/cleanup", cleanup)
    return app


test_shop_app.__test__ = False  # type: ignore[attr-defined]  # a factory, not a test

CHECKOUT_STEPS: list[dict[str, Any]] = [
    {"name": "open", "goto": "/express"},
    {"name": "email", "fill": "#email", "value": "monitor@agency.example"},
    {"name": "shipping", "select": "#shipping", "value": "express"},
    {"name": "place-order", "click": "#place-order"},
    {"name": "confirmed", "wait_for": {"selector": "#confirmation"}},
]

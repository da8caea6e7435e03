"""Browser checks end to end: real Chromium (Debian's, through Playwright) against a loopback
shop whose checkout runs in JavaScript. Each broken checkout is classified by what the
browser saw, with the failing step named, a PNG of the page, and the right severity."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from checks.result import Outcome
from incidents.severity import Severity, SeverityPolicy
from monitor.browser_pool import BrowserPool
from monitor.demo.shop_state import ShopFaults, ShopMode
from monitor.screenshots import ScreenshotFolder
from tests.browser_helpers import (
    CHECKOUT_STEPS,
    CLEANUPS,
    MB,
    assert_png,
    journey,
    pool,
    shots,
    spec,
    test_shop_app,
)

__all__ = ["pool", "shots"]  # fixtures

pytestmark = pytest.mark.timeout(120)  # browsers are slow to start on a loaded machine
POLICY = SeverityPolicy()


async def test_a_working_javascript_checkout_passes_with_web_vitals(
    aiohttp_server: Any, pool: BrowserPool, shots: ScreenshotFolder
) -> None:
    server = await aiohttp_server(test_shop_app(ShopFaults()))
    steps = [
        *CHECKOUT_STEPS,
        {
            "name": "order",
            "save": {"order": {"selector": "#confirmation", "attribute": "data-order"}},
        },
    ]
    result = await journey(pool, spec(str(server.make_url("/")), steps), shots=shots)
    assert result.outcome is Outcome.OK, result.evidence.error
    timings = result.evidence.timings
    assert {f"step:{step['name']}" for step in steps} <= set(timings)
    browser = result.evidence.browser
    assert browser is not None
    page = browser["pages"][0]
    assert page["url"].endswith("/express")
    assert page["ttfb"] is not None and page["fcp"] is not None and page["lcp"] is not None
    assert page["cls"] is not None
    assert result.evidence.screenshot is None  # only failing steps are photographed


async def test_press_wait_for_request_and_url_expectations_and_a_screenshot_step(
    aiohttp_server: Any, pool: BrowserPool, shots: ScreenshotFolder
) -> None:
    server = await aiohttp_server(test_shop_app(ShopFaults()))
    steps = [
        {"name": "open", "goto": "/express"},
        {"name": "email", "fill": "#email", "value": "monitor@agency.example"},
        {"name": "tab", "press": "#email", "key": "Tab"},
        {"name": "place-order", "click": "#place-order"},
        {"name": "paid", "wait_for": {"request": "/api/pay$"}},
        {"name": "page", "wait_for": {"url": "/express$"}},
        {
            "name": "done",
            "expect": {"url": "/express$", "no_console_error": ".", "visible": "#confirmation"},
        },
        {"name": "shot", "screenshot": True},
    ]
    result = await journey(pool, spec(str(server.make_url("/")), steps), shots=shots)
    assert result.outcome is Outcome.OK, result.evidence.error
    assert result.evidence.browser is not None
    [path] = result.evidence.browser["screenshots"]
    assert_png(path)
    # The same journey on the broken script: `no_console_error` fails it at that step, even
    # before anything else would.
    faults = ShopFaults()
    faults.switch(ShopMode.SCRIPT_ERROR)
    broken = await aiohttp_server(test_shop_app(faults))
    steps = [steps[0], {"name": "clean", "expect": {"no_console_error": "TypeError"}}]
    result = await journey(pool, spec(str(broken.make_url("/")), steps), shots=shots)
    assert result.outcome is Outcome.SCRIPT_ERROR and result.evidence.step == "clean"


async def test_a_script_error_that_breaks_the_button_is_a_script_error_with_a_screenshot(
    aiohttp_server: Any, pool: BrowserPool, shots: ScreenshotFolder
) -> None:
    faults = ShopFaults()
    faults.switch(ShopMode.SCRIPT_ERROR)
    server = await aiohttp_server(test_shop_app(faults))
    check = spec(str(server.make_url("/")), CHECKOUT_STEPS)
    result = await journey(pool, check, shots=shots)
    assert result.outcome is Outcome.SCRIPT_ERROR
    assert result.evidence.step == "confirmed"
    assert "TypeError" in (result.evidence.error or "")
    assert result.evidence.browser is not None
    assert any("TypeError" in line for line in result.evidence.browser["console_errors"])
    assert_png(result.evidence.screenshot)
    assert (
        POLICY.severity_for(result.outcome, check_severity=Severity.CRITICAL) is Severity.CRITICAL
    )


async def test_a_payment_iframe_that_never_loads_is_request_failed(
    aiohttp_server: Any, pool: BrowserPool, shots: ScreenshotFolder
) -> None:
    server = await aiohttp_server(test_shop_app(ShopFaults()))
    steps = [
        {"name": "open", "goto": "/pay-iframe", "timeout": "1s"},
        {"name": "card", "fill": "#card", "frame": "#payment", "value": "4242", "timeout": "1s"},
    ]
    check = spec(str(server.make_url("/")), steps, third_party=[f"http://localhost:{server.port}"])
    result = await journey(pool, check, shots=shots)
    # The page's load waits for its iframe: the goto step times out, or the card field never
    # shows; either way the request that did not answer is what failed.
    assert result.outcome in (Outcome.REQUEST_FAILED, Outcome.TIMEOUT), result.evidence
    assert result.outcome is Outcome.REQUEST_FAILED or result.evidence.step == "open"
    assert result.evidence.browser is not None
    assert any("/pay-frame" in line for line in result.evidence.browser["failed_requests"]), result
    assert_png(result.evidence.screenshot)


async def test_a_missing_button_is_element_missing_and_the_cleanup_still_runs(
    aiohttp_server: Any, pool: BrowserPool, shots: ScreenshotFolder
) -> None:
    app = test_shop_app(ShopFaults())
    server = await aiohttp_server(app)
    steps = [
        {"name": "open", "goto": "/express"},
        {"name": "pay-now", "click": "#pay-now", "timeout": "1s"},
        {"name": "never", "goto": "/express"},
        {"name": "cleanup", "goto": "/cleanup?why=after-failure", "always": True},
    ]
    result = await journey(pool, spec(str(server.make_url("/")), steps), shots=shots)
    assert result.outcome is Outcome.ELEMENT_MISSING
    assert result.evidence.step == "pay-now"
    assert "not run: never" in (result.evidence.error or "")
    assert "cleanup cleanup ok" in (result.evidence.error or "")
    assert app[CLEANUPS] == ["after-failure"]
    assert_png(result.evidence.screenshot)
    assert (
        POLICY.severity_for(result.outcome, check_severity=Severity.CRITICAL) is Severity.CRITICAL
    )


async def test_a_slow_largest_contentful_paint_is_slow_severity_2(
    aiohttp_server: Any, pool: BrowserPool
) -> None:
    server = await aiohttp_server(test_shop_app(ShopFaults(), hero_delay=1.2))
    steps = [{"name": "home", "goto": "/hero"}]
    check = spec(str(server.make_url("/")), steps, lcp_slow_after="800ms")
    result = await journey(pool, check)
    assert result.outcome is Outcome.SLOW, result.evidence.error
    assert result.evidence.step == "home"
    assert result.evidence.timings["lcp"] > 0.8
    assert "Largest Contentful Paint" in (result.evidence.error or "")
    # A checkout that is only slow is a slow load: Severity 2, even on a Severity 1 check.
    assert POLICY.severity_for(result.outcome, check_severity=Severity.CRITICAL) is Severity.MAJOR
    # The same page with a quick image passes.
    fast = await aiohttp_server(test_shop_app(ShopFaults()))
    fine = await journey(pool, spec(str(fast.make_url("/")), steps, lcp_slow_after="800ms"))
    assert fine.outcome is Outcome.OK, fine.evidence.error


async def test_cookies_do_not_leak_between_runs(aiohttp_server: Any, pool: BrowserPool) -> None:
    server = await aiohttp_server(test_shop_app(ShopFaults()))
    steps = [
        {"name": "open", "goto": "/express"},
        {"name": "first-visit", "expect": {"text": "Welcome", "text_absent": "Welcome back"}},
        # Within one run the cookie is kept: the shop greets the visitor as returning.
        {"name": "again", "goto": "/express"},
        {"name": "returning", "expect": {"text": "Welcome back"}},
    ]
    check = spec(str(server.make_url("/")), steps)
    for _ in range(3):
        result = await journey(pool, check)
        assert result.outcome is Outcome.OK, result.evidence.error


async def test_a_page_whose_heap_grows_past_the_cap_is_closed_as_too_large(
    aiohttp_server: Any, pool: BrowserPool
) -> None:
    server = await aiohttp_server(test_shop_app(ShopFaults()))
    steps = [
        {"name": "open", "goto": "/heap"},
        {"name": "wait", "wait_for": {"text": "never shown"}, "timeout": "10s"},
    ]
    result = await journey(pool, spec(str(server.make_url("/")), steps), max_heap_bytes=32 * MB)
    assert result.outcome is Outcome.TOO_LARGE, result.evidence.error
    assert result.evidence.browser is not None
    assert result.evidence.browser["peak_heap_bytes"] > 32 * MB
    # The browser itself is fine: the next journey runs.
    ok = await journey(
        pool, spec(str(server.make_url("/")), [{"name": "open", "goto": "/express"}])
    )
    assert ok.outcome is Outcome.OK


def test_screenshots_folder_keeps_at_most_its_count(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from monitor.screenshots import PNG_SIGNATURE

    moments = iter(datetime(2026, 12, 1, 12, 0, second, tzinfo=UTC) for second in range(60))
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def clock() -> datetime:
        return now

    folder = ScreenshotFolder(tmp_path, max_files=3, max_age=timedelta(hours=1), now=clock)
    paths = []
    for _ in range(5):
        now = next(moments)
        paths.append(folder.save(PNG_SIGNATURE + b"x" * 10, label="acme/shop/checkout"))
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(
        Path(p).name for p in paths[2:] if p
    )
    assert folder.save(b"not a png", label="x") is None
    now = now + timedelta(hours=2)  # everything is past max_age now
    folder.save(PNG_SIGNATURE + b"new", label="acme/shop/checkout")
    assert len(list(tmp_path.glob("*.png"))) == 1


async def test_a_page_cannot_take_the_browser_into_internal_addresses(
    aiohttp_server: Any, pool: BrowserPool
) -> None:
    # As an http check refuses such a redirect: a site (or a script on it) must not make the
    # monitor's browser load a metadata service or an internal page, photographed for on-call.
    inside = "http://169.254.1.1/latest/meta-data/"
    app = web.Application()

    async def framed(request: web.Request) -> web.Response:
        body = f'<p>hello</p><iframe src="{inside}"></iframe><img src="{inside}x.png">'
        return web.Response(text=body, content_type="text/html")

    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound(inside)  # a hop that a Playwright route never sees

    app.router.add_get("/framed", framed)
    app.router.add_get("/hop", hop)
    server = await aiohttp_server(app)
    base = str(server.make_url("/"))
    refused_line = "169.254.1.1:80 refused: it leads to a link-local address"

    steps = [{"name": "open", "goto": "/framed"}, {"name": "hello", "expect": {"text": "hello"}}]
    result = await journey(pool, spec(base, steps))
    assert result.outcome is Outcome.OK, result.evidence.error
    assert (result.evidence.browser or {})["refused"] == [refused_line]

    for goto in (inside, "/hop"):
        result = await journey(pool, spec(base, [{"name": "open", "goto": goto}]))
        assert result.outcome is Outcome.REDIRECT_REFUSED, (goto, result.evidence.error)
        assert refused_line in (result.evidence.error or "")
        assert (result.evidence.browser or {})["refused"] == [refused_line]

    # A site that is down after a refusal on the same journey is down, not refused.
    closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    closed_port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    steps = [
        {"name": "open", "goto": "/framed"},
        {"name": "elsewhere", "goto": f"http://127.0.0.1:{closed_port}/"},
    ]
    result = await journey(pool, spec(base, steps))
    assert result.outcome is Outcome.CONNECTION_ERROR, result.evidence.error
    assert f"127.0.0.1:{closed_port}: connection refused" in (result.evidence.error or "")

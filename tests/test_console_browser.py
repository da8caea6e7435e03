"""The operator console as an operator uses it: real headless Chromium (Debian's, driven by
Playwright), a real monitor probing loopback sites, and the client's real SMTP server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.console_helpers import (
    CLIENT_MAIL,
    OPERATOR,
    PASSWORD,
    ConsoleScene,
    console_scene,
    opened_incident,
)
from tests.helpers import eventually, serious_axe_violations

PAGES = ("/ui/queue", "/ui/sites", "/ui/maintenance", "/ui/outbox", "/ui/incidents/1")
# Browsers are slow to start on a loaded machine.
pytestmark = pytest.mark.timeout(150)


async def _sign_in(page: Page, scene: ConsoleScene, *, password: str = PASSWORD) -> None:
    await page.goto(f"{scene.url}/queue")
    await page.get_by_label("Name").fill(OPERATOR)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def test_an_operator_triages_acknowledges_and_updates_the_client(
    tmp_path: Path, aiohttp_server: Any, browser: Browser
) -> None:
    async with console_scene(tmp_path, aiohttp_server) as scene:
        scene.blog.set("/", status=500)
        major = await opened_incident(scene, "acme/blog", timeout=20)
        page = await browser.new_page(viewport={"width": 1200, "height": 900})
        await _sign_in(page, scene)
        await expect(page).to_have_url(f"{scene.url}/queue")
        waiting = page.locator("#waiting tbody tr")
        await expect(waiting).to_have_count(1)

        # A Severity 1 opens while the queue is on screen: it shows up by itself, on top.
        scene.shop.set("/", status=500)
        critical = await opened_incident(scene, "acme/shop", timeout=20)
        in_store = time.monotonic()
        await expect(waiting).to_have_count(2, timeout=5000)
        assert time.monotonic() - in_store < 5
        first = waiting.nth(0)
        await expect(first).to_contain_text(critical.ref)
        await expect(first).to_contain_text("Severity 1")
        await expect(waiting.nth(1)).to_contain_text(major.ref)
        # Time left, and the due time in the operator's zone (Berlin) and the client's.
        await expect(first.locator("td.left")).to_contain_text("in ")
        await expect(first).to_contain_text("client: ")
        await expect(first).to_contain_text("CET")
        await expect(first).to_contain_text("EST")

        # One click acknowledges it; the queue keeps only the Severity 2.
        await first.get_by_role("button", name=f"Acknowledge {critical.ref}").click()
        await expect(page.get_by_role("status")).to_have_text("Acknowledged.")
        await expect(waiting).to_have_count(1)
        await expect(page.locator("#responded tbody tr")).to_contain_text(OPERATOR)

        # A public update: previewed as the client will get it, then sent.
        before = len(scene.inbox.messages())
        await page.get_by_role("link", name=critical.ref).click()
        lines = ("We are restoring the shop's database.", "Next update within the hour.")
        update = "\n".join(lines)
        await page.get_by_label("Text", exact=True).fill(update)
        await page.get_by_label("Public: mailed to the client").check()
        await page.get_by_role("button", name="Preview").click()
        preview = page.locator("section.preview")
        await expect(preview).to_contain_text(lines[0])
        await expect(preview).to_contain_text(lines[1])
        await expect(preview).to_contain_text(CLIENT_MAIL)
        subject = (await preview.locator(".subject").inner_text()).strip()
        assert len(scene.inbox.messages()) == before  # a preview sends nothing
        await page.get_by_role("button", name="Send to the client").click()
        await expect(page.get_by_role("status")).to_have_text("Update sent to the client.")

        def updates() -> list[Any]:
            return [
                m
                for m in scene.inbox.messages()[before:]
                if CLIENT_MAIL in str(m["To"]) and lines[0] in str(m.get_body(("plain",)))
            ]

        [mail] = await eventually(updates)
        assert str(mail["Subject"]) == subject
        body = mail.get_body(preferencelist=("plain",))
        assert body is not None
        # The text arrives as typed, line breaks and all (through the preview's hidden field).
        assert update in body.get_content().replace("\r\n", "\n")
        # Exactly that one mail reached the client after the preview.
        to_client = [m for m in scene.inbox.messages()[before:] if CLIENT_MAIL in str(m["To"])]
        assert len(to_client) == 1

        # The timeline names who did it.
        timeline = page.locator("ol.timeline")
        await expect(timeline).to_contain_text(f"acknowledged by {OPERATOR}")
        await expect(timeline).to_contain_text(f"client update by {OPERATOR}")
        await page.close()


async def test_a_wrong_password_is_refused(
    tmp_path: Path, aiohttp_server: Any, browser: Browser
) -> None:
    async with console_scene(tmp_path, aiohttp_server) as scene:
        page = await browser.new_page()
        await _sign_in(page, scene, password="not it")
        await expect(page.get_by_role("alert")).to_have_text("Wrong name or password.")
        await page.goto(f"{scene.url}/queue")
        assert page.url.startswith(f"{scene.url}/sign-in")
        await page.close()


async def test_signed_out_every_page_leads_to_sign_in(
    tmp_path: Path, aiohttp_server: Any, browser: Browser
) -> None:
    async with console_scene(tmp_path, aiohttp_server) as scene:
        page = await browser.new_page()
        for path in PAGES:
            await page.goto(f"{scene.running.url}{path}")
            assert page.url == f"{scene.url}/sign-in?next={path}", path
            await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await page.close()


async def test_a_form_without_its_csrf_token_is_refused(
    tmp_path: Path, aiohttp_server: Any, browser: Browser
) -> None:
    async with console_scene(tmp_path, aiohttp_server) as scene:
        scene.shop.set("/", status=500)
        incident = await opened_incident(scene, "acme/shop", timeout=20)
        # bypass_csp: the test's own script removes the token; the page's CSP forbids that.
        context = await browser.new_context(bypass_csp=True)
        page = await context.new_page()
        await _sign_in(page, scene)
        await page.goto(f"{scene.url}/incidents/{incident.id}")
        form = page.locator(f"form[action='/ui/incidents/{incident.id}/acknowledge']")
        await form.locator("input[name=csrf]").evaluate("input => input.remove()")
        async with page.expect_response(lambda r: r.request.method == "POST") as posted:
            await form.get_by_role("button", name="Acknowledge").click()
        assert (await posted.value).status == 403
        stored = await scene.running.store.get_incident(incident.id or 0)
        assert stored is not None and stored.acknowledged_by is None
        await context.close()


async def test_axe_finds_no_serious_violation_on_any_console_page(
    tmp_path: Path, aiohttp_server: Any, browser: Browser
) -> None:
    async with console_scene(tmp_path, aiohttp_server) as scene:
        scene.shop.set("/", status=500)
        incident = await opened_incident(scene, "acme/shop", timeout=20)
        page = await browser.new_page()
        await page.goto(f"{scene.url}/sign-in")
        pages = [f"{scene.url}/sign-in"]
        await _sign_in(page, scene)
        await expect(page).to_have_url(f"{scene.url}/queue")
        pages += [f"{scene.running.url}{path}" for path in PAGES[:-1]]
        pages.append(f"{scene.url}/incidents/{incident.id}")
        for url in pages:
            await page.goto(url)
            serious = await serious_axe_violations(page)
            assert serious == [], (url, serious)
        await page.close()

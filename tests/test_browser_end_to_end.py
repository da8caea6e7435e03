"""A JavaScript checkout broken by a script error while every URL answers 200, end to end:
the http check of the same page stays green, the browser check opens a Severity 1 incident
whose evidence holds the failing step and a screenshot, the on-call mail attaches the PNG,
and the client mail says in plain words what is wrong, without the picture or the console."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from checks.result import Outcome
from incidents.severity import Severity
from monitor.app import running_monitor
from monitor.config.loader import load_config_text
from monitor.demo.shop_state import ShopFaults, ShopMode
from monitor.screenshots import PNG_SIGNATURE
from tests.browser_helpers import HERO_HITS, chromium_or_skip, test_shop_app
from tests.helpers import eventually
from tests.monitor_yaml import acme_shop_yaml, head_yaml, notifications_yaml
from tests.smtp_helpers import Inbox, mails, smtpd

pytestmark = pytest.mark.timeout(180)

CHECKS = """          - id: express-page
            url: /express
            role: availability
          - id: express-checkout
            name: Checkout
            kind: browser
            severity: 1
            interval: 500ms
            step_timeout: 2s
            steps:
              - {name: open, goto: /express}
              - {name: email, fill: "#email", value: monitor@agency.example}
              - {name: place-order, click: "#place-order"}
              - {name: confirmed, wait_for: {selector: "#confirmation"}}
"""


def config_yaml(
    *, db: Path, chromium: str, shots: Path, smtp_port: int, outbox: Path, url: str
) -> str:
    return (
        head_yaml(database=f"sqlite+aiosqlite:///{db}", interval="300ms")
        + f"browser: {{executable: {chromium}, screenshots_dir: {shots}, max_pages: 1}}\n"
        + notifications_yaml(smtp_port=smtp_port, outbox=outbox)
        + acme_shop_yaml(url=url, checks=CHECKS, business_hours=False)
    )


async def test_a_script_error_opens_a_severity_1_with_a_screenshot_for_on_call_only(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    chromium = chromium_or_skip()
    faults = ShopFaults()
    faults.switch(ShopMode.SCRIPT_ERROR)
    server = await aiohttp_server(test_shop_app(faults))
    inbox = Inbox()
    async with smtpd(inbox) as smtp_port:
        config = load_config_text(
            config_yaml(
                db=tmp_path / "monitor.db",
                chromium=chromium,
                shots=tmp_path / "shots",
                smtp_port=smtp_port,
                outbox=tmp_path / "outbox",
                url=str(server.make_url("/")),
            )
        )
        async with running_monitor(config) as running:
            [incident] = await eventually(
                lambda: running.store.list_incidents(open_only=True), timeout=90
            )
            mailed_to = {"ops@acme.example", "oncall@agency.example"}
            await eventually(
                lambda: mailed_to <= {to for e in inbox.received for to in e.rcpt_tos}, timeout=30
            )
            page_state = running.monitor.check_state("acme/shop/express-page")
            assert page_state is not None and page_state.last_outcome is Outcome.OK
    assert incident.severity is Severity.CRITICAL
    assert (
        incident.title
        == "shop.acme.example: Checkout is failing (the page has an error at the confirmed step)"
    )
    shots = list((tmp_path / "shots").glob("*.png"))
    assert shots and all(path.read_bytes().startswith(PNG_SIGNATURE) for path in shots)
    by_audience = {
        "oncall": mails(inbox, to="oncall@agency.example"),
        "client": mails(inbox, to="ops@acme.example"),
    }
    [page] = by_audience["oncall"][:1]
    pngs = [part for part in page.iter_attachments() if part.get_content_type() == "image/png"]
    assert pngs and pngs[0].get_content().startswith(PNG_SIGNATURE)
    for mail in by_audience["client"]:
        assert not [part for part in mail.iter_attachments()]
        text = "".join(
            part.get_content() for part in mail.walk() if part.get_content_maintype() == "text"
        )
        assert "The page has an error that stops visitors from going on." in text
        for internal in ("TypeError", "currency", "checkoutConfig", ".png", "script_error"):
            assert internal not in text


STALLED_CHECK = """          - id: hero
            kind: browser
            interval: 40s
            slow_after: 1s
            lcp_slow_after: 30s
            steps:
              - {name: open, goto: /hero}
"""


async def test_a_journey_slowed_by_the_browser_loops_own_stall_is_discarded_and_reprobed(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    # Journeys run on the browser pool's own event loop: a stall there (not the site) made
    # this one look slow. It must not count; it is re-run a second later by the browser
    # checks' own scheduler, and that run, unstalled, is ok.
    chromium = chromium_or_skip()
    app = test_shop_app(ShopFaults(), hero_delay=0.1)
    server = await aiohttp_server(app)
    config = load_config_text(
        head_yaml(database=f"sqlite+aiosqlite:///{tmp_path}/m.db", interval="1h")
        + f"browser: {{executable: {chromium}, screenshots_dir: {tmp_path / 'shots'}}}\n"
        + acme_shop_yaml(url=str(server.make_url("/")), checks=STALLED_CHECK, contact=None)
    )
    hero = {"client": "acme", "site": "shop", "check": "hero"}
    stalls = {"reason": "event_loop_lag"}
    async with running_monitor(config) as running:
        registry = running.registry
        hits = app[HERO_HITS]
        await eventually(lambda: len(hits) >= 1, timeout=60)  # its first run: within 40 s
        pool = running.monitor.browser
        assert pool is not None and pool._loop is not None  # the pool's own loop
        pool._loop.call_soon_threadsafe(time.sleep, 1.5)  # it stalls while the page loads
        await eventually(
            lambda: registry.get_sample_value("monitor_probe_results_discarded_total", stalls),
            timeout=30,
        )
        # The re-probe, a second later: long before the next run of its 40 s interval.
        ok = await eventually(
            lambda: registry.get_sample_value(
                "monitor_probe_results_total", {**hero, "outcome": "ok"}
            ),
            timeout=15,
        )
        assert ok == 1 and len(hits) == 2
        assert not registry.get_sample_value(
            "monitor_probe_results_total", {**hero, "outcome": "slow"}
        )

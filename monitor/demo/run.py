"""`monitor demo`: the real monitor against the bundled demo shop, on a scripted timeline.

A person watching sees each phase announced, the checks fail and recover, and incidents open,
escalate and resolve as they would for a real client; a summary table ends the run.
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import secrets
import tempfile
from collections import Counter
from datetime import datetime
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from monitor.app import running_monitor
from monitor.browser_pool import INSTALL_HINT, find_chromium
from monitor.clock import SystemClock
from monitor.config.models import MonitorConfig
from monitor.demo.shop import ShopFaults, start_shop
from monitor.demo.timeline import Phase, run_timeline
from monitor.events import EventKind, MonitorEvent
from monitor.incident_list import format_table

# The demo runs at a brisk pace: checks every 2 s, two failures open, two successes resolve,
# and "slow" starts at 1 s (a slow page takes 1.5 s) so the two-minute script shows everything.
DEMO_INTERVAL = 2.0
DEMO_SLOW_AFTER = 1.0
DEMO_SLOW_PAGE_SECONDS = 1.5

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PAGES = {
    "home": ("/", None),
    "product": ("/product/1", None),  # a page check: the HTML and its image
    "cart": ("/cart", None),
    "contact": ("/contact", 2),
    "admin": ("/admin", 2),
}
# What clients read instead of check ids. Only the home page (the site's own URL) is the
# availability scope: the shop is "down" when it fails, any other check names its part.
PAGE_NAMES = {
    "home": "Home page",
    "product": "Product page",
    "cart": "Cart page",
    "contact": "Contact page",
    "admin": "Admin panel",
}
DEMO_CARD = "4242 4242 4242 4242"  # a test card; a real config takes it from ${TEST_CARD}

CHECKOUT_FLOW: dict[str, Any] = {
    "id": "checkout",
    "name": "Checkout",
    "kind": "flow",
    "severity": 1,
    "url": "/",
    "steps": [
        {
            "name": "product",
            "url": "/product/1",
            "expect": {"body_contains": ["Add to cart"]},
            "save": {"csrf_token": {"form_field": "csrf_token"}},
        },
        {
            "name": "add-to-cart",
            "method": "POST",
            "url": "/cart",
            "form": {"csrf_token": "{{csrf_token}}", "product_id": "1", "quantity": "1"},
            "expect": {"body_contains": ["x 1"]},
        },
        {
            "name": "pay",
            "method": "POST",
            "url": "/checkout",
            "form": {"csrf_token": "{{csrf_token}}", "card_number": DEMO_CARD},
            "expect": {"body_contains": ["Order confirmed"], "body_not_contains": ["failed"]},
            "save": {"order": {"regex": r"Order number: (DS-\d+)"}},
        },
        {
            "name": "cancel-order",
            "method": "POST",
            "url": "/orders/{{order}}/cancel",
            "form": {"csrf_token": "{{csrf_token}}"},
            "always": True,
        },
    ],
}
CONTACT_FLOW: dict[str, Any] = {
    "id": "contact-form",
    "name": "Contact form",
    "kind": "flow",
    "severity": 2,
    "url": "/",
    "steps": [
        {
            "name": "send",
            "method": "POST",
            "url": "/contact",
            "form": {"email": "monitor@agency.example", "message": "Synthetic check"},
            "expect": {"body_contains": ["Message reference"]},
        }
    ],
}

# The express checkout in a real browser (monitor.demo.express): what a customer does.
EXPRESS_JOURNEY: dict[str, Any] = {
    "id": "express-checkout",
    "name": "Express checkout",
    "kind": "browser",
    "severity": 1,
    "role": "part",
    "timeout": "30s",
    "slow_after": "15s",
    "step_timeout": "3s",
    "steps": [
        {"name": "open", "goto": "/express"},
        {"name": "email", "fill": "#email", "value": "monitor@agency.example"},
        {"name": "shipping", "select": "#shipping", "value": "express"},
        {"name": "place-order", "click": "#place-order"},
        # The payment API answers on loopback in milliseconds: a short wait tells sooner.
        {"name": "confirmed", "wait_for": {"selector": "#confirmation"}, "timeout": "1500ms"},
        {
            "name": "order",
            "save": {"order": {"selector": "#confirmation", "attribute": "data-order"}},
        },
        {"name": "cancel-order", "goto": "/express/cancel?order={{order}}", "always": True},
    ],
}
BROWSER_SKIPPED = (
    "browser checks are skipped: no Chromium found; install it with `{hint}` "
    "(the script-error phase then goes unseen)"
)

_SHOWN = {
    EventKind.CHECK_FAILED: "  ",
    EventKind.CHECK_RECOVERED: "  ",
    EventKind.INCIDENT_OPENED: "» ",
    EventKind.INCIDENT_CHECK_ADDED: "» ",
    EventKind.INCIDENT_ESCALATED: "» ",
    EventKind.INCIDENT_CHECK_RECOVERED: "» ",
    EventKind.INCIDENT_RESOLVED: "» ",
    EventKind.PROBE_DISCARDED: "  ",
    EventKind.STORE_ERROR: "! ",
}


def demo_config(
    *,
    shop_url: str,
    database_url: str,
    speed: float,
    outbox_dir: str,
    chromium: str | None = None,
    screenshots_dir: str = "screenshots",
) -> MonitorConfig:
    """The demo's configuration; with `chromium`, a browser check of the express checkout."""
    interval = f"{max(0.1, DEMO_INTERVAL / speed):.3f}s".replace(".000s", "s")
    # A journey costs a browser's CPU: every other round is often enough to catch the script
    # error within its phase, and leaves the two cores to the other checks' timings.
    journey_every = f"{max(0.2, 2 * DEMO_INTERVAL / speed):.3f}s".replace(".000s", "s")
    browser_checks = (
        [{**EXPRESS_JOURNEY, "interval": journey_every}] if chromium is not None else []
    )
    return MonitorConfig.model_validate(
        {
            "database": {"url": database_url},
            "server": {"host": "127.0.0.1", "port": 0},
            "scheduler": {"sla_tick": "1s"},
            "notifications": {
                "sender": "Agency Support <support@agency.example>",
                "outbox_dir": outbox_dir,
                "poll_interval": "500ms",
            },
            "oncall": {"emails": ["oncall@agency.example"]},
            "browser": {"executable": chromium, "screenshots_dir": screenshots_dir},
            # The API needs a token for reads too: one made up for this run, printed at start.
            "api": {"token": secrets.token_urlsafe(16)},
            "defaults": {
                "interval": interval,
                "timeout": "3s",
                "slow_after": f"{DEMO_SLOW_AFTER}s",
                "failures_to_open": 2,
                "successes_to_resolve": 2,
            },
            "clients": [
                {
                    "id": "demo",
                    "name": "Demo Shop Ltd",
                    "plan": "retainer",
                    # Open around the clock, so the demo shows the same thing at any hour
                    # (a real client would have e.g. mon-fri 09:00-17:00 in their zone).
                    "business_hours": {
                        "timezone": "UTC",
                        "hours": {day: ["00:00-24:00"] for day in DAYS},
                    },
                    "contacts": ["owner@demo-shop.example"],
                    # Its checks show under the site, each in its own state.
                    "status_page": {
                        "public": True,
                        "title": "Demo Shop status",
                        "components": "checks",
                    },
                    "sites": [
                        {
                            "id": "shop",
                            "name": "demo-shop.local",
                            "url": shop_url,
                            "checks": [
                                {"id": page, "name": PAGE_NAMES[page], "url": path}
                                | ({"severity": severity} if severity else {})
                                | ({"kind": "page"} if page == "product" else {})
                                for page, (path, severity) in PAGES.items()
                            ]
                            + [CHECKOUT_FLOW, CONTACT_FLOW, *browser_checks],
                        }
                    ],
                }
            ],
        }
    )


async def run_demo(*, speed: float = 1.0, keep: str | None = None, quiet: bool = False) -> int:
    if speed <= 0:
        raise ValueError("--speed must be above 0")
    # The demo prints its own lines, and the emails at the end.
    logging.getLogger("monitor.events").setLevel(logging.ERROR)
    logging.getLogger("monitor.outbox_worker").setLevel(logging.WARNING)
    clock = SystemClock()
    started = clock.monotonic()

    def say(text: str) -> None:
        if not quiet:
            print(f"[{clock.monotonic() - started:5.1f}s] {text}", flush=True)

    def on_event(event: MonitorEvent) -> None:
        label = _SHOWN.get(event.kind)
        if label is not None:
            say(f"{label}{event.message}")

    def on_phase(phase: Phase) -> None:
        say(f"── {phase.name}: {phase.description}")

    faults = ShopFaults(slow_seconds=DEMO_SLOW_PAGE_SECONDS)
    runner, shop_url = await start_shop(faults)
    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as scratch:
        folder = Path(keep) if keep else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        database = folder / "demo.db"
        outbox = folder / "outbox"
        chromium = find_chromium()
        config = demo_config(
            shop_url=shop_url,
            database_url=f"sqlite+aiosqlite:///{database}",
            speed=speed,
            outbox_dir=str(outbox),
            chromium=chromium,
            screenshots_dir=str(folder / "screenshots"),
        )
        journey = " and a browser journey" if chromium is not None else ""
        say(
            f"demo shop on {shop_url}; monitoring {len(PAGES)} pages, 2 flows{journey} every "
            f"{config.defaults.interval.total_seconds():g}s; database {database}"
        )
        if chromium is None:
            say(BROWSER_SKIPPED.format(hint=INSTALL_HINT))
        try:
            async with running_monitor(config, clock=clock, listeners=[on_event]) as running:
                token = config.api.token.get_secret_value() if config.api.token else ""
                say(
                    f"monitor serving {running.url}/metrics and {running.url}/api/incidents "
                    f"(header 'Authorization: Bearer {token}')"
                )
                say(f"status page: {running.url}/status/demo (served while the demo runs)")
                await run_timeline(
                    faults,
                    speed=speed,
                    clock_monotonic=clock.monotonic,
                    sleep=asyncio.sleep,
                    on_phase=on_phase,
                )
                await running.outbox.deliver_due()  # what the last changes queued
                incidents = await running.store.list_incidents(limit=1000)
                outcomes = _outcome_counts(running.registry)
        finally:
            await runner.cleanup()
        print()
        print(_summary(incidents, outcomes))
        print()
        print(_emails(outbox))
        if keep:
            print(
                f"\ndatabase kept: {database}  (try: monitor incidents --database "
                f"sqlite+aiosqlite:///{database})"
            )
    return 0


def _emails(outbox: Path) -> str:
    """The emails the demo wrote (no SMTP configured: .eml files), oldest first."""
    # Written in order, one file each: their modification times say which came first.
    files = (
        sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns) if outbox.is_dir() else []
    )
    lines = [f"Emails written to {outbox} ({len(files)}):"]
    parsed = []
    for path in files:
        with path.open("rb") as handle:
            message = BytesParser(policy=email.policy.default).parse(handle)
        subject = " ".join(str(message["Subject"]).split())  # unfold a long subject
        parsed.append((str(message["Date"] or ""), str(message["To"]), subject))
    rows: list[tuple[str, ...]] = [("TO", "SUBJECT")]
    rows += [(to, subject) for _, to, subject in parsed]
    if parsed:
        lines.append(format_table(rows))
    return "\n".join(lines)


def _outcome_counts(registry: Any) -> Counter[str]:
    counts: Counter[str] = Counter()
    for family in registry.collect():
        if family.name == "monitor_probe_results":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["outcome"]] += int(sample.value)
    return counts


def _summary(incidents: list[Any], outcomes: Counter[str]) -> str:
    lines = [f"Incidents ({len(incidents)}):"]
    if incidents:
        rows: list[tuple[str, ...]] = [
            (
                "ID",
                "SEV",
                "STATUS",
                "OPENED",
                "RESPONSE DUE",
                "RESOLVED",
                "LASTED",
                "CHECKS",
                "TITLE",
            )
        ]
        for incident in sorted(incidents, key=lambda i: i.id or 0):
            rows.append(
                (
                    incident.ref,
                    str(int(incident.severity)),
                    str(incident.status),
                    _clock_time(incident.opened_at),
                    _day_time(incident.response_due_at),
                    _clock_time(incident.resolved_at),
                    _lasted(incident.opened_at, incident.resolved_at),
                    ",".join(sorted(key.rsplit("/", 1)[-1] for key in incident.checks)),
                    incident.title,
                )
            )
        lines.append(format_table(rows))
    total = sum(outcomes.values())
    lines.append("")
    lines.append(
        f"Probes: {total} ("
        + ", ".join(f"{name} {count}" for name, count in outcomes.most_common())
        + ")"
    )
    return "\n".join(lines)


def _clock_time(value: datetime | None) -> str:
    return value.strftime("%H:%M:%S") if value else "-"


def _day_time(value: datetime | None) -> str:
    return value.strftime("%a %H:%M") if value else "-"


def _lasted(opened: datetime, resolved: datetime | None) -> str:
    if resolved is None:
        return "open"
    return f"{(resolved - opened).total_seconds():.0f}s"

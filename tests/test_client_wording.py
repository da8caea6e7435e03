"""What clients are told, end to end: the demo shop and a hostile target, real monitor, real
mails (the `.eml` files the file mailer writes), read back and scanned.

Titles come from what failed: only the availability scope (the shop's home page) makes the
site "down"; every other failure names its part. No client mail shows a check key, an
outcome code, or anything the target sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from incidents.model import Incident
from incidents.outgoing import Audience, MessageKind, OutgoingEmail
from incidents.severity import Severity
from monitor.app import Running, running_monitor
from monitor.config.models import MonitorConfig
from monitor.demo import Fault, ShopFaults, start_shop
from monitor.demo.run import demo_config
from monitor.demo.shop import ShopMode
from tests.client_mail_scan import CODES, client_text_faults
from tests.helpers import Target, eventually

CONTACT = "owner@demo-shop.example"


def client_mails(folder: Path, contact: str) -> list[tuple[str, str]]:
    """(subject, text + HTML) of every mail to `contact` in the file mailer's folder."""
    mails = []
    for path in sorted(folder.glob("*.eml")):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        assert isinstance(message, EmailMessage)
        if contact not in str(message["To"]):
            continue
        bodies = [
            part.get_content()
            for part in message.walk()
            if part.get_content_type() in ("text/plain", "text/html")
        ]
        assert len(bodies) == 2, path.name  # a plain and an HTML part
        mails.append((str(message["Subject"]), "\n".join(bodies)))
    return mails


def assert_clean(mails: list[tuple[str, str]], *, keys: str, target_text: tuple[str, ...]) -> None:
    assert mails
    for subject, bodies in mails:
        for text in (subject, bodies):
            assert not CODES.search(text), (subject, CODES.search(text))
            assert keys not in text, subject
            for sent in target_text:
                assert sent not in text, (subject, sent)


async def _open(running: Running) -> Incident | None:
    [*incidents] = await running.store.list_incidents(open_only=True)
    return incidents[0] if incidents else None


async def _none_open(running: Running) -> bool:
    return not await running.store.list_incidents(open_only=True)


# --- the demo shop ------------------------------------------------------------------------------


@pytest.fixture
async def shop() -> AsyncIterator[tuple[ShopFaults, str]]:
    faults = ShopFaults(slow_seconds=1.3)  # the demo's slow_after is 1 s
    runner, url = await start_shop(faults)
    try:
        yield faults, url
    finally:
        await runner.cleanup()


# (what breaks, severity, the title after "demo-shop.local")
SCENARIOS: list[tuple[dict[str, Any], Severity, str]] = [
    ({"page": "admin"}, Severity.MAJOR, ": Admin panel unreachable (HTTP 500)"),
    (
        {"mode": ShopMode.PAYMENT_500},
        Severity.CRITICAL,
        ": Checkout is failing (the pay step answers with an error, HTTP 500)",
    ),
    (
        {"mode": ShopMode.CART_EMPTIED},
        Severity.CRITICAL,
        ": Checkout is failing (the pay step does not show what it should)",
    ),
    (
        {"mode": ShopMode.CONTACT_DROPS},
        Severity.MAJOR,
        ": Contact form is failing (the send step does not show what it should)",
    ),
    ({"mode": ShopMode.MISSING_IMAGE}, Severity.MODERATE, ": Product page shows a broken image"),
    ({"slow": "home"}, Severity.MAJOR, ": pages load slowly (1."),  # e.g. 1.3 s, target 1 s
    ({"page": "home"}, Severity.CRITICAL, " is down"),
]


async def test_demo_shop_titles_name_the_failing_part_and_down_only_for_the_home_page(
    shop: tuple[ShopFaults, str], tmp_path: Path
) -> None:
    faults, url = shop
    config = demo_config(
        shop_url=url,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/m.db",
        speed=20,  # a probe every 100 ms
        outbox_dir=str(tmp_path / "outbox"),
    )
    async with running_monitor(config, serve=False) as running:
        await eventually(lambda: running.monitor.check_state("demo/shop/checkout"))
        for breaks, severity, title in SCENARIOS:
            if "page" in breaks:
                faults.set(breaks["page"], Fault.ERROR_500)
            elif "slow" in breaks:
                faults.set(breaks["slow"], Fault.SLOW)
            else:
                faults.switch(breaks["mode"])
            incident = await eventually(lambda: _open(running), timeout=15)
            assert incident.title.startswith("demo-shop.local" + title), incident.title
            assert incident.severity is severity, incident.title
            assert ("down" in incident.title) == (title == " is down"), incident.title
            faults.clear()
            await eventually(lambda: _none_open(running), timeout=15)

        outbox = tmp_path / "outbox"
        # Opened and resolved for each of the six the client hears of (Severity 3 opens quietly).
        await eventually(lambda: len(client_mails(outbox, CONTACT)) >= 12, timeout=15)
    mails = client_mails(outbox, CONTACT)
    subjects = [subject for subject, _ in mails]
    opened = [s for s in subjects if "] Severity " in s]
    assert any("Severity 2: demo-shop.local: Admin panel unreachable" in s for s in opened)
    assert any("Severity 2: demo-shop.local: pages load slowly" in s for s in opened)
    assert [s for s in opened if "down" in s] == [
        s for s in opened if s.endswith("Severity 1: demo-shop.local is down")
    ]
    assert len([s for s in opened if "is down" in s]) == 1
    assert_clean(
        mails,
        keys="demo/shop",
        target_text=(
            "Internal Server Error",
            "Something went wrong",
            "payment service did not answer",
        ),
    )


# --- a hostile target ---------------------------------------------------------------------------

HOSTILE_REASON = '<img src="https://evil.example/x.png" onerror=alert(1)> Bcc: x@evil.example'
HOSTILE_BODY = "Call 0800-SCAM now to restore your shop"


async def test_what_a_target_sends_never_reaches_a_client_mail(
    target: tuple[Target, str], tmp_path: Path
) -> None:
    shop, url = target
    outbox = tmp_path / "outbox"
    config = MonitorConfig.model_validate(
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/m.db"},
            "notifications": {"outbox_dir": str(outbox), "poll_interval": "100ms"},
            "oncall": {"emails": ["oncall@agency.example"]},
            "defaults": {"interval": "100ms", "failures_to_open": 2, "successes_to_resolve": 2},
            "clients": [
                {
                    "id": "kiwi",
                    "name": "Kiwi Ltd",
                    "contacts": ["ops@kiwi.example"],
                    "sites": [
                        {
                            "id": "www",
                            "name": "Kiwi",
                            "url": url,
                            "checks": [{"id": "home", "url": "/"}],
                        }
                    ],
                }
            ],
        }
    )
    async with running_monitor(config, serve=False) as running:
        shop.set("/", status=500, reason=HOSTILE_REASON, body=HOSTILE_BODY)
        incident = await eventually(lambda: _open(running))
        assert incident.title == "Kiwi is down"
        shop.set("/", status=200, reason=None, body="Welcome")
        await eventually(lambda: _none_open(running))
        await eventually(lambda: len(client_mails(outbox, "ops@kiwi.example")) >= 2)
        # On-call may read what the target said, escaped: it helps them find the cause.
        oncall = await eventually(lambda: client_mails(outbox, "oncall@agency.example"))
    assert any("&lt;img" in bodies and "Bcc: x@evil.example" in bodies for _, bodies in oncall)
    mails = client_mails(outbox, "ops@kiwi.example")
    assert_clean(
        mails, keys="kiwi/www", target_text=("<img", "evil.example", "Bcc", HOSTILE_BODY, "0800")
    )
    resolved = [bodies for subject, bodies in mails if "Resolved" in subject]
    assert resolved and "Please check that Kiwi works" in resolved[0]


def test_the_suite_wide_scan_flags_codes_ids_and_smuggled_headers_but_not_urls() -> None:
    def client_mail(text: str) -> OutgoingEmail:
        return OutgoingEmail(
            kind=MessageKind.OPENED,
            audience=Audience.CLIENT,
            incident_id=1,
            to=("owner@shop.example",),
            subject="Trail Outfitters: checkout is failing",
            text=text,
            html="<p>ok</p>",
            message_id="<1@monitor.test>",
        )

    fine = "See https://shop.example/en/cart/item since 14:05 (Europe/Berlin)."
    assert client_text_faults(client_mail(fine)) == []
    assert client_text_faults(replace(client_mail(fine), audience=Audience.ONCALL)) == []
    for bad in ("failing (http_5xx)", "Check: acme/shop/home", "Error <img> Bcc: x@y.example"):
        assert client_text_faults(client_mail(bad)), bad

"""A part fails first, then the whole site: the client hears of the site being down once, in
the incident's thread, before the resolution (real loopback site, store, outbox and SMTP)."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

from incidents.model import TimelineKind
from monitor.app import running_monitor
from monitor.config import load_config_text
from tests.helpers import Target, eventually
from tests.monitor_yaml import CHECKOUT_CHECK, CONTACT, HOME_CHECK, shop_monitor_yaml
from tests.smtp_helpers import Inbox, mails, smtpd


def config_yaml(*, url: str, database: str, smtp_port: int, outbox: str) -> str:
    return shop_monitor_yaml(
        database=database,
        url=url,
        checks=HOME_CHECK + CHECKOUT_CHECK,
        smtp_port=smtp_port,
        outbox=outbox,
    )


def client_mails(inbox: Inbox) -> list[EmailMessage]:
    return mails(inbox, to=CONTACT)


def subject(mail: EmailMessage) -> str:
    return " ".join(str(mail["Subject"]).split())  # a long subject arrives folded


async def test_the_client_hears_once_when_a_failing_part_becomes_the_site_down(
    target: tuple[Target, str], database_url: str, tmp_path: Any
) -> None:
    shop, url = target
    inbox = Inbox()
    async with smtpd(inbox) as smtp_port:
        config = load_config_text(
            config_yaml(
                url=url,
                database=database_url,
                smtp_port=smtp_port,
                outbox=str(tmp_path / "outbox"),
            )
        )
        async with running_monitor(config) as running:
            shop.set("/checkout", status=500)
            [opening] = await eventually(lambda: client_mails(inbox), timeout=15)
            [incident] = await running.store.list_incidents(open_only=True)
            ref = f"[INC-{incident.id}]"
            assert subject(opening) == (
                f"{ref} Severity 1: shop.acme.example: Checkout unreachable (HTTP 500)"
            )

            shop.set("/", status=500)  # the whole site fails: as severe, so no escalation
            await eventually(lambda: len(client_mails(inbox)) >= 2, timeout=15)
            told = client_mails(inbox)[1]
            assert subject(told) == f"{ref} Now the whole site: shop.acme.example is down"
            assert told["In-Reply-To"] == opening["Message-ID"]
            assert opening["Message-ID"] in str(told["References"])
            text = told.get_body(("plain",))
            assert text is not None
            body = text.get_content()
            assert "now affects your whole site" in body
            assert "The whole site (shop.acme.example)" in body

            shop.set("/", status=200)
            shop.set("/checkout", status=200)
            await eventually(lambda: len(client_mails(inbox)) >= 3, timeout=15)
            assert incident.id is not None
            kinds = [entry.kind for entry in await running.store.timeline(incident.id)]
            assert kinds.count(TimelineKind.ESCALATED) == 0
    subjects = [subject(m) for m in client_mails(inbox)]
    assert subjects == [
        f"{ref} Severity 1: shop.acme.example: Checkout unreachable (HTTP 500)",
        f"{ref} Now the whole site: shop.acme.example is down",
        f"{ref} Resolved: shop.acme.example is down",
    ]

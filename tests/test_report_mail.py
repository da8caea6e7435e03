"""The monthly report mail: queued on the client's first working day through the outbox,
once, whatever the number of processes or restarts; delivered over SMTP (aiosmtpd) with its
PDF attached; only to clients with `reports: {monthly: true}`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from monitor.app import running_monitor
from monitor.config import load_config, load_config_text
from monitor.config.models import MonitorConfig
from monitor.delivery.mail import SmtpMailer, SmtpSettings
from monitor.metrics import Metrics
from monitor.outbox_worker import OutboxWorker
from monitor.reports import queue_monthly_reports
from monitor.store import Store
from tests.helpers import ShiftedClock, Target, eventually
from tests.smtp_helpers import Inbox, smtpd

BEFORE = datetime(2026, 12, 1, 7, 59, tzinfo=UTC)  # Tue 1 Dec 08:59 in Berlin
DUE = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # 09:00 in Berlin: business hours begin

CONFIG = """\
database: {{url: "{url}"}}
reports: {{monthly: true}}
notifications: {{sender: "Agency Support <support@agency.example>"}}
clients:
  - id: acme
    name: Acme GmbH
    business_hours: {{timezone: Europe/Berlin}}
    contacts: [it@acme.example, boss@acme.example]
    sites:
      - {{id: shop, name: Acme Shop, url: "https://shop.acme.example/", checks: [{{id: home}}]}}
  - id: zeta
    reports: {{monthly: false}}
    business_hours: {{timezone: Europe/Berlin}}
    contacts: [it@zeta.example]
    sites:
      - {{id: web, url: "https://zeta.example/", checks: [{{id: home}}]}}
"""


def config(tmp_path: Path, url: str) -> MonitorConfig:
    path = tmp_path / "monitor.yaml"
    path.write_text(CONFIG.format(url=url))
    return load_config(path)


async def test_the_report_is_queued_once_and_mailed_with_its_pdf(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    settings = config(tmp_path, database_url)
    other = await Store.open(database_url)  # a second monitor process on the same database
    try:
        assert await queue_monthly_reports(store, settings, now=BEFORE) == 0
        assert await queue_monthly_reports(store, settings, now=DUE) == 1
        # The other process, and this one after a restart: already queued, not again.
        assert await queue_monthly_reports(other, settings, now=DUE) == 0
        assert await queue_monthly_reports(store, settings, now=DUE.replace(day=2)) == 0
    finally:
        await other.close()
    assert await store.outbox_counts() == {"pending": 1, "sent": 0, "failed": 0}

    inbox = Inbox()
    async with smtpd(inbox) as port:
        worker = OutboxWorker(
            store=store,
            mailer=SmtpMailer(
                SmtpSettings(
                    host="127.0.0.1",
                    port=port,
                    security="none",
                    username=None,
                    password=None,
                    timeout=5.0,
                    sender="Agency Support <support@agency.example>",
                )
            ),
            webhooks=None,
            clock=ShiftedClock(DUE),
            metrics=Metrics(CollectorRegistry()),
        )
        assert await worker.deliver_due() == 1
        assert await worker.deliver_due() == 0

    mail = inbox.only_message()
    assert mail["To"] == "it@acme.example, boss@acme.example"
    assert mail["Subject"] == "Service report November 2026: Acme GmbH"
    assert mail["Message-ID"] == "<report.acme.2026-11@agency.example>"
    assert mail.get_content_type() == "multipart/mixed"
    body = mail.get_body(preferencelist=("html",))
    assert body is not None and "Acme Shop" in body.get_content()
    text = mail.get_body(preferencelist=("plain",))
    assert text is not None and "The full report is attached as a PDF." in text.get_content()
    (attachment,) = list(mail.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "service-report-2026-11.pdf"
    assert attachment.get_content().startswith(b"%PDF-")


async def test_no_report_for_a_client_without_monthly_reports_or_contacts(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    settings = config(tmp_path, database_url)
    acme, zeta = settings.clients
    # acme without contacts: nobody to send to; zeta has said no.
    quiet = settings.model_copy(
        update={"clients": [acme.model_copy(update={"contacts": []}), zeta]}
    )
    assert await queue_monthly_reports(store, quiet, now=DUE) == 0
    assert await store.outbox_counts() == {"pending": 0, "sent": 0, "failed": 0}


async def test_a_running_monitor_mails_the_report_on_the_first_working_day(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    target = Target()
    server: TestServer = await aiohttp_server(target.app())
    inbox = Inbox()
    async with smtpd(inbox) as smtp_port:
        config = load_config_text(
            f"""
database: {{url: "sqlite+aiosqlite:///{tmp_path}/m.db"}}
server: {{port: 0}}
reports: {{monthly: true}}
notifications:
  sender: "Agency Support <support@agency.example>"
  smtp: {{host: 127.0.0.1, port: {smtp_port}, security: none, timeout: 2s}}
  poll_interval: 100ms
clients:
  - id: acme
    name: Acme GmbH
    business_hours: {{timezone: Europe/Berlin}}
    contacts: [it@acme.example]
    sites:
      - {{id: shop, name: Acme Shop, url: "{str(server.make_url("")).rstrip("/")}",
         checks: [{{id: home, url: /}}]}}
"""
        )
        async with running_monitor(config, clock=ShiftedClock(DUE), serve=False):
            mail = await eventually(lambda: inbox.messages())
    assert [m["Subject"] for m in mail] == ["Service report November 2026: Acme GmbH"]
    (attachment,) = list(mail[0].iter_attachments())
    assert attachment.get_content().startswith(b"%PDF-")


async def test_a_client_whose_report_cannot_be_made_does_not_hold_up_the_others(
    store: Store, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # acme's own report template is broken (an operator's custom template); zeta's is fine.
    templates = tmp_path / "templates"
    (templates / "acme").mkdir(parents=True)
    (templates / "acme" / "report.html.j2").write_text("{{ no_such_value }}")
    settings = config(tmp_path, database_url)
    acme, zeta = settings.clients
    both = settings.model_copy(
        update={
            "notifications": settings.notifications.model_copy(
                update={"templates_dir": str(templates)}
            ),
            "clients": [acme, zeta.model_copy(update={"reports": None})],
        }
    )
    assert await queue_monthly_reports(store, both, now=DUE) == 1
    assert await store.notice_queued("<report.zeta.2026-11@agency.example>")
    assert not await store.notice_queued("<report.acme.2026-11@agency.example>")
    assert "the monthly report 2026-11 of acme could not be made" in caplog.text

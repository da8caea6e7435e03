"""The agency in its mails: logo, colour, signature, Reply-To, template overrides per client
and language, the SLA's update cadence, and the agency's time zone in on-call mails."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from incidents.business_duration import BusinessDuration, Unit
from incidents.messages import Branding
from incidents.outgoing import MessageKind
from incidents.severity import Severity
from monitor.app import mailer
from monitor.config.models import MonitorConfig
from monitor.delivery.mail import build_email
from tests.test_messages import CLIENT, CTX, INCIDENT, email

BRAND = Branding(
    name="Northwind Web",
    logo_url="https://northwind.example/logo.png",
    accent_color="#aa3300",
    signature="Kind regards,\nNorthwind Web <script>x</script>",
)
FOUR_HOURS = {Severity.CRITICAL: BusinessDuration(4, Unit.HOURS), Severity.LOW: None}


def test_client_mails_carry_the_logo_colour_and_signature() -> None:
    mail = email(MessageKind.OPENED, ctx=replace(CTX, branding=BRAND))
    assert '<img src="https://northwind.example/logo.png" alt="Northwind Web"' in mail.html
    assert "color:#aa3300" in mail.html
    assert "Kind regards,<br>\nNorthwind Web &lt;script&gt;x&lt;/script&gt;" in mail.html
    assert "<script>" not in mail.html
    assert "working on it.\n\nKind regards,\nNorthwind Web <script>x</script>\n\n-- \n" in mail.text
    plain = email(MessageKind.OPENED)
    assert "<img" not in plain.html and "Northwind" not in plain.text
    named = email(MessageKind.OPENED, ctx=replace(CTX, branding=Branding(name="Northwind Web")))
    assert "working on it.\n\nNorthwind Web\n" in named.text
    oncall = email(MessageKind.PAGE, ctx=replace(CTX, branding=BRAND))
    assert "<img" not in oncall.html and "Kind regards" not in oncall.text


def test_client_mails_say_the_update_cadence_of_their_calendar() -> None:
    client = replace(CLIENT, update_every=FOUR_HOURS)
    business = email(MessageKind.OPENED, client=client)
    assert "While it is open, you hear from us at least every 4 business hours." in business.text
    assert "at least every 4 business hours" in business.html
    around = email(MessageKind.OPENED, client=client, incident=replace(INCIDENT, calendar="24x7"))
    assert "at least every 4 hours." in around.text
    german = email(MessageKind.OPENED, client=replace(client, language="de"))
    assert "mindestens alle 4 Geschäftsstunden von uns." in german.text
    low = email(
        MessageKind.OPENED, client=client, incident=replace(INCIDENT, severity=Severity.LOW)
    )
    assert "you hear from us at least" not in low.text


def test_on_call_mails_show_the_agency_time_beside_the_client_time() -> None:
    ctx = replace(CTX, agency_timezone="America/New_York")
    page = email(MessageKind.PAGE, ctx=ctx)
    # 09:00 UTC: 10:00 in Berlin (the client), 04:00 in New York (the agency).
    assert "Opened:         Mon 4 Mar 2024 10:00 CET (04:00 EST agency)" in page.text
    assert "with the agency's (America/New_York) in brackets" in page.text
    assert "(04:00 EST agency)" in page.html
    client = email(MessageKind.OPENED, ctx=ctx)
    assert "agency)" not in client.text


def test_templates_from_the_configured_folder_replace_the_shipped_ones(tmp_path: Path) -> None:
    (tmp_path / "acme" / "de").mkdir(parents=True)
    (tmp_path / "client.txt.j2").write_text("everyone: {{ v.title }}\n")
    (tmp_path / "acme" / "client.txt.j2").write_text("acme: {{ v.title }}\n")
    (tmp_path / "acme" / "de" / "client.txt.j2").write_text("acme de: {{ v.title }}\n")
    ctx = replace(CTX, templates_dir=tmp_path)
    assert email(MessageKind.OPENED, ctx=ctx).text == "acme: shop.acme.example is down\n"
    german = email(MessageKind.OPENED, ctx=ctx, client=replace(CLIENT, language="de"))
    assert german.text == "acme de: shop.acme.example ist ausgefallen\n"
    other = email(MessageKind.OPENED, ctx=ctx, client=replace(CLIENT, id="kiwi"))
    assert other.text == "everyone: shop.acme.example is down\n"
    # What the folder lacks comes from the package.
    assert "<!DOCTYPE html>" in other.html


def test_reply_to_is_set_on_client_mails_only() -> None:
    at = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
    sender = "Agency Support <support@agency.example>"
    client = build_email(
        email(MessageKind.OPENED), sender=sender, date=at, reply_to="help@a.example"
    )
    assert client["Reply-To"] == "help@a.example"
    oncall = build_email(email(MessageKind.PAGE), sender=sender, date=at, reply_to="help@a.example")
    assert oncall["Reply-To"] is None


async def test_the_configured_reply_to_reaches_the_written_mail(tmp_path: Path) -> None:
    config = MonitorConfig.model_validate(
        {
            "agency": {"reply_to": "help@agency.example", "timezone": "Europe/London"},
            "notifications": {"outbox_dir": str(tmp_path)},
            "clients": [
                {
                    "id": "a",
                    "sites": [{"id": "s", "url": "https://s.example", "checks": [{"id": "h"}]}],
                }
            ],
        }
    )
    await mailer(config).send(email(MessageKind.OPENED), date=datetime(2024, 3, 4, tzinfo=UTC))
    [written] = tmp_path.glob("*.eml")
    assert b"Reply-To: help@agency.example\r\n" in written.read_bytes()


@pytest.mark.parametrize(
    ("agency", "problem"),
    [
        ({"accent_color": "red"}, "accent_color"),
        ({"logo_url": "http://agency.example/logo.png"}, "https://"),
        ({"timezone": "Mars/Base"}, "unknown time zone"),
        ({"reply_to": "not an address"}, "email address"),
        ({"report_logo": "https://agency.example/logo.png"}, "nothing is fetched"),
        ({"report_logo": "/nonexistent/logo.png"}, "cannot read /nonexistent/logo.png"),
        ({"report_logo": "logo.bmp"}, "must be an image file ending in"),
        ({"report_logo": "data:text/html;base64,PGI+"}, "data:image/png;base64"),
        ({"report_logo": "data:image/png;base64,%%%"}, "data:image/png;base64"),
    ],
)
def test_bad_agency_settings_are_refused(agency: dict[str, str], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        MonitorConfig.model_validate(
            {
                "agency": agency,
                "clients": [
                    {
                        "id": "a",
                        "sites": [{"id": "s", "url": "https://s.example", "checks": [{"id": "h"}]}],
                    }
                ],
            }
        )

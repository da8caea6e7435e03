"""Composing incident emails and webhook bodies: pure values, checked without sending."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from checks.result import Evidence, Outcome
from incidents import i18n
from incidents.messages import (
    AUDIENCE,
    ClientInfo,
    MessageContext,
    compose_email,
    compose_webhook,
    sanitize_header_text,
    thread_root,
)
from incidents.model import Headline, Incident, IncidentStatus, TimelineEntry, TimelineKind
from incidents.outgoing import Audience, MessageKind, OutgoingEmail
from incidents.severity import Severity

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)  # Monday 10:00 in Berlin (CET)

CLIENT = ClientInfo(
    id="acme",
    name="Acme GmbH",
    contacts=("ops@acme.example", "ceo@acme.example"),
    timezone="Europe/Berlin",
)
CTX = MessageContext(
    sender_domain="agency.example",
    oncall=("oncall@agency.example",),
    dashboard_url="https://monitor.agency.example/api/",
)
HEADLINE = Headline(
    site_label="shop.acme.example",
    check="acme/shop/home",
    part="Home",
    availability=True,
    outcome=Outcome.HTTP_5XX,
    status=500,
)
INCIDENT = Incident(
    id=42,
    client="acme",
    site="acme/shop",
    title="shop.acme.example is down",
    headline=HEADLINE,
    severity=Severity.CRITICAL,
    status=IncidentStatus.OPEN,
    opened_at=T0,
    failing_checks=frozenset({"acme/shop/home"}),
    checks=frozenset({"acme/shop/home"}),
    calendar="business",
    response_aim_at=T0 + timedelta(hours=2),
    response_due_at=T0 + timedelta(hours=4),
)
# Responded at 10:30 Berlin; the next client update is due at 14:30 Berlin the same day.
RESPONDED = replace(
    INCIDENT,
    responded_at=T0 + timedelta(minutes=30),
    acknowledged_by="alice",
    last_update_at=T0 + timedelta(minutes=30),
    next_update_due_at=T0 + timedelta(hours=4, minutes=30),
)
RESOLVED = replace(
    RESPONDED,
    status=IncidentStatus.RESOLVED,
    resolved_at=T0 + timedelta(hours=2),
    failing_checks=frozenset(),
)


def evidence(**changes: Any) -> dict[str, Any]:
    base = Evidence(
        url="https://shop.acme.example/",
        status=500,
        error="HTTP 500 Internal Server Error",
        body_excerpt="<html><h1>Internal Server Error</h1></html>",
        headers={"Content-Type": "text/html"},
        timings={"total": 0.12},
    )
    return replace(base, **changes).to_dict()


CAUSE = TimelineEntry(
    at=T0,
    kind=TimelineKind.OPENED,
    message="acme/shop/home failed: http_5xx (HTTP 500) after 3 consecutive failures",
    check="acme/shop/home",
    outcome=Outcome.HTTP_5XX,
    severity=Severity.CRITICAL,
    evidence=evidence(),
)

# Each kind with an incident in the state that kind is sent in.
STATE = {
    MessageKind.OPENED: INCIDENT,
    MessageKind.ESCALATED: INCIDENT,
    MessageKind.SITE_DOWN: INCIDENT,
    MessageKind.UPDATE: RESPONDED,
    MessageKind.RESOLVED: RESOLVED,
    MessageKind.PAGE: INCIDENT,
    MessageKind.NOTIFY: replace(INCIDENT, severity=Severity.MAJOR),
    MessageKind.UPDATE_REMINDER: RESPONDED,
    MessageKind.UPDATE_OVERDUE: RESPONDED,
    MessageKind.RESPONSE_BREACHED: INCIDENT,
}


def email(
    kind: MessageKind,
    *,
    incident: Incident | None = None,
    client: ClientInfo = CLIENT,
    ctx: MessageContext = CTX,
    now: datetime = T0 + timedelta(hours=4, minutes=10),
    cause: TimelineEntry | None = CAUSE,
    update_text: str | None = None,
    note: str | None = None,
    first_in_thread: bool = True,
    message_id: str | None = None,
) -> OutgoingEmail:
    if kind is MessageKind.UPDATE and update_text is None:
        update_text = "We found the cause and are deploying a fix."
    return compose_email(
        kind,
        incident=incident or STATE[kind],
        client=client,
        ctx=ctx,
        now=now,
        cause=cause,
        update_text=update_text,
        note=note,
        first_in_thread=first_in_thread,
        message_id=message_id,
    )


# --- subjects -------------------------------------------------------------------------------

SUBJECTS = {
    MessageKind.OPENED: "[INC-42] Severity 1: shop.acme.example is down",
    MessageKind.ESCALATED: "[INC-42] Escalated to Severity 1: shop.acme.example is down",
    MessageKind.SITE_DOWN: "[INC-42] Now the whole site: shop.acme.example is down",
    MessageKind.UPDATE: "[INC-42] Update: shop.acme.example is down",
    MessageKind.RESOLVED: "[INC-42] Resolved: shop.acme.example is down",
    MessageKind.PAGE: "[INC-42] PAGE Severity 1: shop.acme.example is down",
    MessageKind.NOTIFY: "[INC-42] New Severity 2: shop.acme.example is down",
    MessageKind.UPDATE_REMINDER: (
        "[INC-42] Reminder: client update due 14:30 CET (shop.acme.example is down)"
    ),
    MessageKind.UPDATE_OVERDUE: (
        "[INC-42] OVERDUE: client update was due 14:30 CET (shop.acme.example is down)"
    ),
    MessageKind.RESPONSE_BREACHED: (
        "[INC-42] BREACHED: response was due 14:00 CET (shop.acme.example is down)"
    ),
}


@pytest.mark.parametrize("kind", list(MessageKind))
def test_subject_of_each_kind(kind: MessageKind) -> None:
    assert email(kind).subject == SUBJECTS[kind]


def test_a_due_time_on_another_day_names_the_day() -> None:
    # A reminder sent the evening before: "14:30" alone would read as today.
    mail = email(MessageKind.UPDATE_REMINDER, now=T0 - timedelta(hours=12))
    assert mail.subject == (
        "[INC-42] Reminder: client update due Mon 4 Mar 2024 14:30 CET (shop.acme.example is down)"
    )


def test_a_reminder_without_an_update_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="next_update_due_at"):
        email(MessageKind.UPDATE_REMINDER, incident=INCIDENT)


def test_a_long_title_is_capped_and_the_reference_stays() -> None:
    long = replace(INCIDENT, title="x" * 500, headline=replace(HEADLINE, site_label="x" * 500))
    mail = email(MessageKind.OPENED, incident=long)
    assert mail.subject.startswith("[INC-42] Severity 1: xxx")
    assert mail.subject.endswith("…")
    assert len(mail.subject) <= 200


# --- threading and recipients ----------------------------------------------------------------


def test_thread_root_per_incident_and_audience() -> None:
    assert (
        thread_root(42, Audience.CLIENT, "agency.example", opened_at=T0)
        == "<incident-42.20240304T090000Z.client@agency.example>"
    )
    assert (
        thread_root(42, Audience.ONCALL, "agency.example", opened_at=T0)
        == "<incident-42.20240304T090000Z.oncall@agency.example>"
    )
    with pytest.raises(ValueError, match="host name"):
        thread_root(42, Audience.CLIENT, "agency.example>\r\nBcc: x", opened_at=T0)
    with pytest.raises(ValueError, match="naive"):
        thread_root(42, Audience.CLIENT, "agency.example", opened_at=datetime(2024, 3, 4, 9))


def test_thread_root_names_the_opening_time_in_utc() -> None:
    berlin = T0.astimezone(ZoneInfo("Europe/Berlin"))  # 10:00 CET, the same instant
    assert thread_root(42, Audience.CLIENT, "agency.example", opened_at=berlin) == (
        "<incident-42.20240304T090000Z.client@agency.example>"
    )


def test_a_reused_incident_number_starts_a_new_thread() -> None:
    # Numbers restart at 1 with a new database: the new INC-42's mails must not reuse the
    # old one's Message-IDs (Gmail drops such a mail, others merge the two threads).
    later = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    for audience in Audience:
        before = thread_root(42, audience, "agency.example", opened_at=T0)
        after = thread_root(42, audience, "agency.example", opened_at=later)
        assert before != after
        assert after == f"<incident-42.20261123T100000Z.{audience.value}@agency.example>"
    for root_kind, later_kind in (
        (MessageKind.OPENED, MessageKind.UPDATE),
        (MessageKind.PAGE, MessageKind.UPDATE_REMINDER),
    ):
        old = email(root_kind, first_in_thread=True)
        reopened = replace(STATE[root_kind], opened_at=later)
        new = email(root_kind, incident=reopened, first_in_thread=True)
        assert new.message_id != old.message_id
        reply = email(
            later_kind, incident=replace(STATE[later_kind], opened_at=later), first_in_thread=False
        )
        assert reply.in_reply_to == new.message_id
        assert reply.message_id.startswith("<incident-42.20261123T100000Z.")


def test_the_first_mail_of_a_thread_is_its_root() -> None:
    mail = email(MessageKind.OPENED, first_in_thread=True)
    assert mail.message_id == "<incident-42.20240304T090000Z.client@agency.example>"
    assert mail.in_reply_to is None
    assert mail.references == ()


def test_later_mails_reply_to_the_root_with_their_own_id() -> None:
    first = email(MessageKind.UPDATE, first_in_thread=False)
    second = email(MessageKind.UPDATE, first_in_thread=False)
    root = "<incident-42.20240304T090000Z.client@agency.example>"
    for mail in (first, second):
        assert mail.in_reply_to == root
        assert mail.references == (root,)
        assert re.fullmatch(
            r"<incident-42\.20240304T090000Z\.client\.update\.[0-9a-f]{32}@agency\.example>",
            mail.message_id,
        )
    assert first.message_id != second.message_id


def test_a_given_message_id_is_kept_so_a_recomposed_mail_is_the_same_mail() -> None:
    stored = (
        "<incident-42.20240304T090000Z.client.update.0123456789abcdef0123456789abcdef"
        "@agency.example>"
    )
    again = email(MessageKind.UPDATE, first_in_thread=False, message_id=stored)
    assert again.message_id == stored
    assert again == email(MessageKind.UPDATE, first_in_thread=False, message_id=stored)


def test_malformed_or_conflicting_message_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="message_id"):
        email(MessageKind.UPDATE, first_in_thread=False, message_id="<a b@x>\r\nBcc: y")
    with pytest.raises(ValueError, match="root id"):
        email(MessageKind.OPENED, first_in_thread=True, message_id="<other@agency.example>")


def test_on_call_threads_apart_from_the_client() -> None:
    page = email(MessageKind.PAGE, first_in_thread=True)
    reminder = email(MessageKind.UPDATE_REMINDER, first_in_thread=False)
    assert page.message_id == "<incident-42.20240304T090000Z.oncall@agency.example>"
    assert reminder.in_reply_to == page.message_id


@pytest.mark.parametrize("kind", list(MessageKind))
def test_recipients_follow_the_audience(kind: MessageKind) -> None:
    mail = email(kind)
    assert mail.audience is AUDIENCE[kind]
    expected = CLIENT.contacts if mail.audience is Audience.CLIENT else CTX.oncall
    assert mail.to == expected
    assert mail.kind is kind
    assert mail.incident_id == 42


def test_client_kinds_and_on_call_kinds() -> None:
    client_kinds = {k for k, a in AUDIENCE.items() if a is Audience.CLIENT}
    assert client_kinds == {
        MessageKind.OPENED,
        MessageKind.ESCALATED,
        MessageKind.SITE_DOWN,
        MessageKind.UPDATE,
        MessageKind.RESOLVED,
    }
    assert set(AUDIENCE) == set(MessageKind)


def test_no_recipients_or_a_suspicious_address_is_refused() -> None:
    with pytest.raises(ValueError, match="client acme: no email addresses"):
        email(MessageKind.OPENED, client=replace(CLIENT, contacts=()))
    with pytest.raises(ValueError, match="on-call: no email addresses"):
        email(MessageKind.PAGE, ctx=replace(CTX, oncall=()))
    with pytest.raises(ValueError, match="not a plain email address"):
        email(MessageKind.OPENED, client=replace(CLIENT, contacts=("a@b.example\r\nBcc: c@d",)))


def test_an_unsaved_incident_or_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="no id yet"):
        email(MessageKind.OPENED, incident=replace(INCIDENT, id=None))
    with pytest.raises(ValueError, match="client acme: unknown time zone 'Europe/Berlln'"):
        email(MessageKind.OPENED, client=replace(CLIENT, timezone="Europe/Berlln"))


# --- times in the client's zone ----------------------------------------------------------------


def test_times_are_in_the_client_zone_across_a_dst_change() -> None:
    # Opened Friday 29 Mar 2024 16:00 in Berlin (CET); Europe springs forward on Sunday
    # 31 Mar, so the response due Tuesday 12:00 is CEST.
    opened = datetime(2024, 3, 29, 15, 0, tzinfo=UTC)
    incident = replace(
        INCIDENT, opened_at=opened, response_due_at=datetime(2024, 4, 2, 10, 0, tzinfo=UTC)
    )
    cause = replace(CAUSE, at=opened)
    mail = email(MessageKind.OPENED, incident=incident, cause=cause, now=opened)
    for body in (mail.text, mail.html):
        assert "Fri 29 Mar 2024 16:00 CET" in body
        assert "We will respond by Tue 2 Apr 2024 12:00 CEST." in body
        assert "Europe/Berlin" in body
    # The same instants for a client in New York (DST began there on 10 Mar).
    ny = email(
        MessageKind.OPENED,
        incident=incident,
        cause=cause,
        now=opened,
        client=replace(CLIENT, timezone="America/New_York"),
    )
    assert "Fri 29 Mar 2024 11:00 EDT" in ny.text
    assert "Tue 2 Apr 2024 06:00 EDT" in ny.text


def test_a_zone_without_letters_shows_its_offset() -> None:
    mail = email(MessageKind.OPENED, client=replace(CLIENT, timezone="America/Sao_Paulo"))
    assert "Mon 4 Mar 2024 06:00 UTC-03:00" in mail.text


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        email(MessageKind.OPENED, now=datetime(2024, 3, 4, 12, 0))


# --- header injection --------------------------------------------------------------------------

HOSTILE = "shop.acme.example\r\nBcc: evil@example.com\u2028Bcc: evil2@example.com\u0085X: y"


def _as_wire(mail: OutgoingEmail) -> EmailMessage:
    """Build the message a mailer would, serialise it as SMTP would, and parse it back."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "Support <support@agency.example>"
    message["To"] = ", ".join(mail.to)
    message["Subject"] = mail.subject
    message["Message-ID"] = mail.message_id
    if mail.in_reply_to:
        message["In-Reply-To"] = mail.in_reply_to
        message["References"] = " ".join(mail.references)
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    parsed = BytesParser(policy=policy.default).parsebytes(message.as_bytes())
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.mark.parametrize("kind", list(MessageKind))
@pytest.mark.parametrize("first", [True, False])
def test_hostile_titles_and_errors_never_reach_a_header(kind: MessageKind, first: bool) -> None:
    hostile = replace(HEADLINE, site_label=HOSTILE, part=HOSTILE)
    incident = replace(STATE[kind], title=HOSTILE, headline=hostile)
    cause = replace(CAUSE, evidence=evidence(error=HOSTILE, step=HOSTILE))
    mail = email(kind, incident=incident, cause=cause, first_in_thread=first)
    assert not re.search("[\r\n\u2028\u2029\u0085]", mail.subject)
    parsed = _as_wire(mail)
    expected = {"From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type"}
    if not first:
        expected |= {"In-Reply-To", "References"}
    assert set(parsed.keys()) == expected
    assert parsed["Subject"] == mail.subject
    assert parsed.get_all("Bcc") is None
    assert parsed["To"] == ", ".join(mail.to)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a\r\nBcc: x@y", "a Bcc: x@y"),
        ("a\u2028b\u2029c\u0085d", "a b c d"),
        ("tab\there  and\x00nul\x1b[31m", "tab here and nul [31m"),
        ("bidi \u202eevil\u202c", "bidi evil"),
        ("  padded  ", "padded"),
        ("lone \udcff surrogate", "lone surrogate"),
        ("Grüße über alles", "Grüße über alles"),
    ],
)
def test_sanitize_header_text(raw: str, clean: str) -> None:
    assert sanitize_header_text(raw) == clean


def test_sanitize_header_text_caps_with_an_ellipsis() -> None:
    assert sanitize_header_text("abcdefghij", max_len=5) == "abcd…"
    assert sanitize_header_text("abcde", max_len=5) == "abcde"


# --- bodies ------------------------------------------------------------------------------------


def test_html_escapes_evidence_titles_and_update_text() -> None:
    script = "<script>alert(1)</script>"
    cause = replace(CAUSE, evidence=evidence(error=script, step=script, body_excerpt=script))
    incident = replace(
        RESPONDED, title=f"shop {script}", headline=replace(HEADLINE, site_label=f"shop {script}")
    )
    for kind in (MessageKind.UPDATE, MessageKind.PAGE):
        mail = email(kind, incident=incident, cause=cause, update_text=f"Fixed {script} & done")
        assert "<script>" not in mail.html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    update = email(MessageKind.UPDATE, incident=incident, cause=cause, update_text=script)
    assert script in update.text  # the text body shows the operator's words as written


def test_update_carries_the_operator_text_verbatim() -> None:
    text = (
        "We found the cause: a full disk.\n\n  - cleaned up logs\n  - added an alert\n"
        "Thanks & sorry!"
    )
    mail = email(MessageKind.UPDATE, update_text=text)
    assert text in mail.text
    assert "Thanks &amp; sorry!" in mail.html
    assert "a full disk.<br>" in mail.html
    assert "Our next update will come by Mon 4 Mar 2024 14:30 CET." in mail.text


def test_an_update_needs_text() -> None:
    with pytest.raises(ValueError, match="update_text"):
        email(MessageKind.UPDATE, update_text="  ")


def test_resolved_asks_the_client_to_confirm() -> None:
    mail = email(MessageKind.RESOLVED)
    for body in (mail.text, mail.html):
        assert "incident INC-42 is resolved" in body
        assert "Please check that shop.acme.example works for you" in body
        assert "to confirm" in body
        assert "When you will hear from us" not in body  # no response or update clock any more


def test_resolved_says_how_long_it_lasted_and_carries_the_operator_note() -> None:
    # The first failure came 4 minutes before the incident opened (three probes apart).
    incident = replace(RESOLVED, failing_since=T0 - timedelta(minutes=4))
    mail = email(MessageKind.RESOLVED, incident=incident, note="Restarted PHP-FPM.\nAll good.")
    lasted = "It lasted 2 h 4 min, from Mon 4 Mar 2024 09:56 CET to Mon 4 Mar 2024 12:00 CET."
    for body in (mail.text, mail.html):
        assert lasted in body
        assert "A note from our team:" in body
        assert "Restarted PHP-FPM." in body
        # No severity boilerplate when it is over: "severe data loss" alarms a client for nothing.
        assert "data loss" not in body
        assert "What Severity" not in body
    assert "    Restarted PHP-FPM.\n    All good." in mail.text
    assert "A note from our team" not in email(MessageKind.RESOLVED).text


@pytest.mark.parametrize(
    ("language", "lasted"),
    [
        ("en", "It lasted less than a minute,"),
        ("de", "Die Störung dauerte weniger als eine Minute,"),
    ],
)
def test_an_incident_under_a_minute_lasted_less_than_a_minute_not_0_min(
    language: str, lasted: str
) -> None:
    incident = replace(RESOLVED, failing_since=T0, resolved_at=T0 + timedelta(seconds=59))
    mail = email(MessageKind.RESOLVED, incident=incident, client=replace(CLIENT, language=language))
    for body in (mail.text, mail.html):
        assert lasted in body
        assert "0 min" not in body and "0 Min." not in body
    # A minute on, the minutes count again.
    later = replace(incident, resolved_at=T0 + timedelta(seconds=60))
    assert "1 min" in email(MessageKind.RESOLVED, incident=later).text


@pytest.mark.parametrize(
    ("severity", "meaning"),
    [
        (
            Severity.CRITICAL,
            "Complete service outage or severe data loss. Business operations halted.",
        ),
        (Severity.MAJOR, "Major feature broken or serious degradation, but workarounds exist."),
        (
            Severity.MODERATE,
            "Non-critical bug or visible issue that does not block core business function.",
        ),
        (Severity.LOW, "Minor cosmetic issues, small feature improvements, or general questions."),
    ],
)
def test_the_severity_meaning_from_the_service_page(severity: Severity, meaning: str) -> None:
    mail = email(MessageKind.OPENED, incident=replace(INCIDENT, severity=severity))
    assert f"What Severity {int(severity)} ({severity.name.title()}) means" in mail.text
    assert meaning in mail.text
    assert meaning in mail.html


SERVICE_PAGE_CRITICAL = "Complete service outage or severe data loss. Business operations halted."
CHECKOUT_HEADLINE = replace(
    HEADLINE, check="acme/shop/checkout", part="Checkout", availability=False, step="pay"
)
CHECKOUT_FAILING = replace(
    INCIDENT,
    title="shop.acme.example: Checkout is failing (the pay step answers with an error, HTTP 500)",
    headline=CHECKOUT_HEADLINE,
    failing_checks=frozenset({"acme/shop/checkout"}),
    checks=frozenset({"acme/shop/checkout"}),
)


def test_severity_1_of_a_part_says_why_it_is_critical_not_that_the_service_is_out() -> None:
    mail = email(MessageKind.OPENED, incident=CHECKOUT_FAILING)
    because = (
        "We rate it Severity 1 (Critical) because Checkout is a critical part of your site: it "
        "goes ahead of all other work, and our on-call team was alerted at once, day or night."
    )
    for body in (mail.text, mail.html):
        assert SERVICE_PAGE_CRITICAL not in body
        assert because in " ".join(body.split())
    german = email(
        MessageKind.OPENED, incident=CHECKOUT_FAILING, client=replace(CLIENT, language="de")
    )
    weil = (
        "Wir stufen sie als Schweregrad 1 (kritisch) ein, weil Checkout ein kritischer Teil Ihrer "
        "Website ist: Die Störung geht aller anderen Arbeit vor"
    )
    for body in (german.text, german.html):
        assert weil in " ".join(body.split())
        assert "Complete service outage" not in body


def test_severity_1_of_the_whole_site_slow_says_it_affects_the_whole_site() -> None:
    slow = replace(HEADLINE, outcome=Outcome.SLOW, status=200, latency=7.2, slow_after=5.0)
    incident = replace(INCIDENT, title="shop.acme.example: pages load slowly", headline=slow)
    text = " ".join(email(MessageKind.OPENED, incident=incident).text.split())
    assert "We rate it Severity 1 (Critical) because it affects your whole site:" in text
    assert SERVICE_PAGE_CRITICAL not in text


def test_severity_1_of_the_site_down_keeps_the_service_pages_words_in_both_languages() -> None:
    assert SERVICE_PAGE_CRITICAL in email(MessageKind.OPENED).text
    german = email(MessageKind.OPENED, client=replace(CLIENT, language="de"))
    translated = i18n.translations("de").gettext(SERVICE_PAGE_CRITICAL)
    assert translated != SERVICE_PAGE_CRITICAL
    assert translated in " ".join(german.text.split())
    assert "critical part of your site" not in email(MessageKind.OPENED).text


def test_next_step_wording_follows_the_clocks() -> None:
    fresh = email(MessageKind.OPENED)
    assert "We will respond by Mon 4 Mar 2024 14:00 CET." in fresh.text
    escalated = email(MessageKind.ESCALATED, incident=RESPONDED, first_in_thread=False)
    assert "Our next update will come by Mon 4 Mar 2024 14:30 CET." in escalated.text
    assert "incident INC-42 has become more serious" in escalated.text
    no_cadence = replace(RESPONDED, severity=Severity.LOW, next_update_due_at=None)
    low = email(MessageKind.UPDATE, incident=no_cadence)
    assert "We will write again when the work is complete." in low.text


def test_escalated_as_the_first_client_mail_introduces_the_incident() -> None:
    mail = email(MessageKind.ESCALATED, first_in_thread=True)
    assert "detected a problem on Mon 4 Mar 2024 10:00 CET and opened incident" in mail.text


def test_what_we_saw_is_plain_for_the_client_and_technical_for_on_call() -> None:
    cause = replace(
        CAUSE,
        outcome=Outcome.SLOW,
        evidence=evidence(status=200, error=None, timings={"total": 7.25}, step="place-order"),
    )
    mail = email(MessageKind.OPENED, cause=cause)
    for line in (
        "  Part: Home",
        "  Page: https://shop.acme.example/",
        "  What we saw: At the place order step: It answered, but too slowly.",
        "  Response time: 7.2 s",
        "  Failing since: Mon 4 Mar 2024 10:00 CET",
    ):
        assert line in mail.text
    for cell in ("7.2 s", "Home", "At the place order step: It answered, but too slowly."):
        assert f'<td style="padding:2px 0">{cell}</td>' in mail.html
    for body in (mail.text, mail.html):
        assert "acme/shop/home" not in body and "(slow)" not in body
    oncall = email(MessageKind.PAGE, cause=cause)
    for line in (
        "Check:          acme/shop/home",
        "Result:         the page answered, but too slowly (slow)",
        "HTTP status:    200",
        "Failing step:   place-order",
    ):
        assert line in oncall.text


def test_a_mail_without_a_cause_still_says_since_when() -> None:
    mail = email(MessageKind.UPDATE, cause=None)
    since = "Failing since: Mon 4 Mar 2024 10:00 CET"
    assert f"What is affected\n  The whole site (shop.acme.example)\n  {since}" in mail.text


def test_control_characters_from_evidence_leave_the_text_body() -> None:
    dirty = "bad\x1b[31m\x00 thing\u2028more"
    cause = replace(CAUSE, evidence=evidence(error=dirty, body_excerpt=f"line1\r\n{dirty}"))
    mail = email(MessageKind.PAGE, cause=cause)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]", mail.text)
    assert "Error:          bad [31m thing more" in mail.text
    assert "    line1\n    bad[31m thing\n    more" in mail.text


def test_secrets_of_the_check_never_reach_a_message() -> None:
    cause = replace(
        CAUSE,
        evidence=evidence(
            url="https://user:hunter2@shop.acme.example/health?token=SECRET",
            headers={"Set-Cookie": "session=COOKIE", "Authorization": "Bearer BEARER"},
        ),
    )
    mails = [email(kind, cause=cause) for kind in MessageKind]
    hook = compose_webhook(MessageKind.PAGE, incident=INCIDENT, client=CLIENT, cause=cause)
    blobs = [m.text + m.html for m in mails] + [json.dumps(hook.body)]
    for blob in blobs:
        for secret in ("hunter2", "user:", "SECRET", "COOKIE", "BEARER", "Set-Cookie"):
            assert secret not in blob
    assert "https://shop.acme.example/health?…" in mails[0].text


def test_the_body_excerpt_goes_to_on_call_only_and_short() -> None:
    cause = replace(CAUSE, evidence=evidence(body_excerpt="E" * 2000))
    page = email(MessageKind.PAGE, cause=cause)
    opened = email(MessageKind.OPENED, cause=cause)
    assert "E" * 299 + "…" in page.text
    assert "E" * 300 not in page.text
    assert "EEEE" not in opened.text


def test_on_call_mails_carry_client_link_and_clocks() -> None:
    page = email(MessageKind.PAGE, now=T0 + timedelta(minutes=1))
    for body in (page.text, page.html):
        assert "Acme GmbH (acme)" in body
        assert "https://monitor.agency.example/api/incidents/42" in body
        assert "Mon 4 Mar 2024 14:00 CET, in 3 h 59 min (aim Mon 4 Mar 2024 12:00 CET)" in body
        assert "client&#39;s business hours" in body or "client's business hours" in body
    overdue = email(MessageKind.UPDATE_OVERDUE, now=T0 + timedelta(hours=5))
    assert "was due Mon 4 Mar 2024 14:30 CET (30 min ago)" in overdue.text
    assert "Responded:      Mon 4 Mar 2024 10:30 CET by alice" in overdue.text
    reminder = email(MessageKind.UPDATE_REMINDER, now=T0 + timedelta(hours=4))
    assert "is due Mon 4 Mar 2024 14:30 CET (in 30 min)" in reminder.text
    no_link = email(MessageKind.PAGE, ctx=replace(CTX, dashboard_url=None))
    assert "Link:" not in no_link.text


def test_text_and_html_say_the_same_things() -> None:
    for kind in MessageKind:
        mail = email(kind)
        for line in mail.text.splitlines():
            # Every fact on a "Label: value" line of the text body is in the HTML too.
            match = re.fullmatch(r"  ([A-Z][A-Za-z ]+):\s+(.+)", line)
            if match:
                value = match.group(2).replace("'", "&#39;")
                assert match.group(1) in mail.html, (kind, line)
                assert value in mail.html, (kind, line)


# --- golden ------------------------------------------------------------------------------------

GOLDEN_OPENED = """\
Hello Acme GmbH,

our monitoring has detected a problem and opened incident INC-42:

    shop.acme.example is down

We rate it Severity 1 (Critical). You do not need to report it: we are on it.

What is affected
  The whole site (shop.acme.example)
  Part: Home
  Page: https://shop.acme.example/
  What we saw: The server answered with an error.
  Checked at: Mon 4 Mar 2024 10:00 CET
  Failing since: Mon 4 Mar 2024 10:00 CET

What Severity 1 (Critical) means
  Complete service outage or severe data loss. Business operations halted.

What we are doing
  Our team has been alerted and is working on it.

When you will hear from us
  We will respond by Mon 4 Mar 2024 14:00 CET.

Reply to this email to reach the team working on it.

-- 
INC-42: shop.acme.example is down
Times are in Europe/Berlin. Sent Mon 4 Mar 2024 10:00 CET.
"""


def test_golden_opened_email_text() -> None:
    # Wording changes must be deliberate: update this text with them.
    mail = email(MessageKind.OPENED, now=T0)
    assert mail.subject == "[INC-42] Severity 1: shop.acme.example is down"
    assert mail.text == GOLDEN_OPENED


# --- webhook -----------------------------------------------------------------------------------


def test_webhook_body() -> None:
    hook = compose_webhook(MessageKind.PAGE, incident=INCIDENT, client=CLIENT, cause=CAUSE)
    assert hook.kind is MessageKind.PAGE
    assert hook.incident_id == 42
    assert hook.target == "oncall"
    assert json.loads(json.dumps(hook.body)) == hook.body
    assert hook.body == {
        "event": "page",
        "incident_id": 42,
        "incident_ref": "INC-42",
        "client": "acme",
        "client_name": "Acme GmbH",
        "site": "acme/shop",
        "severity": 1,
        "title": "shop.acme.example is down",
        "status": "open",
        "opened_at": "2024-03-04T09:00:00Z",
        "response_due_at": "2024-03-04T13:00:00Z",
        "next_update_due_at": None,
        "resolved_at": None,
        "check": "acme/shop/home",
        "url": "https://shop.acme.example/",
        "outcome": "http_5xx",
        "http_status": 500,
        "error": "HTTP 500 Internal Server Error",
        "text": "[INC-42] PAGE Severity 1: shop.acme.example is down (Acme GmbH)",
    }


def test_webhook_idempotency_key_is_unique_per_notification() -> None:
    keys = {
        compose_webhook(
            kind, incident=INCIDENT, client=CLIENT, cause=None, target="pager"
        ).idempotency_key
        for kind in (MessageKind.PAGE, MessageKind.PAGE, MessageKind.RESPONSE_BREACHED)
    }
    assert len(keys) == 3
    for key in keys:
        assert re.fullmatch(r"incident-42\.(page|response_breached)\.[0-9a-f]{32}", key)


def test_webhook_without_a_cause_and_with_a_hostile_title() -> None:
    incident = replace(INCIDENT, title=HOSTILE)
    hook = compose_webhook(MessageKind.NOTIFY, incident=incident, client=CLIENT, cause=None)
    assert hook.body["check"] is None and hook.body["url"] is None and hook.body["outcome"] is None
    assert "\n" not in hook.body["title"] and "\u2028" not in hook.body["text"]
    json.dumps(hook.body)

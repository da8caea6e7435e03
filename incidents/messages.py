"""Composing incident notifications: subject, text, HTML and thread headers, or a webhook body.

Pure: no clock (callers pass `now`), no I/O beyond loading the templates shipped in
`incidents/templates/`. Sending is the monitor's job; these values go to its outbox.

Threading: each incident has one thread per audience. The first mail of a thread carries the
root Message-ID `<incident-42.20261123T100000Z.client@agency.example>`; every later one has
its own id and points at the root with In-Reply-To and References. The ids name the
incident's opening time (UTC) as well as its number, because numbers start again at 1 with
a new database and a reused Message-ID is dropped or merged by mail programs. Subjects keep
one scheme for the whole thread: `[INC-42] <what happened>: <title>`.
"""

from __future__ import annotations

import gettext
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from incidents import i18n
from incidents import message_text as mt
from incidents.business_duration import BusinessDuration
from incidents.message_text import sanitize_header_text
from incidents.message_view import Branding, build_view
from incidents.model import Incident, TimelineEntry
from incidents.outgoing import Audience, MessageKind, OutgoingEmail, OutgoingWebhook
from incidents.severity import Severity
from incidents.wording import N_, Gettext

__all__ = [
    "AUDIENCE",
    "Branding",
    "ClientInfo",
    "MessageContext",
    "compose_email",
    "compose_webhook",
    "page_message_id",
    "sanitize_header_text",
    "thread_root",
]

AUDIENCE: dict[MessageKind, Audience] = {
    MessageKind.OPENED: Audience.CLIENT,
    MessageKind.ESCALATED: Audience.CLIENT,
    MessageKind.SITE_DOWN: Audience.CLIENT,
    MessageKind.UPDATE: Audience.CLIENT,
    MessageKind.RESOLVED: Audience.CLIENT,
    MessageKind.PAGE: Audience.ONCALL,
    MessageKind.NOTIFY: Audience.ONCALL,
    MessageKind.UPDATE_REMINDER: Audience.ONCALL,
    MessageKind.UPDATE_OVERDUE: Audience.ONCALL,
    MessageKind.RESPONSE_BREACHED: Audience.ONCALL,
}

SUBJECT_CHARS = 200

# A hostname: labels of letters, digits and hyphens. It ends up inside Message-IDs, so it
# must not carry anything a header could trip over.
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_MESSAGE_ID = re.compile(r"^<[!#-;=?A-~]+@[A-Za-z0-9.-]+>$")  # printable ASCII, no <>@ inside
_ADDRESS = re.compile(r"^[^\s<>@\x00-\x1f\x7f]+@[^\s<>@\x00-\x1f\x7f]+$")


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """The client as its mails need it. `contacts` are validated config email addresses."""

    id: str
    name: str
    contacts: tuple[str, ...]
    timezone: str  # IANA, e.g. "Europe/Berlin": every time in its mails is shown in it
    language: str = i18n.SOURCE_LANGUAGE  # its mails' language: "en", "de", or a catalog's
    # Display names by check key ("acme/shop/cart" -> "Cart") and site key: mails name
    # things as people do, never by key.
    names: Mapping[str, str] = field(default_factory=dict)
    # The update cadence per severity (the client's SLA), said in its mails; None: no cadence.
    update_every: Mapping[Severity, BusinessDuration | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MessageContext:
    sender_domain: str  # the From address's domain; Message-IDs end in it
    oncall: tuple[str, ...]  # on-call email addresses
    # Base URL of the incident API/UI; a mail links `<dashboard_url>/incidents/<id>`.
    dashboard_url: str | None = None
    locale_dir: Path | None = None  # catalogs beside the shipped ones (`<lang>/LC_MESSAGES`)
    templates_dir: Path | None = None  # templates replacing the shipped ones (see _loader)
    branding: Branding = Branding()
    agency_timezone: str | None = None  # on-call mails show times in it beside the client's


def thread_root(incident_id: int, audience: Audience, domain: str, *, opened_at: datetime) -> str:
    """The Message-ID of the first mail in an incident's thread for `audience`.

    `opened_at` (aware) is the incident's: with it the id stays unique when incident numbers
    restart (a new database), e.g. `<incident-42.20261123T100000Z.client@agency.example>`.
    """
    return f"<{_thread_local(incident_id, opened_at=opened_at)}.{audience.value}@{_domain(domain)}>"


def page_message_id(
    incident: Incident, *, severity: int, page: int, person: str, domain: str
) -> str:
    """The Message-ID of one escalation page to one person (or `oncall`, the team): the same
    whenever it is composed, so the outbox keeps one copy of each page. A reply to the
    incident's on-call thread."""
    incident_id = _incident_id(incident)
    slug = re.sub(r"[^A-Za-z0-9_.-]", "-", person)[:64]
    local = _thread_local(incident_id, opened_at=incident.opened_at)
    return f"<{local}.oncall.page.s{severity}.p{page}.{slug}@{_domain(domain)}>"


def compose_email(
    kind: MessageKind,
    *,
    incident: Incident,
    client: ClientInfo,
    ctx: MessageContext,
    now: datetime,
    cause: TimelineEntry | None = None,
    update_text: str | None = None,
    note: str | None = None,
    first_in_thread: bool,
    message_id: str | None = None,
) -> OutgoingEmail:
    """One email about `incident`, to the client's contacts or to on-call (by `kind`).

    `cause` is the timeline entry whose evidence the mail shows (the opening or escalating
    check result; for RESOLVED the last recovery, if any). `update_text` is an operator's
    update (UPDATE only), quoted verbatim. `first_in_thread` makes this mail the thread's
    root; otherwise it gets `message_id` (pass the stored one to re-compose identically) or
    a fresh one. Raises ValueError for an unsaved incident, no recipients, a missing clock
    the kind needs, or malformed ids and domains.
    """
    incident_id = _incident_id(incident)
    audience = AUDIENCE[kind]
    recipients = client.contacts if audience is Audience.CLIENT else ctx.oncall
    to = _recipients(
        recipients, who=f"client {client.id}" if audience is Audience.CLIENT else "on-call"
    )
    if kind is MessageKind.UPDATE and not (update_text and update_text.strip()):
        raise ValueError(f"{incident.ref}: an update mail needs the operator's update_text")
    root = thread_root(incident_id, audience, ctx.sender_domain, opened_at=incident.opened_at)
    if first_in_thread:
        if message_id is not None and message_id != root:
            raise ValueError(f"the first mail of a thread has the root id {root}, not {message_id}")
        own_id = root
    else:
        own_id = _message_id(
            message_id,
            thread=_thread_local(incident_id, opened_at=incident.opened_at),
            audience=audience,
            kind=kind,
            domain=ctx.sender_domain,
        )
    tz = mt.zone(client.timezone, owner=f"client {client.id}")
    language = client.language if audience is Audience.CLIENT else i18n.SOURCE_LANGUAGE
    catalog = i18n.translations(language, ctx.locale_dir)
    agency_tz = (
        mt.zone(ctx.agency_timezone, owner="agency")
        if audience is Audience.ONCALL and ctx.agency_timezone
        else None
    )
    view = build_view(
        kind=kind.value,
        incident=incident,
        client_id=client.id,
        client_name=client.name,
        names=client.names,
        tz=tz,
        timezone=client.timezone,
        now=now,
        cause=cause,
        update_text=update_text if kind is MessageKind.UPDATE else None,
        # RESOLVED: the operator's note; PAGE: the escalation level it is paged at.
        note=note if kind in (MessageKind.RESOLVED, MessageKind.PAGE) else None,
        first_in_thread=first_in_thread,
        with_excerpt=audience is Audience.ONCALL,
        link=_link(ctx.dashboard_url, incident_id),
        due=_due(kind, incident),
        language=language,
        catalog=catalog,
        branding=ctx.branding,
        update_every=client.update_every.get(incident.severity),
        agency_tz=agency_tz,
    )
    subject = _subject(kind, incident=incident, title=view.title, now=now, tz=tz, _=catalog.gettext)
    template = "client" if audience is Audience.CLIENT else "oncall"
    env = template_environment(
        language,
        locale_dir=None if ctx.locale_dir is None else str(ctx.locale_dir),
        templates_dir=None if ctx.templates_dir is None else str(ctx.templates_dir),
        # Only a templates folder can differ by client: one environment per client otherwise
        # would compile the same templates once per client.
        client_id=client.id if ctx.templates_dir is not None else "",
    )
    text = env.get_template(f"{template}.txt.j2").render(v=view, subject=subject)
    html = env.get_template(f"{template}.html.j2").render(v=view, subject=subject)
    return OutgoingEmail(
        kind=kind,
        audience=audience,
        incident_id=incident_id,
        to=to,
        subject=subject,
        text=text,
        html=html,
        message_id=own_id,
        in_reply_to=None if first_in_thread else root,
        references=() if first_in_thread else (root,),
    )


def compose_webhook(
    kind: MessageKind,
    *,
    incident: Incident,
    client: ClientInfo,
    cause: TimelineEntry | None,
    target: str = "oncall",
) -> OutgoingWebhook:
    """A JSON body for an on-call webhook; times in UTC (`...Z`), `text` one line for chats.

    The idempotency key is fresh per composition: the outbox stores it, so every retry of
    this notification sends the same key and a receiver can drop duplicates.
    """
    incident_id = _incident_id(incident)
    evidence: dict[str, Any] = (cause.evidence if cause is not None else None) or {}
    url = evidence.get("url")
    status = evidence.get("status")
    error = evidence.get("error")
    title = sanitize_header_text(incident.title)
    event = kind.value.replace("_", " ").upper()  # "UPDATE OVERDUE"
    body: dict[str, Any] = {
        "event": kind.value,
        "incident_id": incident_id,
        "incident_ref": incident.ref,
        "client": client.id,
        "client_name": sanitize_header_text(client.name),
        "site": incident.site,
        "severity": int(incident.severity),
        "title": title,
        "status": incident.status.value,
        "opened_at": mt.utc_iso(incident.opened_at),
        "response_due_at": mt.utc_iso(incident.response_due_at),
        "next_update_due_at": mt.utc_iso(incident.next_update_due_at),
        "resolved_at": mt.utc_iso(incident.resolved_at),
        "check": cause.check if cause is not None else None,
        "url": mt.display_url(url) if isinstance(url, str) and url else None,
        "outcome": str(cause.outcome) if cause is not None and cause.outcome else None,
        "http_status": status if isinstance(status, int) and not isinstance(status, bool) else None,
        "error": sanitize_header_text(error, max_len=300) if isinstance(error, str) else None,
        "text": sanitize_header_text(
            f"[{incident.ref}] {event} Severity {int(incident.severity)}: {title} ({client.name})",
            max_len=SUBJECT_CHARS,
        ),
    }
    return OutgoingWebhook(
        kind=kind,
        incident_id=incident_id,
        target=target,
        body=body,
        idempotency_key=f"incident-{incident_id}.{kind.value}.{uuid.uuid4().hex}",
    )


_CLIENT_SUBJECT = {
    MessageKind.OPENED: N_("%(ref)s Severity %(severity)s: %(title)s"),
    MessageKind.ESCALATED: N_("%(ref)s Escalated to Severity %(severity)s: %(title)s"),
    MessageKind.SITE_DOWN: N_("%(ref)s Now the whole site: %(title)s"),
    MessageKind.UPDATE: N_("%(ref)s Update: %(title)s"),
    MessageKind.RESOLVED: N_("%(ref)s Resolved: %(title)s"),
}


def _subject(
    kind: MessageKind,
    *,
    incident: Incident,
    title: str,
    now: datetime,
    tz: ZoneInfo,
    _: Gettext,
) -> str:
    ref, sev = f"[{incident.ref}]", int(incident.severity)
    values = {"ref": ref, "severity": sev, "title": title}

    def due(at: datetime | None, what: str) -> str:
        if at is None:
            raise ValueError(f"{incident.ref}: a {kind.value} mail needs {what}")
        return mt.short_local_time(at, tz, now=now)

    client_line = _CLIENT_SUBJECT.get(kind)
    if client_line is not None:  # in the client's language
        return sanitize_header_text(_(client_line) % values, max_len=SUBJECT_CHARS)
    match kind:
        case MessageKind.PAGE:
            line = f"{ref} PAGE Severity {sev}: {title}"
        case MessageKind.NOTIFY:
            line = f"{ref} New Severity {sev}: {title}"
        case MessageKind.UPDATE_REMINDER:
            at = due(incident.next_update_due_at, "next_update_due_at")
            line = f"{ref} Reminder: client update due {at} ({title})"
        case MessageKind.UPDATE_OVERDUE:
            at = due(incident.next_update_due_at, "next_update_due_at")
            line = f"{ref} OVERDUE: client update was due {at} ({title})"
        case MessageKind.RESPONSE_BREACHED:
            at = due(incident.response_due_at, "response_due_at")
            line = f"{ref} BREACHED: response was due {at} ({title})"
    return sanitize_header_text(line, max_len=SUBJECT_CHARS)


def _due(kind: MessageKind, incident: Incident) -> datetime | None:
    """The clock an on-call mail is about, for its "in 30 min" / "10 min ago" note."""
    if kind in (MessageKind.UPDATE_REMINDER, MessageKind.UPDATE_OVERDUE):
        return incident.next_update_due_at
    if kind in (MessageKind.RESPONSE_BREACHED, MessageKind.PAGE, MessageKind.NOTIFY):
        return incident.response_due_at
    return None


def _incident_id(incident: Incident) -> int:
    if incident.id is None:
        raise ValueError("the incident has no id yet: compose its messages after storing it")
    return incident.id


def _domain(domain: str) -> str:
    if not _DOMAIN.match(domain):
        raise ValueError(
            f"sender domain {domain!r} is not a host name (e.g. agency.example): take it from "
            "the configured From address"
        )
    return domain


def _recipients(addresses: tuple[str, ...], *, who: str) -> tuple[str, ...]:
    # Addresses come from validated config; this is the last line of defence for headers.
    if not addresses:
        raise ValueError(f"{who}: no email addresses to send to (skip the mail instead)")
    for address in addresses:
        if not _ADDRESS.match(address):
            raise ValueError(f"{who}: {address!r} is not a plain email address")
    return addresses


def _thread_local(incident_id: int, *, opened_at: datetime) -> str:
    """`incident-42.20261123T100000Z`: what every Message-ID of the incident starts with."""
    if opened_at.tzinfo is None or opened_at.utcoffset() is None:
        raise ValueError(f"opened_at {opened_at.isoformat()} is naive: pass an aware datetime")
    stamp = opened_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"incident-{incident_id}.{stamp}"


def _message_id(
    given: str | None, *, thread: str, audience: Audience, kind: MessageKind, domain: str
) -> str:
    if given is None:
        local = f"{thread}.{audience.value}.{kind.value}.{uuid.uuid4().hex}"
        return f"<{local}@{_domain(domain)}>"
    if not _MESSAGE_ID.match(given):
        raise ValueError(f"message_id {given!r} must look like <local@domain> (printable ASCII)")
    return given


def _link(base: str | None, incident_id: int) -> str | None:
    if not base:
        return None
    return sanitize_header_text(f"{base.rstrip('/')}/incidents/{incident_id}", max_len=500)


def _loader(templates_dir: str | None, *, client_id: str, language: str) -> jinja2.BaseLoader:
    """The shipped templates, behind the configured folder's: per client and language first,
    then per client, per language, and the folder itself."""
    # PackageLoader finds the templates inside the installed package (wheel or editable).
    shipped = jinja2.PackageLoader("incidents", "templates")
    if templates_dir is None:
        return shipped
    base = Path(templates_dir)
    folders = [base / client_id / language, base / client_id, base / language, base]
    return jinja2.ChoiceLoader([jinja2.FileSystemLoader([str(f) for f in folders]), shipped])


@cache
def template_environment(
    language: str, *, locale_dir: str | None, templates_dir: str | None, client_id: str
) -> jinja2.Environment:
    """The templates of one client's mails and reports, theirs before the shipped ones, with
    gettext in `language`; one per argument set (cached)."""
    # Autoescape is on for *.html.j2 only, so the text bodies show characters as they are.
    env = jinja2.Environment(
        loader=_loader(templates_dir, client_id=client_id, language=language),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2",), default_for_string=False, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    catalog: gettext.NullTranslations = i18n.translations(
        language, Path(locale_dir) if locale_dir else None
    )
    # newstyle: `_("... %(name)s", name=value)` formats (and, in HTML, escapes) the values.
    env.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]
    return env

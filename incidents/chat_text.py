"""Chat and pager messages for on-call: a title and a few short lines, composed apart from
sending (the outbox stores them; Apprise delivers them).

For the agency's own team, in English like the on-call mails: they may name the failing check
and its outcome, never a secret (a check's URL is shown without userinfo and query) and
nothing a target sent beyond its HTTP status.

    [INC-42] PAGE Severity 1: Trail Outfitters is down
    Severity 1 (Critical) · Acme Outfitters · Trail Outfitters
    Failed: Home (http_5xx, HTTP 500) at https://shop.acme.example/
    Response due 11:00 CET · next client update due 15:00 CET
    https://monitor.agency.example/incidents/42
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from incidents import message_text as mt
from incidents.messages import ClientInfo
from incidents.model import Incident, TimelineEntry
from incidents.outgoing import MessageKind, OutgoingChat

TITLE_CHARS = 150
LINE_CHARS = 300

_HEADS = {
    MessageKind.PAGE: "PAGE",
    MessageKind.NOTIFY: "New",
    MessageKind.ESCALATED: "Escalated",
    MessageKind.UPDATE_REMINDER: "Client update due soon",
    MessageKind.UPDATE_OVERDUE: "Client update overdue",
    MessageKind.RESPONSE_BREACHED: "Response overdue",
    MessageKind.RESOLVED: "Resolved",
}


def compose_chat(
    kind: MessageKind,
    *,
    incident: Incident,
    client: ClientInfo,
    cause: TimelineEntry | None,
    now: datetime,
    channels: Iterable[str],
    agency_timezone: str | None = None,
    dashboard_url: str | None = None,
) -> list[OutgoingChat]:
    """One message per channel in `channels` (the same text), about `incident` (stored).

    `cause` is the entry whose check result explains the change (None: say no more than the
    title). Times are shown in the agency's zone (UTC when it has none), and short when they
    fall today. Each message gets its own idempotency key, kept by the outbox.
    """
    if incident.id is None:
        raise ValueError("a chat message names its incident: store the incident first")
    title, body = chat_text(
        kind,
        incident=incident,
        client=client,
        cause=cause,
        now=now,
        agency_timezone=agency_timezone,
        dashboard_url=dashboard_url,
    )
    return [
        OutgoingChat(
            kind=kind,
            incident_id=incident.id,
            channel=channel,
            title=title,
            body=body,
            idempotency_key=f"chat-{incident.id}.{kind.value}.{channel}.{uuid.uuid4().hex}",
        )
        for channel in channels
    ]


def chat_text(
    kind: MessageKind,
    *,
    incident: Incident,
    client: ClientInfo,
    cause: TimelineEntry | None,
    now: datetime,
    agency_timezone: str | None = None,
    dashboard_url: str | None = None,
) -> tuple[str, str]:
    """(title, body) of the chat message `compose_chat` sends."""
    tz = mt.zone(agency_timezone or "UTC")
    severity = int(incident.severity)
    head = _HEADS.get(kind, kind.value.replace("_", " ").capitalize())
    title = mt.sanitize_header_text(
        f"[{incident.ref}] {head} Severity {severity}: {incident.title}", max_len=TITLE_CHARS
    )
    site = client.names.get(incident.site, incident.site.rsplit("/", 1)[-1])
    lines = [f"{incident.severity.label} · {client.name} · {site}"]
    failed = _what_failed(cause, client)
    if failed:
        lines.append(failed)
    if incident.is_open:
        lines.append(_due_line(incident, tz=tz, now=now))
    elif incident.resolved_at is not None:
        lines.append(f"Resolved {mt.short_local_time(incident.resolved_at, tz, now=now)}")
    if dashboard_url:
        lines.append(f"{dashboard_url.rstrip('/')}/incidents/{incident.id}")
    body = "\n".join(mt.sanitize_header_text(line, max_len=LINE_CHARS) for line in lines)
    return title, body


def _what_failed(cause: TimelineEntry | None, client: ClientInfo) -> str | None:
    if cause is None or cause.check is None:
        return None
    part = client.names.get(cause.check, cause.check.rsplit("/", 1)[-1])
    evidence = cause.evidence or {}
    detail = [str(cause.outcome)] if cause.outcome is not None else []
    status = evidence.get("status")
    if isinstance(status, int) and not isinstance(status, bool):
        detail.append(f"HTTP {status}")
    line = f"Failed: {part}" + (f" ({', '.join(detail)})" if detail else "")
    url = evidence.get("url")
    if isinstance(url, str) and url:
        line += f" at {mt.display_url(url)}"
    return line


def _due_line(incident: Incident, *, tz: ZoneInfo, now: datetime) -> str:
    parts: list[str] = []
    if incident.responded_at is None and incident.response_due_at is not None:
        parts.append(f"Response due {mt.short_local_time(incident.response_due_at, tz, now=now)}")
    if incident.next_update_due_at is not None:
        due = mt.short_local_time(incident.next_update_due_at, tz, now=now)
        parts.append(f"next client update due {due}")
    if incident.acknowledged_by:
        parts.append(f"acknowledged by {incident.acknowledged_by}")
    if not parts:
        return f"Open since {mt.short_local_time(incident.opened_at, tz, now=now)}"
    text = " · ".join(parts)
    return text[0].upper() + text[1:]

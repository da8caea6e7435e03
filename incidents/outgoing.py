"""Notifications an incident change causes, as plain values ready for the outbox.

The engine and the SLA clocks decide *that* something must be said; `incidents.messages`
composes *what* (subject, text, HTML, thread headers). The monitor writes these values to its
outbox in the same transaction as the incident change, and a worker delivers them later.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Audience(enum.StrEnum):
    CLIENT = "client"  # the client's contacts: their own thread per incident
    ONCALL = "oncall"  # the agency's on-call team


class MessageKind(enum.StrEnum):
    # to the client
    OPENED = "opened"
    ESCALATED = "escalated"
    SITE_DOWN = "site_down"  # a part failed first; now the whole site is down (same severity)
    UPDATE = "update"  # an operator's update
    RESOLVED = "resolved"  # asks the client to confirm
    # to on-call
    PAGE = "page"  # Severity 1: at once, day or night, every channel
    NOTIFY = "notify"  # Severity 2+: in the client's business hours
    UPDATE_REMINDER = "update_reminder"  # a client update falls due soon
    UPDATE_OVERDUE = "update_overdue"
    RESPONSE_BREACHED = "response_breached"


class NoticeKind(enum.StrEnum):
    """Mails that are not about one incident (their outbox rows have no incident): to on-call
    about the monitor itself (see incidents.connectivity), and to a client its monthly service
    report."""

    CONNECTIVITY_LOST = "connectivity_lost"  # every canary failed: failures are not counted
    CONNECTIVITY_RESTORED = "connectivity_restored"
    MASS_FAILURE = "mass_failure"  # many sites started failing at once: client mails held
    # To a client, not on-call: the monthly service report (incidents.report), with its PDF.
    MONTHLY_REPORT = "monthly_report"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached to an email, e.g. the monthly report's PDF."""

    filename: str  # plain ASCII, e.g. "service-report-2026-11.pdf"
    content_type: str  # "application/pdf"
    data: bytes


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """One email, fully composed. `message_id` is stable: a retry sends the same one.

    `incident_id` is None for a notice about the monitor itself (a `NoticeKind`).
    `not_before` holds the mail back until then (a mass failure's hold, see
    incidents.connectivity); the outbox makes it the row's first attempt time."""

    kind: MessageKind | NoticeKind
    audience: Audience
    incident_id: int | None
    to: tuple[str, ...]
    subject: str  # one line, no CR/LF: composition strips them
    text: str
    html: str
    message_id: str  # "<...@domain>"
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    not_before: datetime | None = None
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class OutgoingWebhook:
    """A JSON POST to a configured on-call webhook. The URL and any auth headers come from
    the configuration at delivery time (by `target` name), never from the stored row, so no
    secret is written to the database."""

    kind: MessageKind | NoticeKind
    incident_id: int | None  # None for a notice about the monitor itself
    target: str  # name of the webhook in the configuration, e.g. "oncall"
    body: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str = ""  # stable per notification; sent as a header


@dataclass(frozen=True, slots=True)
class OutgoingChat:
    """A short message to a named chat or pager channel (`channels:`, delivered by Apprise).
    As for a webhook, the channel's URL (which holds its token) comes from the configuration
    at delivery time by `channel` name, never from the stored row."""

    kind: MessageKind | NoticeKind
    incident_id: int | None  # None for a notice about the monitor itself
    channel: str  # name of the channel in the configuration, e.g. "team-chat"
    title: str  # one line
    body: str  # a few short lines
    idempotency_key: str  # stable per notification: the outbox dedupes on it


Outgoing = OutgoingEmail | OutgoingWebhook | OutgoingChat

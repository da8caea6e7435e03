"""The mails on-call gets about the monitor itself (see incidents.connectivity): pure
functions from a guard's event to an `OutgoingEmail` with no incident.

Each Message-ID is derived from its episode (when the connectivity was lost, when the mass
failure was detected), so queueing the same notice again, after a restart say, is refused by
the outbox's unique key instead of paging twice; the "restored" note replies to its "lost"
page. Nothing a target sent appears here: only canary names, site ids and times.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from incidents.connectivity import ConnectivityLost, ConnectivityRestored, MassFailure
from incidents.message_text import sanitize_header_text, span
from incidents.messages import MessageContext
from incidents.outgoing import Audience, NoticeKind, OutgoingChat, OutgoingEmail, OutgoingWebhook

_STAMP = "%Y%m%dT%H%M%S%fZ"
# A "lost" page's Message-ID, or its webhook's or a chat's idempotency key (see as_webhook,
# as_chat; channel names hold no dot).
_LOST_ID = re.compile(r"^(?:<|webhook\.|chat\.[^.]+\.)connectivity-lost\.(\d{8}T\d{12}Z)@")
# A mass-failure mail names this many sites at most; the rest are counted.
MAX_SITES_LISTED = 50


def lost_message_id(since: datetime, *, domain: str) -> str:
    return f"<connectivity-lost.{_stamp(since)}@{domain}>"


def episode_since(key: str) -> datetime | None:
    """When the episode of a "lost" page began, read back from its Message-ID or its
    webhook's idempotency key; None for any other key."""
    match = _LOST_ID.match(key)
    if match is None:
        return None
    return datetime.strptime(match.group(1), _STAMP).replace(tzinfo=UTC)


def connectivity_lost(event: ConnectivityLost, *, ctx: MessageContext) -> OutgoingEmail:
    since = _utc(event.since)
    canaries = ", ".join(event.canaries)
    subject = f"PAGE: the monitor lost connectivity (no canary reachable since {since})"
    text = (
        f"Every canary of the monitor has failed since {since}: {canaries}.\n\n"
        "The monitor cannot tell a site that is down from its own lost connection now, so\n"
        "failures of client sites are not counted: no incident opens and no client is\n"
        "mailed until a canary answers again. Check the monitor's network (uplink, DNS,\n"
        "firewall). You will get one more mail when connectivity is back.\n"
    )
    return _email(
        NoticeKind.CONNECTIVITY_LOST,
        subject=subject,
        text=text,
        message_id=lost_message_id(event.since, domain=ctx.sender_domain),
        ctx=ctx,
    )


def connectivity_restored(event: ConnectivityRestored, *, ctx: MessageContext) -> OutgoingEmail:
    lost_id = lost_message_id(event.since, domain=ctx.sender_domain)
    subject = f"Resolved: the monitor's connectivity is back ({_utc(event.at)})"
    text = (
        f"Canary {event.canary} answered at {_utc(event.at)}, after "
        f"{_span(event.at - event.since)} without connectivity (since {_utc(event.since)}).\n\n"
        "Failures of client sites count again from now on.\n"
    )
    return _email(
        NoticeKind.CONNECTIVITY_RESTORED,
        subject=subject,
        text=text,
        message_id=f"<connectivity-restored.{_stamp(event.since)}@{ctx.sender_domain}>",
        ctx=ctx,
        in_reply_to=lost_id,
    )


def mass_failure(event: MassFailure, *, ctx: MessageContext) -> OutgoingEmail:
    count = len(event.sites)
    listed = event.sites[:MAX_SITES_LISTED]
    more = f"\n  ... and {count - len(listed)} more" if count > len(listed) else ""
    subject = (
        f"Is it us? {count} of {event.total_sites} sites started failing within "
        f"{_span(event.window)}: client mails held until {_utc(event.hold_until)}"
    )
    text = (
        f"{count} of {event.total_sites} sites started failing within {_span(event.window)}, "
        f"detected at {_utc(event.detected_at)}:\n"
        + "".join(f"  {site}\n" for site in listed)
        + more
        + "\n\nSo many at once may be the monitor's own network rather than the sites. "
        f"Mails to clients about these incidents are held until {_utc(event.hold_until)} "
        f"({_span(event.hold_until - event.detected_at)}); please check the monitor's "
        "connectivity now. If the sites are really down, the clients are mailed when the "
        "hold ends.\n"
    )
    return _email(
        NoticeKind.MASS_FAILURE,
        subject=subject,
        text=text,
        message_id=f"<mass-failure.{_stamp(event.detected_at)}@{ctx.sender_domain}>",
        ctx=ctx,
    )


def as_webhook(email: OutgoingEmail, *, target: str) -> OutgoingWebhook:
    """The same notice for an on-call webhook (a pager): its idempotency key is the mail's
    Message-ID, so it is as stable per episode as the mail. (The mail itself is only sent
    when on-call has addresses: `to` is empty otherwise.)"""
    body: dict[str, Any] = {
        "event": email.kind.value,
        "incident_id": None,
        "text": email.subject,
        "details": email.text,
    }
    return OutgoingWebhook(
        kind=email.kind,
        incident_id=None,
        target=target,
        body=body,
        idempotency_key=f"webhook.{email.message_id.strip('<>')}",
    )


def as_chat(email: OutgoingEmail, *, channel: str) -> OutgoingChat:
    """The same notice for a chat channel: the subject, then the mail's first lines; keyed
    by the mail's Message-ID, so as stable per episode as the mail."""
    lines = [line for line in email.text.splitlines() if line.strip()][:_CHAT_LINES]
    return OutgoingChat(
        kind=email.kind,
        incident_id=None,
        channel=channel,
        title=email.subject,
        body="\n".join(lines)[:_CHAT_CHARS],
        idempotency_key=f"chat.{channel}.{email.message_id.strip('<>')}",
    )


_CHAT_LINES = 4
_CHAT_CHARS = 600


def _email(
    kind: NoticeKind,
    *,
    subject: str,
    text: str,
    message_id: str,
    ctx: MessageContext,
    in_reply_to: str | None = None,
) -> OutgoingEmail:
    paragraphs = "".join(
        f"<p>{html.escape(block).replace(chr(10), '<br>')}</p>"
        for block in text.strip().split("\n\n")
    )
    return OutgoingEmail(
        kind=kind,
        audience=Audience.ONCALL,
        incident_id=None,
        to=ctx.oncall,
        subject=sanitize_header_text(f"[monitor] {subject}"),
        text=text,
        html=f"<html><body>{paragraphs}</body></html>",
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=(in_reply_to,) if in_reply_to else (),
    )


def _span(delta: timedelta) -> str:
    # message_text.span rounds to minutes; a window or an outage may be shorter.
    if delta < timedelta(minutes=1):
        return f"{round(delta.total_seconds(), 1):g} s"
    return span(delta)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime(_STAMP)


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

"""What a notification template sees: plain, already-safe strings built from an incident.

Templates only lay these out. Every string that came from a site or an operator is cleaned
here (control characters gone, lengths capped); HTML escaping is left to the HTML templates'
autoescape, so the text and HTML bodies show the same characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from checks.result import Outcome
from incidents import message_text as mt
from incidents.model import Incident, TimelineEntry
from incidents.severity import Severity

# The service-level page's own words for each severity: the client reads what was promised.
SEVERITY_MEANING = {
    Severity.CRITICAL: "Complete service outage or severe data loss. Business operations halted.",
    Severity.MAJOR: "Major feature broken or serious degradation, but workarounds exist.",
    Severity.MODERATE: (
        "Non-critical bug or visible issue that does not block core business function."
    ),
    Severity.LOW: "Minor cosmetic issues, small feature improvements, or general questions.",
}

# What each outcome means to someone who does not read probe codes.
OUTCOME_TEXT = {
    Outcome.OK: "the page answered as expected",
    Outcome.SLOW: "the page answered, but too slowly",
    Outcome.HTTP_5XX: "the server answered with an error",
    Outcome.UNEXPECTED_STATUS: "the server answered with an unexpected status",
    Outcome.CONTENT_MISMATCH: "the page did not show what it should",
    Outcome.TIMEOUT: "no complete answer in time",
    Outcome.CONNECTION_ERROR: "no connection to the server",
    Outcome.TLS_ERROR: "the secure connection (TLS certificate) failed",
    Outcome.TOO_LARGE: "the answer was too large or redirected too often",
    Outcome.REDIRECT_REFUSED: "the site redirected to an internal address",
}

ERROR_CHARS = 300
EXCERPT_CHARS = 300
UPDATE_CHARS = 20_000  # an operator's update: verbatim, but not a novel
TITLE_CHARS = 120


@dataclass(frozen=True, slots=True)
class SeenView:
    """One check result from the incident's timeline, as a mail shows it."""

    at: str
    check: str | None
    url: str | None
    host: str | None
    outcome: str | None  # the code, e.g. "http_5xx"
    outcome_text: str | None  # in words
    http_status: int | None
    latency: str | None
    step: str | None
    error: str | None
    excerpt: str | None  # on-call mails only: the first characters of the response body


@dataclass(frozen=True, slots=True)
class MessageView:
    kind: str
    first_in_thread: bool
    ref: str
    title: str
    site: str
    site_name: str  # the failing page's host when known, else the site key
    severity: int
    severity_label: str
    severity_meaning: str
    client_id: str
    client_name: str
    is_open: bool
    calendar: str | None
    timezone: str
    now: str
    opened_at: str
    resolved_at: str | None
    response_aim_at: str | None
    response_due_at: str | None
    responded_at: str | None
    acknowledged_by: str | None
    last_update_at: str | None
    next_update_due_at: str | None
    failing_checks: tuple[str, ...]
    seen: SeenView | None
    update_text: str | None
    link: str | None
    due_note: str | None  # on-call reminders: "in 30 min" / "45 min ago"


def build_view(
    *,
    kind: str,
    incident: Incident,
    client_id: str,
    client_name: str,
    tz: ZoneInfo,
    timezone: str,
    now: datetime,
    cause: TimelineEntry | None,
    update_text: str | None,
    first_in_thread: bool,
    with_excerpt: bool,
    link: str | None,
    due: datetime | None,
) -> MessageView:
    def when(at: datetime | None) -> str | None:
        return mt.local_time(at, tz) if at is not None else None

    seen = _seen(cause, tz=tz, with_excerpt=with_excerpt) if cause is not None else None
    due_note = None
    if due is not None:
        gap = mt.span(due - now)
        due_note = f"in {gap}" if due > now else f"{gap} ago"
    return MessageView(
        kind=kind,
        first_in_thread=first_in_thread,
        ref=incident.ref,
        title=mt.sanitize_header_text(incident.title, max_len=TITLE_CHARS),
        site=mt.sanitize_header_text(incident.site),
        site_name=(seen.host if seen is not None and seen.host else None)
        or mt.sanitize_header_text(incident.site),
        severity=int(incident.severity),
        severity_label=incident.severity.label,
        severity_meaning=SEVERITY_MEANING[incident.severity],
        client_id=mt.sanitize_header_text(client_id),
        client_name=mt.sanitize_header_text(client_name),
        is_open=incident.is_open,
        calendar=incident.calendar,
        timezone=timezone,
        now=mt.local_time(now, tz),
        opened_at=mt.local_time(incident.opened_at, tz),
        resolved_at=when(incident.resolved_at),
        response_aim_at=when(incident.response_aim_at),
        response_due_at=when(incident.response_due_at),
        responded_at=when(incident.responded_at),
        acknowledged_by=(
            mt.sanitize_header_text(incident.acknowledged_by) if incident.acknowledged_by else None
        ),
        last_update_at=when(incident.last_update_at),
        next_update_due_at=when(incident.next_update_due_at),
        failing_checks=tuple(
            mt.sanitize_header_text(key) for key in sorted(incident.failing_checks)
        ),
        seen=seen,
        update_text=(
            mt.clean_multiline(update_text, max_len=UPDATE_CHARS) if update_text else None
        ),
        link=link,
        due_note=due_note,
    )


def _seen(cause: TimelineEntry, *, tz: ZoneInfo, with_excerpt: bool) -> SeenView:
    # Evidence is a stored JSON dict: read it defensively, field by field. Its `headers` are
    # never read, so nothing a check sent or received as a header can reach a mail.
    evidence: dict[str, Any] = cause.evidence or {}
    url = _str(evidence.get("url"))
    shown_url = mt.display_url(url) if url else None
    status = evidence.get("status")
    timings = evidence.get("timings")
    total = timings.get("total") if isinstance(timings, dict) else None
    error = _str(evidence.get("error"))
    step = _str(evidence.get("step"))
    excerpt = _str(evidence.get("body_excerpt")) if with_excerpt else None
    excerpt = mt.clean_multiline(excerpt, max_len=EXCERPT_CHARS) if excerpt else None
    return SeenView(
        at=mt.local_time(cause.at, tz),
        check=mt.sanitize_header_text(cause.check) if cause.check else None,
        url=shown_url,
        host=_host(shown_url),
        outcome=str(cause.outcome) if cause.outcome is not None else None,
        outcome_text=OUTCOME_TEXT.get(cause.outcome) if cause.outcome is not None else None,
        http_status=status if isinstance(status, int) and not isinstance(status, bool) else None,
        latency=mt.latency(float(total)) if isinstance(total, int | float) else None,
        step=mt.sanitize_header_text(step) if step else None,
        error=mt.sanitize_header_text(error, max_len=ERROR_CHARS) if error else None,
        excerpt=excerpt or None,
    )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _host(shown_url: str | None) -> str | None:
    if not shown_url or "://" not in shown_url:
        return None
    host = shown_url.split("://", 1)[1].split("/", 1)[0]
    return host or None

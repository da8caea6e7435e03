"""What a notification template sees: plain, already-safe strings built from an incident.

Templates only lay these out. Every string that came from a site or an operator is cleaned
here (control characters gone, lengths capped); HTML escaping is left to the HTML templates'
autoescape, so the text and HTML bodies show the same characters.
"""

from __future__ import annotations

import gettext
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from checks.result import Outcome
from incidents import message_text as mt
from incidents import wording
from incidents.business_duration import BusinessDuration, Unit
from incidents.model import Incident, TimelineEntry, TimelineKind
from incidents.severity import Severity
from incidents.wording import N_

SEVERITY_LABEL = {
    Severity.CRITICAL: N_("Severity 1 (Critical)"),
    Severity.MAJOR: N_("Severity 2 (Major)"),
    Severity.MODERATE: N_("Severity 3 (Moderate)"),
    Severity.LOW: N_("Severity 4 (Low)"),
}

# The service-level page's own words for each severity: the client reads what was promised.
SEVERITY_MEANING = {
    Severity.CRITICAL: N_(
        "Complete service outage or severe data loss. Business operations halted."
    ),
    Severity.MAJOR: N_("Major feature broken or serious degradation, but workarounds exist."),
    Severity.MODERATE: N_(
        "Non-critical bug or visible issue that does not block core business function."
    ),
    Severity.LOW: N_("Minor cosmetic issues, small feature improvements, or general questions."),
}

# Severity 1 when the site is not down: the service page's "complete service outage" would not
# be true, so the mail says why this incident is rated so and what that rating does.
CRITICAL_PART_MEANING = N_(
    "We rate it %(severity)s because %(part)s is a critical part of your site: it goes ahead of "
    "all other work, and our on-call team was alerted at once, day or night."
)
CRITICAL_SITE_MEANING = N_(
    "We rate it %(severity)s because it affects your whole site: it goes ahead of all other "
    "work, and our on-call team was alerted at once, day or night."
)

# What each outcome means to someone who does not read probe codes (on-call, with the code).
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
    Outcome.BROKEN_ASSET: "an image, stylesheet or script of the page failed",
    Outcome.CERT_EXPIRING: "the TLS certificate expires soon",
    Outcome.REDIRECT_REFUSED: "the site redirected to an internal address",
    Outcome.DNS_ERROR: "the name did not resolve (DNS)",
    Outcome.DNS_MISMATCH: "DNS answered with other records than expected",
    Outcome.DOMAIN_EXPIRING: "the domain registration expires within weeks",
    Outcome.DOMAIN_EXPIRING_SOON: "the domain registration expires within days",
    Outcome.DOMAIN_EXPIRED: "the domain registration has expired",
    Outcome.DOMAIN_UNKNOWN: "the registry's RDAP lookup of the domain failed",
    Outcome.HEARTBEAT_MISSED: "the scheduled job did not report in time",
    Outcome.HEARTBEAT_FAILED: "the scheduled job reported a failure",
    Outcome.SCRIPT_ERROR: "a script error on the page (an uncaught exception or console error)",
    Outcome.REQUEST_FAILED: "a request of the page (same site or third party) failed",
    Outcome.ELEMENT_MISSING: "an element a step needs never appeared",
}

# The client's sentence for each outcome: plain words, nothing the target sent.
CLIENT_SENTENCE = {
    Outcome.OK: N_("It answers as expected."),
    Outcome.SLOW: N_("It answered, but too slowly."),
    Outcome.HTTP_5XX: N_("The server answered with an error."),
    Outcome.UNEXPECTED_STATUS: N_("The server refused the request or answered unexpectedly."),
    Outcome.CONTENT_MISMATCH: N_("The page did not show what it should."),
    Outcome.TIMEOUT: N_("The server did not answer in time."),
    Outcome.CONNECTION_ERROR: N_("We could not connect to the server."),
    Outcome.TLS_ERROR: N_("The secure connection (TLS certificate) failed."),
    Outcome.TOO_LARGE: N_("The answer was too large or redirected too often."),
    Outcome.BROKEN_ASSET: N_("The page loads, but an image, stylesheet or script on it is broken."),
    Outcome.CERT_EXPIRING: N_("The security certificate of the site expires soon."),
    Outcome.REDIRECT_REFUSED: N_("The site sent visitors on to an internal address."),
    Outcome.DNS_ERROR: N_("The site's address could not be found on the internet (DNS)."),
    Outcome.DNS_MISMATCH: N_("The site's address records (DNS) are not the expected ones."),
    Outcome.DOMAIN_EXPIRING: N_("The registration of the domain name expires in a few weeks."),
    Outcome.DOMAIN_EXPIRING_SOON: N_("The registration of the domain name expires in a few days."),
    Outcome.DOMAIN_EXPIRED: N_("The registration of the domain name has expired."),
    Outcome.DOMAIN_UNKNOWN: N_("We could not confirm when the domain name registration expires."),
    Outcome.HEARTBEAT_MISSED: N_("A scheduled task of the site did not report in time."),
    Outcome.HEARTBEAT_FAILED: N_("A scheduled task of the site reported a failure."),
    Outcome.SCRIPT_ERROR: N_("The page has an error that stops visitors from going on."),
    Outcome.REQUEST_FAILED: N_("Part of the page, such as a payment form, does not load."),
    Outcome.ELEMENT_MISSING: N_("A button or field that visitors need is missing."),
}

ERROR_CHARS = 300
EXCERPT_CHARS = 300
UPDATE_CHARS = 20_000  # an operator's update: verbatim, but not a novel
NOTE_CHARS = 2_000  # an operator's resolution note
TITLE_CHARS = 120


@dataclass(frozen=True, slots=True)
class Branding:
    """How the agency presents itself in client mails (validated config values)."""

    name: str | None = None
    logo_url: str | None = None  # https only
    accent_color: str = "#1f4e8c"  # "#rrggbb"
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class SeenView:
    """One check result from the incident's timeline, as a mail shows it.

    `part`, `url`, `sentence`, `latency` and `at` are for everyone; the rest is the
    technical line for on-call only (client templates never show it).
    """

    at: str
    part: str | None  # the check's display name
    url: str | None  # our configured URL, without query or credentials
    host: str | None
    sentence: str | None  # the client's plain sentence, in the client's language
    latency: str | None
    check: str | None  # on-call: the check key
    outcome: str | None  # on-call: the code, e.g. "http_5xx"
    outcome_text: str | None  # on-call: in words
    http_status: int | None  # on-call
    step: str | None  # on-call
    error: str | None  # on-call: may quote what the target sent
    excerpt: str | None  # on-call: the first characters of the response body


@dataclass(frozen=True, slots=True)
class MessageView:
    kind: str
    language: str
    first_in_thread: bool
    ref: str
    title: str  # in the reader's language
    site: str  # on-call: the site key
    site_name: str  # how people name the site (never its key)
    affected: str  # what is affected, in words: "the whole site" or the failing parts
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
    since: str  # the first failure, or the opening when not known
    resolved_at: str | None
    duration: str | None  # first failure to resolution
    response_aim_at: str | None
    response_due_at: str | None
    responded_at: str | None
    acknowledged_by: str | None
    last_update_at: str | None
    next_update_due_at: str | None
    failing_checks: tuple[str, ...]  # on-call: check keys
    failing_parts: tuple[str, ...]  # display names
    seen: SeenView | None
    update_text: str | None
    note: str | None  # the operator's resolution note
    link: str | None
    due_note: str | None  # on-call reminders: "in 30 min" / "45 min ago"
    cadence: str | None  # client: "We send you an update at least every 4 business hours ..."
    agency_timezone: str | None  # on-call: times show this zone's too
    brand_name: str | None
    logo_url: str | None
    accent_color: str
    signature: str | None
    # RESOLVED by an operator rather than by the checks passing; and while checks still failed.
    resolved_by_hand: bool = False
    resolved_while_failing: bool = False


def build_view(
    *,
    kind: str,
    incident: Incident,
    client_id: str,
    client_name: str,
    names: Mapping[str, str],
    tz: ZoneInfo,
    timezone: str,
    now: datetime,
    cause: TimelineEntry | None,
    update_text: str | None,
    note: str | None,
    first_in_thread: bool,
    with_excerpt: bool,
    link: str | None,
    due: datetime | None,
    language: str,
    catalog: gettext.NullTranslations,
    branding: Branding,
    update_every: BusinessDuration | None,
    agency_tz: ZoneInfo | None,
) -> MessageView:
    """`names` maps check and site keys to display names; `catalog` is the reader's language
    (English for on-call); `agency_tz` (on-call) adds the agency's time to each time shown;
    `branding` is the agency's look and signature (client mails)."""
    _ = catalog.gettext

    def when(at: datetime | None) -> str | None:
        if at is None:
            return None
        shown = mt.local_time(at, tz, locale=language)
        if agency_tz is None or agency_tz.key == tz.key:
            return shown
        return f"{shown} ({mt.short_local_time(at, agency_tz, now=at)} agency)"

    # A resolve by hand (incidents.flow) comes as its RESOLVED entry: no probe result to show.
    by_hand = cause is not None and cause.kind is TimelineKind.RESOLVED
    hand = (cause.evidence or {}) if cause is not None and by_hand else {}
    seen = (
        _seen(cause, names=names, tz=tz, with_excerpt=with_excerpt, language=language, _=_)
        if cause is not None and not by_hand
        else None
    )
    due_note = None
    if due is not None:
        gap = mt.span(due - now)
        due_note = f"in {gap}" if due > now else f"{gap} ago"
    headline = incident.headline
    if headline is not None:
        title = wording.title(headline, gettext=_, locale=language)
        site_name = headline.site_label
    else:  # stored before headlines were kept: the English title is all there is
        title = incident.title
        site_name = names.get(incident.site) or (seen.host if seen and seen.host else client_name)
    parts = tuple(sorted({_name(key, names) for key in incident.failing_checks}))
    since_at = incident.failing_since or incident.opened_at
    end = incident.resolved_at
    return MessageView(
        kind=kind,
        language=language,
        first_in_thread=first_in_thread,
        ref=incident.ref,
        title=mt.sanitize_header_text(title, max_len=TITLE_CHARS),
        site=mt.sanitize_header_text(incident.site),
        site_name=mt.sanitize_header_text(site_name),
        affected=mt.sanitize_header_text(_affected(incident, names=names, _=_)),
        severity=int(incident.severity),
        severity_label=_(SEVERITY_LABEL[incident.severity]),
        severity_meaning=_severity_meaning(incident, _=_),
        client_id=mt.sanitize_header_text(client_id),
        client_name=mt.sanitize_header_text(client_name),
        is_open=incident.is_open,
        calendar=incident.calendar,
        timezone=timezone,
        now=when(now) or "",
        opened_at=when(incident.opened_at) or "",
        since=mt.local_time(since_at, tz, locale=language),
        resolved_at=when(end),
        duration=localized_span(end - since_at, _) if end is not None else None,
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
        failing_parts=tuple(mt.sanitize_header_text(part) for part in parts),
        seen=seen,
        update_text=(
            mt.clean_multiline(update_text, max_len=UPDATE_CHARS) if update_text else None
        ),
        note=mt.clean_multiline(note, max_len=NOTE_CHARS) if note and note.strip() else None,
        link=link,
        due_note=due_note,
        cadence=_cadence(update_every, calendar=incident.calendar, catalog=catalog),
        agency_timezone=(
            agency_tz.key if agency_tz is not None and agency_tz.key != tz.key else None
        ),
        brand_name=mt.sanitize_header_text(branding.name) if branding.name else None,
        logo_url=branding.logo_url,
        accent_color=branding.accent_color,
        signature=(
            mt.clean_multiline(branding.signature, max_len=NOTE_CHARS)
            if branding.signature
            else None
        ),
        resolved_by_hand=by_hand,
        resolved_while_failing=bool(hand.get("forced")),
    )


def _severity_meaning(incident: Incident, *, _: wording.Gettext) -> str:
    """The service page's words for the severity, where they are true of this incident."""
    headline = incident.headline
    if incident.severity is not Severity.CRITICAL or headline is None or wording.is_down(headline):
        return _(SEVERITY_MEANING[incident.severity])
    values = {
        "severity": _(SEVERITY_LABEL[incident.severity]),
        "part": mt.sanitize_header_text(headline.part),
    }
    if headline.availability:  # the whole site, but not down (e.g. every page slow)
        return _(CRITICAL_SITE_MEANING) % values
    return _(CRITICAL_PART_MEANING) % values


def _cadence(
    every: BusinessDuration | None, *, calendar: str | None, catalog: gettext.NullTranslations
) -> str | None:
    """The update promise of the client's SLA for this severity, in the client's words."""
    if every is None:
        return None
    n, unit = every.amount, every.unit
    values = {"num": n}
    if calendar == "24x7":
        length = {
            Unit.MINUTES: catalog.ngettext("%(num)s minute", "%(num)s minutes", n),
            Unit.HOURS: catalog.ngettext("%(num)s hour", "%(num)s hours", n),
            Unit.DAYS: catalog.ngettext("%(num)s day", "%(num)s days", n),
            Unit.WEEKS: catalog.ngettext("%(num)s week", "%(num)s weeks", n),
        }[unit] % values
    else:
        length = {
            Unit.MINUTES: catalog.ngettext(
                "%(num)s business minute", "%(num)s business minutes", n
            ),
            Unit.HOURS: catalog.ngettext("%(num)s business hour", "%(num)s business hours", n),
            Unit.DAYS: catalog.ngettext("%(num)s business day", "%(num)s business days", n),
            Unit.WEEKS: catalog.ngettext("%(num)s business week", "%(num)s business weeks", n),
        }[unit] % values
    return catalog.gettext("While it is open, you hear from us at least every %(every)s.") % {
        "every": length
    }


def _name(key: str, names: Mapping[str, str]) -> str:
    return names.get(key) or wording.part_name(name="", check_key=key)


def _affected(incident: Incident, *, names: Mapping[str, str], _: wording.Gettext) -> str:
    headline = incident.headline
    if headline is not None and wording.is_down(headline):
        return _("The whole site (%(site)s)") % {"site": headline.site_label}
    keys = incident.failing_checks or incident.checks
    parts = sorted({_name(key, names) for key in keys})
    if not parts and headline is not None:
        parts = [headline.part]
    return ", ".join(parts)


def localized_span(delta: timedelta, _: wording.Gettext) -> str:
    """A length for people in their language: `45 min`, `2 h 5 min`, `3 d 4 h`; under a
    minute `less than a minute`, not `0 min`."""
    minutes = abs(int(delta.total_seconds())) // 60
    if minutes == 0:
        return _("less than a minute")
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    values = {"days": days, "hours": hours, "minutes": mins}
    if days:
        return (_("%(days)s d %(hours)s h") if hours else _("%(days)s d")) % values
    if hours:
        return (_("%(hours)s h %(minutes)s min") if mins else _("%(hours)s h")) % values
    return _("%(minutes)s min") % values


def _seen(
    cause: TimelineEntry,
    *,
    names: Mapping[str, str],
    tz: ZoneInfo,
    with_excerpt: bool,
    language: str,
    _: wording.Gettext,
) -> SeenView:
    # Evidence is a stored JSON dict: read it defensively, field by field. Its `headers` are
    # never read, so nothing a check sent or received as a header can reach a mail.
    evidence: dict[str, Any] = cause.evidence or {}
    url = _str(evidence.get("url"))
    # Only a web page is shown as "Page:"; a dns, tcp or domain check's target (dns://...,
    # tcp://...) is a probe's notation, which the error line gives on-call anyway.
    is_page = url is not None and url.startswith(("http://", "https://"))
    shown_url = mt.display_url(url) if url and is_page else None
    status = evidence.get("status")
    timings = evidence.get("timings")
    total = timings.get("total") if isinstance(timings, dict) else None
    error = _str(evidence.get("error"))
    step = _str(evidence.get("step"))
    excerpt = _str(evidence.get("body_excerpt")) if with_excerpt else None
    excerpt = mt.clean_multiline(excerpt, max_len=EXCERPT_CHARS) if excerpt else None
    outcome = cause.outcome
    sentence = _(CLIENT_SENTENCE[outcome]) if outcome is not None else None
    if sentence is not None and step and outcome is not Outcome.OK:
        words = step.replace("-", " ").replace("_", " ")
        sentence = _("At the %(step)s step: %(what)s") % {"step": words, "what": sentence}
    return SeenView(
        at=mt.local_time(cause.at, tz, locale=language),
        part=mt.sanitize_header_text(_name(cause.check, names)) if cause.check else None,
        url=shown_url,
        host=_host(shown_url),
        sentence=mt.sanitize_header_text(sentence, max_len=ERROR_CHARS) if sentence else None,
        latency=mt.latency(float(total)) if isinstance(total, int | float) else None,
        check=mt.sanitize_header_text(cause.check) if cause.check else None,
        outcome=str(outcome) if outcome is not None else None,
        outcome_text=OUTCOME_TEXT.get(outcome) if outcome is not None else None,
        http_status=status if isinstance(status, int) and not isinstance(status, bool) else None,
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

"""Plain values of the incident domain: check state, incidents and their timelines.

All frozen; the engine returns new values instead of mutating old ones, so the store can
write exactly what changed in one transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from checks.result import Outcome
from incidents.severity import Severity


class IncidentStatus(enum.StrEnum):
    OPEN = "open"  # at least one check of the site is (or was, until resolution) failing
    RESOLVED = "resolved"  # final: a resolved incident is never reopened; a new one opens


class TimelineKind(enum.StrEnum):
    OPENED = "opened"  # the first confirmed failure of a site opened the incident
    CHECK_FAILED = "check_failed"  # another check of the site is confirmed failing
    ESCALATED = "escalated"  # severity rose (e.g. slow, then down): 2 -> 1
    DEESCALATED = "deescalated"  # an operator lowered the severity by hand: 1 -> 2
    CHECK_RECOVERED = "check_recovered"  # a failing check passed successes_to_resolve times
    RESOLVED = "resolved"  # no check failing any more, or an operator resolved it by hand
    ONCALL_PAGED = "oncall_paged"  # Severity 1: on-call paged at once, on every channel
    ONCALL_NOTIFIED = "oncall_notified"  # Severity 2+: told in (or at the next) business hours
    PAGED = "paged"  # a level of the severity's escalation policy paged (incidents.escalation)
    ACKNOWLEDGED = "acknowledged"  # an operator took it: the first response
    CLIENT_UPDATE = "client_update"  # an operator's update, emailed to the client
    INTERNAL_NOTE = "internal_note"  # an operator's note for the team: never shown to clients
    POSTMORTEM = "postmortem"  # the post-mortem of a resolved incident (Markdown, public)
    UPDATE_REMINDER = "update_reminder"  # on-call reminded that a client update falls due soon
    RESPONSE_BREACHED = "response_breached"  # no response by response_due_at (recorded once)
    UPDATE_OVERDUE = "update_overdue"  # no client update by next_update_due_at (once per due)
    MAINTENANCE_STARTED = "maintenance_started"  # a window of the site began: clocks paused
    MAINTENANCE_ENDED = "maintenance_ended"  # it ended: the due times moved by the paused time


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    kind: TimelineKind
    message: str  # one line a person reads, e.g. "acme/shop/home: http_5xx (HTTP 500)"
    check: str | None = None  # check key "client/site/check"
    outcome: Outcome | None = None
    severity: Severity | None = None
    evidence: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Headline:
    """What an incident's title is made of, kept as parts rather than words.

    The English `Incident.title` is rendered from it for logs, the API and on-call; each
    client mail renders it again in the client's language (`incidents.wording.title`).
    """

    site_label: str  # how people name the site, e.g. "Trail Outfitters"
    check: str  # the key of the check whose failure the title is about
    part: str  # that check's display name, e.g. "Admin panel"
    availability: bool  # the check is in the site's availability scope: failing is "down"
    outcome: Outcome
    status: int | None = None  # the HTTP status, when the failure had one
    step: str | None = None  # the failing step of a flow, as configured
    latency: float | None = None  # seconds, for a slow answer
    slow_after: float | None = None  # seconds, the check's target for a slow answer


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident per site at a time; its severity only ever rises."""

    id: int | None  # None until the store has written it
    client: str  # client id
    site: str  # site key "client/site"
    title: str  # English, rendered from `headline`: e.g. "shop.acme.example is down"
    severity: Severity
    status: IncidentStatus
    opened_at: datetime
    resolved_at: datetime | None = None
    failing_checks: frozenset[str] = frozenset()  # check keys confirmed failing right now
    checks: frozenset[str] = frozenset()  # every check that has been attached
    # SLA clocks (incidents.sla sets them; None where the severity has no such target).
    calendar: str | None = None  # "business" or "24x7": what the clocks below count in
    response_aim_at: datetime | None = None
    response_due_at: datetime | None = None
    responded_at: datetime | None = None  # first operator action (ack or client update)
    acknowledged_by: str | None = None
    last_update_at: datetime | None = None  # last client update posted by a person
    next_update_due_at: datetime | None = None  # set once responded; None: no cadence
    oncall_notified_at: datetime | None = None  # None: on-call not told yet (waits for hours)
    # Breaches and reminders already recorded, so each is recorded once: "response_breached",
    # "update_reminder@<due ISO>", "update_overdue@<due ISO>".
    sla_marks: frozenset[str] = frozenset()
    # What the title is made of (None on incidents stored before it was kept), and when the
    # first failure of the check that opened the incident was seen (before confirmation).
    headline: Headline | None = None
    failing_since: datetime | None = None
    # While a maintenance window of the site lasts the clocks are paused (incidents.pause):
    # since when, and until when the window in force says it lasts (revision 0004).
    paused_since: datetime | None = None
    paused_until: datetime | None = None
    # The stored row's version, which every write moves on: a writer holding an older copy
    # is refused, so two processes cannot overwrite each other's changes. 0: not stored yet.
    # Bookkeeping, not content: two copies saying the same thing compare equal.
    version: int = field(default=0, compare=False)

    @property
    def is_open(self) -> bool:
        return self.status is IncidentStatus.OPEN

    @property
    def ref(self) -> str:
        return f"INC-{self.id}" if self.id is not None else "INC-new"


@dataclass(frozen=True, slots=True)
class CheckState:
    """What the engine remembers of one check between results."""

    key: str  # "client/site/check"
    # Severity of each of the latest results, newest last, at most failures_to_open long;
    # None stands for a success. A failure is confirmed when the last failures_to_open
    # entries are all failures; its severity is the least severe among them.
    recent: tuple[Severity | None, ...] = ()
    successes: int = 0  # consecutive successes, capped at successes_to_resolve
    failing: bool = False  # confirmed failing and attached to the site's incident
    severity: Severity | None = None  # the confirmed severity while failing
    last_outcome: Outcome | None = None
    last_result_at: datetime | None = None
    since: datetime | None = None  # when the current run of failures or successes began
    # The incident was resolved by hand while this check still failed: its failures count
    # again only after it has passed once, so a forced resolve does not reopen at once.
    held: bool = False


@dataclass(frozen=True, slots=True)
class CheckRef:
    """The engine's view of one configured check."""

    key: str  # "client/site/check"
    client: str
    site: str  # "client/site"
    site_label: str  # how people name the site, e.g. its host "shop.acme.example"
    failures_to_open: int = 3
    successes_to_resolve: int = 2
    name: str = ""  # display name, e.g. "Checkout"; empty: derived from the key
    # In the site's availability scope: its failure means the site "is down"; any other
    # check's failure is about that part of the site ("Checkout is failing").
    availability: bool = True
    slow_after: float | None = None  # seconds: slower than this is a slow answer


@dataclass(frozen=True, slots=True)
class Transition:
    """The consequence of one probe result.

    `incident` is the site's incident after the result (None when the site has none);
    `incident_changed` says whether the store must write it; `timeline` holds the entries
    to append to it (empty when nothing happened worth recording).
    """

    state: CheckState
    incident: Incident | None
    incident_changed: bool = False
    timeline: tuple[TimelineEntry, ...] = field(default_factory=tuple)

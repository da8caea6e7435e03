"""What a client's status page says: public stages and updates, and the state of each site.

Pure functions of incidents and their timelines. Only what the client may read leaves here:
the incident title in the client's language, public update texts and their stages, and the
post-mortem. Check keys, outcome codes, evidence and operator names stay behind.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from checks.result import Outcome
from incidents import wording
from incidents.model import Incident, TimelineEntry, TimelineKind


class Stage(enum.StrEnum):
    """Where a public incident stands, as operators tell clients (Statuspage's words)."""

    INVESTIGATING = "investigating"  # the default until an update says more
    IDENTIFIED = "identified"  # the cause is known; a fix is under way
    MONITORING = "monitoring"  # a fix is out; watching that it holds
    RESOLVED = "resolved"  # the incident is over


class PageStatus(enum.IntEnum):
    """A site's or the whole page's state; a larger value is worse (the banner is the worst)."""

    OPERATIONAL = 0  # nothing open
    UNDER_MAINTENANCE = 1  # a maintenance window is in force and nothing fails
    DEGRADED_PERFORMANCE = 2  # pages answer, but slowly
    PARTIAL_OUTAGE = 3  # a part of the site fails (checkout, contact form, admin panel)
    MAJOR_OUTAGE = 4  # the site itself is down

    @property
    def slug(self) -> str:
        """The Statuspage component status word, e.g. "major_outage"."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class PublicUpdate:
    at: datetime
    stage: Stage
    text: str


def public_updates(incident: Incident, timeline: Iterable[TimelineEntry]) -> list[PublicUpdate]:
    """The updates a client may read, oldest first: operator updates not marked internal,
    and the resolution. Internal notes, probe lines and on-call entries never appear."""
    updates: list[PublicUpdate] = []
    stage = Stage.INVESTIGATING
    for entry in timeline:
        evidence = entry.evidence or {}
        if entry.kind is TimelineKind.CLIENT_UPDATE:
            text = evidence.get("text")
            if not isinstance(text, str) or not text.strip():
                continue
            stage = _stage(evidence.get("stage"), default=stage)
            updates.append(PublicUpdate(at=entry.at, stage=stage, text=text.strip()))
    if not incident.is_open and incident.resolved_at is not None:
        updates.append(
            PublicUpdate(at=incident.resolved_at, stage=Stage.RESOLVED, text=RESOLVED_TEXT)
        )
    return updates


RESOLVED_TEXT = wording.N_("This incident has been resolved.")


def stage_of(incident: Incident, updates: Sequence[PublicUpdate]) -> Stage:
    if not incident.is_open:
        return Stage.RESOLVED
    return updates[-1].stage if updates else Stage.INVESTIGATING


def postmortem(timeline: Iterable[TimelineEntry]) -> str | None:
    """The latest post-mortem's Markdown, if one was attached."""
    found = None
    for entry in timeline:
        text = (entry.evidence or {}).get("text")
        if entry.kind is TimelineKind.POSTMORTEM and isinstance(text, str) and text.strip():
            found = text
    return found


def site_status(incident: Incident | None, *, in_maintenance: bool) -> PageStatus:
    """From the site's open incident and what its title is about (the check roles)."""
    if incident is None or not incident.is_open:
        return PageStatus.UNDER_MAINTENANCE if in_maintenance else PageStatus.OPERATIONAL
    headline = incident.headline
    if headline is None:
        # Stored before headlines were kept: say the worst an open Severity 1 can mean.
        return PageStatus.MAJOR_OUTAGE if int(incident.severity) == 1 else PageStatus.PARTIAL_OUTAGE
    if wording.is_down(headline):
        return PageStatus.MAJOR_OUTAGE
    if headline.outcome is Outcome.SLOW:
        return PageStatus.DEGRADED_PERFORMANCE
    return PageStatus.PARTIAL_OUTAGE


# Timeline entries that say which outcome a check of the incident failed with.
_FAILED_KINDS = frozenset({TimelineKind.OPENED, TimelineKind.CHECK_FAILED, TimelineKind.ESCALATED})


def check_status(
    incident: Incident | None,
    timeline: Iterable[TimelineEntry],
    *,
    check: str,
    availability: bool,
    in_maintenance: bool,
) -> PageStatus:
    """One check of a site as a status-page component, from the site's open incident: a
    failing availability check is a major outage (a slow one, degraded performance), a
    failing part is a partial outage (slow: degraded); otherwise as its site."""
    if incident is None or not incident.is_open or check not in incident.failing_checks:
        return PageStatus.UNDER_MAINTENANCE if in_maintenance else PageStatus.OPERATIONAL
    outcome = None
    for entry in timeline:
        if entry.check == check and entry.kind in _FAILED_KINDS and entry.outcome is not None:
            outcome = entry.outcome
    if outcome is Outcome.SLOW:
        return PageStatus.DEGRADED_PERFORMANCE
    return PageStatus.MAJOR_OUTAGE if availability else PageStatus.PARTIAL_OUTAGE


def overall(statuses: Iterable[PageStatus]) -> PageStatus:
    return max(statuses, default=PageStatus.OPERATIONAL)


def _stage(value: object, *, default: Stage) -> Stage:
    try:
        return Stage(value) if isinstance(value, str) else default
    except ValueError:
        return default

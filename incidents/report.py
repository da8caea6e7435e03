"""The monthly service report: what a client was promised and what it got, for one month.

Pure: a function from plain values (the month, the client's incidents with their timelines,
the maintenance windows, each site's uptime figures, the plan's target) to a `MonthlyReport`.
Availability is never computed here: the figures come from the daily rollups
(`incidents.uptime`), the one definition the status page and Grafana use too.

Verdicts per incident (`Verdict`), read from the SLA clocks the incident carries (they already
include every maintenance pause, see incidents.sla):

- response aim / due: MET when the first response (`responded_at`) came by
  `response_aim_at` / `response_due_at`; MISSED when it came later, or never came and the time
  had passed by the end of the month (or by resolution, if earlier, when no response came);
  NOT_DUE when the incident was resolved before the time without a response (nobody owed one:
  it recovered by itself), or is still open and the time is after the month; NONE when the
  severity has no such target.
- update cadence: MISSED when the timeline records an UPDATE_OVERDUE, or the incident is open
  at the month's end with its next update already overdue; MET when responded with a cadence
  and none was missed; NONE when no cadence ran (the severity has none, or no response came).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from incidents.model import Incident, TimelineEntry, TimelineKind
from incidents.severity import Severity
from incidents.uptime import DayStat, uptime

__all__ = [
    "IncidentLine",
    "MaintenanceLine",
    "MonthlyReport",
    "ReportIncident",
    "ReportWindow",
    "SiteFigures",
    "SiteLine",
    "Verdict",
    "compose_report",
    "month_bounds",
    "parse_month",
]

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class Verdict(enum.StrEnum):
    MET = "met"  # the target was kept
    MISSED = "missed"  # the target was not kept
    NOT_DUE = "not_due"  # nothing was owed by the end of the month (or of the incident)
    NONE = "none"  # the severity has no such target, or no cadence ran


@dataclass(frozen=True, slots=True)
class ReportIncident:
    """An incident with its timeline (oldest first), as the store keeps them."""

    incident: Incident
    timeline: tuple[TimelineEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class ReportWindow:
    """A maintenance window of one of the client's sites (one-off or recurring)."""

    site: str  # site key "client/site"
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class SiteFigures:
    """A site's month from the daily rollups (`incidents.uptime`)."""

    site: str  # site key "client/site"
    availability: float | None  # percent, e.g. 99.95; None: no time counted (all maintenance)
    downtime_seconds: float
    maintenance_seconds: float

    @classmethod
    def from_stats(cls, site: str, stats: Sequence[DayStat]) -> SiteFigures:
        """The month of `site` from its days, by the one uptime definition."""
        share = uptime(stats)
        return cls(
            site=site,
            availability=None if share is None else share * 100,
            downtime_seconds=sum(s.down_seconds for s in stats),
            maintenance_seconds=sum(s.maintenance_seconds for s in stats),
        )


@dataclass(frozen=True, slots=True)
class SiteLine:
    site: str  # key, for the JSON and for tests; never rendered into client text
    name: str  # how people name the site
    availability: float | None  # percent
    target: float | None  # percent, the plan's availability_target
    target_met: bool | None  # None: no target, or no figure
    downtime_minutes: float
    maintenance_minutes: float


@dataclass(frozen=True, slots=True)
class IncidentLine:
    ref: str  # "INC-42"
    site_name: str
    title: str  # the incident's title, in the report's language when the caller rendered it
    severity: Severity
    opened_at: datetime
    resolved_at: datetime | None  # None: still open at the month's end (or now)
    duration: timedelta | None  # opened to resolved, or to the month's end while open
    responded_at: datetime | None
    time_to_respond: timedelta | None  # wall-clock, opened to first response
    response_aim_at: datetime | None
    response_due_at: datetime | None
    response_aim: Verdict
    response_due: Verdict
    client_updates: int  # updates posted to the client by a person during the incident
    updates_missed: int  # UPDATE_OVERDUE entries: each a client update that came late
    update_cadence: Verdict


@dataclass(frozen=True, slots=True)
class MaintenanceLine:
    site_name: str
    starts_at: datetime
    ends_at: datetime

    @property
    def duration(self) -> timedelta:
        return self.ends_at - self.starts_at


@dataclass(frozen=True, slots=True)
class MonthlyReport:
    client_name: str
    month: str  # "2026-11"
    timezone: str  # IANA: every time in the report is shown in it
    period_start: datetime  # the month's first midnight in the client's zone (inclusive)
    period_end: datetime  # the next month's first midnight (exclusive)
    availability_target: float | None  # percent
    sites: tuple[SiteLine, ...]
    incidents: tuple[IncidentLine, ...]  # oldest first
    by_severity: tuple[tuple[Severity, int], ...]  # every severity with its count, 1 first
    maintenance: tuple[MaintenanceLine, ...]  # oldest first, cut to the month


def parse_month(text: str) -> tuple[int, int]:
    """`2026-11` as (2026, 11); ValueError saying the form otherwise."""
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"month must be YYYY-MM, e.g. 2026-11 (got {text!r})")
    return int(match.group(1)), int(match.group(2))


def month_bounds(month: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The month's first midnight and the next month's, in `zone` (aware datetimes)."""
    year, number = parse_month(month)
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return start, end


def compose_report(
    *,
    client_name: str,
    month: str,
    timezone: str,
    incidents: Iterable[ReportIncident],
    windows: Iterable[ReportWindow],
    figures: Mapping[str, SiteFigures],
    site_names: Mapping[str, str],
    availability_target: float | None,
    cadence: Collection[Severity],
    titles: Mapping[int, str] | None = None,
    now: datetime | None = None,
) -> MonthlyReport:
    """The report of `month` ("YYYY-MM", in `timezone`).

    `site_names` lists the client's sites (key -> name) in the order the report shows them;
    `figures` has each site's uptime from the rollups; `cadence` lists the severities with
    an update cadence in the client's SLA. `incidents` and `windows` may reach
    outside the month: those that overlap it are kept (windows cut to it). `titles` gives a
    title per incident id in the report's language (else the stored English title). `now`,
    when inside the month, ends it early for open incidents (a report of the month so far).
    """
    start, end = month_bounds(month, ZoneInfo(timezone))
    cutoff = end if now is None else min(end, now)
    lines = tuple(
        _incident_line(
            item, cutoff=cutoff, site_names=site_names, titles=titles or {}, cadence=cadence
        )
        for item in sorted(incidents, key=lambda i: (i.incident.opened_at, i.incident.id or 0))
        if _overlaps(item.incident.opened_at, item.incident.resolved_at, start, end)
    )
    counts = {severity: 0 for severity in Severity}
    for line in lines:
        counts[line.severity] += 1
    return MonthlyReport(
        client_name=client_name,
        month=month,
        timezone=timezone,
        period_start=start,
        period_end=end,
        availability_target=availability_target,
        sites=tuple(
            _site_line(site, name, figures.get(site), availability_target)
            for site, name in site_names.items()
        ),
        incidents=lines,
        by_severity=tuple(sorted(counts.items())),
        maintenance=_maintenance(windows, start=start, end=end, site_names=site_names),
    )


def _overlaps(begin: datetime, finish: datetime | None, start: datetime, end: datetime) -> bool:
    return begin < end and (finish is None or finish >= start)


def _site_line(site: str, name: str, figures: SiteFigures | None, target: float | None) -> SiteLine:
    availability = None if figures is None else figures.availability
    return SiteLine(
        site=site,
        name=name,
        availability=availability,
        target=target,
        target_met=None if target is None or availability is None else availability >= target,
        downtime_minutes=0.0 if figures is None else figures.downtime_seconds / 60,
        maintenance_minutes=0.0 if figures is None else figures.maintenance_seconds / 60,
    )


def _incident_line(
    item: ReportIncident,
    *,
    cutoff: datetime,
    site_names: Mapping[str, str],
    titles: Mapping[int, str],
    cadence: Collection[Severity],
) -> IncidentLine:
    incident = item.incident
    responded = incident.responded_at
    # Without a response, a target still ahead when the incident ended (or the month did)
    # was never owed.
    settled = cutoff if incident.resolved_at is None else min(cutoff, incident.resolved_at)
    overdue = sum(1 for entry in item.timeline if entry.kind is TimelineKind.UPDATE_OVERDUE)
    return IncidentLine(
        ref=incident.ref,
        site_name=site_names.get(incident.site, incident.site),
        title=titles.get(incident.id or 0, incident.title),
        severity=incident.severity,
        opened_at=incident.opened_at,
        resolved_at=incident.resolved_at,
        duration=(incident.resolved_at or cutoff) - incident.opened_at,
        responded_at=responded,
        time_to_respond=None if responded is None else responded - incident.opened_at,
        response_aim_at=incident.response_aim_at,
        response_due_at=incident.response_due_at,
        response_aim=_response_verdict(responded, incident.response_aim_at, settled),
        response_due=_response_verdict(responded, incident.response_due_at, settled),
        client_updates=sum(1 for e in item.timeline if e.kind is TimelineKind.CLIENT_UPDATE),
        updates_missed=overdue,
        update_cadence=_cadence_verdict(
            incident, overdue=overdue, cutoff=cutoff, has_cadence=incident.severity in cadence
        ),
    )


def _response_verdict(
    responded: datetime | None, target: datetime | None, settled: datetime
) -> Verdict:
    if target is None:
        return Verdict.NONE
    if responded is not None:
        return Verdict.MET if responded <= target else Verdict.MISSED
    return Verdict.MISSED if target <= settled else Verdict.NOT_DUE


def _cadence_verdict(
    incident: Incident, *, overdue: int, cutoff: datetime, has_cadence: bool
) -> Verdict:
    if overdue:
        return Verdict.MISSED
    due = incident.next_update_due_at
    if incident.is_open and due is not None and due <= cutoff:
        return Verdict.MISSED  # overdue now, though the monitor has not recorded it yet
    if not has_cadence or incident.responded_at is None:
        return Verdict.NONE
    return Verdict.MET


def _maintenance(
    windows: Iterable[ReportWindow],
    *,
    start: datetime,
    end: datetime,
    site_names: Mapping[str, str],
) -> tuple[MaintenanceLine, ...]:
    kept: Sequence[ReportWindow] = sorted(
        (w for w in windows if w.site in site_names and w.starts_at < end and w.ends_at > start),
        key=lambda w: (w.starts_at, w.site),
    )
    return tuple(
        MaintenanceLine(
            site_name=site_names[w.site],
            starts_at=max(w.starts_at, start),
            ends_at=min(w.ends_at, end),
        )
        for w in kept
    )

"""A client's status page as plain values: every word the page shows, in the client's language.

`build_status` is pure: the shell gathers incidents, timelines, maintenance and daily figures
and passes them in; the templates only lay the result out. Titles are the ones the client's
emails use (`incidents.wording.title`), so a page and a mail never name an incident twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from babel.numbers import format_decimal

from incidents import wording
from incidents.markdown_html import render
from incidents.message_text import local_time
from incidents.model import Incident, TimelineEntry
from incidents.public_status import (
    RESOLVED_TEXT,
    PageStatus,
    PublicUpdate,
    Stage,
    check_status,
    overall,
    postmortem,
    public_updates,
    site_status,
    stage_of,
)
from incidents.uptime import DayStat, DayState, uptime

N_ = wording.N_

STATUS_WORDS: Mapping[PageStatus, str] = {
    PageStatus.OPERATIONAL: N_("Operational"),
    PageStatus.UNDER_MAINTENANCE: N_("Under maintenance"),
    PageStatus.DEGRADED_PERFORMANCE: N_("Degraded performance"),
    PageStatus.PARTIAL_OUTAGE: N_("Partial outage"),
    PageStatus.MAJOR_OUTAGE: N_("Major outage"),
}
BANNER_WORDS: Mapping[PageStatus, str] = {
    PageStatus.OPERATIONAL: N_("All systems operational"),
    PageStatus.UNDER_MAINTENANCE: N_("Under maintenance"),
    PageStatus.DEGRADED_PERFORMANCE: N_("Degraded performance"),
    PageStatus.PARTIAL_OUTAGE: N_("Partial outage"),
    PageStatus.MAJOR_OUTAGE: N_("Major outage"),
}
STAGE_WORDS: Mapping[Stage, str] = {
    Stage.INVESTIGATING: N_("Investigating"),
    Stage.IDENTIFIED: N_("Identified"),
    Stage.MONITORING: N_("Monitoring"),
    Stage.RESOLVED: N_("Resolved"),
}
# (key, words, calendar days ending today): the longer periods are whole days of the rollups;
# 0 is the rolling 24 hours up to now (given apart, see build_status).
PERIODS: tuple[tuple[str, str, int], ...] = (
    ("24h", N_("24 hours"), 0),
    ("7d", N_("7 days"), 7),
    ("30d", N_("30 days"), 30),
    ("90d", N_("90 days"), 90),
)
_BAR_STATES: Mapping[DayState, str] = {
    DayState.DOWN: "down",
    DayState.DEGRADED: "degraded",
    DayState.MAINTENANCE: "maintenance",
    DayState.OPERATIONAL: "ok",
    DayState.NO_DATA: "none",
}


@dataclass(frozen=True, slots=True)
class CheckInput:
    key: str  # "client/site/check": never shown, used to match incidents
    label: str  # its display name, as the client's mails name it
    availability: bool  # failing means the site is down


@dataclass(frozen=True, slots=True)
class SiteInput:
    key: str  # "client/site": never shown, used to match incidents
    label: str  # how people name it
    in_maintenance: bool = False
    maintenance_until: datetime | None = None
    checks: tuple[CheckInput, ...] = ()  # shown as its components (status_page.components)


@dataclass(frozen=True, slots=True)
class ComponentView:
    """A named check of a site, shown under it with its own state."""

    number: int  # position under its site
    label: str
    status: PageStatus
    status_text: str


@dataclass(frozen=True, slots=True)
class Bar:
    day: date
    state: str  # "ok", "degraded", "down", "maintenance", "none" (CSS class and legend)
    tooltip: str  # the same facts in words: colour is never the only signal


@dataclass(frozen=True, slots=True)
class SiteView:
    number: int  # position on the page: anchors use it rather than the site's id
    label: str
    status: PageStatus
    status_text: str
    bars: tuple[Bar, ...]
    uptime: tuple[tuple[str, str, str], ...]  # (period key, period words, "99.95 %" or "-")
    ratios: tuple[tuple[str, float | None], ...] = ()  # (period key, share 0..1 or None)
    components: tuple[ComponentView, ...] = ()  # its checks, when the page shows them


@dataclass(frozen=True, slots=True)
class UpdateView:
    at: datetime
    at_text: str
    stage: Stage
    stage_text: str
    text: str


@dataclass(frozen=True, slots=True)
class IncidentView:
    number: int  # the incident's number on the page (its id: the link needs one)
    title: str
    status: PageStatus  # what it does to its site now (operational once resolved)
    stage: Stage
    stage_text: str
    site_label: str
    opened_at: datetime
    opened_text: str
    resolved_at: datetime | None
    resolved_text: str | None
    updated_at: datetime
    updates: tuple[UpdateView, ...]  # newest first
    postmortem_html: str | None


@dataclass(frozen=True, slots=True)
class MaintenanceView:
    site_label: str
    starts_at: datetime
    ends_at: datetime
    text: str
    in_force: bool


@dataclass(frozen=True, slots=True)
class StatusView:
    title: str
    language: str
    status: PageStatus
    banner: str
    sites: tuple[SiteView, ...]
    active: tuple[IncidentView, ...]
    history: tuple[IncidentView, ...]  # resolved within the history span, newest first
    maintenance: tuple[MaintenanceView, ...]
    updated_at: datetime
    updated_text: str
    words: Mapping[str, str]  # the page's fixed words, translated


PAGE_WORDS: Mapping[str, str] = {
    "sites": N_("Sites"),
    "components": N_("Parts of the site"),
    "active": N_("Active incidents"),
    "history": N_("Past incidents (90 days)"),
    "none_past": N_("No incidents in the last 90 days."),
    "maintenance": N_("Scheduled maintenance"),
    "uptime": N_("Uptime"),
    "days": N_("Last 90 days"),
    "updated": N_("Last updated"),
    "postmortem": N_("Post-mortem"),
    "opened": N_("Started"),
    "resolved": N_("Resolved"),
    "feed": N_("Subscribe (Atom feed)"),
    "back": N_("All systems"),
    "legend": N_("Each bar is one day, oldest on the left."),
}


def build_status(
    *,
    title: str,
    language: str,
    gettext: wording.Gettext,
    tz: ZoneInfo,
    now: datetime,
    sites: Sequence[SiteInput],
    incidents: Sequence[Incident],
    timelines: Mapping[int, Sequence[TimelineEntry]],
    days: Mapping[str, Sequence[DayStat]],
    maintenance: Sequence[tuple[str, datetime, datetime, str]] = (),
    rolling: Mapping[str, float | None] | None = None,
) -> StatusView:
    """`incidents`: the client's open ones and those resolved in the history span;
    `days[site]`: the site's daily rollups, oldest first, ending today (the bars, and the
    uptime of each period of days through `incidents.uptime`, the one definition);
    `rolling[site]`: its uptime over the last 24 hours (incidents.uptime.rolling_uptime);
    `maintenance`: (site key, start, end, public reason) of windows in force or ahead."""
    _ = gettext
    labels = {site.key: site.label for site in sites}
    open_by_site = {i.site: i for i in incidents if i.is_open}
    site_views = []
    for number, site in enumerate(sites, start=1):
        incident = open_by_site.get(site.key)
        status = site_status(incident, in_maintenance=site.in_maintenance)
        components = []
        for position, check in enumerate(site.checks, start=1):
            state = check_status(
                incident,
                timelines.get(incident.id or 0, ()) if incident else (),
                check=check.key,
                availability=check.availability,
                in_maintenance=site.in_maintenance,
            )
            components.append(
                ComponentView(
                    number=position,
                    label=check.label,
                    status=state,
                    status_text=_(STATUS_WORDS[state]),
                )
            )
        shares = [
            (
                key,
                _uptime(days.get(site.key, ()), count) if count else (rolling or {}).get(site.key),
            )
            for key, _words, count in PERIODS
        ]
        site_views.append(
            SiteView(
                number=number,
                label=site.label,
                status=status,
                status_text=_(STATUS_WORDS[status]),
                bars=tuple(_bar(stat, _) for stat in days.get(site.key, ())),
                uptime=tuple(
                    (key, _(words), _percent(share, language))
                    for (key, share), (_key, words, _count) in zip(shares, PERIODS, strict=True)
                ),
                ratios=tuple(shares),
                components=tuple(components),
            )
        )
    views = [
        _incident_view(
            incident,
            timelines.get(incident.id or 0, ()),
            site_label=labels.get(incident.site, ""),
            gettext=_,
            language=language,
            tz=tz,
        )
        for incident in sorted(incidents, key=lambda i: i.opened_at, reverse=True)
        if incident.site in labels
    ]
    status = overall(view.status for view in site_views)
    return StatusView(
        title=title,
        language=language,
        status=status,
        banner=_(BANNER_WORDS[status]),
        sites=tuple(site_views),
        active=tuple(v for v in views if v.stage is not Stage.RESOLVED),
        history=tuple(v for v in views if v.stage is Stage.RESOLVED),
        maintenance=tuple(
            MaintenanceView(
                site_label=labels[key],
                starts_at=start,
                ends_at=end,
                text=reason,
                in_force=start <= now < end,
            )
            for key, start, end, reason in sorted(maintenance, key=lambda m: m[1])
            if key in labels
        ),
        updated_at=now,
        updated_text=local_time(now, tz, locale=language),
        words={key: _(text) for key, text in PAGE_WORDS.items()},
    )


def _incident_view(
    incident: Incident,
    timeline: Sequence[TimelineEntry],
    *,
    site_label: str,
    gettext: wording.Gettext,
    language: str,
    tz: ZoneInfo,
) -> IncidentView:
    _ = gettext
    updates: list[PublicUpdate] = public_updates(incident, timeline)
    stage = stage_of(incident, updates)
    title = (
        wording.title(incident.headline, gettext=_, locale=language)
        if incident.headline is not None
        else _("%(site)s: service disruption") % {"site": site_label}
    )
    markdown = postmortem(timeline) if not incident.is_open else None
    return IncidentView(
        number=incident.id or 0,
        title=title,
        status=site_status(incident, in_maintenance=False),
        stage=stage,
        stage_text=_(STAGE_WORDS[stage]),
        site_label=site_label,
        opened_at=incident.opened_at,
        opened_text=local_time(incident.opened_at, tz, locale=language),
        resolved_at=incident.resolved_at,
        resolved_text=(
            local_time(incident.resolved_at, tz, locale=language) if incident.resolved_at else None
        ),
        updated_at=updates[-1].at if updates else incident.opened_at,
        updates=tuple(
            UpdateView(
                at=update.at,
                at_text=local_time(update.at, tz, locale=language),
                stage=update.stage,
                stage_text=_(STAGE_WORDS[update.stage]),
                text=_(update.text) if update.text == RESOLVED_TEXT else update.text,
            )
            for update in reversed(updates)
        ),
        postmortem_html=render(markdown) if markdown else None,
    )


def _uptime(stats: Sequence[DayStat], count: int) -> float | None:
    return uptime(stats[-count:]) if stats else None


def _bar(stat: DayStat, _: wording.Gettext) -> Bar:
    day = stat.day.isoformat()
    if stat.worst is DayState.NO_DATA:
        return Bar(day=stat.day, state="none", tooltip=_("%(day)s: no data") % {"day": day})
    values = {"day": day, "minutes": round(stat.downtime_minutes), "count": stat.incidents}
    tooltip = _("%(day)s: %(minutes)s min down, incidents: %(count)s") % values
    if stat.maintenance_seconds > 0:
        maintained = {"minutes": round(stat.maintenance_seconds / 60)}
        tooltip += "; " + _("%(minutes)s min maintenance") % maintained
    return Bar(day=stat.day, state=_BAR_STATES[stat.worst], tooltip=tooltip)


def _percent(share: float | None, language: str) -> str:
    if share is None:
        return "-"
    # Rounded down: a site that was down for a minute never reads "100.00 %".
    shown = math.floor(share * 10_000) / 100
    return f"{format_decimal(shown, format='0.00', locale=language)} %"

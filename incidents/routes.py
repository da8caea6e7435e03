"""Who hears what: routes from an incident event to the named channels that carry it.

Pure: a route is a filter (events, severities, clients, the agency's business hours or after
hours) and the channels it sends to; `channels_for` returns every channel of every matching
route, in the order routes name them, each once. Two channels are built in and need no
`channels:` entry: `email` (the on-call email list) and `webhook` (the on-call webhook).

Without configured routes `default_routes` reproduces what the monitor did before routes
existed: on-call email hears everything it was mailed before, the on-call webhook and every
configured chat channel hear Severity 1 pages (event `paged`).

Events (`Event`), and the timeline entries that raise them (see `entry_events`):

    opened          on-call is told of a new incident (ONCALL_PAGED with the opening,
                    ONCALL_NOTIFIED: a Severity 2+ in business hours or at the next opening;
                    under an escalation policy, its first PAGED entry of the opening)
    escalated       severity rose (ESCALATED; with the page when it rose to Severity 1)
    paged           Severity 1 paged at once, day or night (ONCALL_PAGED); the escalation
                    levels of on-call pages use this event too
    update_due      a client update falls due soon (UPDATE_REMINDER)
    overdue         a client update is overdue, or the response target breached
    resolved        the incident is resolved
    monitor_health  the monitor's own connectivity was lost or restored (no incident)
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from incidents.calendar import Calendar
from incidents.model import TimelineEntry, TimelineKind
from incidents.severity import Severity

EMAIL_CHANNEL = "email"  # built in: the on-call email list (oncall.emails)
WEBHOOK_CHANNEL = "webhook"  # built in: the on-call webhook (oncall.webhook)
BUILT_IN_CHANNELS = frozenset({EMAIL_CHANNEL, WEBHOOK_CHANNEL})


class Event(enum.StrEnum):
    OPENED = "opened"
    ESCALATED = "escalated"
    PAGED = "paged"
    UPDATE_DUE = "update_due"
    OVERDUE = "overdue"
    RESOLVED = "resolved"
    MONITOR_HEALTH = "monitor_health"


class Hours(enum.StrEnum):
    ANY = "any"  # day or night
    BUSINESS = "business"  # while the agency's business calendar is open
    AFTER_HOURS = "after_hours"  # while it is closed (nights, weekends, holidays)


@dataclass(frozen=True, slots=True)
class Route:
    """Send matching events to `channels`. A filter left None matches everything."""

    channels: tuple[str, ...]
    events: frozenset[Event] | None = None
    severities: frozenset[Severity] | None = None
    clients: frozenset[str] | None = None
    hours: Hours = Hours.ANY

    def matches(
        self,
        events: frozenset[Event],
        *,
        severity: Severity | None,
        client: str | None,
        open_now: bool,
    ) -> bool:
        """Whether this route takes an occurrence of `events`. A severity or client filter
        never matches a notice without one (monitor health): name no filter to hear those."""
        if self.events is not None and not (self.events & events):
            return False
        if self.severities is not None and severity not in self.severities:
            return False
        if self.clients is not None and client not in self.clients:
            return False
        if self.hours is Hours.BUSINESS:
            return open_now
        if self.hours is Hours.AFTER_HOURS:
            return not open_now
        return True


def channels_for(
    routes: Sequence[Route],
    events: Iterable[Event],
    *,
    severity: Severity | None,
    client: str | None,
    at: datetime,
    agency_hours: Calendar,
) -> tuple[str, ...]:
    """The channels that hear of `events` (raised together by one occurrence) at `at`: each
    channel of each matching route, in route order, once."""
    wanted = frozenset(events)
    if not wanted:
        return ()
    open_now = agency_hours.is_open(at)
    found: dict[str, None] = {}
    for route in routes:
        if route.matches(wanted, severity=severity, client=client, open_now=open_now):
            found.update(dict.fromkeys(route.channels))
    return tuple(found)


def default_routes(*, webhook: bool, chats: Sequence[str] = ()) -> tuple[Route, ...]:
    """The routes in force when the configuration names none: today's behaviour (on-call
    email for all it hears, the webhook for Severity 1 pages) plus every chat channel paged
    alike."""
    routes = [Route(channels=(EMAIL_CHANNEL,))]
    paged = [*([WEBHOOK_CHANNEL] if webhook else []), *chats]
    if paged:
        routes.append(Route(channels=tuple(paged), events=frozenset({Event.PAGED})))
    return tuple(routes)


_BY_KIND = {
    TimelineKind.ONCALL_NOTIFIED: frozenset({Event.OPENED}),
    TimelineKind.UPDATE_REMINDER: frozenset({Event.UPDATE_DUE}),
    TimelineKind.UPDATE_OVERDUE: frozenset({Event.OVERDUE}),
    TimelineKind.RESPONSE_BREACHED: frozenset({Event.OVERDUE}),
    TimelineKind.RESOLVED: frozenset({Event.RESOLVED}),
}


def entry_events(entry: TimelineEntry, timeline: Sequence[TimelineEntry]) -> frozenset[Event]:
    """The events `entry` raises, `timeline` being the entries recorded with it.

    A page raises `paged`, plus `opened` or `escalated` for what caused it; an escalation
    that pages leaves `escalated` to its page, so that one change is one message per channel.
    """
    kinds = {other.kind for other in timeline}
    if entry.kind is TimelineKind.PAGED:
        # An escalation policy's page (`paged` is the page's own, see flow.page_messages):
        # the first page of an opening tells on-call of it, as ONCALL_PAGED does.
        first = next(other for other in timeline if other.kind is TimelineKind.PAGED)
        if first is entry and TimelineKind.OPENED in kinds:
            return frozenset({Event.OPENED})
        return frozenset()
    if entry.kind is TimelineKind.ONCALL_PAGED:
        events = {Event.PAGED}
        if TimelineKind.OPENED in kinds:
            events.add(Event.OPENED)
        elif TimelineKind.ESCALATED in kinds:
            events.add(Event.ESCALATED)
        return frozenset(events)
    if entry.kind is TimelineKind.ESCALATED:
        return frozenset() if TimelineKind.ONCALL_PAGED in kinds else frozenset({Event.ESCALATED})
    return _BY_KIND.get(entry.kind, frozenset())

"""What the runtime tells the world: one event per thing a person cares about.

Each event becomes one log line (readable by default, JSON with --log-format json) and is
handed to listeners (the demo prints them).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger("monitor.events")


class EventKind(enum.StrEnum):
    CONFIG_LOADED = "config_loaded"
    CHECK_FAILED = "check_failed"  # a check's outcome went from ok (or another class) to a failure
    CHECK_RECOVERED = "check_recovered"  # a failing check answered ok again
    INCIDENT_OPENED = "incident_opened"
    INCIDENT_CHECK_ADDED = "incident_check_added"  # another check of the site is failing too
    INCIDENT_ESCALATED = "incident_escalated"
    INCIDENT_DEESCALATED = "incident_deescalated"  # an operator lowered the severity by hand
    INCIDENT_CHECK_RECOVERED = "incident_check_recovered"
    INCIDENT_RESOLVED = "incident_resolved"
    ONCALL_PAGED = "oncall_paged"
    ONCALL_NOTIFIED = "oncall_notified"
    INCIDENT_ACKNOWLEDGED = "incident_acknowledged"
    CLIENT_UPDATE = "client_update"
    INTERNAL_NOTE = "internal_note"  # an operator's note for the team (not for the client)
    POSTMORTEM = "postmortem"  # a post-mortem was attached to a resolved incident
    SLA_REMINDER = "sla_reminder"  # a client update falls due soon
    SLA_BREACHED = "sla_breached"  # response target breached, or a client update overdue
    MAINTENANCE_STARTED = "maintenance_started"  # an open incident's clocks paused
    MAINTENANCE_ENDED = "maintenance_ended"  # ...and resumed, due times moved
    PROBE_DISCARDED = "probe_discarded"  # timing not trusted: the monitor itself was overloaded
    STORE_ERROR = "store_error"


_WARNING_KINDS = {
    EventKind.CHECK_FAILED,
    EventKind.INCIDENT_OPENED,
    EventKind.INCIDENT_ESCALATED,
    EventKind.PROBE_DISCARDED,
    EventKind.ONCALL_PAGED,
    EventKind.SLA_BREACHED,
}


@dataclass(frozen=True, slots=True)
class MonitorEvent:
    kind: EventKind
    at: datetime
    message: str  # the whole log line, self-contained
    fields: dict[str, Any] = field(default_factory=dict)


def log_event(event: MonitorEvent) -> None:
    if event.kind is EventKind.STORE_ERROR:
        level = logging.ERROR
    elif event.kind in _WARNING_KINDS:
        level = logging.WARNING
    else:
        level = logging.INFO
    log.log(level, event.message, extra={"event": str(event.kind), **event.fields})

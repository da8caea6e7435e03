"""Incidents as JSON-ready dicts, for the HTTP API and `monitor incidents --json`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from incidents.model import Incident, TimelineEntry


def iso(value: datetime | None) -> str | None:
    """`2026-11-26T08:43:00Z`: UTC, second precision, as operators read and scripts parse."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def incident_dict(incident: Incident, *, client_timezone: str | None = None) -> dict[str, Any]:
    """`client_timezone`: the IANA zone of the client's business hours, so that a caller can
    show due times as the client reads them (`monitor queue`)."""
    return {
        "id": incident.id,
        "ref": incident.ref,
        "client": incident.client,
        "client_timezone": client_timezone,
        "site": incident.site,
        "title": incident.title,
        "severity": int(incident.severity),
        "status": str(incident.status),
        "opened_at": iso(incident.opened_at),
        "resolved_at": iso(incident.resolved_at),
        "failing_checks": sorted(incident.failing_checks),
        "checks": sorted(incident.checks),
        "clocks": {
            "calendar": incident.calendar,
            "response_aim_at": iso(incident.response_aim_at),
            "response_due_at": iso(incident.response_due_at),
            "responded_at": iso(incident.responded_at),
            "acknowledged_by": incident.acknowledged_by,
            "last_update_at": iso(incident.last_update_at),
            "next_update_due_at": iso(incident.next_update_due_at),
            "oncall_notified_at": iso(incident.oncall_notified_at),
            # Set while a maintenance window pauses the clocks (no update due, no reminder).
            "paused_since": iso(incident.paused_since),
            "paused_until": iso(incident.paused_until),
        },
    }


def timeline_dict(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "at": iso(entry.at),
        "kind": str(entry.kind),
        "message": entry.message,
        "check": entry.check,
        "outcome": str(entry.outcome) if entry.outcome is not None else None,
        "severity": int(entry.severity) if entry.severity is not None else None,
        "evidence": entry.evidence,
    }

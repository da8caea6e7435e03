"""Conversions between domain values and table rows, both ways. Pure functions."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import RowMapping

from checks.result import Outcome, ProbeResult
from incidents.model import (
    CheckState,
    Headline,
    Incident,
    IncidentStatus,
    TimelineEntry,
    TimelineKind,
)
from incidents.severity import Severity
from monitor.store.text import storable

# Timeline evidence is kept forever, so it is capped whatever a probe put in it.
EVIDENCE_MAX_CHARS = 16 * 1024
_STRING_MAX_CHARS = 2048
_ITEMS_MAX = 32
_DEPTH_MAX = 3
ERROR_MAX_CHARS = 1000


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One stored probe result of a check's bounded recent history."""

    at: datetime
    outcome: Outcome
    latency: float | None
    status: int | None
    error: str | None


def incident_values(incident: Incident, *, updated_at: datetime) -> dict[str, Any]:
    """The row's values but its id and version, which the store sets (compare-and-set)."""
    return {
        "client": incident.client,
        "site": incident.site,
        "title": incident.title,
        "severity": int(incident.severity),
        "status": incident.status.value,
        "opened_at": incident.opened_at,
        "resolved_at": incident.resolved_at,
        "failing_checks": sorted(incident.failing_checks),
        "checks": sorted(incident.checks),
        "updated_at": updated_at,
        "calendar": incident.calendar,
        "response_aim_at": incident.response_aim_at,
        "response_due_at": incident.response_due_at,
        "responded_at": incident.responded_at,
        "acknowledged_by": incident.acknowledged_by,
        "last_update_at": incident.last_update_at,
        "next_update_due_at": incident.next_update_due_at,
        "oncall_notified_at": incident.oncall_notified_at,
        "sla_marks": sorted(incident.sla_marks),
        "headline": headline_values(incident.headline),
        "failing_since": incident.failing_since,
        "paused_since": incident.paused_since,
        "paused_until": incident.paused_until,
    }


def incident_from_row(row: RowMapping) -> Incident:
    return Incident(
        id=row["id"],
        client=row["client"],
        site=row["site"],
        title=row["title"],
        severity=Severity(row["severity"]),
        status=IncidentStatus(row["status"]),
        opened_at=row["opened_at"],
        resolved_at=row["resolved_at"],
        failing_checks=frozenset(row["failing_checks"]),
        checks=frozenset(row["checks"]),
        calendar=row["calendar"],
        response_aim_at=row["response_aim_at"],
        response_due_at=row["response_due_at"],
        responded_at=row["responded_at"],
        acknowledged_by=row["acknowledged_by"],
        last_update_at=row["last_update_at"],
        next_update_due_at=row["next_update_due_at"],
        oncall_notified_at=row["oncall_notified_at"],
        sla_marks=frozenset(row["sla_marks"]),
        headline=headline_from_values(row["headline"]),
        failing_since=row["failing_since"],
        paused_since=row["paused_since"],
        paused_until=row["paused_until"],
        version=row["version"],
    )


def headline_values(headline: Headline | None) -> dict[str, Any] | None:
    if headline is None:
        return None
    return {
        "site_label": headline.site_label,
        "check": headline.check,
        "part": headline.part,
        "availability": headline.availability,
        "outcome": headline.outcome.value,
        "status": headline.status,
        "step": headline.step,
        "latency": headline.latency,
        "slow_after": headline.slow_after,
    }


def headline_from_values(values: Any) -> Headline | None:
    # A row another version wrote may lack it or hold an outcome this one does not know:
    # then the mails fall back to the stored English title.
    if not isinstance(values, dict):
        return None
    try:
        return Headline(
            site_label=str(values["site_label"]),
            check=str(values["check"]),
            part=str(values["part"]),
            availability=bool(values["availability"]),
            outcome=Outcome(values["outcome"]),
            status=values.get("status"),
            step=values.get("step"),
            latency=values.get("latency"),
            slow_after=values.get("slow_after"),
        )
    except (KeyError, ValueError):
        return None


def timeline_values(entry: TimelineEntry, *, incident_id: int) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "at": entry.at,
        "kind": entry.kind.value,
        "message": entry.message,
        "check_key": entry.check,
        "outcome": entry.outcome.value if entry.outcome is not None else None,
        "severity": int(entry.severity) if entry.severity is not None else None,
        "evidence": bounded_evidence(entry.evidence),
    }


def timeline_from_row(row: RowMapping) -> TimelineEntry:
    return TimelineEntry(
        at=row["at"],
        kind=TimelineKind(row["kind"]),
        message=row["message"],
        check=row["check_key"],
        outcome=Outcome(row["outcome"]) if row["outcome"] is not None else None,
        severity=Severity(row["severity"]) if row["severity"] is not None else None,
        evidence=row["evidence"],
    )


def state_values(state: CheckState) -> dict[str, Any]:
    return {
        "check_key": state.key,
        "recent": [int(s) if s is not None else None for s in state.recent],
        "successes": state.successes,
        "failing": state.failing,
        "severity": int(state.severity) if state.severity is not None else None,
        "last_outcome": state.last_outcome.value if state.last_outcome is not None else None,
        "last_result_at": state.last_result_at,
        "since": state.since,
        "held": state.held,
    }


def state_from_row(row: RowMapping) -> CheckState:
    return CheckState(
        key=row["check_key"],
        recent=tuple(Severity(s) if s is not None else None for s in row["recent"]),
        successes=row["successes"],
        failing=bool(row["failing"]),
        severity=Severity(row["severity"]) if row["severity"] is not None else None,
        last_outcome=Outcome(row["last_outcome"]) if row["last_outcome"] is not None else None,
        last_result_at=row["last_result_at"],
        since=row["since"],
        held=bool(row["held"]),
    )


# A check_history row as the store buffers and inserts it, in this column order.
HISTORY_COLUMNS = ("check_key", "at", "outcome", "latency", "status", "error")
HistoryValues = tuple[str, datetime, str, float | None, int | None, str | None]


def history_row(check_key: str, result: ProbeResult) -> HistoryValues:
    """The history row of one result: a plain tuple, since one is made per probe."""
    evidence = result.evidence
    error = evidence.error
    return (
        check_key,
        result.started_at,
        result.outcome.value,
        result.latency,
        evidence.status,
        # Written as a plain tuple (see Store._append_history), past CleanText: cleaned here.
        storable(error[:ERROR_MAX_CHARS]) if error is not None else None,
    )


def sqlite_history_rows(rows: Iterable[HistoryValues]) -> list[tuple[Any, ...]]:
    """Rows with `at` as SQLite keeps it (see tables.UTCDateTime): naive UTC text in
    SQLAlchemy's format, so what SQLAlchemy wrote and reads back stays one format."""
    return [(key, _sqlite_time(at), *rest) for key, at, *rest in rows]


def _sqlite_time(at: datetime) -> str:
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    text = at.replace(tzinfo=None).isoformat(" ")
    return text if at.microsecond else text + ".000000"


def history_from_row(row: RowMapping) -> HistoryRow:
    return HistoryRow(
        at=row["at"],
        outcome=Outcome(row["outcome"]),
        latency=row["latency"],
        status=row["status"],
        error=row["error"],
    )


def bounded_evidence(evidence: dict[str, Any] | None) -> dict[str, Any] | None:
    """Evidence as plain JSON of at most EVIDENCE_MAX_CHARS characters once encoded.

    Small evidence (the usual case: the probe caps the body excerpt to 2 KB) is kept as is.
    Larger evidence has long strings and collections cut, then whole keys dropped until it
    fits, and is marked {"truncated": true}.
    """
    if evidence is None:
        return None
    # Round-trip so what we store is what we read back (tuples become lists, and so on).
    plain: dict[str, Any] = json.loads(json.dumps(evidence, default=str))
    if _encoded_len(plain) <= EVIDENCE_MAX_CHARS:
        return plain
    bounded: dict[str, Any] = {"truncated": True}
    used = _encoded_len(bounded)
    for key, value in plain.items():
        item = {key: _clamp(value, depth=1)}
        size = _encoded_len(item)
        if used + size <= EVIDENCE_MAX_CHARS:
            bounded.update(item)
            used += size
    return bounded


def _clamp(value: Any, *, depth: int) -> Any:
    if isinstance(value, str):
        return value[:_STRING_MAX_CHARS]
    if isinstance(value, dict | list) and depth >= _DEPTH_MAX:
        return "..."
    if isinstance(value, dict):
        items = list(value.items())[:_ITEMS_MAX]
        return {k[:_STRING_MAX_CHARS]: _clamp(v, depth=depth + 1) for k, v in items}
    if isinstance(value, list):
        return [_clamp(v, depth=depth + 1) for v in value[:_ITEMS_MAX]]
    return value


def _encoded_len(value: Any) -> int:
    return len(json.dumps(value))

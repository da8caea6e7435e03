"""What operator commands print: incidents from the API as lines a person reads at a terminal.

Pure functions of the API's JSON, the time zones and `now`. Every text that may have come
from a target (titles, timeline messages with reason phrases) passes through
`sanitize_header_text`, so an escape sequence a hostile site sent cannot drive the
operator's terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from checks.phases import PHASES
from checks.redact import redact_url
from checks.result import ProbeResult
from incidents.message_text import sanitize_header_text, short_local_time, span
from incidents.severity import Severity
from incidents.wording import describe
from monitor.incident_list import format_table

# Less than this either side of a due time reads as "due now" rather than "in 0 min".
_NOW_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Zones:
    """The operator's zone, in which every time is shown, and each client's (by client id)."""

    operator: ZoneInfo
    clients: Mapping[str, ZoneInfo] = field(default_factory=dict)


def clean(text: Any, *, max_len: int = 200) -> str:
    """One line safe for a terminal: no control characters, no escape sequences."""
    return sanitize_header_text("" if text is None else str(text), max_len=max_len)


def instant(text: str | None) -> datetime | None:
    """The API's `2026-11-26T08:43:00Z` as an aware datetime."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def time_left(due: datetime, *, now: datetime) -> str:
    """`in 1 h 20 min`, `25 min overdue` or `due now`."""
    left = due - now
    if abs(left) < _NOW_WINDOW:
        return "due now"
    return f"in {span(left)}" if left > timedelta(0) else f"{span(left)} overdue"


def _when(text: str | None, zones: Zones, *, now: datetime) -> str:
    at = instant(text)
    return "-" if at is None else short_local_time(at, zones.operator, now=now)


def client_zone(incident: Mapping[str, Any], zones: Zones) -> ZoneInfo | None:
    """The client's zone: the API's `client_timezone`, else the local config's, else None."""
    name = incident.get("client_timezone")
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass  # a zone this machine lacks: fall back to what the config says
    return zones.clients.get(str(incident.get("client")))


def _client_when(text: str | None, tz: ZoneInfo | None, *, now: datetime) -> str:
    at = instant(text)
    if at is None or tz is None:
        return "-"
    return short_local_time(at, tz, now=now)


def _both(
    text: str | None, client: str, zones: Zones, *, now: datetime, zone_of: ZoneInfo | None = None
) -> str:
    """The time in the operator's zone, and in the client's where that reads differently."""
    at = instant(text)
    if at is None:
        return "-"
    mine = short_local_time(at, zones.operator, now=now)
    tz = zones.clients.get(client) if zone_of is None else zone_of
    if tz is None or at.astimezone(tz).utcoffset() == at.astimezone(zones.operator).utcoffset():
        return mine
    return f"{mine} (client: {short_local_time(at, tz, now=now)})"


def action_line(action: str, incident: Mapping[str, Any], *, by: str, zones: Zones) -> str:
    """One line for `monitor ack`, `update` and `resolve`, e.g.
    `INC-42 acknowledged by alice at 10:14 CET`."""
    clocks = incident["clocks"]
    at_field = {
        "acknowledged": clocks.get("responded_at"),
        "updated": clocks.get("last_update_at"),
        "resolved": incident.get("resolved_at"),
    }[action]
    at = instant(at_field)
    # Without a recorded time (an acknowledgement after a client update), say what happened.
    when = "" if at is None else f" at {short_local_time(at, zones.operator, now=at)}"
    if action == "acknowledged" and clocks.get("acknowledged_by") not in (None, by):
        # Someone was first: the API keeps that acknowledgement and so does this line.
        action, by = "already acknowledged", str(clocks["acknowledged_by"])
    line = f"{incident['ref']} {action} by {clean(by, max_len=80)}{when}"
    due = instant(clocks.get("next_update_due_at"))
    if action == "updated" and due is not None and at is not None:  # the cadence restarted
        line += f"; next client update due {short_local_time(due, zones.operator, now=at)}"
    return line


def queue_table(queue: list[Mapping[str, Any]], *, zones: Zones, now: datetime) -> str:
    """`monitor queue`: times in the operator's zone and the time left to respond."""
    if not queue:
        return "the queue is empty: every open incident has a response"
    rows: list[tuple[str, ...]] = [
        ("ID", "SEV", "OPENED", "RESPONSE DUE", "CLIENT'S TIME", "LEFT", "SITE", "TITLE")
    ]
    for item in queue:
        clocks = item["clocks"]
        tz = client_zone(item, zones)
        due = instant(clocks.get("response_due_at"))
        if clocks.get("paused_since"):
            left = "paused"
        else:
            left = "-" if due is None else time_left(due, now=now)
        rows.append(
            (
                clean(item["ref"]),
                str(item["severity"]),
                _when(item.get("opened_at"), zones, now=now),
                _when(clocks.get("response_due_at"), zones, now=now),
                _client_when(clocks.get("response_due_at"), tz, now=now),
                left,
                clean(item["site"]),
                clean(item["title"], max_len=80),
            )
        )
    return format_table(rows)


def incident_details(incident: Mapping[str, Any], *, zones: Zones, now: datetime) -> str:
    """`monitor show INC-42`: the incident, its clocks and its timeline."""
    clocks = incident["clocks"]
    client = str(incident["client"])
    is_open = incident["status"] == "open"
    paused = bool(clocks.get("paused_since"))

    tz = client_zone(incident, zones)

    def both(text: str | None) -> str:
        return _both(text, client, zones, now=now, zone_of=tz)

    def due(text: str | None) -> str:
        at = instant(text)
        if at is None:
            return "-"
        if not is_open:
            return both(text)
        return f"{both(text)}, {'paused' if paused else time_left(at, now=now)}"

    severity = Severity(int(incident["severity"])).label
    lines = [
        f"{clean(incident['ref'])}  {severity}  {clean(incident['status'])}",
        clean(incident["title"], max_len=300),
        "",
    ]
    fields: list[tuple[str, str]] = [
        ("site", clean(incident["site"])),
        ("opened", both(incident.get("opened_at"))),
    ]
    if incident.get("resolved_at"):
        fields.append(("resolved", both(incident["resolved_at"])))
    calendar = clocks.get("calendar")
    if calendar:
        fields.append(("clocks count", "business hours" if calendar == "business" else "24x7"))
    if clocks.get("responded_at"):
        by = clocks.get("acknowledged_by")
        responded = both(clocks["responded_at"]) + (f" by {clean(by)}" if by else "")
        fields.append(("responded", responded))
    else:
        fields.append(("response due", due(clocks.get("response_due_at"))))
    if clocks.get("last_update_at"):
        fields.append(("last update", both(clocks["last_update_at"])))
    if clocks.get("next_update_due_at") and is_open:
        fields.append(("next update", due(clocks["next_update_due_at"])))
    if paused:
        until = clocks.get("paused_until")
        window = f" until {both(until)}" if until else ""
        fields.append(("paused", f"since {both(clocks['paused_since'])}{window} (maintenance)"))
    failing = [clean(key) for key in incident.get("failing_checks") or []]
    if failing:
        fields.append(("failing", ", ".join(failing)))
    width = max(len(name) for name, _ in fields)
    lines += [f"{name:<{width}}  {value}" for name, value in fields]
    timeline = _timeline(incident.get("timeline") or [], zones=zones, now=now)
    # Before the timeline, which ends the page (scripts read it to the end).
    notifications = _notifications(incident.get("notifications") or [])
    return "\n".join(lines + notifications + timeline)


def _notifications(rows: list[Mapping[str, Any]]) -> list[str]:
    """Where each notification went ("email", "webhook", a chat channel's name) and how its
    delivery stands: a failed one says why, so on-call sees which channel never heard."""
    shown = [
        (clean(row.get("channel")), clean(row.get("kind")).replace("_", " "), _delivery(row))
        for row in rows
    ]
    return _section("notifications", shown)


def _delivery(row: Mapping[str, Any]) -> str:
    status, attempts = clean(row.get("status")), int(row.get("attempts") or 0)
    error = row.get("last_error")
    if status == "sent":
        return "sent" + (f" (after {attempts} failed attempts)" if attempts else "")
    why = f": {clean(error, max_len=200)}" if error else ""
    if status == "failed":
        return f"FAILED after {attempts} attempt{'s' if attempts != 1 else ''}{why}"
    return f"pending, {attempts} failed attempt{'s' if attempts != 1 else ''}{why}"


def _timeline(timeline: list[Mapping[str, Any]], *, zones: Zones, now: datetime) -> list[str]:
    entries = [
        (
            _when(entry.get("at"), zones, now=now),
            clean(entry.get("kind")).replace("_", " "),
            clean(entry.get("message"), max_len=300),
        )
        for entry in timeline
    ]
    return _section("timeline", entries)


def _section(title: str, rows: list[tuple[str, str, str]]) -> list[str]:
    """A titled block of three aligned columns, after a blank line; nothing without rows."""
    if not rows:
        return []
    first = max(len(row[0]) for row in rows)
    second = max(len(row[1]) for row in rows)
    return [
        "",
        title,
        *(f"  {a:<{first}}  {b:<{second}}  {c}".rstrip() for a, b, c in rows),
    ]


def probe_text(check_key: str, result: ProbeResult) -> str:
    """`monitor probe`'s answer: the verdict on one line, then the evidence, one field a line
    (the on-call view: status, error, where the time went, headers, the body's start)."""
    evidence = result.evidence
    lines = [f"{clean(check_key)}: {clean(describe(result), max_len=400)}"]
    if evidence.url:
        lines.append(f"  url       {clean(redact_url(evidence.url), max_len=400)}")
    if evidence.status is not None:
        lines.append(f"  status    {evidence.status}")
    if evidence.step:
        lines.append(f"  step      {clean(evidence.step)}")
    if evidence.error:
        lines.append(f"  error     {clean(evidence.error, max_len=400)}")
    if evidence.timings:
        lines.append(f"  timings   {_timings(evidence.timings)}")
    for name, value in list(evidence.to_dict()["headers"].items())[:20]:
        lines.append(f"  header    {clean(name)}: {clean(value)}")
    excerpt = evidence.body_excerpt.strip()
    if excerpt:
        lines.append(f"  body      {clean(excerpt, max_len=300)}")
    return "\n".join(lines)


def _timings(timings: Mapping[str, float]) -> str:
    # The phases in the order they happen, then the rest as the probe named them.
    ordered: list[str] = [name for name in PHASES if name in timings]
    ordered += [name for name in timings if name not in ordered]
    parts = []
    for name in ordered:
        value = timings[name]
        if name == "attempts":
            parts.append(f"attempts {value:g}")
        elif value < 1:
            parts.append(f"{clean(name)} {value * 1000:.1f} ms")
        else:
            parts.append(f"{clean(name)} {value:.2f} s")
    return ", ".join(parts)

"""`monitor oncall`: who the rotation says is on call at an instant, and until when."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from incidents.message_text import local_time, utc_iso
from incidents.rotation import on_call_at
from monitor.config.models import MonitorConfig, OncallSections


def oncall_answer(
    config: MonitorConfig | OncallSections, *, at: datetime, as_json: bool = False
) -> str:
    """One line (or a JSON object) naming the person on call at `at` (aware) and until when,
    in the agency's time zone. Without a rotation it says where pages go instead."""
    rotation = config.oncall.rotation
    zone = ZoneInfo(config.agency.timezone)
    if rotation is None:
        team = ", ".join(config.oncall.emails) or "nobody (oncall.emails is empty)"
        if as_json:
            return json.dumps({"person": None, "emails": list(config.oncall.emails)})
        return f"no oncall.rotation configured: pages go to {team}"
    shift = on_call_at(rotation, at, zone=zone)
    emails = {person.name: person.email for person in config.people}
    if as_json:
        return json.dumps(
            {
                "person": shift.person,
                "email": emails.get(shift.person),
                "since": utc_iso(shift.since),
                "until": utc_iso(shift.until),
                "override": shift.override,
                "timezone": config.agency.timezone,
            }
        )
    how = " (override)" if shift.override else ""
    return (
        f"{shift.person} is on call{how} until {local_time(shift.until, zone)} "
        f"(since {local_time(shift.since, zone)})"
    )


def parse_instant(text: str) -> datetime:
    """`--at`: ISO 8601 with a zone (`Z` allowed); ValueError says how to write it."""
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"--at must be ISO 8601, e.g. 2026-03-30T09:00:00+02:00 (got {text!r})"
        ) from exc
    if at.utcoffset() is None:
        raise ValueError("--at needs a time zone, e.g. 2026-03-30T07:00:00Z or +02:00")
    return at

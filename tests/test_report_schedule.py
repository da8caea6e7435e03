"""The monthly report goes out on the first working day of the month in the client's
calendar: a table of fixed instants."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from incidents.calendar import TWENTY_FOUR_SEVEN, Calendar
from incidents.calendar_spec import BusinessHoursSpec, build_calendar
from incidents.report_schedule import due_report_month

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
PLAIN = build_calendar(BusinessHoursSpec(timezone="Europe/Berlin"))
GERMAN = build_calendar(
    BusinessHoursSpec.model_validate(
        {"timezone": "Europe/Berlin", "holidays": {"country": "DE", "subdivision": "BE"}}
    )
)
US = build_calendar(BusinessHoursSpec(timezone="America/New_York"))


def local(text: str, zone: ZoneInfo = BERLIN) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


@pytest.mark.parametrize(
    ("now", "calendar", "zone", "due"),
    [
        # Tue 1 Dec 2026 is a working day: from 09:00 in Berlin.
        (local("2026-12-01T08:59"), PLAIN, BERLIN, None),
        (local("2026-12-01T09:00"), PLAIN, BERLIN, "2026-11"),
        (local("2026-12-31T23:59"), PLAIN, BERLIN, "2026-11"),  # still due all month
        # Sun 1 Nov 2026: the first working day is Mon 2 Nov.
        (local("2026-11-01T12:00"), PLAIN, BERLIN, None),
        (local("2026-11-02T09:00"), PLAIN, BERLIN, "2026-10"),
        # Fri 1 Jan 2027 is New Year's Day in Germany: Mon 4 Jan; the year turns back.
        (local("2027-01-01T10:00"), PLAIN, BERLIN, "2026-12"),
        (local("2027-01-01T10:00"), GERMAN, BERLIN, None),
        (local("2027-01-04T09:00"), GERMAN, BERLIN, "2026-12"),
        # The client's zone, not UTC: 1 Dec 09:00 in New York is 14:00 UTC.
        (local("2026-12-01T13:59", ZoneInfo("UTC")), US, NEW_YORK, None),
        (local("2026-12-01T14:00", ZoneInfo("UTC")), US, NEW_YORK, "2026-11"),
        # Still November in New York at 03:00 UTC on 1 Dec: October's report is due.
        (local("2026-12-01T03:00", ZoneInfo("UTC")), US, NEW_YORK, "2026-10"),
        # Around the clock: from local midnight.
        (local("2026-12-01T00:00"), TWENTY_FOUR_SEVEN, BERLIN, "2026-11"),
    ],
)
def test_the_report_is_due_from_the_first_working_day(
    now: datetime, calendar: Calendar, zone: ZoneInfo, due: str | None
) -> None:
    assert due_report_month(now, business=calendar, zone=zone) == due

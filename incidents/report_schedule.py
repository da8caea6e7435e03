"""When a client's monthly service report is sent: on the first working day of the month,
for the month before, in the client's own calendar.

Pure: a function of `now` and the client's business calendar. The report of a month is due
from the first business opening of the next month (Tuesday 1 December 09:00 in Berlin for
November 2026; Monday 4 January 2027 when New Year's Day is a holiday and the 2nd and 3rd a
weekend) until that month ends, so a monitor that was down on the day sends it when it comes
back. That it is sent once is the outbox's part (one Message-ID per client and month).
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from incidents.calendar import Calendar

__all__ = ["due_report_month", "previous_month"]


def previous_month(year: int, month: int) -> str:
    """`2026-11` for (2026, 12); `2026-12` for (2027, 1)."""
    return f"{year - 1:04d}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"


def due_report_month(now: datetime, *, business: Calendar, zone: tzinfo) -> str | None:
    """The month ("YYYY-MM") whose report is due at `now`, or None before the first working
    day of the current month (in `zone`, the client's) has begun."""
    local = now.astimezone(zone)
    first = datetime(local.year, local.month, 1, tzinfo=zone)
    if now < business.next_opening(first):
        return None
    return previous_month(local.year, local.month)

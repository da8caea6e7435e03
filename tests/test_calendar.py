"""Business-hours calendars: hand-written cases from the issue, then a brute-force oracle."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from incidents.business_duration import BusinessDuration, BusinessDurationField, Unit
from incidents.calendar import (
    MAX_CLOSED_STRETCH,
    TWENTY_FOUR_SEVEN,
    BusinessCalendar,
    Calendar,
    NoOpeningError,
    Window,
)
from incidents.calendar_spec import BusinessHoursSpec, build_calendar

LONDON = ZoneInfo("Europe/London")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
H = timedelta(hours=1)
MIN = timedelta(minutes=1)


def at(zone: ZoneInfo, text: str) -> datetime:
    """`2024-06-07 16:00` as that wall-clock time in `zone`."""
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def calendar(**spec: Any) -> BusinessCalendar:
    return build_calendar(BusinessHoursSpec.model_validate(spec))


LONDON_DEFAULT = calendar(timezone="Europe/London")
# Both kinds satisfy the Protocol (mypy checks this line).
CALENDARS: tuple[Calendar, ...] = (TWENTY_FOUR_SEVEN, LONDON_DEFAULT)
LONDON_ENGLAND = calendar(
    timezone="Europe/London", holidays={"country": "GB", "subdivision": "ENG"}
)


# --- the table -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cal", "start", "duration", "expected"),
    [
        pytest.param(
            LONDON_DEFAULT,
            at(LONDON, "2024-06-07 16:00"),
            4 * H,
            at(LONDON, "2024-06-10 12:00"),
            id="friday 16:00 + 4h = monday 12:00",
        ),
        pytest.param(
            LONDON_ENGLAND,  # Monday 27 May 2024 is the Spring bank holiday
            at(LONDON, "2024-05-24 16:00"),
            4 * H,
            at(LONDON, "2024-05-28 12:00"),
            id="monday bank holiday: tuesday 12:00",
        ),
        pytest.param(
            calendar(timezone="Europe/Berlin", holidays={"country": "DE", "subdivision": "BE"}),
            at(BERLIN, "2024-05-17 16:00"),  # Pfingstmontag is Monday 20 May 2024
            4 * H,
            at(BERLIN, "2024-05-21 12:00"),
            id="pfingstmontag: tuesday 12:00",
        ),
        pytest.param(
            LONDON_DEFAULT,
            at(LONDON, "2024-06-08 03:00"),
            4 * H,
            at(LONDON, "2024-06-10 13:00"),
            id="saturday 03:00 + 4h = monday 13:00",
        ),
        pytest.param(
            TWENTY_FOUR_SEVEN,
            at(LONDON, "2024-06-08 03:00"),
            4 * H,
            at(LONDON, "2024-06-08 07:00"),
            id="24x7: saturday 03:00 + 4h = saturday 07:00",
        ),
        pytest.param(
            calendar(timezone="Europe/London", closed_dates=["2024-06-10"]),
            at(LONDON, "2024-06-07 16:00"),
            4 * H,
            at(LONDON, "2024-06-11 12:00"),
            id="closed date on monday",
        ),
        pytest.param(
            LONDON_DEFAULT,
            at(LONDON, "2024-06-10 09:00"),
            8 * H,
            at(LONDON, "2024-06-10 17:00"),
            id="start exactly at opening, end exactly at closing",
        ),
        pytest.param(
            LONDON_DEFAULT,
            at(LONDON, "2024-06-10 17:00"),
            1 * H,
            at(LONDON, "2024-06-11 10:00"),
            id="start exactly at closing",
        ),
        pytest.param(
            LONDON_DEFAULT,
            at(LONDON, "2024-06-10 16:00"),
            1 * H,
            at(LONDON, "2024-06-10 17:00"),
            id="running out at closing gives the closing time",
        ),
    ],
)
def test_add_business_time(
    cal: Calendar, start: datetime, duration: timedelta, expected: datetime
) -> None:
    result = cal.add_business_time(start, duration)

    assert result == expected
    assert result.tzinfo is UTC
    assert cal.business_time_between(start, result) == duration


@pytest.mark.parametrize(
    ("zone", "friday", "monday_utc"),
    [
        # last Sunday of March / October in Berlin; second Sunday of March / first of
        # November in New York
        (BERLIN, "2025-03-28", datetime(2025, 3, 31, 9, tzinfo=UTC)),
        (BERLIN, "2025-10-24", datetime(2025, 10, 27, 10, tzinfo=UTC)),
        (NEW_YORK, "2025-03-07", datetime(2025, 3, 10, 15, tzinfo=UTC)),
        (NEW_YORK, "2025-10-31", datetime(2025, 11, 3, 16, tzinfo=UTC)),
    ],
    ids=["berlin-spring", "berlin-autumn", "new-york-spring", "new-york-autumn"],
)
def test_friday_plus_four_hours_across_a_dst_weekend(
    zone: ZoneInfo, friday: str, monday_utc: datetime
) -> None:
    cal = calendar(timezone=zone.key)
    start = at(zone, f"{friday} 15:00")

    result = cal.add_business_time(start, 4 * H)

    assert result == monday_utc
    assert result.astimezone(zone).strftime("%a %H:%M") == "Mon 11:00"
    # Keeping Friday's offset (what UTC arithmetic without zoneinfo does) is an hour off.
    monday = date.fromisoformat(friday) + timedelta(days=3)
    frozen_offset = datetime.fromisoformat(f"{monday} 11:00").replace(
        tzinfo=timezone(start.utcoffset() or timedelta(0))
    )
    assert abs(result - frozen_offset) == H
    assert cal.business_time_between(start, result) == 4 * H


@pytest.mark.parametrize(
    ("hours", "first", "last", "expected"),
    [
        ({"sat": ["00:00-24:00"], "sun": ["00:00-24:00"]}, "2025-03-29", "2025-03-31", 47 * H),
        ({"sat": ["00:00-24:00"], "sun": ["00:00-24:00"]}, "2025-10-25", "2025-10-27", 49 * H),
        ({"sun": ["02:00-03:00"]}, "2025-03-29", "2025-03-31", 0 * H),  # skipped hour
        ({"sun": ["02:30-04:00"]}, "2025-03-29", "2025-03-31", 1 * H),  # half skipped
        ({"sun": ["02:00-03:00"]}, "2025-10-25", "2025-10-27", 2 * H),  # hour lived twice
        ({"sun": ["02:15-02:45"]}, "2025-10-25", "2025-10-27", 1 * H),  # two pieces
    ],
    ids=["spring-23h-day", "autumn-25h-day", "gap", "half-gap", "repeat", "repeat-twice"],
)
def test_dst_days_count_wall_clock_hours(
    hours: dict[str, list[str]], first: str, last: str, expected: timedelta
) -> None:
    cal = calendar(timezone="Europe/Berlin", hours=hours)

    between = cal.business_time_between(at(BERLIN, f"{first} 00:00"), at(BERLIN, f"{last} 00:00"))

    assert between == expected


def test_window_ending_at_midnight() -> None:
    cal = calendar(timezone="Europe/London", hours={"mon": ["18:00-24:00"], "fri": ["18:00-24:00"]})

    assert cal.add_business_time(at(LONDON, "2024-06-10 23:00"), 2 * H) == at(
        LONDON, "2024-06-14 19:00"
    )
    assert cal.add_business_time(at(LONDON, "2024-06-14 22:00"), 3 * H) == at(
        LONDON, "2024-06-17 19:00"
    )
    assert cal.add_business_time(at(LONDON, "2024-06-10 23:00"), 1 * H) == at(
        LONDON, "2024-06-11 00:00"
    )
    assert cal.is_open(at(LONDON, "2024-06-10 23:59"))
    assert not cal.is_open(at(LONDON, "2024-06-11 00:00"))


def test_window_to_midnight_runs_on_into_a_window_from_midnight() -> None:
    cal = calendar(timezone="Europe/London", hours={"mon": ["20:00-24:00"], "tue": ["00:00-04:00"]})

    assert cal.add_business_time(at(LONDON, "2024-06-10 23:00"), 2 * H) == at(
        LONDON, "2024-06-11 01:00"
    )
    assert cal.business_time_between(
        at(LONDON, "2024-06-10 22:00"), at(LONDON, "2024-06-11 02:00")
    ) == (4 * H)


def test_two_windows_a_day() -> None:
    cal = calendar(
        timezone="Europe/London",
        hours={day: ["09:00-12:00", "13:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
    )
    monday = "2024-06-10"

    assert cal.add_business_time(at(LONDON, f"{monday} 11:00"), 2 * H) == at(
        LONDON, f"{monday} 14:00"
    )
    assert cal.add_business_time(at(LONDON, f"{monday} 11:00"), 1 * H) == at(
        LONDON, f"{monday} 12:00"
    )
    assert cal.add_business_time(at(LONDON, f"{monday} 12:30"), 30 * MIN) == at(
        LONDON, f"{monday} 13:30"
    )
    assert cal.add_business_time(at(LONDON, "2024-06-07 16:00"), 4 * H) == at(
        LONDON, f"{monday} 12:00"
    )
    assert cal.business_time_between(
        at(LONDON, f"{monday} 08:00"), at(LONDON, f"{monday} 18:00")
    ) == (7 * H)


# --- zero, negative and inverse --------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ("2024-06-10 10:00", "2024-06-10 10:00"),  # inside hours: start itself
        ("2024-06-10 09:00", "2024-06-10 09:00"),  # at opening: open
        ("2024-06-10 17:00", "2024-06-11 09:00"),  # at closing: closed, next opening
        ("2024-06-08 03:00", "2024-06-10 09:00"),  # weekend: Monday's opening
    ],
)
def test_zero_duration_is_due_at_the_next_opening(start: str, expected: str) -> None:
    result = LONDON_DEFAULT.add_business_time(at(LONDON, start), timedelta(0))

    assert result == at(LONDON, expected)
    assert LONDON_DEFAULT.next_opening(at(LONDON, start)) == result
    assert LONDON_DEFAULT.is_open(at(LONDON, start)) is (start == expected)


def test_business_time_between_is_antisymmetric() -> None:
    friday, monday = at(LONDON, "2024-06-07 16:00"), at(LONDON, "2024-06-10 12:00")

    assert LONDON_DEFAULT.business_time_between(friday, monday) == 4 * H
    assert LONDON_DEFAULT.business_time_between(monday, friday) == -4 * H
    assert LONDON_DEFAULT.business_time_between(friday, friday) == timedelta(0)
    assert TWENTY_FOUR_SEVEN.business_time_between(monday, friday) == -68 * H


def test_closed_stretch_counts_nothing() -> None:
    assert LONDON_DEFAULT.business_time_between(
        at(LONDON, "2024-06-07 17:00"), at(LONDON, "2024-06-10 09:00")
    ) == timedelta(0)


@pytest.mark.parametrize("cal", [LONDON_DEFAULT, TWENTY_FOUR_SEVEN], ids=["business", "24x7"])
def test_bad_arguments_are_refused(cal: Calendar) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        cal.add_business_time(at(LONDON, "2024-06-10 10:00"), -MIN)
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.add_business_time(datetime(2024, 6, 10, 10), H)
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.business_time_between(at(LONDON, "2024-06-10 10:00"), datetime(2024, 6, 10, 10))


def test_twenty_four_seven_is_plain_arithmetic() -> None:
    start = at(NEW_YORK, "2025-03-08 22:00")  # the night New York springs forward

    result = TWENTY_FOUR_SEVEN.add_business_time(start, 5 * H)

    # Five elapsed hours, not five wall-clock hours (which aware `start + 5h` would give).
    assert result == start.astimezone(UTC) + 5 * H
    assert result.astimezone(NEW_YORK) == at(NEW_YORK, "2025-03-09 04:00")
    assert TWENTY_FOUR_SEVEN.is_open(start)
    assert TWENTY_FOUR_SEVEN.next_opening(start) == start
    assert TWENTY_FOUR_SEVEN.next_opening(start).tzinfo is UTC


# --- bounds ----------------------------------------------------------------------------


def test_a_calendar_without_open_hours_is_refused() -> None:
    with pytest.raises(ValueError, match="no open hours in the week"):
        BusinessCalendar(hours={})
    with pytest.raises(ValueError, match="overlap"):
        BusinessCalendar(hours={0: [Window(540, 720), Window(600, 1020)]})


def test_a_year_of_closed_days_is_fine() -> None:
    year = [date(2024, 1, 1) + timedelta(days=n) for n in range(366)]
    cal = BusinessCalendar(timezone="Europe/London", closed_dates=year)

    result = cal.add_business_time(at(LONDON, "2023-12-29 16:00"), 2 * H)

    assert result == at(LONDON, "2025-01-01 10:00")


def test_a_calendar_closed_for_years_gives_up() -> None:
    days = [date(2024, 1, 1) + timedelta(days=n) for n in range(MAX_CLOSED_STRETCH.days + 30)]
    cal = BusinessCalendar(timezone="Europe/London", closed_dates=days)

    with pytest.raises(NoOpeningError, match="no business hours"):
        cal.add_business_time(at(LONDON, "2024-01-01 10:00"), H)
    # A bounded question still has an answer.
    assert cal.business_time_between(
        at(LONDON, "2024-01-01 00:00"), at(LONDON, "2027-01-01 00:00")
    ) == timedelta(0)


# --- durations in the calendar they run on ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", BusinessDuration(30, Unit.MINUTES)),
        ("4h", BusinessDuration(4, Unit.HOURS)),
        ("1d", BusinessDuration(1, Unit.DAYS)),
        ("3d", BusinessDuration(3, Unit.DAYS)),
        ("1w", BusinessDuration(1, Unit.WEEKS)),
        (" 2 h ", BusinessDuration(2, Unit.HOURS)),
    ],
)
def test_business_duration_parses(text: str, expected: BusinessDuration) -> None:
    assert BusinessDuration.parse(text) == expected


@pytest.mark.parametrize("text", ["5 minutes", "1.5h", "-1h", "1y", "", "h"])
def test_business_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="such as 30m, 4h, 1d or 1w"):
        BusinessDuration.parse(text)


@pytest.mark.parametrize(
    ("cal", "day", "week"),
    [
        (LONDON_DEFAULT, 8 * H, 40 * H),
        (
            calendar(
                hours={d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}
            ),
            8 * H,
            48 * H,
        ),
        (
            calendar(hours={"mon": ["09:00-12:00", "13:00-17:00"], "tue": ["09:00-13:00"]}),
            5.5 * H,
            11 * H,
        ),
        (TWENTY_FOUR_SEVEN, 24 * H, 168 * H),
    ],
    ids=["default", "six-days", "uneven", "24x7"],
)
def test_days_and_weeks_follow_the_calendar(cal: Calendar, day: timedelta, week: timedelta) -> None:
    assert cal.span(BusinessDuration.parse("1d")) == day
    assert cal.span(BusinessDuration.parse("3d")) == 3 * day
    assert cal.span(BusinessDuration.parse("1w")) == week
    assert cal.span(BusinessDuration.parse("90m")) == 90 * MIN


def test_add_a_business_duration() -> None:
    friday = at(LONDON, "2024-06-07 16:00")

    assert LONDON_DEFAULT.add(friday, BusinessDuration.parse("1d")) == at(
        LONDON, "2024-06-10 16:00"
    )
    assert LONDON_DEFAULT.add(friday, BusinessDuration.parse("1w")) == at(
        LONDON, "2024-06-14 16:00"
    )
    assert TWENTY_FOUR_SEVEN.add(friday, BusinessDuration.parse("1d")) == friday + 24 * H


def test_business_duration_as_a_yaml_field() -> None:
    class Target(BaseModel):
        response: BusinessDurationField

    target = Target.model_validate({"response": "8h"})

    assert target.response == BusinessDuration(8, Unit.HOURS)
    assert target.model_dump(mode="json") == {"response": "8h"}
    with pytest.raises(ValidationError, match="such as 30m, 4h, 1d or 1w"):
        Target.model_validate({"response": 8})


# --- the YAML model --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "loc", "message"),
    [
        (
            {"timezone": "Europe/Berln"},
            ("timezone",),
            "unknown time zone, use an IANA name such as Europe/Berlin (got 'Europe/Berln')",
        ),
        (
            {"hours": {"mon": ["9-5"]}},
            ("hours", "mon", 0),
            "must be hh:mm-hh:mm such as 09:00-17:00",
        ),
        ({"hours": {"mon": ["17:00-09:00"]}}, ("hours", "mon", 0), "must end after it starts"),
        ({"hours": {"mon": ["24:00-24:00"]}}, ("hours", "mon", 0), "24:00 only as an end"),
        ({"hours": {"mon": ["09:00-24:30"]}}, ("hours", "mon", 0), "24:00 only as an end"),
        ({"hours": {"mon": ["09:60-10:00"]}}, ("hours", "mon", 0), "must be hh:mm-hh:mm"),
        (
            {"hours": {"tue": ["09:00-12:00", "11:00-17:00"]}},
            ("hours",),
            "tue: windows 09:00-12:00 and 11:00-17:00 overlap",
        ),
        ({"hours": {"funday": []}}, ("hours", "funday", "[key]"), "'mon'"),
        ({"hours": {}}, ("hours",), "no open hours in the week"),
        ({"hours": {"mon": [], "sat": []}}, ("hours",), "no open hours in the week"),
        ({"holidays": {"country": "XX"}}, ("holidays", "country"), "unknown country 'XX'"),
        (
            {"holidays": {"country": "DE", "subdivision": "ZZ"}},
            ("holidays", "subdivision"),
            "unknown subdivision 'ZZ' of DE (BB, BE,",
        ),
        ({"closed_dates": ["24.12.2024"]}, ("closed_dates", 0), "date"),
        ({"hour": {}}, ("hour",), "Extra inputs are not permitted"),
    ],
)
def test_spec_errors_say_where_and_how(
    spec: dict[str, Any], loc: tuple[str | int, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        BusinessHoursSpec.model_validate(spec)

    errors = caught.value.errors()
    assert [error["loc"] for error in errors] == [loc]
    assert message in errors[0]["msg"]


def test_spec_defaults_and_normalises() -> None:
    assert BusinessHoursSpec().model_dump(mode="json") == {
        "timezone": "UTC",
        "hours": {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": None,
        "closed_dates": [],
    }
    spec = BusinessHoursSpec.model_validate(
        {
            "timezone": "Europe/Berlin",
            "hours": {"Monday": ["13:00-17:00", "9:00-12:00"], "sat": ["10:00-24:00"]},
            "holidays": {"country": "de", "subdivision": "be"},
            "closed_dates": ["2024-12-24"],
        }
    )
    dumped = spec.model_dump(mode="json")

    assert dumped["hours"] == {"mon": ["09:00-12:00", "13:00-17:00"], "sat": ["10:00-24:00"]}
    assert dumped["holidays"] == {"country": "DE", "subdivision": "BE"}
    assert BusinessHoursSpec.model_validate(dumped) == spec
    cal = build_calendar(spec)
    assert cal.is_closed_date(date(2024, 12, 24))
    assert cal.is_closed_date(date(2024, 12, 25))  # a Berlin public holiday
    assert not cal.is_closed_date(date(2024, 12, 23))


# --- the oracle ------------------------------------------------------------------------

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",  # +05:30
    "Australia/Lord_Howe",  # DST moves the clocks by 30 minutes
    "Pacific/Chatham",  # +12:45 / +13:45, changes at 02:45 and 03:45
    "America/Havana",  # changes at midnight: some days start at 01:00
    "UTC",
]
HOLIDAYS = {
    "Europe/Berlin": ("DE", "BE"),
    "America/New_York": ("US", "NY"),
    "Asia/Kolkata": ("IN", None),
    "Australia/Lord_Howe": ("AU", "NSW"),
    "Pacific/Chatham": ("NZ", "CIT"),
    "America/Havana": ("CU", None),
    "UTC": ("GB", "ENG"),
}
FIRST_DAY, LAST_DAY = date(2023, 1, 1), date(2025, 12, 31)
# Wall-clock times where DST changes happen in these zones, and the day's edges.
EDGES = [0, 45, 60, 90, 120, 150, 165, 180, 210, 225, 240, 540, 720, 780, 1020, 1380, 1440]


@cache
def holiday_calendar(zone: str) -> holidays.HolidayBase:
    country, subdivision = HOLIDAYS[zone]
    return holidays.country_holidays(country, subdiv=subdivision)


@cache
def dst_dates(zone: str) -> list[date]:
    tz = ZoneInfo(zone)
    found: list[date] = []
    day, offset = FIRST_DAY, datetime(2023, 1, 1, tzinfo=tz).utcoffset()
    while day <= LAST_DAY:
        day += timedelta(days=1)
        new = datetime.combine(day, datetime.min.time(), tzinfo=tz).utcoffset()
        if new != offset:
            found.append(day - timedelta(days=1))
            offset = new
    return found or [FIRST_DAY]


class Oracle:
    """Walks minute by minute in UTC, asking the wall clock whether each minute is open."""

    def __init__(
        self,
        zone: ZoneInfo,
        hours: Mapping[int, Sequence[Window]],
        closed: Callable[[date], bool],
    ) -> None:
        self.zone, self.hours, self.closed = zone, hours, closed

    def is_open(self, minute: datetime) -> bool:
        local = minute.astimezone(self.zone)
        day = local.date()
        if self.closed(day):
            return False
        of_day = local.hour * 60 + local.minute
        return any(w.start <= of_day < w.end for w in self.hours.get(day.weekday(), ()))

    def count(self, a: datetime, b: datetime) -> int:
        minutes = int((b - a) / MIN)
        return sum(1 for n in range(minutes) if self.is_open(a + n * MIN))


@st.composite
def windows(draw: st.DrawFn) -> list[Window]:
    count = draw(st.integers(0, 3))
    bounds = draw(
        st.lists(
            st.one_of(st.sampled_from(EDGES), st.integers(0, 96).map(lambda q: q * 15)),
            min_size=2 * count,
            max_size=2 * count,
            unique=True,
        )
    )
    bounds.sort()
    return [Window(bounds[i], bounds[i + 1]) for i in range(0, len(bounds), 2)]


@st.composite
def cases(draw: st.DrawFn) -> tuple[BusinessCalendar, Oracle, datetime]:
    zone_name = draw(st.sampled_from(ZONES))
    zone = ZoneInfo(zone_name)
    hours = {n: w for n in range(7) if (w := draw(windows()))}
    if not hours:
        hours = {draw(st.integers(0, 6)): [Window(540, 1020)]}
    near = draw(st.sampled_from(dst_dates(zone_name)))
    day = draw(
        st.one_of(
            st.dates(FIRST_DAY, LAST_DAY),
            st.integers(-6, 2).map(lambda n: near + timedelta(days=n)),
        )
    )
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + draw(
        st.integers(0, 24 * 60 - 1).map(lambda n: n * MIN)
    )
    closed = frozenset(
        day + timedelta(days=n) for n in draw(st.lists(st.integers(-1, 14), max_size=4))
    )
    public = holiday_calendar(zone_name) if draw(st.booleans()) else None

    def is_closed(d: date) -> bool:
        return d in closed or (public is not None and d in public)

    cal = BusinessCalendar(timezone=zone, hours=hours, holidays=public, closed_dates=closed)
    return cal, Oracle(zone, hours, is_closed), start


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), data=st.data())
def test_add_business_time_agrees_with_the_oracle(
    case: tuple[BusinessCalendar, Oracle, datetime], data: st.DataObject
) -> None:
    cal, oracle, start = case
    longest = min(3 * cal.working_day, cal.weekly_open) // MIN
    duration = data.draw(st.integers(0, int(longest))) * MIN

    result = cal.add_business_time(start, duration)

    assert cal.business_time_between(start, result) == duration
    assert oracle.count(start, result) * MIN == duration
    if duration:  # the first such instant: the minute before it still counts
        assert oracle.is_open(result - MIN)
    else:  # nothing to wait for: due at the next open minute
        assert oracle.is_open(result)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), minutes=st.integers(0, 6 * 24 * 60))
def test_business_time_between_agrees_with_the_oracle(
    case: tuple[BusinessCalendar, Oracle, datetime], minutes: int
) -> None:
    cal, oracle, start = case
    end = start + minutes * MIN

    assert cal.business_time_between(start, end) == oracle.count(start, end) * MIN
    assert cal.business_time_between(end, start) == -oracle.count(start, end) * MIN

"""The YAML of a client's business hours, and the calendar built from it.

business_hours:
  timezone: Europe/Berlin
  hours:                          # the whole week: days left out are closed
    mon: ["09:00-12:00", "13:00-17:00"]
    tue: ["09:00-17:00"]
    fri: ["09:00-24:00"]          # 24:00 ends a window at midnight
  holidays: {country: DE, subdivision: BE}
  closed_dates: [2024-12-24, 2024-12-31]
"""

from __future__ import annotations

import difflib
import enum
from datetime import date
from functools import cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import holidays as holidays_package
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from incidents.calendar import DEFAULT_HOURS, WEEKDAY_NAMES, WINDOW_REGEX, BusinessCalendar, Window


class Weekday(enum.StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @property
    def number(self) -> int:
        """As `date.weekday()`: 0 is Monday."""
        return WEEKDAY_NAMES.index(self.value)


_FULL_NAMES = {
    "monday": "mon",
    "tuesday": "tue",
    "wednesday": "wed",
    "thursday": "thu",
    "friday": "fri",
    "saturday": "sat",
    "sunday": "sun",
}


def _weekday_key(value: Any) -> Any:
    if isinstance(value, str):
        key = value.strip().lower()
        return _FULL_NAMES.get(key, key)
    return value


def _window(value: Any) -> Window:
    if isinstance(value, Window):
        return value
    if isinstance(value, str):
        return Window.parse(value)
    raise ValueError(f"must be hh:mm-hh:mm such as 09:00-17:00 (got {value!r})")


WeekdayKey = Annotated[Weekday, BeforeValidator(_weekday_key)]
WindowText = Annotated[
    Window,
    PlainValidator(_window),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": WINDOW_REGEX, "examples": ["09:00-17:00"]}),
]


def _default_hours() -> dict[Weekday, list[Window]]:
    return {Weekday(WEEKDAY_NAMES[n]): list(windows) for n, windows in DEFAULT_HOURS.items()}


@cache
def _supported_countries() -> dict[str, list[str]]:
    return holidays_package.list_supported_countries()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HolidaysSpec(_Model):
    """Public holidays of a country, optionally of one of its subdivisions (state, region)."""

    country: str = Field(description="ISO 3166 code, e.g. DE, GB or US.")
    subdivision: str | None = Field(
        default=None, description="The `holidays` package's code, e.g. BE (Berlin) or ENG."
    )

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        code = value.strip().upper()
        if code not in _supported_countries():
            raise ValueError(
                f"unknown country {value!r} for public holidays "
                "(use an ISO 3166 code such as DE, GB or US)"
            )
        return code

    @field_validator("subdivision")
    @classmethod
    def _known_subdivision(cls, value: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")
        if value is None or country is None:  # a bad country is reported on its own
            return value
        known = _supported_countries()[country]
        for code in known:
            if code.lower() == value.strip().lower():
                return code
        choices = ", ".join(known) if known else "it has none"
        raise ValueError(f"unknown subdivision {value!r} of {country} ({choices})")


class BusinessHoursSpec(_Model):
    """A client's business hours. YAML key: `business_hours`."""

    timezone: str = Field(default="UTC", description="IANA name, e.g. Europe/Berlin.")
    hours: dict[WeekdayKey, list[WindowText]] = Field(
        default_factory=_default_hours,
        description="Open windows per weekday (mon..sun), e.g. mon: [09:00-17:00]; "
        "days left out are closed.",
    )
    holidays: HolidaysSpec | None = Field(
        default=None, description="Close on this country's public holidays."
    )
    closed_dates: tuple[date, ...] = Field(
        default=(), description="Further closed days, e.g. [2024-12-24]."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            # The config loader shows a value once, from "(got ...)": not in the text again.
            message = f"unknown time zone, use an IANA name such as Europe/Berlin (got {value!r})"
            close = difflib.get_close_matches(value, available_timezones(), n=1)
            if close:
                message += f"; did you mean {close[0]}?"
            raise ValueError(message) from None
        return value

    @field_validator("hours")
    @classmethod
    def _sound_week(cls, value: dict[Weekday, list[Window]]) -> dict[Weekday, list[Window]]:
        problems: list[str] = []
        for day, windows in value.items():
            ordered = sorted(windows)
            for before, after in zip(ordered, ordered[1:], strict=False):
                if after.start < before.end:
                    problems.append(f"{day.value}: windows {before} and {after} overlap")
        if problems:
            raise ValueError("; ".join(problems))
        if not any(value.values()):
            raise ValueError("no open hours in the week: give at least one day a window")
        return {day: sorted(windows) for day, windows in value.items()}


def build_calendar(spec: BusinessHoursSpec) -> BusinessCalendar:
    """The calendar `spec` describes; holidays are computed year by year as dates ask."""
    public = (
        holidays_package.country_holidays(spec.holidays.country, subdiv=spec.holidays.subdivision)
        if spec.holidays is not None
        else None
    )
    return BusinessCalendar(
        timezone=spec.timezone,
        hours={day.number: windows for day, windows in spec.hours.items()},
        holidays=public,
        closed_dates=spec.closed_dates,
    )

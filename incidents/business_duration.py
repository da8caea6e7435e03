"""Durations in the calendar they run on: `30m`, `4h`, `1d`, `1w`.

Minutes and hours are the same on every calendar. Days and weeks depend on it: on a
business calendar `1d` is one working day (its weekly open time divided by its open
weekdays: 8h with Monday-Friday 09:00-17:00) and `1w` is its weekly open time (40h with
those hours); on 24x7 `1d` is 24h and `1w` is 7 x 24h. A calendar turns one into a
timedelta with `Calendar.span`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

BUSINESS_DURATION_REGEX = r"^\d+(m|h|d|w)$"
_PATTERN = re.compile(r"^\s*(\d+)\s*(m|h|d|w)\s*$")


class Unit(enum.StrEnum):
    MINUTES = "m"
    HOURS = "h"
    DAYS = "d"  # one working day of the calendar
    WEEKS = "w"  # the calendar's open time in one week


@dataclass(frozen=True, slots=True)
class BusinessDuration:
    amount: int
    unit: Unit

    def __post_init__(self) -> None:
        if self.amount < 0:
            raise ValueError(f"a business duration cannot be negative (got {self.amount})")

    @classmethod
    def parse(cls, text: str) -> BusinessDuration:
        match = _PATTERN.match(text)
        if not match:
            raise ValueError(
                f"must be a business duration such as 30m, 4h, 1d or 1w (got {text!r})"
            )
        return cls(int(match.group(1)), Unit(match.group(2)))

    def to_timedelta(self, *, day: timedelta, week: timedelta) -> timedelta:
        """This duration given the length of a day and a week on some calendar."""
        size = {
            Unit.MINUTES: timedelta(minutes=1),
            Unit.HOURS: timedelta(hours=1),
            Unit.DAYS: day,
            Unit.WEEKS: week,
        }[self.unit]
        return size * self.amount

    def __str__(self) -> str:
        return f"{self.amount}{self.unit.value}"


def parse_business_duration(value: Any) -> BusinessDuration:
    """`4h`-style text (or a BusinessDuration) as a BusinessDuration; ValueError otherwise."""
    if isinstance(value, BusinessDuration):
        return value
    if isinstance(value, str):
        return BusinessDuration.parse(value)
    raise ValueError(f"must be a business duration such as 30m, 4h, 1d or 1w (got {value!r})")


BusinessDurationField = Annotated[
    BusinessDuration,
    PlainValidator(parse_business_duration),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": BUSINESS_DURATION_REGEX, "examples": ["4h", "1d", "1w"]}
    ),
]
"""A pydantic field type: YAML `4h` in, BusinessDuration out, `4h` back out."""

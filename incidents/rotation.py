"""Who is on call: a daily or weekly rotation of people, with overrides (holiday swaps).

Pure: `on_call_at(rotation, at, zone=...)` is a function of the instant and the agency's time
zone. Hand-overs happen at a wall-clock time in that zone (`mon 09:00` stays 09:00 local on
both sides of a DST change, so a week across the change lasts 167 or 169 hours). A hand-over
time the clocks skip is read with the offset before the change (02:30 on the spring-forward
night is 03:30); an ambiguous one is its first occurrence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HANDOVER_EXAMPLE = "09:00 (daily) or mon 09:00 (weekly)"
_HANDOVER = re.compile(r"^\s*(?:(?P<day>[a-z]{3})\s+)?(?P<hour>\d{1,2}):(?P<minute>\d{2})\s*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Override(_Model):
    """`person` is on call from `from` until `until` instead of the schedule's person."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    starts_at: datetime = Field(
        alias="from",
        description="Start, ISO 8601; without an offset it is the agency's local time.",
        examples=["2026-12-24T09:00"],
    )
    ends_at: datetime = Field(alias="until", description="End (exclusive), ISO 8601 like `from`.")
    person: str = Field(description="A name from `people`.")
    reason: str = Field(default="", description="e.g. holiday swap; shown nowhere but here.")

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if _naive(self.starts_at) != _naive(self.ends_at):
            raise ValueError("from and until must both have an offset, or neither")
        if self.ends_at <= self.starts_at:
            raise ValueError("until must be after from")
        return self


class Rotation(_Model):
    """A schedule of people taking turns, each for a day or a week, in the agency time zone."""

    every: Literal["day", "week"] = Field(
        default="week", description="How long each person's shift lasts."
    )
    handover: str = Field(
        default="mon 09:00",
        description=f"When one shift hands over to the next, local time: {HANDOVER_EXAMPLE}.",
        examples=["mon 09:00", "09:00"],
    )
    start: date = Field(
        description="The first person's first shift begins at the first hand-over on or "
        "after this date; the order repeats from there (earlier dates count backwards).",
        examples=["2026-11-02"],
    )
    people: list[str] = Field(min_length=1, description="Names from `people`, in turn order.")
    overrides: list[Override] = Field(
        default_factory=list,
        description="Swaps: `{from, until, person}`; the latest listed wins where they overlap.",
    )

    @field_validator("handover")
    @classmethod
    def _handover(cls, value: str) -> str:
        parse_handover(value)
        return value

    @model_validator(mode="after")
    def _day_matches_every(self) -> Self:
        day, _ = parse_handover(self.handover)
        if self.every == "week" and day is None:
            raise ValueError(
                f"a weekly rotation hands over on a day: write e.g. `mon {self.handover}`"
            )
        if self.every == "day" and day is not None:
            raise ValueError(
                "a daily rotation hands over every day: write only the time, e.g. 09:00"
            )
        return self


def parse_handover(text: str) -> tuple[int | None, time]:
    """`mon 09:00` -> (0, 09:00); `09:00` -> (None, 09:00). ValueError says how to write it."""
    match = _HANDOVER.match(text.lower())
    if not match:
        raise ValueError(f"must be a hand-over time such as {HANDOVER_EXAMPLE} (got {text!r})")
    hour, minute = int(match["hour"]), int(match["minute"])
    if hour > 23 or minute > 59:
        raise ValueError(f"{text!r}: the time must be 00:00 to 23:59")
    name = match["day"]
    if name is not None and name not in DAYS:
        raise ValueError(f"{text!r}: the day must be one of {', '.join(DAYS)}")
    return (DAYS.index(name) if name is not None else None), time(hour, minute)


@dataclass(frozen=True, slots=True)
class Shift:
    """`person` is on call from `since` until `until` (aware UTC; `until` exclusive)."""

    person: str
    since: datetime
    until: datetime
    override: bool = False  # an override, not the schedule, says so


def on_call_at(rotation: Rotation, at: datetime, *, zone: tzinfo) -> Shift:
    """The shift in force at `at` (aware): an override covering it, else the schedule's."""
    at = _aware(at).astimezone(UTC)
    for override in reversed(rotation.overrides):
        since, until = _instant(override.starts_at, zone), _instant(override.ends_at, zone)
        if since <= at < until:
            return Shift(person=override.person, since=since, until=until, override=True)
    return scheduled_at(rotation, at, zone=zone)


def scheduled_at(rotation: Rotation, at: datetime, *, zone: tzinfo) -> Shift:
    """The schedule's shift at `at`, overrides aside."""
    weekday, handover = parse_handover(rotation.handover)
    step = 7 if rotation.every == "week" else 1
    anchor = rotation.start
    if weekday is not None:  # the first hand-over falls on the hand-over day
        anchor += timedelta(days=(weekday - anchor.weekday()) % 7)
    local_day = _aware(at).astimezone(zone).date()
    # The latest hand-over day on or before `at`'s local day, one step back if that
    # day's hand-over is still to come. Days are counted as dates, never as 24 hours.
    day = local_day - timedelta(days=(local_day - anchor).days % step)
    if _local(day, handover, zone) > at:
        day -= timedelta(days=step)
    turn = (day - anchor).days // step
    return Shift(
        person=rotation.people[turn % len(rotation.people)],
        since=_local(day, handover, zone),
        until=_local(day + timedelta(days=step), handover, zone),
    )


def _local(day: date, at: time, zone: tzinfo) -> datetime:
    return datetime.combine(day, at).replace(tzinfo=zone).astimezone(UTC)


def _instant(value: datetime, zone: tzinfo) -> datetime:
    """An override's time: local to the agency when written without an offset."""
    return (value.replace(tzinfo=zone) if _naive(value) else value).astimezone(UTC)


def _naive(value: datetime) -> bool:
    return value.tzinfo is None or value.utcoffset() is None


def _aware(at: datetime) -> datetime:
    if _naive(at):
        raise ValueError(f"naive datetime {at.isoformat()}: pass an aware datetime")
    return at

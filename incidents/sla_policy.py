"""The YAML of SLA targets and plans, with the service-level page's numbers as defaults.

sla_policy:
  remind_before: 30m              # wall-clock time before an update falls due; 0m: no reminder
  severities:                     # only what differs from the defaults
    2: {update_every: 2d}         # keeps severity 2's response targets and severities 1, 3, 4
    4: {update_every: null}       # null: no target of that kind

plans:
  retainer: {around_the_clock: [1]}

Targets are `BusinessDuration`s: they count in the calendar the incident's clocks run on
(`4h` is four business hours on a business calendar, four hours on 24x7; `1d` one working
day or 24 hours; `1w` a working week or 7 days).

Merging: a YAML `severities` block is laid over the defaults per severity and, within a
severity, per field. A field left out keeps its default; a field given as null removes that
target. A `SeverityTargets` object passed in code replaces the whole severity.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from incidents.business_duration import BusinessDuration, BusinessDurationField, Unit
from incidents.severity import Severity

# Wall-clock durations only go up to hours: a `1d` next to business durations would leave
# the reader guessing whether it means a working day or 24 hours.
WALL_DURATION_REGEX = r"^\d+(s|m|h)$"
_WALL_PATTERN = re.compile(r"^\s*(\d+)\s*(s|m|h)\s*$")
_WALL_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_wall_duration(value: Any) -> timedelta:
    """`30m`-style text (or a timedelta) as a non-negative timedelta; ValueError otherwise."""
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValueError(f"must not be negative (got {value})")
        return value
    if isinstance(value, str):
        match = _WALL_PATTERN.match(value)
        if match:
            return timedelta(seconds=int(match.group(1)) * _WALL_UNITS[match.group(2)])
    raise ValueError(
        f"must be a wall-clock duration in s, m or h such as 10m, 30m or 2h (got {value!r})"
    )


def format_wall_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


WallDuration = Annotated[
    timedelta,
    BeforeValidator(parse_wall_duration),
    PlainSerializer(format_wall_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": WALL_DURATION_REGEX, "examples": ["30m"]}),
]
"""A pydantic field type: YAML `30m` in, `timedelta` out, `30m` back in JSON."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeverityTargets(_Model):
    """One severity's targets; null means the severity has no such target."""

    response_aim: BusinessDurationField | None = Field(
        default=None,
        description="When we aim to respond, e.g. 2h. Null: the same as response_due. "
        "Never later than response_due.",
    )
    response_due: BusinessDurationField | None = Field(
        default=None, description="When the first response is due, e.g. 4h."
    )
    update_every: BusinessDurationField | None = Field(
        default=None,
        description="Client update cadence once responded, e.g. 4h, 1d or 1w. "
        "Null: no cadence (updates on completion).",
    )

    @field_validator("update_every")
    @classmethod
    def _positive_cadence(cls, value: BusinessDuration | None) -> BusinessDuration | None:
        if value is not None and value.amount == 0:
            raise ValueError("must be longer than 0, e.g. 4h (use null for no cadence)")
        return value


def _hours(amount: int) -> BusinessDuration:
    return BusinessDuration(amount, Unit.HOURS)


def _days(amount: int) -> BusinessDuration:
    return BusinessDuration(amount, Unit.DAYS)


DEFAULT_TARGETS: Mapping[Severity, SeverityTargets] = {
    Severity.CRITICAL: SeverityTargets(
        response_aim=_hours(2), response_due=_hours(4), update_every=_hours(4)
    ),
    Severity.MAJOR: SeverityTargets(
        response_aim=_hours(8), response_due=_hours(8), update_every=_days(1)
    ),
    Severity.MODERATE: SeverityTargets(
        response_aim=_hours(24),
        response_due=_hours(48),
        update_every=BusinessDuration(1, Unit.WEEKS),
    ),
    Severity.LOW: SeverityTargets(response_aim=_days(3), response_due=_days(5), update_every=None),
}
"""The service-level page: response 2-4h / 8h / 24-48h / 3-5 days; updates every 4h,
daily, weekly, on completion."""


_SEVERITY_NUMBERS = frozenset(int(severity) for severity in Severity)


def _severity_key(key: Any) -> Severity | None:
    """The severity a YAML/JSON key names, or None to let pydantic report the key."""
    if isinstance(key, str) and key.strip().isdigit():
        key = int(key)
    if isinstance(key, int) and not isinstance(key, bool) and key in _SEVERITY_NUMBERS:
        return Severity(key)
    return None


class SlaPolicy(_Model):
    """Response targets and update cadence per severity. YAML key: `sla_policy`."""

    severities: dict[Severity, SeverityTargets] = Field(
        default_factory=lambda: dict(DEFAULT_TARGETS),
        # JSON object keys are strings: the generated [1, 2, 3, 4] would match none of them.
        json_schema_extra={"propertyNames": {"enum": [str(int(s)) for s in Severity]}},
        description="Targets per severity (1-4); severities and fields left out keep the "
        "defaults of the service-level page.",
    )
    remind_before: WallDuration = Field(
        default=timedelta(minutes=30),
        json_schema_extra={"default": "30m"},  # pydantic would write the ISO form PT30M
        description="Remind on-call this long before a client update falls due "
        "(wall-clock time, e.g. 30m); 0m: no reminder, only the overdue notice.",
    )

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not isinstance(data.get("severities"), Mapping):
            return data  # absent: the default factory; malformed: pydantic says what's wrong
        merged: dict[Any, Any] = dict(DEFAULT_TARGETS)
        for key, given in data["severities"].items():
            severity = _severity_key(key)
            if severity is None:
                merged[key] = given  # rejected by the key's validation, with its location
            elif isinstance(given, Mapping):
                defaults = DEFAULT_TARGETS[severity].model_dump()
                merged[severity] = {**defaults, **given}
            else:
                merged[severity] = given
        return {**data, "severities": merged}

    def targets(self, severity: Severity) -> SeverityTargets:
        # Every severity is present after validation; a policy built with model_construct
        # might not be, and an empty target set is the honest answer then.
        return self.severities.get(severity, SeverityTargets())


class PlanSpec(_Model):
    """What a client's plan covers. YAML: an entry of `plans`."""

    around_the_clock: tuple[Severity, ...] = Field(
        default=(),
        description="Severities whose SLA clocks run 24x7 instead of in business hours.",
    )
    availability_target: float = Field(
        default=99.9,
        gt=0,
        le=100,
        description="The uptime promised, in percent (e.g. 99.9): what the monthly report "
        "measures each site's uptime against (incidents.uptime has the definition).",
    )
    description: str | None = Field(default=None, description="For people reading the config.")


DEFAULT_PLANS: dict[str, PlanSpec] = {
    "standard": PlanSpec(description="Clocks run in business hours only."),
    "retainer": PlanSpec(
        around_the_clock=(Severity.CRITICAL,),
        description="Severity 1 is covered around the clock.",
    ),
    "enterprise": PlanSpec(
        around_the_clock=tuple(Severity),
        description="Every severity is covered around the clock.",
    ),
}
"""Plans of the service-level page. Copy before changing: it is shared."""

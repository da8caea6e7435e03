"""Escalation: who is paged, and when, while nobody acknowledges an incident.

A policy per severity lists levels (`after` the incident reached that severity, page
`notify`) and may `repeat` the last level every so often until someone responds. Pure: the
schedule is a function of when the escalation started and how many of its pages were made;
the incident keeps that count in its marks (`page:<severity>:<count>`), which are written
with the incident's row, so a page is made once whatever the process or restart.

Several pages falling due at once (the monitor was down for a while) are all made for levels
not yet paged; a level and its missed repeats collapse into the latest one, so nobody gets a
burst of the same page.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import count
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from incidents.rotation import Rotation, on_call_at
from incidents.severity import Severity
from incidents.sla_policy import WallDuration

ONCALL = "oncall"  # in `notify`: whoever is on call when the page goes (see incidents.rotation)
_PAGED = "page:{severity}:"  # + count of the schedule's pages made
_STARTED = "escalation:{severity}@"  # + ISO start, when it is not the opening (an escalation)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Level(_Model):
    after: WallDuration = Field(
        description="How long after the incident reached the severity, without an "
        "acknowledgement, this level is paged: 0m, 15m, 30m.",
        examples=["0m", "15m"],
    )
    notify: list[str] = Field(
        min_length=1,
        description="Names from `people`, or `oncall` for whoever is on call at that moment.",
        examples=[["oncall"], ["bob"]],
    )


class EscalationPolicy(_Model):
    levels: list[Level] = Field(min_length=1, description="In order of `after`.")
    repeat: WallDuration | None = Field(
        default=None,
        description="Page the last level again this often until someone acknowledges, "
        "e.g. 30m; unset: no repeat.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        afters = [level.after for level in self.levels]
        if afters != sorted(afters):
            raise ValueError("levels must be in order of `after` (0m, then 15m, then 30m)")
        if self.repeat is not None and self.repeat <= timedelta(0):
            raise ValueError("repeat must be longer than 0, e.g. 30m")
        return self


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the schedule: `level` (1-based) is due at `due_at`; `repeat` counts the
    repeats of the last level (0: its first page)."""

    index: int  # position in the schedule: the count of pages before it
    level: int
    repeat: int
    due_at: datetime
    waited: timedelta  # how long without an acknowledgement when it falls due
    notify: tuple[str, ...]


def schedule(policy: EscalationPolicy, *, start: datetime) -> Iterator[Page]:
    """Every page of `policy` in order, for an escalation that started at `start`
    (endless when the policy repeats)."""
    for index, level in enumerate(policy.levels):
        yield Page(
            index=index,
            level=index + 1,
            repeat=0,
            due_at=start + level.after,
            waited=level.after,
            notify=tuple(level.notify),
        )
    if policy.repeat is None:
        return
    last = policy.levels[-1]
    for repeat in count(1):
        waited = last.after + repeat * policy.repeat
        yield Page(
            index=len(policy.levels) + repeat - 1,
            level=len(policy.levels),
            repeat=repeat,
            due_at=start + waited,
            waited=waited,
            notify=tuple(last.notify),
        )


def pages_due(
    policy: EscalationPolicy,
    *,
    start: datetime,
    paged: int,
    acknowledged_at: datetime | None,
    now: datetime,
) -> tuple[Page, ...]:
    """The pages to make at `now`: due by then, not among the first `paged`, and none once
    the incident is acknowledged. Missed repeats collapse into the latest one due."""
    if acknowledged_at is not None:
        return ()
    due: list[Page] = []
    for page in schedule(policy, start=start):
        if page.due_at > now:
            break
        if page.index < paged:
            continue
        if due and page.repeat and due[-1].level == page.level:
            due[-1] = page  # the same people: the latest page due stands for the missed ones
        else:
            due.append(page)
    return tuple(due)


def next_page_at(
    policy: EscalationPolicy, *, start: datetime, paged: int, acknowledged_at: datetime | None
) -> datetime | None:
    """When the next page after the first `paged` falls due; None when none will."""
    if acknowledged_at is not None:
        return None
    for page in schedule(policy, start=start):
        if page.index >= paged:
            return page.due_at
    return None


def paged_count(marks: frozenset[str], severity: Severity) -> int:
    """How many pages of `severity`'s schedule an incident's marks say were made."""
    prefix = _PAGED.format(severity=int(severity))
    return max((int(mark[len(prefix) :]) for mark in marks if mark.startswith(prefix)), default=0)


def with_paged(marks: frozenset[str], severity: Severity, paged: int) -> frozenset[str]:
    """`marks` saying `paged` pages of `severity`'s schedule were made (one mark, replaced)."""
    prefix = _PAGED.format(severity=int(severity))
    return frozenset(m for m in marks if not m.startswith(prefix)) | {f"{prefix}{paged}"}


def started_at(marks: frozenset[str], severity: Severity, *, opened_at: datetime) -> datetime:
    """When the escalation of `severity` started: when the incident rose to it, or opened."""
    prefix = _STARTED.format(severity=int(severity))
    for mark in marks:
        if mark.startswith(prefix):
            return datetime.fromisoformat(mark[len(prefix) :])
    return opened_at


def with_start(marks: frozenset[str], severity: Severity, at: datetime) -> frozenset[str]:
    return marks | {f"{_STARTED.format(severity=int(severity))}{at.isoformat()}"}


@dataclass(frozen=True, slots=True)
class Escalation:
    """What paging needs besides the incident: the policy per severity (a severity without
    one pages as before escalation existed), and the rotation saying who is on call."""

    policies: Mapping[Severity, EscalationPolicy] = field(default_factory=dict)
    # None: `oncall` pages the on-call team's addresses and webhook, as before rotations.
    rotation: Rotation | None = None
    zone: tzinfo = UTC  # the agency's: the rotation hands over in its local time

    def on_call(self, at: datetime) -> str | None:
        """The person on call at `at`; None without a rotation."""
        if self.rotation is None:
            return None
        return on_call_at(self.rotation, at, zone=self.zone).person


NO_ESCALATION = Escalation()

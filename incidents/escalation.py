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
    for index in count():
        page = page_at(policy, start=start, index=index)
        if page is None:
            return
        yield page


def page_at(policy: EscalationPolicy, *, start: datetime, index: int) -> Page | None:
    """The `index`-th page of the schedule (0: the first level); None past its end. Constant
    time, so an incident unacknowledged for a week costs no more to look at than a new one."""
    levels = policy.levels
    if index < len(levels):
        level = levels[index]
        return Page(
            index=index,
            level=index + 1,
            repeat=0,
            due_at=start + level.after,
            waited=level.after,
            notify=tuple(level.notify),
        )
    if policy.repeat is None:
        return None
    repeat = index - len(levels) + 1
    waited = levels[-1].after + repeat * policy.repeat
    return Page(
        index=index,
        level=len(levels),
        repeat=repeat,
        due_at=start + waited,
        waited=waited,
        notify=tuple(levels[-1].notify),
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
    the incident is acknowledged. A level and its missed repeats collapse into the latest."""
    if acknowledged_at is not None:
        return ()
    due: list[Page] = []
    index = paged
    while index < len(policy.levels):
        page = page_at(policy, start=start, index=index)
        if page is None or page.due_at > now:
            return tuple(due)
        due.append(page)
        index += 1
    if policy.repeat is None:
        return tuple(due)
    # The latest repeat due by `now`, straight from the arithmetic (no walk through them).
    since_last = now - (start + policy.levels[-1].after)
    latest = len(policy.levels) - 1 + int(since_last // policy.repeat)
    if latest < index:
        return tuple(due)
    page = page_at(policy, start=start, index=latest)
    assert page is not None  # a repeating policy has a page at every index
    if due and due[-1].level == page.level:
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
    page = page_at(policy, start=start, index=paged)
    return None if page is None else page.due_at


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

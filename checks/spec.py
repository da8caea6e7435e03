"""Spec models shared by every kind of check: the probe-facing half of a check's YAML.

The scheduling and incident half (interval, failures_to_open, severity...) belongs to the
monitor's config; a check's full YAML model subclasses one of these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from checks.duration import Duration
from checks.extract import regex_problem

T = TypeVar("T")


class ProbeSpec(BaseModel):
    """Fields every probe understands."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: Duration = Field(
        default=timedelta(seconds=10),
        description="Give up on the whole exchange after this long (outcome `timeout`).",
    )
    slow_after: Duration = Field(
        default=timedelta(seconds=5),
        description="A complete answer that took longer than this is `slow` (Severity 2).",
    )


def check_each(entries: Iterable[tuple[str, T]], check: Callable[[T], object]) -> None:
    """Run `check` on every (label, value); one ValueError listing every value's problem as
    `<label> <message>`, so that a list is fixed in one go."""
    problems = []
    for label, value in entries:
        try:
            check(value)
        except ValueError as exc:
            problems.append(f"{label} {exc}")
    if problems:
        raise ValueError("; ".join(problems))


def _compiles(value: str) -> str:
    problem = regex_problem(value)
    if problem is not None:
        raise ValueError(f"must be a regular expression: {problem}")
    return value


Regex = Annotated[str, AfterValidator(_compiles)]
"""A pydantic field type: a regular expression that compiles (Python's `re` syntax)."""

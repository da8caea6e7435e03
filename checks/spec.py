"""Spec models shared by every kind of check: the probe-facing half of a check's YAML.

The scheduling and incident half (interval, failures_to_open, severity...) belongs to the
monitor's config; a check's full YAML model subclasses one of these.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from checks.duration import Duration


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

"""What the console shows, as pure functions of stored values, zones and `now`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from checks.result import Outcome, ProbeResult
from incidents.message_text import short_local_time
from incidents.model import CheckState
from monitor.operator_text import time_left
from monitor.store.outbox import OutboxItem, OutboxStatus

SPARK_WIDTH, SPARK_HEIGHT = 120, 24


@dataclass(frozen=True, slots=True)
class Due:
    """A due time as the console shows it: in the operator's zone and the client's (each
    with its zone), and what is left."""

    mine: str  # "14:00 CET"
    client: str  # "13:00 GMT"
    left: str  # "in 1 h 20 min", "25 min overdue", "paused"
    overdue: bool
    iso: str


def due(
    at: datetime | None,
    *,
    mine: ZoneInfo,
    client: ZoneInfo,
    now: datetime,
    paused: bool = False,
) -> Due | None:
    if at is None:
        return None
    overdue = not paused and at < now - timedelta(minutes=1)
    return Due(
        mine=short_local_time(at, mine, now=now),
        client=short_local_time(at, client, now=now),
        left="paused" if paused else time_left(at, now=now),
        overdue=overdue,
        iso=at.isoformat(),
    )


def when(at: datetime | None, tz: ZoneInfo, *, now: datetime) -> str:
    return "-" if at is None else short_local_time(at, tz, now=now)


@dataclass(frozen=True, slots=True)
class Spark:
    points: str  # SVG polyline points, oldest on the left
    failures: tuple[tuple[float, float], ...]  # (x, y) of failed results, drawn as dots
    label: str  # what a screen reader hears


def sparkline(samples: Sequence[tuple[float | None, bool]]) -> Spark | None:
    """`samples`: (latency in seconds or None, ok) oldest first; None without any latency."""
    latencies = [latency for latency, _ in samples if latency is not None]
    if not latencies:
        return None
    top = max(latencies) or 1.0
    step = SPARK_WIDTH / max(1, len(samples) - 1)
    points: list[str] = []
    failures: list[tuple[float, float]] = []
    for index, (latency, ok) in enumerate(samples):
        x = round(index * step, 1)
        y = round(SPARK_HEIGHT - 2 - (latency or 0.0) / top * (SPARK_HEIGHT - 4), 1)
        if latency is not None:
            points.append(f"{x},{y}")
        if not ok:
            failures.append((x, y))
    low, high = min(latencies), max(latencies)
    label = (
        f"latency of the last {len(samples)} results: {low * 1000:.0f} to {high * 1000:.0f} ms"
        + (f", {len(failures)} failed" if failures else "")
    )
    return Spark(points=" ".join(points), failures=tuple(failures), label=label)


def pretty_json(evidence: Mapping[str, Any] | None) -> str | None:
    if not evidence:
        return None
    return json.dumps(evidence, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def evidence_dict(result: ProbeResult) -> dict[str, Any]:
    evidence = result.evidence
    fields = getattr(evidence, "__dataclass_fields__", {})
    return {
        name: getattr(evidence, name)
        for name in fields
        if getattr(evidence, name) not in (None, (), "", {})
    }


def state_word(state: CheckState | None, *, last: Outcome | None) -> str:
    """`last`: the latest outcome, from the state or else the stored history."""
    if state is not None and state.failing:
        return "failing"
    if last is None:
        return "not probed yet"
    return "failing (unconfirmed)" if last.is_failure else "up"


def delivery_word(status: OutboxStatus, attempts: int) -> str:
    if status is OutboxStatus.FAILED:
        return "failed"
    return "retrying" if attempts else "pending"


def outbox_row(item: OutboxItem, tz: ZoneInfo, *, now: datetime) -> dict[str, Any]:
    """One notification as the incident page and the outbox page list it."""
    message = item.message
    return {
        "o": item,
        "state": delivery_word(item.status, item.attempts),
        "to": ", ".join(getattr(message, "to", ())) or getattr(message, "target", ""),
        "subject": getattr(message, "subject", ""),
        "created": when(item.created_at, tz, now=now),
        "sent": when(item.sent_at, tz, now=now),
        "next": when(item.next_attempt_at, tz, now=now),
    }

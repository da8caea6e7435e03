"""What the console shows, as pure functions of stored values, zones and `now`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from incidents.message_text import short_local_time
from monitor.operator_text import time_left

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

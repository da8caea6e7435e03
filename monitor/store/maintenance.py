"""Maintenance windows: while one lasts, no incident opens for its site, and the clocks of
an incident already open are paused (see incidents.sla).

A window is in force from `starts_at` (inclusive) to `ends_at` (exclusive). Windows may
overlap; the one in force for a site is the one that ends last. These are one-off windows
added through the API or CLI; recurring ones come from the YAML (monitor.recurring_windows)
and are not stored. Cancelling a window deletes it: one to come never starts, one in force
ends at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from monitor.store.tables import maintenance_windows


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    id: int
    site: str  # site key "client/site"
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str  # who added it, e.g. the operator named by the API token
    created_at: datetime

    def in_force(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


def window_values(
    *,
    site: str,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    created_by: str,
    now: datetime,
) -> dict[str, Any]:
    """Row values for a new window. Raises ValueError for an empty or inverted window."""
    if ends_at <= starts_at:
        raise ValueError(
            f"maintenance window for {site}: ends_at ({ends_at.isoformat()}) must be after "
            f"starts_at ({starts_at.isoformat()})"
        )
    return {
        "site": site,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "reason": reason,
        "created_by": created_by,
        "created_at": now,
    }


def window_from_row(row: RowMapping) -> MaintenanceWindow:
    return MaintenanceWindow(
        id=row["id"],
        site=row["site"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        reason=row["reason"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


def active_query(*, now: datetime) -> sa.Select[Any]:
    # Ordered so that, read in order, the last window seen per site is the one ending last.
    table = maintenance_windows
    return (
        sa.select(table)
        .where(table.c.starts_at <= now, table.c.ends_at > now)
        .order_by(table.c.site, table.c.ends_at, table.c.id)
    )


def list_query(*, site: str | None, include_past: bool, now: datetime) -> sa.Select[Any]:
    """Windows by start time: those not yet over (current and future), or all of them."""
    table = maintenance_windows
    query = sa.select(table).order_by(table.c.starts_at, table.c.id)
    if site is not None:
        query = query.where(table.c.site == site)
    if not include_past:
        query = query.where(table.c.ends_at > now)
    return query


def delete_query(*, window_id: int) -> sa.Delete:
    table = maintenance_windows
    return sa.delete(table).where(table.c.id == window_id)

"""Storage: incidents, timelines, check state and bounded history in SQLite or PostgreSQL."""

from monitor.store.codec import HistoryRow
from monitor.store.errors import (
    DuplicateOpenIncident,
    IncidentNotFound,
    StoreError,
    StoreUnavailable,
)
from monitor.store.store import Store

__all__ = [
    "DuplicateOpenIncident",
    "HistoryRow",
    "IncidentNotFound",
    "Store",
    "StoreError",
    "StoreUnavailable",
]

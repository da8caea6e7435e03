"""Storage: incidents, timelines, check state and bounded history, the notification outbox
and maintenance windows, in SQLite or PostgreSQL."""

from monitor.store.codec import HistoryRow
from monitor.store.errors import (
    DuplicateOpenIncident,
    IncidentNotFound,
    StoreError,
    StoreUnavailable,
)
from monitor.store.maintenance import MaintenanceWindow
from monitor.store.outbox import Channel, Notify, OutboxItem, OutboxStatus
from monitor.store.outbox_errors import (
    DuplicateNotification,
    OutboxItemNotFound,
    OutboxItemNotPending,
)
from monitor.store.store import Store

__all__ = [
    "Channel",
    "DuplicateNotification",
    "DuplicateOpenIncident",
    "HistoryRow",
    "IncidentNotFound",
    "MaintenanceWindow",
    "Notify",
    "OutboxItem",
    "OutboxItemNotFound",
    "OutboxItemNotPending",
    "OutboxStatus",
    "Store",
    "StoreError",
    "StoreUnavailable",
]

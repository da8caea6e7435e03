"""Storage: incidents, timelines, check state and bounded history, the notification outbox
and maintenance windows, in SQLite or PostgreSQL; and workers, site leases, outbox claims and
confirmation requests for processes sharing one database."""

from monitor.store.codec import HistoryRow
from monitor.store.confirmations import (
    ConfirmationAnswer,
    ConfirmationRequest,
    ConfirmationStatus,
)
from monitor.store.errors import (
    DuplicateOpenIncident,
    IncidentNotFound,
    LeaseLost,
    StaleIncident,
    StoreError,
    StoreUnavailable,
)
from monitor.store.leases import SiteLeases, WorkerInfo
from monitor.store.maintenance import MaintenanceWindow
from monitor.store.outbox import Channel, Notify, OutboxItem, OutboxStatus
from monitor.store.outbox_errors import (
    DuplicateNotification,
    OutboxItemNotFound,
    OutboxItemNotPending,
)
from monitor.store.rollups import Calendars
from monitor.store.store import Store

__all__ = [
    "Calendars",
    "Channel",
    "ConfirmationAnswer",
    "ConfirmationRequest",
    "ConfirmationStatus",
    "DuplicateNotification",
    "DuplicateOpenIncident",
    "HistoryRow",
    "IncidentNotFound",
    "LeaseLost",
    "MaintenanceWindow",
    "Notify",
    "OutboxItem",
    "OutboxItemNotFound",
    "OutboxItemNotPending",
    "OutboxStatus",
    "SiteLeases",
    "StaleIncident",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "WorkerInfo",
]

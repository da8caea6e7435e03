"""The store's errors about queued notifications; they extend the tree in monitor.store.errors.

StoreError                   (monitor.store.errors)
 ├── DuplicateNotification   the outbox already holds this notification (.dedupe_key)
 ├── OutboxItemNotFound      a mark named an outbox id that is not stored (.item_id)
 └── OutboxItemNotPending    a mark named a row already sent or given up (.item_id, .status)
"""

from __future__ import annotations

from monitor.store.errors import StoreError


class DuplicateNotification(StoreError):
    """The unique dedupe key refused a second copy of one notification; nothing of the
    transaction that tried is written."""

    def __init__(self, dedupe_key: str) -> None:
        super().__init__(
            f"notification {dedupe_key!r} is already in the outbox; compose a new message id "
            "(or idempotency key) for a new notification, or leave the queued one to be sent"
        )
        self.dedupe_key = dedupe_key


class OutboxItemNotFound(StoreError):
    def __init__(self, item_id: int) -> None:
        super().__init__(f"outbox item {item_id} is not in the store")
        self.item_id = item_id


class OutboxItemNotPending(StoreError):
    """Only pending rows move: a sent or failed notification is final."""

    def __init__(self, item_id: int, status: str) -> None:
        super().__init__(
            f"outbox item {item_id} is {status}, not pending: only pending items can be "
            "marked sent, retried or failed"
        )
        self.item_id = item_id
        self.status = status

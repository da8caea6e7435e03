"""Delivers the outbox: every notification written with the incident change that caused it.

A row is marked sent only after the SMTP server (or the webhook) accepted it; a transient
failure leaves it pending with a later `next_attempt_at` (exponential backoff with jitter), a
permanent one marks it failed. A crash between writing and sending loses nothing: the row is
still pending when the monitor starts again, and its stable Message-ID / Idempotency-Key lets
the receiving side drop a duplicate should a crash fall between acceptance and marking.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from incidents.outgoing import OutgoingEmail
from monitor.clock import Clock
from monitor.delivery import DeliveryError, Mailer, WebhookSender, retry_delay
from monitor.metrics import Metrics
from monitor.store import OutboxItem, Store

log = logging.getLogger(__name__)


class OutboxWorker:
    def __init__(
        self,
        *,
        store: Store,
        mailer: Mailer,
        webhooks: WebhookSender | None,
        clock: Clock,
        metrics: Metrics,
        poll_interval: float = 5.0,
        retry_initial: float = 5.0,
        retry_max: float = 900.0,
        batch: int = 50,
    ) -> None:
        self._store = store
        self._mailer = mailer
        self._webhooks = webhooks
        self._clock = clock
        self._metrics = metrics
        self._poll = poll_interval
        self._batch = batch
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._wake = asyncio.Event()
        self._stopping = False

    def kick(self) -> None:
        """Something was just written to the outbox: deliver it now, not at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                delivered = await self.deliver_due()
            except Exception as exc:  # noqa: BLE001 - the database may be away for a while
                log.error("outbox: could not read pending notifications: %s", exc)
                delivered = 0
            if delivered >= self._batch:
                continue  # more may be waiting
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
            except TimeoutError:
                pass

    async def deliver_due(self) -> int:
        """Try every notification due now, once; returns how many were tried."""
        items = await self._store.due_outbox(now=self._clock.now(), limit=self._batch)
        for item in items:
            try:
                await self._deliver(item)
            except Exception as exc:  # noqa: BLE001 - one bad row must not block the others
                log.error("outbox: INC-%s %s: %s", item.incident_id, item.kind, exc)
                await self._retry_later(
                    item, error=f"{type(exc).__name__}: {exc}", at=self._clock.now()
                )
        await self._refresh_gauges()
        return len(items)

    async def _deliver(self, item: OutboxItem) -> None:
        now = self._clock.now()
        channel = item.channel
        try:
            message = item.message
            if isinstance(message, OutgoingEmail):
                await self._mailer.send(message, date=now)
            elif self._webhooks is not None:
                await self._webhooks.send(message)
            else:
                raise DeliveryError("no webhook is configured any more", permanent=True)
        except DeliveryError as exc:
            error = str(exc)
            if exc.permanent:
                await self._store.mark_failed(item.id, error=error, at=now)
                self._metrics.notifications_failed.labels(channel=channel).inc()
                log.error(
                    "outbox: %s %s of INC-%s failed for good: %s",
                    channel,
                    item.kind,
                    item.incident_id,
                    error,
                )
                return
            delay = await self._retry_later(item, error=error, at=now, at_least=exc.retry_after)
            self._metrics.notification_retries.labels(channel=channel).inc()
            log.warning(
                "outbox: %s %s of INC-%s not delivered (attempt %d), retrying in %.0fs: %s",
                channel,
                item.kind,
                item.incident_id,
                item.attempts + 1,
                delay,
                error,
            )
            return
        await self._store.mark_sent(item.id, at=now)
        self._metrics.notifications_sent.labels(channel=channel).inc()
        log.info("outbox: sent %s %s of INC-%s", channel, item.kind, item.incident_id)

    async def _retry_later(
        self, item: OutboxItem, *, error: str, at: datetime, at_least: float | None = None
    ) -> float:
        backoff = retry_delay(item.attempts + 1, base=self._retry_initial, cap=self._retry_max)
        # A server's Retry-After is honoured up to retry_max: a page must not wait a year.
        delay = min(max(backoff, at_least or 0.0), self._retry_max)
        await self._store.mark_retry(
            item.id, error=error, next_attempt_at=at + timedelta(seconds=delay)
        )
        return delay

    async def _refresh_gauges(self) -> None:
        counts = await self._store.outbox_counts()
        self._metrics.outbox_pending.set(counts.get("pending", 0))

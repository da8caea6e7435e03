"""Delivers the outbox: every notification written with the incident change that caused it.

A row is marked sent only after the SMTP server (or the webhook) accepted it; a transient
failure leaves it pending with a later `next_attempt_at` (exponential backoff with jitter), a
permanent one marks it failed. A crash between writing and sending loses nothing: the row is
still pending when the monitor starts again, and its stable Message-ID / Idempotency-Key lets
the receiving side drop a duplicate should a crash fall between acceptance and marking.

Processes sharing a database each run a worker; a worker sends only rows it has claimed
(`Store.claim_outbox`), so no row goes out twice at once. Claims are short and renewed while
the batch is delivered: a worker killed mid-batch holds its rows for at most `claim_for`
seconds, then another sends them (again, should the dead one have got them out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from incidents.outgoing import OutgoingChat, OutgoingEmail
from monitor.clock import Clock
from monitor.delivery import DeliveryError, Mailer, WebhookSender, retry_delay
from monitor.metrics import Metrics
from monitor.store import OutboxItem, Store

if TYPE_CHECKING:  # imported where channels are configured (see monitor.delivery)
    from monitor.delivery.chat import ChatSender

log = logging.getLogger(__name__)

# Renewals per claim period while delivering: a claim survives two that fail.
RENEWALS_PER_CLAIM = 3


@dataclass
class _Claim:
    """The rows of the batch being delivered that this worker still holds, and until when."""

    ids: set[int]
    until: datetime

    def holds(self, item_id: int, now: datetime) -> bool:
        return item_id in self.ids and now < self.until


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
        worker: str | None = None,
        claim_for: float = 5.0,
        chats: ChatSender | None = None,
    ) -> None:
        """`worker` names this worker's claims (default: a new random id; give the process's
        worker id so that retiring it hands unfinished claims back). `claim_for` is how long a
        claim lasts unrenewed: how long a dead worker's rows wait for another."""
        if not claim_for > 0:
            raise ValueError(f"claim_for must be a positive number of seconds (got {claim_for})")
        self._store = store
        self._mailer = mailer
        self._webhooks = webhooks
        self._chats = chats
        self._clock = clock
        self._metrics = metrics
        self._poll = poll_interval
        self._batch = batch
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self.worker = worker or f"outbox-{uuid.uuid4().hex[:12]}"
        self._claim_for = claim_for
        self._wake = asyncio.Event()
        self._stopping = False

    def kick(self) -> None:
        """Something was just written to the outbox: deliver it now, not at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def use(
        self, *, mailer: Mailer, webhooks: WebhookSender | None, chats: ChatSender | None
    ) -> None:
        """Send through these from the next delivery on (a config reload changed SMTP, the
        webhook or the channels); a delivery in flight finishes through the old ones."""
        self._mailer = mailer
        self._webhooks = webhooks
        self._chats = chats

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
        """Claim the notifications due now and try each once; returns how many were claimed."""
        now = self._clock.now()
        items = await self._store.claim_outbox(
            worker=self.worker, now=now, limit=self._batch, claim_for=self._claim_for
        )
        if items:
            claim = _Claim(
                ids={item.id for item in items}, until=now + timedelta(seconds=self._claim_for)
            )
            renewing = asyncio.create_task(self._keep_claimed(claim))
            try:
                for item in items:
                    await self._deliver_claimed(item, claim)
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
        await self._refresh_gauges()
        return len(items)

    async def _deliver_claimed(self, item: OutboxItem, claim: _Claim) -> None:
        if not claim.holds(item.id, self._clock.now()):
            # The claim ran out (the database was away, the loop stalled): another worker may
            # be sending it now; it is theirs, or ours again at the next claim.
            log.warning("outbox: %s: claim lost, left to others", _about(item))
            claim.ids.discard(item.id)  # and no longer renewed
            return
        try:
            await self._deliver(item)
        except Exception as exc:  # noqa: BLE001 - one bad row must not block the others
            log.error("outbox: %s: %s", _about(item), exc)
            await self._retry_later(
                item, error=f"{type(exc).__name__}: {exc}", at=self._clock.now()
            )
        finally:
            claim.ids.discard(item.id)

    async def _keep_claimed(self, claim: _Claim) -> None:
        """Renew the claims of the rows not yet delivered, for as long as the batch takes."""
        while True:
            await self._clock.sleep(self._claim_for / RENEWALS_PER_CLAIM)
            if not claim.ids:
                return
            now = self._clock.now()
            try:
                kept = await self._store.extend_outbox_claims(
                    worker=self.worker,
                    item_ids=sorted(claim.ids),
                    now=now,
                    claim_for=self._claim_for,
                )
            except Exception as exc:  # noqa: BLE001 - the claims then run out: others send
                log.warning("outbox: could not renew claims: %s: %s", type(exc).__name__, exc)
                continue
            claim.ids &= kept
            claim.until = now + timedelta(seconds=self._claim_for)

    async def _deliver(self, item: OutboxItem) -> None:
        now = self._clock.now()
        # A chat row is counted under its channel's name (never its URL).
        channel = item.destination
        try:
            message = item.message
            if isinstance(message, OutgoingEmail):
                await self._mailer.send(message, date=now)
            elif isinstance(message, OutgoingChat):
                if self._chats is None:
                    raise DeliveryError("no chat channel is configured any more", permanent=True)
                await self._chats.send(message, attempt=item.attempts + 1)
            elif self._webhooks is not None:
                await self._webhooks.send(message)
            else:
                raise DeliveryError("no webhook is configured any more", permanent=True)
        except DeliveryError as exc:
            error = str(exc)
            if exc.permanent:
                await self._store.mark_failed(item.id, error=error, at=now)
                self._metrics.notifications_failed.labels(channel=channel).inc()
                log.error("outbox: %s %s failed for good: %s", channel, _about(item), error)
                return
            delay = await self._retry_later(item, error=error, at=now, at_least=exc.retry_after)
            self._metrics.notification_retries.labels(channel=channel).inc()
            log.warning(
                "outbox: %s %s not delivered (attempt %d), retrying in %.0fs: %s",
                channel,
                _about(item),
                item.attempts + 1,
                delay,
                error,
            )
            return
        await self._store.mark_sent(item.id, at=now)
        self._metrics.notifications_sent.labels(channel=channel).inc()
        log.info("outbox: sent %s %s", channel, _about(item))

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


def _about(item: OutboxItem) -> str:
    """What a row is, for a log line: `opened of INC-42`, or `notice monthly_report` for a row
    without an incident (about the monitor itself, or a client's monthly report)."""
    if item.incident_id is None:
        return f"notice {item.kind}"
    return f"{item.kind} of INC-{item.incident_id}"

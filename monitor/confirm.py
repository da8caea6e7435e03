"""Second opinions: a failure seen from one location is re-probed from another before it counts.

A check with `confirm_from_other_location` whose failure would change an incident (open one,
add the check to it, escalate it) is not recorded at once: its owner writes a request to the
shared database, a process in another location claims it (`FOR UPDATE SKIP LOCKED`), probes
the same check from there and writes back what it saw. Then:

- the other location saw it fail too: the failure stands, its evidence naming both places;
- the other location saw it healthy: the failure is dropped (counted, logged), since a single
  network path, not the site, is the likely culprit;
- no other location is running, or none answered in time: the failure stands, marked
  unconfirmed. Missing an outage is worse than a false alarm.

Every process answers requests from locations other than its own, whoever owns the check.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from checks.result import FailureCause, Outcome, ProbeResult
from monitor.clock import Clock
from monitor.config.models import ConfiguredCheck
from monitor.ownership import Identity
from monitor.store import ConfirmationRequest, Store

log = logging.getLogger(__name__)

# How often a process looks for requests to answer, and for answers to its own requests.
POLL_SECONDS = 0.25
# Requests answered at once by one process.
CLAIM_BATCH = 50
# How long to wait for an answer beyond what the other probe itself may take.
ANSWER_MARGIN_SECONDS = 3.0
# Requests and answers older than this are deleted.
KEEP_SECONDS = 3600.0

Probe = Callable[[ConfiguredCheck], Awaitable[ProbeResult]]


class Verdict(enum.StrEnum):
    CONFIRMED = "confirmed"  # another location saw a failure too
    REFUTED = "refuted"  # another location saw the check healthy: drop the failure
    UNCONFIRMED = "unconfirmed"  # nobody else could tell; the failure stands


@dataclass(frozen=True, slots=True)
class Confirmation:
    verdict: Verdict
    result: ProbeResult  # the failure, its evidence saying what the other location saw
    other: str | None = None  # the other location's summary, for logs


class Confirmer:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        identity: Identity,
        checks: Mapping[str, ConfiguredCheck],
        probe: Probe,
        other_locations: Callable[[], Awaitable[set[str]]],
        max_concurrency: int = 32,
    ) -> None:
        self._store = store
        self._clock = clock
        self._identity = identity
        self._checks = checks
        self._probe = probe
        self._other_locations = other_locations
        self._slots = asyncio.Semaphore(max_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- asking ------------------------------------------------------------------------------

    async def confirm(self, check: ConfiguredCheck, result: ProbeResult) -> Confirmation:
        """Ask another location about `check`'s failing `result` and wait for its answer."""
        if not await self._other_locations():
            return self._unconfirmed(result, "no monitor is running in another location")
        spec = check.spec
        budget = 2 * spec.timeout.total_seconds() + ANSWER_MARGIN_SECONDS + 2 * POLL_SECONDS
        request_id = await self._store.request_confirmation(
            check_key=check.key,
            worker=self._identity.worker,
            location=self._identity.location,
            now=self._clock.now(),
            ttl=budget,
        )
        deadline = self._clock.monotonic() + budget
        while self._clock.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            answer = await self._store.confirmation_answer(request_id)
            if answer is not None:
                return _judged(result, answer.answer)
        return self._unconfirmed(result, f"no other location answered within {budget:.0f}s")

    def _unconfirmed(self, result: ProbeResult, why: str) -> Confirmation:
        note = f"seen from {self._identity.location} only: {why}"
        return Confirmation(Verdict.UNCONFIRMED, _with_note(result, note))

    # -- answering ---------------------------------------------------------------------------

    async def serve(self, *, stopping: asyncio.Event) -> None:
        """Answer other locations' requests until `stopping` is set."""
        purged_at = float("-inf")
        while not stopping.is_set():
            try:
                await self._answer_due()
                if self._clock.monotonic() - purged_at > KEEP_SECONDS / 10:
                    purged_at = self._clock.monotonic()
                    await self._purge()
            except Exception as exc:  # noqa: BLE001 - retried at the next poll
                log.error("confirmations: %s: %s", type(exc).__name__, exc)
            try:
                await asyncio.wait_for(stopping.wait(), timeout=POLL_SECONDS)
            except TimeoutError:
                pass
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _answer_due(self) -> None:
        requests = await self._store.claim_confirmations(
            worker=self._identity.worker,
            location=self._identity.location,
            now=self._clock.now(),
            limit=CLAIM_BATCH,
            claim_for=60.0,
        )
        for request in requests:
            task = asyncio.create_task(self._answer(request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, request: ConfirmationRequest) -> None:
        check = self._checks.get(request.check_key)
        if check is None:  # configs differ between processes: say so rather than guess
            answer: dict[str, Any] = {
                "location": self._identity.location,
                "outcome": None,
                "error": f"{request.check_key} is not configured in {self._identity.location}",
            }
        else:
            async with self._slots:
                result = await self._probe(check)
            # Our own machine failing says nothing about the site: no verdict, rather than a
            # confirmation of somebody's outage.
            ours = result.cause is FailureCause.LOCAL_RESOURCE
            answer = {
                "location": self._identity.location,
                "outcome": None if ours else str(result.outcome),
                "status": result.evidence.status,
                "latency": result.latency,
                "error": result.evidence.error,
            }
        try:
            await self._store.answer_confirmation(
                request_id=request.id,
                worker=self._identity.worker,
                answer=answer,
                now=self._clock.now(),
            )
        except Exception as exc:  # noqa: BLE001 - the asker then treats it as unanswered
            log.error("could not answer confirmation %d: %s", request.id, exc)

    async def _purge(self) -> None:
        await self._store.purge_confirmations(
            before=self._clock.now() - timedelta(seconds=KEEP_SECONDS)
        )


def _judged(result: ProbeResult, answer: Mapping[str, Any]) -> Confirmation:
    where = str(answer.get("location") or "another location")
    outcome = answer.get("outcome")
    if outcome is None:
        why = str(answer.get("error") or "it could not probe the check")
        note = f"not confirmed: {where} could not tell ({why})"
        return Confirmation(Verdict.UNCONFIRMED, _with_note(result, note), other=why)
    seen = _summary(answer)
    if outcome == Outcome.OK:
        return Confirmation(Verdict.REFUTED, result, other=f"{where}: {seen}")
    return Confirmation(
        Verdict.CONFIRMED,
        _with_note(result, f"confirmed from {where}: {seen}"),
        other=f"{where}: {seen}",
    )


def _summary(answer: Mapping[str, Any]) -> str:
    parts = [str(answer.get("outcome"))]
    if answer.get("status") is not None:
        parts.append(f"HTTP {answer['status']}")
    if answer.get("latency") is not None:
        parts.append(f"{float(answer['latency']) * 1000:.0f} ms")
    if answer.get("error") and answer.get("outcome") != Outcome.OK:
        parts.append(str(answer["error"]))
    return ", ".join(parts)


def _with_note(result: ProbeResult, note: str) -> ProbeResult:
    evidence = result.evidence
    error = f"{evidence.error} ({note})" if evidence.error else note
    return replace(result, evidence=replace(evidence, error=error))

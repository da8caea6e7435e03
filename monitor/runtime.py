"""Wires probes, the incident engine, the store and metrics together for one process.

Flow of one probe: scheduler -> probe (checks/) -> trust check against our own loop lag ->
incident engine (incidents/) -> store (one transaction) -> in-memory state, metrics, events.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta

import aiohttp

from checks.flow import FlowCheckSpec, probe_flow
from checks.http import probe_http
from checks.page import PageCheckSpec, probe_page
from checks.result import Outcome, ProbeResult
from checks.tls import PeerCertResponse
from incidents.engine import apply_result
from incidents.model import CheckState, Incident, TimelineEntry, TimelineKind, Transition
from incidents.severity import Severity
from incidents.wording import describe
from monitor.clock import Clock
from monitor.config.models import ConfiguredCheck, MonitorConfig, configured_checks
from monitor.desk import IncidentDesk
from monitor.events import EventKind, MonitorEvent, log_event
from monitor.loop_lag import LoopLagMonitor
from monitor.metrics import Metrics, check_labels
from monitor.scheduler import Scheduler
from monitor.store import Store

log = logging.getLogger(__name__)

Listener = Callable[[MonitorEvent], None]

# A result that looks slow or timed out is re-probed this soon when our own loop lag could
# explain it, instead of being counted.
REPROBE_DELAY = 1.0
# A timeout is not trusted when our own event loop stalled for this share of the budget.
TIMEOUT_STALL_SHARE = 0.2
# Recent-history rows of healthy probes are written in one batch this often.
HISTORY_FLUSH_SECONDS = 1.0


def new_session(*, max_connections: int) -> aiohttp.ClientSession:
    """The probes' HTTP session: a fresh connection per probe, as an uptime probe must (a
    server that stops accepting connections is noticed), no cookies shared between checks."""
    connector = aiohttp.TCPConnector(
        force_close=True, limit=max_connections, ttl_dns_cache=60, enable_cleanup_closed=True
    )
    return aiohttp.ClientSession(
        connector=connector,
        # Keeps the peer certificate of each answer, for its expiry (see checks/tls.py).
        response_class=PeerCertResponse,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": "agency-monitor/0.1 (uptime check)"},
        trust_env=False,
    )


class Monitor:
    def __init__(
        self,
        *,
        config: MonitorConfig,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        session: aiohttp.ClientSession,
        listeners: Sequence[Listener] = (),
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.checks: list[ConfiguredCheck] = configured_checks(config)
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._session = session
        self._listeners = [log_event, *listeners]
        self._states: dict[str, CheckState] = {}
        self.desk = IncidentDesk(
            config=config,
            store=store,
            clock=clock,
            metrics=metrics,
            on_change=self._announce_change,
            on_outbox=on_outbox,
        )
        self._lag = LoopLagMonitor(monotonic=clock.monotonic, on_sample=metrics.event_loop_lag.set)
        self._scheduler: Scheduler[ConfiguredCheck] = Scheduler(
            self.checks,
            run=self._probe,
            monotonic=clock.monotonic,
            max_concurrency=config.scheduler.max_concurrency,
            per_host=config.scheduler.per_host,
            on_lag=self._on_lag,
            on_skip=lambda check: metrics.probes_skipped.labels(reason="overlap").inc(),
            on_in_flight=metrics.probes_in_flight.set,
        )
        self._started = asyncio.Event()
        self._stop_requested = False
        # The latest scheduling lags, for /healthz and benchmarks; Prometheus has the histogram.
        self.recent_lags: deque[float] = deque(maxlen=10_000)

    def _on_lag(self, lag: float) -> None:
        self._metrics.scheduler_lag.observe(lag)
        self.recent_lags.append(lag)

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Load state, probe on schedule until stop(), then finish the probes in flight."""
        self._states = await self._store.load_check_states()
        await self.desk.load()
        self._metrics.checks_configured.set(len(self.checks))
        self._metrics.zero_incident_counters({check.client for check in self.checks})
        if self.desk.open_incidents():
            log.info(
                "continuing %d open incident(s): %s",
                len(self.desk.open_incidents()),
                ", ".join(incident.ref for incident in self.desk.open_incidents()),
            )
        stopping = asyncio.Event()
        lag_task = asyncio.create_task(self._lag.run())
        flush_task = asyncio.create_task(self._flush_history_periodically())
        clocks_task = asyncio.create_task(
            self.desk.run_clocks(
                tick=self.config.scheduler.sla_tick.total_seconds(), stopping=stopping
            )
        )
        self._started.set()
        try:
            if not self._stop_requested:
                await self._scheduler.run()
        finally:
            self._lag.stop()
            stopping.set()
            flush_task.cancel()
            await asyncio.gather(lag_task, flush_task, clocks_task, return_exceptions=True)
            await self._flush_history()

    async def _flush_history_periodically(self) -> None:
        while True:
            await self._clock.sleep(HISTORY_FLUSH_SECONDS)
            await self._flush_history()

    async def _flush_history(self) -> None:
        try:
            await self._store.flush_history()
        except Exception as exc:  # noqa: BLE001 - the rows stay buffered for the next try
            self._metrics.store_errors.inc()
            self._emit(
                EventKind.STORE_ERROR,
                f"could not write check history: {type(exc).__name__}: {exc}",
            )

    def stop(self) -> None:
        self._stop_requested = True
        self._scheduler.stop()

    async def started(self) -> None:
        await self._started.wait()

    # -- read side -------------------------------------------------------------------------

    def open_incidents(self) -> list[Incident]:
        return self.desk.open_incidents()

    def check_state(self, key: str) -> CheckState | None:
        return self._states.get(key)

    @property
    def event_loop_lag(self) -> float:
        return self._lag.current()

    # -- one probe -------------------------------------------------------------------------

    async def _probe(self, check: ConfiguredCheck, due_at: float) -> None:
        started = self._clock.monotonic()
        spec = check.spec
        if isinstance(spec, FlowCheckSpec):
            result = await probe_flow(spec, session=self._session, now=self._clock.now)
        elif isinstance(spec, PageCheckSpec):
            result = await probe_page(
                spec, session=self._session, now=self._clock.now, sleep=self._clock.sleep
            )
        else:
            result = await probe_http(
                spec, session=self._session, now=self._clock.now, sleep=self._clock.sleep
            )
        if result.outcome in (Outcome.SLOW, Outcome.TIMEOUT) and not await self._trusted(
            check, result, started=started
        ):
            return
        await self.process(check, result)

    async def _trusted(
        self, check: ConfiguredCheck, result: ProbeResult, *, started: float
    ) -> bool:
        """Would this verdict stand if our own event loop had not stalled during the probe?"""
        await self._lag.next_sample()
        lag = self._lag.max_lag_between(started, self._clock.monotonic())
        if result.outcome is Outcome.SLOW:
            # Slow only if it stays slow once our own stall is taken off the measurement.
            trusted = (result.latency or 0.0) - lag > check.spec.slow_after.total_seconds()
        else:
            # A timeout stands unless our stall ate a real part of the budget: the target
            # then did not get the whole timeout to answer.
            trusted = lag < TIMEOUT_STALL_SHARE * check.spec.timeout.total_seconds()
        if trusted:
            return True
        self._metrics.probe_discarded.labels(reason="event_loop_lag").inc()
        self._emit(
            EventKind.PROBE_DISCARDED,
            f"probe of {check.key} discarded: {result.outcome} but the monitor's event loop "
            f"stalled {lag * 1000:.0f} ms during it; re-probing",
            check=check.key,
            outcome=str(result.outcome),
            loop_lag=lag,
        )
        self._scheduler.run_soon(check.key, delay=REPROBE_DELAY)
        return False

    async def process(self, check: ConfiguredCheck, result: ProbeResult) -> None:
        """Feed one result through the engine and the store; update metrics and tell people."""
        self._observe(check, result)
        async with self.desk.lock(check.site):
            previous = self._states.get(check.key) or CheckState(key=check.key)
            incident = self.desk.open_incident(check.site)
            now = self._clock.now()
            notify = None
            if incident is None and self.desk.in_maintenance(check.site, now):
                # A maintenance window opens no incident: the result is kept as history and
                # metrics, and failures start counting afresh once the window ends.
                transition = Transition(
                    state=replace(previous, recent=(), successes=0, last_outcome=result.outcome),
                    incident=None,
                )
            else:
                severity = (
                    None
                    if result.ok
                    else self.config.severity_policy.severity_for(
                        result.outcome, check_severity=check.spec.severity
                    )
                )
                transition = apply_result(
                    now=now,
                    check=check.ref,
                    result=result,
                    severity=severity,
                    state=previous,
                    incident=incident,
                )
                transition, notify = self.desk.prepare(
                    client=check.client, before=incident, transition=transition
                )
            try:
                stored = await self._store.record(
                    check_key=check.key,
                    result=result,
                    transition=transition,
                    previous_state=previous,
                    notify=notify,
                )
            except Exception as exc:  # noqa: BLE001 - the database being away is an expected failure
                self._metrics.store_errors.inc()
                self._emit(
                    EventKind.STORE_ERROR,
                    f"could not record the result of {check.key}: {type(exc).__name__}: {exc}",
                    check=check.key,
                )
                return
            self._states[check.key] = transition.state
            self._announce_check(check, result, previous, transition)
            self.desk.stored(check.site, stored, transition.timeline)

    def _observe(self, check: ConfiguredCheck, result: ProbeResult) -> None:
        labels = check_labels(check.key)
        self._metrics.probe_success.labels(**labels).set(1 if result.ok else 0)
        self._metrics.probe_http_status.labels(**labels).set(result.evidence.status or 0)
        if result.latency is not None:
            self._metrics.probe_duration.labels(**labels).observe(result.latency)
        self._metrics.probe_results.labels(**labels, outcome=str(result.outcome)).inc()
        if result.evidence.tls_not_after is not None:
            self._metrics.cert_expiry.labels(**labels).set(result.evidence.tls_not_after)

    # -- telling people --------------------------------------------------------------------

    def _announce_check(
        self,
        check: ConfiguredCheck,
        result: ProbeResult,
        previous: CheckState,
        transition: Transition,
    ) -> None:
        before = previous.last_outcome
        if not result.ok and before != result.outcome:
            streak = sum(1 for s in transition.state.recent[::-1] if s is not None)
            self._emit(
                EventKind.CHECK_FAILED,
                f"check failed {check.key}: {describe(result)} "
                f"[{min(streak, check.ref.failures_to_open)}/{check.ref.failures_to_open}]",
                check=check.key,
                outcome=str(result.outcome),
                status=result.evidence.status,
                latency=result.latency,
            )
        elif result.ok and before is not None and before is not Outcome.OK:
            self._emit(
                EventKind.CHECK_RECOVERED,
                f"check recovered {check.key}: {describe(result)}",
                check=check.key,
                latency=result.latency,
            )

    def _announce_change(self, incident: Incident, timeline: Sequence[TimelineEntry]) -> None:
        for entry in timeline:
            self._announce_entry(incident, entry)

    def _announce_entry(self, incident: Incident, entry: TimelineEntry) -> None:
        kind, text = _ENTRY_EVENTS[entry.kind]
        severity = entry.severity or incident.severity
        fields = {
            "incident": incident.ref,
            "incident_id": incident.id,
            "site": incident.site,
            "client": incident.client,
            "severity": int(severity),
            "check": entry.check,
        }
        if entry.kind is TimelineKind.OPENED:
            message = (
                f"{text} {incident.ref} {Severity(severity).label} {incident.site}: "
                f"{incident.title}"
            )
        elif entry.kind is TimelineKind.ESCALATED:
            message = (
                f"{text} {incident.ref} to {incident.severity.label} {incident.site}: "
                f"{entry.message}"
            )
        elif entry.kind is TimelineKind.RESOLVED:
            took = _format_span(entry.at - incident.opened_at)
            message = f"{text} {incident.ref} {incident.site} after {took}: {incident.title}"
        else:
            message = f"{text} {incident.ref} {incident.site}: {entry.message}"
        self._emit(kind, message, **fields)

    def _emit(self, kind: EventKind, message: str, **fields: object) -> None:
        event = MonitorEvent(kind=kind, at=self._clock.now(), message=message, fields=dict(fields))
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a listener's bug must not stop the monitor
                log.exception("event listener failed")


_ENTRY_EVENTS: dict[TimelineKind, tuple[EventKind, str]] = {
    TimelineKind.OPENED: (EventKind.INCIDENT_OPENED, "incident opened"),
    TimelineKind.CHECK_FAILED: (EventKind.INCIDENT_CHECK_ADDED, "incident check added"),
    TimelineKind.ESCALATED: (EventKind.INCIDENT_ESCALATED, "incident escalated"),
    TimelineKind.CHECK_RECOVERED: (EventKind.INCIDENT_CHECK_RECOVERED, "incident check recovered"),
    TimelineKind.RESOLVED: (EventKind.INCIDENT_RESOLVED, "incident resolved"),
    TimelineKind.ONCALL_PAGED: (EventKind.ONCALL_PAGED, "on-call paged"),
    TimelineKind.ONCALL_NOTIFIED: (EventKind.ONCALL_NOTIFIED, "on-call notified"),
    TimelineKind.ACKNOWLEDGED: (EventKind.INCIDENT_ACKNOWLEDGED, "incident acknowledged"),
    TimelineKind.CLIENT_UPDATE: (EventKind.CLIENT_UPDATE, "client update posted"),
    TimelineKind.UPDATE_REMINDER: (EventKind.SLA_REMINDER, "client update due soon"),
    TimelineKind.RESPONSE_BREACHED: (EventKind.SLA_BREACHED, "response target breached"),
    TimelineKind.UPDATE_OVERDUE: (EventKind.SLA_BREACHED, "client update overdue"),
}


def _format_span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"

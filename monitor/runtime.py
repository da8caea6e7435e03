"""Wires probes, the incident engine, the store and metrics together for one process.

Flow of one probe: scheduler -> probe (checks/) -> trust check against our own loop lag ->
incident engine (incidents/) -> store (one transaction) -> in-memory state, metrics, events.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import aiohttp

from checks.browser_spec import BrowserCheckSpec
from checks.http import AiohttpTransport, HttpTransport
from checks.lean_http import LeanTransport
from checks.private_ranges import guarded_socket
from checks.result import Outcome, ProbeResult
from checks.tls import PeerCertResponse
from incidents.engine import apply_result, settled_success
from incidents.flow import resolved_by_hand
from incidents.model import CheckState, Incident, TimelineEntry, TimelineKind, Transition
from incidents.severity import Severity
from incidents.wording import describe
from monitor.clients import message_context
from monitor.clock import Clock
from monitor.config.models import (
    ConfiguredCheck,
    MonitorConfig,
    configured_checks,
    has_browser_checks,
)
from monitor.confirm import Confirmer, Verdict
from monitor.connectivity import ConnectivityGuard
from monitor.desk import IncidentDesk
from monitor.events import EventKind, MonitorEvent, log_event
from monitor.local_faults import EVENT_LOOP_LAG, LocalFaults
from monitor.loop_lag import STALL_TIMING, LoopLagMonitor
from monitor.metrics import Metrics
from monitor.ownership import Identity, SiteOwnership
from monitor.probing import UnknownCheck, run_probe
from monitor.rdap_bootstrap import rdap_directory
from monitor.reports import monthly_enabled, queue_monthly_reports
from monitor.scheduler import Scheduler
from monitor.screenshots import ScreenshotFolder
from monitor.store import (
    DuplicateOpenIncident,
    LeaseLost,
    Notify,
    StaleIncident,
    Store,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from monitor.browser_pool import BrowserPool

log = logging.getLogger(__name__)

Listener = Callable[[MonitorEvent], None]

# A result that looks slow or timed out is re-probed this soon when our own loop lag could
# explain it, instead of being counted.
REPROBE_DELAY = 1.0
# A timeout is not trusted when our own event loop stalled for this share of the budget.
TIMEOUT_STALL_SHARE = 0.2
# Recent-history rows of healthy probes are written in one batch this often.
HISTORY_FLUSH_SECONDS = 1.0
# How often to look whether a monthly report is due (monitor.reports): it is due for a whole
# month, so a few minutes late is on time.
REPORT_CHECK_SECONDS = 300.0


def new_session(*, max_connections: int) -> aiohttp.ClientSession:
    """The probes' HTTP session: a fresh connection per probe, as an uptime probe must (a
    server that stops accepting connections is noticed), no cookies shared between checks."""
    connector = aiohttp.TCPConnector(
        force_close=True,
        limit=max_connections,
        ttl_dns_cache=60,
        enable_cleanup_closed=True,
        # Refuses redirect hops into internal address ranges before they connect.
        socket_factory=guarded_socket,
    )
    return aiohttp.ClientSession(
        connector=connector,
        # Keeps the peer certificate of each answer, for its expiry (see checks/tls.py).
        response_class=PeerCertResponse,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": "agency-monitor/0.1 (uptime check)"},
        trust_env=False,
    )


def new_http_transport(*, source_address: str | None = None) -> LeanTransport:
    """What `http` checks go through: a bare HTTP/1.1 client, a fresh connection per probe
    like `new_session`'s, at well under half of aiohttp's CPU (see checks/lean_http.py).
    `source_address` is the local IP its connections come from. Close it when done."""
    return LeanTransport(source_address=source_address)


@dataclass(frozen=True, slots=True)
class Applied:
    """What a reload changed in the running monitor (check keys and incident refs)."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)  # no failing check of theirs is left
    recomputed: list[str] = field(default_factory=list)  # their client's calendar changed


@dataclass(frozen=True, slots=True)
class CheckPlan:
    """A reloaded configuration's checks, and their keys added, changed and removed."""

    checks: list[ConfiguredCheck]
    added: list[str]
    changed: list[str]
    removed: list[str]


class Monitor:
    def __init__(
        self,
        *,
        config: MonitorConfig,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        session: aiohttp.ClientSession,
        http_transport: HttpTransport | None = None,
        listeners: Sequence[Listener] = (),
        on_outbox: Callable[[], None] = lambda: None,
        browser: BrowserPool | None = None,
        screenshots: ScreenshotFolder | None = None,
    ) -> None:
        self.config = config
        self.checks: list[ConfiguredCheck] = configured_checks(config)
        # Browser checks are skipped without a browser (no Chromium here: see app.py).
        self._browser = browser
        self._screenshots = screenshots
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._session = session
        # `http` checks; page and flow checks keep the session (cookies, assets).
        self._http = http_transport if http_transport is not None else AiohttpTransport(session)
        self._rdap = rdap_directory(config.rdap)  # for domain checks; read from disk once
        # tcp checks with tls: the system's trust, loaded once rather than per probe.
        self._tls = ssl.create_default_context()
        self._listeners = [log_event, *listeners]
        self._states: dict[str, CheckState] = {}
        self._by_key = {check.key: check for check in self.checks}
        self._site_keys: dict[str, list[str]] = {}
        for check in self.checks:
            self._site_keys.setdefault(check.site, []).append(check.key)
        cluster = config.cluster
        self.identity = Identity(worker=cluster.worker, location=cluster.location)
        self.connectivity = ConnectivityGuard(
            config=config,
            checks=self.checks,
            store=store,
            clock=clock,
            metrics=metrics,
            transport=self._http,
            messages=message_context(config),
            on_outbox=on_outbox,
            sites_probed=lambda: len(self.ownership.held),
            check_state=self.check_state,
        )
        self.desk = IncidentDesk(
            config=config,
            store=store,
            clock=clock,
            metrics=metrics,
            on_change=self._announce_change,
            on_outbox=on_outbox,
            owner=self.identity.worker,
            on_lease_lost=lambda site: self.ownership.lost(site),
            hold_client_mail=self.connectivity.hold_until,
        )
        self.ownership = SiteOwnership(
            store=store,
            clock=clock,
            identity=self.identity,
            sites=list(self._site_keys),
            lease=cluster.lease.total_seconds(),
            on_gained=self._gained,
            on_lost=self._lost,
        )
        # Read at scrape time: they change at lease rounds, not per probe.
        metrics.sites_held.set_function(lambda: len(self.ownership.held))
        metrics.cluster_workers.set_function(lambda: len(self.ownership.workers))
        metrics.store_available.set_function(lambda: 0 if store.unavailable else 1)
        self._confirmer = Confirmer(
            store=store,
            clock=clock,
            identity=self.identity,
            checks=self._by_key,
            probe=self._probe_once,
            other_locations=self.ownership.other_locations_now,
        )
        self._lag = LoopLagMonitor(monotonic=clock.monotonic, on_sample=metrics.event_loop_lag.set)
        self._local_faults = LocalFaults(monotonic=clock.monotonic)
        # Whether the store's being away has been told: once per outage, not once per result.
        self._store_outage_told = False
        self._scheduler: Scheduler[ConfiguredCheck] = Scheduler(
            [check for check in self.checks if check.spec.kind != "browser"],
            run=self._probe,
            monotonic=clock.monotonic,
            max_concurrency=config.scheduler.max_concurrency,
            per_host=config.scheduler.per_host,
            on_lag=self._on_lag,
            on_skip=lambda check: metrics.probes_skipped.labels(reason="overlap").inc(),
            on_in_flight=metrics.probes_in_flight.set,
            on_shed=self._on_shed,
            on_overload=self._on_overload,
        )
        # Journeys take seconds each and wait for a page: on a scheduler of their own, so
        # that they never hold a slot (or a per-host slot) an http check is waiting for.
        pages = config.browser.max_pages
        self._browser_scheduler: Scheduler[ConfiguredCheck] = Scheduler(
            [check for check in self.checks if check.spec.kind == "browser"],
            run=self._probe,
            monotonic=clock.monotonic,
            max_concurrency=pages,
            per_host=pages,
            on_lag=metrics.browser_scheduler_lag.observe,
            on_skip=lambda check: metrics.probes_skipped.labels(reason="overlap").inc(),
            on_in_flight=metrics.browser_in_flight.set,
            on_shed=self._on_shed,
        )
        self._started = asyncio.Event()
        self._stop_requested = False
        # Heartbeats that never pinged are missed `period + grace` after this; one added by
        # a reload, `period + grace` after the reload (its job has had no period yet).
        self._watching_since = clock.now()
        self._watching_added: dict[str, datetime] = {}
        # The latest scheduling lags, for /healthz and benchmarks; Prometheus has the histogram.
        self.recent_lags: deque[float] = deque(maxlen=10_000)

    def _on_lag(self, lag: float) -> None:
        self._metrics.scheduler_lag.observe(lag)
        self.recent_lags.append(lag)

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim this process's sites, probe them on schedule until stop(), then finish the
        probes in flight and hand the sites back."""
        self._set_active(())
        await self.desk.load()
        await self.connectivity.load()
        await self.ownership.sync()
        self._metrics.checks_configured.set(len(self.checks))
        self._metrics.zero_incident_counters({check.client for check in self.checks})
        if self.desk.open_incidents():
            log.info(
                "continuing %d open incident(s): %s",
                len(self.desk.open_incidents()),
                ", ".join(incident.ref for incident in self.desk.open_incidents()),
            )
        stopping = asyncio.Event()
        tasks = [
            asyncio.create_task(self._lag.run()),
            asyncio.create_task(self._flush_history_periodically()),
            asyncio.create_task(
                self.desk.run_clocks(
                    tick=self.config.scheduler.sla_tick.total_seconds(), stopping=stopping
                )
            ),
            asyncio.create_task(self.ownership.run(stopping=stopping)),
            asyncio.create_task(self._confirmer.serve(stopping=stopping)),
            asyncio.create_task(self.connectivity.run(stopping=stopping)),
            asyncio.create_task(self._monthly_reports()),
        ]
        self._started.set()
        try:
            if not self._stop_requested:
                await asyncio.gather(self._scheduler.run(), self._browser_scheduler.run())
        finally:
            self._lag.stop()
            stopping.set()
            tasks[1].cancel()  # the history flush loop; flushed once more below
            tasks[-1].cancel()  # the monthly reports: a report half made is made again
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._flush_history()
            await self.ownership.retire()

    async def _gained(self, sites: set[str]) -> None:
        """Sites this process now owns: their incidents and check states, then their probes."""
        await self.desk.adopt(sites)
        self._states.update(await self._store.load_check_states(keys=self._keys_of(sites)))
        self._set_active(self._keys_of(self.ownership.held | sites))
        self._metrics.sites_gained.inc(len(sites))

    def _lost(self, sites: set[str]) -> None:
        self.desk.drop(sites)
        keys = self._keys_of(sites)
        for key in keys:
            self._states.pop(key, None)
        # Their series now come from the process that took them: one source per check.
        self._metrics.checks.forget(keys)
        self._set_active(self._keys_of(self.ownership.held))

    def _set_active(self, keys: list[str] | tuple[str, ...]) -> None:
        self._scheduler.set_active(keys)
        # Unknown keys are ignored by each scheduler; without a browser, none of its checks.
        self._browser_scheduler.set_active(keys if self._browser is not None else ())

    def _keys_of(self, sites: set[str]) -> list[str]:
        return [key for site in sites for key in self._site_keys.get(site, ())]

    async def _monthly_reports(self) -> None:
        while True:
            # Asked each time: a config reload may switch monthly reports on or off.
            config = self.config
            if any(monthly_enabled(config, client) for client in config.clients):
                try:
                    await queue_monthly_reports(self._store, config, now=self._clock.now())
                except Exception:  # noqa: BLE001 - tried again at the next check
                    log.exception("queueing the monthly reports failed; trying again later")
            await self._clock.sleep(REPORT_CHECK_SECONDS)

    async def _flush_history_periodically(self) -> None:
        while True:
            await self._clock.sleep(HISTORY_FLUSH_SECONDS)
            await self._flush_history()

    async def _flush_history(self) -> None:
        try:
            await self._store.flush_history()
        except StoreUnavailable:
            self._metrics.store_errors.inc()
            self._store_away()  # the rows stay buffered for the next try
        except Exception as exc:  # noqa: BLE001 - the rows stay buffered for the next try
            self._metrics.store_errors.inc()
            self._emit(
                EventKind.STORE_ERROR,
                f"could not write check history: {type(exc).__name__}: {exc}",
            )
        else:
            self._store_back()

    def _store_away(self, check: ConfiguredCheck | None = None) -> None:
        """The database did not answer: tell it once per outage (the metric counts each)."""
        if self._store_outage_told:
            return
        self._store_outage_told = True
        self._emit(
            EventKind.STORE_ERROR,
            f"the store is unavailable ({self._store.unavailable}): results are counted in "
            "memory and incidents opened once it answers again; /healthz says degraded",
            **({"check": check.key} if check is not None else {}),
        )

    def _store_back(self) -> None:
        if self._store_outage_told and self._store.unavailable is None:
            self._store_outage_told = False
            log.info("the store answers again")

    # -- configuration reload --------------------------------------------------------------

    def plan(self, config: MonitorConfig) -> CheckPlan:
        """The checks of `config` and how they differ from the running ones, by key. Reads
        only, so a reload computes it off the event loop (it takes about a second for
        10,000 checks); `apply` then uses it."""
        checks = configured_checks(config)
        by_key = {check.key: check for check in checks}
        old = self._by_key
        return CheckPlan(
            checks=checks,
            added=sorted(key for key in by_key if key not in old),
            changed=sorted(key for key in by_key if key in old and by_key[key] != old[key]),
            removed=sorted(key for key in old if key not in by_key),
        )

    async def apply(self, config: MonitorConfig, *, plan: CheckPlan | None = None) -> Applied:
        """Carry on under a reloaded configuration (see monitor.reload), without a restart.

        Checks are matched by key: an unchanged or changed one keeps its state, phase and
        history (a change takes effect from its next run); a new one starts at its phase of
        its interval; a removed one stops, and an open incident with no failing check left
        is resolved with a timeline note (IncidentDesk.settle_removed). Sections that need a
        restart were put back to their running values by the caller. `plan`:
        `self.plan(config)`, when the caller has it."""
        plan = self.plan(config) if plan is None else plan
        checks, added, changed, removed = plan.checks, plan.added, plan.changed, plan.removed
        by_key = {check.key: check for check in checks}
        # From here on a result of a removed check still in flight is dropped (see process),
        # so it cannot reopen what is resolved below.
        self.config = config
        self.checks = checks
        self._rdap = rdap_directory(config.rdap)
        self._by_key.clear()
        self._by_key.update(by_key)  # the same dict as the confirmer's
        self._site_keys = {}
        for check in checks:
            self._site_keys.setdefault(check.site, []).append(check.key)
        self._scheduler.update([check for check in checks if check.spec.kind != "browser"])
        self._browser_scheduler.update([check for check in checks if check.spec.kind == "browser"])
        if self._browser is None and has_browser_checks(config):
            from monitor.browser_pool import browser_pool

            # The first browser check came with this reload: its Chromium starts at its first
            # journey (None still when none is installed: then they are skipped, as at start).
            self._browser = browser_pool(config, metrics=self._metrics)
        resolved = await self.desk.settle_removed(
            by_key, mail=config.notifications.mail_on_removed_check
        )
        recomputed = await self.desk.apply(config)
        for key in removed:
            self._states.pop(key, None)
            self._watching_added.pop(key, None)
        reloaded_at = self._clock.now()
        self._watching_added.update(
            (key, reloaded_at) for key in added if by_key[key].spec.kind == "heartbeat"
        )
        self._metrics.checks.forget(removed)
        self._metrics.checks_configured.set(len(checks))
        self._metrics.zero_incident_counters({check.client for check in checks})
        # A check added to a site held here may have a stored state (removed, then back).
        held_added = [key for key in added if by_key[key].site in self.ownership.held]
        if held_added:
            self._states.update(await self._store.load_check_states(keys=held_added))
        self._set_active(self._keys_of(self.ownership.held))
        try:
            await self.ownership.use_sites(list(self._site_keys))
        except Exception as exc:  # noqa: BLE001 - the next lease round claims them
            log.warning(
                "claiming the reloaded sites failed (%s: %s); the next lease round claims them",
                type(exc).__name__,
                exc,
            )
        return Applied(
            added=added,
            changed=changed,
            removed=removed,
            resolved=[incident.ref for incident in resolved],
            recomputed=[incident.ref for incident in recomputed],
        )

    @property
    def browser(self) -> BrowserPool | None:
        """The process's Chromium for browser checks (perhaps started by a reload)."""
        return self._browser

    def stop(self) -> None:
        self._stop_requested = True
        self._scheduler.stop()
        self._browser_scheduler.stop()

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

    @property
    def overload(self) -> str:
        """Why the monitor cannot keep up with its checks right now; "" when it can."""
        return self._scheduler.overload_reason

    def fault_reasons(self) -> list[str]:
        """Faults of the monitor's own that /healthz reports: the store not answering, and
        probes discarded as failures of our own machine or resolver (monitor.local_faults)."""
        reasons = []
        unavailable = self._store.unavailable
        if unavailable is not None:
            reasons.append(
                f"store unavailable ({unavailable}): results are counted in memory and "
                "written once it answers"
            )
        return reasons + self._local_faults.reasons()

    # -- one probe -------------------------------------------------------------------------

    async def probe_now(self, key: str) -> ProbeResult | None:
        """Probe the check `key` once, at once, for an operator to see (the console's "probe
        now"); the result is shown, not fed to the engine, so it neither opens nor resolves
        anything. None for a check not configured; UnknownCheck for a browser check without
        Chromium (its checks are skipped)."""
        check = self._by_key.get(key)
        if check is None:
            return None
        if check.spec.kind == "browser" and self._browser is None:
            raise UnknownCheck(key, [], why="it is a browser check and no Chromium is installed")
        return await self._probe_once(check)

    async def _probe_once(self, check: ConfiguredCheck) -> ProbeResult:
        """Probe `check` by its kind (also for another location's confirmation request)."""
        return await run_probe(
            check,
            session=self._session,
            http=self._http,
            clock=self._clock,
            ping_states=self._store.ping_states,
            watching_since=self._watching_added.get(check.key, self._watching_since),
            tls=self._tls,
            rdap=self._rdap,
            browser=self._browser,
            screenshots=self._screenshots,
            max_page_memory_mb=self.config.browser.max_page_memory_mb,
        )

    def ping_arrived(self, check_key: str) -> None:
        """A ping of heartbeat `check_key` was stored: judge it now rather than at its next
        interval, when this process holds its site (another one reads it on its own)."""
        check = self._by_key.get(check_key)
        if check is not None and check.site in self.ownership.held:
            self._scheduler.run_soon(check_key, delay=0.0)

    async def _probe(self, check: ConfiguredCheck, due_at: float) -> None:
        started = self._clock.monotonic()
        try:
            result = await self._probe_once(check)
        except StoreUnavailable:
            # A heartbeat's pings could not be read: nothing is known, nothing is counted.
            self._metrics.store_errors.inc()
            self._store_away(check)
            return
        local = self._local_faults.judge(result)
        if local is not None:
            # Our own machine or resolver failed, not the site: nothing to count against it.
            # The first of a run is logged; the metric counts them all.
            self._discard(
                check,
                result,
                reason=local.reason,
                why=f"({local.reason}: {result.evidence.error}): the monitor's own machine "
                "failed, not the site; such probes are discarded, not counted, until it "
                "recovers (see /healthz)",
                tell=local.first,
            )
            return
        if result.outcome in (Outcome.SLOW, Outcome.TIMEOUT) and not await self._trusted(
            check, result, started=started
        ):
            return
        if not result.ok and not await self.connectivity.counts_failure(since=started):
            # Counted but not logged one by one: a lost uplink fails every check, and the
            # guard logs the episode once when it begins and once when it ends.
            self._metrics.probe_discarded.labels(reason="connectivity").inc()
            return
        if check.spec.confirm_from_other_location and self._would_change_incident(check, result):
            confirmation = await self._confirmer.confirm(check, result)
            if confirmation.verdict is Verdict.REFUTED:
                self._discard(
                    check,
                    result,
                    reason="not_confirmed",
                    why=f"from {self.identity.location} but {confirmation.other}",
                    location=self.identity.location,
                )
                return
            if confirmation.verdict is Verdict.UNCONFIRMED:
                log.warning(
                    "failure of %s stands unconfirmed: %s",
                    check.key,
                    confirmation.result.evidence.error,
                )
            result = confirmation.result
        await self.process(check, result)

    def _would_change_incident(self, check: ConfiguredCheck, result: ProbeResult) -> bool:
        """Whether recording this failure would open, grow or escalate the site's incident:
        the results worth a second opinion. (The engine is pure, so asking costs nothing.)"""
        if result.ok:
            return False
        transition = self._apply(
            check,
            result,
            now=self._clock.now(),
            state=self._states.get(check.key) or CheckState(key=check.key),
            incident=self.desk.open_incident(check.site),
        )
        return bool(transition.timeline)

    def _apply(
        self,
        check: ConfiguredCheck,
        result: ProbeResult,
        *,
        now: datetime,
        state: CheckState,
        incident: Incident | None,
    ) -> Transition:
        """The engine's step for this result, with the severity the policy gives it."""
        severity = (
            None
            if result.ok
            else self.config.severity_policy.severity_for(
                result.outcome, check_severity=check.spec.severity
            )
        )
        return apply_result(
            now=now,
            check=check.ref,
            result=result,
            severity=severity,
            state=state,
            incident=incident,
        )

    async def _trusted(
        self, check: ConfiguredCheck, result: ProbeResult, *, started: float
    ) -> bool:
        """Would this verdict stand if our own event loop had not stalled during the probe?"""
        await self._lag.next_sample()
        lag = self._lag.max_lag_between(started, self._clock.monotonic())
        # A browser journey runs on a loop of its own, which reports its own stall.
        lag = max(lag, result.evidence.timings.get(STALL_TIMING, 0.0))
        if result.outcome is Outcome.SLOW:
            # Slow only if it stays slow once our own stall is taken off the measurement.
            measured, limit = (result.latency or 0.0), check.spec.slow_after.total_seconds()
            if isinstance(check.spec, BrowserCheckSpec):
                from checks.browser import slow_figures

                measured, limit = slow_figures(check.spec, result)  # perhaps a page's LCP
            trusted = measured - lag > limit
        else:
            # A timeout stands unless our stall ate a real part of the budget: the target
            # then did not get the whole timeout to answer.
            trusted = lag < TIMEOUT_STALL_SHARE * check.spec.timeout.total_seconds()
        if trusted:
            return True
        stall = f"the monitor's event loop stalled {lag * 1000:.0f} ms during a probe"
        self._discard(
            check,
            result,
            reason=EVENT_LOOP_LAG,
            why=f"but the monitor's event loop stalled {lag * 1000:.0f} ms during it; "
            "re-probing (logged once while stalls go on)",
            tell=self._local_faults.seen(EVENT_LOOP_LAG, stall),
            loop_lag=lag,
        )
        # Each scheduler knows only its own kind's keys: a browser check is re-run by its own.
        scheduler = self._browser_scheduler if check.spec.kind == "browser" else self._scheduler
        scheduler.run_soon(check.key, delay=REPROBE_DELAY)
        return False

    def _discard(
        self,
        check: ConfiguredCheck,
        result: ProbeResult,
        *,
        reason: str,
        why: str,
        tell: bool = True,
        **fields: object,
    ) -> None:
        """A result not counted: say so in the metric and (when `tell`) the log, with the
        reason."""
        self._metrics.probe_discarded.labels(reason=reason).inc()
        if not tell:
            return
        self._emit(
            EventKind.PROBE_DISCARDED,
            f"probe of {check.key} discarded: {result.outcome} {why}",
            check=check.key,
            outcome=str(result.outcome),
            **fields,
        )

    async def process(self, check: ConfiguredCheck, result: ProbeResult) -> None:
        """Feed one result through the engine and the store; update metrics and tell people."""
        if check.key not in self._by_key:
            return  # removed by a reload while it was probed
        self._observe(check, result)
        previous = self._states.get(check.key)
        if previous is not None and result.outcome is Outcome.OK:
            settled = self._settled(check, result, previous)
            if settled is not None:
                # Most results: a healthy check stays healthy on a site with no incident.
                # Nothing to decide, so no engine and no site lock; the store buffers its
                # history row (see test_fast_path: the same outcome as the full path).
                await self._record(
                    check, result, Transition(state=settled, incident=None), previous
                )
                return
        async with self.desk.lock(check.site):
            if check.key not in self._by_key:
                return  # removed by a reload while this result waited for the lock
            previous = self._states.get(check.key) or CheckState(key=check.key)
            incident = self.desk.open_incident(check.site)
            now = self._clock.now()
            notify = None
            if incident is None and self.desk.in_maintenance(check.site, now):
                # A maintenance window opens no incident: the result is kept as history and
                # metrics, and failures start counting afresh once the window ends.
                transition = Transition(
                    state=replace(
                        previous,
                        recent=(),
                        successes=0,
                        last_outcome=result.outcome,
                        held=previous.held and not result.ok,  # a pass is a pass
                    ),
                    incident=None,
                )
            else:
                transition = self._apply(check, result, now=now, state=previous, incident=incident)
                transition, notify = self.desk.prepare(
                    client=check.client, before=incident, transition=transition
                )
            written, stored = await self._record(check, result, transition, previous, notify=notify)
            if not written:
                return
            self._announce_check(
                check,
                result,
                previous,
                transition,
                maintenance=self.desk.in_maintenance(check.site, now),
            )
            self.desk.stored(check.site, stored, transition.timeline)

    def _settled(
        self, check: ConfiguredCheck, result: ProbeResult, previous: CheckState
    ) -> CheckState | None:
        """The state after an ok result that changes nothing but time, or None when the full
        path must decide (an open incident, a maintenance window, a change of outcome)."""
        if self.desk.open_incident(check.site) is not None:
            return None
        now = self._clock.now()
        if self.desk.in_maintenance(check.site, now):
            return None
        return settled_success(now=now, state=previous, result=result, incident=None)

    async def _record(
        self,
        check: ConfiguredCheck,
        result: ProbeResult,
        transition: Transition,
        previous: CheckState,
        *,
        notify: Notify | None = None,
    ) -> tuple[bool, Incident | None]:
        """Write the result and keep the check's new state: (True, the site's incident as
        stored). A store failure is counted and told, and the result dropped: (False, None)."""
        try:
            stored = await self._store.record(
                check_key=check.key,
                result=result,
                transition=transition,
                previous_state=previous,
                notify=notify,
                owner=self.identity.worker,
            )
        except LeaseLost:
            # Another process holds the site now (ours ran out while we were away): it
            # probes the site from here on, and this result is its business no more.
            self.ownership.lost(check.site)
            return False, None
        except StaleIncident as stale:
            # An operator changed the incident through another process since we read it:
            # carry on from the stored one; the next probe of this check counts again.
            log.info(
                "incident %s of %s was changed elsewhere; continuing from the stored one",
                stale.incident_id,
                check.site,
            )
            await self.desk.reload(check.site)
            return False, None
        except DuplicateOpenIncident:
            # An earlier write of this incident did commit though its answer was lost (the
            # connection dropped at the commit): carry on from the stored one, not a second.
            await self.desk.reload(check.site)
            return False, None
        except StoreUnavailable:
            self._metrics.store_errors.inc()
            self._store_away(check)
            # Detection goes on in memory: the result counts towards the check's streak, so
            # a site failing while the database is away has its incident opened by the first
            # result written once it is back. What the engine decided about the incident was
            # not written, so `failing` and `severity` (which mirror it) stay as they were,
            # and the engine decides again on the next result.
            self._states[check.key] = replace(
                transition.state, failing=previous.failing, severity=previous.severity
            )
            return False, None
        except Exception as exc:  # noqa: BLE001 - the database being away is an expected failure
            self._metrics.store_errors.inc()
            self._emit(
                EventKind.STORE_ERROR,
                f"could not record the result of {check.key}: {type(exc).__name__}: {exc}",
                check=check.key,
            )
            return False, None
        self._states[check.key] = transition.state
        self._store_back()
        return True, stored

    def _observe(self, check: ConfiguredCheck, result: ProbeResult) -> None:
        self._metrics.checks.observe(check.key, result)
        self.connectivity.observe(check, result)

    def _on_shed(self, check: ConfiguredCheck, late: float) -> None:
        self._metrics.probes_skipped.labels(reason="overload").inc()

    def _on_overload(self, overloaded: bool, reason: str) -> None:
        self._metrics.scheduler_overloaded.set(1 if overloaded else 0)
        # One line when an overload begins and one when it ends: the scheduler only reports
        # a change after a whole quiet window, so this cannot flood the log.
        if overloaded:
            log.warning(
                "monitor overloaded, probes are delayed or shed rather than timed wrong: %s",
                reason,
            )
        else:
            log.info("monitor keeps up with its checks again")

    # -- telling people --------------------------------------------------------------------

    def _announce_check(
        self,
        check: ConfiguredCheck,
        result: ProbeResult,
        previous: CheckState,
        transition: Transition,
        *,
        maintenance: bool = False,
    ) -> None:
        before = previous.last_outcome
        if not result.ok and before != result.outcome:
            streak = sum(1 for s in transition.state.recent[::-1] if s is not None)
            if maintenance:
                note = " during a maintenance window of its site"
            elif transition.state.held:
                note = " (resolved by hand while failing: counts again after one pass)"
            else:
                note = ""
            self._emit(
                EventKind.CHECK_FAILED,
                f"check failed {check.key}: {describe(result)} "
                f"[{min(streak, check.ref.failures_to_open)}/{check.ref.failures_to_open}]{note}",
                check=check.key,
                maintenance=maintenance,
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
            if resolved_by_hand(entry):
                message += f" ({entry.message})"  # who, and whether checks still failed
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
    TimelineKind.DEESCALATED: (EventKind.INCIDENT_DEESCALATED, "incident de-escalated"),
    TimelineKind.CHECK_RECOVERED: (EventKind.INCIDENT_CHECK_RECOVERED, "incident check recovered"),
    TimelineKind.RESOLVED: (EventKind.INCIDENT_RESOLVED, "incident resolved"),
    TimelineKind.ONCALL_PAGED: (EventKind.ONCALL_PAGED, "on-call paged"),
    TimelineKind.ONCALL_NOTIFIED: (EventKind.ONCALL_NOTIFIED, "on-call notified"),
    TimelineKind.PAGED: (EventKind.ONCALL_PAGED, "on-call paged"),
    TimelineKind.ACKNOWLEDGED: (EventKind.INCIDENT_ACKNOWLEDGED, "incident acknowledged"),
    TimelineKind.CLIENT_UPDATE: (EventKind.CLIENT_UPDATE, "client update posted"),
    TimelineKind.INTERNAL_NOTE: (EventKind.INTERNAL_NOTE, "internal note posted"),
    TimelineKind.POSTMORTEM: (EventKind.POSTMORTEM, "post-mortem attached"),
    TimelineKind.UPDATE_REMINDER: (EventKind.SLA_REMINDER, "client update due soon"),
    TimelineKind.RESPONSE_BREACHED: (EventKind.SLA_BREACHED, "response target breached"),
    TimelineKind.UPDATE_OVERDUE: (EventKind.SLA_BREACHED, "client update overdue"),
    TimelineKind.MAINTENANCE_STARTED: (EventKind.MAINTENANCE_STARTED, "maintenance began for"),
    TimelineKind.MAINTENANCE_ENDED: (EventKind.MAINTENANCE_ENDED, "maintenance ended for"),
}


def _format_span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"

"""The incident desk: every change to an incident goes through here, one site at a time.

Probe results (via the runtime), SLA ticks and operator actions all change incidents. The desk
serialises them per site with a lock, runs the pure steps of `incidents.flow` (clocks, paging,
actions), and writes the incident, its timeline and the notifications they cause in one
transaction; then it wakes the outbox worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from incidents.connectivity import held
from incidents.flow import (
    Change,
    StillFailing,
    acknowledge,
    after_checks_removed,
    after_engine,
    after_tick,
    attach_postmortem,
    change_severity,
    during_maintenance,
    next_wakeup,
    notifications,
    post_update,
    recompute_on_calendar,
    resolve_by_hand,
)
from incidents.model import Incident, TimelineEntry, TimelineKind, Transition
from incidents.outgoing import Audience, Outgoing, OutgoingEmail
from incidents.public_status import Stage
from incidents.recurring_maintenance import RecurringWindow, recurring_in_force
from incidents.severity import Severity
from incidents.sla import SlaContext
from monitor.clients import (
    ClientContext,
    client_contexts,
    escalation_of,
    message_context,
    notify_policy,
)
from monitor.clock import Clock
from monitor.config.models import ClientConfig, MonitorConfig
from monitor.metrics import Metrics
from monitor.screenshots import with_screenshot
from monitor.store import LeaseLost, MaintenanceWindow, StaleIncident, Store, StoreUnavailable

log = logging.getLogger(__name__)

MAINTENANCE_RELOAD_SECONDS = 30.0
# An operator action races at most this many concurrent changes before giving up.
_ACT_ATTEMPTS = 3

Notify = Callable[[Incident], tuple[Incident, Sequence[Outgoing]]]


class ActionError(Exception):
    """An operator action that cannot be done; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class IncidentDesk:
    def __init__(
        self,
        *,
        config: MonitorConfig,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        on_change: Callable[[Incident, Sequence[TimelineEntry]], None] = lambda i, t: None,
        on_outbox: Callable[[], None] = lambda: None,
        owner: str | None = None,
        on_lease_lost: Callable[[str], None] = lambda site: None,
        hold_client_mail: Callable[[str, datetime], datetime | None] = lambda site, now: None,
    ) -> None:
        self._store = store
        # Until when client mails about a site wait (a mass failure's hold); None: at once.
        self._hold_client_mail = hold_client_mail
        # Writes about an owned site are fenced with this worker's lease (see Store.record):
        # a process that lost a site while paused cannot overwrite its new owner's work.
        self._owner = owner
        self._on_lease_lost = on_lease_lost
        self._owned: set[str] = set()
        self._clock = clock
        self._metrics = metrics
        self._config = config
        self._clients: dict[str, ClientContext] = client_contexts(config)
        self._sites = {f"{c.id}/{site.id}" for c in config.clients for site in c.sites}
        self._messages = message_context(config)
        self._policy = notify_policy(config)
        self._escalation = escalation_of(config)
        self._on_change = on_change
        self._on_outbox = on_outbox
        self._open: dict[str, Incident] = {}  # by site key
        self._locks: dict[str, asyncio.Lock] = {}
        self._maintenance: dict[str, list[MaintenanceWindow]] = {}  # by site, not yet over
        self._recurring = recurring_windows(config)  # by site, from the YAML
        self._wake = asyncio.Event()
        self._maintenance_loaded = float("-inf")
        # Moves on with every incident or maintenance change this process makes: status page
        # snapshots are rebuilt when it has moved (not on every request).
        self.revision = 0

    async def load(self) -> None:
        """Maintenance windows; incidents come with the sites this process adopts."""
        await self.refresh_maintenance()

    async def adopt(self, sites: Collection[str]) -> None:
        """This process now owns `sites`: take their open incidents over from the database."""
        wanted = set(sites) - self._owned
        if not wanted:
            return
        loaded = await self._store.load_open_incidents()
        for site in sorted(wanted):
            self._owned.add(site)
            incident = loaded.get(site)
            if incident is None:
                continue
            if incident.client in self._clients:
                self._open[site] = incident
                log.info("%s of %s continues here", incident.ref, site)
            else:  # the client left the configuration: its incident waits, untouched
                log.warning(
                    "%s of client %s stays open but unmanaged: the client is not configured",
                    incident.ref,
                    incident.client,
                )

    def drop(self, sites: Collection[str]) -> None:
        """This process no longer owns `sites`: forget them (the database keeps everything)."""
        for site in sites:
            self._owned.discard(site)
            self._open.pop(site, None)

    def owns(self, site: str) -> bool:
        return site in self._owned

    @property
    def owner(self) -> str | None:
        return self._owner

    # -- read side -------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock.now()

    def lock(self, site: str) -> asyncio.Lock:
        return self._locks.setdefault(site, asyncio.Lock())

    def open_incident(self, site: str) -> Incident | None:
        return self._open.get(site)

    def open_incidents(self) -> list[Incident]:
        return list(self._open.values())

    async def queue(self) -> list[Incident]:
        """The triage queue: open and unresponded; Severity 1 first, then by response due.

        Read from the database, so that any process sharing it answers for every site."""
        stored = await self._store.list_incidents(open_only=True, limit=10_000)
        waiting = [i for i in stored if i.responded_at is None]
        far = datetime.max.replace(tzinfo=self._clock.now().tzinfo)
        return sorted(
            waiting,
            key=lambda i: (int(i.severity) != 1, i.response_due_at or far, i.opened_at),
        )

    def client_timezone(self, client: str) -> str | None:
        """The IANA zone of the client's business hours; None for a client not configured."""
        context = self._clients.get(client)
        return context.info.timezone if context is not None else None

    async def preview_update(
        self,
        incident_id: int,
        *,
        by: str,
        text: str,
        public: bool = True,
        stage: Stage | None = None,
    ) -> list[OutgoingEmail]:
        """The client mails `post_update` would send now, composed by the same builder the
        outbox sends from; nothing is stored. Empty for an internal note or a client without
        contacts."""
        stored = await self._store.get_incident(incident_id)
        if stored is None:
            raise ActionError(f"no incident {incident_id}", status=404)
        if stored.client not in self._clients:
            raise ActionError(f"{stored.ref}: client {stored.client} is not configured", status=409)
        now = self._clock.now()
        try:
            change = post_update(
                stored, now=now, by=by, text=text, sla=self._sla(stored), public=public, stage=stage
            )
        except ValueError as exc:
            raise ActionError(str(exc), status=400) from exc
        _, out = self._notifier(stored.client, change.timeline, now)(change.incident)
        return [
            message
            for message in out
            if isinstance(message, OutgoingEmail) and message.audience is Audience.CLIENT
        ]

    def in_maintenance(self, site: str, now: datetime) -> bool:
        # Asked for every probe result: no lists built for the commonest answer.
        return any(window.in_force(now) for window in self._maintenance.get(site, ())) or any(
            window.in_force(now) is not None for window in self._recurring.get(site, ())
        )

    def maintenance_window(self, site: str, now: datetime) -> tuple[datetime, datetime] | None:
        """(start, end) of the site's maintenance in force at `now`, overlapping windows
        merged; None when none is."""
        spans = [
            (window.starts_at, window.ends_at)
            for window in self._maintenance.get(site, ())
            if window.in_force(now)
        ]
        spans += recurring_in_force(self._recurring.get(site, ()), now)
        if not spans:
            return None
        return min(start for start, _ in spans), max(end for _, end in spans)

    def recurring_maintenance(
        self, *, site: str | None, now: datetime
    ) -> list[tuple[str, RecurringWindow, tuple[datetime, datetime]]]:
        """(site, window, its occurrence in force or next) of the YAML's recurring windows."""
        found = []
        for key, windows in sorted(self._recurring.items()):
            if site is not None and key != site:
                continue
            for window in windows:
                span = window.next_span(now)
                if span is not None:
                    found.append((key, window, span))
        return sorted(found, key=lambda item: (item[2], item[0]))

    # -- probe results ---------------------------------------------------------------------

    def prepare(
        self, *, client: str, before: Incident | None, transition: Transition
    ) -> tuple[Transition, Notify | None]:
        """Clocks, paging and the notifier for what the engine did to an incident."""
        after = transition.incident
        if after is None or not (transition.incident_changed or transition.timeline):
            return transition, None
        now = self._clock.now()
        change = after_engine(
            before=before,
            after=after,
            timeline=transition.timeline,
            now=now,
            sla=self._clients[client].sla,
            escalation=self._escalation,
        )
        prepared = replace(
            transition, incident=change.incident, timeline=change.timeline, incident_changed=True
        )
        return prepared, self._notifier(client, change.timeline, now)

    def stored(
        self, site: str, incident: Incident | None, timeline: Sequence[TimelineEntry]
    ) -> None:
        """The store has written `incident`: remember it and tell whoever listens."""
        if site not in self._owned:
            pass  # an action on another process's site: its owner keeps the copy
        elif incident is not None and incident.is_open:
            self._open[site] = incident
        else:
            self._open.pop(site, None)
        if incident is not None and timeline:
            self.revision += 1
            self._count(incident, timeline)
            self._on_change(incident, timeline)
            self._on_outbox()
            self._wake.set()  # new clocks may be due sooner than the next tick

    # -- SLA clocks ------------------------------------------------------------------------

    async def run_clocks(self, *, tick: float, stopping: asyncio.Event) -> None:
        """Reminders, breaches and deferred on-call notices, checked every `tick` seconds
        (and at once after any incident change)."""
        while not stopping.is_set():
            self._wake.clear()
            try:
                await self.tick()
            except Exception as exc:  # noqa: BLE001 - retried at the next tick
                self._metrics.store_errors.inc()
                log.error("SLA clocks: %s: %s", type(exc).__name__, exc)
            waiters = [
                asyncio.ensure_future(stopping.wait()),
                asyncio.ensure_future(self._wake.wait()),
            ]
            timeout = min(tick, self.seconds_to_next_wakeup(default=tick))
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    def seconds_to_next_wakeup(self, *, default: float) -> float:
        """Seconds until the earliest clock event or page still to come of an open incident
        (`default` when none is): the clocks loop sleeps no longer, so a page due in 3 s goes
        in 3 s, not at the next tick. Moments already past are left to the tick just run."""
        now = self._clock.now()
        ahead = [
            wake
            for incident in self._open.values()
            if incident.client in self._clients
            and (
                wake := next_wakeup(incident, sla=self._sla(incident), escalation=self._escalation)
            )
            is not None
            and wake > now
        ]
        return (min(ahead) - now).total_seconds() if ahead else default

    async def tick(self) -> int:
        """Apply every SLA event due now; returns how many incidents changed."""
        if self._clock.monotonic() - self._maintenance_loaded >= MAINTENANCE_RELOAD_SECONDS:
            # Another process sharing the database may have added a window.
            await self.refresh_maintenance()
        changed = 0
        for site, incident in list(self._open.items()):
            sla = self._clients[incident.client].sla
            wake = next_wakeup(incident, sla=sla, escalation=self._escalation)
            now = self._clock.now()
            paused = incident.paused_since is not None
            if (wake is None or wake > now) and paused == self.in_maintenance(site, now):
                continue
            async with self.lock(site):
                current = self._open.get(site)
                if current is None:
                    continue
                now = self._clock.now()
                change = self._clock_step(current, now=now, sla=sla)
                if change is None:
                    continue
                try:
                    await self._save(change, now=now)
                except StaleIncident:
                    # An operator acted on it through another process: start from theirs;
                    # the next tick applies whatever is still due.
                    await self.reload(site)
                    continue
                except LeaseLost:
                    self._lost(site)
                    continue
                changed += 1
        return changed

    def _clock_step(self, incident: Incident, *, now: datetime, sla: SlaContext) -> Change | None:
        """Maintenance pauses first (a paused clock fires nothing), then what falls due."""
        window = self.maintenance_window(incident.site, now)
        paused = during_maintenance(incident, now=now, window=window, sla=sla)
        current = incident if paused is None else paused.incident
        due = after_tick(current, now=now, sla=sla, escalation=self._escalation)
        if paused is None:
            return due
        if due is None:
            return paused
        return Change(incident=due.incident, timeline=(*paused.timeline, *due.timeline))

    # -- operator actions ------------------------------------------------------------------

    async def acknowledge(self, incident_id: int, *, by: str) -> Incident:
        return await self._act(
            incident_id, lambda i, now: acknowledge(i, now=now, by=by, sla=self._sla(i))
        )

    async def post_update(
        self,
        incident_id: int,
        *,
        by: str,
        text: str,
        public: bool = True,
        stage: Stage | None = None,
    ) -> Incident:
        return await self._act(
            incident_id,
            lambda i, now: post_update(
                i, now=now, by=by, text=text, sla=self._sla(i), public=public, stage=stage
            ),
        )

    async def change_severity(self, incident_id: int, *, by: str, severity: Severity) -> Incident:
        """Escalate or de-escalate by hand (`incidents.flow.change_severity`). Lowering it
        below what a still-failing check confirms is refused (409): the engine would raise it
        again at that check's next result, mailing the client an escalation."""
        stored = await self._store.get_incident(incident_id)
        if stored is not None and severity > stored.severity:
            states = await self._store.load_check_states(keys=sorted(stored.failing_checks))
            worse = sorted(
                key
                for key, state in states.items()
                if state.failing and state.severity is not None and state.severity < severity
            )
            if worse:
                raise ActionError(
                    f"{stored.ref} cannot go down to {severity.label}: {', '.join(worse)} "
                    "still fails at a higher severity and would raise it again at its next "
                    "result; lower it once that check passes, or resolve the incident",
                    status=409,
                )
        return await self._act(
            incident_id,
            lambda i, now: change_severity(i, now=now, by=by, severity=severity, sla=self._sla(i)),
        )

    async def attach_postmortem(self, incident_id: int, *, by: str, text: str) -> Incident:
        """The post-mortem of a resolved incident, shown on the client's status page."""
        stored = await self._store.get_incident(incident_id)
        if stored is None:
            raise ActionError(f"no incident {incident_id}", status=404)
        try:
            change = attach_postmortem(stored, now=self._clock.now(), by=by, text=text)
        except ValueError as exc:
            raise ActionError(str(exc), status=409 if stored.is_open else 400) from exc
        # Not through _save: the site may have a newer open incident, which must stay ours.
        saved = await self._store.save_incident(
            change.incident, timeline=change.timeline, now=self._clock.now()
        )
        self.revision += 1
        return saved

    async def resolve(
        self, incident_id: int, *, by: str, note: str = "", force: bool = False
    ) -> Incident:
        """Resolve by hand; refused (409) while a failing check's latest result is still a
        failure, unless `force`. The stored check states decide, so any process can tell."""
        stored = await self._store.get_incident(incident_id)
        states = await self._store.load_check_states(keys=sorted(stored.checks)) if stored else {}
        still_failing = {
            key
            for key, state in states.items()
            if state.last_outcome is not None and state.last_outcome.is_failure
        }

        def resolve(incident: Incident, now: datetime) -> Change:
            try:
                change = resolve_by_hand(
                    incident, now=now, by=by, note=note, still_failing=still_failing, force=force
                )
            except StillFailing as exc:
                raise ActionError(str(exc), status=409) from exc
            return change

        return await self._act(incident_id, resolve)

    async def add_maintenance(
        self, *, site: str, starts_at: datetime, ends_at: datetime, reason: str, by: str
    ) -> MaintenanceWindow:
        if site not in self._sites:
            raise ActionError(f"no site {site!r} in the configuration", status=404)
        if ends_at <= starts_at:
            raise ActionError("ends_at must be after starts_at", status=400)
        window = await self._store.add_maintenance(
            site=site,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason,
            created_by=by,
            now=self._clock.now(),
        )
        await self.refresh_maintenance()
        self._wake.set()  # an open incident's clocks pause now if the window has begun
        log.info(
            "maintenance window %d for %s from %s to %s added by %s: %s",
            window.id,
            site,
            starts_at.isoformat(),
            ends_at.isoformat(),
            by,
            reason,
        )
        return window

    async def cancel_maintenance(self, window_id: int, *, by: str) -> MaintenanceWindow:
        """Delete a one-off window: one to come never starts, one in force ends now (the
        clocks of a paused incident resume at the next tick, woken at once)."""
        if not by.strip():
            raise ActionError("say who acts: `by` must not be empty", status=400)
        window = await self._store.cancel_maintenance(window_id)
        if window is None:
            raise ActionError(f"no maintenance window {window_id}", status=404)
        await self.refresh_maintenance()
        self._wake.set()
        log.info(
            "maintenance window %d for %s (%s to %s) cancelled by %s",
            window.id,
            window.site,
            window.starts_at.isoformat(),
            window.ends_at.isoformat(),
            by,
        )
        return window

    async def refresh_maintenance(self) -> None:
        # Windows still to come are kept too: one added for tonight must take effect tonight,
        # whatever the tick that notices it.
        windows = await self._store.list_maintenance(include_past=False, now=self._clock.now())
        self._maintenance_loaded = self._clock.monotonic()
        by_site: dict[str, list[MaintenanceWindow]] = {}
        for window in windows:
            by_site.setdefault(window.site, []).append(window)
        if by_site != self._maintenance:
            self.revision += 1
        self._maintenance = by_site

    # -- configuration reload --------------------------------------------------------------

    async def settle_removed(self, configured: Collection[str], *, mail: bool) -> list[Incident]:
        """Open incidents after a reload kept only the checks `configured` (keys): resolved,
        with a timeline note, when no failing check of theirs is left; else no longer waiting
        for the failing checks that went (incidents.flow.after_checks_removed). The client is
        mailed a resolution only when `mail` (notifications.mail_on_removed_check). Returns
        the incidents resolved. Call before `apply`: an incident's client may be gone."""
        resolved = []
        async for current in self._each_open_locked():
            now = self._clock.now()
            change = after_checks_removed(current, now=now, configured=configured)
            if change is None:
                continue
            saved = await self._save_on_reload(change, now=now, notify=mail)
            if saved is not None and not saved.is_open:
                resolved.append(saved)
        return resolved

    async def apply(self, config: MonitorConfig) -> list[Incident]:
        """Use a reloaded configuration: clients, plans, calendars, templates and recurring
        maintenance. Open incidents of a client whose calendar or plan changed have their
        clocks counted again, with a timeline note; returns those incidents."""
        old = self._config
        before = {client.id: client for client in old.clients}
        self._config = config
        self._clients = client_contexts(config)
        self._sites = {f"{c.id}/{site.id}" for c in config.clients for site in c.sites}
        self._messages = message_context(config)
        self._policy = notify_policy(config)
        self._escalation = escalation_of(config)
        self._recurring = recurring_windows(config)
        self.revision += 1
        changed = {
            client.id
            for client in config.clients
            if client.id in before
            and _calendar_of(config, client) != _calendar_of(old, before[client.id])
        }
        recomputed = []
        async for current in self._each_open_locked():
            if current.client not in self._clients:
                # Its client went, so its checks did too, yet settle_removed could not write
                # its resolution (the store refused it): it is left as a restart would leave
                # it, open but unmanaged (see adopt), for an operator.
                log.warning(
                    "%s stays open but unmanaged: client %s is not configured",
                    current.ref,
                    current.client,
                )
                self._open.pop(current.site)
                continue
            if current.client not in changed:
                continue
            now = self._clock.now()
            change = recompute_on_calendar(current, now=now, sla=self._sla(current))
            if change is None:
                continue
            saved = await self._save_on_reload(change, now=now)
            if saved is not None:
                recomputed.append(saved)
        self._wake.set()  # due times may have moved nearer
        return recomputed

    async def _each_open_locked(self) -> AsyncIterator[Incident]:
        """Each open incident in turn, its site's lock held while the caller handles it
        (iterate to the end: a generator left half-way holds the lock until it is closed)."""
        for site in list(self._open):
            async with self.lock(site):
                current = self._open.get(site)
                if current is not None:
                    yield current

    async def _save_on_reload(
        self, change: Change, *, now: datetime, notify: bool = True
    ) -> Incident | None:
        """`_save` for a reload's change, with the site's lock held; None when it could not
        be written (the incident is then left as it was, and the next reload tries again)."""
        site = change.incident.site
        try:
            return await self._save(change, now=now, notify=notify)
        except StaleIncident:
            # Changed through another process meanwhile: ours is refreshed from the store.
            await self.reload(site)
            why = "it was changed through another process"
        except LeaseLost:
            self._lost(site)
            return None
        except StoreUnavailable as exc:
            self._metrics.store_errors.inc()
            why = f"the store is unavailable: {exc}"
        log.warning(
            "%s of %s not updated for the reloaded configuration (%s); the next reload tries again",
            change.incident.ref,
            site,
            why,
        )
        return None

    # -- internals -------------------------------------------------------------------------

    def _sla(self, incident: Incident) -> SlaContext:
        return self._clients[incident.client].sla

    async def _act(
        self, incident_id: int, action: Callable[[Incident, datetime], Change]
    ) -> Incident:
        # An operator may act through any process sharing the database. The site's owner
        # applies the action to its copy; any other process applies it to the stored row.
        # Either way the row's version decides: a write from a stale copy is refused
        # (StaleIncident), and the action is tried again on the newer one.
        for _ in range(_ACT_ATTEMPTS - 1):
            try:
                return await self._act_once(incident_id, action)
            except StaleIncident:
                continue
            except LeaseLost as lost:
                self._lost(lost.site)
        return await self._act_once(incident_id, action)

    async def _act_once(
        self, incident_id: int, action: Callable[[Incident, datetime], Change]
    ) -> Incident:
        stored = await self._store.get_incident(incident_id)
        if stored is None:
            raise ActionError(f"no incident {incident_id}", status=404)
        site = stored.site
        async with self.lock(site):
            owned = site in self._owned
            current = self._open.get(site) if owned else (stored if stored.is_open else None)
            if (
                owned
                and current is not None
                and current.id == stored.id
                and current.version < stored.version
            ):
                current = self._open[site] = stored  # changed elsewhere since we read it
            if current is None or current.id != incident_id:
                raise ActionError(
                    f"{stored.ref} is {stored.status}: it takes no actions", status=409
                )
            if current.client not in self._clients:
                raise ActionError(
                    f"{stored.ref} belongs to client {current.client}, which is not configured",
                    status=409,
                )
            now = self._clock.now()
            try:
                change = action(current, now)
            except ValueError as exc:
                raise ActionError(str(exc), status=400) from exc
            try:
                return await self._save(change, now=now, fenced=owned)
            except StaleIncident:
                if owned:
                    await self.reload(site)
                raise

    async def reload(self, site: str) -> None:
        """Replace our copy of the site's open incident with the stored one; the caller holds
        the site's lock (`lock(site)`)."""
        incident = await self._store.load_open_incident(site)
        if incident is None:
            self._open.pop(site, None)
        elif site in self._owned:
            self._open[site] = incident

    def _lost(self, site: str) -> None:
        """Another process holds the site now (our lease ran out): stop managing it here."""
        if site in self._owned:
            log.warning("lease on %s lost to another process: no longer managing it here", site)
            self.drop([site])
            self._on_lease_lost(site)

    async def _save(
        self, change: Change, *, now: datetime, fenced: bool = True, notify: bool = True
    ) -> Incident:
        incident = change.incident
        saved = await self._store.save_incident(
            incident,
            timeline=change.timeline,
            notify=self._notifier(incident.client, change.timeline, now) if notify else None,
            now=now,
            owner=self._owner if fenced else None,
        )
        self.stored(incident.site, saved, change.timeline)
        return saved

    def _notifier(self, client: str, timeline: Sequence[TimelineEntry], now: datetime) -> Notify:
        info = self._clients[client].info

        def notify(incident: Incident) -> tuple[Incident, Sequence[Outgoing]]:
            state, out = notifications(
                incident, timeline, now=now, client=info, ctx=self._messages, policy=self._policy
            )
            out = with_screenshot(out, timeline)  # a browser check's failing page, to on-call
            until = self._hold_client_mail(incident.site, now)
            return state, (held(out, until=until) if until is not None else out)

        return notify

    def _count(self, incident: Incident, timeline: Sequence[TimelineEntry]) -> None:
        """The incident metrics of one change: openings, escalations, resolutions, breaches,
        and the time to the first response and to resolution."""
        labels = {"client": incident.client, "severity": str(int(incident.severity))}
        metrics = self._metrics
        for entry in timeline:
            kind = entry.kind
            if kind is TimelineKind.OPENED:
                metrics.incidents_opened.labels(**labels).inc()
            elif kind is TimelineKind.ESCALATED:
                metrics.incidents_escalated.labels(**labels).inc()
            elif kind is TimelineKind.RESOLVED:
                metrics.incidents_resolved.labels(**labels).inc()
                took = (entry.at - incident.opened_at).total_seconds()
                metrics.time_to_resolve.labels(**labels).observe(took)
            elif kind is TimelineKind.PAGED:
                level = str((entry.evidence or {}).get("level", ""))
                metrics.pages.labels(severity=labels["severity"], level=level).inc()
            elif kind is TimelineKind.RESPONSE_BREACHED:
                metrics.sla_breaches.labels(kind="response", severity=labels["severity"]).inc()
            elif kind is TimelineKind.UPDATE_OVERDUE:
                metrics.sla_breaches.labels(kind="update", severity=labels["severity"]).inc()
            elif (
                kind in (TimelineKind.ACKNOWLEDGED, TimelineKind.CLIENT_UPDATE)
                and incident.responded_at == entry.at
            ):
                took = (entry.at - incident.opened_at).total_seconds()
                metrics.time_to_respond.labels(**labels).observe(took)


def recurring_windows(config: MonitorConfig) -> dict[str, list[RecurringWindow]]:
    """The YAML's recurring windows by site key: the client's apply to each of its sites;
    all read in the client's time zone."""
    found: dict[str, list[RecurringWindow]] = {}
    for client in config.clients:
        zone = ZoneInfo(client.business_hours.timezone)
        for site in client.sites:
            found[f"{client.id}/{site.id}"] = [
                RecurringWindow(spec.recurrence(), zone, spec.reason)
                for spec in (*client.maintenance, *site.maintenance)
            ]
    return {site: windows for site, windows in found.items() if windows}


def _calendar_of(config: MonitorConfig, client: ClientConfig) -> tuple[object, ...]:
    """What a client's SLA clocks count in: its business hours and its plan's coverage."""
    return (client.business_hours, config.plans[client.plan])

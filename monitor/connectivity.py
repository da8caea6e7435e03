"""The own-connectivity guard wired in: canaries probed on their own schedule, the decisions of
`incidents.connectivity` applied to the runtime, and the on-call notices queued.

The runtime asks three things of it:
- `counts_failure(since=...)` before a failure is counted: False while the monitor's own
  connectivity is lost. A failure seen while the canaries still looked fine re-probes them
  first (one shared round for every failure waiting), so a target that fails in the same
  instant as our uplink is never counted.
- `observe(check, result)` for every counted result: mass-failure detection (no canaries).
- `hold_until(site, now)`: until when client mails about a site wait (the desk asks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from checks.http import HttpTransport, probe_http
from checks.result import Outcome, ProbeResult
from incidents.connectivity import (
    CanaryWatch,
    ConnectivityLost,
    ConnectivityRestored,
    MassFailure,
    MassFailurePolicy,
    MassFailureWatch,
)
from incidents.connectivity_notices import (
    as_chat,
    as_webhook,
    connectivity_lost,
    connectivity_restored,
    episode_since,
    mass_failure,
)
from incidents.messages import MessageContext
from incidents.model import CheckState
from incidents.outgoing import NoticeKind, Outgoing, OutgoingEmail
from incidents.routes import EMAIL_CHANNEL, WEBHOOK_CHANNEL, Event, channels_for
from monitor.clients import ONCALL_WEBHOOK, notify_policy
from monitor.clock import Clock
from monitor.config.models import CanaryConfig, ConfiguredCheck, MonitorConfig
from monitor.metrics import Metrics
from monitor.store import Store

log = logging.getLogger(__name__)

# A notice that could not be queued (the database away) is tried again this often.
NOTICE_RETRY_SECONDS = 5.0
CANARY_PASSES = frozenset({Outcome.OK, Outcome.SLOW, Outcome.CERT_EXPIRING})


class ConnectivityGuard:
    def __init__(
        self,
        *,
        config: MonitorConfig,
        checks: list[ConfiguredCheck],
        store: Store,
        clock: Clock,
        metrics: Metrics,
        transport: HttpTransport,
        messages: MessageContext,
        on_outbox: Callable[[], None],
        sites_probed: Callable[[], int] | None = None,
        check_state: Callable[[str], CheckState | None] = lambda key: None,
    ) -> None:
        """`sites_probed` says how many sites this process probes now (processes sharing
        a database split them); default: every configured site. `check_state` is a check's
        state before the result being observed (as stored, also from before a restart)."""
        self._canaries: list[CanaryConfig] = list(config.canaries)
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._transport = transport
        self._messages = messages
        self._on_outbox = on_outbox
        self._check_state = check_state
        self._webhook = ONCALL_WEBHOOK if config.oncall.webhook is not None else None
        self._policy = notify_policy(config)
        self.canaries = CanaryWatch(c.name for c in self._canaries) if self._canaries else None
        sites = {check.site for check in checks}
        self._sites_probed = sites_probed or (lambda: len(sites))
        self.mass: MassFailureWatch | None = None
        if self.canaries is None and config.mass_failure.enabled and checks:
            self.mass = MassFailureWatch(
                policy=MassFailurePolicy(
                    sites=config.mass_failure.sites,
                    hold=config.mass_failure.hold,
                    # "Within one interval": one round in which every check was probed once.
                    window=max(check.spec.interval for check in checks),
                ),
                total_sites=len(sites),
            )
        # The latest canary round started at (monotonic) and the one in flight, shared by
        # every failure that waits for it.
        self._round: asyncio.Task[None] | None = None
        self._round_started = float("-inf")
        self._last_pass_started = float("-inf")
        self._tasks: set[asyncio.Task[None]] = set()
        for canary in self._canaries:
            metrics.canary_up.labels(canary=canary.name)
        # Read at scrape time: a hold ends by the clock, with no event to set a gauge.
        metrics.connectivity_lost.set_function(lambda: 1 if self.lost else 0)
        metrics.mass_failure_holding.set_function(lambda: 1 if self.held_until() else 0)

    def use_messages(self, messages: MessageContext) -> None:
        """Compose on-call notices with these from now on (a config reload)."""
        self._messages = messages

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self, *, stopping: asyncio.Event) -> None:
        """Probe each canary on its own interval until `stopping` is set."""
        loops: list[asyncio.Task[None]] = []
        if self.canaries is not None:
            loops = [asyncio.create_task(self._probe_every(c, stopping)) for c in self._canaries]
        try:
            await stopping.wait()
        finally:
            if self._round is not None:
                loops.append(self._round)  # a shared round nobody waits for any more
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            if self._tasks:  # notices being queued: a moment to land, then given up
                await asyncio.wait(set(self._tasks), timeout=NOTICE_RETRY_SECONDS)
            for task in set(self._tasks):
                task.cancel()

    async def load(self) -> None:
        """Before the first probe: an episode paged before a restart continues, not paged
        again, restored once."""
        if self.canaries is None:
            return
        try:
            latest = await self._store.latest_notices(
                [NoticeKind.CONNECTIVITY_LOST, NoticeKind.CONNECTIVITY_RESTORED]
            )
        except Exception as exc:  # noqa: BLE001 - without it, the worst is a second page
            log.warning("could not read earlier connectivity notices: %s", exc)
            return
        if latest and latest[0].kind is NoticeKind.CONNECTIVITY_LOST:
            message = latest[0].message
            key = (
                message.message_id
                if isinstance(message, OutgoingEmail)
                else message.idempotency_key
            )
            since = episode_since(key)
            if since is not None:
                self.canaries.resume_lost(since)
                log.warning("connectivity lost since %s (before a restart)", since.isoformat())

    async def _probe_every(self, canary: CanaryConfig, stopping: asyncio.Event) -> None:
        interval = canary.interval.total_seconds()
        while not stopping.is_set():
            await self._probe(canary)
            await self._clock.sleep(interval)

    # -- the runtime's questions -----------------------------------------------------------

    @property
    def lost(self) -> bool:
        return self.canaries is not None and self.canaries.lost

    async def counts_failure(self, *, since: float) -> bool:
        """Whether a failure seen by a probe that started at `since` (monotonic) may count:
        not while every canary fails. Re-probes the canaries unless one passed in a round
        started after `since`."""
        watch = self.canaries
        if watch is None:
            return True
        if watch.lost:
            return False
        if self._last_pass_started >= since:
            return True
        if self._round is None or self._round.done() or self._round_started < since:
            self._round_started = self._clock.monotonic()
            self._round = asyncio.create_task(self._probe_all())
        await asyncio.shield(self._round)
        return not watch.lost

    def observe(self, check: ConfiguredCheck, result: ProbeResult) -> None:
        """A counted result: feeds mass-failure detection."""
        if self.mass is None:
            return
        was_failing = False
        if not result.ok:
            # Half of the sites this process probes: in a cluster each sees only its own.
            self.mass.total_sites = max(1, self._sites_probed())
            # A site failing since before a restart does not start failing now.
            previous = self._check_state(check.key)
            was_failing = previous is not None and previous.last_outcome not in (
                None,
                Outcome.OK,
            )
        found = self.mass.observe(
            check.site, check.key, ok=result.ok, now=self._clock.now(), was_failing=was_failing
        )
        if found is not None:
            self._mass_failure(found)

    def hold_until(self, site: str, now: datetime) -> datetime | None:
        """Until when client mails about `site` wait; None when they go at once."""
        return self.mass.hold_until(site, now) if self.mass is not None else None

    def held_until(self) -> datetime | None:
        """When the current mass-failure hold ends; None when no mails are held."""
        holding = self.mass.holding if self.mass is not None else None
        if holding is None or self._clock.now() >= holding.hold_until:
            return None
        return holding.hold_until

    def health(self) -> dict[str, Any]:
        """For /healthz: the canaries' latest results and whether client mails are held."""
        report: dict[str, Any] = {}
        if self.canaries is not None:
            report["connectivity"] = str(self.canaries.state)
            report["canaries"] = self.canaries.latest()
            if self.canaries.lost_since is not None:
                report["connectivity_lost_since"] = self.canaries.lost_since.isoformat()
        held = self.held_until()
        if held is not None:
            report["client_mails_held_until"] = held.isoformat()
        return report

    # -- canaries --------------------------------------------------------------------------

    async def _probe_all(self) -> None:
        await asyncio.gather(*(self._probe(canary) for canary in self._canaries))

    async def _probe(self, canary: CanaryConfig) -> None:
        assert self.canaries is not None
        started = self._clock.monotonic()
        result = await probe_http(
            canary, transport=self._transport, now=self._clock.now, sleep=self._clock.sleep
        )
        # A slow answer, or one over a certificate about to expire, still crossed the network.
        passed = result.outcome in CANARY_PASSES
        self._metrics.canary_up.labels(canary=canary.name).set(1 if passed else 0)
        if passed:
            self._last_pass_started = max(self._last_pass_started, started)
        else:
            log.warning("canary %s failed: %s", canary.name, result.outcome)
        change = self.canaries.observe(canary.name, ok=passed, now=self._clock.now())
        if isinstance(change, ConnectivityLost):
            log.error(
                "connectivity lost: every canary fails since %s; failures of sites are not "
                "counted until one answers",
                change.since.isoformat(),
            )
            self._notify(connectivity_lost(change, ctx=self._messages), page=True)
        elif isinstance(change, ConnectivityRestored):
            log.warning(
                "connectivity restored: canary %s answers after %s",
                change.canary,
                change.at - change.since,
            )
            self._notify(connectivity_restored(change, ctx=self._messages), page=True)

    # -- mass failure ----------------------------------------------------------------------

    def _mass_failure(self, found: MassFailure) -> None:
        log.error(
            "%d of %d sites started failing within %s: client mails held until %s",
            len(found.sites),
            found.total_sites,
            found.window,
            found.hold_until.isoformat(),
        )
        self._notify(mass_failure(found, ctx=self._messages), page=False)

    # -- notices ---------------------------------------------------------------------------

    def _notify(self, email: OutgoingEmail, *, page: bool) -> None:
        """Queue `email` for on-call and the same notice for the on-call webhook and chat
        channels, as the routes say for `monitor_health` (and `paged`, with `page`).
        Without routes: the email if on-call has addresses, the webhook and chats on a page."""
        policy = self._policy
        events = {Event.MONITOR_HEALTH, *([Event.PAGED] if page else [])}
        heard = channels_for(
            policy.effective_routes(),
            events,
            severity=None,
            client=None,
            at=self._clock.now(),
            agency_hours=policy.agency_hours,
        )
        messages: list[Outgoing] = [email] if email.to and EMAIL_CHANNEL in heard else []
        if WEBHOOK_CHANNEL in heard and self._webhook is not None:
            messages.append(as_webhook(email, target=self._webhook))
        messages += [as_chat(email, channel=c) for c in heard if c in policy.chat_channels]
        if not messages:
            return
        task = asyncio.create_task(self._queue(messages))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _queue(self, messages: list[Outgoing]) -> None:
        """Queue `messages` in one transaction, retrying while the database is away; once
        only, by their ids."""
        kind = messages[0].kind
        while True:
            try:
                queued = await self._store.queue_notice(messages, now=self._clock.now())
            except Exception as exc:  # noqa: BLE001 - the database may be away for a while
                self._metrics.store_errors.inc()
                log.error("could not queue %s for on-call: %s", kind, exc)
                await self._clock.sleep(NOTICE_RETRY_SECONDS)
                continue
            if queued:
                self._on_outbox()
            else:
                log.info("%s of this episode was queued before; not again", kind)
            return

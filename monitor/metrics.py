"""Prometheus metrics of the monitor. Everything takes the registry it writes to; no globals.

Names follow blackbox_exporter's `probe_*` where the meaning is the same; the monitor's own
series are `monitor_*`. Every metric is documented in the README's Metrics section.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from checks.heartbeat import PingKind
from incidents.escalation import Escalation, EscalationPolicy
from incidents.model import Incident
from incidents.severity import Severity
from monitor.check_metrics import CheckMetrics

# 5 s is the service-level page's "slow" line, so it must be a bucket edge.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0)
# Minutes to a week: response and resolution times of incidents.
SLA_BUCKETS = (300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0, 604800.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class OpenIncidentsCollector(Collector):
    """Incident gauges computed at scrape time from the runtime's open incidents: how many are
    open, how many wait in the queue, and each one's SLA deadlines as Unix timestamps."""

    def __init__(
        self, open_incidents: Callable[[], Iterable[Incident]], now: Callable[[], datetime]
    ) -> None:
        self._open_incidents = open_incidents
        self._now = now

    def collect(self) -> Iterable[GaugeMetricFamily]:
        by_client = ["client", "severity"]
        per_incident = ["client", "site", "incident", "severity"]
        open_now = GaugeMetricFamily(
            "monitor_incidents_open",
            "Incidents open now, by client and severity.",
            labels=by_client,
        )
        queued = GaugeMetricFamily(
            "monitor_incidents_unresponded",
            "Open incidents nobody has responded to yet (the triage queue).",
            labels=by_client,
        )
        overdue = GaugeMetricFamily(
            "monitor_incident_updates_overdue",
            "Open incidents whose next client update is overdue.",
            labels=by_client,
        )
        response_aim = GaugeMetricFamily(
            "monitor_incident_response_aim_timestamp_seconds",
            "When each unresponded open incident's response is aimed at (Unix time).",
            labels=per_incident,
        )
        response_due = GaugeMetricFamily(
            "monitor_incident_response_due_timestamp_seconds",
            "When each unresponded open incident's response is due (Unix time).",
            labels=per_incident,
        )
        update_due = GaugeMetricFamily(
            "monitor_incident_next_update_due_timestamp_seconds",
            "When each open incident's next client update is due (Unix time).",
            labels=per_incident,
        )
        now = self._now()
        counts: dict[str, dict[tuple[str, str], int]] = {"open": {}, "queued": {}, "overdue": {}}
        for incident in self._open_incidents():
            key = (incident.client, str(int(incident.severity)))
            # `site` is the site's id, as on probe_success, so one $site filter fits both.
            site = incident.site.partition("/")[2] or incident.site
            labels = [incident.client, site, incident.ref, key[1]]
            counts["open"][key] = counts["open"].get(key, 0) + 1
            if incident.responded_at is None:
                counts["queued"][key] = counts["queued"].get(key, 0) + 1
                if incident.response_due_at is not None:
                    response_due.add_metric(labels, incident.response_due_at.timestamp())
                if incident.response_aim_at is not None:
                    response_aim.add_metric(labels, incident.response_aim_at.timestamp())
            if incident.next_update_due_at is not None:
                update_due.add_metric(labels, incident.next_update_due_at.timestamp())
                # A maintenance window pauses the clocks: nothing is overdue while it lasts.
                if incident.next_update_due_at <= now and incident.paused_since is None:
                    counts["overdue"][key] = counts["overdue"].get(key, 0) + 1
        for family, name in ((open_now, "open"), (queued, "queued"), (overdue, "overdue")):
            for (client, severity), count in sorted(counts[name].items()):
                family.add_metric([client, severity], count)
        yield from (open_now, queued, overdue, response_aim, response_due, update_due)


class OnCallCollector(Collector):
    """`monitor_oncall_person{person}`: 1 for whoever the rotation says is on call now,
    computed at scrape time (a hand-over needs no event to show)."""

    def __init__(self, escalation: Escalation, now: Callable[[], datetime]) -> None:
        self._escalation = escalation
        self._now = now

    def use(self, escalation: Escalation) -> None:
        """Tell from this rotation from now on (a config reload changed it)."""
        self._escalation = escalation

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "monitor_oncall_person",
            "1 for the person on call now (oncall.rotation, overrides included).",
            labels=["person"],
        )
        person = self._escalation.on_call(self._now())
        if person is not None:
            family.add_metric([person], 1)
        yield family


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        open_incidents: Callable[[], Iterable[Incident]] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.registry = registry
        # Per-check series live in flat arrays, not in prometheus_client children: see
        # monitor.check_metrics (50,000 checks would cost a lock and a lookup per probe and
        # metric, and seconds per scrape).
        self.checks = CheckMetrics(buckets=DURATION_BUCKETS)
        registry.register(self.checks)
        self.probe_discarded = Counter(
            "monitor_probe_results_discarded",
            "Probe results not trusted and not counted, by reason (event_loop_lag: the monitor "
            "itself was too busy to time the probe honestly; local_resource: it ran out of file "
            "descriptors, buffers, memory or ports; local_resolver: its resolver failed for "
            "every name; connectivity: every canary failed, so the monitor's own network was "
            "down; not_confirmed: another location saw the site healthy).",
            ("reason",),
            registry=registry,
        )
        self.heartbeat_pings = Counter(
            "monitor_heartbeat_pings",
            "Requests to /ping/<token> by how they were answered: start, success and fail "
            "(stored), unknown (404: no such token), limited (429: too many for one check), "
            "error (503: the database did not take it).",
            ("result",),
            registry=registry,
        )
        self.probes_skipped = Counter(
            "monitor_probes_skipped",
            "Scheduled probes not started, by reason (overlap: the previous run of the same "
            "check was still in flight; overload: the monitor was too far behind to start it "
            "on time, so it was shed rather than run late).",
            ("reason",),
            registry=registry,
        )
        self.scheduler_overloaded = Gauge(
            "monitor_scheduler_overloaded",
            "1 while the monitor cannot keep up with its checks (probes start late or are "
            "shed; /healthz says why), else 0.",
            registry=registry,
        )
        self.incidents_opened = Counter(
            "monitor_incidents_opened",
            "Incidents opened, by client and severity.",
            ("client", "severity"),
            registry=registry,
        )
        self.incidents_escalated = Counter(
            "monitor_incidents_escalated",
            "Incident escalations, by client and new severity.",
            ("client", "severity"),
            registry=registry,
        )
        self.incidents_resolved = Counter(
            "monitor_incidents_resolved",
            "Incidents resolved, by client and severity.",
            ("client", "severity"),
            registry=registry,
        )
        self.scheduler_lag = Histogram(
            "monitor_scheduler_lag_seconds",
            "How late each probe started after its due time.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.event_loop_lag = Gauge(
            "monitor_event_loop_lag_seconds",
            "How late the event loop ran a timer at the last sample.",
            registry=registry,
        )
        self.probes_in_flight = Gauge(
            "monitor_probes_in_flight", "Probes running now.", registry=registry
        )
        # Browser checks run on a scheduler and a page pool of their own (monitor.browser_pool):
        # their series are apart, so that a queue of journeys never reads as http lag.
        self.browser_scheduler_lag = Histogram(
            "monitor_browser_scheduler_lag_seconds",
            "How late each browser check started after its due time.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.browser_in_flight = Gauge(
            "monitor_browser_checks_in_flight",
            "Browser checks running or waiting for a page now.",
            registry=registry,
        )
        self.browser_pages_in_use = Gauge(
            "monitor_browser_pages_in_use",
            "Browser pages running a journey now.",
            registry=registry,
        )
        self.browser_pages_waiting = Gauge(
            "monitor_browser_pages_waiting",
            "Browser checks waiting for a free page (browser.max_pages).",
            registry=registry,
        )
        self.browser_rss = Gauge(
            "monitor_browser_resident_memory_bytes",
            "Resident memory of the Chromium processes of browser checks, at scrape time.",
            registry=registry,
        )
        self.browser_restarts = Counter(
            "monitor_browser_restarts",
            "Chromium restarts, by reason (crashed, unresponsive).",
            ["reason"],
            registry=registry,
        )
        self.checks_configured = Gauge(
            "monitor_checks_configured", "Checks in the loaded configuration.", registry=registry
        )
        self.sites_held = Gauge(
            "monitor_sites_held",
            "Sites whose lease this process holds: it probes their checks (all of them "
            "when it runs alone).",
            registry=registry,
        )
        self.cluster_workers = Gauge(
            "monitor_cluster_workers",
            "Live monitor processes sharing the database, this one included, at the last "
            "lease round.",
            registry=registry,
        )
        self.sites_gained = Counter(
            "monitor_sites_gained",
            "Sites this process took a lease on (at start, from a process that died or "
            "stopped, or in rebalancing).",
            registry=registry,
        )
        self.store_errors = Counter(
            "monitor_store_errors",
            "Probe results that could not be written to the database.",
            registry=registry,
        )
        self.store_available = Gauge(
            "monitor_store_available",
            "1 while the database answers, 0 since a request found it unavailable (results "
            "are then counted in memory and written once it answers again).",
            registry=registry,
        )
        self.config_loaded = Gauge(
            "monitor_config_last_load_timestamp_seconds",
            "When the configuration was last loaded (Unix time).",
            registry=registry,
        )
        # The names Prometheus and blackbox_exporter give these, so the same alert rules fit.
        self.config_reload_successful = Gauge(
            "monitor_config_last_reload_successful",
            "1 when the last config (re)load succeeded, 0 when the file was invalid and the "
            "monitor kept running on the previous one.",
            registry=registry,
        )
        self.config_reload_success_time = Gauge(
            "monitor_config_last_reload_success_timestamp_seconds",
            "When the config was last (re)loaded successfully (Unix time).",
            registry=registry,
        )
        self.notifications_sent = Counter(
            "monitor_notifications_sent",
            "Notifications delivered (accepted by the SMTP server, the webhook or the chat "
            "service), by channel: email, webhook, or a configured channel's name.",
            ("channel",),
            registry=registry,
        )
        self.notifications_failed = Counter(
            "monitor_notifications_failed",
            "Notifications given up on (a permanent refusal), by channel.",
            ("channel",),
            registry=registry,
        )
        self.notification_retries = Counter(
            "monitor_notification_retries",
            "Delivery attempts that failed and will be retried, by channel.",
            ("channel",),
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "monitor_outbox_pending",
            "Notifications waiting in the outbox (new, or retrying after a failure).",
            registry=registry,
        )
        self.time_to_respond = Histogram(
            "monitor_incident_time_to_respond_seconds",
            "Wall time from an incident's opening to its first response (ack or client update).",
            ("client", "severity"),
            buckets=SLA_BUCKETS,
            registry=registry,
        )
        self.time_to_resolve = Histogram(
            "monitor_incident_time_to_resolve_seconds",
            "Wall time from an incident's opening to its resolution, by final severity.",
            ("client", "severity"),
            buckets=SLA_BUCKETS,
            registry=registry,
        )
        self.pages = Counter(
            "monitor_pages",
            "Escalation pages made, by severity and level (1 = the first level).",
            ("severity", "level"),
            registry=registry,
        )
        self.sla_breaches = Counter(
            "monitor_sla_breaches",
            "SLA breaches recorded, by kind (response, update) and severity.",
            ("kind", "severity"),
            registry=registry,
        )
        self.add_channels(("email", "webhook"))
        # The own-connectivity guard (see monitor.connectivity).
        self.canary_up = Gauge(
            "monitor_canary_up",
            "1 when the canary's latest probe passed, 0 when it failed (canaries are URLs "
            "outside every client's hosting).",
            ("canary",),
            registry=registry,
        )
        self.connectivity_lost = Gauge(
            "monitor_connectivity_lost",
            "1 while every canary fails: the monitor's own connectivity is lost and failures "
            "of client sites are not counted (discarded, reason connectivity).",
            registry=registry,
        )
        self.mass_failure_holding = Gauge(
            "monitor_mass_failure_holding",
            "1 while client mails are held after many sites started failing at once.",
            registry=registry,
        )
        # At 0 from the start, as the incident counters, so increase() sees the first one.
        for reason in ("event_loop_lag", "local_resource", "local_resolver", "connectivity"):
            self.probe_discarded.labels(reason=reason)
        for reason in ("overlap", "overload"):
            self.probes_skipped.labels(reason=reason)
        for reason in ("crashed", "unresponsive"):
            self.browser_restarts.labels(reason=reason)
        for kind in ("response", "update"):
            for severity in Severity:
                self.sla_breaches.labels(kind=kind, severity=str(int(severity)))
        if open_incidents is not None:
            registry.register(
                OpenIncidentsCollector(open_incidents, now or (lambda: datetime.now(UTC)))
            )

    def zero_incident_counters(self, clients: Iterable[str]) -> None:
        """Create the counters' series at 0 so rate() and increase() see the first incident."""
        for client in clients:
            for severity in Severity:
                labels = {"client": client, "severity": str(int(severity))}
                self.incidents_opened.labels(**labels)
                self.incidents_escalated.labels(**labels)
                self.incidents_resolved.labels(**labels)
                self.time_to_respond.labels(**labels)
                self.time_to_resolve.labels(**labels)

    def add_channels(self, channels: Iterable[str]) -> None:
        """Create the notification counters of `channels` at 0 ("email", "webhook", and each
        configured chat channel by name), so a first failure shows as an increase."""
        for channel in channels:
            self.notifications_sent.labels(channel=channel)
            self.notifications_failed.labels(channel=channel)
            self.notification_retries.labels(channel=channel)

    def add_escalation_levels(self, policies: Mapping[Severity, EscalationPolicy]) -> None:
        """Create `monitor_pages_total` at 0 for each level of each severity's policy (the
        config's `escalation:`), so increase() counts the first page too."""
        for severity, policy in policies.items():
            for level in range(1, len(policy.levels) + 1):
                self.pages.labels(severity=str(int(severity)), level=str(level))

    def add_heartbeat_pings(self) -> None:
        """Create `monitor_heartbeat_pings_total` at 0 for every answer, so increase()
        counts the first ping (or the first guessed token)."""
        for result in (*PingKind, "unknown", "limited", "error"):
            self.heartbeat_pings.labels(result=str(result))

    def exposition(self) -> Iterator[bytes]:
        """The registry in the Prometheus text format, in chunks (the per-check series in
        chunks of a few thousand checks): a scrape handler may yield to the event loop
        between them."""
        with self.checks.omitted():
            head = generate_latest(self.registry)
        yield head
        yield from self.checks.render()


def check_labels(key: str) -> Mapping[str, str]:
    """Labels of a check key "client/site/check"."""
    client, site, check = key.split("/", 2)
    return {"client": client, "site": site, "check": check}

"""Starts and stops everything `monitor run` needs, in order, as one async context manager."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from monitor.clients import ONCALL_WEBHOOK, escalation_of
from monitor.clock import Clock, SystemClock
from monitor.config import load_config
from monitor.config.models import MonitorConfig, has_browser_checks, split_listen
from monitor.delivery import (
    FileMailer,
    Mailer,
    SmtpMailer,
    SmtpSettings,
    WebhookSender,
    WebhookTarget,
)
from monitor.heartbeat_tokens import ping_tokens
from monitor.http_guard import ConnectionGuard, GuardedSite, connection_limit
from monitor.metrics import Metrics, OnCallCollector
from monitor.outbox_worker import OutboxWorker
from monitor.reload import Reloader
from monitor.runtime import Listener, Monitor, new_http_transport, new_session
from monitor.screenshots import screenshot_folder
from monitor.server import DEGRADED_LOOP_LAG, create_app, create_metrics_app
from monitor.store import Store
from monitor.uptime_gauge import UptimeGauge, calendars_of
from monitor.web.console import Console
from monitor.web.ping import PingRoutes
from monitor.web.status import StatusPages

if TYPE_CHECKING:
    from monitor.delivery.chat import ChatSender

log = logging.getLogger(__name__)


@dataclass
class Running:
    monitor: Monitor
    store: Store
    registry: CollectorRegistry
    url: str  # base URL of the monitor's own HTTP server
    outbox: OutboxWorker
    status: StatusPages  # the client status pages it serves (/status)
    reloader: Reloader  # reloads the config in place (SIGHUP, POST /api/reload)


@asynccontextmanager
async def running_monitor(
    config: MonitorConfig,
    *,
    clock: Clock | None = None,
    listeners: Sequence[Listener] = (),
    serve: bool = True,
    config_path: str | Path | None = None,
    load: Callable[[], MonitorConfig] | None = None,
) -> AsyncIterator[Running]:
    """Open the store, start probing and serving; on exit finish in-flight work and close.

    A reload reads the config again with `load` (default: `load_config(config_path)`);
    without either, a reload keeps the config it was given. With `server.watch_config`,
    `config_path` is watched for changes."""
    clock = clock or SystemClock()
    # `*_created` series double the exposition for every counter and histogram of every check
    # and no dashboard reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    store = await Store.open(
        config.database.url, history_per_check=config.scheduler.history_per_check
    )
    store.use_calendars(calendars_of(config))
    # Incidents resolved before the rollups existed (revision 0007) count from now on; once.
    try:
        recounted = await store.rebuild_rollups(now=clock.now(), all_sites=False)
    except BaseException:
        await store.close()
        raise
    if recounted:
        log.info("daily rollups rebuilt for %d sites with older incidents", len(recounted))
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    holder: list[Monitor] = []
    metrics = Metrics(
        registry,
        open_incidents=lambda: holder[0].open_incidents() if holder else [],
        now=clock.now,
    )
    session = new_session(max_connections=config.scheduler.max_concurrency)
    http_transport = new_http_transport(source_address=config.cluster.source_address)
    delivery_session = aiohttp.ClientSession(trust_env=False)
    outbox = OutboxWorker(
        store=store,
        mailer=mailer(config),
        webhooks=webhook_sender(config, delivery_session),
        clock=clock,
        metrics=metrics,
        poll_interval=config.notifications.poll_interval.total_seconds(),
        retry_initial=config.notifications.retry_initial.total_seconds(),
        retry_max=config.notifications.retry_max.total_seconds(),
        worker=config.cluster.worker,
        chats=chat_sender(config),
    )
    metrics.add_channels(config.channels)
    metrics.add_escalation_levels(config.escalation)
    browser = None
    if has_browser_checks(config):
        # Playwright's import (about 0.1 s) only for a process that has browser checks.
        from monitor.browser_pool import browser_pool

        browser = browser_pool(config, metrics=metrics)
    monitor = Monitor(
        config=config,
        store=store,
        clock=clock,
        metrics=metrics,
        session=session,
        http_transport=http_transport,
        listeners=listeners,
        on_outbox=outbox.kick,
        browser=browser,
        screenshots=screenshot_folder(config, clock=clock),
    )
    holder.append(monitor)
    reloader = Reloader(
        current=config,
        load=load or _loader(config, config_path),
        monitor=monitor,
        metrics=metrics,
        clock=clock,
    )
    # The sites this process probes: with several processes each exports its own.
    uptime = UptimeGauge(store=store, sites=lambda: monitor.ownership.held, clock=clock)
    registry.register(uptime)
    uptime_stopping = asyncio.Event()
    runners: list[web.AppRunner] = []
    url = ""
    status = StatusPages(config=config, store=store, desk=monitor.desk, clock=clock)
    # Always served, so that a reload can add the first heartbeat check; its answers are
    # counted from 0.
    metrics.add_heartbeat_pings()
    pings = PingRoutes(
        tokens=ping_tokens(config),
        store=store,
        clock=clock,
        on_ping=monitor.ping_arrived,
        count=lambda result: metrics.heartbeat_pings.labels(result=result).inc(),
    )
    oncall = OnCallCollector(escalation_of(config), clock.now)
    registry.register(oncall)
    # Everything else that reads the config follows a reload (the monitor applies first).
    # The outbox first: the incidents may route to a new channel as soon as the monitor
    # applies the new config, and a channel the outbox does not know fails for good.
    reloader.subscribe(
        lambda new: outbox.use(
            mailer=mailer(new),
            webhooks=webhook_sender(new, delivery_session),
            chats=chat_sender(new),
        ),
        first=True,
    )
    reloader.subscribe(lambda new: metrics.add_channels(new.channels))
    reloader.subscribe(lambda new: metrics.add_escalation_levels(new.escalation))
    reloader.subscribe(lambda new: oncall.use(escalation_of(new)))
    reloader.subscribe(lambda new: pings.use_tokens(ping_tokens(new)))
    reloader.subscribe(status.apply)
    reloader.subscribe(monitor.connectivity.use_config)
    reloader.subscribe(lambda new: store.use_calendars(calendars_of(new)))
    # The console is served when operators are configured at start (its routes are added
    # then); a reload changes who may sign in.
    console = (
        Console(
            config=config,
            store=store,
            desk=monitor.desk,
            clock=clock,
            probe=monitor.probe_now,
            kick_outbox=outbox.kick,
        )
        if config.operators
        else None
    )
    if console is not None:
        reloader.subscribe(console.apply)
    # The new configuration and checks live on as the first ones did: out of the collector's
    # full passes too (see gc.freeze below); the old ones are freed by their reference counts.
    reloader.subscribe(lambda new: gc.freeze())
    try:
        if serve:
            url = await _serve(
                config,
                runners,
                store=store,
                registry=registry,
                health=lambda: _health(monitor),
                monitor=monitor,
                exposition=metrics.exposition,
                status=status,
                pings=pings,
                reloader=reloader,
                console=console,
            )
        task = asyncio.create_task(monitor.run())
        started = asyncio.ensure_future(monitor.started())
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # it failed before it started (the database went away, say)
            started.cancel()
            task.result()
        outbox_task = asyncio.create_task(outbox.run())
        uptime_task = asyncio.create_task(
            uptime.run(
                every=config.scheduler.uptime_refresh.total_seconds(), stopping=uptime_stopping
            )
        )
        watch_task = (
            asyncio.create_task(
                reloader.watch(
                    Path(config_path),
                    every=config.server.watch_interval.total_seconds(),
                    stopping=uptime_stopping,
                )
            )
            if config.server.watch_config and config_path is not None
            else None
        )
        # The configuration, the checks and their state live as long as the process: out of
        # the garbage collector's full passes, which would otherwise walk them all (about
        # 0.4 s with 50,000 checks, a stall that delays every probe in flight). No collection
        # first: that would be the same stall; the little start-up garbage waits for exit.
        gc.freeze()
        try:
            yield Running(
                monitor=monitor,
                store=store,
                registry=registry,
                url=url,
                outbox=outbox,
                status=status,
                reloader=reloader,
            )
        finally:
            gc.unfreeze()
            uptime_stopping.set()
            uptime_task.cancel()
            stopped = [uptime_task] if watch_task is None else [uptime_task, watch_task]
            if watch_task is not None:
                watch_task.cancel()
            await asyncio.gather(*stopped, return_exceptions=True)
            monitor.stop()
            await task
            # Whatever the last probes caused is delivered now if it can be, else next start.
            outbox.stop()
            await outbox_task
    finally:
        for runner in runners:
            await runner.cleanup()
        await session.close()
        await http_transport.close()
        await delivery_session.close()
        if monitor.browser is not None:
            await monitor.browser.close()
        await store.close()


def _loader(config: MonitorConfig, path: str | Path | None) -> Callable[[], MonitorConfig]:
    """How a reload reads the config: the file again, or (no file) the config as given."""
    if path is None:
        return lambda: config
    return lambda: load_config(path)


def mailer(config: MonitorConfig) -> Mailer:
    """SMTP when configured, else `.eml` files in the outbox folder (the demo, the default)."""
    settings = config.notifications
    if settings.smtp is None:
        return FileMailer(
            Path(settings.outbox_dir), sender=settings.sender, reply_to=config.agency.reply_to
        )
    smtp = settings.smtp
    return SmtpMailer(
        SmtpSettings(
            host=smtp.host,
            port=smtp.port,
            security=smtp.security,
            username=smtp.username,
            password=smtp.password.get_secret_value() if smtp.password else None,
            timeout=smtp.timeout.total_seconds(),
            sender=settings.sender,
            reply_to=config.agency.reply_to,
        )
    )


def webhook_sender(config: MonitorConfig, session: aiohttp.ClientSession) -> WebhookSender | None:
    hook = config.oncall.webhook
    if hook is None:
        return None
    target = WebhookTarget(
        url=hook.url,
        headers={name: value.get_secret_value() for name, value in hook.headers.items()},
        timeout=hook.timeout.total_seconds(),
    )
    return WebhookSender(session, {ONCALL_WEBHOOK: target})


def chat_sender(config: MonitorConfig) -> ChatSender | None:
    """Apprise for the `channels:` section, None without channels."""
    if not config.channels:
        return None
    # Imported here: Apprise loads its plugins when first used (see monitor.delivery).
    from monitor.delivery.chat import ChatSender, ChatTarget

    sender = ChatSender(
        {
            name: ChatTarget(
                url=channel.url.get_secret_value(),
                timeout=channel.timeout.total_seconds(),
                max_attempts=channel.max_attempts,
            )
            for name, channel in config.channels.items()
        }
    )
    # Names and services only: the URLs are secrets.
    shown = ", ".join(f"{name} ({sender.service(name)})" for name in config.channels)
    log.info("chat channels: %s", shown)
    return sender


async def _serve(
    config: MonitorConfig,
    runners: list[web.AppRunner],
    *,
    store: Store,
    registry: CollectorRegistry,
    health: Callable[[], dict[str, Any]],
    monitor: Monitor,
    exposition: Callable[[], Iterable[bytes]],
    status: StatusPages,
    reloader: Reloader,
    console: Console | None,
    pings: PingRoutes | None = None,
) -> str:
    """Start the HTTP listener(s), appending each runner to `runners` for cleanup; return the
    main listener's URL."""
    server = config.server
    # One budget for both listeners: together they must leave descriptors for the probes.
    guard = ConnectionGuard(
        connection_limit(server.max_connections),
        header_timeout=server.header_timeout.total_seconds(),
    )
    # aiohttp starts the keepalive timer when a connection opens, so it also closes a
    # connection that never sends a request, not only one idle between requests.
    guarded_health = partial(_with_guard, health, guard)
    runner_args: dict[str, Any] = {
        "access_log": None,
        "keepalive_timeout": server.idle_timeout.total_seconds(),
    }
    app = create_app(
        store=store,
        registry=registry,
        health=guarded_health,
        desk=monitor.desk,
        api=lambda: reloader.current.api,
        server=server,
        exposition=exposition,
        middlewares=[guard.middleware],
        status=status,
        pings=pings,
        reload=lambda: _reload_answer(reloader),
        console=console,
    )
    url = await _start(app, runners, server.host, server.port, guard, runner_args)
    log.info(
        "serving /metrics, /healthz and /api/incidents on %s (at most %d connections)",
        url,
        guard.limit,
    )
    if server.metrics_listen is not None:
        host, port = split_listen(server.metrics_listen)
        metrics_app = create_metrics_app(
            registry=registry,
            health=guarded_health,
            exposition=exposition,
            middlewares=[guard.middleware],
        )
        metrics_url = await _start(metrics_app, runners, host, port, guard, runner_args)
        log.info("serving /metrics and /healthz (no /api) on %s", metrics_url)
    return url


async def _start(
    app: web.Application,
    runners: list[web.AppRunner],
    host: str,
    port: int,
    guard: ConnectionGuard,
    runner_args: dict[str, Any],
) -> str:
    runner = web.AppRunner(app, **runner_args)
    await runner.setup()
    runners.append(runner)
    site = GuardedSite(runner, host, port, guard=guard)
    await site.start()
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{site.port}"


async def _reload_answer(reloader: Reloader) -> dict[str, Any]:
    return (await reloader.reload(trigger="POST /api/reload")).as_dict()


def _with_guard(health: Callable[[], dict[str, Any]], guard: ConnectionGuard) -> dict[str, Any]:
    """`health()`, degraded while the connection guard has had to close connections."""
    report = health()
    reason = guard.full_reason()
    if reason is not None:
        report["status"] = "degraded"
        report["reasons"] = [*report.get("reasons", []), reason]
    return report


def _health(monitor: Monitor) -> dict[str, Any]:
    lag = monitor.event_loop_lag
    lags = sorted(monitor.recent_lags)
    p99 = lags[int(len(lags) * 0.99)] if lags else 0.0
    # Degraded when probe timings cannot be trusted or probes are not run on time; each
    # reason says which, so whoever reads /healthz knows where to look.
    reasons = []
    if lag >= DEGRADED_LOOP_LAG:
        reasons.append(f"event loop lag {lag:.2f} s")
    if p99 >= DEGRADED_LOOP_LAG:
        reasons.append(f"probes start late: scheduler lag p99 {p99:.2f} s")
    overload = monitor.overload
    if overload:
        reasons.append(f"overloaded: {overload}")
    reasons.extend(monitor.fault_reasons())
    if monitor.connectivity.lost:
        reasons.append("connectivity lost: every canary fails")
    report: dict[str, Any] = {
        "status": "degraded" if reasons else "ok",
        "checks": len(monitor.checks),
        "open_incidents": len(monitor.open_incidents()),
        "event_loop_lag_seconds": round(lag, 4),
        "scheduler_lag_p99_seconds": round(p99, 4),
        "overloaded": bool(overload),
        "worker": monitor.identity.worker,
        "location": monitor.identity.location,
        "sites_held": len(monitor.ownership.held),
        "live_workers": len(monitor.ownership.workers),
        **monitor.connectivity.health(),
    }
    if reasons:
        report["reasons"] = reasons
    return report

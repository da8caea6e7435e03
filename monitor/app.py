"""Starts and stops everything `monitor run` needs, in order, as one async context manager."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from monitor.clock import Clock, SystemClock
from monitor.config.models import MonitorConfig
from monitor.metrics import Metrics
from monitor.runtime import Listener, Monitor, new_session
from monitor.server import DEGRADED_LOOP_LAG, create_app
from monitor.store import Store

log = logging.getLogger(__name__)


@dataclass
class Running:
    monitor: Monitor
    store: Store
    registry: CollectorRegistry
    url: str  # base URL of the monitor's own HTTP server


@asynccontextmanager
async def running_monitor(
    config: MonitorConfig,
    *,
    clock: Clock | None = None,
    listeners: Sequence[Listener] = (),
    serve: bool = True,
) -> AsyncIterator[Running]:
    """Open the store, start probing and serving; on exit finish in-flight work and close."""
    clock = clock or SystemClock()
    # `*_created` series double the exposition for every counter and histogram of every check
    # and no dashboard reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    store = await Store.open(
        config.database.url, history_per_check=config.scheduler.history_per_check
    )
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    holder: list[Monitor] = []
    metrics = Metrics(registry, open_incidents=lambda: holder[0].open_incidents() if holder else [])
    metrics.config_loaded.set(clock.now().timestamp())
    session = new_session(max_connections=config.scheduler.max_concurrency)
    monitor = Monitor(
        config=config,
        store=store,
        clock=clock,
        metrics=metrics,
        session=session,
        listeners=listeners,
    )
    holder.append(monitor)
    runner: web.AppRunner | None = None
    url = ""
    try:
        if serve:
            runner = web.AppRunner(
                create_app(store=store, registry=registry, health=lambda: _health(monitor)),
                access_log=None,
            )
            await runner.setup()
            site = web.TCPSite(runner, config.server.host, config.server.port)
            await site.start()
            url = _site_url(site, config.server.host)
            log.info("serving /metrics, /healthz and /api/incidents on %s", url)
        task = asyncio.create_task(monitor.run())
        await monitor.started()
        try:
            yield Running(monitor=monitor, store=store, registry=registry, url=url)
        finally:
            monitor.stop()
            await task
    finally:
        if runner is not None:
            await runner.cleanup()
        await session.close()
        await store.close()


def _site_url(site: web.TCPSite, host: str) -> str:
    server = site._server  # aiohttp exposes the bound port only here
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else 0
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _health(monitor: Monitor) -> dict[str, Any]:
    lag = monitor.event_loop_lag
    lags = sorted(monitor.recent_lags)
    p99 = lags[int(len(lags) * 0.99)] if lags else 0.0
    return {
        "status": "ok" if lag < DEGRADED_LOOP_LAG and p99 < DEGRADED_LOOP_LAG else "degraded",
        "checks": len(monitor.checks),
        "open_incidents": len(monitor.open_incidents()),
        "event_loop_lag_seconds": round(lag, 4),
        "scheduler_lag_p99_seconds": round(p99, 4),
    }

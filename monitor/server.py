"""The monitor's own HTTP server: /metrics, /healthz and a read-only JSON view of incidents."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.serialize import incident_dict, timeline_dict
from monitor.store import Store

# Above this, probe timings can no longer be trusted and /healthz says so.
DEGRADED_LOOP_LAG = 0.5

HealthProbe = Callable[[], dict[str, Any]]

STORE_KEY = web.AppKey("store", Store)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
HEALTH_KEY: web.AppKey[HealthProbe] = web.AppKey("health")


def create_app(
    *, store: Store, registry: CollectorRegistry, health: HealthProbe
) -> web.Application:
    app = web.Application()
    app[STORE_KEY] = store
    app[REGISTRY_KEY] = registry
    app[HEALTH_KEY] = health
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/api/incidents", _list_incidents)
    app.router.add_get("/api/incidents/{id:\\d+}", _get_incident)
    return app


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(request: web.Request) -> web.Response:
    report = request.app[HEALTH_KEY]()
    status = 200 if report.get("status") == "ok" else 503
    return web.json_response(report, status=status)


async def _list_incidents(request: web.Request) -> web.Response:
    open_only = request.query.get("open", "").lower() in ("1", "true", "yes")
    try:
        limit = min(1000, max(1, int(request.query.get("limit", "100"))))
    except ValueError:
        return web.json_response({"error": "limit must be a whole number"}, status=400)
    incidents = await request.app[STORE_KEY].list_incidents(open_only=open_only, limit=limit)
    return web.json_response({"incidents": [incident_dict(i) for i in incidents]})


async def _get_incident(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    incident_id = int(request.match_info["id"])
    incident = await store.get_incident(incident_id)
    if incident is None:
        return web.json_response({"error": f"no incident {incident_id}"}, status=404)
    body = incident_dict(incident)
    body["timeline"] = [timeline_dict(entry) for entry in await store.timeline(incident_id)]
    return web.json_response(body)

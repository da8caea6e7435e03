"""The monitor's own HTTP server: /metrics, /healthz, and the operator API under /api.

Reads: incidents (with timeline and SLA clocks), the triage queue, maintenance windows.
Changes (bearer token required): acknowledge, post a client update, resolve by hand (refused
while checks still fail unless forced), add or cancel a maintenance window. The token is
compared in constant time; a missing or wrong one gets 401.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from incidents.recurring_maintenance import describe
from monitor.config.models import ApiConfig
from monitor.desk import ActionError, IncidentDesk
from monitor.serialize import incident_dict, iso, timeline_dict
from monitor.store import Store

# Above this, probe timings can no longer be trusted and /healthz says so.
DEGRADED_LOOP_LAG = 0.5
MAX_BODY = 64 * 1024

HealthProbe = Callable[[], dict[str, Any]]
Exposition = Callable[[], Iterable[bytes]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STORE_KEY = web.AppKey("store", Store)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
HEALTH_KEY: web.AppKey[HealthProbe] = web.AppKey("health")
DESK_KEY = web.AppKey("desk", IncidentDesk)
API_KEY = web.AppKey("api", ApiConfig)
EXPOSITION_KEY: web.AppKey[Exposition] = web.AppKey("exposition")


def create_app(
    *,
    store: Store,
    registry: CollectorRegistry,
    health: HealthProbe,
    desk: IncidentDesk,
    api: ApiConfig,
    exposition: Exposition | None = None,
) -> web.Application:
    """`exposition`, when given, writes /metrics in chunks (see Metrics.exposition); without
    it /metrics is the registry's plain text exposition."""
    app = web.Application(middlewares=[_auth], client_max_size=MAX_BODY)
    app[EXPOSITION_KEY] = exposition or (lambda: [generate_latest(registry)])
    app[STORE_KEY] = store
    app[REGISTRY_KEY] = registry
    app[HEALTH_KEY] = health
    app[DESK_KEY] = desk
    app[API_KEY] = api
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/api/incidents", _list_incidents)
    app.router.add_get("/api/incidents/{id:\\d{1,18}}", _get_incident)
    app.router.add_get("/api/queue", _queue)
    app.router.add_post("/api/incidents/{id:\\d{1,18}}/acknowledge", _acknowledge)
    app.router.add_post("/api/incidents/{id:\\d{1,18}}/updates", _post_update)
    app.router.add_post("/api/incidents/{id:\\d{1,18}}/resolve", _resolve)
    app.router.add_get("/api/maintenance", _list_maintenance)
    app.router.add_post("/api/maintenance", _add_maintenance)
    app.router.add_delete("/api/maintenance/{id:\\d{1,18}}", _cancel_maintenance)
    return app


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    api = request.app[API_KEY]
    changes = request.method not in ("GET", "HEAD", "OPTIONS")
    if not changes and not api.protect_reads:
        return await handler(request)
    if api.token is None:
        return _error(401, "no API token is configured (api.token): changes are refused")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    expected = api.token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        return _error(401, "missing or wrong bearer token")
    return await handler(request)


async def _metrics(request: web.Request) -> web.StreamResponse:
    # Streamed chunk by chunk, letting the event loop run probes in between: with tens of
    # thousands of checks, formatting everything at once would stall them (and their timing).
    response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE_LATEST})
    await response.prepare(request)
    for chunk in request.app[EXPOSITION_KEY]():
        await response.write(chunk)
        await asyncio.sleep(0)
    await response.write_eof()
    return response


async def _healthz(request: web.Request) -> web.Response:
    report = request.app[HEALTH_KEY]()
    status = 200 if report.get("status") == "ok" else 503
    return web.json_response(report, status=status)


async def _list_incidents(request: web.Request) -> web.Response:
    open_only = request.query.get("open", "").lower() in ("1", "true", "yes")
    try:
        limit = min(1000, max(1, int(request.query.get("limit", "100"))))
    except ValueError:
        return _error(400, "limit must be a whole number")
    incidents = await request.app[STORE_KEY].list_incidents(open_only=open_only, limit=limit)
    return web.json_response({"incidents": [incident_dict(i) for i in incidents]})


async def _get_incident(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    incident_id = int(request.match_info["id"])
    incident = await store.get_incident(incident_id)
    if incident is None:
        return _error(404, f"no incident {incident_id}")
    body = incident_dict(incident)
    body["timeline"] = [timeline_dict(entry) for entry in await store.timeline(incident_id)]
    body["notifications"] = [
        {
            "channel": item.channel,
            "kind": str(item.kind),
            "status": item.status,
            "attempts": item.attempts,
            "created_at": iso(item.created_at),
            "sent_at": iso(item.sent_at),
            "last_error": item.last_error,
        }
        for item in await store.outbox_for_incident(incident_id)
    ]
    return web.json_response(body)


async def _queue(request: web.Request) -> web.Response:
    queue = await request.app[DESK_KEY].queue()
    return web.json_response({"queue": [incident_dict(i) for i in queue]})


async def _body(request: web.Request, *required: str) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ActionError(f"the body must be JSON: {exc}", status=400) from exc
    if not isinstance(body, dict):
        raise ActionError("the body must be a JSON object", status=400)
    for name in required:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ActionError(f"'{name}' is required (a non-empty string)", status=400)
    return body


async def _act(
    request: web.Request,
    action: Callable[[IncidentDesk, int, dict[str, Any]], Awaitable[Any]],
    *required: str,
) -> web.Response:
    try:
        body = await _body(request, *required)
        incident = await action(request.app[DESK_KEY], int(request.match_info["id"]), body)
    except ActionError as exc:
        return _error(exc.status, str(exc))
    return web.json_response(incident_dict(incident))


async def _acknowledge(request: web.Request) -> web.Response:
    return await _act(
        request, lambda desk, iid, body: desk.acknowledge(iid, by=body["by"].strip()), "by"
    )


async def _post_update(request: web.Request) -> web.Response:
    return await _act(
        request,
        lambda desk, iid, body: desk.post_update(iid, by=body["by"].strip(), text=body["text"]),
        "by",
        "text",
    )


async def _resolve(request: web.Request) -> web.Response:
    return await _act(
        request,
        lambda desk, iid, body: desk.resolve(
            iid,
            by=body["by"].strip(),
            note=str(body.get("note") or ""),
            force=_flag(body, "force"),
        ),
        "by",
    )


async def _list_maintenance(request: web.Request) -> web.Response:
    desk = request.app[DESK_KEY]
    site = request.query.get("site")
    now = desk.now()
    windows = await request.app[STORE_KEY].list_maintenance(site=site, include_past=False, now=now)
    listed = [_window_dict(w) for w in windows]
    # Recurring windows (from the YAML) by their occurrence in force or next; no id: they
    # are changed in the YAML, not cancelled.
    listed += [
        {
            "id": None,
            "site": key,
            "starts_at": iso(span[0]),
            "ends_at": iso(span[1]),
            "reason": window.reason,
            "created_by": "config",
            "recurring": describe(window.recurrence),
        }
        for key, window, span in desk.recurring_maintenance(site=site, now=now)
    ]
    listed.sort(key=lambda item: (item["starts_at"], item["site"]))
    return web.json_response({"maintenance": listed})


async def _add_maintenance(request: web.Request) -> web.Response:
    try:
        body = await _body(request, "site", "starts_at", "ends_at", "by")
        window = await request.app[DESK_KEY].add_maintenance(
            site=body["site"],
            starts_at=_instant(body["starts_at"], "starts_at"),
            ends_at=_instant(body["ends_at"], "ends_at"),
            reason=str(body.get("reason") or ""),
            by=body["by"].strip(),
        )
    except ActionError as exc:
        return _error(exc.status, str(exc))
    return web.json_response(_window_dict(window), status=201)


async def _cancel_maintenance(request: web.Request) -> web.Response:
    try:
        body = await _body(request, "by")
        window = await request.app[DESK_KEY].cancel_maintenance(
            int(request.match_info["id"]), by=body["by"].strip()
        )
    except ActionError as exc:
        return _error(exc.status, str(exc))
    return web.json_response({**_window_dict(window), "cancelled": True})


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise ActionError(f"'{name}' must be true or false (got {value!r})", status=400)
    return value


def _instant(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ActionError(
            f"'{name}' must be ISO 8601 such as 2026-11-26T22:00:00Z", status=400
        ) from exc
    if value.utcoffset() is None:
        raise ActionError(f"'{name}' needs a time zone, e.g. ...Z or +01:00", status=400)
    return value


def _window_dict(window: Any) -> dict[str, Any]:
    return {
        "id": window.id,
        "site": window.site,
        "starts_at": iso(window.starts_at),
        "ends_at": iso(window.ends_at),
        "reason": window.reason,
        "created_by": window.created_by,
    }

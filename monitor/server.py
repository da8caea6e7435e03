"""The monitor's own HTTP server: /metrics, /healthz, and the operator API under /api.

Reads: incidents (with timeline and SLA clocks), the triage queue, maintenance windows.
Changes: acknowledge, post an update (public with a stage, or an internal note), resolve by
hand (refused while checks still fail unless forced), attach a post-mortem to a resolved
incident, add or cancel a maintenance window. Every
/api call needs the bearer token (reads too, unless `api.protect_reads: false`); it is compared
in constant time, and a missing or wrong one gets 401.

/api answers only requests whose Host header names this server (localhost, 127.0.0.1, [::1],
server.host or server.allowed_hosts): a web page whose DNS name was rebound to 127.0.0.1 gets
421. Every answer carries security headers and a Server header without a version, and every
error under /api is JSON. Heartbeat pings (/ping/<token>, monitor.web.ping) carry their own
secret instead of the API token. `create_metrics_app` is the app of the optional second listener
(`server.metrics_listen`): /metrics and /healthz only.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from incidents.model import Incident
from incidents.public_status import Stage
from incidents.recurring_maintenance import describe
from monitor.config.models import ApiConfig, ServerConfig
from monitor.desk import ActionError, IncidentDesk
from monitor.serialize import incident_dict, iso, timeline_dict
from monitor.store import Store

# Above this, probe timings can no longer be trusted and /healthz says so.
DEGRADED_LOOP_LAG = 0.5
MAX_BODY = 64 * 1024
# Our bodies are flat objects; deeper JSON is refused before anything walks it.
MAX_JSON_DEPTH = 8
# Incident ids are a 32-bit integer column on PostgreSQL: a larger id names no incident.
MAX_INCIDENT_ID = 2**31 - 1
# Maintenance windows outside these years are typing mistakes, and year 1 or 9999 would
# overflow the date arithmetic of the SLA clocks.
EARLIEST_YEAR, LATEST_YEAR = 2000, 2999
SERVER_NAME = "agency-monitor"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class StatusRoutes(Protocol):
    def add_routes(self, app: web.Application) -> None: ...  # pragma: no cover - a protocol


class ConsoleRoutes(StatusRoutes, Protocol):
    @property
    def hosts(self) -> frozenset[str]: ...  # pragma: no cover - Host names it is reached by


HealthProbe = Callable[[], dict[str, Any]]
Exposition = Callable[[], Iterable[bytes]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STORE_KEY = web.AppKey("store", Store)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
HEALTH_KEY: web.AppKey[HealthProbe] = web.AppKey("health")
DESK_KEY = web.AppKey("desk", IncidentDesk)
ApiSource = Callable[[], ApiConfig]
ReloadHook = Callable[[], Awaitable[dict[str, Any]]]
# Read per request: a config reload may change the token.
API_KEY: web.AppKey[ApiSource] = web.AppKey("api")
RELOAD_KEY: web.AppKey[ReloadHook] = web.AppKey("reload")
EXPOSITION_KEY: web.AppKey[Exposition] = web.AppKey("exposition")
HOSTS_KEY: web.AppKey[frozenset[str]] = web.AppKey("hosts")
BODY_TIMEOUT_KEY = web.AppKey("body_timeout", float)


def create_app(
    *,
    store: Store,
    registry: CollectorRegistry,
    health: HealthProbe,
    desk: IncidentDesk,
    api: ApiConfig | ApiSource,
    server: ServerConfig | None = None,
    exposition: Exposition | None = None,
    middlewares: Sequence[Middleware] = (),
    status: StatusRoutes | None = None,
    pings: StatusRoutes | None = None,
    reload: ReloadHook | None = None,
    console: ConsoleRoutes | None = None,
) -> web.Application:
    """`exposition`, when given, writes /metrics in chunks (see Metrics.exposition); without
    it /metrics is the registry's plain text exposition. `server` names the Host headers
    /api accepts; `middlewares` run first (the connection guard's); `status` adds the client
    status pages (monitor.web.status), which answer any Host (a client's own domain); `pings`
    the heartbeat pings (monitor.web.ping), which need no API token but their own.
    `api` may be a function returning the current settings (they change on a reload);
    `reload`, when given, serves POST /api/reload (monitor.reload).
    `console` the operator console under /ui (monitor.web.console)."""
    app = web.Application(
        middlewares=[*middlewares, _json_errors, _host_check, _auth], client_max_size=MAX_BODY
    )
    _add_monitoring(app, registry=registry, health=health, exposition=exposition)
    app[STORE_KEY] = store
    app[DESK_KEY] = desk
    app[API_KEY] = api if callable(api) else (lambda: api)
    server = server or ServerConfig()
    app[HOSTS_KEY] = allowed_hosts(server) | (console.hosts if console is not None else set())
    # A body trickled in byte by byte would hold a connection inside a request, where the
    # connection guard never closes it; it gets as long as a header does.
    app[BODY_TIMEOUT_KEY] = server.header_timeout.total_seconds()
    app.router.add_get("/api/incidents", _list_incidents)
    app.router.add_get("/api/incidents/{id:\\d{1,18}}", _get_incident)
    app.router.add_get("/api/queue", _queue)
    app.router.add_post("/api/incidents/{id:\\d{1,18}}/acknowledge", _acknowledge)
    app.router.add_post("/api/incidents/{id:\\d{1,18}}/updates", _post_update)
    app.router.add_post("/api/incidents/{id:\\d{1,18}}/resolve", _resolve)
    app.router.add_get("/api/maintenance", _list_maintenance)
    app.router.add_post("/api/maintenance", _add_maintenance)
    app.router.add_delete("/api/maintenance/{id:\\d{1,18}}", _cancel_maintenance)
    app.router.add_post("/api/incidents/{id:\\d{1,18}}/postmortem", _postmortem)
    if reload is not None:
        app[RELOAD_KEY] = reload
        app.router.add_post("/api/reload", _reload)
    if status is not None:
        status.add_routes(app)
    if pings is not None:
        pings.add_routes(app)
    if console is not None:
        console.add_routes(app)
    return app


def create_metrics_app(
    *,
    registry: CollectorRegistry,
    health: HealthProbe,
    exposition: Exposition | None = None,
    middlewares: Sequence[Middleware] = (),
) -> web.Application:
    """/metrics and /healthz alone, for a listener other hosts may reach (metrics_listen)."""
    app = web.Application(middlewares=[*middlewares], client_max_size=1024)
    _add_monitoring(app, registry=registry, health=health, exposition=exposition)
    return app


def _add_monitoring(
    app: web.Application,
    *,
    registry: CollectorRegistry,
    health: HealthProbe,
    exposition: Exposition | None,
) -> None:
    app[EXPOSITION_KEY] = exposition or (lambda: [generate_latest(registry)])
    app[REGISTRY_KEY] = registry
    app[HEALTH_KEY] = health
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)


def allowed_hosts(server: ServerConfig) -> frozenset[str]:
    """Host header values (without port, lower case) that /api answers."""
    hosts = set(LOOPBACK_HOSTS) | set(server.allowed_hosts)
    host = server.host.strip().lower()
    # A wildcard bind names no host: whoever binds 0.0.0.0 lists the names in allowed_hosts.
    if host not in ("", "0.0.0.0", "::"):
        hosts.add(f"[{host.strip('[]')}]" if ":" in host else host)
    return frozenset(hosts)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    # aiohttp would add "Python/3.x aiohttp/3.x", telling an attacker which CVEs apply.
    response.headers["Server"] = SERVER_NAME


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own errors under /api (404 no route, 405, 413 body too large) as JSON."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        return _error(exc.status, exc.reason.lower())


@web.middleware
async def _host_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    # The console too: a page whose name was rebound to this address must not reach it.
    if not (request.path.startswith(("/api/", "/ui/")) or request.path == "/ui"):
        return await handler(request)
    host = _host_name(request.headers.get("Host", ""))
    if host not in request.app[HOSTS_KEY]:
        return _error(
            421,
            "this server does not answer for that Host header; add the name to "
            "server.allowed_hosts if it is this monitor's",
        )
    query = "".join(request.query.keys()) + "".join(request.query.values())
    if _CONTROL.search(query):
        return _error(400, "query parameters must not contain control characters")
    return await handler(request)


def _host_name(header: str) -> str:
    """'Example.org:9464' -> 'example.org', '[::1]:9464' -> '[::1]'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1]
    return header.partition(":")[0]


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    api = request.app[API_KEY]()
    changes = request.method not in ("GET", "HEAD", "OPTIONS")
    if not changes and not api.protect_reads:
        return await handler(request)
    if api.token is None:
        what = "changes are" if changes else "protected reads are"
        return _error(401, f"no API token is configured (api.token): {what} refused")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    expected = api.token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        return _error(401, "missing or wrong bearer token")
    return await handler(request)


async def _reload(request: web.Request) -> web.Response:
    """Reload the config file now; 200 with what changed, or 422 with every problem found
    (the monitor then goes on with the config it had)."""
    result = await request.app[RELOAD_KEY]()
    return web.json_response(result, status=200 if result["ok"] else 422)


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
    return web.json_response({"incidents": [_incident_json(request, i) for i in incidents]})


def _incident_json(request: web.Request, incident: Incident) -> dict[str, Any]:
    desk = request.app[DESK_KEY]
    return incident_dict(incident, client_timezone=desk.client_timezone(incident.client))


async def _get_incident(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    incident_id = int(request.match_info["id"])
    incident = await store.get_incident(incident_id) if incident_id <= MAX_INCIDENT_ID else None
    if incident is None:
        return _error(404, f"no incident {incident_id}")
    body = _incident_json(request, incident)
    body["timeline"] = [timeline_dict(entry) for entry in await store.timeline(incident_id)]
    body["notifications"] = [
        {
            # "email", "webhook" or a chat channel's name (never its URL).
            "channel": item.destination,
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
    return web.json_response({"queue": [_incident_json(request, i) for i in queue]})


async def _body(request: web.Request, *required: str) -> dict[str, Any]:
    try:
        async with asyncio.timeout(request.app[BODY_TIMEOUT_KEY]):
            raw = await request.read()
    except TimeoutError as exc:
        raise ActionError("the body did not arrive in time", status=408) from exc
    try:
        body = json.loads(raw)
    except RecursionError as exc:
        raise ActionError(_TOO_DEEP, status=400) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ActionError(f"the body must be JSON: {exc}", status=400) from exc
    if not isinstance(body, dict):
        raise ActionError("the body must be a JSON object", status=400)
    _check_json(body)
    for name in required:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ActionError(f"'{name}' is required (a non-empty string)", status=400)
    return body


_TOO_DEEP = f"the body must be JSON nested at most {MAX_JSON_DEPTH} levels deep"


def _check_json(body: Any) -> None:
    """Refuse deep nesting and control characters (NUL ends a C string, and PostgreSQL refuses
    it in text) anywhere in the body, keys included."""
    pending: list[tuple[Any, int]] = [(body, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise ActionError(_TOO_DEEP, status=400)
        if isinstance(value, dict):
            pending.extend((key, depth) for key in value)
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, str) and _CONTROL.search(value):
            raise ActionError("text in the body must not contain control characters", status=400)


def _incident_id(request: web.Request) -> int:
    return _path_id(request, "incident")


def _path_id(request: web.Request, noun: str) -> int:
    # Ids are int32 columns: a larger number names no row (and would be a database error).
    row_id = int(request.match_info["id"])
    if row_id > MAX_INCIDENT_ID:
        raise ActionError(f"no {noun} {row_id}", status=404)
    return row_id


async def _act(
    request: web.Request,
    action: Callable[[IncidentDesk, int, dict[str, Any]], Awaitable[Any]],
    *required: str,
) -> web.Response:
    try:
        incident_id = _incident_id(request)
        body = await _body(request, *required)
        incident = await action(request.app[DESK_KEY], incident_id, body)
    except ActionError as exc:
        return _error(exc.status, str(exc))
    return web.json_response(_incident_json(request, incident))


async def _acknowledge(request: web.Request) -> web.Response:
    return await _act(
        request, lambda desk, iid, body: desk.acknowledge(iid, by=body["by"].strip()), "by"
    )


async def _post_update(request: web.Request) -> web.Response:
    return await _act(
        request,
        lambda desk, iid, body: desk.post_update(
            iid,
            by=body["by"].strip(),
            text=body["text"],
            public=_public(body),
            stage=_stage(body),
        ),
        "by",
        "text",
    )


def _public(body: dict[str, Any]) -> bool:
    value = body.get("public", True)
    if not isinstance(value, bool):
        raise ActionError("'public' must be true (shown on the status page) or false", status=400)
    return value


def _stage(body: dict[str, Any]) -> Stage | None:
    value = body.get("stage")
    if value is None:
        return None
    # "resolved" is what resolving does; an update cannot claim it for an open incident.
    stages = [stage for stage in Stage if stage is not Stage.RESOLVED]
    if value not in stages:
        words = ", ".join(stage.value for stage in stages)
        raise ActionError(f"'stage' must be one of {words}", status=400)
    return Stage(value)


async def _postmortem(request: web.Request) -> web.Response:
    try:
        incident_id = _incident_id(request)
        body = await _body(request, "by", "text")
        incident = await request.app[DESK_KEY].attach_postmortem(
            incident_id, by=body["by"].strip(), text=body["text"]
        )
    except ActionError as exc:
        return _error(exc.status, str(exc))
    return web.json_response(_incident_json(request, incident))


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
            _path_id(request, "maintenance window"), by=body["by"].strip()
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
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable instant
        in_utc = datetime.min.replace(tzinfo=UTC)
    if not EARLIEST_YEAR <= in_utc.year <= LATEST_YEAR:
        raise ActionError(
            f"'{name}' must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}", status=400
        )
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

"""Client status pages: /status/<client> (HTML), its summary.json, Atom feed and incident pages.

Pages are served from a snapshot per client, rebuilt when the incident desk's revision moves
(an incident or maintenance change in this process) or after `refresh` seconds (changes made
by other processes, the day rolling over), never per request: a page read by thousands while
a site is down costs one build. A private page needs its client's access key in the link
(`?key=`, compared in constant time); a wrong or missing key gets the same 404 as an unknown
client, so a stranger cannot tell which clients exist. A client's own `domain` (a CNAME to
this monitor) serves its page at `/`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web

from incidents.i18n import translations
from incidents.message_text import utc_iso
from incidents.public_status import PageStatus
from incidents.status_view import (
    CheckInput,
    IncidentView,
    SiteInput,
    StatusView,
    build_status,
)
from incidents.uptime import DayStat
from monitor.clients import display_names
from monitor.clock import Clock
from monitor.config.models import ClientConfig, MonitorConfig, availability_checks
from monitor.desk import IncidentDesk
from monitor.server import _host_name
from monitor.store import Store
from monitor.web.templating import html_environment

HISTORY_DAYS = 90
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
# Styles and images come from here (and the client's https logo); no script runs at all.
STATUS_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' https:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# Short enough that a change made by another process shows within it; a shared cache in
# front may keep the page as long.
CACHE_CONTROL = "public, max-age=10"
ATOM = "http://www.w3.org/2005/Atom"
_IMPACT = {
    PageStatus.OPERATIONAL: "none",
    PageStatus.UNDER_MAINTENANCE: "maintenance",
    PageStatus.DEGRADED_PERFORMANCE: "minor",
    PageStatus.PARTIAL_OUTAGE: "major",
    PageStatus.MAJOR_OUTAGE: "critical",
}


@dataclass
class _Snapshot:
    client: _Client
    revision: int
    built: float  # clock.monotonic() of the build
    view: StatusView
    html: bytes
    summary: bytes
    feed: bytes
    pages: dict[int, bytes] = field(default_factory=dict)  # incident pages, rendered on demand


@dataclass(frozen=True)
class _Client:
    config: ClientConfig
    tz: ZoneInfo
    locale_dir: Path | None

    @property
    def title(self) -> str:
        page = self.config.status_page
        return (page.title if page and page.title else None) or self.config.label


class StatusPages:
    def __init__(
        self,
        *,
        config: MonitorConfig,
        store: Store,
        desk: IncidentDesk,
        clock: Clock,
        refresh: float = 15.0,
    ) -> None:
        self._clients: dict[str, _Client] = {}
        self._domains: dict[str, str] = {}
        self._snapshots: dict[str, _Snapshot] = {}
        self.apply(config)
        self._store = store
        self._desk = desk
        self._clock = clock
        self._refresh = refresh
        self._locks: dict[str, asyncio.Lock] = {}
        self._env = html_environment(TEMPLATES)
        self.builds = 0  # how many snapshots were built (the bench and tests read it)

    def apply(self, config: MonitorConfig) -> None:
        """The clients' pages as `config` (at start or a reload) has them; pages built from
        the previous one are built again. A first `domain:` added by a reload is served at
        `/` after a restart (the route is added at start)."""
        locale_dir = config.notifications.locale_dir
        self._clients = {
            client.id: _Client(
                config=client,
                tz=ZoneInfo(client.business_hours.timezone),
                locale_dir=Path(locale_dir) if locale_dir else None,
            )
            for client in config.clients
            if client.status_page is not None
        }
        self._domains = {
            client.config.status_page.domain: client_id
            for client_id, client in self._clients.items()
            if client.config.status_page is not None and client.config.status_page.domain
        }
        self._snapshots = {}

    @property
    def domains(self) -> frozenset[str]:
        return frozenset(self._domains)

    def add_routes(self, app: web.Application) -> None:
        app.on_response_prepare.append(self._headers)
        app.router.add_get("/status/static/status.css", self._css)
        app.router.add_get("/status/{client}", self._page)
        app.router.add_get("/status/{client}/", self._page)
        app.router.add_get("/status/{client}/theme.css", self._theme)
        app.router.add_get("/status/{client}/summary.json", self._summary)
        app.router.add_get("/status/{client}/feed.atom", self._feed)
        app.router.add_get("/status/{client}/incidents/{id:\\d{1,9}}", self._incident)
        if self._domains:
            app.router.add_get("/", self._domain_page)

    # -- handlers ----------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        snapshot = await self._snapshot_for(request)
        return _response(snapshot.html, "text/html")

    async def _domain_page(self, request: web.Request) -> web.Response:
        client_id = self._domains.get(_host_name(request.headers.get("Host", "")))
        if client_id is None:
            raise web.HTTPNotFound(text="no status page here")
        snapshot = await self._snapshot_for(request, client_id=client_id)
        return _response(snapshot.html, "text/html")

    async def _summary(self, request: web.Request) -> web.Response:
        snapshot = await self._snapshot_for(request)
        return _response(snapshot.summary, "application/json")

    async def _feed(self, request: web.Request) -> web.Response:
        snapshot = await self._snapshot_for(request)
        return _response(snapshot.feed, "application/atom+xml")

    async def _incident(self, request: web.Request) -> web.Response:
        snapshot = await self._snapshot_for(request)
        number = int(request.match_info["id"])
        page = snapshot.pages.get(number)
        if page is None:
            found = [
                v for v in (*snapshot.view.active, *snapshot.view.history) if v.number == number
            ]
            if not found:
                raise web.HTTPNotFound(text="no such incident on this page")
            page = snapshot.pages[number] = self._render(
                "incident.html.j2", snapshot.client, snapshot.view, incident=found[0]
            )
        return _response(page, "text/html")

    async def _css(self, request: web.Request) -> web.Response:
        return _response((STATIC / "status.css").read_bytes(), "text/css")

    async def _theme(self, request: web.Request) -> web.Response:
        client = self._clients.get(request.match_info["client"])
        page = client.config.status_page if client else None
        accent = (page.accent if page else None) or "#1f4e79"
        # Validated as #rrggbb in the config: nothing else can reach this stylesheet.
        css = f":root {{ --accent: {accent}; }}\n"
        return _response(css.encode(), "text/css")

    # -- snapshots ---------------------------------------------------------------------------

    async def _snapshot_for(
        self, request: web.Request, *, client_id: str | None = None
    ) -> _Snapshot:
        client = self._clients.get(client_id or request.match_info["client"])
        if client is None or not self._allowed(client, request):
            raise web.HTTPNotFound(text="no status page here")
        snapshot = self._snapshots.get(client.config.id)
        if snapshot is None or self._stale(snapshot):
            # One build per change, however many readers arrive meanwhile: they wait for it.
            async with self._locks.setdefault(client.config.id, asyncio.Lock()):
                snapshot = self._snapshots.get(client.config.id)
                if snapshot is None or self._stale(snapshot):
                    snapshot = await self._build(client)
                    self._snapshots[client.config.id] = snapshot
        return snapshot

    def _allowed(self, client: _Client, request: web.Request) -> bool:
        page = client.config.status_page
        if page is None:
            return False
        if page.public:
            return True
        key = page.access_key
        given = request.query.get("key", "")
        return key is not None and hmac.compare_digest(
            given.encode(), key.get_secret_value().encode()
        )

    def _stale(self, snapshot: _Snapshot) -> bool:
        return (
            snapshot.revision != self._desk.revision
            or self._clock.monotonic() - snapshot.built >= self._refresh
        )

    async def _build(self, client: _Client) -> _Snapshot:
        revision = self._desk.revision
        now = self._clock.now()
        config = client.config
        since = now - timedelta(days=HISTORY_DAYS)
        incidents = await self._store.list_incidents(
            client=config.id, resolved_since=since, limit=500
        )
        timelines = await self._store.timelines([i.id for i in incidents if i.id is not None])
        today = now.astimezone(client.tz).date()
        first = today - timedelta(days=HISTORY_DAYS - 1)
        sites: list[SiteInput] = []
        days: dict[str, list[DayStat]] = {}
        maintenance: list[tuple[str, datetime, datetime, str]] = []
        names = display_names(config)
        show_checks = config.status_page is not None and config.status_page.components == "checks"
        for site in config.sites:
            key = f"{config.id}/{site.id}"
            window = self._desk.maintenance_window(key, now)
            availability = availability_checks(site)
            sites.append(
                SiteInput(
                    key=key,
                    label=site.label,
                    in_maintenance=window is not None,
                    maintenance_until=window[1] if window else None,
                    checks=tuple(
                        CheckInput(
                            key=f"{key}/{check.id}",
                            label=names[f"{key}/{check.id}"],
                            availability=check.id in availability,
                        )
                        for check in site.checks
                    )
                    if show_checks
                    else (),
                )
            )
            # The rollups: the bars and every uptime figure, as the report and Grafana see them.
            days[key] = await self._store.daily_stats(key, first=first, last=today, now=now)
            for start, end, reason in await self._maintenance(key, now):
                maintenance.append((key, start, end, reason))
        # The last 24 hours, not calendar days: the figure Grafana's 24h panel shows.
        rolling = await self._store.rolling_uptimes([site.key for site in sites], now=now)
        catalog = translations(config.language, client.locale_dir)
        view = build_status(
            title=client.title,
            language=config.language,
            gettext=catalog.gettext,
            tz=client.tz,
            now=now,
            sites=sites,
            incidents=incidents,
            timelines=timelines,
            days=days,
            maintenance=maintenance,
            rolling=rolling,
        )
        base = f"/status/{quote(config.id)}"
        self.builds += 1
        return _Snapshot(
            client=client,
            revision=revision,
            built=self._clock.monotonic(),
            view=view,
            html=self._render("status.html.j2", client, view),
            summary=json.dumps(
                summary(view, client_id=config.id, base=base, tz=client.tz)
            ).encode(),
            feed=atom_feed(view, base=base, now=now),
        )

    async def _maintenance(self, site: str, now: datetime) -> list[tuple[datetime, datetime, str]]:
        found = [
            (window.starts_at, window.ends_at, window.reason)
            for window in await self._store.list_maintenance(site=site, include_past=False, now=now)
        ]
        found += [
            (span[0], span[1], window.reason)
            for _, window, span in self._desk.recurring_maintenance(site=site, now=now)
        ]
        return found

    def _render(self, template: str, client: _Client, view: StatusView, **extra: Any) -> bytes:
        page = client.config.status_page
        key = page.access_key if page is not None and not page.public else None
        # A private page's links carry its key on, so its reader can follow them. Taken from
        # the config, never from the request: whatever a reader adds to a link is not
        # written into the snapshot everyone else is served.
        suffix = f"?key={quote(key.get_secret_value(), safe='')}" if key else ""
        return (
            self._env.get_template(template)
            .render(
                v=view,
                base=f"/status/{quote(client.config.id)}",
                suffix=suffix,
                logo_url=page.logo_url if page else None,
                **extra,
            )
            .encode()
        )

    @staticmethod
    async def _headers(request: web.Request, response: web.StreamResponse) -> None:
        if request.path.startswith("/status/") or request.path == "/":
            response.headers["Content-Security-Policy"] = STATUS_CSP
            if response.status == 200:
                private = "key" in request.query
                response.headers["Cache-Control"] = (
                    "private, no-store" if private else CACHE_CONTROL
                )


def summary(view: StatusView, *, client_id: str, base: str, tz: ZoneInfo) -> dict[str, Any]:
    """Shaped like Atlassian Statuspage's /api/v2/summary.json."""
    updated = utc_iso(view.updated_at)
    return {
        "page": {
            "id": client_id,
            "name": view.title,
            "url": base,
            "time_zone": tz.key,
            "updated_at": updated,
        },
        "components": _components(view, updated=updated),
        "incidents": [_incident_json(incident, base=base) for incident in view.active],
        "scheduled_maintenances": [
            {
                "name": window.text or window.site_label,
                "status": "in_progress" if window.in_force else "scheduled",
                "scheduled_for": utc_iso(window.starts_at),
                "scheduled_until": utc_iso(window.ends_at),
                "components": [{"name": window.site_label}],
            }
            for window in view.maintenance
        ],
        "status": {"indicator": _indicator(view.status), "description": view.banner},
    }


def _components(view: StatusView, *, updated: str | None) -> list[dict[str, Any]]:
    """A site is a component; with its checks shown, a group of them (Statuspage's
    `group: true` and `components`, each check with its `group_id`)."""
    found: list[dict[str, Any]] = []
    position = 0
    for site in view.sites:
        site_id = f"site-{site.number}"
        position += 1
        children = [f"{site_id}-check-{c.number}" for c in site.components]
        found.append(
            {
                "id": site_id,
                "name": site.label,
                "status": site.status.slug,
                "position": position,
                "description": None,
                "updated_at": updated,
                "group": bool(children),
                "group_id": None,
                **({"components": children} if children else {}),
                # Not in Statuspage's shape: the page's uptime figures (0..1, null: no data),
                # the last 24 hours and the client's last 7, 30 and 90 calendar days.
                "uptime": dict(site.ratios),
            }
        )
        for child, component in zip(children, site.components, strict=True):
            position += 1
            found.append(
                {
                    "id": child,
                    "name": component.label,
                    "status": component.status.slug,
                    "position": position,
                    "description": None,
                    "updated_at": updated,
                    "group": False,
                    "group_id": site_id,
                }
            )
    return found


def _incident_json(incident: IncidentView, *, base: str) -> dict[str, Any]:
    return {
        "id": str(incident.number),
        "name": incident.title,
        "status": incident.stage.value,
        "impact": _IMPACT[incident.status],
        "created_at": utc_iso(incident.opened_at),
        "updated_at": utc_iso(incident.updated_at),
        "resolved_at": utc_iso(incident.resolved_at),
        "shortlink": f"{base}/incidents/{incident.number}",
        "components": [{"name": incident.site_label}],
        "incident_updates": [
            {
                "status": update.stage.value,
                "body": update.text,
                "created_at": utc_iso(update.at),
                "display_at": utc_iso(update.at),
            }
            for update in incident.updates
        ],
    }


def _indicator(status: PageStatus) -> str:
    return {
        PageStatus.OPERATIONAL: "none",
        PageStatus.UNDER_MAINTENANCE: "maintenance",
        PageStatus.DEGRADED_PERFORMANCE: "minor",
        PageStatus.PARTIAL_OUTAGE: "major",
        PageStatus.MAJOR_OUTAGE: "critical",
    }[status]


def atom_feed(view: StatusView, *, base: str, now: datetime) -> bytes:
    """Incidents of the page and their public updates, newest first (RFC 4287)."""
    ET.register_namespace("", ATOM)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text is not None:
            element.text = text
        return element

    feed = ET.Element(f"{{{ATOM}}}feed")
    sub(feed, "id", f"tag:status,2026:{base}")
    sub(feed, "title", view.title)
    sub(feed, "updated", utc_iso(now))
    sub(feed, "link", href=f"{base}/feed.atom", rel="self")
    sub(feed, "link", href=base, rel="alternate")
    author = sub(feed, "author")
    sub(author, "name", view.title)
    for incident in (*view.active, *view.history):
        page = f"{base}/incidents/{incident.number}"
        # An incident without public updates still gets one entry (number 0): its opening.
        entries = [
            (number, update.stage_text, update.at, update.text)
            for number, update in enumerate(reversed(incident.updates), start=1)
        ] or [(0, incident.stage_text, incident.opened_at, incident.title)]
        for number, stage, at, text in entries:
            entry = sub(feed, "entry")
            sub(entry, "id", f"tag:status,2026:{page}/{number}")
            sub(entry, "title", f"{stage}: {incident.title}")
            sub(entry, "updated", utc_iso(at))
            sub(entry, "link", href=page, rel="alternate")
            sub(entry, "content", text, type="text")
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return body


def _response(body: bytes, content_type: str) -> web.Response:
    return web.Response(body=body, content_type=content_type, charset="utf-8")

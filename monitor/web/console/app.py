"""The operator console: /ui, server-rendered pages for incident work in a browser.

Pages: the triage queue, one incident (clocks, timeline with evidence, its mails and webhooks,
and the forms to act on it), sites with their checks, maintenance windows and the outbox.
Every page works without JavaScript; a small script refreshes the queue and an open incident
by fetching their live parts every few seconds.

Every /ui page but sign-in passes the gate (`gate.Gate`): without a session it redirects to
sign-in; every form carries the session's CSRF token and a POST without the right one gets
403 before anything happens. Actions go through the incident desk exactly as
the API's do, named by the signed-in operator: there is no `by` field to fill in.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web

from checks.result import ProbeResult
from incidents.model import CheckState, Incident, TimelineKind
from incidents.public_status import Stage
from incidents.recurring_maintenance import describe
from incidents.severity import Severity
from monitor.clock import Clock
from monitor.config.models import CheckConfig, MonitorConfig, OperatorAccount
from monitor.desk import ActionError, IncidentDesk
from monitor.probing import UnknownCheck
from monitor.store import Store
from monitor.store.codec import HistoryRow
from monitor.store.outbox import OutboxStatus
from monitor.web.console import views
from monitor.web.console.forms import (
    form_text,
    is_public,
    local_path,
    local_time,
    read_form,
    update_fields,
)
from monitor.web.console.gate import Gate, Handler
from monitor.web.console.sessions import Session
from monitor.web.templating import html_environment

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
# Scripts and styles from /ui/static only; forms post back here; no frames, no plugins.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SPARK_RESULTS = 40  # results drawn in a check's latency sparkline
# What a redirect after an action may say: fixed words, never text from the request.
NOTICES = {
    "acknowledged": "Acknowledged.",
    "updated": "Update sent to the client.",
    "noted": "Internal note saved.",
    "severity": "Severity changed.",
    "resolved": "Resolved.",
    "postmortem": "Post-mortem attached.",
    "maintenance": "Maintenance window added.",
    "cancelled": "Maintenance window cancelled.",
    "retry": "The notification will be sent again now.",
}

Probe = Callable[[str], Awaitable[ProbeResult | None]]


@dataclass(frozen=True, slots=True)
class _Operator:
    account: OperatorAccount
    tz: ZoneInfo


class Console:
    def __init__(
        self,
        *,
        config: MonitorConfig,
        store: Store,
        desk: IncidentDesk,
        clock: Clock,
        probe: Probe,
        kick_outbox: Callable[[], None] = lambda: None,
        refresh_seconds: float = 2.0,
    ) -> None:
        console = config.console
        self._operators = _operators_of(config)
        self._gate = Gate(
            config=console,
            accounts={key: operator.account for key, operator in self._operators.items()},
            clock=clock,
            render=self._render,
        )
        self._public_url = console.public_url
        self.apply(config)
        self._store = store
        self._desk = desk
        self._clock = clock
        self._probe = probe
        self._kick_outbox = kick_outbox
        self._refresh_ms = int(refresh_seconds * 1000)
        self._env = html_environment(HERE / "templates")

    def apply(self, config: MonitorConfig) -> None:
        """Use a reloaded configuration: operators, clients and sites. The session secret,
        its lifetime and `console.public_url` stay as they were until a restart."""
        self._operators = _operators_of(config)
        self._gate.use_accounts({key: op.account for key, op in self._operators.items()})
        self._config = config
        self._client_tz = {c.id: ZoneInfo(c.business_hours.timezone) for c in config.clients}
        self._client_names = {c.id: c.label for c in config.clients}

    @property
    def hosts(self) -> frozenset[str]:
        """The Host name of `console.public_url`, which the server answers besides its own."""
        host = urlsplit(self._public_url).hostname if self._public_url else None
        return frozenset({host.lower()}) if host else frozenset()

    def add_routes(self, app: web.Application) -> None:
        app.on_response_prepare.append(_headers)
        get, post = app.router.add_get, app.router.add_post
        get("/ui", _home)
        get("/ui/", _home)
        get("/ui/static/{name:console\\.(css|js)}", _static)
        get("/ui/sign-in", self._gate.sign_in_page)
        post("/ui/sign-in", self._gate.sign_in)
        post("/ui/sign-out", self._page(self._gate.sign_out))
        get("/ui/queue", self._page(self._queue))
        get("/ui/queue/live", self._page(self._queue_live))
        incident = "/ui/incidents/{id:\\d{1,9}}"
        get(incident, self._page(self._incident))
        get(incident + "/live", self._page(self._incident_live))
        post(incident + "/acknowledge", self._page(self._acknowledge))
        post(incident + "/preview", self._page(self._preview))
        post(incident + "/updates", self._page(self._post_update))
        post(incident + "/severity", self._page(self._severity))
        post(incident + "/resolve", self._page(self._resolve))
        post(incident + "/postmortem", self._page(self._postmortem))
        get("/ui/sites", self._page(self._sites))
        post("/ui/sites/probe", self._page(self._probe_now))
        get("/ui/maintenance", self._page(self._maintenance))
        post("/ui/maintenance", self._page(self._add_maintenance))
        post("/ui/maintenance/{id:\\d{1,9}}/cancel", self._page(self._cancel_maintenance))
        get("/ui/outbox", self._page(self._outbox))
        post("/ui/outbox/{id:\\d{1,9}}/retry", self._page(self._retry))

    def _page(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        return self._gate.page(handler)

    def _operator(self, session: Session) -> _Operator:
        return self._operators[session.operator.casefold()]

    # -- queue -------------------------------------------------------------------------------

    async def _queue(self, request: web.Request, session: Session) -> web.StreamResponse:
        view = await self._queue_view(session)
        view["notice"] = NOTICES.get(request.query.get("done", ""))
        return self._render("queue.html.j2", session, **view)

    async def _queue_live(self, request: web.Request, session: Session) -> web.StreamResponse:
        return self._render("_queue.html.j2", session, **await self._queue_view(session))

    async def _queue_view(self, session: Session) -> dict[str, Any]:
        now = self._clock.now()
        waiting = await self._desk.queue()
        waiting_ids = {i.id for i in waiting}
        stored = await self._store.list_incidents(open_only=True, limit=10_000)
        responded = sorted(
            (i for i in stored if i.id not in waiting_ids),
            key=lambda i: (int(i.severity), i.next_update_due_at or now, i.opened_at),
        )
        return {
            "zone": self._operator(session).tz.key,
            "notice": None,
            "waiting": [self._row(i, session, now=now) for i in waiting],
            "responded": [self._row(i, session, now=now) for i in responded],
        }

    def _row(self, incident: Incident, session: Session, *, now: datetime) -> dict[str, Any]:
        mine, client = self._zones(incident, session)
        paused = incident.paused_since is not None
        return {
            "i": incident,
            "client_name": self._client_names.get(incident.client, incident.client),
            "opened": views.when(incident.opened_at, mine, now=now),
            "response_due": views.due(
                incident.response_due_at, mine=mine, client=client, now=now, paused=paused
            ),
            "update_due": views.due(
                incident.next_update_due_at, mine=mine, client=client, now=now, paused=paused
            ),
        }

    def _zones(self, incident: Incident, session: Session) -> tuple[ZoneInfo, ZoneInfo]:
        mine = self._operator(session).tz
        return mine, self._client_tz.get(incident.client, mine)

    # -- one incident ------------------------------------------------------------------------

    async def _incident(
        self,
        request: web.Request,
        session: Session,
        *,
        error: str | None = None,
        status: int = 200,
        **extra: Any,
    ) -> web.Response:
        view = await self._incident_view(request, session)
        return self._render(
            "incident.html.j2",
            session,
            status=status,
            error=error,
            notice=NOTICES.get(request.query.get("done", "")),
            stages=[s for s in Stage if s is not Stage.RESOLVED],
            severities=list(Severity),
            **view,
            **extra,
        )

    async def _incident_live(self, request: web.Request, session: Session) -> web.Response:
        view = await self._incident_view(request, session)
        return self._render("_incident_live.html.j2", session, **view)

    async def _incident_view(self, request: web.Request, session: Session) -> dict[str, Any]:
        incident_id = int(request.match_info["id"])
        incident = await self._store.get_incident(incident_id)
        if incident is None:
            raise web.HTTPNotFound(text=f"no incident {incident_id}")
        now = self._clock.now()
        mine, client = self._zones(incident, session)
        timeline = await self._store.timeline(incident_id)
        outbox = await self._store.outbox_for_incident(incident_id)
        return {
            "row": self._row(incident, session, now=now),
            "i": incident,
            "aim": views.due(
                incident.response_aim_at,
                mine=mine,
                client=client,
                now=now,
                paused=incident.paused_since is not None,
            ),
            "times": {
                name: views.when(value, mine, now=now)
                for name, value in (
                    ("opened", incident.opened_at),
                    ("resolved", incident.resolved_at),
                    ("responded", incident.responded_at),
                    ("last_update", incident.last_update_at),
                    ("paused_since", incident.paused_since),
                    ("paused_until", incident.paused_until),
                )
            },
            "client_tz": client.key,
            "mine_tz": mine.key,
            "timeline": [
                {
                    "e": entry,
                    "at": views.when(entry.at, mine, now=now),
                    "evidence": views.pretty_json(entry.evidence),
                    "internal": entry.kind is TimelineKind.INTERNAL_NOTE,
                }
                for entry in timeline
            ],
            "outbox": [views.outbox_row(item, mine, now=now) for item in outbox],
        }

    async def _act(
        self,
        request: web.Request,
        session: Session,
        action: Callable[[int, Mapping[str, str], str], Awaitable[Any]],
        done: str,
    ) -> web.StreamResponse:
        """Run `action(incident id, form, operator name)`; back to the incident page with a
        notice, or the page again with the desk's refusal."""
        incident_id = int(request.match_info["id"])
        form = await read_form(request)
        by = self._operator(session).account.name
        try:
            await action(incident_id, form, by)
        except ActionError as exc:
            return await self._incident(request, session, error=str(exc), status=exc.status)
        log.info("console: %s on INC-%d by %s", done, incident_id, by)
        # One click from the queue goes back to the queue, where the next one waits.
        back = local_path(form.get("next")) or f"/ui/incidents/{incident_id}"
        raise web.HTTPSeeOther(f"{back}?done={done}")

    async def _acknowledge(self, request: web.Request, session: Session) -> web.StreamResponse:
        async def act(iid: int, form: Mapping[str, str], by: str) -> Any:
            return await self._desk.acknowledge(iid, by=by)

        return await self._act(request, session, act, "acknowledged")

    async def _preview(self, request: web.Request, session: Session) -> web.StreamResponse:
        """The client mail the update would send, composed as the outbox would send it now;
        the page then offers to send exactly that text."""
        incident_id = int(request.match_info["id"])
        form = await read_form(request)
        by = self._operator(session).account.name
        try:
            text, public, stage = update_fields(form)
            mails = await self._desk.preview_update(
                incident_id, by=by, text=text, public=public, stage=stage
            )
        except ActionError as exc:
            return await self._incident(request, session, error=str(exc), status=exc.status)
        return await self._incident(
            request,
            session,
            preview={
                "text": text,
                "public": public,
                "stage": stage.value if stage else "",
                "mails": mails,
            },
        )

    async def _post_update(self, request: web.Request, session: Session) -> web.StreamResponse:
        public = is_public(await read_form(request))

        async def act(iid: int, form: Mapping[str, str], by: str) -> Any:
            text, public, stage = update_fields(form)
            return await self._desk.post_update(iid, by=by, text=text, public=public, stage=stage)

        return await self._act(request, session, act, "updated" if public else "noted")

    async def _severity(self, request: web.Request, session: Session) -> web.StreamResponse:
        async def act(iid: int, form: Mapping[str, str], by: str) -> Any:
            value = form.get("severity", "")
            if value not in {str(int(s)) for s in Severity}:
                raise ActionError("choose a severity from 1 to 4", status=400)
            return await self._desk.change_severity(iid, by=by, severity=Severity(int(value)))

        return await self._act(request, session, act, "severity")

    async def _resolve(self, request: web.Request, session: Session) -> web.StreamResponse:
        async def act(iid: int, form: Mapping[str, str], by: str) -> Any:
            return await self._desk.resolve(
                iid, by=by, note=form_text(form, "note"), force=form.get("force") == "yes"
            )

        return await self._act(request, session, act, "resolved")

    async def _postmortem(self, request: web.Request, session: Session) -> web.StreamResponse:
        async def act(iid: int, form: Mapping[str, str], by: str) -> Any:
            return await self._desk.attach_postmortem(iid, by=by, text=form_text(form, "text"))

        return await self._act(request, session, act, "postmortem")

    # -- sites -------------------------------------------------------------------------------

    async def _sites(
        self, request: web.Request, session: Session, **extra: Any
    ) -> web.StreamResponse:
        now = self._clock.now()
        mine = self._operator(session).tz
        states = await self._store.load_check_states()
        open_by_site = {i.site: i for i in await self._store.list_incidents(open_only=True)}
        keys = [
            f"{client.id}/{site.id}/{check.id}"
            for client in self._config.clients
            for site in client.sites
            for check in site.checks
        ]
        history = await self._store.recent_results_of(keys, limit=SPARK_RESULTS)
        clients = []
        for client in self._config.clients:
            sites = []
            for site in client.sites:
                site_key = f"{client.id}/{site.id}"
                checks = [
                    _check_row(
                        f"{site_key}/{check.id}",
                        check,
                        states.get(f"{site_key}/{check.id}"),
                        history.get(f"{site_key}/{check.id}", []),
                        mine,
                        now,
                    )
                    for check in site.checks
                ]
                sites.append(
                    {
                        "key": site_key,
                        "label": site.label,
                        "url": site.url,
                        "incident": open_by_site.get(site_key),
                        "maintenance": self._desk.maintenance_window(site_key, now) is not None,
                        "checks": checks,
                    }
                )
            clients.append({"c": client, "sites": sites})
        return self._render("sites.html.j2", session, clients=clients, **extra)

    async def _probe_now(self, request: web.Request, session: Session) -> web.StreamResponse:
        form = await read_form(request)
        key = str(form.get("check", ""))
        try:
            result = await self._probe(key)
        except UnknownCheck as exc:  # a browser check, and no Chromium here
            return await self._sites(request, session, error=str(exc))
        if result is None:
            return await self._sites(request, session, error=f"no check {key!r} here")
        log.info(
            "console: %s probed %s now: %s",
            self._operator(session).account.name,
            key,
            result.outcome,
        )
        mine = self._operator(session).tz
        return await self._sites(
            request,
            session,
            probed={
                "key": key,
                "outcome": str(result.outcome),
                "ok": result.ok,
                "latency": f"{result.latency * 1000:.0f} ms" if result.latency is not None else "-",
                "at": views.when(result.started_at, mine, now=self._clock.now()),
                "evidence": views.pretty_json(views.evidence_dict(result)),
            },
        )

    # -- maintenance -------------------------------------------------------------------------

    async def _maintenance(
        self, request: web.Request, session: Session, *, error: str | None = None, status: int = 200
    ) -> web.Response:
        now = self._clock.now()
        mine = self._operator(session).tz
        windows = await self._store.list_maintenance(include_past=False, now=now)
        recurring = self._desk.recurring_maintenance(site=None, now=now)
        return self._render(
            "maintenance.html.j2",
            session,
            status=status,
            error=error,
            notice=NOTICES.get(request.query.get("done", "")),
            windows=[
                {
                    "w": w,
                    "starts": views.when(w.starts_at, mine, now=now),
                    "ends": views.when(w.ends_at, mine, now=now),
                    "in_force": w.starts_at <= now < w.ends_at,
                }
                for w in windows
            ],
            recurring=[
                {
                    "site": site,
                    "reason": window.reason,
                    "rule": describe(window.recurrence),
                    "starts": views.when(span[0], mine, now=now),
                    "ends": views.when(span[1], mine, now=now),
                }
                for site, window, span in recurring
            ],
            sites=[f"{c.id}/{s.id}" for c in self._config.clients for s in c.sites],
            zone=mine.key,
        )

    async def _add_maintenance(self, request: web.Request, session: Session) -> web.StreamResponse:
        form = await read_form(request)
        mine = self._operator(session).tz
        by = self._operator(session).account.name
        try:
            window = await self._desk.add_maintenance(
                site=str(form.get("site", "")),
                starts_at=local_time(form.get("starts_at", ""), mine, "start"),
                ends_at=local_time(form.get("ends_at", ""), mine, "end"),
                reason=form_text(form, "reason"),
                by=by,
            )
        except ActionError as exc:
            return await self._maintenance(request, session, error=str(exc), status=exc.status)
        log.info("console: maintenance window %d added by %s", window.id, by)
        raise web.HTTPSeeOther("/ui/maintenance?done=maintenance")

    async def _cancel_maintenance(
        self, request: web.Request, session: Session
    ) -> web.StreamResponse:
        try:
            await self._desk.cancel_maintenance(
                int(request.match_info["id"]), by=self._operator(session).account.name
            )
        except ActionError as exc:
            return await self._maintenance(request, session, error=str(exc), status=exc.status)
        raise web.HTTPSeeOther("/ui/maintenance?done=cancelled")

    # -- outbox ------------------------------------------------------------------------------

    async def _outbox(self, request: web.Request, session: Session) -> web.StreamResponse:
        now = self._clock.now()
        mine = self._operator(session).tz
        items = await self._store.list_outbox(
            statuses=(OutboxStatus.PENDING, OutboxStatus.FAILED), limit=500
        )
        rows = [views.outbox_row(item, mine, now=now) for item in items]
        return self._render(
            "outbox.html.j2",
            session,
            rows=rows,
            counts=await self._store.outbox_counts(),
            notice=NOTICES.get(request.query.get("done", "")),
        )

    async def _retry(self, request: web.Request, session: Session) -> web.StreamResponse:
        item_id = int(request.match_info["id"])
        item = await self._store.retry_outbox(item_id, now=self._clock.now())
        if item is None:
            raise web.HTTPNotFound(text=f"no pending or failed notification {item_id}")
        log.info("console: outbox item %d retried by %s", item_id, session.operator)
        self._kick_outbox()
        raise web.HTTPSeeOther("/ui/outbox?done=retry")

    # -- rendering ---------------------------------------------------------------------------

    def _render(
        self, template: str, session: Session | None, *, status: int = 200, **values: Any
    ) -> web.Response:
        body = self._env.get_template(template).render(
            session=session,
            operator=self._operator(session).account if session else None,
            refresh_ms=self._refresh_ms,
            **values,
        )
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def _operators_of(config: MonitorConfig) -> dict[str, _Operator]:
    agency = ZoneInfo(config.agency.timezone)
    return {
        op.name.casefold(): _Operator(op, ZoneInfo(op.timezone) if op.timezone else agency)
        for op in config.operators
    }


def _check_row(
    key: str,
    check: CheckConfig,
    state: CheckState | None,
    history: Sequence[HistoryRow],
    mine: ZoneInfo,
    now: datetime,
) -> dict[str, Any]:
    """One check on the Sites page; `history` newest first."""
    # The sparkline reads left to right, oldest first.
    samples = [(row.latency, not row.outcome.is_failure) for row in reversed(history)]
    # A check healthy all along has no stored state (the store keeps only states that say
    # something): its latest history row tells its last result.
    last, at = (state.last_outcome, state.last_result_at) if state else (None, None)
    if last is None and history:
        last, at = history[0].outcome, history[0].at
    return {
        "key": key,
        "name": check.name or check.id,
        "kind": check.kind,
        "state": views.state_word(state, last=last),
        "last": str(last) if last else "-",
        "last_at": views.when(at, mine, now=now),
        "spark": views.sparkline(samples),
    }


async def _home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/ui/queue")


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    kind = "text/css" if name.endswith(".css") else "text/javascript"
    return web.Response(
        body=(HERE / "static" / name).read_bytes(), content_type=kind, charset="utf-8"
    )


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path == "/ui" or request.path.startswith("/ui/"):
        response.headers["Content-Security-Policy"] = CONSOLE_CSP
        response.headers["Cache-Control"] = "no-store"

"""The monthly service report from the database: `monitor report` and the monthly mail.

Gathers what `incidents.report.compose_report` needs (the client's incidents of the month
with their timelines, stored and recurring maintenance windows, each site's days from the
daily rollups, the plan's availability target) and renders it as HTML, JSON or PDF. The PDF
is the HTML printed by WeasyPrint (HTML and CSS through Pango: Debian's libpango-1.0-0).
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from incidents import i18n, wording
from incidents.calendar_spec import build_calendar
from incidents.message_view import Branding
from incidents.outgoing import Attachment, Audience, NoticeKind, OutgoingEmail
from incidents.recurring_maintenance import occurrences
from incidents.report import (
    MonthlyReport,
    ReportIncident,
    ReportWindow,
    SiteFigures,
    compose_report,
    month_bounds,
)
from incidents.report_render import TEXT_TEMPLATE, render_html, report_json, subject
from incidents.report_schedule import due_report_month
from incidents.severity import Severity
from monitor.clients import display_names, message_context
from monitor.config.logo import logo_data_url
from monitor.config.models import ClientConfig, MonitorConfig
from monitor.desk import recurring_windows
from monitor.store import Store, StoreError
from monitor.uptime_gauge import calendars_of

__all__ = [
    "ReportFormat",
    "RenderedReport",
    "build_report",
    "find_client",
    "monthly_enabled",
    "queue_monthly_reports",
    "render_report",
    "report_message_id",
    "write_report",
]

log = logging.getLogger(__name__)


class ReportFormat(enum.StrEnum):
    HTML = "html"
    JSON = "json"
    PDF = "pdf"


@dataclass(frozen=True, slots=True)
class RenderedReport:
    report: MonthlyReport
    html: str  # the mail's body
    language: str
    pdf_html: str  # the PDF's source: the same, with the agency's report_logo embedded


def find_client(config: MonitorConfig, client_id: str) -> ClientConfig:
    """The configured client `client_id`; ValueError naming the ones there are."""
    for client in config.clients:
        if client.id == client_id:
            return client
    known = ", ".join(client.id for client in config.clients)
    raise ValueError(f"no client {client_id!r} in the configuration ({known})")


async def build_report(
    store: Store, config: MonitorConfig, *, client_id: str, month: str, now: datetime
) -> RenderedReport:
    """The report of `month` ("YYYY-MM") for `client_id`, as of `now` (a month not over yet
    is reported so far). Raises ValueError for an unknown client or a malformed month."""
    client = find_client(config, client_id)
    zone = ZoneInfo(client.business_hours.timezone)
    start, end = month_bounds(month, zone)
    names = display_names(client)
    sites = {f"{client.id}/{site.id}": names[f"{client.id}/{site.id}"] for site in client.sites}
    language = client.language
    ctx = message_context(config)
    catalog = i18n.translations(language, ctx.locale_dir)

    incidents = await store.client_incidents_between(client.id, start=start, end=end)
    items = [ReportIncident(i, tuple(await store.timeline(i.id or 0))) for i in incidents]
    titles = {
        i.id or 0: wording.title(i.headline, gettext=catalog.gettext, locale=language)
        for i in incidents
        if i.headline is not None
    }
    stored = await store.list_maintenance(include_past=True, now=now)
    windows = [ReportWindow(w.site, w.starts_at, w.ends_at) for w in stored if w.site in sites]
    windows += _recurring(config, sites=sites, start=start, end=end)
    last_day = (end - timedelta(days=1)).date()
    figures = {
        site: SiteFigures.from_stats(
            site, await store.daily_stats(site, first=start.date(), last=last_day, now=now)
        )
        for site in sites
    }
    report = compose_report(
        client_name=client.label,
        month=month,
        timezone=client.business_hours.timezone,
        incidents=items,
        windows=windows,
        figures=figures,
        site_names=sites,
        availability_target=config.plans[client.plan].availability_target,
        cadence=frozenset(
            s for s in Severity if config.sla_policy.targets(s).update_every is not None
        ),
        titles=titles,
        now=now,
    )

    def rendered(branding: Branding) -> str:
        return render_html(
            report,
            language=language,
            client_id=client.id,
            locale_dir=ctx.locale_dir,
            templates_dir=ctx.templates_dir,
            branding=branding,
        )

    html = rendered(ctx.branding)
    logo = config.agency.report_logo
    # The PDF embeds its logo (a data: URL, read now): a mail's https logo is not fetched.
    pdf_html = (
        rendered(replace(ctx.branding, logo_url=logo_data_url(logo))) if logo is not None else html
    )
    return RenderedReport(report=report, html=html, language=language, pdf_html=pdf_html)


def _recurring(
    config: MonitorConfig, *, sites: dict[str, str], start: datetime, end: datetime
) -> list[ReportWindow]:
    return [
        ReportWindow(site, begins, ends)
        for site, windows in recurring_windows(config).items()
        if site in sites
        for window in windows
        for begins, ends in occurrences(window.recurrence, window.zone, start=start, end=end)
    ]


def monthly_enabled(config: MonitorConfig, client: ClientConfig) -> bool:
    """The client's `reports.monthly`, else the top-level one."""
    return (client.reports or config.reports).monthly


def report_message_id(client_id: str, month: str, domain: str) -> str:
    """One Message-ID per client and month, the same in every process and after a restart:
    the outbox takes a Message-ID once, so the report is sent once."""
    return f"<report.{client_id}.{month}@{domain}>"


async def queue_monthly_reports(store: Store, config: MonitorConfig, *, now: datetime) -> int:
    """Queue the monthly report of every client that wants one and whose report is due at
    `now` (incidents.report_schedule) and not queued yet; the number queued. The PDF is
    printed in a worker thread, so probes are not held up while it is made. A client whose
    report cannot be made (say a broken custom template) is logged and tried again at the
    next call; the others are not held up by it. The store being away is raised."""
    ctx = message_context(config)
    queued = 0
    for client in config.clients:
        if not monthly_enabled(config, client) or not client.contacts:
            continue
        zone = ZoneInfo(client.business_hours.timezone)
        month = due_report_month(now, business=build_calendar(client.business_hours), zone=zone)
        if month is None:
            continue
        message_id = report_message_id(client.id, month, ctx.sender_domain)
        if await store.notice_queued(message_id):
            continue
        try:
            mail = await _report_mail(store, config, client, month=month, now=now)
        except StoreError:
            raise
        except Exception:  # noqa: BLE001 - one client's report must not stop the others'
            log.exception("the monthly report %s of %s could not be made", month, client.id)
            continue
        # Another process may have queued it meanwhile: then this one is dropped.
        if await store.queue_notice([mail], now=now):
            queued += 1
            log.info("monthly report %s of %s queued", month, client.id)
    return queued


async def _report_mail(
    store: Store, config: MonitorConfig, client: ClientConfig, *, month: str, now: datetime
) -> OutgoingEmail:
    ctx = message_context(config)
    rendered = await build_report(store, config, client_id=client.id, month=month, now=now)
    document = await asyncio.to_thread(pdf, rendered.pdf_html)
    text = render_html(
        rendered.report,
        language=rendered.language,
        client_id=client.id,
        locale_dir=ctx.locale_dir,
        templates_dir=ctx.templates_dir,
        template=TEXT_TEMPLATE,
    )
    catalog = i18n.translations(rendered.language, ctx.locale_dir)
    return OutgoingEmail(
        kind=NoticeKind.MONTHLY_REPORT,
        audience=Audience.CLIENT,
        incident_id=None,
        to=tuple(client.contacts),
        subject=subject(rendered.report, gettext=catalog.gettext, language=rendered.language),
        text=text,
        html=rendered.html,
        message_id=report_message_id(client.id, month, ctx.sender_domain),
        attachments=(Attachment(f"service-report-{month}.pdf", "application/pdf", document),),
    )


def render_report(rendered: RenderedReport, fmt: ReportFormat) -> bytes:
    """The report as the bytes of a file in `fmt`."""
    if fmt is ReportFormat.JSON:
        return (json.dumps(report_json(rendered.report), indent=2) + "\n").encode()
    if fmt is ReportFormat.HTML:
        return rendered.html.encode()
    return pdf(rendered.pdf_html)


def pdf(html: str) -> bytes:
    """`html` printed to PDF. Nothing is fetched: images come as data: URLs (the agency's
    `report_logo`); any other URL (an https logo of the mails) is left out, not fetched."""
    # Imported here: WeasyPrint loads Pango when imported, which only the PDF needs.
    import weasyprint
    from weasyprint.urls import URLFetcher

    # Only data: URLs, which carry their bytes: anything else fails (and is left out)
    # instead of going out to the network or reading a file the HTML names.
    fetcher = URLFetcher(allowed_protocols=("data",))
    data: bytes = weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf()
    return data


async def write_report(
    url: str,
    config: MonitorConfig,
    *,
    client_id: str,
    month: str,
    fmt: ReportFormat,
    now: datetime,
) -> bytes:
    """`monitor report`: the report of `month` read from the database at `url`."""
    store = await Store.open(url)
    store.use_calendars(calendars_of(config))
    try:
        rendered = await build_report(store, config, client_id=client_id, month=month, now=now)
    finally:
        await store.close()
    return render_report(rendered, fmt)

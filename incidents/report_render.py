"""The monthly service report as the client reads it (HTML, in its language) and as JSON.

Pure: no clock, no I/O beyond the shipped templates and catalogs. The HTML is one document
that serves as the mail's body and, printed by the monitor (WeasyPrint), as its PDF; it says
every verdict in words, never by colour alone. Neither form shows ids (site keys), outcome
codes or anything a target sent: only names, times, figures and verdicts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_decimal

from incidents import i18n
from incidents import message_text as mt
from incidents.message_view import SEVERITY_LABEL, Branding, localized_span
from incidents.messages import template_environment
from incidents.report import IncidentLine, MonthlyReport, Verdict
from incidents.wording import N_, Gettext

__all__ = ["TEMPLATE", "TEXT_TEMPLATE", "report_json", "render_html", "subject"]

TEMPLATE = "report.html.j2"
TEXT_TEMPLATE = "report.txt.j2"  # the monthly mail's text part
NO_BRANDING = Branding()

VERDICT_LABEL = {
    Verdict.MET: N_("met"),
    Verdict.MISSED: N_("missed"),
    Verdict.NOT_DUE: N_("not due"),
    Verdict.NONE: N_("no target"),
}


def subject(report: MonthlyReport, *, gettext: Gettext, language: str) -> str:
    """`Service report November 2026: Acme GmbH`, one header-safe line."""
    text = gettext("Service report %(month)s: %(client)s") % {
        "month": _month_name(report, language),
        "client": report.client_name,
    }
    return mt.sanitize_header_text(text)


def render_html(
    report: MonthlyReport,
    *,
    language: str,
    client_id: str,
    locale_dir: Path | None = None,
    templates_dir: Path | None = None,
    branding: Branding = NO_BRANDING,
    template: str = TEMPLATE,
) -> str:
    """The report as one HTML document in `language` (templates and catalogs as for mails:
    a configured templates folder may replace `report.html.j2` per client or language);
    with `template=TEXT_TEMPLATE`, the mail's short text part."""
    env = template_environment(
        language,
        locale_dir=None if locale_dir is None else str(locale_dir),
        templates_dir=None if templates_dir is None else str(templates_dir),
        client_id=client_id,
    )
    _ = i18n.translations(language, locale_dir).gettext
    return env.get_template(template).render(
        r=_view(report, language=language, gettext=_),
        subject=subject(report, gettext=_, language=language),
        brand=branding,
    )


def _view(report: MonthlyReport, *, language: str, gettext: Gettext) -> dict[str, Any]:
    zone = ZoneInfo(report.timezone)

    def when(at: datetime | None) -> str:
        return "" if at is None else mt.local_time(at, zone, locale=language)

    def percent(value: float | None) -> str:
        return "" if value is None else f"{format_decimal(value, '0.00', locale=language)} %"

    def minutes(value: float) -> str:
        return f"{format_decimal(round(value), '#,##0', locale=language)} min"

    def length(delta: timedelta | None) -> str:
        return "" if delta is None else localized_span(delta, gettext)

    def verdict(value: Verdict) -> dict[str, str]:
        return {"value": value.value, "label": gettext(VERDICT_LABEL[value])}

    def incident(line: IncidentLine) -> dict[str, Any]:
        return {
            "ref": line.ref,
            "site": line.site_name,
            "title": line.title,
            "severity": gettext(SEVERITY_LABEL[line.severity]),
            "opened_at": when(line.opened_at),
            "resolved_at": when(line.resolved_at),
            "duration": length(line.duration),
            "responded_at": when(line.responded_at),
            "time_to_respond": length(line.time_to_respond),
            "response_aim_at": when(line.response_aim_at),
            "response_due_at": when(line.response_due_at),
            "response_aim": verdict(line.response_aim),
            "response_due": verdict(line.response_due),
            "client_updates": line.client_updates,
            "update_cadence": verdict(line.update_cadence),
        }

    return {
        "language": language,
        "client_name": report.client_name,
        "month": _month_name(report, language),
        "period_start": when(report.period_start),
        "period_end": when(report.period_end),
        "target": percent(report.availability_target),
        "sites": [
            {
                "name": site.name,
                "availability": percent(site.availability),
                "target": percent(site.target),
                "target_met": site.target_met,
                "downtime": minutes(site.downtime_minutes),
                "maintenance": minutes(site.maintenance_minutes),
            }
            for site in report.sites
        ],
        "by_severity": [
            {"label": gettext(SEVERITY_LABEL[severity]), "count": count}
            for severity, count in report.by_severity
        ],
        "incidents": [incident(line) for line in report.incidents],
        "maintenance": [
            {
                "site": window.site_name,
                "starts_at": when(window.starts_at),
                "ends_at": when(window.ends_at),
                "duration": length(window.duration),
            }
            for window in report.maintenance
        ],
    }


def _month_name(report: MonthlyReport, language: str) -> str:
    return format_date(report.period_start.date(), "MMMM yyyy", locale=language)


def report_json(report: MonthlyReport) -> dict[str, Any]:
    """The report as JSON values: times in UTC ISO form, durations in minutes, verdicts as
    `met` / `missed` / `not_due` / `none`, availability in percent."""

    def minutes(delta: timedelta | None) -> float | None:
        return None if delta is None else round(delta.total_seconds() / 60, 1)

    return {
        "client": report.client_name,
        "month": report.month,
        "timezone": report.timezone,
        "period": {"start": mt.utc_iso(report.period_start), "end": mt.utc_iso(report.period_end)},
        "availability_target": report.availability_target,
        "sites": [
            {
                "name": site.name,
                "availability": site.availability,
                "target": site.target,
                "target_met": site.target_met,
                "downtime_minutes": round(site.downtime_minutes, 1),
                "maintenance_minutes": round(site.maintenance_minutes, 1),
            }
            for site in report.sites
        ],
        "incidents_by_severity": {str(int(s)): count for s, count in report.by_severity},
        "incidents": [
            {
                "ref": line.ref,
                "site": line.site_name,
                "title": line.title,
                "severity": int(line.severity),
                "opened_at": mt.utc_iso(line.opened_at),
                "resolved_at": mt.utc_iso(line.resolved_at),
                "duration_minutes": minutes(line.duration),
                "responded_at": mt.utc_iso(line.responded_at),
                "time_to_respond_minutes": minutes(line.time_to_respond),
                "response_aim_at": mt.utc_iso(line.response_aim_at),
                "response_due_at": mt.utc_iso(line.response_due_at),
                "response_aim": line.response_aim.value,
                "response_due": line.response_due.value,
                "client_updates": line.client_updates,
                "updates_missed": line.updates_missed,
                "update_cadence": line.update_cadence.value,
            }
            for line in report.incidents
        ],
        "maintenance": [
            {
                "site": window.site_name,
                "starts_at": mt.utc_iso(window.starts_at),
                "ends_at": mt.utc_iso(window.ends_at),
                "minutes": minutes(window.duration),
            }
            for window in report.maintenance
        ],
    }

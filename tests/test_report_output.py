"""`monitor report` on a real database (SQLite and PostgreSQL): a November with a Severity 1
answered in time, a Severity 2 whose update came late and a maintenance window, written
through the store as the monitor writes them; the JSON checked field by field, the PDF
opened by pdftotext, the HTML in the client's language."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from checks.result import Evidence, Outcome, ProbeResult
from incidents.calendar_spec import BusinessHoursSpec, build_calendar
from incidents.model import (
    CheckState,
    Headline,
    Incident,
    IncidentStatus,
    TimelineEntry,
    TimelineKind,
    Transition,
)
from incidents.severity import Severity
from incidents.sla import SlaContext, due_sla_events, record_client_update, record_response
from incidents.sla import start_clocks as sla_start
from monitor.cli import main
from monitor.config import load_config
from monitor.reports import ReportFormat, write_report
from monitor.store import Store, rollups

BERLIN = ZoneInfo("Europe/Berlin")
CTX = SlaContext(business=build_calendar(BusinessHoursSpec(timezone="Europe/Berlin")))
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # the report is made after the month

CONFIG = """\
database: {{url: "{url}"}}
plans:
  standard: {{availability_target: 99.9}}
clients:
  - id: acme
    name: Acme GmbH
    language: {language}
    business_hours: {{timezone: Europe/Berlin}}
    contacts: [it@acme.example]
    sites:
      - id: shop
        name: Acme Shop
        url: https://shop.acme.example/
        checks: [{{id: home}}]
      - id: blog
        name: Acme Blog
        url: https://blog.acme.example/
        checks: [{{id: home}}]
"""


def berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def result(outcome: Outcome, at: datetime) -> ProbeResult:
    return ProbeResult(
        outcome=outcome,
        started_at=at,
        latency=7.5 if outcome is Outcome.SLOW else 0.2,
        evidence=Evidence(url="https://shop.acme.example/", status=500, error=outcome.value),
    )


async def healthy_day(store: Store, key: str, at: datetime) -> None:
    state = CheckState(key=key, successes=2, last_outcome=Outcome.OK, last_result_at=at)
    await store.record(
        check_key=key,
        result=result(Outcome.OK, at),
        transition=Transition(state=state, incident=None),
        previous_state=replace(state, last_result_at=at - timedelta(days=1)),
    )


async def open_incident(
    store: Store, *, site: str, severity: Severity, outcome: Outcome, at: datetime
) -> Incident:
    key = f"{site}/home"
    label = "Acme Shop" if site == "acme/shop" else "Acme Blog"
    headline = Headline(
        site_label=label, check=key, part="Home", availability=True, outcome=outcome
    )
    incident = sla_start(
        Incident(
            id=None,
            client="acme",
            site=site,
            title=f"{label}: english title",
            severity=severity,
            status=IncidentStatus.OPEN,
            opened_at=at,
            failing_checks=frozenset({key}),
            checks=frozenset({key}),
            headline=headline,
        ),
        ctx=CTX,
    )
    state = CheckState(
        key=key, recent=(severity,), failing=True, severity=severity, last_result_at=at
    )
    opened = await store.record(
        check_key=key,
        result=result(outcome, at),
        transition=Transition(
            state=state,
            incident=incident,
            incident_changed=True,
            timeline=(TimelineEntry(at=at, kind=TimelineKind.OPENED, message="opened"),),
        ),
        previous_state=CheckState(key=key),
    )
    assert opened is not None
    return opened


async def step(store: Store, incident: Incident, kind: TimelineKind, at: datetime) -> Incident:
    entry = TimelineEntry(at=at, kind=kind, message=kind.value)
    return await store.save_incident(incident, timeline=(entry,), now=at)


async def november(store: Store) -> None:
    """Every day probed; Tue 3 Nov the shop is down 10:00-15:30 (Sev1, acknowledged 11:30,
    updated 15:00); Mon 9 Nov the blog is slow (Sev2, responded 11:00, its daily update due
    Tue 11:00 came at 14:00, resolved Wed 12:00); Sun 15 Nov 02:00-04:00 shop maintenance."""
    for day in range(1, 31):
        for site in ("acme/shop", "acme/blog"):
            await healthy_day(store, f"{site}/home", berlin(f"2026-11-{day:02d}T06:00"))
    await store.add_maintenance(
        site="acme/shop",
        starts_at=berlin("2026-11-15T02:00"),
        ends_at=berlin("2026-11-15T04:00"),
        reason="database upgrade",
        created_by="ann",
        now=berlin("2026-11-01T06:00"),
    )
    sev1 = await open_incident(
        store,
        site="acme/shop",
        severity=Severity.CRITICAL,
        outcome=Outcome.HTTP_5XX,
        at=berlin("2026-11-03T10:00"),
    )
    sev1 = record_response(sev1, at=berlin("2026-11-03T11:30"), by="ann", ctx=CTX)
    sev1 = await step(store, sev1, TimelineKind.ACKNOWLEDGED, berlin("2026-11-03T11:30"))
    sev1 = record_client_update(sev1, at=berlin("2026-11-03T15:00"), ctx=CTX)
    sev1 = await step(store, sev1, TimelineKind.CLIENT_UPDATE, berlin("2026-11-03T15:00"))
    sev1 = _resolved(sev1, berlin("2026-11-03T15:30"))
    await step(store, sev1, TimelineKind.RESOLVED, berlin("2026-11-03T15:30"))

    sev2 = await open_incident(
        store,
        site="acme/blog",
        severity=Severity.MAJOR,
        outcome=Outcome.SLOW,
        at=berlin("2026-11-09T10:00"),
    )
    sev2 = record_response(sev2, at=berlin("2026-11-09T11:00"), by="bob", ctx=CTX)
    sev2 = await step(store, sev2, TimelineKind.ACKNOWLEDGED, berlin("2026-11-09T11:00"))
    sev2, events = due_sla_events(sev2, now=berlin("2026-11-10T11:00"), ctx=CTX)
    assert [e.kind for e in events] == [TimelineKind.UPDATE_OVERDUE]
    sev2 = await step(store, sev2, TimelineKind.UPDATE_OVERDUE, berlin("2026-11-10T11:00"))
    sev2 = record_client_update(sev2, at=berlin("2026-11-10T14:00"), ctx=CTX)
    sev2 = await step(store, sev2, TimelineKind.CLIENT_UPDATE, berlin("2026-11-10T14:00"))
    sev2 = _resolved(sev2, berlin("2026-11-11T12:00"))
    await step(store, sev2, TimelineKind.RESOLVED, berlin("2026-11-11T12:00"))


def _resolved(incident: Incident, at: datetime) -> Incident:
    return replace(
        incident,
        status=IncidentStatus.RESOLVED,
        resolved_at=at,
        failing_checks=frozenset(),
        next_update_due_at=None,
    )


def config_file(tmp_path: Path, url: str, *, language: str = "en") -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(CONFIG.format(url=url, language=language))
    return path


async def report(tmp_path: Path, url: str, fmt: ReportFormat, *, language: str = "en") -> bytes:
    config = load_config(config_file(tmp_path, url, language=language))
    return await write_report(url, config, client_id="acme", month="2026-11", fmt=fmt, now=NOW)


async def test_the_json_report_field_by_field(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    store.use_calendars(rollups.Calendars(zone_of=lambda client: BERLIN))
    await november(store)
    data = json.loads(await report(tmp_path, database_url, ReportFormat.JSON))

    assert data["client"] == "Acme GmbH"
    assert data["month"] == "2026-11"
    assert data["timezone"] == "Europe/Berlin"
    assert data["period"] == {"start": "2026-10-31T23:00:00Z", "end": "2026-11-30T23:00:00Z"}
    assert data["availability_target"] == 99.9
    assert [site["name"] for site in data["sites"]] == ["Acme Shop", "Acme Blog"]
    assert data["incidents_by_severity"] == {"1": 1, "2": 1, "3": 0, "4": 0}

    sev1, sev2 = data["incidents"]
    assert sev1 == {
        "ref": "INC-1",
        "site": "Acme Shop",
        "title": "Acme Shop is down",
        "severity": 1,
        "opened_at": "2026-11-03T09:00:00Z",
        "resolved_at": "2026-11-03T14:30:00Z",
        "duration_minutes": 330.0,
        "responded_at": "2026-11-03T10:30:00Z",
        "time_to_respond_minutes": 90.0,
        "response_aim_at": "2026-11-03T11:00:00Z",
        "response_due_at": "2026-11-03T13:00:00Z",
        "response_aim": "met",
        "response_due": "met",
        "client_updates": 1,
        "updates_missed": 0,
        "update_cadence": "met",
    }
    assert sev2 == {
        "ref": "INC-2",
        "site": "Acme Blog",
        "title": "Acme Blog: pages load slowly",
        "severity": 2,
        "opened_at": "2026-11-09T09:00:00Z",
        "resolved_at": "2026-11-11T11:00:00Z",
        "duration_minutes": 3000.0,
        "responded_at": "2026-11-09T10:00:00Z",
        "time_to_respond_minutes": 60.0,
        "response_aim_at": "2026-11-10T09:00:00Z",
        "response_due_at": "2026-11-10T09:00:00Z",
        "response_aim": "met",
        "response_due": "met",
        "client_updates": 1,
        "updates_missed": 1,
        "update_cadence": "missed",
    }
    assert data["maintenance"] == [
        {
            "site": "Acme Shop",
            "starts_at": "2026-11-15T01:00:00Z",
            "ends_at": "2026-11-15T03:00:00Z",
            "minutes": 120.0,
        }
    ]
    # Nothing internal: no site keys, no operator names, no outcome codes, no reason text.
    text = json.dumps(data)
    for internal in ("acme/", "ann", "bob", "http_5xx", "database upgrade", "english title"):
        assert internal not in text


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
async def test_the_pdf_opens_and_shows_the_figures(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    store.use_calendars(rollups.Calendars(zone_of=lambda client: BERLIN))
    await november(store)
    document = tmp_path / "report.pdf"
    document.write_bytes(await report(tmp_path, database_url, ReportFormat.PDF))
    assert document.read_bytes().startswith(b"%PDF-")
    text = subprocess.run(
        ["pdftotext", "-layout", str(document), "-"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    for figure in (
        "Service report November 2026",
        "99.23 %",  # the shop's availability, from the rollups
        "99.90 %",  # the target
        "330 min",  # the shop's downtime
        "INC-1: Acme Shop is down",
        "INC-2: Acme Blog: pages load slowly",
        "Tue 3 Nov 2026 12:00 CET: met",  # the Sev1's response aim
        "cadence: missed",  # the Sev2's late update
        "Sun 15 Nov 2026 02:00 CET",  # the maintenance window
    ):
        assert figure in text, figure


def pdf_images(document: Path) -> list[list[str]]:
    """The rows of `pdfimages -list` (poppler-utils): one per image in the PDF."""
    listing = subprocess.run(
        ["pdfimages", "-list", str(document)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.splitlines()
    return [line.split() for line in listing[2:] if line.strip()]


@pytest.mark.parametrize("given_as", ["file", "data_url"])
async def test_the_pdf_embeds_the_agency_logo_and_fetches_nothing(
    store: Store, database_url: str, tmp_path: Path, given_as: str
) -> None:
    logo = tmp_path / "logo.png"
    Image.new("RGB", (40, 20), (31, 78, 140)).save(logo)
    data_url = "data:image/png;base64," + base64.b64encode(logo.read_bytes()).decode()
    config_file(tmp_path, database_url)
    path = tmp_path / "monitor.yaml"
    # The mails' https logo too: the PDF never fetches it (a fetch would fail here anyway).
    source = logo if given_as == "file" else data_url
    agency = f'agency: {{logo_url: "https://logo.invalid/l.png", report_logo: "{source}"}}\n'
    path.write_text(agency + path.read_text())
    config = load_config(path)
    await november(store)
    document = tmp_path / "report.pdf"
    document.write_bytes(
        await write_report(
            database_url, config, client_id="acme", month="2026-11", fmt=ReportFormat.PDF, now=NOW
        )
    )
    [image] = pdf_images(document)
    assert image[3:5] == ["40", "20"]  # width and height: the logo, and nothing else
    # Without a report logo, the https one is left out of the PDF, not fetched.
    path.write_text(path.read_text().replace(f', report_logo: "{source}"', ""))
    config = load_config(path)
    document.write_bytes(
        await write_report(
            database_url, config, client_id="acme", month="2026-11", fmt=ReportFormat.PDF, now=NOW
        )
    )
    assert pdf_images(document) == []


async def test_a_german_client_reads_its_report_in_german(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    store.use_calendars(rollups.Calendars(zone_of=lambda client: BERLIN))
    await november(store)
    html = (await report(tmp_path, database_url, ReportFormat.HTML, language="de")).decode()
    assert '<html lang="de">' in html
    for words in (
        "Servicebericht November 2026",
        "INC-1: Acme Shop ist ausgefallen",
        'Rhythmus: <span class="missed">verfehlt</span>',
    ):
        assert words in html, words


def test_monitor_report_writes_the_file_and_refuses_bad_arguments(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(config_file(tmp_path, database_url))
    output = tmp_path / "out.html"
    base = ["report", "--config", config, "--client", "acme"]
    assert main([*base, "--month", "2026-11", "--output", str(output)]) == 0
    assert "Service report November 2026: Acme GmbH" in output.read_text()
    assert main([*base, "--month", "11/2026"]) == 2
    assert "month must be YYYY-MM" in capsys.readouterr().err
    assert main(["report", "--config", config, "--client", "zeta", "--month", "2026-11"]) == 2
    assert "no client 'zeta' in the configuration (acme)" in capsys.readouterr().err


async def test_availability_and_downtime_come_from_the_daily_rollups(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    store.use_calendars(rollups.Calendars(zone_of=lambda client: BERLIN))
    await november(store)
    data = json.loads(await report(tmp_path, database_url, ReportFormat.JSON))
    shop, blog = data["sites"]
    # 30 days observed, 2 h of them maintenance, 5.5 h down: 1 - 5.5 / 718.
    assert shop["name"] == "Acme Shop"
    assert shop["availability"] == pytest.approx(100 * (1 - 5.5 / 718))
    assert (shop["target"], shop["target_met"]) == (99.9, False)
    assert (shop["downtime_minutes"], shop["maintenance_minutes"]) == (330.0, 120.0)
    # Slow pages are degraded, not down: the blog kept its target.
    assert blog == {
        "name": "Acme Blog",
        "availability": 100.0,
        "target": 99.9,
        "target_met": True,
        "downtime_minutes": 0.0,
        "maintenance_minutes": 0.0,
    }
    html = (await report(tmp_path, database_url, ReportFormat.HTML, language="de")).decode()
    assert "99,23 %" in html


async def test_the_store_lists_the_client_incidents_that_overlap_the_month(store: Store) -> None:
    october = await open_incident(
        store,
        site="acme/shop",
        severity=Severity.MAJOR,
        outcome=Outcome.SLOW,
        at=berlin("2026-10-20T10:00"),
    )
    await step(
        store,
        _resolved(october, berlin("2026-10-31T23:59")),
        TimelineKind.RESOLVED,
        berlin("2026-10-31T23:59"),
    )
    running = await open_incident(
        store,
        site="acme/shop",
        severity=Severity.CRITICAL,
        outcome=Outcome.HTTP_5XX,
        at=berlin("2026-10-31T23:00"),
    )
    await open_incident(
        store,
        site="acme/blog",
        severity=Severity.CRITICAL,
        outcome=Outcome.HTTP_5XX,
        at=berlin("2026-12-01T00:00"),
    )
    found = await store.client_incidents_between(
        "acme", start=berlin("2026-11-01T00:00"), end=berlin("2026-12-01T00:00")
    )
    assert [incident.id for incident in found] == [running.id]
    assert (
        await store.client_incidents_between(
            "zeta", start=berlin("2026-11-01T00:00"), end=berlin("2026-12-01T00:00")
        )
        == []
    )

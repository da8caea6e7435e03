"""What a status page says about a site, from its open incident's headline (the check roles),
and which updates a client may read: pure functions, tables of plain values."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from checks.result import Outcome
from incidents.model import Headline, Incident, IncidentStatus, TimelineEntry, TimelineKind
from incidents.public_status import (
    PageStatus,
    Stage,
    check_status,
    overall,
    postmortem,
    public_updates,
    site_status,
    stage_of,
)
from incidents.severity import Severity

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def incident(outcome: Outcome, *, availability: bool = True) -> Incident:
    return Incident(
        id=7,
        client="acme",
        site="acme/shop",
        title="t",
        severity=Severity(1),
        status=IncidentStatus.OPEN,
        opened_at=T0,
        headline=Headline(
            site_label="Acme Shop",
            check="acme/shop/x",
            part="Checkout",
            availability=availability,
            outcome=outcome,
        ),
    )


@pytest.mark.parametrize(
    ("open_incident", "maintenance", "expected"),
    [
        (None, False, PageStatus.OPERATIONAL),
        (None, True, PageStatus.UNDER_MAINTENANCE),
        (incident(Outcome.HTTP_5XX), False, PageStatus.MAJOR_OUTAGE),
        (incident(Outcome.HTTP_5XX), True, PageStatus.MAJOR_OUTAGE),
        (incident(Outcome.SLOW), False, PageStatus.DEGRADED_PERFORMANCE),
        (incident(Outcome.HTTP_5XX, availability=False), False, PageStatus.PARTIAL_OUTAGE),
    ],
)
def test_site_status(
    open_incident: Incident | None, maintenance: bool, expected: PageStatus
) -> None:
    assert site_status(open_incident, in_maintenance=maintenance) is expected


@pytest.mark.parametrize(
    ("outcome", "availability", "failing", "maintenance", "expected"),
    [
        (Outcome.HTTP_5XX, True, True, False, PageStatus.MAJOR_OUTAGE),
        (Outcome.SLOW, True, True, False, PageStatus.DEGRADED_PERFORMANCE),
        (Outcome.HTTP_5XX, False, True, False, PageStatus.PARTIAL_OUTAGE),
        (Outcome.SLOW, False, True, False, PageStatus.DEGRADED_PERFORMANCE),
        # A check of the incident that is not failing (any more) is as its site would be.
        (Outcome.HTTP_5XX, True, False, False, PageStatus.OPERATIONAL),
        (Outcome.HTTP_5XX, True, False, True, PageStatus.UNDER_MAINTENANCE),
    ],
)
def test_check_status(
    outcome: Outcome, availability: bool, failing: bool, maintenance: bool, expected: PageStatus
) -> None:
    check = "acme/shop/x"
    open_incident = replace(
        incident(outcome), failing_checks=frozenset({check} if failing else set())
    )
    timeline = [
        TimelineEntry(at=T0, kind=TimelineKind.OPENED, message="m", check=check, outcome=outcome)
    ]
    found = check_status(
        open_incident,
        timeline,
        check=check,
        availability=availability,
        in_maintenance=maintenance,
    )
    assert found is expected


def test_the_banner_is_the_worst_site() -> None:
    assert overall([]) is PageStatus.OPERATIONAL
    assert overall([PageStatus.OPERATIONAL, PageStatus.PARTIAL_OUTAGE]) is PageStatus.PARTIAL_OUTAGE
    assert (
        overall([PageStatus.UNDER_MAINTENANCE, PageStatus.DEGRADED_PERFORMANCE])
        is PageStatus.DEGRADED_PERFORMANCE
    )


def test_only_client_updates_are_public_and_stages_carry_on() -> None:
    def entry(minutes: int, kind: TimelineKind, **evidence: object) -> TimelineEntry:
        return TimelineEntry(
            at=T0 + timedelta(minutes=minutes), kind=kind, message="m", evidence=evidence
        )

    timeline = [
        entry(0, TimelineKind.OPENED, status=500),
        entry(5, TimelineKind.CLIENT_UPDATE, text="Looking into it.", by="sam"),
        entry(6, TimelineKind.INTERNAL_NOTE, text="db01", by="sam", public=False),
        entry(9, TimelineKind.CLIENT_UPDATE, text="Found it.", by="sam", stage="identified"),
        entry(12, TimelineKind.CLIENT_UPDATE, text="Still on it.", by="sam"),
    ]
    open_one = incident(Outcome.HTTP_5XX)
    updates = public_updates(open_one, timeline)
    assert [(u.stage, u.text) for u in updates] == [
        (Stage.INVESTIGATING, "Looking into it."),
        (Stage.IDENTIFIED, "Found it."),
        (Stage.IDENTIFIED, "Still on it."),  # a stage holds until an update names another
    ]
    assert stage_of(open_one, updates) is Stage.IDENTIFIED
    resolved = replace(
        open_one, status=IncidentStatus.RESOLVED, resolved_at=T0 + timedelta(hours=1)
    )
    final = public_updates(resolved, timeline)
    assert final[-1].stage is Stage.RESOLVED and stage_of(resolved, final) is Stage.RESOLVED


def test_the_latest_postmortem_counts() -> None:
    entries = [
        TimelineEntry(at=T0, kind=TimelineKind.POSTMORTEM, message="m", evidence={"text": "one"}),
        TimelineEntry(at=T0, kind=TimelineKind.POSTMORTEM, message="m", evidence={"text": "two"}),
    ]
    assert postmortem(entries) == "two"
    assert postmortem([]) is None


def test_a_german_client_reads_its_page_in_german() -> None:
    from datetime import date
    from zoneinfo import ZoneInfo

    from incidents.i18n import translations
    from incidents.status_view import SiteInput, build_status
    from incidents.uptime import DayStat, DayState

    day = date(2026, 12, 4)
    stat = DayStat(
        day=day,
        probes=100,
        failures=10,
        observed_seconds=36_000,
        down_seconds=360,
        degraded_seconds=0,
        maintenance_seconds=0,
        incidents=1,
        worst=DayState.DOWN,
    )
    view = build_status(
        title="Acme",
        language="de",
        gettext=translations("de").gettext,
        tz=ZoneInfo("Europe/Berlin"),
        now=T0,
        sites=[SiteInput(key="acme/shop", label="Acme Shop")],
        incidents=[incident(Outcome.HTTP_5XX)],
        timelines={},
        days={"acme/shop": [stat]},
        rolling={"acme/shop": 0.995},
    )
    assert view.banner == "Schwerer Ausfall"
    assert (
        view.active[0].title == "Acme Shop ist nicht erreichbar"
        or "Acme Shop" in view.active[0].title
    )
    (site,) = view.sites
    assert site.bars[0].state == "down"
    assert site.bars[0].tooltip == "2026-12-04: 6 Min. ausgefallen, Vorfälle: 1"
    # The last 24 hours as given, in German digits, rounded down.
    assert site.uptime[0] == ("24h", "24 Stunden", "99,50 %")
    # 360 s down of 36,000 observed: 99 %.
    assert site.uptime[1] == ("7d", "7 Tage", "99,00 %")

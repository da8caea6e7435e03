"""The uptime arithmetic of incidents.uptime: calendar days (DST included), what counts as
down, degraded and maintenance, and the share."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from checks.result import Outcome
from incidents.model import Headline
from incidents.recurring_maintenance import Cron, Weekly, occurrences
from incidents.uptime import (
    DayAmounts,
    DayStat,
    DayState,
    Span,
    SpanState,
    Window,
    day_amounts,
    day_bounds,
    span_state,
    uptime,
)

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 6, 1), 24)],
)
def test_a_calendar_day_lasts_23_24_or_25_hours(day: date, hours: int) -> None:
    start, end = day_bounds(day, BERLIN)
    assert (end - start).total_seconds() == hours * 3600


def test_spans_split_at_local_midnight_and_maintenance_wins_over_down_over_degraded() -> None:
    spans = [
        Span(at("2026-03-28T23:00+01:00"), at("2026-03-29T01:00+01:00"), SpanState.DEGRADED),
        Span(at("2026-03-29T01:00+01:00"), at("2026-03-29T05:00+02:00"), SpanState.DOWN),
    ]
    windows = [Window(at("2026-03-29T04:00+02:00"), at("2026-03-29T06:00+02:00"))]
    found = day_amounts(
        spans=spans,
        windows=windows,
        start=at("2026-03-28T00:00+01:00"),
        end=at("2026-03-30T00:00+02:00"),
        tz=BERLIN,
    )
    assert found == {
        date(2026, 3, 28): DayAmounts(degraded_seconds=3600),
        # 01:00+01 to 04:00+02 is two hours on the day the clocks go forward.
        date(2026, 3, 29): DayAmounts(
            down_seconds=2 * 3600, degraded_seconds=3600, maintenance_seconds=2 * 3600
        ),
    }


def _headline(*, availability: bool, outcome: Outcome) -> Headline:
    return Headline(
        site_label="Shop", check="acme/shop/x", part="X", availability=availability, outcome=outcome
    )


def test_only_an_availability_outage_is_down() -> None:
    assert span_state(_headline(availability=True, outcome=Outcome.HTTP_5XX)) is SpanState.DOWN
    assert span_state(_headline(availability=True, outcome=Outcome.SLOW)) is SpanState.DEGRADED
    assert span_state(_headline(availability=False, outcome=Outcome.TIMEOUT)) is (
        SpanState.DEGRADED
    )
    assert span_state(None) is SpanState.DOWN


def _stat(*, observed: float, down: float = 0, maintenance: float = 0) -> DayStat:
    return DayStat(
        day=date(2026, 6, 1),
        probes=1,
        failures=0,
        observed_seconds=observed,
        down_seconds=down,
        degraded_seconds=0,
        maintenance_seconds=maintenance,
        incidents=0,
        worst=DayState.OPERATIONAL,
    )


def test_uptime_leaves_maintenance_out_of_the_time_counted() -> None:
    day = timedelta(days=1).total_seconds()
    stats = [_stat(observed=day, down=3600, maintenance=day / 2), _stat(observed=day)]
    assert uptime(stats) == pytest.approx(1 - 3600 / (1.5 * day))
    assert uptime([]) is None
    assert uptime([_stat(observed=day, maintenance=day)]) is None


@pytest.mark.parametrize(
    "recurrence",
    [Weekly.parse("sun 02:00-04:00"), Cron.parse("30 2 * * sun", timedelta(hours=2))],
    ids=str,
)
def test_occurrences_over_a_period_are_the_ones_the_desk_finds_in_force(
    recurrence: Weekly | Cron,
) -> None:
    # Over the DST weekends: what the rollups leave out is what paused the clocks. (A cron
    # start in the hour the clocks repeat is ambiguous; the desk and croniter's iteration
    # read it differently, so that night is left out for cron.)
    starts = [at("2026-03-27T00:00+01:00")]
    if isinstance(recurrence, Weekly):
        starts.append(at("2026-10-23T00:00+02:00"))
    for start in starts:
        end = start + timedelta(days=4)
        found = occurrences(recurrence, BERLIN, start=start, end=end)
        assert found
        minute = start
        while minute < end:
            in_force = any(s <= minute < e for s, e in recurrence.spans_around(minute, BERLIN))
            assert in_force == any(s <= minute < e for s, e in found), minute
            minute += timedelta(minutes=15)

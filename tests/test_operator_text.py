"""What operator commands print, as pure functions of the API's JSON, zones and `now`; the
incident argument every command takes; and which parts of the config they read."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitor.cli import incident_number
from monitor.config import ConfigError, OperatorSections, load_sections
from monitor.operator_cli import TOKEN_ENV, URL_ENV, OperatorContext, operator_zone
from monitor.operator_text import Zones, action_line, incident_details, queue_table, time_left
from monitor.serialize import iso

# Friday 4 December 2026, 10:00 UTC: 11:00 in Berlin (CET), 10:00 in London (GMT).
NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
ZONES = Zones(operator=BERLIN, clients={"acme": ZoneInfo("Europe/London")})
HOSTILE = "Down \x1b[2J\x1b]0;pwned\x07 now\u202e"


@pytest.mark.parametrize(
    ("given", "number"), [("INC-42", 42), ("inc-42", 42), ("42", 42), (" INC-7 ", 7)]
)
def test_an_incident_is_named_by_its_ref_or_its_number(given: str, number: int) -> None:
    assert incident_number(given) == number


@pytest.mark.parametrize("given", ["INC-", "INC-4x", "42a", "INC 42", "-1", "1" * 19])
def test_anything_else_is_refused_with_the_forms_that_work(given: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="write INC-42 or 42"):
        incident_number(given)


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        (NOW + timedelta(hours=1, minutes=20), "in 1 h 20 min"),
        (NOW - timedelta(minutes=25), "25 min overdue"),
        (NOW + timedelta(days=2, hours=3), "in 2 d 3 h"),
        (NOW + timedelta(seconds=30), "due now"),
        (NOW - timedelta(seconds=59), "due now"),
    ],
)
def test_time_left_reads_as_a_person_says_it(due: datetime, expected: str) -> None:
    assert time_left(due, now=NOW) == expected


def _incident(**changes: Any) -> dict[str, Any]:
    clocks = {
        "calendar": "business",
        "response_aim_at": None,
        "response_due_at": iso(NOW + timedelta(hours=1, minutes=20)),
        "responded_at": None,
        "acknowledged_by": None,
        "last_update_at": None,
        "next_update_due_at": None,
        "oncall_notified_at": iso(NOW),
        "paused_since": None,
        "paused_until": None,
        **changes.pop("clocks", {}),
    }
    return {
        "id": 42,
        "ref": "INC-42",
        "client": "acme",
        "site": "acme/shop",
        "title": "shop.acme.example is down",
        "severity": 1,
        "status": "open",
        "opened_at": iso(NOW - timedelta(minutes=30)),
        "resolved_at": None,
        "failing_checks": ["acme/shop/home"],
        "checks": ["acme/shop/home"],
        "clocks": clocks,
        **changes,
    }


def test_show_prints_title_clocks_in_both_zones_and_the_timeline() -> None:
    timeline = [
        {"at": iso(NOW - timedelta(minutes=30)), "kind": "opened", "message": "home: 500"},
        {"at": iso(NOW - timedelta(days=1)), "kind": "oncall_paged", "message": "paged"},
    ]
    text = incident_details(_incident(timeline=timeline), zones=ZONES, now=NOW)
    assert text.splitlines()[:2] == ["INC-42  Severity 1 (Critical)  open", _incident()["title"]]
    assert "opened        10:30 CET (client: 09:30 GMT)" in text
    assert "response due  12:20 CET (client: 11:20 GMT), in 1 h 20 min" in text
    assert "failing       acme/shop/home" in text
    # A time on another day than today carries its date.
    assert text.splitlines()[-2:] == [
        "  10:30 CET                 opened        home: 500",
        "  Thu 3 Dec 2026 11:00 CET  oncall paged  paged",
    ]


def test_show_strips_control_characters_a_target_sent() -> None:
    timeline = [{"at": iso(NOW), "kind": "check_failed", "message": f"HTTP 500 {HOSTILE}"}]
    incident = _incident(title=f"shop {HOSTILE}", timeline=timeline)
    text = incident_details(incident, zones=ZONES, now=NOW)
    assert not any(char in text for char in "\x1b\x07\u202e")
    assert "shop Down [2J ]0;pwned now" in text and "HTTP 500 Down [2J ]0;pwned now" in text


def test_show_of_a_paused_incident_says_so_instead_of_a_time_left() -> None:
    paused = {"paused_since": iso(NOW), "paused_until": iso(NOW + timedelta(hours=2))}
    text = incident_details(_incident(clocks=paused), zones=ZONES, now=NOW)
    assert "response due  12:20 CET (client: 11:20 GMT), paused" in text
    assert "paused        since 11:00 CET (client: 10:00 GMT) until 13:00 CET" in text


def test_show_of_a_resolved_incident_has_no_time_left() -> None:
    responded = {
        "responded_at": iso(NOW - timedelta(minutes=20)),
        "acknowledged_by": "alice",
        "next_update_due_at": iso(NOW + timedelta(hours=3)),
    }
    resolved = _incident(status="resolved", resolved_at=iso(NOW), clocks=responded)
    text = incident_details(resolved, zones=ZONES, now=NOW + timedelta(hours=5))
    assert "resolved      11:00 CET (client: 10:00 GMT)" in text
    assert "responded     10:40 CET (client: 09:40 GMT) by alice" in text
    assert " in " not in text and "overdue" not in text and "next update" not in text


def test_action_lines_name_the_ref_who_and_when_in_the_operators_zone() -> None:
    acked = _incident(clocks={"responded_at": iso(NOW), "acknowledged_by": "alice"})
    assert action_line("acknowledged", acked, by="alice", zones=ZONES) == (
        "INC-42 acknowledged by alice at 11:00 CET"
    )
    # Someone else was first: the line says who, not the one who typed the command.
    assert action_line("acknowledged", acked, by="bob", zones=ZONES) == (
        "INC-42 already acknowledged by alice at 11:00 CET"
    )
    updated = _incident(
        clocks={"last_update_at": iso(NOW), "next_update_due_at": iso(NOW + timedelta(hours=4))}
    )
    assert action_line("updated", updated, by="alice", zones=ZONES) == (
        "INC-42 updated by alice at 11:00 CET; next client update due 15:00 CET"
    )
    resolved = _incident(status="resolved", resolved_at=iso(NOW + timedelta(days=180)))
    assert action_line("resolved", resolved, by="carol\x1b[2J", zones=ZONES) == (
        "INC-42 resolved by carol [2J at 12:00 CEST"
    )


def test_the_queue_shows_local_times_and_the_time_left() -> None:
    overdue = _incident(clocks={"response_due_at": iso(NOW - timedelta(minutes=25))})
    paused = _incident(id=43, ref="INC-43", clocks={"paused_since": iso(NOW)})
    header, *rows = queue_table([_incident(), overdue, paused], zones=ZONES, now=NOW).splitlines()
    assert header.split()[:8] == [
        "ID",
        "SEV",
        "OPENED",
        "RESPONSE",
        "DUE",
        "CLIENT'S",
        "TIME",
        "LEFT",
    ]
    # Due at 12:20 in Berlin (the operator's zone) is 11:20 in London (the client's).
    assert rows[0].split()[:10] == [
        "INC-42", "1", "10:30", "CET", "12:20", "CET", "11:20", "GMT", "in", "1",
    ]  # fmt: skip
    assert "25 min overdue" in rows[1]
    assert "paused" in rows[2]


def test_the_queue_takes_the_clients_zone_from_the_api() -> None:
    # The operator's config knows no client "globex": the API's JSON says where it is.
    tokyo = _incident(client="globex", client_timezone="Asia/Tokyo")
    _, row = queue_table([tokyo], zones=ZONES, now=NOW).splitlines()
    assert row.split()[4:8] == ["12:20", "CET", "20:20", "JST"]
    unknown = _incident(client="globex", client_timezone=None)
    _, row = queue_table([unknown], zones=ZONES, now=NOW).splitlines()
    assert row.split()[4:7] == ["12:20", "CET", "-"]


def test_the_operators_zone_is_the_flag_then_tz_then_the_agencys() -> None:
    agency = "America/New_York"
    assert operator_zone("Asia/Tokyo", environ={"TZ": "Europe/Paris"}, agency=agency).key == (
        "Asia/Tokyo"
    )
    assert operator_zone(None, environ={"TZ": ":Europe/Paris"}, agency=agency).key == (
        "Europe/Paris"
    )
    # A POSIX rule in TZ names no zone we can look up: the agency's zone is used.
    assert operator_zone(None, environ={"TZ": "CET-1CEST"}, agency=agency).key == agency
    assert operator_zone(None, environ={}, agency=agency).key == agency
    with pytest.raises(ValueError, match="--tz: unknown time zone 'Mars/Olympus'"):
        operator_zone("Mars/Olympus", environ={}, agency=agency)


MONITOR_FILE = """\
server:
  host: 0.0.0.0
  port: 9999
agency:
  timezone: Europe/Berlin
notifications:
  smtp:
    host: mail.example
    password: ${SMTP_PASSWORD}
clients:
  - id: acme
    business_hours: {timezone: America/New_York}
    sites: [{id: shop, url: "${SHOP_URL}", checks: [{id: home, interval: 5 minutes}]}]
"""


def test_operator_sections_are_read_without_the_rest_of_the_files_variables(
    tmp_path: Path,
) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(MONITOR_FILE)
    sections = load_sections(path, OperatorSections, environ={})
    assert (sections.server.host, sections.server.port) == ("0.0.0.0", 9999)
    assert sections.agency.timezone == "Europe/Berlin"
    assert [(c.id, c.business_hours.timezone) for c in sections.clients] == [
        ("acme", "America/New_York")
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("port: 9999", "port: ${PORT}"), ":3: server.port: environment variable PORT is not set"),
        (("port: 9999", "port: many"), ":3: server.port: must be a valid integer"),
        (
            ("timezone: Europe/Berlin", "timezone: Mars"),
            ":5: agency.timezone: unknown time zone, use an IANA name such as Europe/Berlin "
            "(got 'Mars')",
        ),
        (
            ("America/New_York", "Nowhere"),
            ":12: clients[0].business_hours.timezone: unknown time zone, use an IANA name such "
            "as Europe/Berlin (got 'Nowhere')",
        ),
    ],
)
def test_problems_in_the_sections_read_are_reported_with_their_line(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(MONITOR_FILE.replace(*change))
    with pytest.raises(ConfigError) as caught:
        load_sections(path, OperatorSections, environ={})
    assert [str(p) for p in caught.value.problems] == [
        line for line in str(caught.value).splitlines()
    ]
    assert f"{path}{problem}" in str(caught.value), str(caught.value)
    assert "SMTP_PASSWORD" not in str(caught.value) and "interval" not in str(caught.value)


def _context(tmp_path: Path, **given: Any) -> OperatorContext:
    arguments: dict[str, Any] = {
        "config": None,
        "default_config": str(tmp_path / "monitor.yaml"),
        "url": None,
        "token": None,
        "tz": None,
        "environ": {},
        **given,
    }
    return OperatorContext.from_args(**arguments)


def test_the_monitor_is_found_from_the_flag_then_the_environment_then_the_config(
    tmp_path: Path,
) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("server: {host: '::', port: 9500}\n")
    environ = {URL_ENV: "http://monitor.internal:9464/", TOKEN_ENV: "from-env"}
    assert _context(tmp_path, config=str(mine)).url == "http://[::1]:9500"
    assert _context(tmp_path, config=str(mine), environ=environ).url == (
        "http://monitor.internal:9464"
    )
    flagged = _context(tmp_path, url="http://127.0.0.1:1", token="flag", environ=environ)
    assert (flagged.url, flagged.token) == ("http://127.0.0.1:1", "flag")
    assert _context(tmp_path, environ=environ).token == "from-env"
    # Without any of them (and no default file): where `monitor run` listens by default.
    assert _context(tmp_path).url == "http://127.0.0.1:9464"


def test_a_broken_default_config_matters_only_when_the_url_comes_from_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "monitor.yaml").write_text("server:\n  port: ${PORT_NOT_SET}\n")
    with pytest.raises(ConfigError, match="PORT_NOT_SET"):
        _context(tmp_path)
    assert _context(tmp_path, url="http://127.0.0.1:1").url == "http://127.0.0.1:1"
    # A file named with --config is the operator's choice: its problems are always told.
    with pytest.raises(ConfigError, match="PORT_NOT_SET"):
        _context(tmp_path, config=str(tmp_path / "monitor.yaml"), url="http://127.0.0.1:1")

"""Who is on call (`incidents.rotation`): tables of fixed instants across Europe/Berlin's two
DST changes of 2026 (29 March 02:00 -> 03:00, 25 October 03:00 -> 02:00), overrides, and the
config's errors."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from incidents.rotation import Rotation, on_call_at, parse_handover, scheduled_at
from monitor.cli import main
from tests.monitor_yaml import ONE_CLIENT

BERLIN = ZoneInfo("Europe/Berlin")

WEEKLY = Rotation(
    every="week", handover="mon 09:00", start="2026-03-02", people=["alice", "bob", "carol"]
)
DAILY = Rotation(every="day", handover="09:00", start="2026-10-24", people=["alice", "bob"])


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "person", "since", "until"),
    [
        # Mon 2 Mar 09:00 CET is 08:00Z: alice's first week.
        ("2026-03-02T08:00", "alice", "2026-03-02T08:00", "2026-03-09T08:00"),
        ("2026-03-02T07:59", "carol", "2026-02-23T08:00", "2026-03-02T08:00"),  # counts back
        ("2026-03-09T08:00", "bob", "2026-03-09T08:00", "2026-03-16T08:00"),
        # The week of the spring change: hand-over at 09:00 CEST, which is 07:00Z (167 h).
        ("2026-03-23T08:00", "alice", "2026-03-23T08:00", "2026-03-30T07:00"),
        ("2026-03-30T06:59", "alice", "2026-03-23T08:00", "2026-03-30T07:00"),
        ("2026-03-30T07:00", "bob", "2026-03-30T07:00", "2026-04-06T07:00"),
        # The week of the autumn change: 09:00 CEST (07:00Z) to 09:00 CET (08:00Z), 169 h.
        ("2026-10-19T07:00", "alice", "2026-10-19T07:00", "2026-10-26T08:00"),
        ("2026-10-26T07:00", "alice", "2026-10-19T07:00", "2026-10-26T08:00"),  # 08:00 CET
        ("2026-10-26T07:59", "alice", "2026-10-19T07:00", "2026-10-26T08:00"),
        ("2026-10-26T08:00", "bob", "2026-10-26T08:00", "2026-11-02T08:00"),
    ],
)
def test_weekly_hands_over_at_nine_local_across_both_dst_changes(
    at: str, person: str, since: str, until: str
) -> None:
    shift = on_call_at(WEEKLY, utc(at), zone=BERLIN)
    assert (shift.person, shift.since, shift.until) == (person, utc(since), utc(until))
    assert shift.since.astimezone(BERLIN).strftime("%a %H:%M") == "Mon 09:00"
    assert not shift.override


@pytest.mark.parametrize(
    ("at", "person"),
    [
        ("2026-10-24T06:59", "bob"),  # Sat 08:59 CEST: the day before the start, counted back
        ("2026-10-24T07:00", "alice"),  # Sat 09:00 CEST
        ("2026-10-25T07:00", "alice"),  # Sun 08:00 CET: the clocks went back at 03:00
        ("2026-10-25T07:59", "alice"),
        ("2026-10-25T08:00", "bob"),  # Sun 09:00 CET
        ("2026-10-26T08:00", "alice"),
    ],
)
def test_daily_hands_over_at_nine_local_on_the_night_the_clocks_go_back(
    at: str, person: str
) -> None:
    assert on_call_at(DAILY, utc(at), zone=BERLIN).person == person


def test_a_handover_time_the_clocks_skip_happens_after_the_gap() -> None:
    night = Rotation(every="day", handover="02:30", start="2026-03-27", people=["alice", "bob"])
    # 29 March: 02:30 does not exist; read with the winter offset it is 03:30 CEST (01:30Z).
    shift = scheduled_at(night, utc("2026-03-29T01:30"), zone=BERLIN)
    assert (shift.person, shift.since) == ("alice", utc("2026-03-29T01:30"))
    assert scheduled_at(night, utc("2026-03-29T01:29"), zone=BERLIN).person == "bob"
    assert shift.until - shift.since == timedelta(hours=23)  # 03:30 CEST to 02:30 CEST next


def test_an_override_swaps_the_person_for_its_span_in_local_time() -> None:
    holiday = WEEKLY.model_copy(
        update={
            "overrides": [
                Rotation.model_validate(
                    {
                        "start": "2026-01-05",
                        "people": ["x"],
                        "overrides": [
                            {
                                "from": "2026-12-24T09:00",
                                "until": "2026-12-27T09:00",
                                "person": "dave",
                            }
                        ],
                    }
                ).overrides[0]
            ]
        }
    )
    before = on_call_at(holiday, utc("2026-12-24T07:59"), zone=BERLIN)
    during = on_call_at(holiday, utc("2026-12-24T08:00"), zone=BERLIN)  # 09:00 CET
    after = on_call_at(holiday, utc("2026-12-27T08:00"), zone=BERLIN)
    assert before.person != "dave" and not before.override
    assert (during.person, during.since, during.until, during.override) == (
        "dave",
        utc("2026-12-24T08:00"),
        utc("2026-12-27T08:00"),
        True,
    )
    assert after.person == scheduled_at(holiday, utc("2026-12-27T08:00"), zone=BERLIN).person


def test_an_override_with_an_offset_is_taken_as_written() -> None:
    rotation = Rotation.model_validate(
        {
            "start": "2026-03-02",
            "people": ["alice"],
            "overrides": [
                {"from": "2026-06-01T00:00Z", "until": "2026-06-01T06:00Z", "person": "bob"}
            ],
        }
    )
    assert on_call_at(rotation, utc("2026-06-01T05:59"), zone=BERLIN).person == "bob"
    assert on_call_at(rotation, utc("2026-06-01T06:00"), zone=BERLIN).person == "alice"


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        ({"every": "week", "handover": "09:00"}, "write e.g. `mon 09:00`"),
        ({"every": "day", "handover": "mon 09:00"}, "write only the time"),
        ({"handover": "monday 9am"}, "such as 09:00 (daily) or mon 09:00 (weekly)"),
        ({"handover": "mon 25:00"}, "00:00 to 23:59"),
        ({"handover": "mox 09:00"}, "the day must be one of mon"),
        ({"people": []}, "at least 1 item"),
        (
            {
                "overrides": [
                    {"from": "2026-01-02T09:00", "until": "2026-01-01T09:00", "person": "a"}
                ]
            },
            "until must be after from",
        ),
    ],
)
def test_config_errors_say_how_to_write_it(data: dict[str, Any], phrase: str) -> None:
    with pytest.raises(ValidationError, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        Rotation.model_validate({"start": "2026-03-02", "people": ["alice"], **data})


def test_parse_handover() -> None:
    assert parse_handover("Mon 09:00")[0] == 0
    assert parse_handover("sun 23:59")[0] == 6
    assert parse_handover("07:30")[0] is None


# --- `monitor oncall --at` ------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
ONCALL_CONFIG = (
    """
agency: {timezone: Europe/Berlin}
people:
  - {name: alice, email: alice@agency.example}
  - {name: bob, email: bob@agency.example}
  - {name: carol, email: carol@agency.example}
  - {name: dave, email: dave@agency.example}
notifications:
  smtp: {host: smtp.agency.example, username: monitor, password: "${UNSET_SMTP_PASSWORD}"}
oncall:
  # Secrets the operator's shell does not have: `monitor oncall` does not read them.
  webhook: {url: "https://pager.example/hook", headers: {Authorization: "${UNSET_PAGER}"}}
  rotation:
    every: week
    handover: mon 09:00
    start: 2026-03-02
    people: [alice, bob, carol]
    overrides:
      - {from: "2026-12-24T09:00", until: "2026-12-27T09:00", person: dave}
"""
    + ONE_CLIENT
)


def oncall_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "monitor.yaml"
    config.write_text(ONCALL_CONFIG)
    return subprocess.run(
        [sys.executable, "-m", "monitor", "oncall", "--config", str(config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("at", "line"),
    [
        # One minute before 09:00 CEST on the Monday after the spring change, then at 09:00.
        (
            "2026-03-30T06:59:00Z",
            "alice is on call until Mon 30 Mar 2026 09:00 CEST (since Mon 23 Mar 2026 09:00 CET)",
        ),
        (
            "2026-03-30T09:00:00+02:00",
            "bob is on call until Mon 6 Apr 2026 09:00 CEST (since Mon 30 Mar 2026 09:00 CEST)",
        ),
        # The Monday after the autumn change: 08:00Z is 09:00 CET.
        (
            "2026-10-26T07:59:00Z",
            "alice is on call until Mon 26 Oct 2026 09:00 CET (since Mon 19 Oct 2026 09:00 CEST)",
        ),
        (
            "2026-10-26T08:00:00Z",
            "bob is on call until Mon 2 Nov 2026 09:00 CET (since Mon 26 Oct 2026 09:00 CET)",
        ),
        (
            "2026-12-25T12:00:00Z",
            "dave is on call (override) until Sun 27 Dec 2026 09:00 CET "
            "(since Thu 24 Dec 2026 09:00 CET)",
        ),
    ],
)
def test_monitor_oncall_at_says_who_and_until_when_in_local_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], at: str, line: str
) -> None:
    # In-process (the command's own parser and handler); the test below runs the real process.
    config = tmp_path / "monitor.yaml"
    config.write_text(ONCALL_CONFIG)
    code = main(["oncall", "--config", str(config), "--at", at])
    assert (code, capsys.readouterr().out.strip()) == (0, line)


def test_monitor_oncall_json_and_a_bad_instant(tmp_path: Path) -> None:
    done = oncall_cli(tmp_path, "--at", "2026-03-30T07:00:00Z", "--json")
    assert json.loads(done.stdout) == {
        "person": "bob",
        "email": "bob@agency.example",
        "since": "2026-03-30T07:00:00Z",
        "until": "2026-04-06T07:00:00Z",
        "override": False,
        "timezone": "Europe/Berlin",
    }
    naive = oncall_cli(tmp_path, "--at", "2026-03-30T09:00")
    assert naive.returncode == 2
    assert "--at needs a time zone" in naive.stderr

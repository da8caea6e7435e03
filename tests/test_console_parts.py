"""The console's parts on their own: password hashes, the operators' config, the sign-in
limiter, session cookies against the clock, the outbox listing and retry (SQLite and
PostgreSQL), severity changed by hand, and `monitor hash-password`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bcrypt
import pytest

from checks.result import Evidence, Outcome, ProbeResult
from incidents.connectivity import ConnectivityLost
from incidents.connectivity_notices import connectivity_lost
from incidents.flow import change_severity
from incidents.messages import MessageContext, compose_email
from incidents.model import CheckState, Incident, IncidentStatus, TimelineKind, Transition
from incidents.outgoing import MessageKind
from incidents.severity import Severity
from monitor.clients import client_contexts, message_context
from monitor.config import ConfigError, load_config_text
from monitor.passwords import hash_password, looks_like_hash, verify_password
from monitor.store import OutboxStatus, Store
from monitor.web.console.sessions import SessionCodec, SignInLimiter
from monitor.web.console.views import sparkline
from tests.helpers import ShiftedClock

T0 = datetime(2026, 12, 4, 10, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
GOOD_HASH = hash_password("s3cret pass phrase")


def test_argon2_and_bcrypt_hashes_verify_and_anything_else_is_refused() -> None:
    assert GOOD_HASH.startswith("$argon2id$") and looks_like_hash(GOOD_HASH)
    assert verify_password("s3cret pass phrase", GOOD_HASH)
    assert not verify_password("s3cret pass phrasE", GOOD_HASH)
    crypted = bcrypt.hashpw(b"hunter22", bcrypt.gensalt(rounds=4)).decode()
    assert looks_like_hash(crypted)
    assert verify_password("hunter22", crypted) and not verify_password("hunter23", crypted)
    # No such operator: a dummy hash is checked (same time), and the answer is no.
    assert not verify_password("s3cret pass phrase", None)
    assert not verify_password("x" * 5000, GOOD_HASH)
    for bad in ("s3cret pass phrase", "$argon2id$nope", "$2b$04$short", ""):
        assert not looks_like_hash(bad)


def _config(operators: str) -> str:
    return f"""
clients:
  - id: acme
    sites:
      - id: shop
        url: https://shop.acme.example
        checks: [{{id: home, url: /}}]
{operators}
"""


def test_operators_need_a_hash_and_names_of_their_own() -> None:
    text = _config(
        """operators:
  - name: Alice
    email: alice@agency.example
    password_hash: hunter2
console:
  secret: ${CONSOLE_SECRET}
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, filename="monitor.yaml", environ={"CONSOLE_SECRET": "short"})
    found = {(p.line, p.path): p.message for p in caught.value.problems}
    hash_problem = found[(11, "operators[0].password_hash")]
    assert "must be an argon2 or bcrypt hash" in hash_problem
    assert "monitor hash-password" in hash_problem
    assert "hunter2" not in str(caught.value)  # a password pasted by mistake is not echoed
    assert "at least 32 characters" in found[(13, "console.secret")]
    assert "short" not in str(caught.value)
    assert "monitor.yaml:11:" in str(caught.value)

    twice = _config(
        f"""operators:
  - {{name: Bob, email: bob@agency.example, password_hash: "{GOOD_HASH}"}}
  - {{name: bob, email: bob2@agency.example, password_hash: "{GOOD_HASH}"}}
"""
    )
    with pytest.raises(ConfigError, match="'bob' is listed twice"):
        load_config_text(twice, filename="monitor.yaml", environ={})


def test_a_valid_console_section_loads() -> None:
    text = _config(
        f"""operators:
  - {{name: Alice, email: alice@agency.example, password_hash: "{GOOD_HASH}",
      timezone: Asia/Tokyo}}
console:
  secret: ${{CONSOLE_SECRET}}
  session_lifetime: 2h
  public_url: https://monitor.agency.example/
"""
    )
    config = load_config_text(text, environ={"CONSOLE_SECRET": "k" * 40})
    assert config.operators[0].timezone == "Asia/Tokyo"
    assert config.console.session_lifetime == timedelta(hours=2)
    assert config.console.public_url == "https://monitor.agency.example"
    assert config.console.secret is not None
    assert "k" * 40 not in repr(config.console)  # a secret never prints


def test_oncall_mails_link_the_console_page_unless_a_dashboard_is_set() -> None:
    operators = f"""operators:
  - {{name: Alice, email: alice@agency.example, password_hash: "{GOOD_HASH}"}}
console:
  public_url: https://monitor.agency.example
oncall:
  emails: [oncall@agency.example]
"""
    config = load_config_text(_config(operators))
    ctx = message_context(config)
    assert ctx.dashboard_url == "https://monitor.agency.example/ui"
    mail = compose_email(
        MessageKind.PAGE,
        incident=_incident(Severity.CRITICAL),
        client=client_contexts(config)["acme"].info,
        ctx=ctx,
        now=T0,
        first_in_thread=True,
    )
    assert "https://monitor.agency.example/ui/incidents/7" in mail.text
    dashboard = _config(operators + "notifications:\n  dashboard_url: https://grafana.example\n")
    assert message_context(load_config_text(dashboard)).dashboard_url == "https://grafana.example"
    assert message_context(load_config_text(_config(""))).dashboard_url is None


def test_the_limiter_counts_failures_per_key_within_the_window() -> None:
    clock = ShiftedClock(T0)
    limiter = SignInLimiter(attempts=2, window=timedelta(minutes=15), clock=clock)
    limiter.failed("ip:1", "name:alice")
    assert limiter.retry_after("ip:1", "name:alice") == 0
    limiter.failed("ip:2", "name:alice")
    # Alice's name is locked from any address; address 1 alone may still try other names.
    assert limiter.retry_after("ip:3", "name:alice") > 14 * 60
    assert limiter.retry_after("ip:1", "name:bob") == 0
    limiter.succeeded("name:alice")
    assert limiter.retry_after("ip:3", "name:alice") == 0
    limiter.failed("ip:4")
    limiter.failed("ip:4")
    assert limiter.retry_after("ip:4") > 0
    limiter.take_back("ip:4")
    assert limiter.retry_after("ip:4") == 0


def test_sessions_are_signed_and_end_with_their_lifetime() -> None:
    clock = ShiftedClock(T0)
    codec = SessionCodec(secret="s" * 32, lifetime=timedelta(hours=1), clock=clock)
    cookie, session = codec.issue("Alice")
    assert codec.read(cookie) == session and len(session.csrf) >= 40
    other = SessionCodec(secret="t" * 32, lifetime=timedelta(hours=1), clock=clock)
    assert other.read(cookie) is None  # another key (another monitor)
    assert codec.read(cookie + "x") is None and codec.read("") is None
    form_cookie, token = codec.sign_in_token()
    assert codec.sign_in_token_ok(form_cookie, token)
    assert not codec.sign_in_token_ok(form_cookie, token[:-1] + "?")
    clock.advance(timedelta(minutes=61))
    assert codec.read(cookie) is None
    assert not codec.sign_in_token_ok(form_cookie, token)


def test_the_sparkline_draws_latencies_left_to_right_and_marks_failures() -> None:
    spark = sparkline([(0.1, True), (0.3, True), (None, False), (0.2, False)])
    assert spark is not None
    xs = [float(point.split(",")[0]) for point in spark.points.split()]
    assert xs == sorted(xs) and len(xs) == 3
    assert len(spark.failures) == 2
    assert "100 to 300 ms, 2 failed" in spark.label
    assert sparkline([(None, False)]) is None


def _incident(severity: Severity) -> Incident:
    return Incident(
        id=7,
        client="acme",
        site="acme/shop",
        title="Shop is slow",
        severity=severity,
        status=IncidentStatus.OPEN,
        opened_at=T0,
        oncall_notified_at=T0,
    )


def test_severity_by_hand_escalates_with_paging_and_lowers_without() -> None:
    config = load_config_text(_config(""))
    sla = client_contexts(config)["acme"].sla
    now = T0 + timedelta(minutes=5)
    up = change_severity(
        _incident(Severity.MAJOR), now=now, by="Alice", severity=Severity.CRITICAL, sla=sla
    )
    assert up.incident.severity is Severity.CRITICAL
    assert [e.kind for e in up.timeline] == [TimelineKind.ESCALATED, TimelineKind.ONCALL_PAGED]
    assert up.timeline[0].evidence == {"by": "Alice", "from": 2}
    down = change_severity(up.incident, now=now, by="Bob", severity=Severity.MAJOR, sla=sla)
    assert [e.kind for e in down.timeline] == [TimelineKind.DEESCALATED]
    # The due times already promised stay.
    assert down.incident.response_due_at == up.incident.response_due_at
    with pytest.raises(ValueError, match="already"):
        change_severity(down.incident, now=now, by="Bob", severity=Severity.MAJOR, sla=sla)
    with pytest.raises(ValueError, match="say who acts"):
        change_severity(down.incident, now=now, by=" ", severity=Severity.MODERATE, sla=sla)


async def test_the_outbox_lists_by_state_and_retries_failed_items(store: Store) -> None:
    ctx = MessageContext(sender_domain="agency.example", oncall=("oncall@agency.example",))
    notice = connectivity_lost(ConnectivityLost(since=T0, canaries=("uplink",)), ctx=ctx)
    assert await store.queue_notice([notice], now=T0)
    [item] = await store.list_outbox(statuses=[OutboxStatus.PENDING])
    await store.mark_failed(item.id, error="550 no such user", at=T0)
    assert await store.list_outbox(statuses=[OutboxStatus.PENDING]) == []
    [failed] = await store.list_outbox(statuses=[OutboxStatus.FAILED])
    assert failed.attempts == 1 and failed.last_error == "550 no such user"
    later = T0 + timedelta(minutes=5)
    retried = await store.retry_outbox(item.id, now=later)
    assert retried is not None and retried.status is OutboxStatus.PENDING
    assert retried.next_attempt_at == later and retried.attempts == 1
    [due] = await store.due_outbox(now=later)
    assert due.id == item.id
    await store.mark_sent(item.id, at=later)
    assert await store.retry_outbox(item.id, now=later) is None  # sent stays sent
    assert await store.retry_outbox(999_999, now=later) is None


async def test_recent_results_of_many_checks_in_one_query(store: Store) -> None:
    keys = ["acme/shop/home", "acme/shop/cart", "acme/blog/home"]
    for minute in range(5):
        for index, key in enumerate(keys[:2]):
            at = T0 + timedelta(minutes=minute)
            result = ProbeResult(
                outcome=Outcome.OK if minute % 2 == 0 else Outcome.HTTP_5XX,
                started_at=at,
                latency=0.1 * (index + 1) + minute / 100,
                evidence=Evidence(url=f"https://{key}"),
            )
            await store.record(
                check_key=key,
                result=result,
                transition=Transition(state=CheckState(key=key), incident=None),
                previous_state=CheckState(key=key),
            )
    found = await store.recent_results_of(keys, limit=3)
    assert sorted(found) == sorted(keys[:2])  # the blog has no history
    for key in keys[:2]:
        assert found[key] == (await store.recent_results(key, limit=3))
        assert [row.at for row in found[key]] == [T0 + timedelta(minutes=m) for m in (4, 3, 2)]
    assert await store.recent_results_of([], limit=3) == {}


async def test_hash_password_reads_stdin_never_argv() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "hash-password",
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(b"typed at a prompt\n"), 30)
    assert process.returncode == 0, err
    printed = out.decode().strip()
    assert looks_like_hash(printed) and verify_password("typed at a prompt", printed)
    assert "typed at a prompt" not in out.decode() + err.decode()
    empty = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "hash-password", "pw-in-argv",
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(empty.communicate(b"\n"), 30)
    assert empty.returncode == 2 and out == b""
    assert b"unrecognized arguments: pw-in-argv" in err

"""The incident engine, driven by hand-built probe results at fixed times."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks.result import Evidence, Outcome, ProbeResult
from incidents.engine import apply_result, confirmed_severity, describe
from incidents.model import (
    CheckRef,
    CheckState,
    Headline,
    Incident,
    IncidentStatus,
    TimelineKind,
    Transition,
)
from incidents.severity import Severity, SeverityPolicy

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)  # a Monday morning
POLICY = SeverityPolicy()

HOME = CheckRef(
    key="acme/shop/home",
    client="acme",
    site="acme/shop",
    site_label="shop.acme.example",
    slow_after=5.0,
)
# A part of the site, not its availability: its failures are about the cart.
CART = replace(HOME, key="acme/shop/cart", name="Cart", availability=False)
BLOG = CheckRef(key="acme/blog/home", client="acme", site="acme/blog", site_label="blog.acme")

S1, S2, S3 = Severity.CRITICAL, Severity.MAJOR, Severity.MODERATE


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def probe(
    outcome: Outcome,
    *,
    status: int | None = None,
    latency: float | None = 0.12,
    error: str | None = None,
    step: str | None = None,
) -> ProbeResult:
    return ProbeResult(
        outcome=outcome,
        started_at=T0,
        latency=latency,
        evidence=Evidence(url="https://shop.acme.example/", status=status, error=error, step=step),
    )


OK = probe(Outcome.OK, status=200)
E500 = probe(Outcome.HTTP_5XX, status=500)
SLOW = probe(Outcome.SLOW, status=200, latency=7.25)
TIMEOUT = probe(Outcome.TIMEOUT, latency=None, error="no answer within 10s")
REFUSED = probe(Outcome.CONNECTION_ERROR, latency=None, error="connection refused")
MISMATCH = probe(Outcome.CONTENT_MISMATCH, status=200, error="missing text 'Add to cart'")
E404 = probe(Outcome.UNEXPECTED_STATUS, status=404)


@dataclass
class Site:
    """Plays the store's part for one site: keeps check states, the open incident, and ids."""

    states: dict[str, CheckState] = field(default_factory=dict)
    incident: Incident | None = None
    incidents: list[Incident] = field(default_factory=list)  # every incident ever, by id - 1
    minute: int = 0

    def feed(
        self, check: CheckRef, result: ProbeResult, *, check_severity: Severity | None = None
    ) -> Transition:
        severity = (
            None
            if result.ok
            else POLICY.severity_for(result.outcome, check_severity=check_severity)
        )
        self.minute += 1
        transition = apply_result(
            now=at(self.minute),
            check=check,
            result=result,
            severity=severity,
            state=self.states.get(check.key, CheckState(key=check.key)),
            incident=self.incident,
        )
        self.states[check.key] = transition.state
        incident = transition.incident
        if incident is not None and incident.id is None:
            incident = replace(incident, id=len(self.incidents) + 1)
            self.incidents.append(incident)
        elif incident is not None and incident.id is not None:
            self.incidents[incident.id - 1] = incident
        self.incident = incident if incident is not None and incident.is_open else None
        return transition

    def feed_all(self, check: CheckRef, results: list[ProbeResult]) -> list[Transition]:
        return [self.feed(check, result) for result in results]


def kinds(transition: Transition) -> list[TimelineKind]:
    return [entry.kind for entry in transition.timeline]


# --- opening ------------------------------------------------------------------------------

OPENING_CASES = [
    # (id, failures_to_open, results, index of the result that opens or None, severity, title)
    ("500 x3 opens at the third", 3, [E500] * 3, 2, S1, "shop.acme.example is down"),
    ("two 500s then ok open nothing", 3, [E500, E500, OK], None, None, None),
    ("flapping never opens", 3, [E500, OK] * 6, None, None, None),
    ("flapping in pairs never opens", 3, [E500, E500, OK] * 4, None, None, None),
    ("failures_to_open=1 opens at once", 1, [E500], 0, S1, "shop.acme.example is down"),
    ("timeout is down", 3, [TIMEOUT] * 3, 2, S1, "shop.acme.example is down"),
    ("refused is down", 2, [REFUSED] * 2, 1, S1, "shop.acme.example is down"),
    ("404 is down", 3, [E404] * 3, 2, S1, "shop.acme.example is down"),
    (
        "slow x3 is slow, Sev2",
        3,
        [SLOW] * 3,
        2,
        S2,
        "shop.acme.example: pages load slowly (7.2 s, target 5 s)",
    ),
    ("mixed slow and 500 is Sev2", 3, [SLOW, E500, E500], 2, S2, "shop.acme.example is down"),
    (
        "500, 500, slow is Sev2",
        3,
        [E500, E500, SLOW],
        2,
        S2,
        "shop.acme.example: pages load slowly (7.2 s, target 5 s)",
    ),
    (
        "content mismatch names the check",
        3,
        [MISMATCH] * 3,
        2,
        S2,
        "shop.acme.example: Home does not show what it should",
    ),
    ("ok after ok opens nothing", 3, [OK] * 5, None, None, None),
    ("run restarts after an ok", 3, [E500, E500, OK, E500, E500, E500], 5, S1, None),
]


@pytest.mark.parametrize(
    ("failures_to_open", "results", "opens_at", "severity", "title"),
    [case[1:] for case in OPENING_CASES],
    ids=[case[0] for case in OPENING_CASES],
)
def test_an_incident_opens_exactly_when_failures_to_open_failures_in_a_row(
    failures_to_open: int,
    results: list[ProbeResult],
    opens_at: int | None,
    severity: Severity | None,
    title: str | None,
) -> None:
    check = replace(HOME, failures_to_open=failures_to_open)
    site = Site()
    transitions = site.feed_all(check, results)

    opened = [i for i, t in enumerate(transitions) if TimelineKind.OPENED in kinds(t)]
    assert opened == ([] if opens_at is None else [opens_at])
    for i, transition in enumerate(transitions):
        assert transition.incident_changed == (i == opens_at)
    if opens_at is None:
        assert site.incidents == []
        assert not site.states[check.key].failing
        return
    incident = transitions[opens_at].incident
    assert incident is not None
    assert incident.severity == severity
    assert transitions[opens_at].state.severity == severity
    if title is not None:
        assert incident.title == title


def test_opening_fills_every_field_of_the_incident_and_its_timeline_entry() -> None:
    site = Site()
    *_, third = site.feed_all(HOME, [E500, E500, E500])

    assert third.incident == Incident(
        id=None,
        client="acme",
        site="acme/shop",
        title="shop.acme.example is down",
        severity=S1,
        status=IncidentStatus.OPEN,
        opened_at=at(3),
        failing_checks=frozenset({"acme/shop/home"}),
        checks=frozenset({"acme/shop/home"}),
        headline=Headline(
            site_label="shop.acme.example",
            check="acme/shop/home",
            part="Home",
            availability=True,
            outcome=Outcome.HTTP_5XX,
            status=500,
        ),
        failing_since=at(1),  # the first of the three failures, before the confirmation
    )
    (entry,) = third.timeline
    assert entry.kind is TimelineKind.OPENED
    assert entry.at == at(3)
    assert (
        entry.message == "acme/shop/home failed: http_5xx (HTTP 500) after 3 consecutive failures"
    )
    assert entry.check == "acme/shop/home"
    assert entry.outcome is Outcome.HTTP_5XX
    assert entry.severity is S1
    assert entry.evidence == E500.evidence.to_dict()
    assert third.state == CheckState(
        key="acme/shop/home",
        recent=(S1, S1, S1),
        successes=0,
        failing=True,
        severity=S1,
        last_outcome=Outcome.HTTP_5XX,
        last_result_at=at(3),
        since=at(1),
    )


def test_a_single_failure_message_does_not_say_consecutive() -> None:
    site = Site()
    (transition,) = site.feed_all(replace(HOME, failures_to_open=1), [TIMEOUT])
    assert transition.timeline[0].message == (
        "acme/shop/home failed: timeout (no answer within 10s) after 1 failure"
    )


def test_check_severity_replaces_the_policy() -> None:
    site = Site()
    admin = replace(HOME, key="acme/shop/admin")
    for _ in range(3):
        last = site.feed(admin, E500, check_severity=S2)
    assert last.incident is not None
    assert last.incident.severity is S2
    assert last.incident.title == "shop.acme.example is down"


# --- recovery -----------------------------------------------------------------------------


def test_two_successes_recover_the_check_and_resolve_the_incident() -> None:
    site = Site()
    site.feed_all(HOME, [E500] * 3)
    first_ok, second_ok = site.feed_all(HOME, [OK, OK])

    assert first_ok.timeline == ()
    assert not first_ok.incident_changed
    assert first_ok.state.failing
    assert first_ok.incident is not None and first_ok.incident.is_open

    assert kinds(second_ok) == [TimelineKind.CHECK_RECOVERED, TimelineKind.RESOLVED]
    recovered, resolved = second_ok.timeline
    assert (
        recovered.message == "acme/shop/home recovered: ok (HTTP 200) after 2 consecutive successes"
    )
    assert recovered.evidence == OK.evidence.to_dict()
    assert recovered.severity is S1
    assert resolved.message == "resolved: every check of shop.acme.example passes again"
    assert second_ok.incident_changed
    incident = second_ok.incident
    assert incident is not None
    assert incident.status is IncidentStatus.RESOLVED
    assert incident.resolved_at == at(5)
    assert incident.failing_checks == frozenset()
    assert incident.checks == frozenset({HOME.key})
    assert incident.severity is S1  # resolution keeps the severity it reached
    assert not second_ok.state.failing
    assert second_ok.state.severity is None


def test_a_success_between_failures_does_not_recover_a_failing_check() -> None:
    site = Site()
    site.feed_all(HOME, [E500] * 3)
    transitions = site.feed_all(HOME, [OK, E500, OK, E500, OK])
    assert all(t.timeline == () for t in transitions)
    assert site.incident is not None and site.incident.failing_checks == {HOME.key}
    assert kinds(site.feed(HOME, OK)) == [TimelineKind.CHECK_RECOVERED, TimelineKind.RESOLVED]


def test_successes_to_resolve_of_one_resolves_on_the_first_success() -> None:
    site = Site()
    check = replace(HOME, successes_to_resolve=1)
    site.feed_all(check, [E500] * 3)
    last = site.feed(check, OK)
    assert kinds(last) == [TimelineKind.CHECK_RECOVERED, TimelineKind.RESOLVED]
    assert last.timeline[0].message.endswith("after 1 success")


def test_two_failing_checks_make_one_incident_that_resolves_when_both_recovered() -> None:
    site = Site()
    site.feed_all(HOME, [E500] * 3)
    cart = site.feed_all(CART, [E500] * 3)

    assert kinds(cart[-1]) == [TimelineKind.CHECK_FAILED]
    assert cart[-1].timeline[0].check == CART.key
    assert len(site.incidents) == 1
    assert site.incident is not None
    assert site.incident.failing_checks == {HOME.key, CART.key}
    assert site.incident.severity is S1  # same severity: attached, not escalated

    home_back = site.feed_all(HOME, [OK, OK])
    assert kinds(home_back[-1]) == [TimelineKind.CHECK_RECOVERED]
    assert site.incident is not None and site.incident.failing_checks == {CART.key}

    cart_back = site.feed_all(CART, [OK, OK])
    assert kinds(cart_back[-1]) == [TimelineKind.CHECK_RECOVERED, TimelineKind.RESOLVED]
    assert site.incident is None
    assert len(site.incidents) == 1
    assert site.incidents[0].status is IncidentStatus.RESOLVED
    assert site.incidents[0].checks == {HOME.key, CART.key}


def test_a_resolved_incident_is_never_reopened() -> None:
    site = Site()
    site.feed_all(HOME, [E500, E500, E500, OK, OK])
    first = site.incidents[0]
    again = site.feed_all(HOME, [E500] * 3)

    assert kinds(again[-1]) == [TimelineKind.OPENED]
    assert again[-1].incident is not None
    assert again[-1].incident.id is None  # a new incident for the store to insert
    assert again[-1].incident.opened_at == at(8)
    assert site.incidents[0] == first
    assert len(site.incidents) == 2


def test_a_check_of_another_site_does_not_touch_this_sites_incident() -> None:
    site, blog = Site(), Site()
    site.feed_all(HOME, [E500] * 3)
    blog.feed_all(BLOG, [E500] * 3)
    assert site.incident is not None and blog.incident is not None
    assert site.incident.site == "acme/shop" and blog.incident.site == "acme/blog"


# --- escalation ---------------------------------------------------------------------------


def test_slow_then_a_second_check_down_escalates_the_same_incident() -> None:
    site = Site()
    slow = site.feed_all(HOME, [SLOW] * 3)
    assert slow[-1].incident is not None
    assert slow[-1].incident.severity is S2
    assert slow[-1].incident.title == "shop.acme.example: pages load slowly (7.2 s, target 5 s)"
    assert slow[-1].timeline[0].message == (
        "acme/shop/home failed: slow (HTTP 200, 7.2 s) after 3 consecutive failures"
    )

    down = site.feed_all(CART, [E500] * 3)
    assert [t.timeline for t in down[:2]] == [(), ()]
    assert kinds(down[-1]) == [TimelineKind.CHECK_FAILED, TimelineKind.ESCALATED]
    escalated = down[-1].timeline[1]
    assert (
        escalated.message
        == "escalated from Severity 2 to Severity 1: acme/shop/cart http_5xx (HTTP 500); "
        "title now: shop.acme.example: Cart unreachable (HTTP 500)"
    )
    assert escalated.severity is S1
    assert escalated.evidence == E500.evidence.to_dict()
    incident = down[-1].incident
    assert incident is not None
    assert incident.id == 1  # the store's id survives: same incident
    assert incident.severity is S1
    # The cart is a part of the site: its 500 escalates, but the site is not "down".
    assert incident.title == "shop.acme.example: Cart unreachable (HTTP 500)"
    assert len(site.incidents) == 1


def test_same_check_slow_then_5xx_escalates_only_after_failures_to_open_5xx() -> None:
    site = Site()
    site.feed_all(HOME, [SLOW] * 3)
    first, second, third = site.feed_all(HOME, [E500] * 3)

    for transition in (first, second):
        assert transition.timeline == ()
        assert not transition.incident_changed
        assert transition.state.severity is S2
    assert kinds(third) == [TimelineKind.ESCALATED]
    assert third.incident_changed
    assert third.state.severity is S1
    assert third.incident is not None
    assert (third.incident.severity, third.incident.title) == (S1, "shop.acme.example is down")


def test_incident_severity_never_decreases_while_the_check_severity_does() -> None:
    site = Site()
    site.feed_all(HOME, [E500] * 3)
    slower = site.feed_all(HOME, [SLOW] * 3)
    assert all(t.timeline == () and not t.incident_changed for t in slower)
    assert slower[-1].state.severity is S2
    assert site.incident is not None and site.incident.severity is S1
    # Worse again: the incident is already Severity 1, so nothing to record.
    again = site.feed_all(HOME, [E500] * 3)
    assert all(t.timeline == () for t in again)
    assert again[-1].state.severity is S1


def test_a_less_severe_second_check_attaches_without_escalating() -> None:
    site = Site()
    site.feed_all(HOME, [E500] * 3)
    last = site.feed_all(CART, [SLOW] * 3)[-1]
    assert kinds(last) == [TimelineKind.CHECK_FAILED]
    assert last.incident is not None
    assert (last.incident.severity, last.incident.title) == (S1, "shop.acme.example is down")


def test_escalation_by_check_severity_override() -> None:
    site = Site()
    contact = replace(HOME, key="acme/shop/contact")
    for _ in range(3):
        site.feed(contact, MISMATCH, check_severity=S3)
    assert site.incident is not None and site.incident.severity is S3
    for _ in range(3):
        last = site.feed(CART, MISMATCH, check_severity=S1)
    assert kinds(last) == [TimelineKind.CHECK_FAILED, TimelineKind.ESCALATED]
    assert last.incident is not None
    assert last.incident.title == "shop.acme.example: Cart does not show what it should"


# --- check state --------------------------------------------------------------------------


def test_a_healthy_checks_state_stops_changing_but_for_last_result_at() -> None:
    site = Site()
    site.feed_all(HOME, [OK] * 3)
    before = site.states[HOME.key]
    after = site.feed(HOME, OK)
    assert after.state != before
    assert replace(after.state, last_result_at=before.last_result_at) == before
    # Successes only count while the check is failing: a healthy check keeps 0, so its
    # state stops changing after the first result.
    assert after.state.successes == 0 and after.state.recent == ()
    first = Site().feed(HOME, OK).state
    assert replace(first, last_result_at=None) == replace(after.state, last_result_at=None)
    assert after.incident is None and not after.incident_changed


def test_the_same_result_at_the_same_time_returns_an_equal_state() -> None:
    site = Site()
    site.feed_all(HOME, [OK] * 3)
    state = site.states[HOME.key]
    assert state.last_result_at is not None
    repeated = apply_result(
        now=state.last_result_at, check=HOME, result=OK, severity=None, state=state, incident=None
    )
    assert repeated.state == state
    assert repeated == Transition(state=state, incident=None)


def test_a_failing_checks_next_identical_failure_changes_nothing_else() -> None:
    site = Site()
    site.feed_all(HOME, [E500] * 4)
    before, incident = site.states[HOME.key], site.incident
    after = site.feed(HOME, E500)
    assert replace(after.state, last_result_at=before.last_result_at) == before
    assert after.incident == incident and not after.incident_changed
    assert after.timeline == ()


SINCE_CASES = [
    # (id, results, minute the current run began)
    ("first result starts a run", [OK], 1),
    ("successes continue the run", [OK, OK, OK], 1),
    ("a failure starts a new run", [OK, OK, E500], 3),
    ("slow and 500 are one run of failures", [OK, SLOW, E500, TIMEOUT], 2),
    ("back to ok starts a run", [E500, E500, OK, OK], 3),
]


@pytest.mark.parametrize(
    ("results", "since_minute"),
    [case[1:] for case in SINCE_CASES],
    ids=[case[0] for case in SINCE_CASES],
)
def test_since_is_when_the_current_run_began(results: list[ProbeResult], since_minute: int) -> None:
    site = Site()
    last = site.feed_all(HOME, results)[-1]
    assert last.state.since == at(since_minute)
    assert last.state.last_result_at == at(len(results))
    assert last.state.last_outcome is results[-1].outcome


def test_recent_keeps_at_most_failures_to_open_entries_newest_last() -> None:
    site = Site()
    last = site.feed_all(HOME, [OK, SLOW, OK, E500])[-1]
    assert last.state.recent == (S1,)  # a success ends the run of failures
    last = site.feed_all(HOME, [SLOW, TIMEOUT, E500])[-1]
    assert last.state.recent == (S2, S1, S1)
    # failures_to_open lowered in the config since the last run: the window shrinks with it.
    shorter = site.feed(replace(HOME, failures_to_open=2), E500)
    assert shorter.state.recent == (S1, S1)
    assert site.feed(HOME, OK).state.recent == ()


CONFIRMED_CASES = [
    ((), 3, None),
    ((S1, S1), 3, None),
    ((S1, S1, S1), 3, S1),
    ((S2, S1, S1), 3, S2),
    ((S2, S1, S1, S1), 3, S1),
    ((S1, None, S1), 3, None),
    ((S3, S1), 1, S1),
    ((None,), 1, None),
]


@pytest.mark.parametrize(("recent", "failures_to_open", "expected"), CONFIRMED_CASES)
def test_confirmed_severity_is_the_least_severe_of_the_last_window(
    recent: tuple[Severity | None, ...], failures_to_open: int, expected: Severity | None
) -> None:
    assert confirmed_severity(recent, failures_to_open) == expected


# --- robustness ---------------------------------------------------------------------------

STALE_FAILING = CheckState(
    key=HOME.key,
    recent=(S1, S1, S1),
    failing=True,
    severity=S1,
    last_outcome=Outcome.HTTP_5XX,
    last_result_at=at(0),
    since=at(-10),
)


def test_a_check_still_failing_when_resolved_by_hand_opens_nothing_until_it_passed() -> None:
    # Its incident was resolved by hand (forced) while it failed: it is held, and its
    # failures count again only after one success, then failures_to_open of them.
    site = Site()
    site.states[HOME.key] = STALE_FAILING
    held = site.feed_all(HOME, [E500] * 6)
    assert all(t.timeline == () and t.incident is None for t in held)
    assert all(t.state.held and t.state.recent == () and not t.state.failing for t in held)

    passed = site.feed(HOME, OK)
    assert not passed.state.held and passed.timeline == ()
    first, second, third = site.feed_all(HOME, [E500] * 3)
    assert first.timeline == second.timeline == () and not first.state.held
    assert kinds(third) == [TimelineKind.OPENED]
    assert third.state.failing and third.state.severity is S1


def test_failing_state_without_incident_is_cleared_by_a_success() -> None:
    transition = apply_result(
        now=at(1), check=HOME, result=OK, severity=None, state=STALE_FAILING, incident=None
    )
    assert transition.incident is None and transition.timeline == ()
    assert not transition.state.failing
    assert transition.state.severity is None
    assert transition.state.successes == 0 and transition.state.recent == ()


def test_a_check_already_passing_when_resolved_by_hand_is_not_held() -> None:
    # It had passed once (recovering) when the incident was resolved without force.
    site = Site()
    site.states[HOME.key] = replace(STALE_FAILING, recent=(), successes=1, last_outcome=Outcome.OK)
    first, second, third = site.feed_all(HOME, [E500] * 3)
    assert not first.state.held
    assert kinds(third) == [TimelineKind.OPENED]


def test_a_held_check_does_not_attach_to_another_incident_until_it_passed() -> None:
    # The incident that state belonged to was resolved by hand; CART has opened another since.
    site = Site()
    site.feed_all(CART, [E500] * 3)
    site.states[HOME.key] = STALE_FAILING
    held = site.feed_all(HOME, [E500] * 4)
    assert all(t.timeline == () for t in held) and held[-1].state.held
    assert site.incident is not None and site.incident.failing_checks == {CART.key}
    site.feed(HOME, OK)
    attached = site.feed_all(HOME, [E500] * 3)[-1]
    assert kinds(attached) == [TimelineKind.CHECK_FAILED]
    assert site.incident is not None and site.incident.failing_checks == {HOME.key, CART.key}


def test_failing_state_not_in_the_open_incident_is_cleared_by_a_success() -> None:
    site = Site()
    site.feed_all(CART, [E500] * 3)
    incident = site.incident
    site.states[HOME.key] = STALE_FAILING
    transition = site.feed(HOME, OK)
    assert transition.timeline == () and not transition.incident_changed
    assert transition.incident == incident
    assert not transition.state.failing and transition.state.severity is None


def test_a_stale_failing_state_with_unconfirmed_failure_is_cleared() -> None:
    state = replace(STALE_FAILING, recent=(None, None, S1))
    transition = apply_result(
        now=at(1), check=HOME, result=E500, severity=S1, state=state, incident=None
    )
    assert transition.incident is None
    assert not transition.state.failing and transition.state.severity is None


def test_a_check_the_incident_lists_as_failing_recovers_even_if_its_state_was_lost() -> None:
    site = Site()
    site.feed_all(HOME, [E500] * 3)
    del site.states[HOME.key]  # e.g. the state row was lost
    first, second = site.feed_all(HOME, [OK, OK])
    assert first.state.failing and first.timeline == ()
    assert kinds(second) == [TimelineKind.CHECK_RECOVERED, TimelineKind.RESOLVED]


INVALID_CALLS = [
    ("ok with a severity", {"result": OK, "severity": S1}, "severity must be None"),
    ("failure without severity", {"result": E500, "severity": None}, "needs a severity"),
    ("state of another check", {"state": CheckState(key=CART.key)}, "state is for check"),
    (
        "incident of another site",
        {"incident": Incident(
            id=7, client="acme", site="acme/blog", title="t", severity=S1,
            status=IncidentStatus.OPEN, opened_at=T0,
        )},
        "pass the open incident of the check's own site",
    ),
    (
        "resolved incident",
        {"incident": Incident(
            id=7, client="acme", site="acme/shop", title="t", severity=S1,
            status=IncidentStatus.RESOLVED, opened_at=T0, resolved_at=T0,
        )},
        "never reopened",
    ),
    ("zero failures_to_open", {"check": replace(HOME, failures_to_open=0)}, "at least 1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "error"),
    [case[1:] for case in INVALID_CALLS],
    ids=[case[0] for case in INVALID_CALLS],
)
def test_invalid_calls_say_what_to_pass(overrides: dict[str, object], error: str) -> None:
    arguments: dict[str, object] = {
        "now": T0,
        "check": HOME,
        "result": E500,
        "severity": S1,
        "state": CheckState(key=HOME.key),
        "incident": None,
    }
    arguments.update(overrides)
    with pytest.raises(ValueError, match=error):
        apply_result(**arguments)  # type: ignore[arg-type]


# --- wording ------------------------------------------------------------------------------

DESCRIBE_CASES = [
    (OK, "ok (HTTP 200, 120 ms)"),
    (E500, "http_5xx (HTTP 500, 120 ms)"),
    (SLOW, "slow (HTTP 200, 7.2 s)"),
    (TIMEOUT, "timeout (no answer within 10s)"),
    (probe(Outcome.TLS_ERROR, latency=None), "tls_error"),
    (
        probe(Outcome.HTTP_5XX, status=502, step="pay", error="bad\ngateway\t upstream"),
        "http_5xx (step pay, HTTP 502, 120 ms, bad gateway upstream)",
    ),
]


@pytest.mark.parametrize(("result", "line"), DESCRIBE_CASES)
def test_describe_is_one_line(result: ProbeResult, line: str) -> None:
    assert describe(result) == line


def test_describe_caps_a_long_error() -> None:
    line = describe(probe(Outcome.CONNECTION_ERROR, latency=None, error="x" * 1000))
    assert len(line) < 250 and line.endswith("…)")


# --- property -----------------------------------------------------------------------------

OUTCOMES = [Outcome.OK, Outcome.OK, Outcome.SLOW, Outcome.HTTP_5XX, Outcome.CONTENT_MISMATCH]
SAMPLE = {outcome: probe(outcome, status=200) for outcome in OUTCOMES}


@settings(max_examples=300, deadline=None)
@given(
    failures_to_open=st.integers(min_value=1, max_value=4),
    successes_to_resolve=st.integers(min_value=1, max_value=3),
    check_severity=st.sampled_from([None, S1, S2, S3]),
    events=st.lists(st.tuples(st.booleans(), st.sampled_from(OUTCOMES)), max_size=80),
)
def test_one_open_incident_whose_severity_only_rises_open_exactly_while_a_check_fails(
    failures_to_open: int,
    successes_to_resolve: int,
    check_severity: Severity | None,
    events: list[tuple[bool, Outcome]],
) -> None:
    home = replace(
        HOME, failures_to_open=failures_to_open, successes_to_resolve=successes_to_resolve
    )
    cart = replace(home, key=CART.key)
    site = Site()
    # An independent model of one check: confirmed after N failures, recovered after M successes.
    runs = {home.key: [0, 0, False], cart.key: [0, 0, False]}  # failures, successes, failing
    for is_cart, outcome in events:
        check = cart if is_cart else home
        before = site.incident
        transition = site.feed(
            check, SAMPLE[outcome], check_severity=check_severity if is_cart else None
        )

        run = runs[check.key]
        if outcome.is_failure:
            run[0], run[1] = run[0] + 1, 0
            run[2] = run[2] or run[0] >= failures_to_open
        else:
            run[0], run[1] = 0, run[1] + 1
            run[2] = run[2] and run[1] < successes_to_resolve

        failing = {key for key, run in runs.items() if run[2]}
        assert {k for k, s in site.states.items() if s.failing} == failing
        if before is not None:
            after = transition.incident
            assert after is not None and after.id == before.id  # no second incident while open
            assert after.severity <= before.severity  # lower number is more severe
        assert (site.incident is not None) == bool(failing)
        if site.incident is not None:
            assert site.incident.failing_checks == failing
        assert transition.incident_changed == (transition.incident != before)
        assert (TimelineKind.OPENED in kinds(transition)) == (before is None and bool(failing))


# --- titles: the site is "down" only when its availability scope fails -------------------------

ADMIN = replace(HOME, key="acme/shop/admin", name="Admin panel", availability=False)
CHECKOUT = replace(HOME, key="acme/shop/checkout", name="Checkout", availability=False)


def test_a_part_answering_500_names_the_part_and_not_a_site_down() -> None:
    site = Site()
    for _ in range(3):
        last = site.feed(ADMIN, E500, check_severity=S2)
    assert last.incident is not None
    assert (last.incident.severity, last.incident.title) == (
        S2,
        "shop.acme.example: Admin panel unreachable (HTTP 500)",
    )
    assert last.incident.headline is not None and not last.incident.headline.availability


def test_a_failing_flow_step_names_the_part_and_the_step() -> None:
    pay_500 = probe(Outcome.HTTP_5XX, status=500, step="pay", error="step pay: HTTP 500 Oops")
    site = Site()
    last = site.feed_all(CHECKOUT, [pay_500] * 3)[-1]
    assert last.incident is not None
    assert last.incident.title == (
        "shop.acme.example: Checkout is failing (the pay step answers with an error, HTTP 500)"
    )
    assert "Oops" not in last.incident.title  # what the target said stays in the evidence


def test_the_site_going_down_retitles_a_part_incident_and_the_timeline_says_so() -> None:
    site = Site()
    for _ in range(3):
        site.feed(CHECKOUT, E500, check_severity=S1)
    assert site.incident is not None and site.incident.title.startswith("shop.acme.example: ")
    # The home page fails as severely: no escalation, but the site is down as a whole now.
    last = site.feed_all(HOME, [E500] * 3)[-1]
    assert kinds(last) == [TimelineKind.CHECK_FAILED]
    assert last.incident is not None
    assert last.incident.title == "shop.acme.example is down"
    assert last.incident.headline is not None and last.incident.headline.check == HOME.key
    assert last.timeline[0].message.endswith("; title now: shop.acme.example is down")


def test_a_part_failing_beside_a_down_site_keeps_the_down_title() -> None:
    site = Site()
    site.feed_all(HOME, [E500] * 3)
    last = site.feed_all(CHECKOUT, [E500] * 3)[-1]
    assert kinds(last) == [TimelineKind.CHECK_FAILED]
    assert last.incident is not None and last.incident.title == "shop.acme.example is down"
    assert "title now" not in last.timeline[0].message


def test_a_part_escalating_a_slow_site_takes_the_title() -> None:
    site = Site()
    site.feed_all(HOME, [SLOW] * 3)
    for _ in range(3):
        last = site.feed(ADMIN, E500, check_severity=S1)
    assert kinds(last) == [TimelineKind.CHECK_FAILED, TimelineKind.ESCALATED]
    assert last.incident is not None
    assert last.incident.title == "shop.acme.example: Admin panel unreachable (HTTP 500)"
    assert last.timeline[1].message.endswith(
        "; title now: shop.acme.example: Admin panel unreachable (HTTP 500)"
    )


def test_the_opening_keeps_when_the_first_failure_was_seen() -> None:
    site = Site()
    transitions = site.feed_all(HOME, [OK, E500, E500, E500])
    incident = transitions[-1].incident
    assert incident is not None
    assert (incident.failing_since, incident.opened_at) == (at(2), at(4))


def test_the_home_page_slow_beside_a_slow_part_makes_the_title_about_the_site() -> None:
    product = replace(HOME, key="acme/shop/product", name="Product page", availability=False)
    site = Site()
    site.feed_all(product, [SLOW] * 3)
    assert site.incident is not None
    assert site.incident.title.startswith("shop.acme.example: Product page loads slowly")
    last = site.feed_all(HOME, [SLOW] * 3)[-1]
    assert last.incident is not None
    assert last.incident.title == "shop.acme.example: pages load slowly (7.2 s, target 5 s)"
    assert "title now: shop.acme.example: pages load slowly" in last.timeline[0].message

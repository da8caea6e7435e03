"""The own-connectivity guard's decisions (incidents.connectivity) and the on-call notices it
composes (incidents.connectivity_notices): plain values, tables of results and times."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from incidents.connectivity import (
    CanaryWatch,
    Connectivity,
    ConnectivityLost,
    ConnectivityRestored,
    MassFailure,
    MassFailurePolicy,
    MassFailureWatch,
    held,
)
from incidents.connectivity_notices import (
    as_webhook,
    connectivity_lost,
    connectivity_restored,
    episode_since,
    lost_message_id,
    mass_failure,
)
from incidents.messages import MessageContext
from incidents.outgoing import Audience, MessageKind, NoticeKind, OutgoingEmail
from monitor.config import ConfigError, load_config_text

T0 = datetime(2026, 12, 4, 19, 0, tzinfo=UTC)
CTX = MessageContext(sender_domain="agency.example", oncall=("oncall@agency.example",))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- canaries -------------------------------------------------------------------------------

# (canary, ok, seconds) fed in order -> the state after each and what on-call hears.
CANARY_TABLE: list[tuple[str, list[tuple[str, bool, float]], list[str | None], Connectivity]] = [
    (
        "both fail at once: lost",
        [("a", False, 0), ("b", False, 0)],
        [None, "lost"],
        Connectivity.LOST,
    ),
    (
        "one of two fails: still up",
        [("a", True, 0), ("b", False, 1)],
        [None, None],
        Connectivity.UP,
    ),
    (
        "both fail: lost once, however often they fail again",
        [("a", False, 0), ("b", False, 1), ("a", False, 2), ("b", False, 3)],
        [None, "lost", None, None],
        Connectivity.LOST,
    ),
    (
        "one passes again: restored once",
        [("a", False, 0), ("b", False, 1), ("b", True, 5), ("a", True, 6)],
        [None, "lost", "restored", None],
        Connectivity.UP,
    ),
    (
        "a second episode pages again",
        [
            ("a", False, 0),
            ("b", False, 0),
            ("a", True, 9),
            ("b", True, 10),
            ("a", False, 20),
            ("b", False, 21),
        ],
        [None, "lost", "restored", None, None, "lost"],
        Connectivity.LOST,
    ),
]


@pytest.mark.parametrize(
    ("name", "feed", "heard", "final"), CANARY_TABLE, ids=[row[0] for row in CANARY_TABLE]
)
def test_canary_watch_table(
    name: str,
    feed: list[tuple[str, bool, float]],
    heard: list[str | None],
    final: Connectivity,
) -> None:
    watch = CanaryWatch(["a", "b"])
    assert watch.state is Connectivity.UNKNOWN
    got = []
    for canary, ok, seconds in feed:
        change = watch.observe(canary, ok=ok, now=at(seconds))
        got.append(
            "lost"
            if isinstance(change, ConnectivityLost)
            else "restored"
            if isinstance(change, ConnectivityRestored)
            else None
        )
    assert got == heard
    assert watch.state is final


def test_an_episode_starts_when_its_first_canary_failed() -> None:
    watch = CanaryWatch(["a", "b"])
    assert watch.observe("a", ok=False, now=at(0)) is None
    lost = watch.observe("b", ok=False, now=at(4))
    assert lost == ConnectivityLost(since=at(0), canaries=("a", "b"))
    restored = watch.observe("b", ok=True, now=at(60))
    assert restored == ConnectivityRestored(since=at(0), at=at(60), canary="b")


def test_resumed_episode_pages_nobody_again_and_restores_once() -> None:
    watch = CanaryWatch(["a"])
    watch.resume_lost(at(-300))
    assert watch.lost
    assert watch.observe("a", ok=False, now=at(0)) is None
    assert watch.observe("a", ok=True, now=at(10)) == ConnectivityRestored(
        since=at(-300), at=at(10), canary="a"
    )


def test_a_canary_not_probed_yet_is_not_counted_as_failing() -> None:
    watch = CanaryWatch(["a", "b"])
    assert watch.observe("a", ok=False, now=at(0)) is None
    assert watch.latest() == {"a": False, "b": None}
    assert not watch.lost


def test_unknown_canaries_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one canary"):
        CanaryWatch([])
    with pytest.raises(KeyError, match="nope"):
        CanaryWatch(["a"]).observe("nope", ok=True, now=T0)


# --- mass failure ---------------------------------------------------------------------------

POLICY = MassFailurePolicy(sites=5, hold=timedelta(minutes=5), window=timedelta(seconds=60))


def fail_sites(watch: MassFailureWatch, sites: list[str], *, every: float) -> list[MassFailure]:
    found = []
    for index, site in enumerate(sites):
        detected = watch.observe(site, f"{site}/home", ok=False, now=at(index * every))
        if detected is not None:
            found.append(detected)
    return found


# (total sites, sites failing, seconds between them) -> detected?
MASS_TABLE = [
    ("6 of 6 within the window", 6, 6, 5.0, True),
    ("5 of 10 within the window: both thresholds met", 10, 5, 5.0, True),
    ("4 of 6: fewer than `sites`", 6, 4, 5.0, False),
    ("5 of 12: fewer than half", 12, 5, 5.0, False),
    ("6 of 6 spread over more than the window", 6, 6, 20.0, False),
    ("1 of 1: a single site is never a mass failure", 1, 1, 0.0, False),
]


@pytest.mark.parametrize(
    ("name", "total", "failing", "every", "detected"), MASS_TABLE, ids=[r[0] for r in MASS_TABLE]
)
def test_mass_failure_table(
    name: str, total: int, failing: int, every: float, detected: bool
) -> None:
    watch = MassFailureWatch(policy=POLICY, total_sites=total)
    found = fail_sites(watch, [f"c/s{i}" for i in range(failing)], every=every)
    assert len(found) == (1 if detected else 0)
    if detected:
        assert found[0].sites == tuple(f"c/s{i}" for i in range(POLICY.sites))
        assert found[0].hold_until == found[0].detected_at + POLICY.hold


def test_mail_is_held_for_the_episodes_sites_until_the_hold_ends() -> None:
    watch = MassFailureWatch(policy=POLICY, total_sites=8)
    [found] = fail_sites(watch, [f"c/s{i}" for i in range(5)], every=1.0)
    assert watch.hold_until("c/s0", at(10)) == found.hold_until
    assert watch.hold_until("c/s7", at(10)) is None  # not failing: not held
    # A site that starts failing during the hold joins it, and pages nobody again.
    assert watch.observe("c/s6", "c/s6/home", ok=False, now=at(30)) is None
    assert watch.hold_until("c/s6", at(31)) == found.hold_until
    # When the hold ends, mails go at once.
    assert watch.hold_until("c/s0", found.hold_until) is None
    assert watch.holding is None


def test_a_site_counts_once_however_many_of_its_checks_fail() -> None:
    watch = MassFailureWatch(policy=POLICY, total_sites=6)
    for check in range(10):
        assert watch.observe("c/one", f"c/one/{check}", ok=False, now=at(check)) is None
    assert fail_sites(watch, ["c/a", "c/b", "c/c"], every=1.0) == []


def test_starts_older_than_the_window_do_not_count_but_a_new_start_does() -> None:
    watch = MassFailureWatch(policy=POLICY, total_sites=6)
    sites = ["c/a", "c/b", "c/c", "c/d"]
    for site in sites:
        assert watch.observe(site, f"{site}/home", ok=False, now=at(0)) is None
    # 70 s later the first four started failing too long ago to be one event with c/e.
    assert watch.observe("c/e", "c/e/home", ok=False, now=at(70)) is None
    # Still failing, they do not start again...
    for site in sites:
        assert watch.observe(site, f"{site}/home", ok=False, now=at(71)) is None
    # ...but once recovered, failing again is a new start.
    for site in sites[:3]:
        watch.observe(site, f"{site}/home", ok=True, now=at(72))
        assert watch.observe(site, f"{site}/home", ok=False, now=at(73)) is None
    watch.observe("c/d", "c/d/home", ok=True, now=at(74))
    found = watch.observe("c/d", "c/d/home", ok=False, now=at(75))
    assert found is not None and found.sites == ("c/a", "c/b", "c/c", "c/d", "c/e")


def test_sites_failing_since_before_a_restart_do_not_start_failing_again() -> None:
    watch = MassFailureWatch(policy=POLICY, total_sites=6)
    for index in range(6):
        site = f"c/s{index}"
        assert watch.observe(site, f"{site}/home", ok=False, now=at(0), was_failing=True) is None
    assert watch.holding is None


def test_after_an_episode_only_new_starts_make_the_next() -> None:
    watch = MassFailureWatch(policy=POLICY, total_sites=6)
    [first] = fail_sites(watch, [f"c/s{i}" for i in range(5)], every=0.0)
    after = first.hold_until + timedelta(seconds=1)
    assert watch.observe("c/s5", "c/s5/home", ok=False, now=after) is None
    assert watch.holding is None


def test_many_sites_starting_to_fail_cost_little_per_site() -> None:
    # 20,000 of 100,000 sites starting to fail within the window (not half: no detection to
    # end the counting): each start is O(1), about 0.2 s for all; pruning the window by
    # rebuilding it was quadratic, 20 s of a stalled event loop.
    watch = MassFailureWatch(policy=POLICY, total_sites=100_000)
    started = time.process_time()
    assert fail_sites(watch, [f"c/s{i}" for i in range(20_000)], every=0.002) == []
    assert time.process_time() - started < 4.0
    [detected] = fail_sites(watch, [f"d/s{i}" for i in range(30_000)], every=0.0)
    assert len(detected.sites) == 50_000  # half of all sites


def test_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        MassFailurePolicy(sites=0)
    with pytest.raises(ValueError, match="window"):
        MassFailurePolicy(window=timedelta(0))


def client_and_oncall_mail() -> list[OutgoingEmail]:
    common = {"incident_id": 7, "subject": "s", "text": "t", "html": "h"}
    return [
        OutgoingEmail(
            kind=MessageKind.OPENED,
            audience=Audience.CLIENT,
            to=("ops@acme.example",),
            message_id="<c@agency.example>",
            **common,  # type: ignore[arg-type]
        ),
        OutgoingEmail(
            kind=MessageKind.PAGE,
            audience=Audience.ONCALL,
            to=("oncall@agency.example",),
            message_id="<o@agency.example>",
            **common,  # type: ignore[arg-type]
        ),
    ]


def test_held_holds_the_monitors_own_client_mail_only() -> None:
    client, oncall = held(client_and_oncall_mail(), until=at(300))
    assert isinstance(client, OutgoingEmail) and client.not_before == at(300)
    assert isinstance(oncall, OutgoingEmail) and oncall.not_before is None
    operator_update = replace(client, kind=MessageKind.UPDATE, not_before=None)
    assert held([operator_update], until=at(300)) == [operator_update]


# --- notices --------------------------------------------------------------------------------


def test_lost_and_restored_notices_thread_and_name_their_episode() -> None:
    lost = connectivity_lost(ConnectivityLost(since=at(0.25), canaries=("a", "b")), ctx=CTX)
    restored = connectivity_restored(
        ConnectivityRestored(since=at(0.25), at=at(600.25), canary="b"), ctx=CTX
    )
    assert lost.kind is NoticeKind.CONNECTIVITY_LOST and lost.incident_id is None
    assert lost.audience is Audience.ONCALL and lost.to == CTX.oncall
    assert lost.message_id == lost_message_id(at(0.25), domain="agency.example")
    assert episode_since(lost.message_id) == at(0.25)
    assert episode_since(restored.message_id) is None
    assert restored.in_reply_to == lost.message_id
    assert "lost connectivity" in lost.subject and "a, b" in lost.text
    assert "back" in restored.subject and "10 min" in restored.text
    # The same episode composes the same mail: the outbox's unique key refuses a second.
    again = connectivity_lost(ConnectivityLost(since=at(0.25), canaries=("a", "b")), ctx=CTX)
    assert again == lost


def test_mass_failure_notice_asks_on_call_and_says_until_when() -> None:
    found = MassFailure(
        detected_at=at(0),
        hold_until=at(300),
        sites=tuple(f"acme/s{i}" for i in range(60)),
        total_sites=80,
        window=timedelta(seconds=60),
    )
    notice = mass_failure(found, ctx=CTX)
    assert notice.kind is NoticeKind.MASS_FAILURE and notice.incident_id is None
    assert "60 of 80 sites" in notice.subject
    assert "19:05:00 UTC" in notice.subject
    assert "acme/s49" in notice.text and "acme/s50" not in notice.text
    assert "and 10 more" in notice.text
    assert "<" not in notice.html.replace("<p>", "").replace("</p>", "").replace(
        "<br>", ""
    ).replace("<html><body>", "").replace("</body></html>", "")


def test_without_oncall_addresses_the_mail_has_none_and_the_webhook_carries_it() -> None:
    lost = connectivity_lost(
        ConnectivityLost(since=T0, canaries=("a",)),
        ctx=MessageContext(sender_domain="agency.example", oncall=()),
    )
    assert lost.to == ()  # the caller queues no mail then
    hook = as_webhook(lost, target="oncall")
    assert hook.kind is NoticeKind.CONNECTIVITY_LOST and hook.incident_id is None
    assert hook.body["event"] == "connectivity_lost"
    assert hook.body["text"] == lost.subject
    assert hook.idempotency_key == f"webhook.{lost.message_id.strip('<>')}"
    assert episode_since(hook.idempotency_key) == T0
    assert as_webhook(lost, target="oncall") == hook  # stable per episode


# --- configuration --------------------------------------------------------------------------

CONFIG = """
oncall: {emails: [oncall@agency.example]}
clients:
  - id: acme
    contacts: [ops@acme.example]
    sites:
      - id: shop
        url: http://127.0.0.1:1
        checks: [{id: home}]
"""


def test_canaries_and_mass_failure_are_read_with_defaults() -> None:
    text = CONFIG + "canaries:\n  - {name: uplink, url: 'https://www.example.org/'}\n"
    config = load_config_text(text, environ={})
    [canary] = config.canaries
    assert (canary.name, canary.interval, canary.timeout) == (
        "uplink",
        timedelta(seconds=30),
        timedelta(seconds=10),
    )
    assert config.mass_failure.sites == 5
    assert config.mass_failure.hold == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("extra", "line", "where", "phrase"),
    [
        (
            "canaries:\n  - {name: uplink, url: /status}\n",
            11,
            "canaries[0].url",
            "must be an absolute http(s) URL",
        ),
        (
            "canaries:\n  - {name: a, url: 'http://x.example/'}\n"
            "  - {name: a, url: 'http://y.example/'}\n",
            10,
            "canaries",
            "duplicate canary name 'a'",
        ),
        ("mass_failure: {sites: 0}\n", 10, "mass_failure.sites", "greater than or equal to 1"),
        ("mass_failure: {hold: soon}\n", 10, "mass_failure.hold", "must be a duration"),
    ],
)
def test_bad_guard_config_names_line_and_field(
    extra: str, line: int, where: str, phrase: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(CONFIG + extra, filename="monitor.yaml", environ={})
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.path) == ("monitor.yaml", line, where)
    assert phrase in problem.message

"""The `channels:` and `routes:` sections: parsed into routes, and refused with a located
error that never shows a channel's URL (it holds the token)."""

from __future__ import annotations

import pytest

from incidents.routes import Event, Hours, Route
from incidents.severity import Severity
from monitor.clients import notify_policy
from monitor.config import ConfigError, load_config_text
from tests.monitor_yaml import ONE_CLIENT

BASE = (
    """
oncall:
  emails: [oncall@agency.example]
agency: {timezone: Europe/Berlin}
"""
    + ONE_CLIENT
)


def problems(text: str, environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, filename="monitor.yaml", environ=environ)
    return [str(problem) for problem in caught.value.problems]


def test_channels_and_routes_become_the_notify_policy() -> None:
    text = (
        BASE
        + """channels:
  team: {url: "${TEAM_URL}"}
routes:
  - {channels: [team, email], events: [opened, resolved], severities: [1], clients: [acme]}
  - {channels: [team], events: [paged], hours: after_hours}
"""
    )
    config = load_config_text(text, environ={"TEAM_URL": "mmost://chat.agency.example/s3cr3tkey"})
    policy = notify_policy(config)
    assert policy.chat_channels == ("team",)
    assert policy.routes == (
        Route(
            channels=("team", "email"),
            events=frozenset({Event.OPENED, Event.RESOLVED}),
            severities=frozenset({Severity.CRITICAL}),
            clients=frozenset({"acme"}),
        ),
        Route(channels=("team",), events=frozenset({Event.PAGED}), hours=Hours.AFTER_HOURS),
    )
    assert "s3cr3tkey" not in repr(config)


def test_without_routes_the_defaults_apply() -> None:
    policy = notify_policy(load_config_text(BASE, environ={}))
    assert policy.routes is None and policy.chat_channels == ()


def test_an_unusable_url_is_located_and_never_shown() -> None:
    text = BASE + 'channels:\n  team: {url: "${TEAM_URL}"}\n'
    [problem] = problems(text, {"TEAM_URL": "slakc://T000/B000/s3cr3tt0ken"})
    assert problem.startswith("monitor.yaml:12: channels.team.url: Apprise cannot use this")
    assert "s3cr3tt0ken" not in problem and "slakc://T000" not in problem


def test_routes_must_name_what_exists() -> None:
    text = (
        BASE
        + """channels:
  team: {url: "json://127.0.0.1:9/hook"}
routes:
  - {channels: [team, pager, webhook], clients: [nobody]}
"""
    )
    [problem] = problems(text, {})
    assert problem.startswith("monitor.yaml:")
    assert "routes[0].channels: no channel 'pager'" in problem
    assert "routes[0].channels: 'webhook' needs oncall.webhook" in problem
    assert "routes[0].clients: no client 'nobody'" in problem


def test_an_unknown_event_is_located() -> None:
    text = BASE + "routes:\n  - {channels: [email]}\n  - {channels: [email], events: [exploded]}\n"
    [problem] = problems(text, {})
    assert problem.startswith("monitor.yaml:13: routes[1].events[0]: must be 'opened', ")


def test_a_channel_cannot_take_a_built_in_name() -> None:
    [problem] = problems(BASE + 'channels:\n  email: {url: "json://127.0.0.1:9/x"}\n', {})
    assert "channels.email: the name is built in" in problem

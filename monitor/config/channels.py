"""The `channels:` and `routes:` sections: named Apprise destinations, and who hears what.

    channels:
      team-chat: {url: "${SLACK_URL}"}             # the whole URL is a secret
      pager: {url: "${NTFY_URL}", max_attempts: 5}
    routes:
      - {channels: [pager, webhook], events: [paged], hours: after_hours}
      - {channels: [team-chat, email], severities: [1, 2]}

`email` (oncall.emails) and `webhook` (oncall.webhook) are built-in channel names. Without
`routes:` the defaults of incidents.routes apply (today's behaviour, chats hear pages).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

from checks.duration import Duration
from incidents.routes import BUILT_IN_CHANNELS, Event, Hours, Route
from incidents.severity import Severity

ChannelName = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", strip_whitespace=True)
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelConfig(_Model):
    url: SecretStr = Field(
        description="An Apprise URL, e.g. ${SLACK_URL} holding slack://TokenA/TokenB/TokenC, "
        "mmosts://chat.example/hook-key, ntfys://ntfy.example/topic or json://host/path. "
        "Treated as a secret: never logged, stored, or shown."
    )
    timeout: Duration = Field(
        default=timedelta(seconds=10), description="How long one message may take."
    )
    max_attempts: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Failed attempts (with backoff) before a message is given up as failed.",
    )

    @field_validator("url")
    @classmethod
    def _apprise_url(cls, value: SecretStr) -> SecretStr:
        # Imported here: monitor.delivery imports the config models (a cycle otherwise).
        from monitor.delivery.chat import ChannelUrlError, service_name

        try:
            service_name(value.get_secret_value())
        except ChannelUrlError as exc:
            # "(got ...)" keeps the loader from showing the value: it may hold a token.
            raise ValueError(f"{exc} (got a URL not shown here: it may hold a token)") from None
        return value


class RouteConfig(_Model):
    channels: list[ChannelName] = Field(
        min_length=1,
        description="Who hears it: names from `channels:`, `email` (oncall.emails) or "
        "`webhook` (oncall.webhook).",
    )
    events: list[Event] | None = Field(
        default=None,
        description="opened, escalated, paged, update_due, overdue, resolved, monitor_health; "
        "left out: all.",
    )
    severities: list[Severity] | None = Field(
        default=None, description="e.g. [1, 2]; left out: all (and monitor health)."
    )
    clients: list[str] | None = Field(
        default=None, description="Client ids; left out: all (and monitor health)."
    )
    hours: Hours = Field(
        default=Hours.ANY,
        description="any, business (the agency's business hours) or after_hours.",
    )

    def route(self) -> Route:
        return Route(
            channels=tuple(self.channels),
            events=None if self.events is None else frozenset(self.events),
            severities=None if self.severities is None else frozenset(self.severities),
            clients=None if self.clients is None else frozenset(self.clients),
            hours=self.hours,
        )


def check_channel_names(channels: dict[str, ChannelConfig]) -> None:
    for name in channels:
        if name in BUILT_IN_CHANNELS:
            raise ValueError(
                f"channels.{name}: the name is built in ({', '.join(sorted(BUILT_IN_CHANNELS))}"
                " stand for on-call's email and webhook); choose another name"
            )


def check_routes(
    routes: list[RouteConfig],
    *,
    channels: dict[str, ChannelConfig] | None,
    webhook: bool,
    clients: set[str] | None,
) -> None:
    """Every route names channels and clients that exist; all problems at once. None:
    that section failed its own checks, so it is not checked against."""
    problems: list[str] = []
    known = set(channels or ()) | {"email"} | ({"webhook"} if webhook else set())
    for index, route in enumerate(routes):
        # Channels that failed their own checks were reported there already.
        for name in route.channels if channels is not None else ():
            if name == "webhook" and not webhook:
                problems.append(f"routes[{index}].channels: 'webhook' needs oncall.webhook")
            elif name not in known:
                problems.append(
                    f"routes[{index}].channels: no channel {name!r} "
                    f"(channels: {', '.join(sorted(known))})"
                )
        for client in route.clients or ():
            if clients is not None and client not in clients:
                problems.append(f"routes[{index}].clients: no client {client!r}")
    if problems:
        raise ValueError("; ".join(problems))

"""Chat and pager channels: `OutgoingChat`s delivered through Apprise, one URL per channel.

The stored `OutgoingChat` names its channel; the Apprise URL (which usually holds the token:
a Slack hook, an ntfy topic, a Mattermost key) comes from the configuration at delivery
time, so it never reaches the database. It never reaches a log line, an error text or a
metric either: errors name the channel and its service (`team-chat (Slack)`), and Apprise's
own words about a failure are scrubbed of every part of the URL first.

Apprise is used as a library only: an `AppriseAsset` with no plugin paths and no persistent
storage, no configuration files (`AppriseConfig` is never used, so nothing is read from
~/.apprise or ~/.config/apprise), one `Apprise` object per channel so that its result is
that channel's, and Apprise's own retries off (`retry=0`, its default): the outbox retries.

    the service accepted it                 delivered
    refused, unreachable, timed out         transient, until the channel's max_attempts;
                                            then permanent (Apprise does not say which
                                            refusals are final, so attempts decide)
    unknown channel (removed from config)   permanent
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise

from incidents.outgoing import OutgoingChat
from monitor.delivery.errors import DeliveryError, redact, unconfigured

_APPRISE_LOG = logging.getLogger("apprise")
# Apprise's debug and info lines name the URLs it posts to (a json:// path may be the token);
# its warnings and errors name the service and host only. Nothing below a warning, then, even
# with --log-level DEBUG.
_APPRISE_LOG.setLevel(logging.WARNING)
_MAX_DETAIL_CHARS = 300
_GRACE = 2.0  # seconds Apprise waits beyond a channel's timeout for its request to end


class ChannelUrlError(ValueError):
    """An Apprise URL that Apprise cannot use. Its text never holds the URL."""


@dataclass(frozen=True, slots=True)
class ChatTarget:
    url: str = field(repr=False)  # a secret: never logged, stored or shown
    timeout: float = 10.0  # seconds Apprise may take for one message
    max_attempts: int = 10  # failed attempts before the outbox gives up on a message


@contextlib.contextmanager
def _quiet_apprise() -> Iterator[None]:
    # Apprise logs an unparseable URL whole ("Unparseable URL slack://token..."): while we
    # parse one, nothing of Apprise reaches our log handlers.
    before = _APPRISE_LOG.disabled
    _APPRISE_LOG.disabled = True
    try:
        yield
    finally:
        _APPRISE_LOG.disabled = before


def _asset(timeout: float) -> apprise.AppriseAsset:
    # Explicit, though these are Apprise's library defaults: no plugins from folders, no
    # persistent storage, masked URLs in its own logs. Apprise waits a little longer than
    # the requests may take (see _instantiate).
    return apprise.AppriseAsset(
        plugin_paths=[],
        storage_path=None,
        secure_logging=True,
        service_timeout=timeout + _GRACE,
        allow_templates=False,
    )


def service_name(url: str) -> str:
    """The service an Apprise URL names ("Slack", "ntfy"), for logs and the API; raises
    ChannelUrlError (without the URL in its text) when Apprise cannot use the URL."""
    return _instantiate(url, timeout=10.0)[1]


def url_secrets(url: str) -> list[str]:
    """Every part of `url` that may be a token: the URL, its userinfo, path segments and
    query values (short ones such as `1`, `yes` or `hook` excepted: they hide nothing)."""
    parts = [url]
    try:
        split = urlsplit(url)
        parts += [split.netloc.rpartition("@")[0], split.username or "", split.password or ""]
        parts += [unquote(segment) for segment in split.path.split("/")]
        parts += [value for _, value in parse_qsl(split.query)]
    except ValueError:
        pass
    return [part for part in parts if len(part) >= 6]


def _instantiate(url: str, *, timeout: float) -> tuple[apprise.Apprise, str]:
    client = apprise.Apprise(asset=_asset(timeout))
    with _quiet_apprise():
        added = client.add(url)
    if not added or len(client) != 1:
        scheme = url.partition("://")[0] if "://" in url else ""
        named = f"{scheme}:// " if scheme.isalnum() else ""
        hint = (
            f"Apprise cannot use this {named}URL (unknown service, or a token or host "
            "missing); write it as the Apprise wiki shows for the service, e.g. "
            "slack://TokenA/TokenB/TokenC or ntfy://ntfy.example/topic"
        )
        raise ChannelUrlError(hint)
    service = client[0]
    # The request itself gives up within the channel's timeout, before Apprise stops waiting
    # for it: a request Apprise abandoned would run on in its thread and might still send
    # (a duplicate the next attempt then repeats).
    service.socket_connect_timeout = timeout / 2
    service.socket_read_timeout = timeout / 2
    return client, str(service.service_name)


class ChatSender:
    """Sends `OutgoingChat`s to the configured channels by name."""

    def __init__(self, targets: Mapping[str, ChatTarget]) -> None:
        """Raises ChannelUrlError when a channel's URL is unusable (the config checks it
        first; this guards settings built in code)."""
        self._targets = dict(targets)
        self._services: dict[str, str] = {}
        for name, target in self._targets.items():
            try:
                self._services[name] = _instantiate(target.url, timeout=target.timeout)[1]
            except ChannelUrlError as exc:
                raise ChannelUrlError(f"channel {name!r}: {exc}") from None

    def service(self, name: str) -> str | None:
        """The service channel `name` sends to ("Mattermost"), None for an unknown one."""
        return self._services.get(name)

    async def send(self, chat: OutgoingChat, *, attempt: int = 1) -> None:
        """Return once the service accepted `chat`; raise DeliveryError otherwise.
        `attempt` counts this one (1: the first): at the channel's max_attempts a failure
        is permanent."""
        where = f"channel {chat.channel!r}"
        target = self._targets.get(chat.channel)
        if target is None:
            raise unconfigured(where, "channel", self._targets)
        # A fresh Apprise object per message: a plugin keeps state between calls (ntfy
        # throttles the next message by 5.5 s) that the outbox's own backoff replaces.
        client, service = _instantiate(target.url, timeout=target.timeout)
        where = f"{where} ({service}, {chat.kind} for incident {chat.incident_id})"
        try:
            result = await client.async_notify(body=chat.body, title=chat.title)
        except Exception as exc:  # noqa: BLE001 - a plugin's own bug: translated, URL-free
            detail = type(exc).__name__
        else:
            if result:
                return
            detail = _failure_detail(result)
        text, _ = redact(f"{where}: not delivered: {detail}", url_secrets(target.url))
        final = attempt >= target.max_attempts
        if final:
            text += f" (gave up after {attempt} attempts)"
        raise DeliveryError(text, permanent=final)


def _failure_detail(result: apprise.AppriseResult) -> str:
    """Apprise's last warning or error for this call ("A Connection error occurred ..."),
    one line, or its status name."""
    lines = [
        " ".join(str(entry.message).split())
        for entry in result.logs()
        if _level(getattr(entry, "level", logging.WARNING)) >= logging.WARNING
    ]
    if lines:
        return lines[-1][:_MAX_DETAIL_CHARS]
    status = getattr(result, "status", None)
    return getattr(status, "name", "failed").lower()


def _level(level: object) -> int:
    """A log entry's level as a number; Apprise keeps it as a name ("WARNING")."""
    if isinstance(level, int):
        return level
    number = logging.getLevelName(str(level).upper())
    return number if isinstance(number, int) else logging.WARNING

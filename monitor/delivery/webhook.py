"""On-call webhooks: one JSON POST per notification, to a target named in the configuration.

The stored `OutgoingWebhook` names its target; the URL and headers (which may carry tokens)
come from the configuration at delivery time, so no secret is ever written to the database,
and none reaches an error text: a webhook URL itself can be the secret (Slack-style
`/services/T0/B0/XXXX`), so errors name the target, not the URL.

    2xx                                     delivered
    408, 429, 5xx                           transient (Retry-After in seconds is passed on)
    other 4xx, 3xx (redirects not followed) permanent: this request will never be accepted
    connection refused/reset, TLS, timeout  transient
    unknown target, invalid URL             permanent
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from incidents.outgoing import OutgoingWebhook
from monitor.delivery.errors import DeliveryError, describe, redact, translated_error, unconfigured

IDEMPOTENCY_HEADER = "Idempotency-Key"
_TRANSIENT_4XX = frozenset({408, 429})
_HEADER_VALUE = re.compile(r"[\x20-\x7e]+")
_MAX_BODY_EXCERPT = 200
# Our own asyncio.timeout bounds the exchange; aiohttp's timers are switched off so that the
# session's defaults can never decide instead of the target's `timeout`.
_NO_CLIENT_TIMEOUT = aiohttp.ClientTimeout()


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    url: str = field(repr=False)  # may embed a token
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # e.g. Authorization
    timeout: float = 10.0  # seconds for the whole exchange

    def secrets(self) -> list[str]:
        """Texts that must never appear in an error: header values, the URL and its parts."""
        parts = [self.url]
        try:
            url = URL(self.url)
        except ValueError:
            pass  # aiohttp will refuse it too; the raw text is covered
        else:
            parts += [str(url), url.path_qs if url.path_qs != "/" else ""]
        return [*self.headers.values(), *parts]


class WebhookSender:
    """POSTs `OutgoingWebhook`s with the given session. The session is the caller's to close."""

    def __init__(
        self, session: aiohttp.ClientSession, targets: Mapping[str, WebhookTarget]
    ) -> None:
        self._session = session
        self._targets = dict(targets)

    async def send(self, hook: OutgoingWebhook) -> None:
        """Return once the target answered 2xx; raise DeliveryError otherwise."""
        where = f"webhook {hook.target!r} ({hook.kind} for incident {hook.incident_id})"
        target = self._targets.get(hook.target)
        if target is None:
            raise unconfigured(where, "webhook", self._targets)
        headers = dict(target.headers)
        if hook.idempotency_key:
            if not _HEADER_VALUE.fullmatch(hook.idempotency_key):
                raise DeliveryError(
                    f"{where}: idempotency key must be printable ASCII on one line "
                    f"(got {hook.idempotency_key!r})",
                    permanent=True,
                )
            headers[IDEMPOTENCY_HEADER] = hook.idempotency_key
        try:
            async with asyncio.timeout(target.timeout):
                async with self._session.post(
                    target.url,
                    json=hook.body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=_NO_CLIENT_TIMEOUT,
                ) as response:
                    if 200 <= response.status < 300:
                        return
                    excerpt = await _excerpt(response)
                    raise _status_error(response, excerpt, where=where, target=target)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            error = _exchange_error(exc, where=where, target=target)
            # The cause is None when it had to go (it held a secret): see translated_error.
            raise error from error.__cause__


async def _excerpt(response: aiohttp.ClientResponse) -> str:
    # The start of the body often says why ("missing field ..."); the rest is not needed.
    raw = await response.content.read(_MAX_BODY_EXCERPT)
    return " ".join(raw.decode("utf-8", errors="replace").split())


def _status_error(
    response: aiohttp.ClientResponse, excerpt: str, *, where: str, target: WebhookTarget
) -> DeliveryError:
    status = response.status
    transient = status >= 500 or status in _TRANSIENT_4XX
    reason = f" {response.reason}" if response.reason else ""
    body = f": {excerpt}" if excerpt else ""
    text, _ = redact(f"{where}: answered {status}{reason}{body}", target.secrets())
    return DeliveryError(
        text,
        permanent=not transient,
        code=status,
        retry_after=_retry_after(response.headers.get("Retry-After")) if transient else None,
    )


def _exchange_error(exc: BaseException, *, where: str, target: WebhookTarget) -> DeliveryError:
    if isinstance(exc, aiohttp.InvalidURL):
        # Its text is the URL, so it is no cause to keep.
        return DeliveryError(f"{where}: the configured URL is invalid", permanent=True)
    if isinstance(exc, TimeoutError):
        text = f"{where}: no answer within {target.timeout:g}s"
    else:
        text = f"{where}: {describe(exc)}"
    return translated_error(text, cause=exc, secrets=target.secrets(), permanent=False)


def _retry_after(value: str | None) -> float | None:
    """Retry-After in delay-seconds form; the HTTP-date form is rare for webhooks, ignored."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())

"""The one exception delivery raises. aiosmtplib, aiohttp and OS errors are translated into it
at the boundary (`monitor.delivery.mail`, `monitor.delivery.webhook`), once.

DeliveryError              a notification was not delivered; the original is __cause__
    .permanent             True: this notification can never be delivered as it is (a 5xx
                           refusal of this message or recipient, a 4xx from a webhook); the
                           outbox gives up on it. False: try again later.
    .code                  the SMTP reply code or HTTP status, when the server answered
    .retry_after           seconds the server asked us to wait (HTTP Retry-After), if any

The rule behind `permanent`: only a refusal of *this* notification is permanent. Problems with
the server, the network or our own configuration (wrong password, STARTTLS not offered, our
sender address refused) are transient, because they affect every notification alike and are
fixed by fixing the configuration; giving up on each message would lose all mail meanwhile.
The outbox backlog metric shows such an outage instead.
"""

from __future__ import annotations

from collections.abc import Iterable

_MAX_DETAIL_CHARS = 300
REDACTED = "[redacted]"


class DeliveryError(Exception):
    """A notification was not delivered. `str()` is safe to store and log: no secrets."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"DeliveryError({str(self)!r}, permanent={self.permanent}, code={self.code})"


def unconfigured(where: str, what: str, configured: Iterable[str]) -> DeliveryError:
    """The permanent failure of a message addressed to a `what` ("webhook", "channel") the
    configuration no longer has: no retry can deliver it."""
    known = ", ".join(sorted(configured)) or "none"
    return DeliveryError(
        f"{where}: no such {what} in the configuration (configured: {known})", permanent=True
    )


def redact(text: str, secrets: Iterable[str]) -> tuple[str, bool]:
    """`text` with every secret replaced, and whether anything was replaced."""
    replaced = False
    # Longest first, so that a secret containing another is replaced whole.
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
            replaced = True
    return text, replaced


def describe(exc: BaseException) -> str:
    """One short line naming an exception, for an error text (newlines would break logs)."""
    detail = " ".join(str(exc).split())
    if len(detail) > _MAX_DETAIL_CHARS:
        detail = detail[: _MAX_DETAIL_CHARS - 3] + "..."
    name = type(exc).__name__
    return f"{name}: {detail}" if detail else name


def translated_error(
    message: str,
    *,
    cause: BaseException,
    secrets: Iterable[str],
    permanent: bool,
    code: int | None = None,
    retry_after: float | None = None,
) -> DeliveryError:
    """A DeliveryError for `cause`, its text scrubbed of `secrets`.

    If a secret had to be scrubbed, the cause is dropped as well: a traceback would print the
    original text with the secret in it.
    """
    safe, replaced = redact(message, secrets)
    error = DeliveryError(safe, permanent=permanent, code=code, retry_after=retry_after)
    if not replaced:
        error.__cause__ = cause
    error.__suppress_context__ = True
    return error

"""Translate what went wrong in one HTTP exchange into an Outcome, once, at the boundary.

The exceptions a probe can meet, most specific first (`classify_exception` checks them in
this order, because several of aiohttp's classes inherit from more than one branch):

    checks.private_ranges.RedirectRefused (an OSError)    -> redirect_refused
    aiohttp.TooManyRedirects (a ClientResponseError)      -> too_large
    aiohttp.ClientSSLError (a ClientConnectorError)       -> tls_error
        ClientConnectorCertificateError                      certificate did not verify
        ClientConnectorSSLError                              handshake failed
    ssl.SSLError, aiohttp.ServerFingerprintMismatch       -> tls_error
    TimeoutError (asyncio's; aiohttp.ServerTimeoutError)  -> timeout
    aiohttp.ClientError, OSError, HttpProcessingError     -> connection_error
        ClientConnectorError (refused, DNS), ClientOSError (reset),
        ServerDisconnectedError (closed before or mid-answer),
        ClientPayloadError (body cut short), ClientResponseError (not HTTP on the wire)

Anything outside `PROBE_ERRORS` is a bug on our side, not a target misbehaving, so the probe
lets it propagate instead of reporting it as an outage of somebody's site.

`failure_cause` looks behind a connection_error for what the outcome cannot say: an errno of
our own machine running out (EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL, and a resolver
that failed with EAI_SYSTEM or EAI_MEMORY) is `local_resource`, which the monitor discards
instead of counting against the site; any other resolver failure is `name_resolution`.
"""

from __future__ import annotations

import errno
import socket
import ssl

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

from checks.private_ranges import RedirectRefused
from checks.redact import redact_text
from checks.result import FailureCause, Outcome

PROBE_ERRORS: tuple[type[Exception], ...] = (
    aiohttp.ClientError,
    OSError,
    TimeoutError,
    HttpProcessingError,
)
"""Exceptions that describe the target or the network, never our own code."""

_MAX_ERROR_CHARS = 300

_TLS_ERRORS: tuple[type[Exception], ...] = (
    aiohttp.ClientSSLError,
    ssl.SSLError,
    aiohttp.ServerFingerprintMismatch,
)


def classify_exception(exc: Exception) -> Outcome:
    """The outcome an exception from a request or a body read stands for."""
    if isinstance(exc, RedirectRefused):
        return Outcome.REDIRECT_REFUSED
    if isinstance(exc, aiohttp.TooManyRedirects):
        return Outcome.TOO_LARGE
    # Before the connection branch: ClientSSLError is also a ClientConnectorError.
    if isinstance(exc, _TLS_ERRORS):
        return Outcome.TLS_ERROR
    # Before the connection branch: aiohttp's ServerTimeoutError is also a connection error.
    if isinstance(exc, TimeoutError):
        return Outcome.TIMEOUT
    return Outcome.CONNECTION_ERROR


# errnos that say our own machine ran out of something, never that the target misbehaved.
# EADDRNOTAVAIL on connect means no local port (or source address) was free.
LOCAL_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL}
)
# getaddrinfo's codes for a failure inside our own process (it could not open a socket to the
# resolver, or allocate), as opposed to the name or its servers.
_LOCAL_RESOLVER_CODES = frozenset({socket.EAI_SYSTEM, socket.EAI_MEMORY})
_CHAIN_MAX = 8  # exceptions looked at behind one another; chains are short, loops are not


def failure_cause(exc: BaseException) -> FailureCause | None:
    """Whether `exc` (or what it was raised from) is a fault of the monitor's own machine or
    a failed name lookup; None when it is simply what the target or the network did."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    cause: FailureCause | None = None
    while todo and len(seen) < _CHAIN_MAX:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, socket.gaierror | aiohttp.ClientConnectorDNSError):
            # Their errno is an EAI_ code (negative), not an errno: never compare the two.
            if current.errno in _LOCAL_RESOLVER_CODES:
                return FailureCause.LOCAL_RESOURCE
            cause = FailureCause.NAME_RESOLUTION
        elif isinstance(current, OSError) and current.errno in LOCAL_ERRNOS:
            return FailureCause.LOCAL_RESOURCE
        os_error = getattr(current, "os_error", None)  # aiohttp's connector errors
        todo.extend(
            e
            for e in (current.__cause__, current.__context__, os_error)
            if isinstance(e, BaseException)
        )
    return cause


def one_line(exc: BaseException) -> str:
    """`Type: message` on one bounded line, for Evidence.error (no traceback, no newlines)."""
    # aiohttp's str() of a parser error leads with a made-up "400" and repeats the url;
    # its message alone says what was wrong on the wire.
    raw = exc.message if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
    # Some messages quote a URL (an invalid redirect target, yarl's errors); redact it before
    # cutting the text, so that a cut cannot leave half a secret behind.
    text = redact_text(" ".join(raw.split()))
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS - 1] + "…"
    name = type(exc).__name__
    return f"{name}: {text}" if text else name

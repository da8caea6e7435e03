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
"""

from __future__ import annotations

import ssl

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

from checks.private_ranges import RedirectRefused
from checks.redact import redact_text
from checks.result import Outcome

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

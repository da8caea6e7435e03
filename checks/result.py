"""What a probe returns: a classified outcome with the evidence behind it.

This is the one type that `incidents/` may import from `checks/` (see DESIGN.md): plain values,
no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from checks.scrub import SENSITIVE_HEADERS, Secrets, clean_line, clean_text


class Outcome(enum.StrEnum):
    """The class of a probe's result. Every value except OK is a failure of some kind."""

    OK = "ok"  # answered as expected, within slow_after
    SLOW = "slow"  # answered as expected, but the whole response took longer than slow_after
    HTTP_5XX = "http_5xx"  # the server answered with a 5xx status
    UNEXPECTED_STATUS = "unexpected_status"  # a status outside the expected set (not 5xx)
    CONTENT_MISMATCH = "content_mismatch"  # body lacks a required text or has a forbidden one
    TIMEOUT = "timeout"  # no complete answer within the check's timeout
    CONNECTION_ERROR = "connection_error"  # refused, reset, DNS failure, garbage on the wire
    TLS_ERROR = "tls_error"  # handshake failed, certificate invalid or expired
    TOO_LARGE = "too_large"  # body exceeded the read cap, or too many redirects
    BROKEN_ASSET = "broken_asset"  # the page loads, but an image, stylesheet or script fails
    CERT_EXPIRING = "cert_expiring"  # the TLS certificate expires within the warning window
    # a redirect led into loopback, link-local, private or multicast addresses that the
    # check's own URL is not in (see checks.private_ranges); not followed
    REDIRECT_REFUSED = "redirect_refused"
    # a dns check's name did not resolve: NXDOMAIN, SERVFAIL, no record of the type, or no
    # answer in time
    DNS_ERROR = "dns_error"
    DNS_MISMATCH = "dns_mismatch"  # a dns check's answers are not the expected ones
    # a domain check's registration runs out within its warning window (default 30 days)
    DOMAIN_EXPIRING = "domain_expiring"
    # ... within its urgent window (default 7 days)
    DOMAIN_EXPIRING_SOON = "domain_expiring_soon"
    DOMAIN_EXPIRED = "domain_expired"  # the registration's expiry date has passed
    # a domain check could not learn the expiry date (the registry's RDAP server failed or
    # did not say): nothing is known to be wrong with the site
    DOMAIN_UNKNOWN = "domain_unknown"
    HEARTBEAT_MISSED = "heartbeat_missed"  # a push check's job did not ping in time
    HEARTBEAT_FAILED = "heartbeat_failed"  # a push check's job pinged that it failed
    # What only a browser check sees (checks.browser), with the failing step named:
    SCRIPT_ERROR = "script_error"  # an uncaught exception or console error on the page
    REQUEST_FAILED = "request_failed"  # a same-site or third-party request of the page failed
    ELEMENT_MISSING = "element_missing"  # a step's selector never appeared

    @property
    def is_failure(self) -> bool:
        return self is not Outcome.OK


class FailureCause(enum.StrEnum):
    """What lay behind a failure, where the outcome alone cannot tell whether the fault was
    the target's or the monitor's own (see `checks.classify.failure_cause`)."""

    # Our own machine ran out of something (file descriptors, buffers, memory, local ports):
    # the result says nothing about the target.
    LOCAL_RESOURCE = "local_resource"
    # The host name did not resolve: the site's DNS, or our own resolver when every name fails.
    NAME_RESOLUTION = "name_resolution"


@dataclass(frozen=True, slots=True)
class Evidence:
    """What we saw, kept on the incident timeline. Bounded in size by the probe."""

    url: str
    status: int | None = None
    error: str | None = None  # a one-line description of what went wrong, if anything
    body_excerpt: str = ""  # the first 2 KB of the body, decoded leniently
    headers: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: connect, ttfb, total
    step: str | None = None  # the failing step of a multi-step check, if any
    tls_not_after: float | None = None  # Unix time the https certificate expires, if known
    domain_not_after: float | None = None  # Unix time a domain's registration expires, if known
    # A browser check's: the PNG of the page at the failing step (a path on the monitor's
    # disk, for on-call only), and what the page said: console errors, failed requests, Web
    # Vitals per page (see checks.browser). Neither ever reaches a client.
    screenshot: str | None = None
    browser: dict[str, Any] | None = None

    def masked(self, secrets: Secrets) -> Evidence:
        """This evidence with every secret of the check masked (see `checks.scrub`)."""
        if not secrets:
            return self
        return Evidence(
            url=secrets.mask(self.url),
            status=self.status,
            error=None if self.error is None else secrets.mask(self.error),
            body_excerpt=secrets.mask(self.body_excerpt),
            headers={name: secrets.mask(value) for name, value in self.headers.items()},
            timings=self.timings,
            step=self.step,
            tls_not_after=self.tls_not_after,
            domain_not_after=self.domain_not_after,
            screenshot=self.screenshot,
            browser=None if self.browser is None else _masked_json(self.browser, secrets),
        )

    def to_dict(self) -> dict[str, Any]:
        """The evidence as it is stored and served: without session or credential headers,
        and without control characters in any text, whoever built it."""
        plain: dict[str, Any] = {
            "url": clean_line(self.url),
            "status": self.status,
            "error": None if self.error is None else clean_line(self.error),
            "body_excerpt": clean_text(self.body_excerpt),
            "headers": {
                clean_line(name): clean_line(value)
                for name, value in self.headers.items()
                if name.lower() not in SENSITIVE_HEADERS
            },
            "timings": dict(self.timings),
            "step": None if self.step is None else clean_line(self.step),
            "tls_not_after": self.tls_not_after,
            "domain_not_after": self.domain_not_after,
        }
        # Only a browser check's evidence has these keys, so every other stays as it was.
        if self.screenshot is not None:
            plain["screenshot"] = clean_line(self.screenshot)
        if self.browser is not None:
            plain["browser"] = _clean_json(self.browser)
        return plain


def _masked_json(value: Any, secrets: Secrets) -> Any:
    if isinstance(value, str):
        return secrets.mask(value)
    if isinstance(value, dict):
        return {key: _masked_json(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked_json(item, secrets) for item in value]
    return value


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean_line(value)
    if isinstance(value, dict):
        return {clean_line(str(key)): _clean_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean_json(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe's classified result.

    `latency` is the wall time of the whole exchange (connect, request, full body) in seconds,
    or None where nothing was measured (e.g. the connection never opened).
    `started_at` is the UTC time the probe began, from the injected clock.
    `cause` is set for failures whose outcome may hide a fault of the monitor's own.
    """

    outcome: Outcome
    started_at: datetime
    latency: float | None
    evidence: Evidence
    cause: FailureCause | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


def timed_result(
    outcome: Outcome,
    *,
    started_at: datetime,
    elapsed: float,
    url: str,
    error: str | None = None,
    status: int | None = None,
    excerpt: str = "",
    domain_not_after: float | None = None,
    cause: FailureCause | None = None,
) -> ProbeResult:
    """A result whose one timing is the whole exchange, `elapsed` seconds (dns, domain)."""
    return ProbeResult(
        cause=cause,
        outcome=outcome,
        started_at=started_at,
        latency=elapsed,
        evidence=Evidence(
            url=url,
            status=status,
            error=error,
            body_excerpt=excerpt,
            timings={"total": elapsed},
            domain_not_after=domain_not_after,
        ),
    )

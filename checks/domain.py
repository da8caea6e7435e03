"""The `domain` check: when the site's domain registration runs out, through RDAP.

A lapsed domain takes the site, its mail and everything under it off the net at once, and
is known weeks ahead. The probe asks the registry's RDAP server (see `checks.rdap`) for the
domain and judges the days left to its `expiration` event, first match wins:

1. no server known, the server errs or is unreachable, or its answer carries no expiration
   date                                       -> domain_unknown (nothing wrong with the site)
2. the expiry date has passed                  -> domain_expired
3. it is within `urgent_within` (7 days)       -> domain_expiring_soon
4. it is within `warn_within` (30 days)        -> domain_expiring
5. otherwise                                   -> ok

The expiry date is kept as evidence (`domain_not_after`) and exported as
`probe_domain_expiry_timestamp_seconds`. A failed lookup is tried once more after
`retry_wait`, so a registry's passing hiccup does not count.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

import aiohttp
from pydantic import Field, field_validator, model_validator
from yarl import URL

from checks.classify import PROBE_ERRORS, one_line
from checks.dns import valid_host_name
from checks.duration import Duration
from checks.rdap import RdapDirectory, domain_url, expiration
from checks.redirects import open_following
from checks.result import Outcome, ProbeResult, timed_result
from checks.spec import ProbeSpec
from checks.tls import day_span

MAX_ANSWER_BYTES = 1024 * 1024  # an RDAP domain answer is a few KB
_ATTEMPTS = 2
_DAY = 86400.0


class DomainCheckSpec(ProbeSpec):
    """`kind: domain`: the registration expiry of the site's domain."""

    kind: Literal["domain"]
    domain: str | None = Field(
        default=None,
        description="The registered domain, e.g. acme.example; default: the registrable "
        "domain of the site's host (www.shop.acme.co.uk -> acme.co.uk).",
    )
    warn_within: Duration = Field(
        default=timedelta(days=30),
        description="Expiring within this is `domain_expiring` (Severity 3).",
    )
    urgent_within: Duration = Field(
        default=timedelta(days=7),
        description="Expiring within this is `domain_expiring_soon` (Severity 2).",
    )

    @field_validator("domain")
    @classmethod
    def _domain_name(cls, value: str | None) -> str | None:
        return None if value is None else valid_host_name(value)

    @model_validator(mode="after")
    def _windows_nest(self) -> DomainCheckSpec:
        if self.urgent_within > self.warn_within:
            raise ValueError(
                "urgent_within must not be longer than warn_within, e.g. warn_within: 30d "
                "and urgent_within: 7d"
            )
        return self

    @property
    def target(self) -> str:
        """What the evidence names: `domain://acme.example`."""
        return f"domain://{self.domain or ''}"


class _LookupFailed(Exception):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


async def probe_domain(
    spec: DomainCheckSpec,
    *,
    session: aiohttp.ClientSession,
    directory: RdapDirectory,
    now: Callable[[], datetime],
    monotonic: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    retry_wait: float = 1.0,
) -> ProbeResult:
    """Look `spec.domain` up (the monitor fills in the site's registrable domain) and judge
    its expiry from `now`. Never raises for what a registry does."""
    started_at = now()
    if spec.domain is None:
        raise ValueError("a domain check needs a domain (the monitor derives the site's)")
    since = monotonic()
    base = directory.base_for(spec.domain)
    if base is None:
        tld = spec.domain.rsplit(".", 1)[-1]
        return _result(
            spec,
            Outcome.DOMAIN_UNKNOWN,
            started_at,
            monotonic() - since,
            error=f"no RDAP server known for .{tld}: add rdap.servers: {{{tld}: <url>}} or run "
            "monitor rdap-bootstrap --update",
        )
    url = domain_url(base, spec.domain)
    failure = _LookupFailed("not asked")
    for attempt in range(_ATTEMPTS):
        if attempt:
            await sleep(retry_wait)
        try:
            answer = await _lookup(spec, session=session, url=url)
            break
        except _LookupFailed as exc:
            failure = exc
    else:
        return _result(
            spec,
            Outcome.DOMAIN_UNKNOWN,
            started_at,
            monotonic() - since,
            error=f"RDAP lookup at {url} failed: {failure}",
            status=failure.status,
        )
    elapsed = monotonic() - since
    expires = expiration(answer)
    if expires is None:
        return _result(
            spec,
            Outcome.DOMAIN_UNKNOWN,
            started_at,
            elapsed,
            error=f"the RDAP answer from {url} has no expiration date",
            status=200,
        )
    return judge_expiry(spec, expires=expires, started_at=started_at, elapsed=elapsed)


def judge_expiry(
    spec: DomainCheckSpec, *, expires: datetime, started_at: datetime, elapsed: float
) -> ProbeResult:
    """The result for a registration that runs out at `expires`, seen at `started_at`."""
    left = (expires - started_at).total_seconds() / _DAY
    date = expires.astimezone(UTC).strftime("%Y-%m-%d")
    outcome, error = Outcome.OK, None
    if left < 0:
        outcome = Outcome.DOMAIN_EXPIRED
        error = f"registration of {spec.domain} expired {day_span(-left)} ago ({date})"
    elif left * _DAY <= spec.urgent_within.total_seconds():
        outcome = Outcome.DOMAIN_EXPIRING_SOON
    elif left * _DAY <= spec.warn_within.total_seconds():
        outcome = Outcome.DOMAIN_EXPIRING
    if outcome in (Outcome.DOMAIN_EXPIRING_SOON, Outcome.DOMAIN_EXPIRING):
        error = f"registration of {spec.domain} expires in {day_span(left)} ({date})"
    return _result(
        spec,
        outcome,
        started_at,
        elapsed,
        error=error,
        status=200,
        not_after=expires.timestamp(),
        excerpt=f"expires {date}",
    )


async def _lookup(spec: DomainCheckSpec, *, session: aiohttp.ClientSession, url: str) -> object:
    try:
        # Redirects followed as an http check's are (checks.redirects): none into loopback,
        # link-local or private addresses the registry's own URL is not in.
        async with (
            asyncio.timeout(spec.timeout.total_seconds()),
            open_following(
                session,
                "GET",
                URL(url),
                headers={"Accept": "application/rdap+json, application/json"},
                max_redirects=5,
                allow_private=False,
                ssl=True,
            ) as response,
        ):
            status = response.status
            if status != 200:
                raise _LookupFailed(f"HTTP {status}", status=status)
            body = await response.content.read(MAX_ANSWER_BYTES + 1)
    except PROBE_ERRORS as exc:
        if isinstance(exc, TimeoutError):
            raise _LookupFailed(f"no answer within {spec.timeout.total_seconds():g}s") from exc
        raise _LookupFailed(one_line(exc)) from exc
    if len(body) > MAX_ANSWER_BYTES:
        raise _LookupFailed(f"answer larger than {MAX_ANSWER_BYTES} bytes", status=status)
    try:
        return json.loads(body)
    except ValueError:
        raise _LookupFailed("answer is not JSON", status=status) from None


def _result(
    spec: DomainCheckSpec,
    outcome: Outcome,
    started_at: datetime,
    elapsed: float,
    *,
    error: str | None = None,
    status: int | None = None,
    not_after: float | None = None,
    excerpt: str = "",
) -> ProbeResult:
    return timed_result(
        outcome,
        started_at=started_at,
        elapsed=elapsed,
        url=spec.target,
        error=error,
        status=status,
        excerpt=excerpt,
        domain_not_after=not_after,
    )

"""The `http` check: one request, classified.

`probe_http` sends the request of an `HttpCheckSpec` (or of any `HttpRequestSpec`) and turns
whatever comes back (or does not) into a `ProbeResult`. It never raises for a target's
misbehaviour: refusals, resets, garbage, hangs, endless bodies and bad certificates all become
an outcome with evidence.

How an answer is judged, first match wins:

1. status >= 500                               -> http_5xx (even if it was also slow)
2. status outside `expect_status`              -> unexpected_status
3. body longer than `max_body_bytes`           -> too_large
4. `body_contains` / `body_not_contains` fail  -> content_mismatch
5. whole exchange longer than `slow_after`     -> slow
6. certificate expires within `cert_expiry_warning` -> cert_expiring (see `checks.tls`)
7. otherwise                                   -> ok

When no answer could be judged, `checks.classify` names the failure (timeout,
connection_error, tls_error, too_large for a redirect chain longer than `max_redirects`,
redirect_refused for a hop into internal addresses: see `checks.redirects`).

The evidence keeps what `checks.scrub` allows: no session or credential headers, a body
excerpt for failures only, and every value the check sent masked where the answer echoes it.
A connection_error alone is tried once more after `retry_wait`, so one lost packet does not
count as an outage; each attempt has the full `timeout`, so a probe takes at most
`2 * timeout + retry_wait`.

The wire work is an `HttpTransport`, so that judging lives here once whatever carries the
request: `AiohttpTransport` goes through an aiohttp session (what `page` and `flow` checks
share, with their cookies and assets), `checks.lean_http.LeanTransport` is a bare HTTP/1.1
client at a fraction of the CPU, for the `http` checks the monitor runs by the thousand.
(aiohttp also sends an idempotent request a second time, inside the same attempt and budget,
when the connection drops before any answer: a GET to a server that hangs up on everyone
reaches it four times through aiohttp, twice through the lean transport. Ours is the re-try
that also covers refusals, bodies cut short, garbage and POSTs.)
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol

import aiohttp
from pydantic import Field, field_validator
from yarl import URL

from checks.classify import PROBE_ERRORS, classify_exception, failure_cause, one_line
from checks.duration import Duration
from checks.phases import split, where_time_went
from checks.redact import redact_text, redact_url
from checks.redirects import open_following
from checks.result import Evidence, Outcome, ProbeResult
from checks.scrub import SENSITIVE_HEADERS, clean_line, clean_text, request_secrets
from checks.spec import ProbeSpec, check_each
from checks.tls import expiry_warning, response_not_after

_log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
EXCERPT_BYTES = 2048
MAX_EVIDENCE_HEADERS = 50  # a target can send thousands; the incident timeline keeps this many
_MAX_HEADER_VALUE_CHARS = 1024
_MAX_CONTENT_ERROR_CHARS = 300
_READ_CHUNK = 64 * 1024

_ATTEMPTS = 2  # a connection_error is tried once more

_STATUS_MIN, _STATUS_MAX = 100, 599
_STATUS_ENTRY = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_EXPECTED_ENTRY = 'a status such as 200 or a range such as "200-299"'


def parse_status_entry(entry: int | str) -> tuple[int, int]:
    """One `expect_status` entry as an inclusive (low, high) range.

    Accepts 200, "200" and "200-299"; raises ValueError saying what is expected otherwise.
    """
    # bool is an int to Python, but `true` in YAML is never meant as status 1.
    if isinstance(entry, bool) or not isinstance(entry, int | str):
        raise ValueError(f"must be {_EXPECTED_ENTRY} (got {entry!r})")
    if isinstance(entry, int):
        low = high = entry
    else:
        match = _STATUS_ENTRY.match(entry)
        if match is None:
            raise ValueError(f"must be {_EXPECTED_ENTRY} (got {entry!r})")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
    for status in (low, high):
        if not _STATUS_MIN <= status <= _STATUS_MAX:
            raise ValueError(
                f"status {status} is not an HTTP status ({_STATUS_MIN}-{_STATUS_MAX}); "
                f"expected {_EXPECTED_ENTRY} (got {entry!r})"
            )
    if low > high:
        raise ValueError(
            f'range "{low}-{high}" runs backwards: write the lower status first, '
            f'e.g. "{high}-{low}"'
        )
    return low, high


def parse_url(url: str) -> URL:
    """`url` as aiohttp would parse it, refused as aiohttp refuses it (connection_error)."""
    try:
        return URL(url)
    except (ValueError, TypeError) as exc:
        raise aiohttp.InvalidUrlClientError(url) from exc


def _default_expect_status() -> list[int | str]:
    return ["200-399"]


def validate_status_list(entries: list[int | str]) -> list[int | str]:
    """An `expect_status` list: every bad entry reported at once, so it is fixed in one go."""
    if not entries:
        raise ValueError('must list at least one status, e.g. [200] or ["200-399"]')
    check_each(((f"[{index}]", entry) for index, entry in enumerate(entries)), parse_status_entry)
    return entries


class HttpRequestSpec(ProbeSpec):
    """An HTTP request and what its answer must look like: the fields of every HTTP-based
    kind of check (`http`, `page`), each of which fixes `kind` to its own name."""

    # Declared here, and narrowed by each kind, so that it keeps its place right after the
    # common fields in error messages and the JSON Schema.
    kind: str
    url: str = Field(
        default="/",
        description="A path joined to the site's url, or an absolute http(s) URL.",
    )
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(default=None, description="Request body to send, as text.")
    expect_status: list[int | str] = Field(
        default_factory=_default_expect_status,
        description='Accepted statuses: numbers or ranges such as "200-299". Default 200-399.',
    )
    body_contains: list[str] = Field(
        default_factory=list, description="Texts that must all appear in the body."
    )
    body_not_contains: list[str] = Field(
        default_factory=list, description="Texts that must not appear in the body."
    )
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    max_redirects: int = Field(default=5, ge=0, le=20)
    allow_private_redirects: bool = Field(
        default=False,
        description="Follow redirects into loopback, link-local, private or multicast "
        "addresses even when the check's own URL is not in that range.",
    )
    verify_tls: bool = True
    cert_expiry_warning: Duration = Field(
        default=timedelta(days=14),
        ge=timedelta(0),
        description="An https certificate that expires within this is `cert_expiring`; "
        "0s switches the warning off.",
    )

    @field_validator("expect_status")
    @classmethod
    def _valid_expect_status(cls, entries: list[int | str]) -> list[int | str]:
        return validate_status_list(entries)

    def accepts_status(self, status: int) -> bool:
        """Whether `status` is one of `expect_status`."""
        for low, high in _status_ranges(tuple(self.expect_status)):
            if low <= status <= high:
                return True
        return False


# Every probe asks; parsing the entries again each time cost 1.5 us, the cache 0.2 us.
@functools.lru_cache(maxsize=1024)
def _status_ranges(entries: tuple[int | str, ...]) -> tuple[tuple[int, int], ...]:
    return tuple(map(parse_status_entry, entries))


class HttpCheckSpec(HttpRequestSpec):
    """The `http` check: one request, classified."""

    kind: Literal["http"] = "http"


@dataclass(frozen=True, slots=True)
class Fetched:
    """A classified result together with the body it was judged on, for kinds of check that
    look further into the answer (a page's assets). `body` is at most `max_body_bytes`.
    `url` is the real final URL (query included) for resolving what the body links to; the
    result's evidence shows it redacted (see `checks.redact`)."""

    result: ProbeResult
    body: bytes
    charset: str | None
    url: str = field(repr=False)  # a Fetched may be logged by its repr; the URL may hold secrets

    def text(self) -> str:
        """The body decoded in its declared charset (UTF-8 otherwise), leniently."""
        return _decode(self.body, self.charset)


class RedirectLimit(Exception):
    """A redirect chain longer than `max_redirects`. The transport that raises it has left
    the last hop (its URL, status, reason and headers) in the attempt's `Seen`."""


class HttpTransport(Protocol):
    """What carries one attempt of an http probe over the wire."""

    async def exchange(
        self, spec: HttpRequestSpec, *, seen: Seen, since: float, clock: Callable[[], float]
    ) -> int:
        """Send `spec`'s request, follow its redirects and read the body capped at
        `max_body_bytes`, recording into `seen` as things arrive (`seen.ttfb` as
        `clock() - since`); return the final status.

        A target's misbehaviour is raised as one of `checks.classify.PROBE_ERRORS`, which
        `classify_exception` names, or as `RedirectLimit`. The caller bounds the exchange
        with `spec.timeout` by cancelling it, so a transport releases its connection on
        cancellation."""
        ...


class AiohttpTransport:
    """Through an aiohttp session, which owns the connections, their TLS trust and the
    default headers (see `monitor.runtime.new_session`)."""

    __slots__ = ("session",)

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def exchange(
        self, spec: HttpRequestSpec, *, seen: Seen, since: float, clock: Callable[[], float]
    ) -> int:
        try:
            return await _exchange(spec, session=self.session, seen=seen, since=since, clock=clock)
        except aiohttp.TooManyRedirects as exc:
            if not exc.history:
                raise
            # Show the last hop of the chain, which is where an operator starts looking.
            last = exc.history[-1]
            seen.url, seen.status, seen.reason = str(last.url), last.status, last.reason
            seen.headers = _header_evidence(last.headers)
            raise RedirectLimit(f"more than {spec.max_redirects} redirects") from exc


async def probe_http(
    spec: HttpRequestSpec,
    *,
    session: aiohttp.ClientSession | None = None,
    transport: HttpTransport | None = None,
    now: Callable[[], datetime],
    monotonic: Callable[[], float] = time.perf_counter,
    retry_wait: float = 0.2,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> ProbeResult:
    """Send `spec`'s request through `transport` (or `session`) and classify the answer.

    Pass exactly one of `session` (an `AiohttpTransport` over it is used) and `transport`.
    `spec.url` must be absolute. `now` stamps `started_at` (UTC) and is the time certificate
    expiry is measured from; `monotonic` measures the timings; `sleep` is what the single
    re-try of a connection_error waits with. The caller owns `session` (the monitor gives
    each probe a fresh connection; see `checks.tls.PeerCertResponse` for certificates).
    """
    fetched = await fetch_http(
        spec,
        session=session,
        transport=transport,
        now=now,
        monotonic=monotonic,
        retry_wait=retry_wait,
        sleep=sleep,
    )
    return fetched.result


async def fetch_http(
    spec: HttpRequestSpec,
    *,
    session: aiohttp.ClientSession | None = None,
    transport: HttpTransport | None = None,
    now: Callable[[], datetime],
    monotonic: Callable[[], float] = time.perf_counter,
    retry_wait: float = 0.2,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Fetched:
    """`probe_http`, also handing back the body that was read (see `Fetched`)."""
    carrier = _transport(session, transport)
    started_at = now()
    # A plain loop rather than tenacity's AsyncRetrying: building one per probe cost about
    # 20 us of CPU, a fifth of a whole lean probe, for a re-try that is rarely needed.
    for attempt in range(1, _ATTEMPTS + 1):
        fetched = await _attempt(
            spec, transport=carrier, started_at=started_at, monotonic=monotonic
        )
        # A timeout already spent the whole budget and an answer is the target's real
        # state; only a connection that broke is worth one more look.
        if fetched.result.outcome is not Outcome.CONNECTION_ERROR or attempt == _ATTEMPTS:
            break
        _log.debug(
            "re-trying %s in %gs after: %s",
            fetched.result.evidence.url,
            retry_wait,
            fetched.result.evidence.error,
        )
        await sleep(retry_wait)
    if attempt > 1:
        fetched = replace(fetched, result=_note_attempts(fetched.result, attempt))
    return fetched


def _transport(
    session: aiohttp.ClientSession | None, transport: HttpTransport | None
) -> HttpTransport:
    if transport is not None:
        if session is not None:
            raise TypeError("pass either session= or transport=, not both")
        return transport
    if session is None:
        raise TypeError("probe_http needs session= (an aiohttp session) or transport=")
    return AiohttpTransport(session)


@dataclass(slots=True)
class Seen:
    """What one attempt has seen so far, filled in as the answer arrives, so a failure half
    way through still reports the status, headers and body that came before it."""

    url: str
    status: int | None = None
    reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    charset: str | None = None
    body: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    ttfb: float | None = None
    tls_not_after: float | None = None
    # When each phase of the current hop began (checks.phases), on the probe's clock, set by
    # a transport that can tell its phases apart (checks.lean_http): `hop_start` None means
    # it cannot. `secured` is `connected` on plain http; the answer's first byte is at
    # `since + ttfb`. `earlier` holds the phases of the redirect hops before this one.
    hop_start: float | None = None
    resolved: float | None = None
    connected: float | None = None
    secured: float | None = None
    earlier: dict[str, float] | None = None

    def timings(self, *, since: float, end: float) -> dict[str, float]:
        """The evidence's timings, in seconds, of the attempt that began at `since` and
        ended at `end`: the phases when the transport split them, `total`, and `ttfb` once
        an answer began. Built in one dict: this runs for every probe."""
        timings = self.phases(since=since, end=end)
        if timings is None:
            timings = {"total": end - since}
        else:
            timings["total"] = end - since
        if self.ttfb is not None:
            timings["ttfb"] = self.ttfb
        return timings

    def phases(self, *, since: float, end: float) -> dict[str, float] | None:
        """Seconds per phase of the attempt that began at `since` and ended at `end`; None
        when the transport did not split them."""
        if self.hop_start is None:
            return None
        return split(
            start=self.hop_start,
            resolved=self.resolved,
            connected=self.connected,
            secured=self.secured,
            first_byte=None if self.ttfb is None else since + self.ttfb,
            end=end,
            earlier=self.earlier,
        )


_ATTEMPT_ERRORS: tuple[type[Exception], ...] = (RedirectLimit, *PROBE_ERRORS)


async def _attempt(
    spec: HttpRequestSpec,
    *,
    transport: HttpTransport,
    started_at: datetime,
    monotonic: Callable[[], float],
) -> Fetched:
    seen = Seen(url=spec.url)
    start = monotonic()
    try:
        async with asyncio.timeout(spec.timeout.total_seconds()):
            status = await transport.exchange(spec, seen=seen, since=start, clock=monotonic)
    except _ATTEMPT_ERRORS as exc:
        timings = seen.timings(since=start, end=monotonic())
        result = _failed(spec, seen, exc, started_at=started_at, timings=timings)
    else:
        timings = seen.timings(since=start, end=monotonic())
        total = timings["total"]
        outcome, error = _judge(spec, seen, status=status, total=total, at=started_at)
        if outcome is Outcome.SLOW and error is not None:
            error = _with_phases(error, timings)
        result = ProbeResult(
            outcome=outcome,
            started_at=started_at,
            latency=total,
            evidence=_evidence(spec, seen, outcome=outcome, error=error, timings=timings),
        )
    return Fetched(result=result, body=bytes(seen.body), charset=seen.charset, url=seen.url)


async def _exchange(
    spec: HttpRequestSpec,
    *,
    session: aiohttp.ClientSession,
    seen: Seen,
    since: float,
    clock: Callable[[], float],
) -> int:
    """One request and its capped body read, recorded into `seen`; returns the status."""
    async with open_following(
        session,
        spec.method,
        parse_url(spec.url),
        headers=spec.headers,
        data=spec.body,
        max_redirects=spec.max_redirects,
        allow_private=spec.allow_private_redirects,
        # True defers to the connector's trust settings (by default the system CAs).
        ssl=spec.verify_tls,
    ) as response:
        seen.ttfb = clock() - since
        seen.url = str(response.url)
        seen.status = response.status
        seen.reason = response.reason
        seen.headers = _header_evidence(response.headers)
        seen.charset = response.charset
        seen.tls_not_after = response_not_after(response)
        seen.truncated = await _read_capped(
            response.content, into=seen.body, cap=spec.max_body_bytes
        )
        if seen.truncated:
            # Drop the connection rather than leave the rest of an endless body to anyone.
            response.close()
        return response.status


async def _read_capped(content: aiohttp.StreamReader, *, into: bytearray, cap: int) -> bool:
    """Append the (decompressed) body to `into`, at most `cap` bytes; True if there was more.

    Asking for at most one byte past the cap keeps our memory at `cap + 1`; aiohttp pauses
    the socket while its own small buffer is full and inflates compressed bodies in bounded
    steps, so neither an endless stream nor a decompression bomb can grow either side.
    """
    while True:
        chunk = await content.read(min(_READ_CHUNK, cap - len(into) + 1))
        if not chunk:
            return False
        room = cap - len(into)
        if len(chunk) > room:
            into += chunk[:room]
            return True
        into += chunk


def _judge(
    spec: HttpRequestSpec, seen: Seen, *, status: int, total: float, at: datetime
) -> tuple[Outcome, str | None]:
    """Classify a complete answer (see the module docstring for the order)."""
    if status >= 500:
        return Outcome.HTTP_5XX, _status_text(status, seen.reason)
    if not spec.accepts_status(status):
        accepted = ", ".join(str(entry) for entry in spec.expect_status)
        return Outcome.UNEXPECTED_STATUS, (
            f"{_status_text(status, seen.reason)} is outside expect_status [{accepted}]"
        )
    if seen.truncated:
        return Outcome.TOO_LARGE, (
            f"body is larger than max_body_bytes ({spec.max_body_bytes} bytes); "
            "stopped reading there"
        )
    mismatch = _content_mismatch(spec, seen)
    if mismatch is not None:
        return Outcome.CONTENT_MISMATCH, mismatch
    slow_after = spec.slow_after.total_seconds()
    if total > slow_after:
        return Outcome.SLOW, (
            f"complete answer took {total:.3f}s, more than slow_after {slow_after:g}s"
        )
    expiring = expiry_warning(not_after=seen.tls_not_after, now=at, window=spec.cert_expiry_warning)
    if expiring is not None:
        return Outcome.CERT_EXPIRING, expiring
    return Outcome.OK, None


def _content_mismatch(spec: HttpRequestSpec, seen: Seen) -> str | None:
    """Name every required text that is missing and every forbidden one that is present."""
    if not spec.body_contains and not spec.body_not_contains:
        return None
    text = _decode(seen.body, seen.charset)
    missing = [needle for needle in spec.body_contains if needle not in text]
    forbidden = [needle for needle in spec.body_not_contains if needle in text]
    problems = []
    if missing:
        problems.append("body lacks " + ", ".join(map(_quote, missing)))
    if forbidden:
        problems.append("body contains forbidden " + ", ".join(map(_quote, forbidden)))
    if not problems:
        return None
    message = "; ".join(problems)
    if len(message) > _MAX_CONTENT_ERROR_CHARS:
        message = message[: _MAX_CONTENT_ERROR_CHARS - 1] + "…"
    return message


def _failed(
    spec: HttpRequestSpec,
    seen: Seen,
    exc: Exception,
    *,
    started_at: datetime,
    timings: dict[str, float],
) -> ProbeResult:
    """Classify an attempt that ended in an exception: no complete answer, so no latency."""
    if isinstance(exc, RedirectLimit):
        # The transport left the last hop in `seen`: where an operator starts looking.
        error = f"more than {spec.max_redirects} redirects; gave up at {redact_url(seen.url)}"
        outcome = Outcome.TOO_LARGE
    elif seen.status is not None and seen.status >= 500:
        # The server already said it is broken; how its body then failed adds little, and a
        # 5xx is never re-tried whatever came after it.
        outcome = Outcome.HTTP_5XX
        error = f"{_status_text(seen.status, seen.reason)}; then the body failed: {_why(exc)}"
    else:
        outcome = classify_exception(exc)
        error = _why(exc)
        if outcome is Outcome.TIMEOUT:
            error = _with_phases(_timeout_text(spec, seen), timings)
    return ProbeResult(
        outcome=outcome,
        started_at=started_at,
        latency=None,
        evidence=_evidence(spec, seen, outcome=outcome, error=error, timings=timings),
        # Only where no answer was judged: a status already seen is the target's own word.
        cause=failure_cause(exc) if outcome is Outcome.CONNECTION_ERROR else None,
    )


def _why(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return "it did not finish in time"
    return one_line(exc)


def _timeout_text(spec: HttpRequestSpec, seen: Seen) -> str:
    budget = f"no complete answer within timeout {spec.timeout.total_seconds():g}s"
    if seen.status is None:
        return budget + " (no response headers arrived)"
    # Headers came but the body never finished: a server dribbling its answer.
    return f"{budget} (status {seen.status} arrived, body stalled after {len(seen.body)} bytes)"


def _with_phases(error: str, timings: Mapping[str, float]) -> str:
    """A slow or timed-out attempt's error, saying which phase took the time, if known."""
    where = where_time_went(timings)
    return error if where is None else f"{error}; {where}"


def _evidence(
    spec: HttpRequestSpec,
    seen: Seen,
    *,
    outcome: Outcome,
    error: str | None,
    timings: dict[str, float],
) -> Evidence:
    # Evidence reaches the timeline, the API, logs and mails: no secrets from the URL, no
    # body of a healthy answer, and nothing the check sent (see checks.scrub).
    excerpt = ""
    if outcome is not Outcome.OK:
        excerpt = clean_text(_decode(seen.body[:EXCERPT_BYTES], seen.charset))
    evidence = Evidence(
        url=redact_url(seen.url),
        status=seen.status,
        error=None if error is None else clean_line(redact_text(error)),
        body_excerpt=excerpt,
        headers=seen.headers,
        timings=timings,
        tls_not_after=seen.tls_not_after,
    )
    return evidence.masked(request_secrets(spec.url, spec.headers, spec.body))


def _note_attempts(result: ProbeResult, attempts: int) -> ProbeResult:
    """Mark a re-tried result, so the timeline shows the first failure was not ignored."""
    evidence = result.evidence
    retries = attempts - 1
    error = evidence.error
    if error is not None:
        error = f"{error} (after {retries} {'retry' if retries == 1 else 'retries'})"
    timings = {**evidence.timings, "attempts": float(attempts)}
    return replace(result, evidence=replace(evidence, error=error, timings=timings))


def _header_evidence(headers: Mapping[str, str]) -> dict[str, str]:
    """Response headers as lower-case name -> first value, bounded in count and length."""
    return header_pairs_evidence(headers.items())


def header_pairs_evidence(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """`_header_evidence` of (name, value) pairs in the order they arrived; sessions and
    credentials (`Set-Cookie`...) are never kept."""
    kept: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in kept or key in SENSITIVE_HEADERS:
            continue
        if len(kept) >= MAX_EVIDENCE_HEADERS:
            break
        kept[key] = value[:_MAX_HEADER_VALUE_CHARS]
    return kept


def _decode(data: bytes | bytearray, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8", errors="replace")
    except LookupError:  # the target named a charset Python does not know
        return data.decode("utf-8", errors="replace")


def _status_text(status: int, reason: str | None) -> str:
    return f"HTTP {status} {reason}" if reason else f"HTTP {status}"


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)

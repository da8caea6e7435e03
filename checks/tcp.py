"""The `tcp` check: connect to a port (optionally over TLS), optionally send a line, and
expect a banner or a reply by regex: a mail server, IMAP, Redis, a database port.

How a probe is judged, first match wins:

1. the host resolves to a link-local or multicast address (a cloud's metadata service
   lives there) and the check does not say `allow_private: true` -> redirect_refused
2. refused, reset, unreachable, no such host                -> connection_error
3. the TLS handshake or the certificate fails                -> tls_error
4. nothing complete within `timeout` (connect, TLS, reply)   -> timeout
5. the reply does not match `expect` before the server stopped sending, the read cap
   (`max_read_bytes`) or the timeout                         -> unexpected_status
   (a reply code or banner is the service's status line; clients read "The server refused
   the request or answered unexpectedly.")
6. the whole exchange took longer than `slow_after`          -> slow
7. the certificate expires within `cert_expiry_warning`      -> cert_expiring
8. otherwise                                                 -> ok

Memory is bounded: at most `max_read_bytes` of the reply is read, whatever the server sends.
The evidence keeps the first 2 KB of the reply (for on-call; client mails never show it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import ssl
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, field_validator

from checks.classify import PROBE_ERRORS, classify_exception, failure_cause, one_line
from checks.dns import valid_host_name
from checks.duration import Duration
from checks.private_ranges import AddressClass, address_class
from checks.resolve import Resolve, system_resolve
from checks.result import Evidence, FailureCause, Outcome, ProbeResult
from checks.scrub import NO_SECRETS, Secrets, clean_text
from checks.spec import ProbeSpec, Regex
from checks.tls import expiry_warning, not_after_from_der

EXCERPT_BYTES = 2048
_READ_CHUNK = 4096
# Never reached through a name without `allow_private`: metadata services and the like.
_GUARDED = frozenset({AddressClass.LINK_LOCAL, AddressClass.MULTICAST})


class TcpCheckSpec(ProbeSpec):
    """`kind: tcp`: a port that must accept a connection (and answer as expected)."""

    kind: Literal["tcp"]
    host: str | None = Field(
        default=None,
        description="Host name or IP address to connect to; default: the site's host.",
    )
    port: int = Field(ge=1, le=65535, description="e.g. 25 (SMTP), 993 (IMAPS), 6379 (Redis).")
    tls: bool = Field(default=False, description="Talk TLS right after connecting (e.g. 465).")
    verify_tls: bool = True
    cert_expiry_warning: Duration = Field(
        default=timedelta(days=14),
        ge=timedelta(0),
        description="With tls: a certificate that expires within this is `cert_expiring`; "
        "0s switches the warning off.",
    )
    send: str | None = Field(
        default=None,
        max_length=1024,
        description="A line to send once connected (CRLF is added), e.g. PING or QUIT.",
    )
    expect: Regex | None = Field(
        default=None,
        description="A regular expression the reply must contain a match of, e.g. '^220 ' "
        "for an SMTP banner or '\\+PONG' for Redis.",
    )
    max_read_bytes: int = Field(
        default=16 * 1024,
        gt=0,
        le=1024 * 1024,
        description="Read at most this much of the reply while looking for `expect`.",
    )
    allow_private: bool = Field(
        default=False,
        description="Connect even when the host name resolves to a link-local or multicast "
        "address (where cloud metadata services answer).",
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value.strip("[]")))
        except ValueError:
            return valid_host_name(value)

    @property
    def target(self) -> str:
        """What the evidence names: `tcp://mail.acme.example:25` (`tls://` with tls)."""
        host = self.host or ""
        shown = f"[{host}]" if ":" in host else host
        return f"{'tls' if self.tls else 'tcp'}://{shown}:{self.port}"


class _Refused(OSError):
    """The host resolves into an address class the check may not reach."""


class _Seen:
    __slots__ = ("connect", "cert", "reply")

    def __init__(self) -> None:
        self.connect: float | None = None
        self.cert: float | None = None
        self.reply = bytearray()


async def probe_tcp(
    spec: TcpCheckSpec,
    *,
    now: Callable[[], datetime],
    monotonic: Callable[[], float] = time.perf_counter,
    ssl_context: ssl.SSLContext | None = None,
    resolve: Resolve = system_resolve,
) -> ProbeResult:
    """Connect to `spec.host` (which the monitor sets to the site's host when the YAML leaves
    it out) and classify what happens. `ssl_context` replaces the default trust (tests pass
    one that trusts their own CA); `resolve` finds a name's addresses. Never raises for what
    a target does."""
    started_at = now()
    if spec.host is None:
        raise ValueError("a tcp check needs a host (the monitor fills in the site's host)")
    seen = _Seen()
    since = monotonic()
    try:
        async with asyncio.timeout(spec.timeout.total_seconds()):
            addresses = await _addresses(spec, resolve)
            matched = await _exchange(spec, addresses, seen, since, monotonic, ssl_context)
    except PROBE_ERRORS as exc:  # _Refused is an OSError
        elapsed = monotonic() - since
        if isinstance(exc, TimeoutError) and spec.expect is not None and seen.reply:
            # It answered, just never what was expected: say so, not "no answer".
            return _mismatch(spec, seen, started_at, elapsed)
        outcome = Outcome.REDIRECT_REFUSED if isinstance(exc, _Refused) else classify_exception(exc)
        cause: FailureCause | None = None
        if outcome is Outcome.CONNECTION_ERROR:
            cause = failure_cause(exc)
        error = str(exc) if isinstance(exc, _Refused) else one_line(exc)
        if isinstance(exc, TimeoutError):
            error = f"no complete answer within {spec.timeout.total_seconds():g}s"
        return _result(spec, outcome, seen, started_at, elapsed, error=error, cause=cause)
    elapsed = monotonic() - since
    if not matched:
        return _mismatch(spec, seen, started_at, elapsed)
    if elapsed > spec.slow_after.total_seconds():
        return _result(spec, Outcome.SLOW, seen, started_at, elapsed)
    expiring = expiry_warning(not_after=seen.cert, now=started_at, window=spec.cert_expiry_warning)
    if expiring is not None:
        return _result(spec, Outcome.CERT_EXPIRING, seen, started_at, elapsed, error=expiring)
    return _result(spec, Outcome.OK, seen, started_at, elapsed)


async def _exchange(
    spec: TcpCheckSpec,
    addresses: list[str],
    seen: _Seen,
    since: float,
    monotonic: Callable[[], float],
    ssl_context: ssl.SSLContext | None,
) -> bool:
    """Connect, send, read until `expect` matches; whether it did (True without `expect`)."""
    context = _context(spec, ssl_context) if spec.tls else None
    reader, writer = await _connect(spec, addresses, context)
    try:
        seen.connect = monotonic() - since
        if context is not None:
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            seen.cert = not_after_from_der(der) if der else None
        if spec.send is not None:
            writer.write(spec.send.rstrip("\r\n").encode() + b"\r\n")
            await writer.drain()
        if spec.expect is None:
            return True
        pattern = re.compile(spec.expect.encode(), re.MULTILINE)
        while len(seen.reply) < spec.max_read_bytes:
            chunk = await reader.read(min(_READ_CHUNK, spec.max_read_bytes - len(seen.reply)))
            if not chunk:
                break
            seen.reply += chunk
            if pattern.search(seen.reply):
                return True
        return False
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass  # the verdict is in; a reset while closing changes nothing


async def _addresses(spec: TcpCheckSpec, resolve: Resolve) -> list[str]:
    assert spec.host is not None
    try:
        ipaddress.ip_address(spec.host)
    except ValueError:
        pass
    else:
        return [spec.host]  # an address written in the config is the operator's own choice
    addresses = await resolve(spec.host, spec.port)
    if not spec.allow_private:
        for address in addresses:
            found = address_class(address)
            if found in _GUARDED:
                raise _Refused(
                    f"{spec.host} resolves to {address}, a {found} address "
                    "(set allow_private: true to connect there)"
                )
    return addresses


async def _connect(
    spec: TcpCheckSpec, addresses: list[str], context: ssl.SSLContext | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The first address that accepts; the last error when none does."""
    last: OSError | None = None
    for address in addresses:
        try:
            return await asyncio.open_connection(
                address,
                spec.port,
                ssl=context,
                server_hostname=spec.host if context is not None else None,
                limit=spec.max_read_bytes,
            )
        except ssl.SSLError:
            raise  # the server answered: its certificate is the verdict, not a next address
        except OSError as exc:
            last = exc
    assert last is not None
    raise last


def _context(spec: TcpCheckSpec, given: ssl.SSLContext | None) -> ssl.SSLContext:
    context = given or ssl.create_default_context()
    if not spec.verify_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _mismatch(spec: TcpCheckSpec, seen: _Seen, started_at: datetime, elapsed: float) -> ProbeResult:
    why = "before the read cap" if len(seen.reply) >= spec.max_read_bytes else "in the reply"
    if not seen.reply:
        why = "(the server sent nothing)"
    return _result(
        spec,
        Outcome.UNEXPECTED_STATUS,
        seen,
        started_at,
        elapsed,
        error=f"expected a match of {spec.expect!r} {why}",
    )


def _result(
    spec: TcpCheckSpec,
    outcome: Outcome,
    seen: _Seen,
    started_at: datetime,
    elapsed: float,
    *,
    error: str | None = None,
    cause: FailureCause | None = None,
) -> ProbeResult:
    timings = {"total": elapsed}
    if seen.connect is not None:
        timings["connect"] = seen.connect
    excerpt = bytes(seen.reply[:EXCERPT_BYTES]).decode("utf-8", errors="replace")
    # What was sent may hold a password (`AUTH ${REDIS_PASSWORD}`): masked where the reply
    # echoes it, the line and each word after its command.
    sent = spec.send.strip() if spec.send else ""
    secrets = Secrets([sent, *sent.split()[1:]]) if sent else NO_SECRETS
    return ProbeResult(
        outcome=outcome,
        started_at=started_at,
        latency=elapsed if seen.connect is not None else None,
        evidence=Evidence(
            url=spec.target,
            error=error,
            body_excerpt=clean_text(excerpt),
            timings=timings,
            tls_not_after=seen.cert,
        ).masked(secrets),
        cause=cause,
    )

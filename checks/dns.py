"""The `dns` check: ask for one record of one name and judge the answer.

A name whose record someone changed, or that stopped resolving, takes a site off the net
before any http check can tell why. The probe asks through the system's resolver or the
servers the check names (`resolvers: ["192.0.2.53", "[2001:db8::53]:5353"]`), with
dnspython's async stub resolver and no cache, so every probe is a fresh question.

How an answer is judged, first match wins:

1. NXDOMAIN, SERVFAIL (or REFUSED) from every server, no answer of the type, or no answer
   at all within `timeout`                                   -> dns_error
2. the answers are not `expect.equals` (as a set), lack one of `expect.contains`, or none of
   them matches `expect.matches` (a regex searched in each) -> dns_mismatch
3. the answer took longer than `slow_after` (`max_answer_time` in the YAML) -> slow
4. otherwise                                                 -> ok

Answers are compared in a normal form: addresses as Python writes them, names in lower case
without the final dot, `MX` as `10 mail.example.com`, `TXT` as its strings joined, `CAA` as
`0 issue letsencrypt.org`.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Literal

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdata
import dns.rdatatype
import dns.resolver
from pydantic import BaseModel, ConfigDict, Field, field_validator

from checks.duration import Duration
from checks.result import FailureCause, Outcome, ProbeResult, timed_result
from checks.spec import ProbeSpec, Regex, check_each

RecordType = Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "CAA"]

_HOST_NAME = re.compile(
    r"^(?=.{1,253}\.?$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9-]{1,63}\.?$"
)
_EXCERPT_ANSWERS = 20  # answers kept as evidence; a TXT-heavy name can have hundreds
_DNS_PORT = 53


def parse_resolver(value: str) -> tuple[str, int]:
    """`192.0.2.53`, `192.0.2.53:5353`, `2001:db8::53` or `[2001:db8::53]:5353` -> (ip, port);
    ValueError with an example otherwise."""
    text = value.strip()
    address, port = text, _DNS_PORT
    if text.startswith("["):
        inner, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(_resolver_error(value))
        address = inner
        if rest:
            port = _port(rest[1:], value)
    elif text.count(":") == 1:
        address, _, port_text = text.partition(":")
        port = _port(port_text, value)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(_resolver_error(value)) from None
    return address, port


def _port(text: str, value: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(_resolver_error(value))
    return int(text)


def _resolver_error(value: str) -> str:
    return (
        "must be a resolver's IP address with an optional port, such as 9.9.9.9, "
        f"9.9.9.9:5353 or [2620:fe::fe]:53 (got {value!r})"
    )


def valid_host_name(value: str) -> str:
    """`value` in lower case when it is a DNS name such as shop.example; ValueError otherwise."""
    name = value.strip().lower()
    if not _HOST_NAME.match(name):
        raise ValueError(f"must be a host name such as shop.example (got {value!r})")
    return name.rstrip(".")


class DnsExpect(BaseModel):
    """What the answers must be. Values are written as the normal form in `checks.dns`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    equals: list[str] | None = Field(
        default=None,
        description="The exact set of answers, in any order, e.g. [203.0.113.10, "
        "203.0.113.11] or ['10 mail.shop.example'].",
    )
    contains: list[str] = Field(
        default_factory=list, description="Answers that must all be among those given."
    )
    matches: Regex | None = Field(
        default=None,
        description="A regular expression that at least one answer must contain a match "
        "of, e.g. '^v=spf1 .* -all$' for a TXT record.",
    )


class DnsCheckSpec(ProbeSpec):
    """`kind: dns`: one record type of one name, through the system's or named resolvers."""

    kind: Literal["dns"]
    name: str | None = Field(
        default=None,
        description="The name to ask for, e.g. shop.example; default: the site's host.",
    )
    record_type: RecordType = Field(default="A", description="A, AAAA, CNAME, MX, TXT, NS or CAA.")
    resolvers: list[str] = Field(
        default_factory=list,
        description="Ask these servers (IP or IP:port) instead of the system's resolver, "
        "e.g. [9.9.9.9, '[2620:fe::fe]:53'].",
    )
    expect: DnsExpect = Field(default_factory=DnsExpect)
    max_answer_time: Duration | None = Field(
        default=None,
        description="An answer slower than this is `slow` (replaces slow_after for this "
        "check), e.g. 500ms.",
    )

    @field_validator("name")
    @classmethod
    def _host_name(cls, value: str | None) -> str | None:
        return None if value is None else valid_host_name(value)

    @field_validator("resolvers")
    @classmethod
    def _resolvers(cls, value: list[str]) -> list[str]:
        check_each(((f"[{index}]", entry) for index, entry in enumerate(value)), parse_resolver)
        return value

    @property
    def target(self) -> str:
        """What the evidence names: `dns://shop.example/MX`."""
        return f"dns://{self.name or ''}/{self.record_type}"


def normal_form(rdata: dns.rdata.Rdata) -> str:
    """One answer as checks compare it (see the module's docstring)."""
    rdtype = rdata.rdtype
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return str(ipaddress.ip_address(rdata.to_text()))
    if rdtype == dns.rdatatype.MX:
        return f"{rdata.preference} {_name(rdata.exchange.to_text())}"  # type: ignore[attr-defined]
    if rdtype == dns.rdatatype.TXT:
        strings: tuple[bytes, ...] = rdata.strings  # type: ignore[attr-defined]
        return b"".join(strings).decode("utf-8", errors="replace")
    if rdtype == dns.rdatatype.CAA:
        value: bytes = rdata.value  # type: ignore[attr-defined]
        tag: bytes = rdata.tag  # type: ignore[attr-defined]
        return f"{rdata.flags} {tag.decode('ascii', 'replace')} {value.decode('utf-8', 'replace')}"  # type: ignore[attr-defined]
    return _name(rdata.to_text())


def normal_value(record_type: RecordType, value: str) -> str:
    """An expected value in the normal form of its record type."""
    text = value.strip()
    if record_type in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            return text
    if record_type in ("CNAME", "NS"):
        return _name(text)
    if record_type == "MX":
        preference, _, exchange = text.partition(" ")
        return f"{preference} {_name(exchange)}" if exchange else text
    if record_type == "CAA":
        return " ".join(part.strip('"') for part in text.split())
    return text


def _name(text: str) -> str:
    return text.lower().rstrip(".")


def mismatch(spec: DnsCheckSpec, answers: list[str]) -> str | None:
    """Why `answers` fail `spec.expect`, or None when they pass."""
    expect = spec.expect
    got = set(answers)
    if expect.equals is not None:
        wanted = {normal_value(spec.record_type, value) for value in expect.equals}
        if wanted != got:
            return f"expected exactly {_listed(wanted)}, got {_listed(got)}"
    missing = [
        value for value in expect.contains if normal_value(spec.record_type, value) not in got
    ]
    if missing:
        return f"expected {_listed(set(missing))} among {_listed(got)}"
    if expect.matches is not None:
        pattern = re.compile(expect.matches)
        if not any(pattern.search(answer) for answer in answers):
            return f"no answer matches {expect.matches!r} (got {_listed(got)})"
    return None


def _listed(values: set[str]) -> str:
    shown = sorted(values)[:_EXCERPT_ANSWERS]
    more = len(values) - len(shown)
    return "[" + ", ".join(shown) + (f", … {more} more" if more > 0 else "") + "]"


def new_resolver(spec: DnsCheckSpec) -> dns.asyncresolver.Resolver:
    """A resolver for one probe: the check's servers (or the system's), no cache, the whole
    probe bounded by `timeout` and shared between the servers, SERVFAIL not retried (it is an
    answer worth reporting)."""
    if spec.resolvers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(address, port)
            for address, port in map(parse_resolver, spec.resolvers)
        ]
    else:
        resolver = dns.asyncresolver.Resolver()
    seconds = spec.timeout.total_seconds()
    resolver.lifetime = seconds
    # Each server gets its share, so one that never answers leaves time to ask the next.
    resolver.timeout = seconds / max(1, len(resolver.nameservers))
    resolver.retry_servfail = False
    resolver.cache = None
    return resolver


async def probe_dns(
    spec: DnsCheckSpec,
    *,
    now: Callable[[], datetime],
    monotonic: Callable[[], float] = time.perf_counter,
) -> ProbeResult:
    """Ask for `spec.record_type` of `spec.name` (which the monitor sets to the site's host
    when the YAML leaves it out) and classify the answer. Never raises for what a server
    does."""
    started_at = now()
    if spec.name is None:
        raise ValueError("a dns check needs a name (the monitor fills in the site's host)")
    resolver = new_resolver(spec)
    since = monotonic()
    try:
        answer = await resolver.resolve(
            spec.name, spec.record_type, search=False, raise_on_no_answer=True
        )
    except dns.exception.DNSException as exc:
        elapsed = monotonic() - since
        return _result(
            spec,
            Outcome.DNS_ERROR,
            started_at,
            elapsed,
            error=dns_error_text(spec, exc),
            cause=resolver_cause(spec, exc),
        )
    elapsed = monotonic() - since
    answers = sorted(normal_form(rdata) for rdata in answer)
    wrong = mismatch(spec, answers)
    if wrong is not None:
        return _result(
            spec, Outcome.DNS_MISMATCH, started_at, elapsed, error=wrong, answers=answers
        )
    if elapsed > spec.slow_after.total_seconds():
        limit = spec.slow_after.total_seconds()
        return _result(
            spec,
            Outcome.SLOW,
            started_at,
            elapsed,
            error=f"answer took {elapsed * 1000:.0f} ms (at most {limit * 1000:.0f} ms)",
            answers=answers,
        )
    return _result(spec, Outcome.OK, started_at, elapsed, answers=answers)


def resolver_cause(spec: DnsCheckSpec, exc: dns.exception.DNSException) -> FailureCause | None:
    """NAME_RESOLUTION when the system's resolver gave no answer at all (silence, SERVFAIL):
    that may be our own resolver down, which `monitor.local_faults` tells apart once names of
    several hosts fail together. Named resolvers, NXDOMAIN and a missing record are answers
    about the name."""
    if spec.resolvers:
        return None
    if isinstance(exc, dns.exception.Timeout | dns.resolver.NoNameservers):
        return FailureCause.NAME_RESOLUTION
    return None


def dns_error_text(spec: DnsCheckSpec, exc: dns.exception.DNSException) -> str:
    """One line saying what the resolver met, by its DNS name (NXDOMAIN, SERVFAIL...)."""
    what = f"{spec.name} {spec.record_type}"
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return f"NXDOMAIN: {spec.name} does not exist"
    if isinstance(exc, dns.resolver.NoAnswer):
        return f"no {spec.record_type} record for {spec.name}"
    if isinstance(exc, dns.resolver.NoNameservers):
        # dnspython lists each server with its rcode; the first one says enough.
        errors = exc.kwargs.get("errors") or []
        rcode = _first_rcode(errors)
        return f"{rcode or 'no usable answer'} from every resolver for {what}"
    if isinstance(exc, dns.exception.Timeout):
        return f"no answer for {what} within {spec.timeout.total_seconds():g}s"
    return f"{type(exc).__name__} for {what}"


def _first_rcode(errors: list[tuple[object, ...]]) -> str | None:
    for entry in errors:
        text = str(entry[-1]) if entry else ""
        for rcode in ("SERVFAIL", "REFUSED", "FORMERR", "NOTIMP"):
            if rcode in text:
                return rcode
    return None


def _result(
    spec: DnsCheckSpec,
    outcome: Outcome,
    started_at: datetime,
    elapsed: float,
    *,
    error: str | None = None,
    answers: list[str] | None = None,
    cause: FailureCause | None = None,
) -> ProbeResult:
    return timed_result(
        outcome,
        cause=cause,
        started_at=started_at,
        elapsed=elapsed,
        url=spec.target,
        error=error,
        excerpt="\n".join((answers or [])[:_EXCERPT_ANSWERS]),
    )

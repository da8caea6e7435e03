"""The `dns` check against a real DNS server on loopback: an answer, a changed record,
SERVFAIL, NXDOMAIN, a missing record type and a server that never answers."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import dns.exception
import dns.resolver
import pytest

from checks.dns import DnsCheckSpec, normal_value, parse_resolver, probe_dns, resolver_cause
from checks.result import FailureCause, Outcome
from tests.dns_server import Mode, dns_server

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
RECORDS = {
    ("shop.acme.example", "A"): ["203.0.113.10", "203.0.113.11"],
    ("shop.acme.example", "MX"): ["10 mail.acme.example.", "20 backup.acme.example."],
    ("shop.acme.example", "TXT"): ['"v=spf1 include:mail.acme.example -all"'],
    ("shop.acme.example", "CAA"): ['0 issue "letsencrypt.org"'],
    ("www.acme.example", "CNAME"): ["shop.acme.example."],
}


def _spec(port: int, **fields: object) -> DnsCheckSpec:
    return DnsCheckSpec.model_validate(
        {
            "kind": "dns",
            "name": "shop.acme.example",
            "resolvers": [f"127.0.0.1:{port}"],
            "timeout": "1s",
        }
        | fields
    )


async def test_expected_answers_are_ok_then_a_changed_record_is_a_mismatch() -> None:
    async with dns_server({**RECORDS}) as server:
        spec = _spec(
            server.port, record_type="A", expect={"equals": ["203.0.113.11", "203.0.113.10"]}
        )
        result = await probe_dns(spec, now=lambda: NOW)
        assert result.outcome is Outcome.OK, result.evidence
        assert result.evidence.body_excerpt.splitlines() == ["203.0.113.10", "203.0.113.11"]
        assert result.latency is not None and result.latency < 1

        server.records[("shop.acme.example", "A")] = ["198.51.100.7"]
        changed = await probe_dns(spec, now=lambda: NOW)
        assert changed.outcome is Outcome.DNS_MISMATCH
        assert changed.evidence.error == (
            "expected exactly [203.0.113.10, 203.0.113.11], got [198.51.100.7]"
        )
        assert changed.evidence.url == "dns://shop.acme.example/A"


@pytest.mark.parametrize(
    ("record_type", "expect", "outcome"),
    [
        ("MX", {"contains": ["10 mail.acme.example"]}, Outcome.OK),
        ("MX", {"contains": ["10 mail.acme.example."]}, Outcome.OK),  # final dot or not
        ("MX", {"contains": ["5 mx.elsewhere.example"]}, Outcome.DNS_MISMATCH),
        ("TXT", {"matches": r"^v=spf1 .* -all$"}, Outcome.OK),
        ("TXT", {"matches": r"~all"}, Outcome.DNS_MISMATCH),
        ("CAA", {"equals": ['0 issue "letsencrypt.org"']}, Outcome.OK),
        ("CAA", {"equals": ["0 issue letsencrypt.org"]}, Outcome.OK),
        ("CAA", {"contains": ["0 issue pki.goog"]}, Outcome.DNS_MISMATCH),
    ],
)
async def test_record_types_compare_in_their_normal_form(
    record_type: str, expect: dict[str, object], outcome: Outcome
) -> None:
    async with dns_server(RECORDS) as server:
        result = await probe_dns(
            _spec(server.port, record_type=record_type, expect=expect), now=lambda: NOW
        )
    assert result.outcome is outcome, result.evidence


async def test_a_cname_answers_its_target() -> None:
    async with dns_server(RECORDS) as server:
        spec = _spec(
            server.port,
            name="WWW.acme.example.",
            record_type="CNAME",
            expect={"equals": ["shop.acme.example"]},
        )
        result = await probe_dns(spec, now=lambda: NOW)
    assert result.outcome is Outcome.OK, result.evidence
    assert spec.name == "www.acme.example"


@pytest.mark.parametrize(
    ("mode", "name", "record_type", "error"),
    [
        (Mode.SERVFAIL, "shop.acme.example", "A", "SERVFAIL from every resolver"),
        (Mode.ANSWER, "gone.acme.example", "A", "NXDOMAIN: gone.acme.example does not exist"),
        (Mode.ANSWER, "shop.acme.example", "AAAA", "no AAAA record for shop.acme.example"),
    ],
)
async def test_failures_to_resolve_are_dns_errors(
    mode: Mode, name: str, record_type: str, error: str
) -> None:
    async with dns_server(RECORDS) as server:
        server.mode = mode
        result = await probe_dns(
            _spec(server.port, name=name, record_type=record_type), now=lambda: NOW
        )
    assert result.outcome is Outcome.DNS_ERROR
    assert result.evidence.error is not None and result.evidence.error.startswith(error)


async def test_a_server_that_never_answers_is_a_dns_error_within_the_timeout() -> None:
    async with dns_server(RECORDS) as server:
        server.mode = Mode.SILENT
        began = time.perf_counter()
        result = await probe_dns(_spec(server.port, timeout="300ms"), now=lambda: NOW)
        took = time.perf_counter() - began
    assert result.outcome is Outcome.DNS_ERROR
    assert result.evidence.error == "no answer for shop.acme.example A within 0.3s"
    assert server.questions >= 1
    assert 0.25 < took < 1.5


async def test_an_answer_slower_than_max_answer_time_is_slow() -> None:
    async with dns_server(RECORDS) as server:
        server.delay = 0.2
        result = await probe_dns(_spec(server.port, slow_after="50ms"), now=lambda: NOW)
    assert result.outcome is Outcome.SLOW
    assert result.latency is not None and result.latency >= 0.2
    assert result.evidence.error is not None and "(at most 50 ms)" in result.evidence.error


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("9.9.9.9", ("9.9.9.9", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("2620:fe::fe", ("2620:fe::fe", 53)),
        ("[2620:fe::fe]:5353", ("2620:fe::fe", 5353)),
    ],
)
def test_resolvers_are_ip_with_optional_port(text: str, parsed: tuple[str, int]) -> None:
    assert parse_resolver(text) == parsed


@pytest.mark.parametrize("text", ["dns.quad9.net", "9.9.9.9:0", "[::1", "1.2.3.4:x"])
def test_a_resolver_that_is_not_an_address_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="must be a resolver's IP address"):
        parse_resolver(text)


def test_expected_values_are_normalised_like_answers() -> None:
    assert normal_value("AAAA", "2001:DB8:0::1") == "2001:db8::1"
    assert normal_value("NS", "NS1.Example.") == "ns1.example"
    assert normal_value("MX", "10 Mail.Example.") == "10 mail.example"


def test_only_silence_of_the_systems_resolver_may_be_our_own_fault() -> None:
    system = DnsCheckSpec.model_validate({"kind": "dns", "name": "shop.acme.example"})
    named = _spec(53)
    silence = dns.exception.Timeout(timeout=1.0)
    servfail = dns.resolver.NoNameservers()
    nxdomain = dns.resolver.NXDOMAIN()
    assert resolver_cause(system, silence) is FailureCause.NAME_RESOLUTION
    assert resolver_cause(system, servfail) is FailureCause.NAME_RESOLUTION
    assert resolver_cause(system, nxdomain) is None  # an answer about the name
    assert resolver_cause(named, silence) is None  # the check chose that server


async def test_a_silent_first_resolver_leaves_time_for_the_second() -> None:
    async with dns_server(RECORDS) as silent, dns_server(RECORDS) as answering:
        silent.mode = Mode.SILENT
        spec = _spec(silent.port, timeout="1s").model_copy(
            update={"resolvers": [silent.address, answering.address]}
        )
        result = await probe_dns(spec, now=lambda: NOW)
    assert result.outcome is Outcome.OK, result.evidence
    assert silent.questions >= 1 and answering.questions >= 1
    assert result.latency is not None and 0.4 < result.latency < 1

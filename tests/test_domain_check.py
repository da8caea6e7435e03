"""The `domain` check against a real RDAP server on loopback: domains expiring in 5, 20 and
400 days and one expired, a server that errors, an answer without an expiry date; the
bootstrap file and the registrable domain of a host."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from checks.domain import DomainCheckSpec, probe_domain
from checks.rdap import (
    SHIPPED_BOOTSTRAP,
    BootstrapError,
    RdapDirectory,
    load_bootstrap,
    parse_bootstrap,
    registrable_domain,
)
from checks.result import Outcome, ProbeResult

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
EXPIRES_IN_DAYS = {"five.example": 5, "twenty.example": 20, "far.example": 400, "gone.example": -3}

AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]


def _answer(domain: str, expires: datetime | None) -> dict[str, object]:
    events: list[dict[str, str]] = [
        {"eventAction": "registration", "eventDate": "2001-05-01T00:00:00Z"}
    ]
    if expires is not None:
        events.append(
            {"eventAction": "expiration", "eventDate": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
        )
    return {"objectClassName": "domain", "ldhName": domain.upper(), "events": events}


@pytest.fixture
async def rdap(aiohttp_server: AiohttpServer) -> tuple[RdapDirectory, list[str]]:
    asked: list[str] = []

    async def domain(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        asked.append(name)
        if name == "moved.example":  # a registry sending the monitor to a metadata service
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")
        if name == "broken.example":
            return web.Response(status=503, text="registry maintenance")
        if name == "nodate.example":
            return web.json_response(_answer(name, None), content_type="application/rdap+json")
        if name not in EXPIRES_IN_DAYS:
            return web.json_response({"errorCode": 404}, status=404)
        expires = NOW + timedelta(days=EXPIRES_IN_DAYS[name], hours=1)
        return web.json_response(_answer(name, expires), content_type="application/rdap+json")

    app = web.Application()
    app.router.add_get("/rdap/domain/{name}", domain)
    server = await aiohttp_server(app)
    directory = RdapDirectory.with_overrides(
        load_bootstrap(), {"example": str(server.make_url("/rdap"))}
    )
    return directory, asked


async def _probe(directory: RdapDirectory, domain: str, **fields: object) -> ProbeResult:
    spec = DomainCheckSpec.model_validate(
        {"kind": "domain", "domain": domain, "timeout": "2s"} | fields
    )
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    async with aiohttp.ClientSession() as session:
        return await probe_domain(
            spec, session=session, directory=directory, now=lambda: NOW, sleep=no_wait
        )


@pytest.mark.parametrize(
    ("domain", "outcome", "error"),
    [
        ("far.example", Outcome.OK, None),
        (
            "twenty.example",
            Outcome.DOMAIN_EXPIRING,
            "registration of twenty.example expires in 20 days (2026-12-24)",
        ),
        (
            "five.example",
            Outcome.DOMAIN_EXPIRING_SOON,
            "registration of five.example expires in 5 days (2026-12-09)",
        ),
        (
            "gone.example",
            Outcome.DOMAIN_EXPIRED,
            "registration of gone.example expired 2 days ago (2026-12-01)",
        ),
    ],
)
async def test_the_days_left_decide_the_outcome(
    rdap: tuple[RdapDirectory, list[str]], domain: str, outcome: Outcome, error: str | None
) -> None:
    directory, asked = rdap
    result = await _probe(directory, domain)
    assert result.outcome is outcome
    evidence = result.evidence
    assert evidence.error == error
    expected = NOW + timedelta(days=EXPIRES_IN_DAYS[domain], hours=1)
    assert evidence.domain_not_after == expected.timestamp()
    assert evidence.url == f"domain://{domain}"
    assert asked == [domain]


async def test_windows_are_the_checks_own(rdap: tuple[RdapDirectory, list[str]]) -> None:
    directory, _ = rdap
    result = await _probe(directory, "far.example", warn_within="500d", urgent_within="60d")
    assert result.outcome is Outcome.DOMAIN_EXPIRING


async def test_a_registry_that_errors_is_unknown_after_one_retry(
    rdap: tuple[RdapDirectory, list[str]],
) -> None:
    directory, asked = rdap
    result = await _probe(directory, "broken.example")
    assert result.outcome is Outcome.DOMAIN_UNKNOWN
    evidence = result.evidence
    assert evidence.status == 503
    assert evidence.error.endswith("/rdap/domain/broken.example failed: HTTP 503")
    assert evidence.domain_not_after is None
    assert asked == ["broken.example", "broken.example"]


@pytest.mark.parametrize(
    ("domain", "said"),
    [
        ("nodate.example", ["has no expiration date"]),
        # As an http check refuses it: a registry cannot make the monitor fetch from inside.
        (
            "moved.example",
            [
                "redirect to http://169.254.169.254/latest/meta-data/ refused",
                "a link-local address",
            ],
        ),
    ],
)
async def test_no_expiry_date_and_a_redirect_inside_are_unknown(
    rdap: tuple[RdapDirectory, list[str]], domain: str, said: list[str]
) -> None:
    directory, _ = rdap
    result = await _probe(directory, domain)
    assert result.outcome is Outcome.DOMAIN_UNKNOWN
    for words in said:
        assert words in result.evidence.error


async def test_a_registry_that_does_not_listen_is_unknown() -> None:
    directory = RdapDirectory.with_overrides({}, {"example": "http://127.0.0.1:9/rdap/"})
    result = await _probe(directory, "far.example")
    assert result.outcome is Outcome.DOMAIN_UNKNOWN
    assert "ClientConnectorError" in result.evidence.error


async def test_a_tld_without_a_server_says_how_to_add_one() -> None:
    result = await _probe(RdapDirectory.with_overrides(load_bootstrap(), {}), "acme.invalid")
    assert result.outcome is Outcome.DOMAIN_UNKNOWN
    assert result.evidence.error == (
        "no RDAP server known for .invalid: add rdap.servers: {invalid: <url>} or run "
        "monitor rdap-bootstrap --update"
    )


def test_the_shipped_bootstrap_knows_common_tlds() -> None:
    servers = load_bootstrap()
    assert servers["com"] == "https://rdap.verisign.com/com/v1/"
    assert RdapDirectory(servers=servers).base_for("shop.acme.co.uk") == (
        "https://rdap.nominet.uk/uk/"
    )


def test_a_refreshed_bootstrap_file_replaces_the_shipped_one(tmp_path: Path) -> None:
    path = tmp_path / "dns.json"
    path.write_text(
        json.dumps({"services": [[["example"], ["http://rdap.test/a", "https://rdap.test/b"]]]})
    )
    assert load_bootstrap(path) == {"example": "https://rdap.test/b/"}
    assert load_bootstrap(tmp_path / "missing.json") == load_bootstrap(SHIPPED_BOOTSTRAP)


def test_a_malformed_bootstrap_names_its_source() -> None:
    with pytest.raises(BootstrapError, match=r"^here: services\[0\] is not"):
        parse_bootstrap({"services": [["com"]]}, source="here")


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("www.shop.acme.co.uk", "acme.co.uk"),
        ("shop.acme.example", "acme.example"),
        ("acme.de", "acme.de"),
        ("acme.github.io", "github.io"),  # the registration is github.io's
        ("127.0.0.1", None),
        ("co.uk", None),
    ],
)
def test_the_registrable_domain_of_a_host(host: str, domain: str | None) -> None:
    assert registrable_domain(host) == domain

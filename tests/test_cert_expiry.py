"""Certificate expiry: leaves made at test time by a throwaway CA (trustme), served by aiohttp
over TLS on 127.0.0.1; reading notAfter from DER is also tested on certificates alone."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from pytest_aiohttp import AiohttpServer
from yarl import URL

from checks.http import HttpCheckSpec, HttpRequestSpec, probe_http
from checks.page import PageCheckSpec, probe_page
from checks.result import Evidence, Outcome, ProbeResult
from checks.tls import PeerCertResponse, days_left, expiry_warning, not_after_from_der

# Certificates are checked by OpenSSL against the real clock, so the probe's clock is real too.
NOW = datetime.now(UTC).replace(microsecond=0)
PAGE = '<html><body>shop<img src="/logo.png"></body></html>'


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def serve_tls(
    aiohttp_server: AiohttpServer, ca: trustme.CA, *, not_after: datetime, logo_status: int = 200
) -> URL:
    """An https site whose leaf certificate runs out at `not_after`."""
    leaf = ca.issue_cert("127.0.0.1", not_before=NOW - timedelta(days=30), not_after=not_after)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def logo(request: web.Request) -> web.Response:
        return web.Response(body=b"png", status=logo_status)

    app = web.Application()
    app.add_routes([web.get("/", page), web.get("/logo.png", logo)])  # GET serves HEAD too
    server = await aiohttp_server(app, ssl=context)
    url = server.make_url("/")
    assert url.scheme == "https"
    return url


def new_session(*, trust: trustme.CA | None) -> aiohttp.ClientSession:
    context = ssl.create_default_context()
    if trust is not None:
        trust.configure_trust(context)
    connector = aiohttp.TCPConnector(force_close=True, ssl=context)
    return aiohttp.ClientSession(connector=connector, response_class=PeerCertResponse)


@pytest.fixture
async def session(ca: trustme.CA) -> AsyncIterator[aiohttp.ClientSession]:
    """A session that trusts the test CA, as the system's CAs trust a real site's."""
    async with new_session(trust=ca) as client:
        yield client


@pytest.fixture
async def untrusting() -> AsyncIterator[aiohttp.ClientSession]:
    async with new_session(trust=None) as client:
        yield client


async def probe(spec: HttpRequestSpec, session: aiohttp.ClientSession) -> ProbeResult:
    return await probe_http(spec, session=session, now=lambda: NOW, retry_wait=0)


def http_spec(url: object, **fields: Any) -> HttpCheckSpec:
    return HttpCheckSpec.model_validate({"url": str(url), **fields})


# --- http probe --------------------------------------------------------------------------


async def test_a_certificate_far_from_expiry_is_ok_and_its_expiry_is_reported(
    aiohttp_server: AiohttpServer, ca: trustme.CA, session: aiohttp.ClientSession
) -> None:
    not_after = NOW + timedelta(days=200)
    url = await serve_tls(aiohttp_server, ca, not_after=not_after)

    result = await probe(http_spec(url), session)

    assert result.outcome is Outcome.OK
    assert result.evidence.tls_not_after == not_after.timestamp()
    assert result.evidence.to_dict()["tls_not_after"] == not_after.timestamp()
    assert days_left(not_after.timestamp(), NOW) == 200


async def test_a_certificate_expiring_within_the_window_is_cert_expiring(
    aiohttp_server: AiohttpServer, ca: trustme.CA, session: aiohttp.ClientSession
) -> None:
    not_after = NOW + timedelta(days=7, hours=1)
    url = await serve_tls(aiohttp_server, ca, not_after=not_after)

    result = await probe(http_spec(url), session)

    assert result.outcome is Outcome.CERT_EXPIRING
    assert result.evidence.error == f"certificate expires in 7 days ({not_after:%Y-%m-%d})"
    assert result.evidence.status == 200
    assert result.latency is not None
    assert result.evidence.tls_not_after == not_after.timestamp()


@pytest.mark.parametrize(("window", "outcome"), [("0s", Outcome.OK), ("5d", Outcome.OK),
                                                 ("8d", Outcome.CERT_EXPIRING)])  # fmt: skip
async def test_the_warning_window_is_configurable_and_0_switches_it_off(
    aiohttp_server: AiohttpServer,
    ca: trustme.CA,
    session: aiohttp.ClientSession,
    window: str,
    outcome: Outcome,
) -> None:
    url = await serve_tls(aiohttp_server, ca, not_after=NOW + timedelta(days=7))

    result = await probe(http_spec(url, cert_expiry_warning=window), session)

    assert result.outcome is outcome
    assert result.evidence.tls_not_after is not None  # still reported for the metric


async def test_an_expired_certificate_is_tls_error(
    aiohttp_server: AiohttpServer, ca: trustme.CA, session: aiohttp.ClientSession
) -> None:
    url = await serve_tls(aiohttp_server, ca, not_after=NOW - timedelta(days=1))

    result = await probe(http_spec(url), session)

    assert result.outcome is Outcome.TLS_ERROR
    assert result.evidence.error is not None
    assert "certificate has expired" in result.evidence.error


async def test_without_verification_the_expiry_is_still_read(
    aiohttp_server: AiohttpServer, ca: trustme.CA, untrusting: aiohttp.ClientSession
) -> None:
    not_after = NOW + timedelta(days=7, hours=1)
    url = await serve_tls(aiohttp_server, ca, not_after=not_after)

    result = await probe(http_spec(url, verify_tls=False), untrusting)

    assert result.outcome is Outcome.CERT_EXPIRING
    assert result.evidence.tls_not_after == not_after.timestamp()


async def test_without_verification_an_expired_certificate_is_cert_expiring(
    aiohttp_server: AiohttpServer, ca: trustme.CA, untrusting: aiohttp.ClientSession
) -> None:
    not_after = NOW - timedelta(days=3, hours=1)
    url = await serve_tls(aiohttp_server, ca, not_after=not_after)

    result = await probe(http_spec(url, verify_tls=False), untrusting)

    assert result.outcome is Outcome.CERT_EXPIRING
    assert result.evidence.error == f"certificate expired 3 days ago ({not_after:%Y-%m-%d})"


async def test_the_certificate_is_read_even_without_a_body(
    aiohttp_server: AiohttpServer, ca: trustme.CA, session: aiohttp.ClientSession
) -> None:
    # A HEAD answer ends with its headers: aiohttp releases the connection before the
    # response is handed over, which is why PeerCertResponse reads it at the start.
    not_after = NOW + timedelta(days=90)
    url = await serve_tls(aiohttp_server, ca, not_after=not_after)

    result = await probe(http_spec(url, method="HEAD"), session)

    assert result.outcome is Outcome.OK
    assert result.evidence.tls_not_after == not_after.timestamp()


async def test_a_session_without_peer_cert_response_reports_no_expiry(
    aiohttp_server: AiohttpServer, ca: trustme.CA
) -> None:
    url = await serve_tls(aiohttp_server, ca, not_after=NOW + timedelta(days=2))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    connector = aiohttp.TCPConnector(force_close=True, ssl=context)
    async with aiohttp.ClientSession(connector=connector) as plain_session:
        result = await probe(http_spec(url), plain_session)

    assert result.outcome is Outcome.OK
    assert result.evidence.tls_not_after is None


async def test_plain_http_has_no_certificate(
    aiohttp_server: AiohttpServer, session: aiohttp.ClientSession
) -> None:
    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="plain")

    app = web.Application()
    app.add_routes([web.get("/", plain)])
    server = await aiohttp_server(app)

    result = await probe(http_spec(server.make_url("/")), session)

    assert result.outcome is Outcome.OK
    assert result.evidence.tls_not_after is None


async def test_slow_wins_over_cert_expiring(
    aiohttp_server: AiohttpServer, ca: trustme.CA, session: aiohttp.ClientSession
) -> None:
    url = await serve_tls(aiohttp_server, ca, not_after=NOW + timedelta(days=2))

    # 0s: any answer is slower than that, without a server that sleeps.
    result = await probe(http_spec(url, slow_after="0s"), session)

    assert result.outcome is Outcome.SLOW
    assert result.evidence.tls_not_after is not None


# --- page probe --------------------------------------------------------------------------


async def test_a_page_with_an_expiring_certificate_is_cert_expiring(
    aiohttp_server: AiohttpServer, ca: trustme.CA, session: aiohttp.ClientSession
) -> None:
    not_after = NOW + timedelta(days=9, hours=1)
    url = await serve_tls(aiohttp_server, ca, not_after=not_after)
    spec = PageCheckSpec.model_validate({"kind": "page", "url": str(url)})

    result = await probe_page(spec, session=session, now=lambda: NOW)

    assert result.outcome is Outcome.CERT_EXPIRING
    assert result.evidence.error == f"certificate expires in 9 days ({not_after:%Y-%m-%d})"
    assert result.evidence.tls_not_after == not_after.timestamp()
    assert result.evidence.timings["assets"] == 1


async def test_a_broken_asset_wins_over_cert_expiring(
    aiohttp_server: AiohttpServer, ca: trustme.CA, session: aiohttp.ClientSession
) -> None:
    url = await serve_tls(aiohttp_server, ca, not_after=NOW + timedelta(days=2), logo_status=404)
    spec = PageCheckSpec.model_validate({"kind": "page", "url": str(url)})

    result = await probe_page(spec, session=session, now=lambda: NOW)

    assert result.outcome is Outcome.BROKEN_ASSET
    assert result.evidence.error == "1 of 1 assets failed: /logo.png (404)"
    assert result.evidence.tls_not_after is not None


# --- reading and judging the expiry ------------------------------------------------------


@pytest.mark.parametrize(
    "not_after",
    [
        datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),  # the last UTCTime
        datetime(2050, 1, 1, tzinfo=UTC),  # GeneralizedTime from here on
        datetime(1999, 6, 30, 12, 0, 1, tzinfo=UTC),  # UTCTime of the 1900s (YY >= 50)
        datetime(3000, 1, 1, tzinfo=UTC),
    ],
)
def test_not_after_is_read_from_der(ca: trustme.CA, not_after: datetime) -> None:
    leaf = ca.issue_cert(
        "shop.example", not_before=datetime(1990, 1, 1, tzinfo=UTC), not_after=not_after
    )
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())

    assert not_after_from_der(der) == not_after.timestamp()


def test_not_after_of_a_ca_certificate_too(ca: trustme.CA) -> None:
    der = ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode())

    assert not_after_from_der(der) is not None


@pytest.mark.parametrize("der", [b"", b"\x30", b"\x30\x03\x02\x01\x00", b"not a certificate"])
def test_unreadable_der_gives_none(der: bytes) -> None:
    assert not_after_from_der(der) is None


def test_truncated_der_gives_none(ca: trustme.CA) -> None:
    der = ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode())

    assert not_after_from_der(der[: len(der) // 3]) is None


AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("left", "warning"),
    [
        (timedelta(days=20), None),
        (timedelta(days=14, seconds=1), None),
        (timedelta(days=14), "certificate expires in 14 days (2026-12-10)"),
        (timedelta(days=9, hours=11), "certificate expires in 9 days (2026-12-05)"),
        (timedelta(days=1, hours=2), "certificate expires in 1 day (2026-11-27)"),
        (timedelta(hours=5, minutes=30), "certificate expires in 5 hours (2026-11-26)"),
        (timedelta(hours=1), "certificate expires in 1 hour (2026-11-26)"),
        (timedelta(minutes=10), "certificate expires in less than an hour (2026-11-26)"),
        (-timedelta(hours=2), "certificate expired 2 hours ago (2026-11-26)"),
        (-timedelta(days=40), "certificate expired 40 days ago (2026-10-17)"),
    ],
)
def test_expiry_warning(left: timedelta, warning: str | None) -> None:
    not_after = (AT + left).timestamp()

    assert expiry_warning(not_after=not_after, now=AT, window=timedelta(days=14)) == warning


def test_expiry_warning_needs_an_expiry_and_a_window() -> None:
    soon = (AT + timedelta(days=1)).timestamp()

    assert expiry_warning(not_after=None, now=AT, window=timedelta(days=14)) is None
    assert expiry_warning(not_after=soon, now=AT, window=timedelta(0)) is None


def test_days_left() -> None:
    assert days_left((AT + timedelta(days=2, hours=12)).timestamp(), AT) == 2.5
    assert days_left((AT - timedelta(days=1)).timestamp(), AT) == -1


def test_evidence_tls_not_after_defaults_to_none() -> None:
    evidence = Evidence(url="https://shop.example/")

    assert evidence.tls_not_after is None
    assert evidence.to_dict()["tls_not_after"] is None


def test_cert_expiry_warning_defaults_to_14_days_and_rejects_negatives() -> None:
    assert HttpCheckSpec().cert_expiry_warning == timedelta(days=14)
    assert PageCheckSpec(kind="page").cert_expiry_warning == timedelta(days=14)
    with pytest.raises(ValueError, match="cert_expiry_warning"):
        HttpCheckSpec(cert_expiry_warning=timedelta(days=-1))

"""Secrets in a check's URL (user:password@, a ?token=) never reach its evidence or errors:
`checks.redact` itself, then http, flow and page checks against loopback servers."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer
from yarl import URL

from checks.classify import one_line
from checks.flow import FlowCheckSpec, probe_flow
from checks.http import HttpCheckSpec, probe_http
from checks.page import PageCheckSpec, probe_page
from checks.redact import redact_text, redact_url
from checks.result import Outcome, ProbeResult

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
USER, PASSWORD, TOKEN = "monitor", "pw-Sup3rSecret", "tok-9f2c1a7e5b3d"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

# --- the helper ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://u:pw@shop.example:8443/health?token=s3cret#top",
            "https://shop.example:8443/health?…",
        ),
        ("https://shop.example/health", "https://shop.example/health"),
        ("http://u@[::1]:8080/a?b", "http://[::1]:8080/a?…"),
        ("https://shop.example/?", "https://shop.example/"),
        # Does not parse (a bad port, an unclosed IPv6 bracket): cut down by hand.
        ("http://u:pw@host:99999999/p?token=s3cret", "http://host:99999999/p?…"),
        ("http://u:pw@[::1/p?token=s3cret", "http://[::1/p?…"),
    ],
)
def test_redact_url_drops_userinfo_and_query(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_url(shown) == shown  # idempotent: redacting twice changes nothing


def test_redact_text_redacts_every_url_in_a_message() -> None:
    text = "gave up at http://u:pw@a.example/x?token=1; see URL('https://b.example/?k=2')"
    assert redact_text(text) == "gave up at http://a.example/x?…; see URL('https://b.example/?…')"


def test_one_line_redacts_a_url_quoted_by_an_exception() -> None:
    exc = aiohttp.NonHttpUrlRedirectClientError(f"ftp://{USER}:{PASSWORD}@h.example/?t={TOKEN}")
    text = one_line(exc)
    assert text == "NonHttpUrlRedirectClientError: ftp://h.example/?…"


# --- the checks on loopback ---------------------------------------------------------------------


def assert_no_secret(result: ProbeResult) -> None:
    evidence = result.evidence
    for shown in (evidence.url, evidence.error or ""):
        assert PASSWORD not in shown
        assert TOKEN not in shown
        assert USER not in shown
    assert evidence.url.endswith("?…") or "?" not in evidence.url


def secret_url(base: URL, path_qs: str) -> str:
    """`base` joined with `path_qs`, with the check's user:password in it."""
    return str(base.join(URL(path_qs)).with_user(USER).with_password(PASSWORD))


def routes() -> list[web.RouteDef]:
    def authorized(request: web.Request) -> bool:
        return request.headers.get("Authorization") == AUTH

    async def health(request: web.Request) -> web.Response:
        if not authorized(request) or request.query.get("token") != TOKEN:
            return web.Response(status=403, text="forbidden")
        return web.Response(status=503, text="database down")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/loop?token={TOKEN}")

    async def elsewhere(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"ftp://{USER}:{PASSWORD}@files.example/?token={TOKEN}")

    async def page(request: web.Request) -> web.Response:
        html = '<link rel="stylesheet" href="site.css"><img src="missing.png">'
        if request.query.get("assets") == "fine":
            html = '<link rel="stylesheet" href="site.css">'
        return web.Response(text=f"<html><head>{html}</head></html>", content_type="text/html")

    async def asset(request: web.Request) -> web.Response:
        return web.Response(text="body{}", content_type="text/css")

    return [
        web.get("/health", health),
        web.get("/loop", loop),
        web.get("/elsewhere", elsewhere),
        web.get("/shop/page", page),
        web.get("/shop/site.css", asset),
    ]


@pytest.fixture
async def base(aiohttp_server: AiohttpServer) -> URL:
    app = web.Application()
    app.add_routes(routes())
    server = await aiohttp_server(app)
    return server.make_url("/")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        yield s


async def no_wait(seconds: float) -> None:
    pass


async def http(url: str, session: aiohttp.ClientSession, **fields: object) -> ProbeResult:
    spec = HttpCheckSpec.model_validate({"url": url, **fields})
    return await probe_http(spec, session=session, now=lambda: NOW, retry_wait=0, sleep=no_wait)


async def test_http_evidence_hides_the_password_and_token(
    base: URL, session: aiohttp.ClientSession
) -> None:
    result = await http(secret_url(base, f"/health?token={TOKEN}"), session)

    # The server saw the real credentials and token (else it would say 403).
    assert (result.outcome, result.evidence.status) == (Outcome.HTTP_5XX, 503)
    assert result.evidence.url == str(base.join(URL("/health"))) + "?…"
    assert_no_secret(result)


async def test_a_redirect_loop_with_a_token_is_too_large_without_the_token(
    base: URL, session: aiohttp.ClientSession
) -> None:
    result = await http(secret_url(base, f"/loop?token={TOKEN}"), session, max_redirects=3)

    assert result.outcome is Outcome.TOO_LARGE
    assert result.evidence.error == (
        f"more than 3 redirects; gave up at {base.join(URL('/loop'))}?…"
    )
    assert_no_secret(result)


async def test_a_redirect_to_a_url_with_secrets_is_reported_without_them(
    base: URL, session: aiohttp.ClientSession
) -> None:
    result = await http(secret_url(base, f"/elsewhere?token={TOKEN}"), session)

    assert result.outcome is not Outcome.OK
    assert result.evidence.error is not None
    assert "ftp://files.example/?…" in result.evidence.error
    assert_no_secret(result)


async def test_an_unreachable_url_is_reported_without_its_secrets(
    session: aiohttp.ClientSession,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/health?token={TOKEN}"

    result = await http(url, session)

    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.evidence.url == f"http://127.0.0.1:{port}/health?…"
    assert_no_secret(result)


async def test_flow_evidence_hides_the_password_and_token(
    base: URL, session: aiohttp.ClientSession
) -> None:
    spec = FlowCheckSpec.model_validate(
        {
            "kind": "flow",
            "url": secret_url(base, "/"),
            "steps": [
                {"name": "health", "url": f"/health?token={TOKEN}"},
                {"name": "loop", "url": f"/loop?token={TOKEN}", "always": True},
            ],
        }
    )
    result = await probe_flow(spec, session=session, now=lambda: NOW)

    assert (result.outcome, result.evidence.status) == (Outcome.HTTP_5XX, 503)
    assert result.evidence.url == str(base.join(URL("/health"))) + "?…"
    assert result.evidence.error is not None
    # The cleanup step's redirect loop is named in the error too, without the token.
    assert f"gave up at {base.join(URL('/loop'))}?…" in result.evidence.error
    assert_no_secret(result)

    loop_only = spec.model_copy(update={"steps": spec.steps[1:]})
    looped = await probe_flow(loop_only, session=session, now=lambda: NOW)
    assert looped.outcome is Outcome.TOO_LARGE
    assert_no_secret(looped)


async def page(url: str, session: aiohttp.ClientSession) -> ProbeResult:
    spec = PageCheckSpec.model_validate({"kind": "page", "url": url})
    return await probe_page(spec, session=session, now=lambda: NOW, retry_wait=0, sleep=no_wait)


async def test_page_assets_resolve_against_the_real_url_but_evidence_is_redacted(
    base: URL, session: aiohttp.ClientSession
) -> None:
    fine = await page(secret_url(base, f"/shop/page?assets=fine&token={TOKEN}"), session)

    # The stylesheet was found relative to the page's real URL, not its redacted form.
    assert fine.outcome is Outcome.OK
    assert fine.evidence.timings["assets"] == 1.0
    assert fine.evidence.url == str(base.join(URL("/shop/page"))) + "?…"
    assert_no_secret(fine)

    broken = await page(secret_url(base, f"/shop/page?token={TOKEN}"), session)

    assert broken.outcome is Outcome.BROKEN_ASSET
    assert broken.evidence.error == "1 of 2 assets failed: /shop/missing.png (404)"
    assert_no_secret(broken)

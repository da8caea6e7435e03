"""Evidence that is safe to keep (issue 11, failure 1): what probes saw, without what they
must not keep.

A target that sets a session cookie, reflects the check's API key and echoes a flow's form
back is served on 127.0.0.1; the evidence of every transport keeps no `Set-Cookie`, masks
every value the check sent, keeps a body excerpt only for failures and no control character.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer
from yarl import URL

from checks.flow import FlowCheckSpec, probe_flow
from checks.http import HttpCheckSpec, probe_http
from checks.lean_http import LeanTransport
from checks.result import Evidence, Outcome, ProbeResult
from checks.scrub import MASK, Secrets, clean_line, clean_text, request_secrets
from monitor.runtime import new_session

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
API_KEY = "k-5ecret-api-key"
PASSWORD = "pw-Hunter2!"
CARD = "4242 4242 4242 4242"
CVC = "737"  # shorter than masking's minimum: masked only because it is marked secret
SESSION = "sess-b1a2c3d4e5"


async def serve(aiohttp_server: AiohttpServer, *routes: web.RouteDef) -> URL:
    app = web.Application()
    app.add_routes(routes)
    server = await aiohttp_server(app)
    return server.make_url("/")


async def reflecting(request: web.Request) -> web.Response:
    """A broken API that reflects its caller's key and sets a session, as some do."""
    key = request.headers.get("X-Api-Key", "")
    response = web.Response(
        status=500,
        text=f"error for key={key} (url-encoded: {URL.build(query={'k': key}).query_string})"
        "\x1b[31m\x00 <- terminal codes",
        headers={"X-Echo-Key": key, "Authorization": f"Bearer {key}"},
    )
    response.set_cookie("session", SESSION)
    return response


@pytest.fixture(params=["lean", "aiohttp"])
async def http_client(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "lean":
        lean = LeanTransport()
        yield {"transport": lean}
        await lean.close()
        return
    session = new_session(max_connections=4)
    yield {"session": session}
    await session.close()


async def http_probe(spec: HttpCheckSpec, client: dict[str, Any]) -> ProbeResult:
    async def no_wait(seconds: float) -> None:
        pass

    return await probe_http(spec, now=lambda: NOW, retry_wait=0, sleep=no_wait, **client)


def stored(evidence: Evidence) -> str:
    """Everything of the evidence that the database, the API and mails get."""
    return repr(evidence.to_dict())


async def test_http_evidence_keeps_no_cookie_nor_configured_secret(
    aiohttp_server: AiohttpServer, http_client: dict[str, Any]
) -> None:
    url = await serve(aiohttp_server, web.get("/api", reflecting))
    spec = HttpCheckSpec.model_validate(
        {"url": str(url / "api"), "headers": {"X-Api-Key": API_KEY}}
    )

    result = await http_probe(spec, http_client)

    assert result.outcome is Outcome.HTTP_5XX
    evidence = result.evidence
    assert "set-cookie" not in evidence.headers
    assert "authorization" not in evidence.headers
    assert evidence.headers["x-echo-key"] == MASK
    assert evidence.body_excerpt.startswith(f"error for key={MASK} (url-encoded: k={MASK})")
    for kept in (evidence.body_excerpt, stored(evidence)):
        assert API_KEY not in kept and SESSION not in kept
        assert "\x1b" not in kept and "\x00" not in kept


async def test_a_healthy_answer_keeps_no_body_excerpt(
    aiohttp_server: AiohttpServer, http_client: dict[str, Any]
) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=f"Hello {request.headers.get('X-Api-Key')}, your orders")

    url = await serve(aiohttp_server, web.get("/", page))
    spec = HttpCheckSpec.model_validate(
        {"url": str(url), "headers": {"X-Api-Key": API_KEY}, "body_contains": ["your orders"]}
    )

    result = await http_probe(spec, http_client)

    assert result.outcome is Outcome.OK
    assert result.evidence.body_excerpt == ""


def login_flow(url: URL, **changes: Any) -> FlowCheckSpec:
    return FlowCheckSpec.model_validate(
        {
            "url": str(url),
            "steps": [
                {
                    "name": "login",
                    "method": "POST",
                    "url": "/login",
                    "form": {
                        "user": "probe@agency.example",
                        "password": {"value": PASSWORD, "secret": True},
                    },
                    "save": {"token": {"regex": "token=(\\w+)"}},
                },
                {
                    "name": "pay",
                    "method": "POST",
                    "url": "/pay",
                    "headers": {"X-Csrf": "{{token}}"},
                    "form": {
                        "card": {"value": CARD, "secret": True},
                        "cvc": {"value": CVC, "secret": True},
                    },
                    "expect": {"body_contains": ["Order confirmed"]},
                },
            ],
            **changes,
        }
    )


async def shop(aiohttp_server: AiohttpServer) -> URL:
    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        response = web.Response(text=f"Welcome {form['user']} token=csrf0123456789")
        response.set_cookie("session", SESSION)
        return response

    async def pay(request: web.Request) -> web.Response:
        form = await request.post()
        # A payment page that fails and echoes the form back, as the issue saw.
        return web.Response(
            text=f"<p>Payment failed</p><input name=card value='{form['card']}'>"
            f"<input name=cvc value={form['cvc']}> csrf={request.headers.get('X-Csrf')}"
            f" session={request.cookies.get('session')}",
            content_type="text/html",
        )

    return await serve(aiohttp_server, web.post("/login", login), web.post("/pay", pay))


async def test_flow_evidence_masks_form_values_saved_values_and_the_session(
    aiohttp_server: AiohttpServer,
) -> None:
    url = await shop(aiohttp_server)
    session = new_session(max_connections=4)
    try:
        result = await probe_flow(login_flow(url), session=session, now=lambda: NOW)
    finally:
        await session.close()

    assert result.outcome is Outcome.CONTENT_MISMATCH
    evidence = result.evidence
    assert evidence.step == "pay"
    assert "Payment failed" in evidence.body_excerpt  # what failed is still shown
    assert f"value='{MASK}'" in evidence.body_excerpt
    assert f"value={MASK}>" in evidence.body_excerpt  # the short CVC too: marked secret
    for secret in (CARD, CVC, "csrf0123456789", SESSION):
        assert secret not in stored(evidence), secret
    assert "set-cookie" not in evidence.headers


async def test_a_passing_flow_keeps_no_excerpt(aiohttp_server: AiohttpServer) -> None:
    async def confirm(request: web.Request) -> web.Response:
        form = await request.post()
        return web.Response(text=f"Order confirmed for card {form['card']}")

    url = await serve(aiohttp_server, web.post("/pay", confirm))
    spec = FlowCheckSpec.model_validate(
        {
            "url": str(url),
            "steps": [
                {
                    "name": "pay",
                    "method": "POST",
                    "url": "/pay",
                    "form": {"card": {"value": CARD, "secret": True}},
                    "expect": {"body_contains": ["Order confirmed"]},
                }
            ],
        }
    )
    async with aiohttp.ClientSession() as session:
        result = await probe_flow(spec, session=session, now=lambda: NOW)

    assert result.outcome is Outcome.OK
    assert result.evidence.body_excerpt == ""


def test_stored_evidence_drops_session_headers_and_control_characters_whoever_built_it() -> None:
    evidence = Evidence(
        url="http://shop.example/\x1b[2J",
        status=200,
        error="bad\r\nX-Injected: 1",
        body_excerpt="line1\r\nline2\u2028line3\x00\x1b[31m",
        headers={"Set-Cookie": SESSION, "cookie": SESSION, "x-ok": "fine\x07"},
        step="pay\n",
    )

    kept = evidence.to_dict()

    assert kept["headers"] == {"x-ok": "fine "}
    assert kept["error"] == "bad  X-Injected: 1"
    assert kept["body_excerpt"] == "line1\nline2\nline3[31m"
    assert kept["url"] == "http://shop.example/ [2J"
    assert kept["step"] == "pay "


def test_what_a_request_sends_is_masked_in_its_parts_too() -> None:
    secrets = request_secrets(
        "https://probe:pw-1234@shop.example/api?token=qs-5678",
        {"Authorization": "Bearer tok-9012", "Accept": "application/json"},
        '{"password": "body-3456"}',
    )

    for sent in ("pw-1234", "qs-5678", "tok-9012", "body-3456", "cHJvYmU6cHctMTIzNA=="):
        assert secrets.mask(f"echo {sent}!") == f"echo {MASK}!", sent
    assert secrets.mask("application/json") == "application/json"


def test_secrets_are_masked_as_servers_echo_them() -> None:
    secrets = Secrets(["p@ss word&<x>", "ab"], strict=["x1"])

    assert secrets.mask("raw p@ss word&<x>") == f"raw {MASK}"
    assert secrets.mask("form p%40ss+word%26%3Cx%3E") == f"form {MASK}"
    assert secrets.mask("html p@ss word&amp;&lt;x&gt;") == f"html {MASK}"
    assert secrets.mask("short ab stays, strict x1 goes") == f"short ab stays, strict {MASK} goes"
    assert not Secrets(["ab"])


@pytest.mark.parametrize(
    ("text", "line", "lines"),
    [
        ("a\r\nb", "a  b", "a\nb"),
        ("a\u202eb", "a b", "ab"),  # a bidi override could reorder what a reader sees
        ("a\x85b\tc", "a b c", "a\nb\tc"),
    ],
)
def test_control_characters(text: str, line: str, lines: str) -> None:
    assert clean_line(text) == line
    assert clean_text(text) == lines

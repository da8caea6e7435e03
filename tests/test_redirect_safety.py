"""Redirects stay where they belong, on every transport (issue 11, failures 2 and 3).

- a hop to another origin carries none of the check's configured headers nor the
  credentials of its URL (lean http, aiohttp http, page assets, flow steps);
- a page whose HTML ended up on another origin loads no assets there;
- a hop to a name that resolves into a private or link-local range is refused before any
  connection to it, with the outcome `redirect_refused` naming the hop (redacted).

Names resolve through a resolver the test injects (`internal.test` -> 10.1.2.3), so nothing
here connects anywhere but 127.0.0.1; tests/test_redirect_namespace.py follows such hops
(and a loopback hop from a public address) to real servers inside a network namespace.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
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
from checks.page import PageCheckSpec, probe_page
from checks.private_ranges import AddressClass, address_class, guarded_socket
from checks.result import Outcome, ProbeResult
from tests.name_resolvers import StaticResolver, lean_resolver

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SECRET_KEY = "k-5ecret-api-key"
BEARER = "Bearer t0ken-of-the-check"


class Recorder:
    """An aiohttp handler that answers `text` and keeps the headers of every request."""

    def __init__(self, text: str = "ok", content_type: str = "text/plain") -> None:
        self.text = text
        self.content_type = content_type
        self.headers: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        return web.Response(text=self.text, content_type=self.content_type)


def redirect_to(location: Callable[[], str], seen: Recorder | None = None) -> Any:
    async def handle(request: web.Request) -> web.Response:
        if seen is not None:
            seen.headers.append(dict(request.headers))
        raise web.HTTPFound(location())

    return handle


async def serve(aiohttp_server: AiohttpServer, *routes: web.RouteDef) -> URL:
    app = web.Application()
    app.add_routes(routes)
    server = await aiohttp_server(app)
    return server.make_url("/")


class SocketLog:
    """`guarded_socket` that also notes the address of every socket it handed out."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def __call__(self, addr_info: tuple[Any, ...]) -> socket.socket:
        sock = guarded_socket(addr_info)
        self.made.append(str(addr_info[4][0]))
        return sock


@pytest.fixture
async def sockets() -> SocketLog:
    return SocketLog()


def session_with(names: dict[str, str], sockets: SocketLog) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        force_close=True, resolver=StaticResolver(names), socket_factory=sockets
    )
    return aiohttp.ClientSession(connector=connector)


@pytest.fixture(params=["lean", "aiohttp"])
async def http_probe(
    request: pytest.FixtureRequest, sockets: SocketLog
) -> AsyncIterator[Callable[[HttpCheckSpec, dict[str, str]], Any]]:
    """Runs an http check through one transport, with test names resolved as given."""
    closers: list[Any] = []

    async def run(spec: HttpCheckSpec, names: dict[str, str]) -> ProbeResult:
        if request.param == "lean":
            lean = LeanTransport(resolver=lean_resolver(names))
            closers.append(lean.close)
            return await probe_http(spec, transport=lean, now=lambda: NOW, retry_wait=0)
        session = session_with(names, sockets)
        closers.append(session.close)
        return await probe_http(spec, session=session, now=lambda: NOW, retry_wait=0)

    yield run
    for close in closers:
        await close()


# -- address classes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", AddressClass.LOOPBACK),
        ("0.0.0.0", AddressClass.LOOPBACK),  # connects to this machine on Linux
        ("::1", AddressClass.LOOPBACK),
        ("::ffff:127.0.0.1", AddressClass.LOOPBACK),
        ("169.254.169.254", AddressClass.LINK_LOCAL),
        ("fe80::1%eth0", AddressClass.LINK_LOCAL),
        ("10.1.2.3", AddressClass.PRIVATE),
        ("172.16.0.1", AddressClass.PRIVATE),
        ("192.168.1.1", AddressClass.PRIVATE),
        ("100.64.0.1", AddressClass.PRIVATE),  # carrier-grade NAT: not global
        ("fd00::1", AddressClass.PRIVATE),
        ("::ffff:10.0.0.1", AddressClass.PRIVATE),
        ("224.0.0.1", AddressClass.MULTICAST),
        ("ff02::1", AddressClass.MULTICAST),
        ("8.8.8.8", AddressClass.PUBLIC),
        ("2606:4700::1111", AddressClass.PUBLIC),
        # IPv6 addresses that carry an IPv4 one lead where that one does.
        ("64:ff9b::a9fe:a9fe", AddressClass.LINK_LOCAL),  # NAT64 to 169.254.169.254
        ("64:ff9b::7f00:1", AddressClass.LOOPBACK),
        ("64:ff9b::808:808", AddressClass.PUBLIC),  # NAT64 to 8.8.8.8
        ("2002:a00:1::1", AddressClass.PRIVATE),  # 6to4 via 10.0.0.1
        ("2002:808:808::1", AddressClass.PUBLIC),
        ("::a9fe:a9fe", AddressClass.LINK_LOCAL),  # IPv4-compatible 169.254.169.254
        ("::", AddressClass.LOOPBACK),
    ],
)
def test_address_classes(address: str, expected: AddressClass) -> None:
    assert address_class(address) is expected


# -- cross-origin hops -----------------------------------------------------------------------


async def test_an_http_hop_to_another_origin_carries_no_configured_header_nor_credentials(
    aiohttp_server: AiohttpServer, http_probe: Any
) -> None:
    landed = Recorder()
    other = await serve(aiohttp_server, web.get("/landing", landed.handle))
    home = Recorder()
    url = await serve(
        aiohttp_server, web.get("/", redirect_to(lambda: str(other / "landing"), home))
    )
    spec = HttpCheckSpec.model_validate(
        {
            "url": str(url.with_user("probe").with_password("pw")),
            "headers": {"X-Api-Key": SECRET_KEY, "X-Trace": "t-1"},
        }
    )

    result = await http_probe(spec, {})

    assert result.outcome is Outcome.OK
    assert home.headers[0]["X-Api-Key"] == SECRET_KEY
    assert home.headers[0]["Authorization"].startswith("Basic ")
    [there] = landed.headers
    assert {"X-Api-Key", "X-Trace", "Authorization"}.isdisjoint(there)


async def test_an_http_hop_within_the_origin_keeps_headers_and_credentials(
    aiohttp_server: AiohttpServer, http_probe: Any
) -> None:
    landed = Recorder()
    url = await serve(
        aiohttp_server,
        web.get("/", redirect_to(lambda: "/landing")),
        web.get("/landing", landed.handle),
    )
    spec = HttpCheckSpec.model_validate(
        {
            "url": str(url.with_user("probe").with_password("pw")),
            "headers": {"Authorization": BEARER, "X-Api-Key": SECRET_KEY},
        }
    )

    result = await http_probe(spec, {})

    assert result.outcome is Outcome.OK
    [there] = landed.headers
    assert there["X-Api-Key"] == SECRET_KEY
    assert there["Authorization"] == BEARER


async def test_a_flow_step_header_stays_home_but_the_synthetic_header_goes_along(
    aiohttp_server: AiohttpServer, sockets: SocketLog
) -> None:
    landed = Recorder()
    other = await serve(aiohttp_server, web.get("/landing", landed.handle))
    home = Recorder()
    url = await serve(
        aiohttp_server, web.get("/go", redirect_to(lambda: str(other / "landing"), home))
    )
    spec = FlowCheckSpec.model_validate(
        {
            "url": str(url),
            "steps": [
                {
                    "name": "go",
                    "url": "/go",
                    "headers": {"Authorization": BEARER, "X-Api-Key": SECRET_KEY},
                }
            ],
        }
    )

    async with session_with({}, sockets) as session:
        result = await probe_flow(spec, session=session, now=lambda: NOW)

    assert result.outcome is Outcome.OK
    assert home.headers[0]["X-Api-Key"] == SECRET_KEY
    [there] = landed.headers
    assert {"X-Api-Key", "Authorization"}.isdisjoint(there)
    assert there["X-Synthetic-Check"] == "agency-monitor"


async def test_a_page_that_lands_on_another_origin_loads_no_assets_there(
    aiohttp_server: AiohttpServer, sockets: SocketLog
) -> None:
    asset = Recorder()
    other = await serve(
        aiohttp_server,
        web.get("/", Recorder('<img src="/logo.png">', content_type="text/html").handle),
        web.get("/logo.png", asset.handle),
    )
    url = await serve(aiohttp_server, web.get("/", redirect_to(lambda: str(other))))
    spec = PageCheckSpec.model_validate(
        {"kind": "page", "url": str(url), "headers": {"X-Api-Key": SECRET_KEY}}
    )

    async with session_with({}, sockets) as session:
        result = await probe_page(spec, session=session, now=lambda: NOW, retry_wait=0)

    assert result.outcome is Outcome.OK
    assert result.evidence.timings["assets"] == 0
    assert asset.headers == []


async def test_a_page_asset_redirected_to_another_origin_gets_no_configured_header(
    aiohttp_server: AiohttpServer, sockets: SocketLog
) -> None:
    cdn = Recorder()
    other = await serve(aiohttp_server, web.get("/logo.png", cdn.handle))
    html = Recorder('<img src="/logo.png">', content_type="text/html")
    url = await serve(
        aiohttp_server,
        web.get("/", html.handle),
        web.get("/logo.png", redirect_to(lambda: str(other / "logo.png"))),
    )
    spec = PageCheckSpec.model_validate(
        {"kind": "page", "url": str(url), "headers": {"Authorization": BEARER}}
    )

    async with session_with({}, sockets) as session:
        result = await probe_page(spec, session=session, now=lambda: NOW, retry_wait=0)

    assert result.outcome is Outcome.OK
    assert html.headers[0]["Authorization"] == BEARER
    [there] = cdn.headers
    assert "Authorization" not in there


# -- hops into private ranges ----------------------------------------------------------------

INTERNAL = ["10.1.2.3", "169.254.169.254"]


def refused_hop(port: int) -> str:
    return f"http://internal.test:{port}/admin?token=s3cret-query"


def assert_refused(result: ProbeResult, address: str, port: int) -> None:
    assert result.outcome is Outcome.REDIRECT_REFUSED
    error = result.evidence.error or ""
    assert f"http://internal.test:{port}/admin?…" in error, error
    assert address in error
    assert "s3cret-query" not in error


@pytest.mark.parametrize("address", INTERNAL)
async def test_an_http_hop_to_a_name_resolving_internal_is_refused(
    aiohttp_server: AiohttpServer, http_probe: Any, sockets: SocketLog, address: str
) -> None:
    url = await serve(aiohttp_server, web.get("/", redirect_to(lambda: refused_hop(8080))))
    spec = HttpCheckSpec.model_validate({"url": str(url)})

    result = await http_probe(spec, {"internal.test": address})

    assert_refused(result, address, 8080)
    assert address not in sockets.made  # refused before a socket was made for it


@pytest.mark.parametrize("address", INTERNAL)
async def test_a_flow_hop_to_a_name_resolving_internal_is_refused(
    aiohttp_server: AiohttpServer, sockets: SocketLog, address: str
) -> None:
    url = await serve(aiohttp_server, web.get("/login", redirect_to(lambda: refused_hop(8080))))
    spec = FlowCheckSpec.model_validate(
        {"url": str(url), "steps": [{"name": "login", "url": "/login"}]}
    )

    async with session_with({"internal.test": address}, sockets) as session:
        result = await probe_flow(spec, session=session, now=lambda: NOW)

    assert_refused(result, address, 8080)
    assert result.evidence.step == "login"
    assert sockets.made == ["127.0.0.1"]


async def test_a_page_asset_hop_into_a_private_range_is_refused(
    aiohttp_server: AiohttpServer, sockets: SocketLog
) -> None:
    html = Recorder('<img src="/logo.png">', content_type="text/html")
    url = await serve(
        aiohttp_server,
        web.get("/", html.handle),
        web.get("/logo.png", redirect_to(lambda: refused_hop(80))),
    )
    spec = PageCheckSpec.model_validate({"kind": "page", "url": str(url)})

    async with session_with({"internal.test": "169.254.169.254"}, sockets) as session:
        result = await probe_page(spec, session=session, now=lambda: NOW, retry_wait=0)

    assert result.outcome is Outcome.BROKEN_ASSET
    assert "/logo.png (redirect to an internal address refused)" in (result.evidence.error or "")
    assert "169.254.169.254" not in sockets.made


async def test_an_ip_literal_hop_is_refused_without_a_lookup(
    aiohttp_server: AiohttpServer, http_probe: Any, sockets: SocketLog
) -> None:
    url = await serve(
        aiohttp_server, web.get("/", redirect_to(lambda: "http://169.254.169.254/latest/"))
    )

    result = await http_probe(HttpCheckSpec.model_validate({"url": str(url)}), {})

    assert result.outcome is Outcome.REDIRECT_REFUSED
    assert "http://169.254.169.254/latest/" in (result.evidence.error or "")
    assert "169.254.169.254" not in sockets.made


async def test_a_loopback_check_may_redirect_within_loopback(
    aiohttp_server: AiohttpServer, http_probe: Any
) -> None:
    landed = Recorder()
    other = await serve(aiohttp_server, web.get("/landing", landed.handle))
    url = await serve(
        aiohttp_server,
        web.get("/", redirect_to(lambda: f"http://loopback.test:{other.port}/landing")),
    )

    result = await http_probe(
        HttpCheckSpec.model_validate({"url": str(url)}), {"loopback.test": "127.0.0.1"}
    )

    assert result.outcome is Outcome.OK
    assert len(landed.headers) == 1

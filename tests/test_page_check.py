"""Wire tests of the page check: every page and asset is served by a real aiohttp app on
127.0.0.1; asset discovery is also tested on plain strings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError
from pytest_aiohttp import AiohttpServer
from yarl import URL

from checks.html_assets import find_assets
from checks.page import PageCheckSpec, probe_page
from checks.result import Outcome, ProbeResult
from checks.tls import PeerCertResponse

NOW = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)


# --- a controllable site -----------------------------------------------------------------


@dataclass
class Asset:
    body: bytes = b"x" * 100
    status: int = 200
    delay: float = 0.0  # the target being slow, not the test waiting
    hang: bool = False  # never answer (until the test ends)
    endless: bool = False  # stream a body that never ends (bounded at 64 MiB)
    reset: bool = False  # drop the connection without a word
    redirect: str | None = None  # answer 302 to this location
    content_type: str = "application/octet-stream"


@dataclass
class Site:
    """Pages and assets by path; counts hits and how many asset requests run at once."""

    pages: dict[str, Asset] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    active: int = 0
    max_active: int = 0
    # Asset handlers hold until this many run at once (or 1 s passed), so a concurrent probe
    # shows its full concurrency and a sequential one cannot fake it.
    hold_until_active: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)
    finish: asyncio.Event = field(default_factory=asyncio.Event)  # set when the test ends
    stopped_streaming: asyncio.Event = field(default_factory=asyncio.Event)
    streamed: int = 0

    def page(self, path: str, html: str, *, status: int = 200) -> None:
        self.pages[path] = Asset(body=html.encode(), status=status, content_type="text/html")

    def asset(self, path: str, **behaviour: Any) -> None:
        self.pages[path] = Asset(**behaviour)

    def redirect(self, path: str, location: str) -> None:
        self.pages[path] = Asset(redirect=location, content_type="text/html")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path_qs] = self.hits.get(request.path_qs, 0) + 1
        asset = self.pages.get(request.path)
        if asset is None:
            return web.Response(status=404, text="not found")
        if asset.redirect is not None:
            raise web.HTTPFound(asset.redirect)
        if asset.content_type == "text/html":
            return web.Response(body=asset.body, status=asset.status, content_type="text/html")
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            return await self._answer(request, asset)
        finally:
            self.active -= 1

    async def _answer(self, request: web.Request, asset: Asset) -> web.StreamResponse:
        if self.hold_until_active:
            if self.active >= self.hold_until_active:
                self.released.set()
            try:
                await asyncio.wait_for(self.released.wait(), timeout=1.0)
            except TimeoutError:
                pass
        if asset.hang:
            await self.finish.wait()
        if asset.reset:
            assert request.transport is not None
            request.transport.abort()
            raise web.HTTPInternalServerError()  # never sent: the connection is gone
        if asset.delay:
            await asyncio.sleep(asset.delay)
        if asset.endless:
            return await self._stream(request)
        return web.Response(body=asset.body, status=asset.status, content_type=asset.content_type)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"z" * 16384
        try:
            for _ in range(4096):  # bounded at 64 MiB; the probe should hang up long before
                await response.write(chunk)
                self.streamed += len(chunk)
        except ConnectionError:
            pass
        finally:
            self.stopped_streaming.set()
        return response


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    target = Site()
    yield target
    target.finish.set()  # let hanging handlers end before their server shuts down


async def serve(aiohttp_server: AiohttpServer, site: Site) -> URL:
    server = await aiohttp_server(site.app())
    return server.make_url("/")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # As the monitor does: a fresh connection for every request.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(
        connector=connector, response_class=PeerCertResponse
    ) as client:
        yield client


def make_spec(url: object, **fields: Any) -> PageCheckSpec:
    return PageCheckSpec.model_validate({"kind": "page", "url": str(url), **fields})


async def probe(spec: PageCheckSpec, session: aiohttp.ClientSession) -> ProbeResult:
    async def no_wait(seconds: float) -> None:
        pass

    return await probe_page(spec, session=session, now=lambda: NOW, retry_wait=0, sleep=no_wait)


SHOP_PAGE = """<!doctype html>
<html><head>
  <link rel="stylesheet" href="/static/site.css">
  <link rel="icon" href="/favicon.ico">
  <script src="/static/app.js"></script>
</head><body>
  <h1>Mugs</h1>
  <img src="/static/mug.png"><img src="/static/cup.png"><img src="static/logo.png">
  <img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
  <img src="/static/mug.png#again">
</body></html>"""

SHOP_ASSETS = ["/static/site.css", "/static/app.js", "/static/mug.png", "/static/cup.png",
               "/static/logo.png"]  # fmt: skip


def shop(site: Site) -> None:
    site.page("/", SHOP_PAGE)
    for path in SHOP_ASSETS:
        site.asset(path)


# --- outcomes ----------------------------------------------------------------------------


async def test_page_with_fine_assets_is_ok_and_counts_them(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession
) -> None:
    shop(site)
    url = await serve(aiohttp_server, site)

    result = await probe(make_spec(url, body_contains=["Mugs"]), session)

    assert result.outcome is Outcome.OK
    assert result.evidence.error is None
    assert result.evidence.status == 200
    assert result.evidence.body_excerpt == ""  # a healthy answer keeps no excerpt (checks.scrub)
    timings = result.evidence.timings
    assert timings["assets"] == 5
    assert timings["total"] <= timings["full_load"] == result.latency
    # Every asset once (the #fragment is the same image); the icon and data: URI cost nothing.
    assert {path: site.hits.get(path) for path in SHOP_ASSETS} == dict.fromkeys(SHOP_ASSETS, 1)
    assert "/favicon.ico" not in site.hits


async def test_a_missing_image_is_broken_asset_naming_it(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession
) -> None:
    shop(site)
    site.asset("/static/mug.png", status=404)
    site.asset("/static/app.js", status=503)
    url = await serve(aiohttp_server, site)

    result = await probe(make_spec(url), session)

    assert result.outcome is Outcome.BROKEN_ASSET
    assert result.evidence.error == (
        "2 of 5 assets failed: /static/app.js (503), /static/mug.png (404)"
    )
    assert result.evidence.status == 200  # the page itself answered
    assert result.evidence.timings["assets"] == 5


async def test_an_asset_that_never_answers_is_broken_within_the_timeout(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession
) -> None:
    shop(site)
    site.asset("/static/cup.png", hang=True)
    url = await serve(aiohttp_server, site)
    started = time.perf_counter()

    result = await probe(make_spec(url, timeout="300ms"), session)

    assert time.perf_counter() - started < 2.0
    assert result.outcome is Outcome.BROKEN_ASSET
    assert result.evidence.error == "1 of 5 assets failed: /static/cup.png (timeout)"
    assert result.latency is not None and result.latency >= 0.3


async def test_assets_still_queued_at_the_timeout_are_named_too(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession
) -> None:
    shop(site)
    for path in SHOP_ASSETS:
        site.asset(path, hang=True)
    url = await serve(aiohttp_server, site)

    result = await probe(make_spec(url, timeout="200ms", asset_concurrency=2), session)

    assert result.outcome is Outcome.BROKEN_ASSET
    assert result.evidence.error == (
        "5 of 5 assets failed: /static/site.css (timeout), /static/app.js (timeout), "
        "/static/mug.png (not fetched within timeout), /static/cup.png (not fetched within "
        "timeout), /static/logo.png (not fetched within timeout)"
    )


async def test_an_asset_whose_connection_breaks_is_broken(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession
) -> None:
    site.page("/", '<img src="/ok.png"><script src="/reset.js"></script>')
    site.asset("/ok.png")
    site.asset("/reset.js", reset=True)
    url = await serve(aiohttp_server, site)

    result = await probe(make_spec(url), session)

    assert result.outcome is Outcome.BROKEN_ASSET
    assert result.evidence.error == "1 of 2 assets failed: /reset.js (connection failed)"


async def test_a_slow_asset_makes_the_full_load_slow(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession
) -> None:
    shop(site)
    site.asset("/static/site.css", delay=0.3)
    url = await serve(aiohttp_server, site)

    result = await probe(make_spec(url, slow_after="200ms"), session)

    assert result.outcome is Outcome.SLOW
    timings = result.evidence.timings
    assert timings["total"] < 0.2 <= 0.3 <= timings["full_load"] == result.latency
    assert result.evidence.error is not None
    assert result.evidence.error.startswith("full page load (HTML and 5 assets) took ")
    assert result.evidence.error.endswith("more than slow_after 0.2s")


async def test_a_broken_asset_wins_over_slow(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession
) -> None:
    shop(site)
    site.asset("/static/site.css", delay=0.3)
    site.asset("/static/logo.png", status=404)
    url = await serve(aiohttp_server, site)

    result = await probe(make_spec(url, slow_after="200ms"), session)

    assert result.outcome is Outcome.BROKEN_ASSET


async def test_a_failing_page_keeps_its_outcome_and_fetches_no_asset(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession
) -> None:
    shop(site)
    site.page("/", SHOP_PAGE, status=500)
    url = await serve(aiohttp_server, site)

    result = await probe(make_spec(url), session)

    assert result.outcome is Outcome.HTTP_5XX
    assert result.evidence.error == "HTTP 500 Internal Server Error"
    assert "assets" not in result.evidence.timings
    assert site.hits == {"/": 1}


async def test_a_content_mismatch_fetches_no_asset(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession
) -> None:
    shop(site)
    url = await serve(aiohttp_server, site)

    result = await probe(make_spec(url, body_not_contains=["Mugs"]), session)

    assert result.outcome is Outcome.CONTENT_MISMATCH
    assert site.hits == {"/": 1}


# --- which assets ------------------------------------------------------------------------


async def test_cross_origin_assets_are_ignored(
    aiohttp_server: AiohttpServer, session: aiohttp.ClientSession
) -> None:
    cdn, shop_site = Site(), Site()
    cdn.asset("/lib.js")
    cdn_url = await serve(aiohttp_server, cdn)
    port = URL(str(await serve(aiohttp_server, shop_site))).port
    shop_site.page(
        "/",
        f'<script src="{cdn_url}lib.js"></script>'
        f'<img src="//127.0.0.1:{cdn_url.port}/lib.js">'
        # Same server, but another host name is another origin, as in a browser.
        f'<img src="http://localhost:{port}/other-host.png">'
        '<img src="/own.png">',
    )
    shop_site.asset("/own.png")
    shop_site.asset("/other-host.png")

    result = await probe(make_spec(f"http://127.0.0.1:{port}/"), session)

    assert result.outcome is Outcome.OK
    assert result.evidence.timings["assets"] == 1
    assert cdn.hits == {}
    assert shop_site.hits == {"/": 1, "/own.png": 1}


async def test_relative_urls_resolve_against_the_final_url(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession
) -> None:
    site.redirect("/old-mug", "/shop/products/mug.html")
    site.page(
        "/shop/products/mug.html",
        '<img src="mug.png"><img src="../cart.png"><link rel=stylesheet href="./a.css?v=2">',
    )
    for path in ("/shop/products/mug.png", "/shop/cart.png", "/shop/products/a.css"):
        site.asset(path)
    url = await serve(aiohttp_server, site)

    result = await probe(make_spec(url.join(URL("/old-mug"))), session)

    assert result.outcome is Outcome.OK
    assert result.evidence.url.endswith("/shop/products/mug.html")
    assert result.evidence.timings["assets"] == 3
    assert site.hits == {
        "/old-mug": 1,
        "/shop/products/mug.html": 1,
        "/shop/products/mug.png": 1,
        "/shop/cart.png": 1,
        "/shop/products/a.css?v=2": 1,
    }


async def test_base_href_decides_where_relative_urls_point(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession
) -> None:
    site.page(
        "/shop/index.html",
        '<head><base href="/static/v2/"><base href="/ignored/"></head>'
        '<img src="logo.png"><script src="js/app.js"></script><img src="/abs.png">',
    )
    for path in ("/static/v2/logo.png", "/static/v2/js/app.js", "/abs.png"):
        site.asset(path)
    url = await serve(aiohttp_server, site)

    result = await probe(make_spec(url.join(URL("/shop/index.html"))), session)

    assert result.outcome is Outcome.OK
    assert set(site.hits) == {
        "/shop/index.html",
        "/static/v2/logo.png",
        "/static/v2/js/app.js",
        "/abs.png",
    }


async def test_max_assets_is_respected_in_page_order(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession
) -> None:
    site.page("/", "".join(f'<img src="/img/{n}.png">' for n in range(10)))
    for n in range(10):
        site.asset(f"/img/{n}.png")
    url = await serve(aiohttp_server, site)

    result = await probe(make_spec(url, max_assets=4), session)

    assert result.outcome is Outcome.OK
    assert result.evidence.timings["assets"] == 4
    assert set(site.hits) == {"/", "/img/0.png", "/img/1.png", "/img/2.png", "/img/3.png"}


async def test_max_assets_zero_loads_the_html_only(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession
) -> None:
    shop(site)
    url = await serve(aiohttp_server, site)

    result = await probe(make_spec(url, max_assets=0), session)

    assert result.outcome is Outcome.OK
    assert result.evidence.timings["assets"] == 0
    assert site.hits == {"/": 1}


@pytest.mark.parametrize("limit", [1, 3])
async def test_asset_requests_are_bounded_by_asset_concurrency(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession, limit: int
) -> None:
    site.page("/", "".join(f'<img src="/img/{n}.png">' for n in range(12)))
    for n in range(12):
        site.asset(f"/img/{n}.png", delay=0.01)
    site.hold_until_active = limit
    url = await serve(aiohttp_server, site)

    result = await probe(make_spec(url, asset_concurrency=limit), session)

    assert result.outcome is Outcome.OK
    assert result.evidence.timings["assets"] == 12
    assert site.max_active == limit


# --- bounded reading ---------------------------------------------------------------------


async def test_an_endless_asset_is_read_up_to_its_cap_and_dropped(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession
) -> None:
    site.page("/", '<img src="/huge.png"><img src="/small.png">')
    site.asset("/huge.png", endless=True)
    site.asset("/small.png")
    url = await serve(aiohttp_server, site)
    started = time.perf_counter()

    result = await probe(make_spec(url, max_asset_bytes=64 * 1024), session)

    assert time.perf_counter() - started < 2.0
    assert result.outcome is Outcome.OK  # a big image still shows; it is not broken
    await asyncio.wait_for(site.stopped_streaming.wait(), timeout=5)
    # The server stopped because the probe hung up, with only socket buffers' worth sent.
    assert site.streamed < 16 * 1024 * 1024


async def test_max_total_bytes_stops_reading_the_page_s_assets(
    aiohttp_server: AiohttpServer, site: Site, session: aiohttp.ClientSession
) -> None:
    site.page("/", '<img src="/huge.png">')
    site.asset("/huge.png", endless=True)
    url = await serve(aiohttp_server, site)

    result = await probe(make_spec(url, max_total_bytes=128 * 1024), session)

    assert result.outcome is Outcome.OK
    await asyncio.wait_for(site.stopped_streaming.wait(), timeout=5)
    assert site.streamed < 16 * 1024 * 1024


# --- the spec ----------------------------------------------------------------------------


def test_spec_defaults_and_kind() -> None:
    spec = PageCheckSpec(kind="page")

    assert spec.kind == "page"
    assert (spec.max_assets, spec.asset_concurrency) == (50, 6)
    assert spec.max_asset_bytes == 5 * 1024 * 1024
    assert spec.slow_after.total_seconds() == 5


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "http"},
        {},  # a page check must say `kind: page`: without it a check is an http check
        {"kind": "page", "asset_concurrency": 0},
        {"kind": "page", "max_assets": -1},
        {"kind": "page", "max_asset_bytes": 0},
    ],
)
def test_spec_rejects(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PageCheckSpec.model_validate(fields)


# --- finding assets in HTML --------------------------------------------------------------

PAGE = "https://shop.example/products/mug"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<img src="a.png">', ["https://shop.example/products/a.png"]),
        ('<IMG SRC="/A.png"/>', ["https://shop.example/A.png"]),
        ('<img src="  /spaced.png \n">', ["https://shop.example/spaced.png"]),
        ('<img src="/a.png?x=1&amp;y=2">', ["https://shop.example/a.png?x=1&y=2"]),
        ('<link rel="Stylesheet" href="/s.css">', ["https://shop.example/s.css"]),
        ('<link rel="preload stylesheet" href="/s.css">', ["https://shop.example/s.css"]),
        ('<link rel="alternate stylesheet" href="/alt.css">', []),
        ('<link rel="icon" href="/favicon.ico">', []),
        ('<link href="/no-rel.css">', []),
        ('<script src="/app.js"></script>', ["https://shop.example/app.js"]),
        ("<script>document.write('<img src=/in-script.png>')</script>", []),
        ('<img src="data:image/png;base64,AAAA">', []),
        ('<img src="javascript:void(0)">', []),
        ('<img src="">', []),
        ("<img>", []),
        ('<img src="http://[broken">', []),
        ('<img src="http://shop.example/plain.png">', []),  # another scheme: another origin
        ('<img src="https://shop.example:443/port.png">', ["https://shop.example/port.png"]),
        ('<img src="https://SHOP.example/case.png">', ["https://shop.example/case.png"]),
        ('<img src="https://shop.example:8443/other-port.png">', []),
        ('<img src="//cdn.example/x.png">', []),
        ('<img src="/a.png#one"><img src="/a.png#two"><img src="/a.png">',
         ["https://shop.example/a.png"]),
        ('<img src="/first.png" src="/second.png">', ["https://shop.example/first.png"]),
        ('<base href="https://cdn.example/"><img src="x.png">', []),
        ('<img src="x.png"><base href="/static/">', ["https://shop.example/static/x.png"]),
    ],
)  # fmt: skip
def test_find_assets(html: str, expected: list[str]) -> None:
    assert find_assets(html, page_url=PAGE, limit=50) == expected


def test_find_assets_stops_at_the_limit_after_dropping_duplicates() -> None:
    html = '<img src="/a.png"><img src="/a.png"><img src="//cdn.example/b.png"><img src="/c.png">'

    assert find_assets(html, page_url=PAGE, limit=2) == [
        "https://shop.example/a.png",
        "https://shop.example/c.png",
    ]


def test_find_assets_survives_broken_markup() -> None:
    html = '<html><img src="/a.png" <div <<script src="/b.js"></scr'

    assert "https://shop.example/a.png" in find_assets(html, page_url=PAGE, limit=50)

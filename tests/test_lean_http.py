"""Wire tests of what only the lean transport does (tests/test_http_probe.py runs every probe
test through it and through aiohttp alike): what it sends, redirects, bodies framed every way,
oversized heads, TLS with a throwaway CA, source addresses, IPv6 and its DNS cache."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trustme
from aiohttp import web
from pytest_aiohttp import AiohttpServer
from yarl import URL

from checks.http import EXCERPT_BYTES, Fetched, HttpCheckSpec, fetch_http
from checks.lean_http import (
    DEFAULT_USER_AGENT,
    FALLBACK_DELAY,
    LeanTransport,
    system_resolver,
)
from checks.result import Outcome, ProbeResult
from tests.helpers import eventually, skip_unless_required
from tests.test_http_probe import (
    RawServer,
    Reader,
    SleepLog,
    Writer,
    make_spec,
    read_request,
    reset,
    serve_app,
    text_handler,
)

# Certificates are checked by OpenSSL against the real clock, so the probe's clock is real.
NOW = datetime.now(UTC).replace(microsecond=0)
Behave = Callable[[int, Reader, Writer], Awaitable[None]]


@pytest.fixture
async def lean() -> AsyncIterator[LeanTransport]:
    transport = LeanTransport()
    yield transport
    await transport.close()


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Behave], Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def start(behave: Behave) -> RawServer:
        server = RawServer(behave)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


async def fetch(
    transport: LeanTransport, spec: HttpCheckSpec, sleeps: SleepLog | None = None
) -> Fetched:
    return await fetch_http(
        spec,
        transport=transport,
        now=lambda: NOW,
        retry_wait=0.01,
        sleep=sleeps if sleeps is not None else SleepLog(),
    )


async def probe(transport: LeanTransport, spec: HttpCheckSpec) -> ProbeResult:
    return (await fetch(transport, spec)).result


class Recorder:
    """An aiohttp handler that answers 200 and keeps every request it saw."""

    def __init__(self, text: str = "ok") -> None:
        self.text = text
        self.requests: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": dict(request.headers),
                "body": await request.read(),
                "remote": request.remote,
            }
        )
        return web.Response(text=self.text)


# --- what is sent ------------------------------------------------------------------------


async def test_sends_host_user_agent_and_connection_close_and_no_accept_encoding(
    aiohttp_server: AiohttpServer, lean: LeanTransport
) -> None:
    recorder = Recorder()
    url = await serve_app(aiohttp_server, web.get("/health", recorder.handle))

    result = await probe(lean, make_spec(url.join(URL("/health?full=1"))))

    assert result.outcome is Outcome.OK
    [seen] = recorder.requests
    assert seen["method"] == "GET" and seen["path"] == "/health?full=1"
    headers = seen["headers"]
    assert headers["Host"] == f"127.0.0.1:{url.port}"
    assert headers["User-Agent"] == DEFAULT_USER_AGENT
    assert headers["Connection"] == "close"
    assert headers["Accept"] == "*/*"
    assert "Accept-Encoding" not in headers
    assert "Content-Length" not in headers


async def test_the_checks_headers_override_the_defaults_but_not_the_framing(
    aiohttp_server: AiohttpServer, lean: LeanTransport
) -> None:
    recorder = Recorder()
    url = await serve_app(aiohttp_server, web.get("/", recorder.handle))
    spec = make_spec(
        url,
        headers={
            "User-Agent": "shop-probe/2",
            "Accept": "text/html",
            "Host": "shop.example",
            "Connection": "keep-alive",
            "X-Token": "t",
        },
    )

    result = await probe(lean, spec)

    assert result.outcome is Outcome.OK
    headers = recorder.requests[0]["headers"]
    assert headers["User-Agent"] == "shop-probe/2"
    assert headers["Accept"] == "text/html"
    assert headers["Host"] == "shop.example"
    assert headers["Connection"] == "close"  # a fresh connection per probe, always
    assert headers["X-Token"] == "t"


@pytest.mark.parametrize(
    ("method", "body", "length", "content_type"),
    [
        ("POST", None, "0", None),
        ("DELETE", None, "0", None),
        ("PUT", "naïve", "6", "text/plain; charset=utf-8"),
    ],
)
async def test_bodies_are_framed_as_aiohttp_frames_them(
    aiohttp_server: AiohttpServer,
    lean: LeanTransport,
    method: str,
    body: str | None,
    length: str,
    content_type: str | None,
) -> None:
    recorder = Recorder()
    url = await serve_app(aiohttp_server, web.route(method, "/", recorder.handle))

    result = await probe(lean, make_spec(url, method=method, body=body))

    assert result.outcome is Outcome.OK
    [seen] = recorder.requests
    assert seen["method"] == method
    assert seen["headers"]["Content-Length"] == length
    assert seen["headers"].get("Content-Type") == content_type
    assert seen["body"] == (body or "").encode()


async def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown(
    aiohttp_server: AiohttpServer, lean: LeanTransport
) -> None:
    recorder = Recorder()
    url = await serve_app(aiohttp_server, web.get("/", recorder.handle))

    fetched = await fetch(lean, make_spec(url.with_user("probe").with_password("s3cret")))

    assert fetched.result.outcome is Outcome.OK
    assert recorder.requests[0]["headers"]["Authorization"] == "Basic cHJvYmU6czNjcmV0"
    assert "s3cret" not in fetched.url
    assert "s3cret" not in fetched.result.evidence.url


async def test_a_header_with_a_newline_is_refused_before_anything_is_sent(
    lean: LeanTransport,
) -> None:
    spec = make_spec("http://127.0.0.1:9/", headers={"X-Evil": "a\r\nX-Injected: 1"})

    with pytest.raises(ValueError, match="newline, carriage return or NUL"):
        await probe(lean, spec)


@pytest.mark.parametrize("url", ["ftp://files.example/", "/relative/path"])
async def test_a_url_that_is_not_absolute_http_is_connection_error(
    lean: LeanTransport, url: str
) -> None:
    result = await probe(lean, make_spec(url))

    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.evidence.error is not None
    assert result.evidence.error.startswith("InvalidUrl: not an absolute http(s) URL")


async def test_the_client_hangs_up_after_the_answer(raw_server: Any, lean: LeanTransport) -> None:
    hung_up = asyncio.Event()

    async def keep_alive(number: int, reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        # A server that would keep the connection: the probe must close it itself.
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
        await writer.drain()
        if await reader.read() == b"":
            hung_up.set()

    server = await raw_server(keep_alive)

    result = await probe(lean, make_spec(server.url))

    assert result.outcome is Outcome.OK
    await asyncio.wait_for(hung_up.wait(), timeout=5)


# --- redirects ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "arrives_at"),
    [
        ("next", "/a/next"),
        ("../top", "/top"),
        ("/abs", "/abs"),
        ("?page=2", "/a/start?page=2"),
    ],
)
async def test_relative_locations_are_resolved_against_the_current_url(
    aiohttp_server: AiohttpServer, lean: LeanTransport, location: str, arrives_at: str
) -> None:
    recorder = Recorder("arrived")

    async def start(request: web.Request) -> web.Response:
        if request.query:
            return await recorder.handle(request)
        raise web.HTTPFound(location)

    url = await serve_app(
        aiohttp_server, web.get("/a/start", start), web.get("/{tail:.+}", recorder.handle)
    )

    fetched = await fetch(lean, make_spec(url.join(URL("/a/start"))))

    assert fetched.result.outcome is Outcome.OK
    assert recorder.requests[0]["path"] == arrives_at
    assert fetched.url.endswith(arrives_at)
    assert fetched.text() == "arrived"


async def test_a_location_with_a_scheme_but_no_authority_stays_on_the_host(
    raw_server: Any, lean: LeanTransport
) -> None:
    paths: list[bytes] = []

    async def answer(number: int, reader: Reader, writer: Writer) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        paths.append(request.split(b" ")[1])
        if number == 1:
            # Sent as is (aiohttp's server would rewrite it): browsers read it as "/a/other".
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: http:/a/other\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    server = await raw_server(answer)

    result = await probe(lean, make_spec(server.url + "a/start"))

    assert result.outcome is Outcome.OK
    assert paths == [b"/a/start", b"/a/other"]


@pytest.mark.parametrize(
    ("status", "method", "body"),
    [
        (303, "GET", b""),  # see other: always a GET
        (302, "GET", b""),  # a POST answered 301/302 becomes a GET, as browsers do
        (307, "POST", b"order=1"),  # 307 and 308 repeat the request as it was
        (308, "POST", b"order=1"),
    ],
)
async def test_a_redirected_post_becomes_a_get_where_aiohttp_makes_it_one(
    aiohttp_server: AiohttpServer, lean: LeanTransport, status: int, method: str, body: bytes
) -> None:
    recorder = Recorder()

    async def submit(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": "/done"})

    url = await serve_app(
        aiohttp_server, web.post("/submit", submit), web.route("*", "/done", recorder.handle)
    )
    spec = make_spec(url.join(URL("/submit")), method="POST", body="order=1")

    result = await probe(lean, spec)

    assert result.outcome is Outcome.OK
    [seen] = recorder.requests
    assert (seen["method"], seen["body"]) == (method, body)


async def test_a_redirect_to_another_origin_drops_credentials_and_every_configured_header(
    aiohttp_server: AiohttpServer, lean: LeanTransport
) -> None:
    elsewhere = Recorder()
    other = await serve_app(aiohttp_server, web.get("/landing", elsewhere.handle))
    home = Recorder()

    async def start(request: web.Request) -> web.Response:
        await home.handle(request)
        raise web.HTTPFound(str(other.join(URL("/landing"))))

    url = await serve_app(aiohttp_server, web.get("/", start))
    spec = make_spec(
        url.with_user("probe").with_password("pw"),
        headers={"Cookie": "session=1", "X-Api-Key": "k-5ecret"},
    )

    result = await probe(lean, spec)

    assert result.outcome is Outcome.OK
    assert home.requests[0]["headers"]["Authorization"].startswith("Basic ")
    assert home.requests[0]["headers"]["Cookie"] == "session=1"
    landed = elsewhere.requests[0]["headers"]
    assert home.requests[0]["headers"]["X-Api-Key"] == "k-5ecret"
    assert "Authorization" not in landed and "Cookie" not in landed
    assert "X-Api-Key" not in landed


async def test_a_3xx_without_location_is_the_answer(
    aiohttp_server: AiohttpServer, lean: LeanTransport
) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("moved?", status=302)))

    result = await probe(lean, make_spec(url, expect_status=[302]))

    assert result.outcome is Outcome.OK
    assert result.evidence.status == 302


async def test_a_redirect_to_a_non_http_url_is_connection_error(
    aiohttp_server: AiohttpServer, lean: LeanTransport
) -> None:
    async def to_ftp(request: web.Request) -> web.Response:
        raise web.HTTPFound("ftp://files.example/")

    url = await serve_app(aiohttp_server, web.get("/", to_ftp))

    result = await probe(lean, make_spec(url))

    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.evidence.error is not None
    assert result.evidence.error.startswith("BadResponse: redirect to a non-http URL")


async def test_too_many_redirects_shows_the_last_hop(
    aiohttp_server: AiohttpServer, lean: LeanTransport
) -> None:
    async def hop(request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        return web.Response(
            status=301, text="moved", headers={"Location": f"/hop/{left + 1}", "X-Hop": str(left)}
        )

    url = await serve_app(aiohttp_server, web.get("/hop/{n}", hop))

    result = await probe(lean, make_spec(url.join(URL("/hop/0")), max_redirects=2))

    assert result.outcome is Outcome.TOO_LARGE
    assert result.evidence.error == f"more than 2 redirects; gave up at {url}hop/2"
    assert result.evidence.status == 301
    assert result.evidence.headers["x-hop"] == "2"
    assert result.evidence.body_excerpt == ""
    assert result.latency is None


# --- bodies ------------------------------------------------------------------------------


async def test_a_chunked_body_is_read_whole(
    aiohttp_server: AiohttpServer, lean: LeanTransport
) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"Welcome ", b"to the ", b"shop"):
            await response.write(part)
        await response.write_eof()
        return response

    url = await serve_app(aiohttp_server, web.get("/", chunked))

    fetched = await fetch(lean, make_spec(url, body_contains=["Welcome to the shop"]))

    assert fetched.result.outcome is Outcome.OK
    assert fetched.body == b"Welcome to the shop"
    assert fetched.result.evidence.headers["transfer-encoding"] == "chunked"


async def test_a_body_that_ends_with_the_connection_is_read_until_close(
    raw_server: Any, lean: LeanTransport
) -> None:
    async def http10(number: int, reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello ")
        await writer.drain()
        writer.write(b"world")
        await writer.drain()

    server = await raw_server(http10)

    fetched = await fetch(lean, make_spec(server.url))

    assert fetched.result.outcome is Outcome.OK
    assert fetched.body == b"hello world"


async def test_a_reset_during_a_body_read_until_close_is_connection_error(
    raw_server: Any, lean: LeanTransport
) -> None:
    async def cut(number: int, reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\npart")
        await writer.drain()
        await reset(writer)

    server = await raw_server(cut)

    result = await probe(lean, make_spec(server.url))

    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.evidence.error is not None
    assert result.evidence.error.startswith("IncompleteBody: Response payload is not completed")
    assert server.connections == 2


async def test_a_chunked_body_closed_before_its_last_chunk_is_connection_error(
    raw_server: Any, lean: LeanTransport
) -> None:
    async def cut(number: int, reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        writer.close()  # a polite close, but before the "0" chunk that ends the body

    server = await raw_server(cut)

    result = await probe(lean, make_spec(server.url))

    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.evidence.error is not None
    assert result.evidence.error.startswith("IncompleteBody: Response payload is not completed")
    assert result.evidence.body_excerpt == "hello"


async def test_head_does_not_wait_for_the_body_its_length_announces(
    raw_server: Any, lean: LeanTransport
) -> None:
    async def head(number: int, reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
        await writer.drain()
        await reader.read()  # and no body: a HEAD answer has none

    server = await raw_server(head)

    result = await probe(lean, make_spec(server.url, method="HEAD", timeout="2s"))

    assert result.outcome is Outcome.OK
    assert result.evidence.headers["content-length"] == "5000"


async def test_early_hints_are_skipped_for_the_answer_that_follows(
    raw_server: Any, lean: LeanTransport
) -> None:
    async def hints(number: int, reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Final: yes\r\n\r\nshop")
        await writer.drain()

    server = await raw_server(hints)

    result = await probe(lean, make_spec(server.url))

    assert result.outcome is Outcome.OK
    assert result.evidence.status == 200
    assert result.evidence.body_excerpt == ""  # a healthy answer keeps no excerpt (checks.scrub)
    assert "link" not in result.evidence.headers
    assert result.evidence.headers["x-final"] == "yes"


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some send it
    ],
)
async def test_compressed_bodies_are_inflated(
    aiohttp_server: AiohttpServer,
    lean: LeanTransport,
    encoding: str,
    encode: Callable[[bytes], bytes],
) -> None:
    page = "Welcome to the shop. " * 200

    async def handle(request: web.Request) -> web.Response:
        return web.Response(
            body=encode(page.encode()),
            headers={"Content-Encoding": encoding, "Content-Type": "text/html; charset=utf-8"},
        )

    url = await serve_app(aiohttp_server, web.get("/", handle))

    fetched = await fetch(lean, make_spec(url, body_contains=["Welcome to the shop"]))

    assert fetched.result.outcome is Outcome.OK
    assert fetched.body == page.encode()
    assert fetched.charset == "utf-8"


async def test_a_decompression_bomb_stays_within_the_cap(
    aiohttp_server: AiohttpServer, lean: LeanTransport
) -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # about 64 KiB on the wire

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    url = await serve_app(aiohttp_server, web.get("/", handle))

    fetched = await fetch(lean, make_spec(url, max_body_bytes=100_000))

    assert fetched.result.outcome is Outcome.TOO_LARGE
    assert len(fetched.body) == 100_000


async def test_a_body_that_does_not_inflate_is_connection_error(
    aiohttp_server: AiohttpServer, lean: LeanTransport
) -> None:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=b"this is not gzip at all", headers={"Content-Encoding": "gzip"})

    url = await serve_app(aiohttp_server, web.get("/", handle))

    result = await probe(lean, make_spec(url))

    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.evidence.error is not None
    assert result.evidence.error.startswith(
        "BadResponse: Can not decode content-encoding: gzip (after 1 retry)"
    )


async def test_an_endless_body_is_cut_at_the_cap_and_the_connection_dropped(
    raw_server: Any, lean: LeanTransport
) -> None:
    stopped = asyncio.Event()
    sent = 0

    async def endless(number: int, reader: Reader, writer: Writer) -> None:
        nonlocal sent
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n")  # no length: until the connection closes
        try:
            for _ in range(4096):  # bounded at 256 MiB; the probe hangs up long before
                writer.write(b"z" * 65536)
                await writer.drain()
                sent += 65536
        finally:
            stopped.set()

    server = await raw_server(endless)

    fetched = await fetch(lean, make_spec(server.url, max_body_bytes=200_000))

    assert fetched.result.outcome is Outcome.TOO_LARGE
    assert len(fetched.body) == 200_000
    assert len(fetched.result.evidence.body_excerpt) == EXCERPT_BYTES
    await asyncio.wait_for(stopped.wait(), timeout=5)
    assert sent < 64 * 1024 * 1024


# --- oversized or broken heads -----------------------------------------------------------


def head_with(*lines: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\nok"


@pytest.mark.parametrize(
    ("head", "error"),
    [
        (head_with(b"X-Big: " + b"a" * 9000, b"Content-Length: 2"),
         "BadResponse: Got more than 8190 bytes when reading header b'X-Big'"),
        (head_with(*(b"X-%d: 1" % i for i in range(129)), b"Content-Length: 2"),
         "BadResponse: Too many headers received (more than 128)"),
        (b"HTTP/1.1 200 " + b"r" * 9000 + b"\r\nContent-Length: 2\r\n\r\nok",
         "BadResponse: Got more than 8190 bytes when reading the status"),
    ],
)  # fmt: skip
async def test_heads_over_aiohttps_limits_are_connection_errors(
    raw_server: Any, lean: LeanTransport, head: bytes, error: str
) -> None:
    async def answer(number: int, reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(head)
        await writer.drain()

    server = await raw_server(answer)

    result = await probe(lean, make_spec(server.url))

    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.evidence.error is not None
    assert result.evidence.error.startswith(error)


async def test_a_head_within_the_limits_is_fine(raw_server: Any, lean: LeanTransport) -> None:
    lines = [b"X-%d: %s" % (i, b"v" * 8000) for i in range(120)]

    async def answer(number: int, reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(head_with(*lines, b"Content-Length: 2"))
        await writer.drain()

    server = await raw_server(answer)

    result = await probe(lean, make_spec(server.url))

    assert result.outcome is Outcome.OK
    assert len(result.evidence.headers) == 50  # the evidence keeps its own bound


async def test_an_endless_header_is_cut_off_with_bounded_memory(
    raw_server: Any, lean: LeanTransport
) -> None:
    stopped = asyncio.Event()
    sent = 0

    async def endless(number: int, reader: Reader, writer: Writer) -> None:
        nonlocal sent
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        try:
            for _ in range(1024):  # bounded at 64 MiB
                writer.write(b"a" * 65536)
                await writer.drain()
                sent += 65536
        finally:
            stopped.set()

    server = await raw_server(endless)
    started = time.perf_counter()

    result = await probe(lean, make_spec(server.url))

    assert time.perf_counter() - started < 5
    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.evidence.error is not None
    assert result.evidence.error.startswith("BadResponse: response head longer than")
    await asyncio.wait_for(stopped.wait(), timeout=5)
    assert sent < 32 * 1024 * 1024


# --- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def serve_tls(
    aiohttp_server: AiohttpServer,
    ca: trustme.CA,
    *names: str,
    not_after: datetime | None = None,
    server_names: list[str] | None = None,
) -> int:
    """An https server on 127.0.0.1 with a leaf for `names`; returns its port."""
    leaf = ca.issue_cert(
        *names, not_before=NOW - timedelta(days=1), not_after=not_after or NOW + timedelta(days=90)
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    if server_names is not None:
        context.sni_callback = lambda sock, name, ctx: server_names.append(str(name))
    url = await serve_app(aiohttp_server, web.get("/", text_handler("secure")), ssl=context)
    assert url.port is not None
    return url.port


async def test_https_with_a_trusted_certificate_reports_its_expiry_and_sends_sni(
    aiohttp_server: AiohttpServer, ca: trustme.CA
) -> None:
    not_after = NOW + timedelta(days=200)
    names: list[str] = []
    port = await serve_tls(aiohttp_server, ca, "localhost", not_after=not_after, server_names=names)
    transport = LeanTransport(verified_context=trusting(ca))

    result = await probe(transport, make_spec(f"https://localhost:{port}/"))

    assert result.outcome is Outcome.OK
    assert result.evidence.body_excerpt == ""  # a healthy answer keeps no excerpt (checks.scrub)
    assert result.evidence.tls_not_after == not_after.timestamp()
    assert names == ["localhost"]


async def test_https_certificate_for_another_name_is_tls_error(
    aiohttp_server: AiohttpServer, ca: trustme.CA
) -> None:
    port = await serve_tls(aiohttp_server, ca, "shop.example")
    transport = LeanTransport(verified_context=trusting(ca))

    result = await probe(transport, make_spec(f"https://localhost:{port}/"))

    assert result.outcome is Outcome.TLS_ERROR
    assert result.evidence.error is not None
    assert "Hostname mismatch" in result.evidence.error


async def test_https_expired_certificate_is_tls_error(
    aiohttp_server: AiohttpServer, ca: trustme.CA
) -> None:
    port = await serve_tls(aiohttp_server, ca, "127.0.0.1", not_after=NOW - timedelta(hours=1))
    transport = LeanTransport(verified_context=trusting(ca))

    result = await probe(transport, make_spec(f"https://127.0.0.1:{port}/"))

    assert result.outcome is Outcome.TLS_ERROR
    assert result.evidence.error is not None
    assert "certificate has expired" in result.evidence.error


async def test_without_verification_anything_goes_and_the_expiry_is_still_read(
    aiohttp_server: AiohttpServer, ca: trustme.CA, lean: LeanTransport
) -> None:
    not_after = NOW + timedelta(days=3)
    port = await serve_tls(aiohttp_server, ca, "shop.example", not_after=not_after)
    spec = make_spec(f"https://127.0.0.1:{port}/", verify_tls=False)

    result = await probe(lean, spec)

    assert result.outcome is Outcome.CERT_EXPIRING  # 3 days is within the 14-day warning
    assert result.evidence.tls_not_after == not_after.timestamp()


async def test_a_redirect_from_https_to_http_forgets_the_certificate(
    aiohttp_server: AiohttpServer, ca: trustme.CA
) -> None:
    plain = await serve_app(aiohttp_server, web.get("/", text_handler("plain")))
    leaf = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)

    async def away(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(str(plain))

    secure = await serve_app(aiohttp_server, web.get("/", away), ssl=context)
    transport = LeanTransport(verified_context=trusting(ca))

    result = await probe(transport, make_spec(secure))

    assert result.outcome is Outcome.OK
    assert result.evidence.body_excerpt == ""  # a healthy answer keeps no excerpt (checks.scrub)
    assert result.evidence.tls_not_after is None


# --- where from, and where to ------------------------------------------------------------


async def test_source_address_is_the_address_the_target_sees(
    aiohttp_server: AiohttpServer,
) -> None:
    recorder = Recorder()
    url = await serve_app(aiohttp_server, web.get("/", recorder.handle))
    transport = LeanTransport(source_address="127.0.0.2")

    result = await probe(transport, make_spec(url))

    assert result.outcome is Outcome.OK
    assert recorder.requests[0]["remote"] == "127.0.0.2"


async def test_a_source_address_of_the_wrong_family_cannot_connect() -> None:
    transport = LeanTransport(source_address="127.0.0.2")

    result = await probe(transport, make_spec("http://[::1]:9/"))

    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.evidence.error is not None
    assert "no address of the same family as source_address 127.0.0.2" in result.evidence.error


def test_source_address_must_be_an_ip() -> None:
    with pytest.raises(ValueError, match="source_address must be an IP address"):
        LeanTransport(source_address="localhost")


async def test_ipv6_literal(aiohttp_server: AiohttpServer, lean: LeanTransport) -> None:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        skip_unless_required("IPv6 loopback ::1 is not available on this machine")
    recorder = Recorder()
    app = web.Application()
    app.router.add_get("/", recorder.handle)
    server = await aiohttp_server(app, host="::1")

    result = await probe(lean, make_spec(f"http://[::1]:{server.port}/"))

    assert result.outcome is Outcome.OK
    assert recorder.requests[0]["headers"]["Host"] == f"[::1]:{server.port}"
    assert recorder.requests[0]["remote"] == "::1"


# --- DNS ---------------------------------------------------------------------------------


class CountingResolver:
    """The system resolver, counting the lookups; `gate`, when set, holds the first one."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.hosts: list[str] = []
        self.gate = gate

    async def __call__(self, host: str, port: int, family: int) -> Sequence[tuple[int, str]]:
        self.hosts.append(host)
        if self.gate is not None and len(self.hosts) == 1:
            await self.gate.wait()
        return await system_resolver(host, port, family)


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_answers_are_cached_for_the_ttl(aiohttp_server: AiohttpServer) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("ok")))
    resolver, clock = CountingResolver(), ManualClock()
    transport = LeanTransport(resolver=resolver, monotonic=clock, dns_ttl=60)
    spec = make_spec(f"http://localhost:{url.port}/")

    first = await probe(transport, spec)
    clock.now += 59
    second = await probe(transport, spec)
    clock.now += 2
    third = await probe(transport, spec)

    assert [first.outcome, second.outcome, third.outcome] == [Outcome.OK] * 3
    assert resolver.hosts == ["localhost", "localhost"]


async def test_probes_to_one_host_share_one_lookup(aiohttp_server: AiohttpServer) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("ok")))
    gate = asyncio.Event()
    resolver = CountingResolver(gate)
    transport = LeanTransport(resolver=resolver)
    spec = make_spec(f"http://localhost:{url.port}/")

    probes = [asyncio.create_task(probe(transport, spec)) for _ in range(5)]
    await eventually(lambda: resolver.hosts)
    gate.set()
    results = await asyncio.gather(*probes)

    assert [r.outcome for r in results] == [Outcome.OK] * 5
    assert resolver.hosts == ["localhost"]


async def test_ip_literals_are_not_looked_up(aiohttp_server: AiohttpServer) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("ok")))
    resolver = CountingResolver()
    transport = LeanTransport(resolver=resolver)

    result = await probe(transport, make_spec(url))

    assert result.outcome is Outcome.OK
    assert resolver.hosts == []


async def test_a_name_that_does_not_resolve_is_connection_error_and_not_cached() -> None:
    resolver = CountingResolver()
    transport = LeanTransport(resolver=resolver)

    result = await probe(transport, make_spec("http://nosuch.invalid/"))

    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.evidence.error is not None
    assert result.evidence.error.startswith(
        "CannotConnect: Cannot connect to host nosuch.invalid:80"
    )
    assert resolver.hosts == ["nosuch.invalid", "nosuch.invalid"]  # the re-try looked again


async def test_close_stops_a_lookup_in_flight(aiohttp_server: AiohttpServer) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("ok")))
    resolver = CountingResolver(asyncio.Event())  # the first lookup never finishes
    transport = LeanTransport(resolver=resolver)
    sleeps = SleepLog()

    task = asyncio.create_task(fetch(transport, make_spec(f"http://localhost:{url.port}/"), sleeps))
    await eventually(lambda: resolver.hosts)
    await transport.close()
    fetched = await task

    # The stopped lookup failed that attempt (a connection_error), the re-try looked again.
    assert fetched.result.outcome is Outcome.OK
    assert fetched.result.evidence.timings["attempts"] == 2
    assert resolver.hosts == ["localhost", "localhost"]


# --- several addresses: Happy Eyeballs ---------------------------------------------------


class FixedResolver:
    """A name with the given addresses, in this order (as DNS would answer it)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = [(int(socket.AF_INET), address) for address in addresses]

    async def __call__(self, host: str, port: int, family: int) -> Sequence[tuple[int, str]]:
        return self.addresses


@pytest.fixture
def black_hole() -> Iterator[Callable[[int], None]]:
    """`hole(port)`: 127.0.0.3:port accepts no connection; a connect there just hangs (a
    listener whose backlog is full drops the handshake), like an unreachable IPv6 route."""
    sockets: list[socket.socket] = []

    def hole(port: int) -> None:
        listener = socket.socket()
        sockets.append(listener)
        listener.bind(("127.0.0.3", port))
        listener.listen(0)
        for _ in range(4):  # fill the backlog; these are never accepted
            filler = socket.socket()
            sockets.append(filler)
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.3", port))
            except BlockingIOError:
                pass

    yield hole
    for sock in sockets:
        sock.close()


async def test_an_address_that_hangs_gives_way_to_the_next_one(
    aiohttp_server: AiohttpServer, black_hole: Callable[[int], None]
) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("ok")))
    assert url.port is not None
    black_hole(url.port)
    transport = LeanTransport(resolver=FixedResolver("127.0.0.3", "127.0.0.1"))

    result = await probe(transport, make_spec(f"http://dual.test:{url.port}/", timeout="3s"))

    assert result.outcome is Outcome.OK
    assert result.latency is not None and FALLBACK_DELAY <= result.latency < 2


async def test_an_address_that_refuses_gives_way_at_once(
    aiohttp_server: AiohttpServer,
) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("ok")))
    transport = LeanTransport(resolver=FixedResolver("127.0.0.3", "127.0.0.1"))

    result = await probe(transport, make_spec(f"http://dual.test:{url.port}/"))

    assert result.outcome is Outcome.OK
    assert result.latency is not None and result.latency < FALLBACK_DELAY


async def test_when_every_address_fails_the_last_reason_is_shown() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    transport = LeanTransport(resolver=FixedResolver("127.0.0.3", "127.0.0.1"))

    result = await probe(transport, make_spec(f"http://dual.test:{port}/"))

    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.evidence.error is not None
    assert result.evidence.error.startswith(
        f"CannotConnect: Cannot connect to host dual.test:{port} ["
    )

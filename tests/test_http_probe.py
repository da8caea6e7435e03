"""Wire tests of the http probe: every target is a real server on 127.0.0.1.

Well-behaved and slow targets are aiohttp apps; misbehaviour aiohttp's server will not do
(garbage, resets, hangs, bodies cut short) comes from bare asyncio servers. Each probe test
runs through both transports (`client`): an aiohttp session and `LeanTransport`, which must
judge every target the same; tests/test_lean_http.py covers what only the lean one does.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from multidict import CIMultiDict
from pydantic import ValidationError
from pytest_aiohttp import AiohttpServer
from yarl import URL

from checks.http import EXCERPT_BYTES, HttpCheckSpec, parse_status_entry, probe_http
from checks.lean_http import LeanTransport
from checks.result import Outcome, ProbeResult

NOW = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
RETRY_WAIT = 0.01

# --- helpers and fixtures ----------------------------------------------------------------

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
Behaviour = Callable[[int, Reader, Writer], Awaitable[None]]


class RawServer:
    """A bare TCP server that runs `behave(connection_number, reader, writer)` per client."""

    def __init__(self, behave: Behaviour) -> None:
        self._behave = behave
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self.connections = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: Reader, writer: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        try:
            await self._behave(self.connections, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the probe hung up first, which is what several tests provoke
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass
            self._handlers.discard(task)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)


StartRaw = Callable[[Behaviour], Awaitable[RawServer]]


@pytest.fixture
async def raw_server() -> AsyncIterator[StartRaw]:
    servers: list[RawServer] = []

    async def start(behave: Behaviour) -> RawServer:
        server = RawServer(behave)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


Client = aiohttp.ClientSession | LeanTransport

# The same failure in each transport's words: (aiohttp, lean).
ERROR_NAMES = {
    "refused": ("ClientConnectorError", "CannotConnect"),
    "disconnected": ("ServerDisconnectedError", "ServerDisconnected"),
    "garbage": ("ClientResponseError: Bad status line", "BadResponse: Invalid HTTP response"),
    "cut_short": ("ClientPayloadError", "IncompleteBody"),
}


def named(client: Client, failure: str) -> str:
    return ERROR_NAMES[failure][isinstance(client, LeanTransport)]


@pytest.fixture
async def aiohttp_session() -> AsyncIterator[aiohttp.ClientSession]:
    # As the monitor does: a fresh connection for every probe.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        yield s


@pytest.fixture(params=["aiohttp", "lean"])
async def client(
    request: pytest.FixtureRequest, aiohttp_session: aiohttp.ClientSession
) -> AsyncIterator[Client]:
    if request.param == "aiohttp":
        yield aiohttp_session
        return
    transport = LeanTransport()
    yield transport
    await transport.close()


class SleepLog:
    """The probe's injected sleep: records what the re-try asked for, waits for nothing."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> SleepLog:
    return SleepLog()


def make_spec(url: object, **fields: Any) -> HttpCheckSpec:
    # model_validate, like the YAML loader: durations are written as text ("300ms").
    return HttpCheckSpec.model_validate({"url": str(url), **fields})


async def probe(spec: HttpCheckSpec, client: Client, sleeps: SleepLog | None = None) -> ProbeResult:
    return await probe_http(
        spec,
        session=client if isinstance(client, aiohttp.ClientSession) else None,
        transport=client if isinstance(client, LeanTransport) else None,
        now=lambda: NOW,
        retry_wait=RETRY_WAIT,
        sleep=sleeps if sleeps is not None else SleepLog(),
    )


async def serve_app(aiohttp_server: AiohttpServer, *routes: web.RouteDef, **kwargs: Any) -> URL:
    """Serve `routes` on 127.0.0.1; returns the root URL."""
    app = web.Application()
    app.add_routes(routes)
    server = await aiohttp_server(app, **kwargs)
    return server.make_url("/")


def text_handler(
    text: str, *, status: int = 200, delay: float = 0.0
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        if delay:
            await asyncio.sleep(delay)  # the target being slow, not the test waiting
        return web.Response(text=text, status=status)

    return handle


async def read_request(reader: Reader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def answer_ok(reader: Reader, writer: Writer) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
    await writer.drain()


async def reset(writer: Writer) -> None:
    # SO_LINGER 0 turns close() into a TCP RST: a reset, not a polite FIN.
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- answers -----------------------------------------------------------------------------


async def test_ok_200(aiohttp_server: AiohttpServer, client: Client) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("hello")))

    result = await probe(make_spec(url), client)

    assert result.outcome is Outcome.OK
    assert result.started_at == NOW
    assert result.evidence.status == 200
    assert result.evidence.error is None
    assert result.evidence.body_excerpt == ""  # a healthy answer keeps no excerpt (checks.scrub)
    assert result.latency is not None and result.latency == result.evidence.timings["total"]
    assert 0 <= result.evidence.timings["ttfb"] <= result.evidence.timings["total"]
    assert "attempts" not in result.evidence.timings


async def test_5xx_is_http_5xx_with_evidence_and_not_retried(
    aiohttp_server: AiohttpServer, client: Client, sleeps: SleepLog
) -> None:
    hits = 0

    async def broken(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(text="Traceback: database is down", status=500)

    url = await serve_app(aiohttp_server, web.get("/", broken))

    result = await probe(make_spec(url), client, sleeps)

    assert result.outcome is Outcome.HTTP_5XX
    assert result.evidence.status == 500
    assert result.evidence.body_excerpt == "Traceback: database is down"
    assert result.evidence.error == "HTTP 500 Internal Server Error"
    assert result.latency is not None
    assert hits == 1 and sleeps.calls == []


async def test_5xx_is_http_5xx_whatever_expect_status_says(
    aiohttp_server: AiohttpServer, client: Client
) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("x", status=503)))

    result = await probe(make_spec(url, expect_status=["200-599"]), client)

    assert result.outcome is Outcome.HTTP_5XX


async def test_404_is_unexpected_status(aiohttp_server: AiohttpServer, client: Client) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("gone", status=404)))

    result = await probe(make_spec(url), client)

    assert result.outcome is Outcome.UNEXPECTED_STATUS
    assert result.evidence.status == 404
    assert result.evidence.error == "HTTP 404 Not Found is outside expect_status [200-399]"


async def test_expect_status_can_accept_404(aiohttp_server: AiohttpServer, client: Client) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("gone", status=404)))

    result = await probe(make_spec(url, expect_status=["200-299", 404]), client)

    assert result.outcome is Outcome.OK


@pytest.mark.parametrize(
    ("contains", "not_contains", "outcome", "error"),
    [
        (["Welcome", "Cart"], ["Fatal error"], Outcome.OK, None),
        (["Welcome", "Checkout", "Login"], [], Outcome.CONTENT_MISMATCH,
         'body lacks "Checkout", "Login"'),
        ([], ["Cart", "Fatal error"], Outcome.CONTENT_MISMATCH,
         'body contains forbidden "Cart"'),
        (["Basket"], ["Welcome"], Outcome.CONTENT_MISMATCH,
         'body lacks "Basket"; body contains forbidden "Welcome"'),
    ],
)  # fmt: skip
async def test_content_checks(
    aiohttp_server: AiohttpServer,
    client: Client,
    contains: list[str],
    not_contains: list[str],
    outcome: Outcome,
    error: str | None,
) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("Welcome! Cart (0)")))
    spec = make_spec(url, body_contains=contains, body_not_contains=not_contains)

    result = await probe(spec, client)

    assert result.outcome is outcome
    assert result.evidence.error == error


async def test_content_is_matched_in_the_declared_charset(
    aiohttp_server: AiohttpServer, client: Client
) -> None:
    async def latin1(request: web.Request) -> web.Response:
        return web.Response(
            body="Café ouvert".encode("latin-1"), content_type="text/plain", charset="latin-1"
        )

    url = await serve_app(aiohttp_server, web.get("/", latin1))

    result = await probe(make_spec(url, body_contains=["Café"]), client)

    assert result.outcome is Outcome.OK
    assert result.evidence.body_excerpt == ""  # a healthy answer keeps no excerpt (checks.scrub)


async def test_status_is_judged_before_content(
    aiohttp_server: AiohttpServer, client: Client
) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("nope", status=403)))

    result = await probe(make_spec(url, body_contains=["Welcome"]), client)

    assert result.outcome is Outcome.UNEXPECTED_STATUS


async def test_slow_answer_is_slow(aiohttp_server: AiohttpServer, client: Client) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("hi", delay=0.3)))

    result = await probe(make_spec(url, slow_after="200ms"), client)

    assert result.outcome is Outcome.SLOW
    assert result.latency is not None and result.latency >= 0.3
    assert result.evidence.error is not None and "slow_after 0.2s" in result.evidence.error


async def test_headers_at_once_and_a_trickled_body_is_slow(
    aiohttp_server: AiohttpServer, client: Client
) -> None:
    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)  # status and headers go out at once
        for _ in range(6):
            await asyncio.sleep(0.1)  # the target being slow, not the test waiting
            await response.write(b"chunk ")
        await response.write_eof()
        return response

    url = await serve_app(aiohttp_server, web.get("/", trickle))

    result = await probe(make_spec(url, slow_after="300ms", timeout="5s"), client)

    # Slow is the complete answer's time, not the first byte's.
    assert result.outcome is Outcome.SLOW
    assert result.evidence.timings["ttfb"] < 0.3
    assert result.latency is not None and result.latency >= 0.6
    assert result.evidence.body_excerpt == "chunk " * 6


async def test_content_mismatch_wins_over_slow(
    aiohttp_server: AiohttpServer, client: Client
) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("hi", delay=0.3)))

    spec = make_spec(url, slow_after="200ms", body_contains=["Welcome"])
    result = await probe(spec, client)

    assert result.outcome is Outcome.CONTENT_MISMATCH


async def test_slow_5xx_is_http_5xx(aiohttp_server: AiohttpServer, client: Client) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("x", status=502, delay=0.3)))

    result = await probe(make_spec(url, slow_after="200ms"), client)

    assert result.outcome is Outcome.HTTP_5XX
    assert result.latency is not None and result.latency >= 0.3


async def test_sends_method_headers_and_body(aiohttp_server: AiohttpServer, client: Client) -> None:
    seen: dict[str, str] = {}

    async def form(request: web.Request) -> web.Response:
        seen["method"] = request.method
        seen["token"] = request.headers.get("X-Probe-Token", "")
        seen["body"] = await request.text()
        return web.Response(text="thanks")

    url = await serve_app(aiohttp_server, web.post("/contact", form))
    spec = make_spec(
        url.join(URL("/contact")),
        method="POST",
        headers={"X-Probe-Token": "s3cret"},
        body="name=probe&message=hello",
    )

    result = await probe(spec, client)

    assert result.outcome is Outcome.OK
    assert seen == {"method": "POST", "token": "s3cret", "body": "name=probe&message=hello"}


# --- no answer ---------------------------------------------------------------------------


async def test_server_that_never_answers_times_out_within_budget(
    raw_server: StartRaw, client: Client, sleeps: SleepLog
) -> None:
    async def silent(number: int, reader: Reader, writer: Writer) -> None:
        await reader.read()  # hold the connection open until the probe gives up

    server = await raw_server(silent)
    started = time.perf_counter()

    result = await probe(make_spec(server.url, timeout="300ms"), client, sleeps)

    assert time.perf_counter() - started < 2.0
    assert result.outcome is Outcome.TIMEOUT
    assert result.latency is None
    assert result.evidence.status is None
    assert result.evidence.error is not None
    budget = "no complete answer within timeout 0.3s (no response headers arrived)"
    if isinstance(client, LeanTransport):
        # The lean transport measures phases, and says where the time went.
        assert result.evidence.error.startswith(budget + "; waiting for the first byte took ")
    else:
        assert result.evidence.error == budget
    assert result.evidence.timings["total"] >= 0.3
    assert server.connections == 1 and sleeps.calls == []  # a timeout is not re-tried


async def test_body_that_dribbles_forever_times_out(raw_server: StartRaw, client: Client) -> None:
    async def dribble(number: int, reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(200):  # bounded: at most 10 s, far past the probe's 0.3 s
            writer.write(b"1\r\na\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)

    server = await raw_server(dribble)
    started = time.perf_counter()

    result = await probe(make_spec(server.url, timeout="300ms"), client)

    assert time.perf_counter() - started < 2.0
    assert result.outcome is Outcome.TIMEOUT
    assert result.evidence.status == 200
    assert result.evidence.body_excerpt.startswith("aaa")
    assert "ttfb" in result.evidence.timings
    assert result.evidence.error is not None
    assert "status 200 arrived, body stalled" in result.evidence.error


async def test_connection_refused_is_connection_error_tried_twice(
    client: Client, sleeps: SleepLog
) -> None:
    result = await probe(make_spec(f"http://127.0.0.1:{closed_port()}/"), client, sleeps)

    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.latency is None
    assert sleeps.calls == [RETRY_WAIT]
    assert result.evidence.timings["attempts"] == 2
    error = result.evidence.error
    assert error is not None and "\n" not in error
    assert error.startswith(f"{named(client, 'refused')}: Cannot connect to host 127.0.0.1")
    assert error.endswith("(after 1 retry)")


async def hang_up(number: int, reader: Reader, writer: Writer) -> None:
    await read_request(reader)  # then RawServer closes the connection without a word


async def test_server_that_hangs_up_at_once_is_tried_twice(
    raw_server: StartRaw, client: Client
) -> None:
    server = await raw_server(hang_up)

    # POST: aiohttp never re-sends it by itself, so each connection is one probe attempt.
    result = await probe(make_spec(server.url, method="POST", body="x"), client)

    assert result.outcome is Outcome.CONNECTION_ERROR
    assert server.connections == 2
    expected = f"{named(client, 'disconnected')}: Server disconnected (after 1 retry)"
    assert result.evidence.error == expected


async def test_aiohttp_resends_an_idempotent_request_inside_each_attempt(
    raw_server: StartRaw, aiohttp_session: aiohttp.ClientSession
) -> None:
    """Pins a behaviour of aiohttp the probe lives with: a GET whose connection drops before
    the answer is sent again once by aiohttp itself (even on a fresh connection), so a
    server that hangs up on everything sees 2 probe attempts x 2 sends. If this starts
    failing after an aiohttp upgrade, revisit the module docstring of checks/http.py."""
    server = await raw_server(hang_up)

    result = await probe(make_spec(server.url), aiohttp_session)

    assert result.outcome is Outcome.CONNECTION_ERROR
    assert server.connections == 4


async def test_garbage_is_connection_error(raw_server: StartRaw, client: Client) -> None:
    async def garbage(number: int, reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP\r\n\r\n")
        await writer.drain()

    server = await raw_server(garbage)

    result = await probe(make_spec(server.url), client)

    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.evidence.status is None
    assert result.evidence.error is not None
    assert result.evidence.error.startswith(f"{named(client, 'garbage')}: Expected HTTP/")
    assert "\n" not in result.evidence.error
    assert server.connections == 2


async def test_close_mid_body_is_connection_error(raw_server: StartRaw, client: Client) -> None:
    async def cut_short(number: int, reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        await writer.drain()

    server = await raw_server(cut_short)

    result = await probe(make_spec(server.url), client)

    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.evidence.status == 200  # what arrived before the cut is kept
    assert result.evidence.body_excerpt == "x" * 10
    assert result.evidence.error is not None
    assert result.evidence.error.startswith(named(client, "cut_short"))


async def test_5xx_whose_body_is_cut_short_is_still_http_5xx_and_not_retried(
    raw_server: StartRaw, client: Client
) -> None:
    async def broken(number: int, reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 1000\r\n\r\nback soon")
        await writer.drain()

    server = await raw_server(broken)

    result = await probe(make_spec(server.url), client)

    assert result.outcome is Outcome.HTTP_5XX
    assert result.evidence.status == 503
    assert result.evidence.body_excerpt == "back soon"
    assert result.evidence.error is not None
    prefix = f"HTTP 503 Busy; then the body failed: {named(client, 'cut_short')}"
    assert result.evidence.error.startswith(prefix)
    assert server.connections == 1


async def test_one_reset_mid_answer_then_an_answer_is_ok_thanks_to_the_retry(
    raw_server: StartRaw, client: Client, sleeps: SleepLog
) -> None:
    async def flaky(number: int, reader: Reader, writer: Writer) -> None:
        if number == 1:
            await read_request(reader)
            # Headers and part of the body, then a reset: past the point where aiohttp
            # would re-send by itself, so only the probe's own retry can save it.
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
            await writer.drain()
            await reset(writer)
        else:
            await answer_ok(reader, writer)

    server = await raw_server(flaky)

    result = await probe(make_spec(server.url), client, sleeps)

    assert result.outcome is Outcome.OK
    assert result.evidence.body_excerpt == ""  # a healthy answer keeps no excerpt (checks.scrub)
    assert result.evidence.error is None
    assert result.evidence.timings["attempts"] == 2
    assert server.connections == 2
    assert sleeps.calls == [RETRY_WAIT]


async def test_one_reset_before_the_answer_then_an_answer_is_ok(
    raw_server: StartRaw, client: Client
) -> None:
    async def flaky(number: int, reader: Reader, writer: Writer) -> None:
        if number == 1:
            await read_request(reader)
            await reset(writer)
        else:
            await answer_ok(reader, writer)

    server = await raw_server(flaky)

    result = await probe(make_spec(server.url), client)

    assert result.outcome is Outcome.OK
    assert server.connections == 2


# --- size and redirects ------------------------------------------------------------------


async def test_endless_body_is_too_large_and_reading_stops(
    aiohttp_server: AiohttpServer, client: Client
) -> None:
    chunk = b"z" * 16384
    sent = 0
    done = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(4096):  # bounded at 64 MiB; the probe should hang up long before
                await response.write(chunk)
                sent += len(chunk)
        except ConnectionError:
            pass
        finally:
            done.set()
        return response

    url = await serve_app(aiohttp_server, web.get("/", endless))
    started = time.perf_counter()

    result = await probe(make_spec(url, max_body_bytes=64 * 1024), client)

    assert time.perf_counter() - started < 2.0
    assert result.outcome is Outcome.TOO_LARGE
    assert result.evidence.error == (
        "body is larger than max_body_bytes (65536 bytes); stopped reading there"
    )
    assert len(result.evidence.body_excerpt) == EXCERPT_BYTES
    await asyncio.wait_for(done.wait(), timeout=5)
    # The server stopped because the probe hung up, with only socket buffers' worth sent.
    assert sent < 16 * 1024 * 1024


async def test_decompression_bomb_is_too_large(
    aiohttp_server: AiohttpServer, client: Client
) -> None:
    bomb = gzip.compress(b"\0" * (16 * 1024 * 1024))  # about 16 KiB on the wire

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    url = await serve_app(aiohttp_server, web.get("/", handle))

    result = await probe(make_spec(url, max_body_bytes=64 * 1024), client)

    assert result.outcome is Outcome.TOO_LARGE


async def test_body_of_exactly_the_cap_is_not_too_large(
    aiohttp_server: AiohttpServer, client: Client
) -> None:
    url = await serve_app(aiohttp_server, web.get("/", text_handler("y" * 1000)))

    result = await probe(make_spec(url, max_body_bytes=1000), client)

    assert result.outcome is Outcome.OK


def redirect_routes() -> list[web.RouteDef]:
    async def hop(request: web.Request) -> web.Response:
        left = int(request.match_info["left"])
        if left == 0:
            return web.Response(text="arrived")
        raise web.HTTPFound(f"/hop/{left - 1}")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    return [web.get("/hop/{left}", hop), web.get("/loop", loop)]


@pytest.mark.parametrize(
    ("max_redirects", "hops", "outcome"),
    [
        (3, 3, Outcome.OK),
        (3, 4, Outcome.TOO_LARGE),
        (0, 0, Outcome.OK),
        (0, 1, Outcome.TOO_LARGE),
    ],
)
async def test_redirects_are_followed_up_to_max_redirects(
    aiohttp_server: AiohttpServer,
    client: Client,
    max_redirects: int,
    hops: int,
    outcome: Outcome,
) -> None:
    url = await serve_app(aiohttp_server, *redirect_routes())
    url = url.join(URL(f"/hop/{hops}"))

    result = await probe(make_spec(url, max_redirects=max_redirects), client)

    assert result.outcome is outcome
    if outcome is Outcome.OK:
        assert result.evidence.url.endswith("/hop/0")
        assert (
            result.evidence.body_excerpt == ""
        )  # a healthy answer keeps no excerpt (checks.scrub)


async def test_redirect_loop_is_too_large(aiohttp_server: AiohttpServer, client: Client) -> None:
    url = await serve_app(aiohttp_server, *redirect_routes())

    spec = make_spec(url.join(URL("/loop")), max_redirects=5)
    result = await probe(spec, client)

    assert result.outcome is Outcome.TOO_LARGE
    assert result.evidence.status == 302
    assert result.evidence.url.endswith("/loop")
    assert result.evidence.error is not None
    assert result.evidence.error.startswith("more than 5 redirects; gave up at http://")
    assert result.latency is None


# --- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_url(aiohttp_server: AiohttpServer, ca: trustme.CA) -> URL:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    return await serve_app(aiohttp_server, web.get("/", text_handler("secure")), ssl=server_context)


async def test_untrusted_certificate_is_tls_error_and_not_retried(
    tls_url: URL, client: Client, sleeps: SleepLog
) -> None:
    assert str(tls_url).startswith("https://")

    result = await probe(make_spec(tls_url), client, sleeps)

    assert result.outcome is Outcome.TLS_ERROR
    assert result.evidence.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in result.evidence.error
    assert sleeps.calls == []


async def test_verify_tls_false_accepts_an_untrusted_certificate(
    tls_url: URL, client: Client
) -> None:
    result = await probe(make_spec(tls_url, verify_tls=False), client)

    assert result.outcome is Outcome.OK
    assert result.evidence.body_excerpt == ""  # a healthy answer keeps no excerpt (checks.scrub)


async def test_verification_uses_the_trust_of_the_session(tls_url: URL, ca: trustme.CA) -> None:
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    connector = aiohttp.TCPConnector(force_close=True, ssl=trusting)
    async with aiohttp.ClientSession(connector=connector) as trusting_session:
        result = await probe(make_spec(tls_url), trusting_session)

    assert result.outcome is Outcome.OK


async def test_tls_to_a_plain_http_server_is_tls_error(
    raw_server: StartRaw, client: Client
) -> None:
    async def plain(number: int, reader: Reader, writer: Writer) -> None:
        await reader.read(1)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    server = await raw_server(plain)

    result = await probe(make_spec(f"https://127.0.0.1:{server.port}/"), client)

    assert result.outcome is Outcome.TLS_ERROR


# --- evidence ----------------------------------------------------------------------------


async def test_excerpt_is_capped_at_2kb_and_decoded_leniently(
    aiohttp_server: AiohttpServer, client: Client
) -> None:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=b"\xff" + b"a" * 10_000, content_type="text/plain")

    url = await serve_app(aiohttp_server, web.get("/", handle))

    # A failure keeps an excerpt; a healthy answer keeps none.
    result = await probe(make_spec(url, body_contains=["missing"]), client)

    assert result.outcome is Outcome.CONTENT_MISMATCH
    assert result.evidence.body_excerpt == "\ufffd" + "a" * (EXCERPT_BYTES - 1)


async def test_header_evidence_keeps_first_values_and_is_capped(
    aiohttp_server: AiohttpServer, client: Client
) -> None:
    async def handle(request: web.Request) -> web.Response:
        headers = CIMultiDict([("X-Dup", "first"), ("X-Dup", "second")])
        headers.extend((f"X-Filler-{i}", str(i)) for i in range(80))
        return web.Response(text="ok", headers=headers)

    url = await serve_app(aiohttp_server, web.get("/", handle))

    result = await probe(make_spec(url), client)

    assert result.evidence.headers["x-dup"] == "first"
    assert len(result.evidence.headers) == 50


# --- expect_status -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (200, (200, 200)),
        ("404", (404, 404)),
        ("200-299", (200, 299)),
        (" 300 - 399 ", (300, 399)),
        ("100-599", (100, 599)),
    ],
)
def test_parse_status_entry_accepts(entry: int | str, expected: tuple[int, int]) -> None:
    assert parse_status_entry(entry) == expected


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("abc", "must be a status such as 200 or a range such as \"200-299\" (got 'abc')"),
        ("2xx", "must be a status such as 200 or a range such as \"200-299\" (got '2xx')"),
        ("200-", "must be a status such as 200 or a range such as \"200-299\" (got '200-')"),
        ("300-200", 'range "300-200" runs backwards: write the lower status first, '
                    'e.g. "200-300"'),
        (99, "status 99 is not an HTTP status (100-599); expected a status such as 200 or a "
             "range such as \"200-299\" (got 99)"),
        ("200-600", "status 600 is not an HTTP status (100-599)"),
        (True, "must be a status such as 200"),
    ],
)  # fmt: skip
def test_parse_status_entry_rejects(entry: Any, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_status_entry(entry)
    assert str(raised.value).startswith(message)


def test_spec_reports_every_bad_expect_status_entry_at_once() -> None:
    with pytest.raises(ValidationError) as raised:
        HttpCheckSpec.model_validate({"expect_status": [200, "abc", "300-200"]})

    text = str(raised.value)
    assert "expect_status" in text
    assert "[1] must be a status such as 200" in text
    assert '[2] range "300-200" runs backwards' in text


def test_spec_rejects_an_empty_expect_status() -> None:
    with pytest.raises(ValidationError, match="must list at least one status"):
        HttpCheckSpec.model_validate({"expect_status": []})


@pytest.mark.parametrize(
    ("status", "accepted"),
    [(199, False), (200, True), (299, True), (301, False), (404, True), (405, False)],
)
def test_accepts_status(status: int, accepted: bool) -> None:
    spec = HttpCheckSpec.model_validate({"expect_status": ["200-299", 404]})

    assert spec.accepts_status(status) is accepted


def test_default_expect_status_is_200_to_399() -> None:
    spec = HttpCheckSpec()

    assert [s for s in (199, 200, 302, 399, 400) if spec.accepts_status(s)] == [200, 302, 399]

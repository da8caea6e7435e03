"""Per-phase timings of http probes (checks.phases through checks.lean_http): they add up to
the probe's duration, a server that stalls its TLS handshake shows the time in `tls`, and the
evidence of a slow or timed-out probe says where the time went; the metric exports them."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import trustme
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpServer

from checks.http import HttpCheckSpec, probe_http
from checks.lean_http import LeanTransport
from checks.phases import PHASES, split, where_time_went
from checks.result import Evidence, Outcome, ProbeResult
from monitor.check_metrics import CheckMetrics
from tests.test_http_probe import SleepLog, read_request

NOW = datetime.now(UTC).replace(microsecond=0)
TLS_STALL = 0.4  # how long the stalling server waits before its TLS handshake


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def lean_trusting(ca: trustme.CA) -> AsyncIterator[LeanTransport]:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    transport = LeanTransport(verified_context=context)
    yield transport
    await transport.close()


async def probe(transport: LeanTransport, url: str, **fields: object) -> ProbeResult:
    spec = HttpCheckSpec.model_validate({"url": url, **fields})
    return await probe_http(spec, transport=transport, now=lambda: NOW, sleep=SleepLog())


async def probe_by_name(aiohttp_server: AiohttpServer, app: web.Application) -> ProbeResult:
    """`app`'s `/` probed through a fresh lean transport, by name so that the lookup is a
    phase of its own."""
    server = await aiohttp_server(app)
    transport = LeanTransport()
    try:
        return await probe(transport, f"http://localhost:{server.port}/")
    finally:
        await transport.close()


def phases_of(result: ProbeResult) -> dict[str, float]:
    return {name: result.evidence.timings[name] for name in PHASES}


class StallingTlsServer:
    """Accepts a connection, waits `stall` seconds before its TLS handshake, then answers 200.

    A raw socket rather than asyncio.start_server: a stream server would read the client's
    hello into its buffer during the wait, and the handshake could never happen."""

    def __init__(self, ca: trustme.CA, *, stall: float) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self._context)
        self._stall = stall
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> StallingTlsServer:
        self._tasks.add(asyncio.create_task(self._accept()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._listener.close()

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self._listener)
            self._tasks.add(asyncio.create_task(self._serve(conn)))

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(self._stall)  # the server's own behaviour: a slow handshake
            reader = asyncio.StreamReader()
            protocol = asyncio.StreamReaderProtocol(reader)
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, conn, ssl=self._context
            )
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass  # the probe gave up first
        finally:
            conn.close()  # no-op once its transport closed it


# --- pure ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instants", "phases"),
    [
        # A whole https hop: every phase from its own instant to the next one's.
        (
            {"resolved": 10.5, "connected": 11.25, "secured": 13.0, "first_byte": 13.5},
            {"resolve": 0.5, "connect": 0.75, "tls": 1.75, "processing": 0.5, "transfer": 0.5},
        ),
        # Plain http: secured is connected, so tls is 0.
        (
            {"resolved": 10.0, "connected": 10.25, "secured": 10.25, "first_byte": 11.0},
            {"resolve": 0.0, "connect": 0.25, "tls": 0.0, "processing": 0.75, "transfer": 3.0},
        ),
        # Cut short (a timeout) in each phase: the running one takes the rest.
        (
            {"resolved": None, "connected": None, "secured": None, "first_byte": None},
            {"resolve": 4.0, "connect": 0.0, "tls": 0.0, "processing": 0.0, "transfer": 0.0},
        ),
        (
            {"resolved": 10.5, "connected": None, "secured": None, "first_byte": None},
            {"resolve": 0.5, "connect": 3.5, "tls": 0.0, "processing": 0.0, "transfer": 0.0},
        ),
        (
            {"resolved": 10.5, "connected": 11.0, "secured": None, "first_byte": None},
            {"resolve": 0.5, "connect": 0.5, "tls": 3.0, "processing": 0.0, "transfer": 0.0},
        ),
        (
            {"resolved": 10.5, "connected": 11.0, "secured": 12.0, "first_byte": None},
            {"resolve": 0.5, "connect": 0.5, "tls": 1.0, "processing": 2.0, "transfer": 0.0},
        ),
    ],
)
def test_split_charges_each_interval_to_the_phase_that_ran(
    instants: dict[str, float | None], phases: dict[str, float]
) -> None:
    assert split(start=10.0, end=14.0, **instants) == phases


def test_split_adds_the_hops_before_a_redirect() -> None:
    earlier = {"resolve": 0.5, "connect": 0.25, "tls": 1.0, "processing": 0.5, "transfer": 0.0}
    phases = split(
        start=20.0, resolved=20.0, connected=20.5, secured=20.5, first_byte=21.0, end=21.5,
        earlier=earlier,
    )  # fmt: skip
    assert phases == {
        "resolve": 0.5, "connect": 0.75, "tls": 1.0, "processing": 1.0, "transfer": 0.5,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("phases", "words"),
    [
        ({"resolve": 0.01, "tls": 4.1, "transfer": 0.2}, "TLS handshake took 4.1 s"),
        ({"connect": 0.002, "processing": 0.25}, "waiting for the first byte took 250 ms"),
        ({"total": 3.0}, None),
    ],
)
def test_where_time_went_names_the_longest_phase(
    phases: dict[str, float], words: str | None
) -> None:
    assert where_time_went(phases) == words


# --- on the wire -----------------------------------------------------------------------------


async def test_phases_add_up_to_the_probe_duration_over_http(aiohttp_server: AiohttpServer) -> None:
    async def slow_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"start ")
        await asyncio.sleep(0.2)  # the server's own pace: time that belongs to `transfer`
        await response.write(b"end")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", slow_body)
    result = await probe_by_name(aiohttp_server, app)
    assert result.outcome is Outcome.OK
    phases = phases_of(result)
    assert result.latency is not None
    assert abs(sum(phases.values()) - result.latency) < 0.001
    assert phases["tls"] == 0.0
    assert phases["transfer"] >= 0.2
    assert all(value >= 0 for value in phases.values())


async def test_phases_of_every_redirect_hop_add_up_to_the_probe_duration(
    aiohttp_server: AiohttpServer,
) -> None:
    async def hop(request: web.Request) -> web.Response:
        await asyncio.sleep(0.1)  # each hop waits before answering: `processing`, twice
        raise web.HTTPFound("/end")

    async def end(request: web.Request) -> web.Response:
        await asyncio.sleep(0.1)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hop)
    app.router.add_get("/end", end)
    result = await probe_by_name(aiohttp_server, app)
    assert result.outcome is Outcome.OK, result.evidence.error
    phases = phases_of(result)
    assert result.latency is not None
    assert abs(sum(phases.values()) - result.latency) < 0.001
    assert phases["processing"] >= 0.2
    assert all(value >= 0 for value in phases.values())


async def test_a_stalled_tls_handshake_shows_in_the_tls_phase(
    ca: trustme.CA, lean_trusting: LeanTransport
) -> None:
    async with StallingTlsServer(ca, stall=TLS_STALL) as server:
        result = await probe(lean_trusting, f"https://127.0.0.1:{server.port}/")
    assert result.outcome is Outcome.OK, result.evidence.error
    phases = phases_of(result)
    assert result.latency is not None
    assert abs(sum(phases.values()) - result.latency) < 0.001
    assert phases["tls"] >= TLS_STALL
    assert phases["tls"] > 0.8 * result.latency
    assert phases["resolve"] < 0.05  # an IP literal is not looked up


async def test_slow_evidence_says_the_tls_handshake_took_the_time(
    ca: trustme.CA, lean_trusting: LeanTransport
) -> None:
    async with StallingTlsServer(ca, stall=TLS_STALL) as server:
        result = await probe(lean_trusting, f"https://127.0.0.1:{server.port}/", slow_after="200ms")
    assert result.outcome is Outcome.SLOW
    assert result.evidence.error is not None
    assert "; TLS handshake took " in result.evidence.error


async def test_a_timeout_in_the_handshake_is_charged_to_tls(
    ca: trustme.CA, lean_trusting: LeanTransport
) -> None:
    async with StallingTlsServer(ca, stall=5.0) as server:
        result = await probe(lean_trusting, f"https://127.0.0.1:{server.port}/", timeout="300ms")
    assert result.outcome is Outcome.TIMEOUT
    phases = phases_of(result)
    assert phases["tls"] >= 0.29
    assert result.evidence.error is not None
    tls_ms = round(phases["tls"] * 1000)
    assert result.evidence.error.endswith(f"TLS handshake took {tls_ms} ms")


def test_the_metric_exports_the_last_probes_phases() -> None:
    metrics = CheckMetrics(buckets=(0.1, 1.0))
    timings = {"total": 0.5, "resolve": 0.01, "connect": 0.02, "tls": 0.3, "processing": 0.1}
    result = ProbeResult(
        outcome=Outcome.OK,
        started_at=NOW,
        latency=0.5,
        evidence=_evidence(timings | {"transfer": 0.07}),
    )
    metrics.observe("acme/shop/home", result)
    text = b"".join(metrics.render()).decode()
    samples = {
        sample.labels["phase"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "probe_http_duration_seconds"
        for sample in family.samples
    }
    assert samples == pytest.approx(
        {"resolve": 0.01, "connect": 0.02, "tls": 0.3, "processing": 0.1, "transfer": 0.07}
    )
    collected = {
        sample.labels["phase"]
        for family in metrics.collect()
        if family.name == "probe_http_duration_seconds"
        for sample in family.samples
    }
    assert collected == set(PHASES)
    # A probe that measured no phases (a page check through aiohttp) shows none.
    metrics.observe(
        "acme/shop/home",
        ProbeResult(outcome=Outcome.OK, started_at=NOW, latency=0.5, evidence=_evidence({})),
    )
    text = b"".join(metrics.render()).decode()
    assert "probe_http_duration_seconds{" not in text


def _evidence(timings: dict[str, float]) -> Evidence:
    return Evidence(url="https://shop.example/", status=200, timings=timings)

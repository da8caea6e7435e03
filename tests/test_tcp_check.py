"""The `tcp` check against real servers on loopback: an SMTP banner (aiosmtpd), a closed
port, TLS ports with an expired and a wrong-host certificate (trustme), a reply that does not
match, a server that never answers, and a flood bounded by the read cap."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
import trustme

from checks.result import Outcome
from checks.tcp import TcpCheckSpec, probe_tcp
from tests.smtp_helpers import Inbox, smtpd

NOW = datetime.now(UTC)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _spec(port: int, **fields: object) -> TcpCheckSpec:
    return TcpCheckSpec.model_validate(
        {"kind": "tcp", "host": "127.0.0.1", "port": port, "timeout": "2s"} | fields
    )


@asynccontextmanager
async def tcp_server(
    handler: Handler, *, context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_smtp_banner_is_ok_and_a_quit_is_answered() -> None:
    async with smtpd(Inbox()) as port:
        banner = await probe_tcp(_spec(port, expect=r"^220 smtpd\.test"), now=lambda: NOW)
        quit_ = await probe_tcp(_spec(port, send="QUIT", expect=r"^221 "), now=lambda: NOW)
    assert banner.outcome is Outcome.OK, banner.evidence
    assert banner.evidence.body_excerpt.startswith("220 smtpd.test")
    assert banner.evidence.url == f"tcp://127.0.0.1:{port}"
    assert set(banner.evidence.timings) == {"connect", "total"}
    assert quit_.outcome is Outcome.OK, quit_.evidence
    assert "221" in quit_.evidence.body_excerpt


async def test_a_banner_that_does_not_match_is_an_unexpected_status_without_waiting() -> None:
    async with smtpd(Inbox()) as port:
        result = await probe_tcp(
            _spec(port, send="QUIT", expect=r"^\+PONG", timeout="5s"), now=lambda: NOW
        )
    # The server closed after QUIT: the verdict comes then, not after the timeout.
    assert result.outcome is Outcome.UNEXPECTED_STATUS
    assert result.latency is not None and result.latency < 2
    assert result.evidence.error == "expected a match of '^\\\\+PONG' in the reply"


async def test_a_reply_that_never_matches_is_a_mismatch_at_the_timeout() -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"-ERR unknown command\r\n")
        await writer.drain()
        await reader.read()  # keeps the connection open until the probe hangs up
        writer.close()

    async with tcp_server(chatty) as port:
        result = await probe_tcp(
            _spec(port, send="PING", expect=r"\+PONG", timeout="300ms"), now=lambda: NOW
        )
    assert result.outcome is Outcome.UNEXPECTED_STATUS
    assert result.evidence.body_excerpt == "-ERR unknown command\n"


async def test_silence_is_a_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    async with tcp_server(silent) as port:
        result = await probe_tcp(_spec(port, expect="^220", timeout="300ms"), now=lambda: NOW)
    assert result.outcome is Outcome.TIMEOUT
    assert result.evidence.error == "no complete answer within 0.3s"


async def test_a_closed_port_is_a_connection_error() -> None:
    result = await probe_tcp(_spec(_closed_port()), now=lambda: NOW)
    assert result.outcome is Outcome.CONNECTION_ERROR
    assert result.evidence.error is not None and "ConnectionRefusedError" in result.evidence.error
    assert result.latency is None


async def test_the_read_is_capped_whatever_the_server_sends() -> None:
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(1000):
                writer.write(b"x" * 65536)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    async with tcp_server(flood) as port:
        result = await probe_tcp(
            _spec(port, expect="never", max_read_bytes=10_000), now=lambda: NOW
        )
    assert result.outcome is Outcome.UNEXPECTED_STATUS
    assert result.evidence.error is not None and "before the read cap" in result.evidence.error
    assert len(result.evidence.body_excerpt) == 2048


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def _client(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def _hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"* OK IMAP4rev1 ready\r\n")
    await writer.drain()
    writer.close()


def _server(ca: trustme.CA, *identities: str, not_after: datetime | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*identities, not_after=not_after).configure_cert(context)
    return context


async def test_tls_with_a_good_certificate_reports_its_expiry(ca: trustme.CA) -> None:
    not_after = (NOW + timedelta(days=200)).replace(microsecond=0)
    async with tcp_server(_hello, context=_server(ca, "127.0.0.1", not_after=not_after)) as port:
        result = await probe_tcp(
            _spec(port, tls=True, expect=r"^\* OK"), now=lambda: NOW, ssl_context=_client(ca)
        )
    assert result.outcome is Outcome.OK, result.evidence
    assert result.evidence.url == f"tls://127.0.0.1:{port}"
    assert result.evidence.tls_not_after == not_after.timestamp()


async def test_tls_with_a_certificate_for_another_host_is_a_tls_error(ca: trustme.CA) -> None:
    async with tcp_server(_hello, context=_server(ca, "mail.elsewhere.example")) as port:
        result = await probe_tcp(_spec(port, tls=True), now=lambda: NOW, ssl_context=_client(ca))
    assert result.outcome is Outcome.TLS_ERROR
    assert result.evidence.error is not None and "IP address mismatch" in result.evidence.error


async def test_tls_with_an_expired_certificate_is_a_tls_error_unless_unverified(
    ca: trustme.CA,
) -> None:
    expired = _server(ca, "127.0.0.1", not_after=NOW - timedelta(days=2))
    async with tcp_server(_hello, context=expired) as port:
        result = await probe_tcp(_spec(port, tls=True), now=lambda: NOW, ssl_context=_client(ca))
        unverified = await probe_tcp(
            _spec(port, tls=True, verify_tls=False), now=lambda: NOW, ssl_context=_client(ca)
        )
    assert result.outcome is Outcome.TLS_ERROR
    assert result.evidence.error is not None and "certificate has expired" in result.evidence.error
    # Not verified, it still connects: the expiry is what the warning then reports.
    assert unverified.outcome is Outcome.CERT_EXPIRING
    assert unverified.evidence.error is not None
    assert unverified.evidence.error.startswith("certificate expired 2 days ago")


async def test_a_name_that_resolves_to_link_local_is_refused() -> None:
    async def metadata(host: str, port: int) -> list[str]:
        return ["169.254.169.254"]

    refused = await probe_tcp(
        _spec(80, host="internal.test", timeout="300ms"), now=lambda: NOW, resolve=metadata
    )
    assert refused.outcome is Outcome.REDIRECT_REFUSED
    assert refused.evidence.error == (
        "internal.test resolves to 169.254.169.254, a link-local address "
        "(set allow_private: true to connect there)"
    )


async def test_a_name_is_resolved_by_the_system_and_loopback_is_allowed() -> None:
    async with smtpd(Inbox()) as port:
        result = await probe_tcp(_spec(port, host="localhost", expect="^220"), now=lambda: NOW)
    assert result.outcome is Outcome.OK, result.evidence


async def test_what_the_check_sent_is_masked_where_the_reply_echoes_it() -> None:
    # `send: "AUTH ${REDIS_PASSWORD}"`: a server that repeats the command must not put the
    # password into the evidence (the timeline, the API, on-call mails), as http checks mask
    # the body they sent.
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = (await reader.readline()).decode().strip()
        writer.write(f"-ERR unknown command '{line}'\r\n".encode())
        await writer.drain()
        writer.close()

    async with tcp_server(echo) as port:
        result = await probe_tcp(
            _spec(port, send="AUTH s3cret-pass", expect=r"^\+OK"), now=lambda: NOW
        )
    assert result.outcome is Outcome.UNEXPECTED_STATUS
    assert "s3cret-pass" not in result.evidence.body_excerpt
    assert result.evidence.body_excerpt.startswith("-ERR unknown command '")

"""The journey's SOCKS5 proxy on its own, spoken to as Chromium speaks to it: what it lets
through, what it refuses, and what a client that speaks no SOCKS5 gets."""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from collections.abc import AsyncIterator

import pytest

from checks.browser_proxy import MAX_NOTED, JourneyProxy
from checks.private_ranges import AddressClass
from checks.resolve import Resolve

LOOPBACK_OK = frozenset({AddressClass.PUBLIC, AddressClass.LOOPBACK})
PUBLIC_ONLY = frozenset({AddressClass.PUBLIC})


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _connect(
    proxy: JourneyProxy, host: str | bytes, port: int, *, ipv6: bool = False
) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    """Greet the proxy, ask for host:port (by name, or as an IPv6 address); the reply code
    and the open tunnel."""
    address = proxy.server.removeprefix("socks5://")
    proxy_host, proxy_port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(proxy_host, int(proxy_port))
    writer.write(b"\x05\x01\x00")
    assert await reader.readexactly(2) == b"\x05\x00"
    if ipv6:
        assert isinstance(host, str)
        target = b"\x04" + ipaddress.IPv6Address(host).packed
    else:
        name = host.encode() if isinstance(host, str) else host
        target = b"\x03" + bytes([len(name)]) + name
    writer.write(b"\x05\x01\x00" + target + struct.pack("!H", port))
    reply = await reader.readexactly(10)
    return reply[1], reader, writer


def _resolver(answers: dict[str, list[str]]) -> Resolve:
    """DNS as the outside world could answer it (names that resolve nowhere else)."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    resolve.asked = asked  # type: ignore[attr-defined]
    return resolve


async def test_a_connection_the_check_may_make_is_tunnelled(echo_port: int) -> None:
    async with JourneyProxy(LOOPBACK_OK) as proxy:
        code, reader, writer = await _connect(proxy, "localhost", echo_port)
        assert code == 0
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"HELLO"
        writer.close()
        assert proxy.refused == []


async def test_internal_addresses_are_refused_and_noted_once(echo_port: int) -> None:
    async with JourneyProxy(PUBLIC_ONLY) as proxy:
        for _ in range(2):
            code, reader, writer = await _connect(proxy, "127.0.0.1", echo_port)
            assert code == 2  # not allowed by ruleset
            assert await asyncio.wait_for(reader.read(), 5) == b""  # and closed
            writer.close()
        code, _, writer = await _connect(proxy, "169.254.169.254", 80)
        assert code == 2
        writer.close()
    assert proxy.refused == [
        f"127.0.0.1:{echo_port} refused: it leads to a loopback address",
        "169.254.169.254:80 refused: it leads to a link-local address",
    ]


async def test_a_name_is_judged_by_every_address_it_resolves_to(echo_port: int) -> None:
    # localhost is loopback however it resolves: a check of a public site may not go there.
    async with JourneyProxy(PUBLIC_ONLY) as proxy:
        code, _, writer = await _connect(proxy, "localhost", echo_port)
        writer.close()
    assert code == 2
    assert proxy.refused == [f"localhost:{echo_port} refused: it leads to a loopback address"]


async def test_a_closed_port_is_a_refused_connection_not_a_hang() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with JourneyProxy(LOOPBACK_OK) as proxy:
        code, _, writer = await asyncio.wait_for(_connect(proxy, "127.0.0.1", port), 10)
        writer.close()
    assert code == 5  # connection refused


async def test_a_client_that_speaks_no_socks5_is_closed() -> None:
    async with JourneyProxy(LOOPBACK_OK) as proxy:
        host, port = proxy.server.removeprefix("socks5://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    assert answer in (b"", b"\x05\xff")  # no method we take, then closed


async def test_closing_the_proxy_ends_its_open_tunnels(echo_port: int) -> None:
    proxy = JourneyProxy(LOOPBACK_OK)
    await proxy.__aenter__()
    code, reader, writer = await _connect(proxy, "127.0.0.1", echo_port)
    assert code == 0
    await asyncio.wait_for(proxy.close(), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_what_is_noted_is_bounded_while_everything_is_still_refused() -> None:
    async with JourneyProxy(PUBLIC_ONLY) as proxy:
        codes = []
        for port in range(1, MAX_NOTED + 6):
            code, _, writer = await _connect(proxy, "169.254.169.254", port)
            codes.append(code)
            writer.close()
    assert codes == [2] * (MAX_NOTED + 5)
    assert len(proxy.refused) == MAX_NOTED


async def test_a_name_with_one_internal_address_among_public_ones_is_refused() -> None:
    resolve = _resolver({"shop.example": ["93.184.215.14", "10.0.0.5"]})
    async with JourneyProxy(PUBLIC_ONLY, resolve=resolve) as proxy:
        code, _, writer = await _connect(proxy, "shop.example", 443)
        writer.close()
    assert code == 2
    assert proxy.refused == ["shop.example:443 refused: it leads to a private address"]


async def test_the_proxy_connects_to_exactly_the_addresses_it_checked(echo_port: int) -> None:
    # A name no resolver but the proxy's knows: the tunnel works only if the proxy connects
    # to the address it checked rather than handing the name on. Asked once per journey.
    resolve = _resolver({"shop.example": ["127.0.0.1"]})
    async with JourneyProxy(LOOPBACK_OK, resolve=resolve) as proxy:
        for _ in range(2):
            code, reader, writer = await _connect(proxy, "shop.example", echo_port)
            assert code == 0
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), 5) == b"PING"
            writer.close()
    assert resolve.asked == ["shop.example"]  # type: ignore[attr-defined]


async def test_an_ipv4_address_inside_ipv6_is_judged_by_the_ipv4_one(echo_port: int) -> None:
    async with JourneyProxy(PUBLIC_ONLY) as proxy:
        code, _, writer = await _connect(proxy, "::ffff:127.0.0.1", echo_port, ipv6=True)
        writer.close()
    assert code == 2
    assert proxy.refused == [f"[::ffff:7f00:1]:{echo_port} refused: it leads to a loopback address"]


async def test_a_name_that_does_not_resolve_or_is_not_ascii_is_answered_not_dropped() -> None:
    async with JourneyProxy(LOOPBACK_OK, resolve=_resolver({})) as proxy:
        code, _, writer = await _connect(proxy, "gone.example", 80)
        writer.close()
        assert code == 4  # host unreachable
        code, _, writer = await _connect(proxy, "caf\xc3\xa9.example".encode("latin-1"), 80)
        writer.close()
        assert code == 8  # address type not supported
    assert proxy.failure_of("gone.example", 80) == "gone.example:80: no such host"
    assert proxy.refusals == 0


async def test_a_target_that_resets_the_connection_ends_the_tunnel_at_once() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.transport.abort()  # RST, not an orderly end

    target = await asyncio.start_server(reset, "127.0.0.1", 0)
    port = target.sockets[0].getsockname()[1]
    try:
        async with JourneyProxy(LOOPBACK_OK) as proxy:
            code, reader, writer = await _connect(proxy, "127.0.0.1", port)
            assert code == 0
            writer.write(b"x")
            ended = await asyncio.wait_for(reader.read(), 5)  # not left hanging
            writer.close()
        assert ended == b""
    finally:
        target.close()
        await target.wait_closed()

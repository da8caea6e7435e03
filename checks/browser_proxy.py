"""Where a browser journey may connect: a SOCKS5 proxy of its own on loopback.

Every connection of the journey's browser context goes through it (Chromium sends SOCKS5 the
host name, so Chromium resolves nothing itself): the page, its scripts and frames, and each
hop of an HTTP redirect, which a Playwright route never sees. For each connection the proxy
resolves the name once, refuses it when one of the addresses is of a class the check's own
URL is not (loopback, link-local, private, multicast: `checks.private_ranges`, as an http
check refuses such a redirect), and otherwise connects to exactly the addresses it checked,
so a name that rebinds between a check and the connection is caught too.

A refused connection is answered "not allowed by ruleset" (Chromium: net::ERR_SOCKS_...) and
noted in `refused`, once per host and port (the first `MAX_NOTED` of them); a name that does
not resolve or a target that does not answer is noted in `failed`. Each step is
bounded: the greeting, the lookup and the connection to the target; a tunnel lasts until
either side closes it or the proxy is closed with its journey.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import struct
from types import TracebackType

from checks.private_ranges import AddressClass, address_class
from checks.resolve import Resolve, system_resolve

__all__ = ["JourneyProxy"]

log = logging.getLogger(__name__)

MAX_NOTED = 10
HANDSHAKE_TIMEOUT = 10.0
CONNECT_TIMEOUT = 30.0
_CHUNK = 65536

_VERSION = 5
_NO_AUTH = 0
_NO_ACCEPTABLE = 0xFF
_CONNECT = 1
_IPV4, _DOMAIN, _IPV6 = 1, 3, 4
# Replies
_SUCCEEDED = 0
_GENERAL_FAILURE = 1
_NOT_ALLOWED = 2
_HOST_UNREACHABLE = 4
_CONNECTION_REFUSED = 5
_COMMAND_NOT_SUPPORTED = 7
_ADDRESS_NOT_SUPPORTED = 8


class _Refused(Exception):
    def __init__(self, reply: int) -> None:
        self.reply = reply


class JourneyProxy:
    """`async with JourneyProxy(allowed) as proxy:` then `proxy.server` for the context.

    `refused` and `failed` hold a line per host and port (the first `MAX_NOTED`);
    `refusals` counts every refusal and `latest_refusal` is the newest one's line, so that a
    step can tell whether its own navigation was refused."""

    def __init__(
        self, allowed: frozenset[AddressClass], *, resolve: Resolve = system_resolve
    ) -> None:
        self._allowed = allowed
        self._resolve = resolve
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        # One lookup per name and journey: a page of many connections to one host does not
        # wait for the resolver each time (and cannot see it change its answer).
        self._resolved: dict[tuple[str, int], list[str] | None] = {}
        self._noted: set[str] = set()
        self.refused: list[str] = []
        self.failed: list[str] = []
        self.refusals = 0
        self.latest_refusal: str | None = None

    @property
    def server(self) -> str:
        """The proxy's address for Playwright's `proxy={"server": ...}`."""
        assert self._server is not None, "not started"
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"socks5://{host}:{port}"

    async def __aenter__(self) -> JourneyProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening and end every tunnel at once (the journey is over)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted while closing
            writer.transport.abort()
            return
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._writers.add(writer)
        try:
            await self._tunnel(reader, writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the browser went away, or spoke no SOCKS5 in time: nothing to answer
        except asyncio.CancelledError:
            # Only close() cancels a handler, and nothing awaits its result: asyncio's
            # streams would log a cancelled connection callback as an error.
            pass
        except Exception:  # whatever a client sends must not take the journey down
            log.debug("SOCKS5 connection failed", exc_info=True)
        finally:
            self._handlers.discard(handler)
            self._writers.discard(writer)
            writer.close()  # after what is buffered went out (close() aborts instead)

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                host, port = await _handshake(reader, writer)
            upstream_reader, upstream_writer = await self._connect(host, port)
        except _Refused as refused:
            writer.write(_reply(refused.reply))
            await writer.drain()
            return
        self._writers.add(upstream_writer)
        try:
            writer.write(_reply(_SUCCEEDED))
            await writer.drain()
            await _pipe_both(reader, writer, upstream_reader, upstream_writer)
        finally:
            self._writers.discard(upstream_writer)
            upstream_writer.close()

    async def _addresses(self, host: str, port: int) -> list[str] | None:
        key = (host, port)
        if key not in self._resolved:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    self._resolved[key] = await self._resolve(host, port)
            except (OSError, TimeoutError):
                self._resolved[key] = None
        return self._resolved[key]

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        where = _host_port(host, port)
        addresses = await self._addresses(host, port)
        if not addresses:
            self._note(self.failed, f"{where}: no such host")
            raise _Refused(_HOST_UNREACHABLE)
        for address in addresses:
            found = address_class(address)
            if found not in self._allowed:
                line = f"{where} refused: it leads to a {found} address"
                self.refusals += 1
                self.latest_refusal = line
                self._note(self.refused, line)
                raise _Refused(_NOT_ALLOWED)
        for address in addresses:  # exactly those checked: no second lookup
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    return await asyncio.open_connection(address, port, limit=_CHUNK)
            except (OSError, TimeoutError):
                continue
        self._note(self.failed, f"{where}: connection refused or timed out")
        raise _Refused(_CONNECTION_REFUSED)

    def failure_of(self, host: str, port: int) -> str | None:
        """What the proxy noted of a connection to `host`:`port` (refused or failed)."""
        where = _host_port(host, port)
        for line in (*self.refused, *self.failed):
            if line.startswith(where) and line[len(where) : len(where) + 1] in (" ", ":"):
                return line
        return None

    def _note(self, into: list[str], line: str) -> None:
        # Bounded: a hostile page may try thousands of names; each is still refused.
        if line not in self._noted and len(into) < MAX_NOTED:
            self._noted.add(line)
            into.append(line)


async def _handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[str, int]:
    """The SOCKS5 greeting and CONNECT request (RFC 1928): the host and port asked for."""
    version, count = await reader.readexactly(2)
    if version != _VERSION:
        raise OSError("not a SOCKS5 client")
    methods = await reader.readexactly(count)
    if _NO_AUTH not in methods:
        writer.write(bytes([_VERSION, _NO_ACCEPTABLE]))
        await writer.drain()
        raise OSError("not a SOCKS5 client without authentication")
    writer.write(bytes([_VERSION, _NO_AUTH]))
    await writer.drain()
    version, command, _, kind = await reader.readexactly(4)
    if kind == _IPV4:
        host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
    elif kind == _IPV6:
        host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
    elif kind == _DOMAIN:
        (length,) = await reader.readexactly(1)
        try:  # Chromium sends names in ASCII (punycode)
            host = (await reader.readexactly(length)).decode("ascii")
        except UnicodeDecodeError:
            raise _Refused(_ADDRESS_NOT_SUPPORTED) from None
    else:
        raise _Refused(_ADDRESS_NOT_SUPPORTED)
    (port,) = struct.unpack("!H", await reader.readexactly(2))
    if version != _VERSION or command != _CONNECT:
        raise _Refused(_COMMAND_NOT_SUPPORTED)
    return host, port


def _reply(code: int) -> bytes:
    return bytes([_VERSION, code, 0, _IPV4, 0, 0, 0, 0, 0, 0])


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    """Copy both ways until both sides have closed: an orderly end of one side is passed on
    to the other; a broken one (a reset) aborts both, so the browser learns at once."""
    ends = (writer, upstream_writer)
    await asyncio.gather(
        _copy(reader, upstream_writer, ends=ends), _copy(upstream_reader, writer, ends=ends)
    )


async def _copy(
    source: asyncio.StreamReader,
    target: asyncio.StreamWriter,
    *,
    ends: tuple[asyncio.StreamWriter, ...],
) -> None:
    try:
        while data := await source.read(_CHUNK):
            target.write(data)
            await target.drain()
        if target.can_write_eof():
            target.write_eof()
    except OSError:
        for end in ends:
            end.transport.abort()

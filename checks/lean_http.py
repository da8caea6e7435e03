"""A lean HTTP/1.1 client for `http` checks: a fresh connection per request, nothing pooled.

`LeanTransport` is a `checks.http.HttpTransport` made of `loop.create_connection`, one
`asyncio.Protocol` per connection and httptools' llhttp parser, the same parser aiohttp uses
underneath. Without aiohttp's request, response, connector and stream objects it spends well
under half of aiohttp's CPU per probe (see bench/lean_http_micro.py), which is what lets one
process keep thousands of checks on a fresh connection each.

It behaves as the aiohttp path does, so that a check judges the same whichever carries it:

- sends `Host`, `Accept: */*`, a `User-Agent` (unless the check's headers set them), the
  check's headers and body (text, `Content-Type: text/plain; charset=utf-8` unless set),
  `Authorization: Basic` from credentials in the URL, and always `Connection: close`; no
  `Accept-Encoding` of its own (aiohttp sends "gzip, deflate"), yet a gzip or deflate body
  is inflated, in bounded steps, whenever the server labels one;
- follows 301, 302, 303, 307 and 308 up to `max_redirects` (303, and 301/302 after a POST,
  become a GET without body), resolving a relative Location against the current URL
  (`checks.redirects`), dropping every header of the check and the credentials of its URL
  when the origin changes, and refusing a hop whose addresses are loopback, link-local,
  private or multicast when the check's own are not (`checks.private_ranges`): the hop's
  name is resolved, its addresses checked, and exactly those are connected to;
- reads a body framed by Content-Length, chunked, or by the server closing, at most
  `max_body_bytes` of it: past that it hangs up (`Seen.truncated`);
- refuses what aiohttp refuses: a header line over 8190 bytes, more than 128 headers;
- resolves names with `loop.getaddrinfo` (a thread), cached for `dns_ttl`, one lookup in
  flight per name; IP literals (IPv6 too) skip it;
- verifies certificates with the system's CAs and the host name (`verify_tls: false`: not
  at all), SNI is the URL's host, and keeps the peer certificate's notAfter.

One difference on purpose: aiohttp sends a GET a second time when the connection drops before
any answer; this client does not (the probe's own re-try of a connection_error remains).

Exceptions, and the outcome `checks.classify` names for each (as for aiohttp's own):

    checks.http.RedirectLimit   more than max_redirects       -> too_large
    checks.private_ranges.RedirectRefused   a hop inside      -> redirect_refused
    ssl.SSLError, as raised     handshake or certificate      -> tls_error
    TimeoutError                the probe's own timeout       -> timeout
    WireError (a ConnectionError)                             -> connection_error
        CannotConnect           DNS failure, refused, unreachable, no usable address
        ServerDisconnected      closed or reset before the response headers were complete
        IncompleteBody          closed or reset before the end of the body
        BadResponse             not HTTP/1.x, oversized headers, undecodable gzip,
                                a redirect to a URL that cannot be followed
        InvalidUrl              the check's URL is not an absolute http(s) URL
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ipaddress
import re
import socket
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import httptools
from yarl import URL

from checks.http import HttpRequestSpec, RedirectLimit, Seen, header_pairs_evidence
from checks.private_ranges import AddressClass, HopGuard, allowed_classes
from checks.redirects import BadRedirect, resolve_location, same_origin
from checks.tls import not_after_from_der

__all__ = [
    "DEFAULT_USER_AGENT",
    "FALLBACK_DELAY",
    "BadResponse",
    "CannotConnect",
    "IncompleteBody",
    "InvalidUrl",
    "LeanTransport",
    "Resolver",
    "ServerDisconnected",
    "WireError",
    "system_resolver",
]

DEFAULT_USER_AGENT = "agency-monitor/0.1 (uptime check)"

# aiohttp's limits for a response's head (ClientSession's max_line_size, max_field_size,
# max_headers), so the same answer is refused by both transports.
MAX_LINE_BYTES = 8190
MAX_HEADERS = 128
# llhttp keeps a header it has not finished in memory; a head that has not ended after this
# many bytes can only be one over those limits, and is cut off there.
_MAX_HEAD_BYTES = MAX_HEADERS * (MAX_LINE_BYTES + 4) + MAX_LINE_BYTES

# aiohttp's happy_eyeballs_delay: how long one address may take to connect before the next
# one is tried alongside it.
FALLBACK_DELAY = 0.25

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Methods that get no `Content-Length: 0` when they carry no body (aiohttp's GET_METHODS).
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# The client frames every message itself: a check's own value for these would break it.
_FRAMING_HEADERS = frozenset({"connection", "content-length", "transfer-encoding"})
_CHARSET = re.compile(r';\s*charset\s*=\s*"?([^";\s]+)', re.IGNORECASE)
_FORBIDDEN_IN_HEADERS = re.compile(r"[\r\n\x00]")
_MAX_TARGETS = 65536  # cached request heads; far above any config's number of checks
_MAX_DNS_ENTRIES = 4096


class WireError(ConnectionError):
    """The target (or the network to it) did not hold up its end of HTTP/1.1."""


class CannotConnect(WireError):
    """No connection: the name did not resolve, or every address refused or was unreachable."""


class ServerDisconnected(WireError):
    """The connection closed (or was reset) before the response headers were complete."""


class IncompleteBody(WireError):
    """The connection closed (or was reset) before the end of the response body."""


class BadResponse(WireError):
    """What came back is not a usable HTTP/1.x response."""


class InvalidUrl(WireError):
    """The check's URL is not an absolute http(s) URL (aiohttp's InvalidURL, a ClientError,
    is a connection_error too)."""


Resolver = Callable[[str, int, int], Awaitable[Sequence[tuple[int, str]]]]
"""`(host, port, family) -> [(family, address), ...]`; raises OSError (socket.gaierror)."""


async def system_resolver(host: str, port: int, family: int) -> list[tuple[int, str]]:
    """The system's resolver in a worker thread, asked as aiohttp asks it."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, family=family, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
    )
    found: list[tuple[int, str]] = []
    for info_family, _, _, _, address in infos:
        entry = (int(info_family), str(address[0]))
        if entry not in found:
            found.append(entry)
    return found


@dataclass(frozen=True, slots=True)
class _Target:
    """One request ready to send: where to, and its bytes."""

    url: URL  # without credentials and fragment
    shown: str  # str(url), the Seen.url of this hop
    host: str  # IDNA-encoded: what is resolved, and the TLS server name
    port: int
    tls: bool
    literal: tuple[tuple[int, str], ...] | None  # the address when the host is an IP
    method: str
    headers: Mapping[str, str]  # the check's own, carried to a redirect
    body: bytes | None
    authorization: str | None  # from credentials in the URL
    request: bytes


class LeanTransport:
    """HTTP/1.1 straight on asyncio: see the module docstring.

    `source_address` binds each connection to that local IP (probes from one "location"
    look alike to the target). `verified_context` is used as it is for checks with
    `verify_tls: true`, instead of the system's CAs (tests trust their own CA with it).
    `resolver` and `monotonic` (the clock of the DNS cache) are there for tests. Call
    `close()` when done: it stops lookups still in flight.
    """

    def __init__(
        self,
        *,
        source_address: str | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        verified_context: ssl.SSLContext | None = None,
        resolver: Resolver = system_resolver,
        dns_ttl: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._user_agent = user_agent
        self._family: int = socket.AF_UNSPEC
        self._local: tuple[str, int] | None = None
        if source_address is not None:
            self._family = _family_of(source_address)
            self._local = (source_address, 0)
        self._source = source_address
        self._verified = verified_context
        self._unverified: ssl.SSLContext | None = None
        self._resolver = resolver
        self._dns_ttl = dns_ttl
        self._monotonic = monotonic
        self._dns: dict[tuple[str, int], tuple[float, tuple[tuple[int, str], ...]]] = {}
        self._lookups: dict[tuple[str, int], asyncio.Task[tuple[tuple[int, str], ...]]] = {}
        # Keyed by id(spec): the entry keeps the spec alive, so its id cannot be reused by
        # another spec while the entry exists. (A frozen spec with dict fields is unhashable.)
        self._targets: dict[int, tuple[HttpRequestSpec, _Target]] = {}

    async def close(self) -> None:
        """Cancel the DNS lookups still running."""
        lookups = list(self._lookups.values())
        for lookup in lookups:
            lookup.cancel()
        await asyncio.gather(*lookups, return_exceptions=True)

    async def exchange(
        self, spec: HttpRequestSpec, *, seen: Seen, since: float, clock: Callable[[], float]
    ) -> int:
        target = self._target_of(spec)
        seen.url = target.shown
        seen.hop_start = since
        redirects = 0
        if target.literal is not None:
            seen.resolved = since  # nothing to look up: resolve takes no time at all
            addresses = target.literal
        else:
            addresses = await self._resolve(target.host, target.port)
            seen.resolved = clock()
        own = addresses
        allowed: frozenset[AddressClass] | None = None
        while True:
            reader = await self._one(
                target, addresses, seen=seen, cap=spec.max_body_bytes, verify=spec.verify_tls,
                since=since, clock=clock,
            )  # fmt: skip
            if reader.location is None:
                return reader.status
            if redirects == spec.max_redirects:
                raise RedirectLimit(f"more than {spec.max_redirects} redirects")
            redirects += 1
            target = _redirected(
                target, status=reader.status, location=reader.location, user_agent=self._user_agent
            )
            _start_hop(seen, target.shown, since=since, now=clock())
            addresses = target.literal or await self._resolve(target.host, target.port)
            seen.resolved = clock()
            if not spec.allow_private_redirects:
                # Only on a hop, and before any connection: the addresses checked are the
                # ones connected to, so a name that rebinds cannot slip past.
                if allowed is None:
                    allowed = allowed_classes(address for _, address in own)
                guard = HopGuard(url=target.shown, allowed=allowed)
                guard.check_all(address for _, address in addresses)

    # -- one request -----------------------------------------------------------------------

    async def _one(
        self,
        target: _Target,
        addresses: Sequence[tuple[int, str]],
        *,
        seen: Seen,
        cap: int,
        verify: bool,
        since: float,
        clock: Callable[[], float],
    ) -> _Reader:
        loop = asyncio.get_running_loop()

        def new_reader() -> _Reader:
            return _Reader(target, loop=loop, seen=seen, cap=cap, since=since, clock=clock)

        context = self._context(verify=verify) if target.tls else None
        reader = await self._connect(loop, target, new_reader, addresses=addresses, context=context)
        try:
            reader.send()
            await reader.done
        finally:
            # On success the reader has closed already; after a failure or a cancelled
            # probe (its timeout) nothing must be left open.
            reader.abort()
        return reader

    async def _connect(
        self,
        loop: asyncio.AbstractEventLoop,
        target: _Target,
        new_reader: Callable[[], _Reader],
        *,
        addresses: Sequence[tuple[int, str]],
        context: ssl.SSLContext | None,
    ) -> _Reader:
        usable = [a for a in addresses if self._family in (socket.AF_UNSPEC, a[0])]
        if not usable:
            raise CannotConnect(
                f"Cannot connect to host {target.host}:{target.port} [no address of the "
                f"same family as source_address {self._source}]"
            )
        if len(usable) > 1:
            return await self._race(loop, target, new_reader, addresses=usable, context=context)
        reader = new_reader()
        try:
            await self._open(loop, reader, target, usable[0], context=context)
        except BaseException:
            reader.abort()
            raise
        return reader

    async def _race(
        self,
        loop: asyncio.AbstractEventLoop,
        target: _Target,
        new_reader: Callable[[], _Reader],
        *,
        addresses: Sequence[tuple[int, str]],
        context: ssl.SSLContext | None,
    ) -> _Reader:
        """Happy Eyeballs (RFC 8305), as aiohttp connects: the next address is tried as soon
        as the one before failed, or when it has not connected within `FALLBACK_DELAY`; the
        first connection wins and the others are dropped. A site whose IPv6 address is a
        black hole is then as reachable as it is for a browser, not a timeout."""
        waiting = list(addresses)
        attempts: dict[asyncio.Task[None], _Reader] = {}
        failure: BaseException | None = None
        try:
            while waiting or attempts:
                if waiting:
                    reader = new_reader()
                    opening = self._open(loop, reader, target, waiting.pop(0), context=context)
                    attempts[loop.create_task(opening)] = reader
                finished, _ = await asyncio.wait(
                    attempts,
                    timeout=FALLBACK_DELAY if waiting else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in finished:
                    reader = attempts.pop(task)
                    error = task.exception()
                    if error is None:
                        return reader
                    reader.abort()
                    if not isinstance(error, CannotConnect):
                        raise error  # a TLS failure or a timeout: the same on every address
                    failure = error
            assert failure is not None  # every address was tried and failed
            raise failure
        finally:
            for task, reader in attempts.items():
                task.cancel()
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: it lost the race, whatever it became
                reader.abort()

    async def _open(
        self,
        loop: asyncio.AbstractEventLoop,
        reader: _Reader,
        target: _Target,
        address: tuple[int, str],
        *,
        context: ssl.SSLContext | None,
    ) -> None:
        family, host = address
        try:
            # TCP first, then TLS on it (not create_connection's ssl=, which does both in
            # one): each has its own phase (checks.phases), and a plain http probe keeps the
            # event loop's fast path.
            transport, _ = await loop.create_connection(
                lambda: reader,
                host,
                target.port,
                family=family,
                proto=socket.IPPROTO_TCP,
                local_addr=self._local,
            )
            if context is not None:
                secured = await loop.start_tls(
                    transport, reader, context, server_hostname=target.host
                )
                if secured is None:  # the connection closed during the handshake
                    raise ServerDisconnected("Server disconnected during the TLS handshake")
                reader.connection_made(secured)
        except ssl.SSLError:
            raise  # the certificate or the handshake: tls_error
        except OSError as exc:
            # asyncio's own timeouts (no errno) stay timeouts, as aiohttp keeps them.
            if exc.errno is None and isinstance(exc, TimeoutError):
                raise
            if isinstance(exc, WireError):
                raise
            raise CannotConnect(
                f"Cannot connect to host {target.host}:{target.port} [{exc.strerror or exc}]"
            ) from exc

    def _context(self, *, verify: bool) -> ssl.SSLContext:
        # Made on first use and kept: building a context (reading the CA store) takes ms.
        # Both offer only HTTP/1.1 by ALPN, as aiohttp's do, so no server picks h2.
        if verify:
            if self._verified is None:
                self._verified = ssl.create_default_context()
                self._verified.set_alpn_protocols(["http/1.1"])
            return self._verified
        if self._unverified is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["http/1.1"])
            self._unverified = context
        return self._unverified

    # -- DNS -------------------------------------------------------------------------------

    async def _resolve(self, host: str, port: int) -> tuple[tuple[int, str], ...]:
        key = (host, port)
        cached = self._dns.get(key)
        if cached is not None and cached[0] > self._monotonic():
            return cached[1]
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = asyncio.get_running_loop().create_task(self._lookup(key))
            self._lookups[key] = lookup
            lookup.add_done_callback(functools.partial(self._lookup_done, key))
        try:
            # Shielded: a probe that times out must not cancel the lookup others wait for.
            return await asyncio.shield(lookup)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if lookup.cancelled() and task is not None and not task.cancelling():
                # close() stopped the lookup, not anyone's cancelling this probe.
                raise CannotConnect(
                    f"Cannot connect to host {host}:{port} [the transport was closed]"
                ) from None
            raise
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise CannotConnect(f"Cannot connect to host {host}:{port} [{reason}]") from exc

    async def _lookup(self, key: tuple[str, int]) -> tuple[tuple[int, str], ...]:
        found = tuple(await self._resolver(key[0], key[1], self._family))
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, "no address")
        if len(self._dns) >= _MAX_DNS_ENTRIES:
            now = self._monotonic()
            for stale in [k for k, (expires, _) in self._dns.items() if expires <= now]:
                del self._dns[stale]
            if len(self._dns) >= _MAX_DNS_ENTRIES:
                del self._dns[next(iter(self._dns))]
        self._dns[key] = (self._monotonic() + self._dns_ttl, found)
        return found

    def _lookup_done(
        self, key: tuple[str, int], lookup: asyncio.Task[tuple[tuple[int, str], ...]]
    ) -> None:
        del self._lookups[key]
        if not lookup.cancelled():
            lookup.exception()  # retrieved: every waiter may have given up on it

    # -- request heads ---------------------------------------------------------------------

    def _target_of(self, spec: HttpRequestSpec) -> _Target:
        entry = self._targets.get(id(spec))
        if entry is not None:
            return entry[1]
        body = None if spec.body is None else spec.body.encode()
        target = _target(
            _parse(spec.url),
            method=spec.method,
            headers=spec.headers,
            body=body,
            authorization=None,
            user_agent=self._user_agent,
        )
        if len(self._targets) >= _MAX_TARGETS:
            del self._targets[next(iter(self._targets))]
        self._targets[id(spec)] = (spec, target)
        return target


class _Reader(asyncio.Protocol):
    """One connection: sends the request when told, parses the answer into `Seen`, and
    resolves `done` when the answer is complete (or fails it)."""

    __slots__ = (
        "_cap", "_clock", "_content_encoding", "_content_type", "done",
        "_framed", "_head", "_head_bytes", "_headers_done", "_inflate", "_informational",
        "_pairs", "_parser", "_reason", "_request", "_seen", "_since", "_tls", "_transport",
        "location", "status",
    )  # fmt: skip

    def __init__(
        self,
        target: _Target,
        *,
        loop: asyncio.AbstractEventLoop,
        seen: Seen,
        cap: int,
        since: float,
        clock: Callable[[], float],
    ) -> None:
        self._request = target.request
        self._tls = target.tls
        self._head = target.method == "HEAD"
        self._seen = seen
        self._cap = cap
        self.done: asyncio.Future[None] = loop.create_future()
        self._since = since
        self._clock = clock
        self._transport: asyncio.Transport | None = None
        # The parser holds our callbacks and we hold it: _end() breaks that cycle, so that a
        # probe's objects go with reference counting instead of waiting for the cyclic GC.
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        # As lenient as aiohttp's parser is with real servers' small mistakes.
        self._parser.set_dangerous_leniencies(
            lenient_headers=True,
            lenient_optional_cr_before_lf=True,
            lenient_spaces_after_chunk_size=True,
        )
        self._headers_done = False
        self._informational = False
        self._head_bytes = 0
        self._reason = b""
        self._pairs: list[tuple[str, str]] = []
        self._framed = False  # Content-Length or chunked: the end is not the connection's
        self._content_type: str | None = None
        self._content_encoding: str | None = None
        self._inflate: _Inflater | None = None
        self.status = 0
        self.location: str | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Called by the loop once TCP is connected, and by `_open` again with the TLS
        transport once the handshake on it is done."""
        self._transport = cast(asyncio.Transport, transport)
        ssl_object = transport.get_extra_info("ssl_object")
        seen = self._seen
        # Of several connections raced to one target (Happy Eyeballs), the first to get
        # there marks the phase (checks.phases).
        if ssl_object is None:
            if seen.connected is None:
                seen.connected = now = self._clock()
                if not self._tls:
                    seen.secured = now
        elif seen.secured is None:
            seen.secured = self._clock()
        if ssl_object is not None:
            # binary_form: the DER even when the certificate was not verified.
            der = ssl_object.getpeercert(binary_form=True)
            self._seen.tls_not_after = not_after_from_der(der) if der else None

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            # One of our callbacks raised: a BadResponse, or a bug of ours, which is then
            # raised by the exchange as it is rather than taken for the target's fault.
            cause = exc.__context__
            self._fail(cause if isinstance(cause, Exception) else BadResponse(str(exc)))
            return
        except httptools.HttpParserError as exc:
            if self._parser is not None:  # else an upgrade after a 101 already taken
                self._fail(BadResponse(f"Invalid HTTP response: {exc}"))
            return
        if not self._headers_done and self._parser is not None:
            self._head_bytes += len(data)
            if self._head_bytes > _MAX_HEAD_BYTES:
                self._fail(BadResponse(f"response head longer than {_MAX_HEAD_BYTES} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._parser is None:
            return
        detail = f": {exc}" if exc is not None else ""
        if not self._headers_done:
            error: WireError = ServerDisconnected(f"Server disconnected{detail}")
        elif exc is None and not self._framed:
            self._finish()  # a body that ends when the connection does
            return
        else:
            error = IncompleteBody(f"Response payload is not completed{detail}")
        error.__cause__ = exc
        self._fail(error)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._seen.ttfb is None:
            # Also where the `transfer` phase begins (checks.http.Seen).
            self._seen.ttfb = self._clock() - self._since

    def on_status(self, status: bytes) -> None:
        # llhttp may hand the reason over in pieces, one per packet it arrived in.
        self._reason += status
        if len(self._reason) > MAX_LINE_BYTES:
            raise BadResponse(f"Got more than {MAX_LINE_BYTES} bytes when reading the status")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > MAX_LINE_BYTES:
            raise BadResponse(
                f"Got more than {MAX_LINE_BYTES} bytes when reading header {name[:100]!r}"
            )
        if len(self._pairs) >= MAX_HEADERS:
            raise BadResponse(f"Too many headers received (more than {MAX_HEADERS})")
        # llhttp strips the whitespace before a value, not after it.
        text = value.rstrip(b" \t").decode("utf-8", "replace")
        key = name.lower()
        if key == b"content-length":
            self._framed = True
        elif key == b"transfer-encoding":
            self._framed = self._framed or b"chunked" in value.lower()
        elif key == b"content-type":
            self._content_type = self._content_type or text
        elif key == b"content-encoding":
            self._content_encoding = self._content_encoding or text.strip().lower()
        elif key in (b"location", b"uri") and self.location is None:
            self.location = text
        self._pairs.append((name.decode("utf-8", "replace"), text))

    def on_headers_complete(self) -> None:
        assert self._parser is not None  # it is the one calling
        status = self._parser.get_status_code()
        if status < 200 and status != 101:
            # 100 Continue or 103 Early Hints: the answer proper follows on this connection.
            self._informational = True
            self._reason = b""
            self._pairs.clear()
            self._framed = False
            self._content_type = self._content_encoding = self.location = None
            return
        self._informational = False
        self._headers_done = True
        self.status = status
        seen = self._seen
        seen.status = status
        seen.reason = self._reason.decode("utf-8", "replace").strip() or None
        seen.headers = header_pairs_evidence(self._pairs)
        if self._content_type is not None:
            match = _CHARSET.search(self._content_type)
            seen.charset = match.group(1) if match else None
        if status not in _REDIRECTS:
            self.location = None
        if self.location is not None or self._head or status == 101:
            self._finish()  # nothing of the body is needed
            return
        if status in (204, 304):
            self._framed = True
        if self._content_encoding in ("gzip", "x-gzip", "deflate"):
            self._inflate = _Inflater(self._content_encoding)

    def on_body(self, chunk: bytes) -> None:
        if self._parser is None:  # the rest of a packet after we stopped reading
            return
        if self._inflate is not None:
            self._inflate.feed(chunk, into=self)
        else:
            self.keep(chunk)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self._finish()

    # -- outcome ---------------------------------------------------------------------------

    def send(self) -> None:
        """Write the request: only once this connection won the race to connect."""
        if self._transport is not None:
            self._transport.write(self._request)

    def room(self) -> int:
        """Bytes of body still wanted before the cap."""
        return self._cap - len(self._seen.body)

    def keep(self, chunk: bytes) -> bool:
        """Append a piece of the (decoded) body; False once the cap is passed."""
        body = self._seen.body
        room = self._cap - len(body)
        if len(chunk) <= room:
            body += chunk
            return True
        body += chunk[:room]
        self._seen.truncated = True
        # Hang up rather than leave the rest of an endless body to anyone.
        self._finish(hang_up=True)
        return False

    def abort(self) -> None:
        """Drop the connection if it is still open: the exchange is over, however it went."""
        self._end(hang_up=True)
        if not self.done.done():
            self.done.cancel()
        elif not self.done.cancelled():
            self.done.exception()  # retrieved, also when nobody awaited it (a lost race)

    def _finish(self, *, hang_up: bool = False) -> None:
        self._end(hang_up=hang_up)
        if not self.done.done():
            self.done.set_result(None)

    def _fail(self, error: Exception) -> None:
        self._end(hang_up=True)
        if not self.done.done():
            self.done.set_exception(error)

    def _end(self, *, hang_up: bool) -> None:
        self._parser = None
        transport, self._transport = self._transport, None
        if transport is not None:
            if hang_up:
                transport.abort()
            else:
                transport.close()


class _Inflater:
    """A gzip or deflate body inflated in steps no larger than the room left under the cap,
    so that a few KiB on the wire can never become more than `max_body_bytes` in memory."""

    __slots__ = ("_decoder", "_encoding", "_started")

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._started = False
        self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if "gzip" in encoding else 15)

    def feed(self, data: bytes, *, into: _Reader) -> None:
        if not self._started and data:
            self._started = True
            # "deflate" is meant as zlib-wrapped, yet some servers send it raw (no header).
            if self._encoding == "deflate" and data[0] & 0x0F != 8:
                self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            while data and not self._decoder.eof:
                # One byte past the room tells a body that is longer than the cap.
                piece = self._decoder.decompress(data, into.room() + 1)
                data = self._decoder.unconsumed_tail
                if not into.keep(piece):
                    return
        except zlib.error as exc:
            raise BadResponse(f"Can not decode content-encoding: {self._encoding}") from exc


# -- building requests ---------------------------------------------------------------------


def _family_of(address: str) -> int:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"source_address must be an IP address (got {address!r})") from None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def _parse(url: str) -> URL:
    try:
        return URL(url)
    except (ValueError, TypeError) as exc:
        raise InvalidUrl(f"not a usable URL: {url}") from exc


def _target(
    url: URL,
    *,
    method: str,
    headers: Mapping[str, str],
    body: bytes | None,
    authorization: str | None,
    user_agent: str,
) -> _Target:
    if url.scheme not in ("http", "https") or not url.raw_host:
        # Evidence passes error texts through checks.redact: no credentials are shown.
        raise InvalidUrl(f"not an absolute http(s) URL: {url}")
    if url.raw_user or url.raw_password:
        credentials = f"{url.user or ''}:{url.password or ''}".encode()
        authorization = "Basic " + base64.b64encode(credentials).decode("ascii")
    clean = url.with_user(None).with_fragment(None)
    host = url.raw_host
    literal = None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        literal = ((socket.AF_INET6 if ip.version == 6 else socket.AF_INET, host),)
    port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
    request = _request_bytes(
        clean, method=method, headers=headers, body=body, authorization=authorization,
        user_agent=user_agent,
    )  # fmt: skip
    return _Target(
        url=clean,
        shown=str(clean),
        host=host,
        port=port,
        tls=url.scheme == "https",
        literal=literal,
        method=method,
        headers=headers,
        body=body,
        authorization=authorization,
        request=request,
    )


def _request_bytes(
    url: URL,
    *,
    method: str,
    headers: Mapping[str, str],
    body: bytes | None,
    authorization: str | None,
    user_agent: str,
) -> bytes:
    given = {name.lower() for name in headers}
    lines = [f"{method} {url.raw_path_qs or '/'} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {url.host_port_subcomponent}")
    lines.extend(
        f"{name}: {value}"
        for name, value in headers.items()
        if name.lower() not in _FRAMING_HEADERS
    )
    if "accept" not in given:
        lines.append("Accept: */*")
    if "user-agent" not in given:
        lines.append(f"User-Agent: {user_agent}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
        if "content-type" not in given:
            lines.append("Content-Type: text/plain; charset=utf-8")
    elif method not in _BODYLESS_METHODS:
        lines.append("Content-Length: 0")
    if authorization is not None and "authorization" not in given:
        lines.append(f"Authorization: {authorization}")
    lines.append("Connection: close\r\n\r\n")
    if any(_FORBIDDEN_IN_HEADERS.search(line) for line in lines[:-1]):
        # As aiohttp refuses it: a header value must not smuggle another header in.
        raise ValueError(
            "a header of the check contains a newline, carriage return or NUL character"
        )
    return "\r\n".join(lines).encode() + (body or b"")


def _redirected(current: _Target, *, status: int, location: str, user_agent: str) -> _Target:
    """The request a redirect asks for, as `checks.redirects` sends it through aiohttp."""
    try:
        reference = resolve_location(current.url, location)
    except BadRedirect as exc:
        raise BadResponse(str(exc)) from exc
    headers = current.headers
    authorization = current.authorization
    if not same_origin(reference, current.url):
        # Every header of the check is meant for its own origin (an X-Api-Key as much as
        # an Authorization); so are credentials from its URL.
        headers = {}
        authorization = None
    method, body = current.method, current.body
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body = "GET", None
    return _target(
        reference.with_user(None), method=method, headers=headers, body=body,
        authorization=authorization, user_agent=user_agent,
    )  # fmt: skip


def _start_hop(seen: Seen, url: str, *, since: float, now: float) -> None:
    """`seen` ready for the next hop, which begins at `now`: the phases of the hops so far
    (the attempt began at `since`) are added up in `seen.earlier`."""
    seen.earlier = seen.phases(since=since, end=now)
    seen.hop_start = now
    seen.resolved = seen.connected = seen.secured = None
    seen.url = url
    seen.status = seen.reason = seen.charset = seen.ttfb = seen.tls_not_after = None
    seen.headers = {}
    seen.body.clear()
    seen.truncated = False

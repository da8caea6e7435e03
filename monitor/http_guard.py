"""A cap on connections to the monitor's own HTTP server, below the open-file limit.

Every connection holds a file descriptor, and so does every probe: a flood of idle connections
to /metrics or /api must not leave the probes without descriptors ("Too many open files"), nor
keep /healthz from answering. `ConnectionGuard` wraps the server's protocol factory:

    at most `limit` connections        a new one beyond it closes the connection that has been
                                       quiet longest and is not inside a request; when every
                                       connection is inside a request, the new one is closed
    a request header still incomplete  the connection is closed (server.header_timeout, counted
    `header_timeout` after its first   from the first byte): slowloris
    byte
    no request at all                  closed by aiohttp's keepalive timeout (server.idle_timeout),
                                       which runs from the moment a connection opens and again
                                       after each answer

The limit is the smaller of `server.max_connections` and a quarter of the soft RLIMIT_NOFILE.
While the guard has had to close connections (within FULL_HOLD), /healthz says degraded: a flood
the monitor holds off is still worth an operator's look.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

log = logging.getLogger(__name__)

# The server gets at most this share of the process's descriptors; the rest are for probes,
# the database, the SMTP and webhook connections and the log files.
SERVER_SHARE_OF_FILES = 4

# How long /healthz keeps saying the server was full after it last closed a connection for it.
FULL_HOLD = 60.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def connection_limit(configured: int) -> int:
    """`configured`, lowered to a quarter of the soft open-file limit when that is smaller."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft // SERVER_SHARE_OF_FILES))


class ConnectionGuard:
    """Counts the server's connections (all its listeners share one budget) and keeps them at
    most `limit`. Install `middleware` in the app so requests in progress are never evicted."""

    def __init__(
        self,
        limit: int,
        *,
        header_timeout: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.header_timeout = header_timeout
        self.evicted = 0  # idle connections closed to admit a new one
        self.refused = 0  # new connections closed because every slot was inside a request
        self._monotonic = monotonic
        self._full_at: float | None = None
        # Insertion order is the order of last activity: the first idle entry is evicted.
        self._open: dict[_Guarded, None] = {}
        self._by_handler: dict[asyncio.BaseProtocol, _Guarded] = {}

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def full_reason(self) -> str | None:
        """What /healthz says while the server has recently been at its limit, else None."""
        if self._full_at is None:
            return None
        ago = self._monotonic() - self._full_at
        if ago > FULL_HOLD:
            return None
        return (
            f"HTTP server full {ago:.0f} s ago: at its limit of {self.limit} connections "
            f"(server.max_connections), {self.evicted} idle closed, {self.refused} refused"
        )

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], Any]:
        return lambda: _Guarded(self, inner())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        guarded = self._by_handler.get(request.protocol)
        if guarded is None:  # a test server without the guard's factory
            return await handler(request)
        guarded.busy += 1
        guarded.header_complete()
        try:
            return await handler(request)
        finally:
            guarded.busy -= 1
            self._touch(guarded)

    def _admit(self, guarded: _Guarded) -> bool:
        if len(self._open) >= self.limit:
            self._full_at = self._monotonic()
            idle = next((c for c in self._open if c.busy == 0), None)
            if idle is None:
                self.refused += 1
                return False
            self.evicted += 1
            if self.evicted == 1 or self.evicted % 1000 == 0:
                log.warning(
                    "HTTP server at its limit of %d connections (server.max_connections): "
                    "each new one closes the idle connection quiet longest; %d closed so far",
                    self.limit,
                    self.evicted,
                )
            self._forget(idle)
            idle.close()
        self._open[guarded] = None
        self._by_handler[guarded.inner] = guarded
        return True

    def _touch(self, guarded: _Guarded) -> None:
        if guarded in self._open:
            del self._open[guarded]
            self._open[guarded] = None

    def _forget(self, guarded: _Guarded) -> None:
        self._open.pop(guarded, None)
        self._by_handler.pop(guarded.inner, None)


class _Guarded(asyncio.Protocol):
    """Hands everything to aiohttp's protocol once the guard has admitted the connection."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.busy = 0
        self._transport: asyncio.Transport | None = None
        self._admitted = False
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        if not self.guard._admit(self):
            _drop(transport)
            return
        self._admitted = True
        self.inner.connection_made(transport)

    def close(self) -> None:
        if self._transport is not None:
            _drop(self._transport)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        self.guard._touch(self)
        if self.busy == 0 and self._header_timer is None:
            # The first byte of a request: its header must be complete within the timeout.
            loop = asyncio.get_running_loop()
            self._header_timer = loop.call_later(self.guard.header_timeout, self._too_slow)
        self.inner.data_received(data)

    def header_complete(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.busy == 0:
            self.close()

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self._admitted else None

    def pause_writing(self) -> None:
        if self._admitted:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.header_complete()
        self.guard._forget(self)
        if self._admitted:
            self.inner.connection_lost(exc)


def _drop(transport: asyncio.Transport) -> None:
    # abort, not close: the descriptor is freed now, without waiting to flush anything.
    transport.abort()


class GuardedSite(web.TCPSite):
    """A TCPSite whose connections pass through `guard`."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, guard: ConnectionGuard
    ) -> None:
        super().__init__(runner, host, port, backlog=min(128, guard.limit))
        self._guard = guard

    async def start(self) -> None:
        # TCPSite.start, with the guard around the server's protocol factory.
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.protocol_factory(server),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port

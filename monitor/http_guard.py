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
That quarter alone does not protect the probes when the rest of the process already holds most
descriptors (55 of 64 in use by probes, and 16 connections would take the rest): so a connection
is also over the limit while fewer than FILES_KEPT_FREE descriptors are free. Then the quietest
idle connection makes room for it as above; with none idle, the server still keeps up to
SERVED_WHEN_SHORT connections, so that /healthz is answered while the probes are short.
While the guard has had to close connections (within FULL_HOLD), /healthz says degraded: a flood
the monitor holds off is still worth an operator's look.
"""

from __future__ import annotations

import asyncio
import logging
import os
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

# Descriptors the server leaves free for probes, the database and the mail connections: it
# holds no more connections once fewer than these are free.
FILES_KEPT_FREE = 32

# Connections the server still holds while descriptors are short and none is idle: enough to
# answer /healthz (and a scrape) beside a request in progress.
SERVED_WHEN_SHORT = 4

# Counting descriptors lists /proc/self/fd (0.4 ms at 1,000): the count of those that are not
# the server's connections is refreshed at most this often; its own are counted exactly.
RECOUNT_EVERY = 0.1

_FD_DIR = "/proc/self/fd"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def open_descriptors() -> int | None:
    """How many descriptors the process has open; None where /proc is not there."""
    try:
        return len(os.listdir(_FD_DIR)) - 1  # not the one listdir opened to read the directory
    except OSError:
        return None


def file_limit() -> int | None:
    """The soft RLIMIT_NOFILE; None when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


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
        files: int | None = None,
        keep_free: int = FILES_KEPT_FREE,
        count_open: Callable[[], int | None] = open_descriptors,
    ) -> None:
        self.limit = limit
        self.header_timeout = header_timeout
        self.files = files if files is not None else file_limit()  # None: not counted
        self.keep_free = keep_free
        self.evicted = 0  # idle connections closed to admit a new one
        self.refused = 0  # new connections closed because every slot was inside a request
        self._monotonic = monotonic
        self._count_open = count_open
        self._full_at: float | None = None
        self._full_of = ""  # what made the server full last: for /healthz
        # Descriptors open that are not the server's connections, and when they were counted.
        self._others = 0
        self._counted_at: float | None = None
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
            f"HTTP server full {ago:.0f} s ago: {self._full_of}, "
            f"{self.evicted} idle closed, {self.refused} refused"
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
        at_limit = len(self._open) >= self.limit
        short = not at_limit and self._files_short()
        if at_limit or short:
            self._full_at = self._monotonic()
            self._full_of = (
                f"at its limit of {self.limit} connections (server.max_connections)"
                if at_limit
                else f"fewer than {self.keep_free} of {self.files} descriptors free "
                "(kept for probes)"
            )
            idle = next((c for c in self._open if c.busy == 0), None)
            if idle is None:
                if at_limit or len(self._open) >= SERVED_WHEN_SHORT:
                    self.refused += 1
                    return False
            else:
                self._evict(idle)
        self._open[guarded] = None
        self._by_handler[guarded.inner] = guarded
        return True

    def _evict(self, idle: _Guarded) -> None:
        self.evicted += 1
        if self.evicted == 1 or self.evicted % 1000 == 0:
            log.warning(
                "HTTP server full (%s): each new connection closes the idle one quiet "
                "longest; %d closed so far",
                self._full_of,
                self.evicted,
            )
        self._forget(idle)
        idle.close()

    def _files_short(self) -> bool:
        """Whether admitting one more connection (its descriptor is already open) leaves
        fewer than `keep_free` descriptors free."""
        if self.files is None:
            return False
        now = self._monotonic()
        if self._counted_at is None or now - self._counted_at >= RECOUNT_EVERY:
            counted = self._count_open()
            if counted is None:
                self.files = None  # no /proc: the quarter of the limit is all there is
                return False
            self._others = counted - len(self._open) - 1  # the new connection is ours
            self._counted_at = now
        in_use = self._others + len(self._open) + 1
        return self.files - in_use < self.keep_free

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

"""Names to addresses, the way the checks that connect by hand need them (tcp, a browser
journey's proxy): a `Resolve` they are given, the system's by default, so that tests can
stand in for the outside world's DNS."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

__all__ = ["Resolve", "system_resolve"]

Resolve = Callable[[str, int], Awaitable[list[str]]]
"""A name and port in, its addresses out (raising OSError when there are none)."""


async def system_resolve(host: str, port: int) -> list[str]:
    """The system's resolver (getaddrinfo in a thread), addresses in its order, once each."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))

"""Which redirect hops a check may follow: none into a network it was not pointed at.

A check of a public site that is redirected to `http://169.254.169.254/` (a cloud's metadata
service), to loopback or to a private range would make the monitor fetch, store and mail what
an internal service answers. A hop is refused when one of the addresses it resolves to is of a
class (loopback, link-local, private, multicast) that the check's own URL is not, unless the
check sets `allow_private_redirects: true`.

The decision is on the address a connection goes to, not on the name in the Location, so a
name that resolves to an internal address (or rebinds to one) is refused as well:

- the lean transport resolves the hop itself, checks those addresses and connects to exactly
  them;
- an aiohttp session resolves inside its connector, so its connector is made with
  `guarded_socket` (`monitor.runtime.new_session`): the probe marks the hop with `hop_guard`,
  and the socket for each address is refused before it connects. (A session whose connector
  lacks `guarded_socket` still has hops to IP literals refused by `checks.redirects`, but not
  hops to names: every session that probes must be made with it.)

Only redirect hops are checked: the check's own URL is the operator's choice.
"""

from __future__ import annotations

import contextvars
import enum
import ipaddress
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from checks.redact import redact_url

__all__ = [
    "AddressClass",
    "HopGuard",
    "RedirectRefused",
    "address_class",
    "guarded_socket",
    "hop_guard",
]


class AddressClass(enum.StrEnum):
    """Where an address leads."""

    PUBLIC = "public"  # the internet
    LOOPBACK = "loopback"  # this machine (0.0.0.0 and :: connect here too)
    LINK_LOCAL = "link-local"  # 169.254.0.0/16, fe80::/10: metadata services live here
    PRIVATE = "private"  # RFC 1918, fc00::/7 and every other range that is not global
    MULTICAST = "multicast"


def address_class(address: str) -> AddressClass:
    """The class of an IP address (an IPv6 scope such as `%eth0` is ignored)."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
        address.partition("%")[0]
    )
    if isinstance(ip, ipaddress.IPv6Address):
        ip = _embedded_ipv4(ip) or ip
    if ip.is_loopback or ip.is_unspecified:
        return AddressClass.LOOPBACK
    if ip.is_link_local:
        return AddressClass.LINK_LOCAL
    if ip.is_multicast:
        return AddressClass.MULTICAST
    if ip.is_private or not ip.is_global:
        return AddressClass.PRIVATE
    return AddressClass.PUBLIC


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one leads to, where it carries one: ::ffff:a.b.c.d (mapped),
    64:ff9b::a.b.c.d (NAT64: a gateway connects to a.b.c.d), 2002:aabb:ccdd::/48 (6to4) and
    the deprecated IPv4-compatible ::a.b.c.d. Each is judged by that IPv4 address, so that
    64:ff9b::a9fe:a9fe is the metadata service it reaches, not the internet."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if 1 < int(ip) <= 0xFFFFFFFF:  # ::a.b.c.d, but not :: or ::1
        return ipaddress.IPv4Address(int(ip))
    return None


class RedirectRefused(OSError):
    """A redirect hop resolves to an address the check may not reach (outcome
    `redirect_refused`). An OSError, so that a connector that meets it on one address of
    several goes on to the next one."""

    def __init__(self, *, url: str, address: str, refused: AddressClass) -> None:
        self.url = redact_url(url)
        self.address = address
        self.refused = refused
        super().__init__(
            f"redirect to {self.url} refused: it leads to {address}, a {refused} address, "
            f"and the check's own URL is not {refused} "
            "(set allow_private_redirects: true to follow it)"
        )


@dataclass(slots=True)
class HopGuard:
    """One redirect hop and the address classes it may reach."""

    url: str
    allowed: frozenset[AddressClass]
    refused: RedirectRefused | None = None

    def check(self, address: str) -> None:
        """Raise (and remember) RedirectRefused if `address` is not allowed."""
        found = address_class(address)
        if found not in self.allowed:
            self.refused = RedirectRefused(url=self.url, address=address, refused=found)
            raise self.refused

    def check_all(self, addresses: Iterable[str]) -> None:
        for address in addresses:
            self.check(address)


def allowed_classes(own_addresses: Iterable[str]) -> frozenset[AddressClass]:
    """Public, plus whatever class the check's own URL resolves to."""
    return frozenset({AddressClass.PUBLIC, *map(address_class, own_addresses)})


_HOP: contextvars.ContextVar[HopGuard | None] = contextvars.ContextVar("hop_guard", default=None)


@contextmanager
def hop_guard(guard: HopGuard | None) -> Iterator[None]:
    """Connections opened inside (by a `guarded_socket` connector) are checked by `guard`."""
    token = _HOP.set(guard)
    try:
        yield
    finally:
        _HOP.reset(token)


def guarded_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's `TCPConnector(socket_factory=...)`: the socket for one resolved address,
    refused for a redirect hop into a range its check may not reach (before any packet)."""
    family, type_, proto, _, sockaddr = addr_info
    guard = _HOP.get()
    if guard is not None:
        guard.check(str(sockaddr[0]))
    return socket.socket(family=family, type=type_, proto=proto)

"""Following redirects through an aiohttp session, hop by hop, so that each hop is ours to vet.

aiohttp's own redirect following drops only `Authorization` when the origin changes; a check's
`X-Api-Key`, a flow step's headers and the credentials in its URL would reach whatever origin
a site redirects to, and it connects to any address. `open_following` follows redirects itself:

- on a hop to another origin (scheme, host, port) the check's configured headers are dropped
  (`kept` names the ones meant for every request, such as a flow's synthetic-check header),
  and so are credentials: a Location with user:password is not sent them either;
- a hop into loopback, link-local, private or multicast addresses is refused
  (`checks.private_ranges`) unless the check's own URL is of that class or
  `allow_private_redirects` is set;
- 303 (and 301/302 after a POST) becomes a GET without body, as aiohttp and browsers do;
- more than `max_redirects` hops raise aiohttp's own TooManyRedirects, history included.

`checks.lean_http` applies the same rules in its own loop.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from checks.private_ranges import (
    AddressClass,
    HopGuard,
    address_class,
    allowed_classes,
    hop_guard,
)

__all__ = [
    "same_origin",
    "REDIRECT_STATUSES",
    "BadRedirect",
    "open_following",
    "own_url_classes",
    "resolve_location",
]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# As in checks.http: our asyncio.timeout decides, never the session's default timers.
_NO_CLIENT_TIMEOUT = aiohttp.ClientTimeout()


class BadRedirect(aiohttp.ClientError):
    """A Location that cannot be followed (not http(s), does not parse): connection_error,
    as aiohttp's own InvalidUrlRedirectClientError is."""


def resolve_location(current: URL, location: str) -> URL:
    """The absolute URL a Location header points to from `current`, fragment removed."""
    try:
        reference = URL(location)
        scheme = reference.scheme
        if scheme and scheme not in ("http", "https"):
            raise BadRedirect(f"redirect to a non-http URL: {location}")
        if not scheme or (scheme == current.scheme and _has_no_authority(location, scheme)):
            reference = current.join(reference)
        reference.origin()  # raises for a URL without a host
    except (ValueError, TypeError) as exc:
        raise BadRedirect(f"redirect to an invalid URL: {location}") from exc
    return reference.with_fragment(None)


def _has_no_authority(location: str, scheme: str) -> bool:
    # "http:/path" and "http:path" refer to the current URL, as browsers (and aiohttp) read
    # them; a backslash counts as a slash there.
    rest = location.strip()[len(scheme) + 1 : len(scheme) + 3]
    return rest[:1] not in ("/", "\\") or rest[1:] not in ("/", "\\")


def same_origin(a: URL, b: URL) -> bool:
    return (a.scheme, (a.host or "").lower(), a.port) == (b.scheme, (b.host or "").lower(), b.port)


async def own_url_classes(url: URL) -> frozenset[AddressClass]:
    """The address classes a hop may reach for a check whose own URL is `url`: public, and
    the class of the addresses `url` resolves to (looked up only once a redirect comes)."""
    host = url.raw_host or ""
    try:
        return allowed_classes([host]) if _is_ip(host) else allowed_classes(await _lookup(url))
    except OSError:
        return allowed_classes([])


def _is_ip(host: str) -> bool:
    try:
        address_class(host)
    except ValueError:
        return False
    return True


async def _lookup(url: URL) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        url.raw_host, url.port, type=socket.SOCK_STREAM
    )
    return [str(info[4][0]) for info in infos]


@asynccontextmanager
async def open_following(
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    *,
    headers: Mapping[str, str],
    kept: Collection[str] = (),
    data: Any = None,
    json: Any = None,
    follow: bool = True,
    max_redirects: int,
    allow_private: bool,
    ssl: bool,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """The final response of `method url`, its redirects followed as the module says."""
    sent = _with_credentials(url, CIMultiDict(headers))
    url = url.with_user(None)
    kept_lower = {name.lower() for name in kept}
    history: list[aiohttp.ClientResponse] = []
    allowed: frozenset[AddressClass] | None = None
    guard: HopGuard | None = None
    while True:
        response = await _send(
            session, method, url, headers=sent, data=data, json=json, ssl=ssl, guard=guard
        )
        location = None
        if response.status in REDIRECT_STATUSES:
            # aiohttp (and the lean transport) take the old URI header as well.
            location = response.headers.get("Location") or response.headers.get("URI")
        if not follow or location is None:
            try:
                yield response
            finally:
                response.release()
            return
        response.release()
        history.append(response)
        if len(history) > max_redirects:
            raise aiohttp.TooManyRedirects(
                response.request_info, tuple(history), status=response.status,
                message="Too many redirects", headers=response.headers,
            )  # fmt: skip
        # Credentials a Location carries are the site's business, never sent on our behalf.
        url = resolve_location(response.url, location).with_user(None)
        if not same_origin(url, response.url):
            sent = CIMultiDict((k, v) for k, v in sent.items() if k.lower() in kept_lower)
        if (response.status == 303 and method != "HEAD") or (
            response.status in (301, 302) and method == "POST"
        ):
            method, data, json = "GET", None, None
            for name in ("Content-Type", "Content-Length"):
                sent.popall(name, None)
        if not allow_private:
            if allowed is None:
                allowed = await own_url_classes(history[0].url)
            guard = _guard(url, allowed)


def _with_credentials(url: URL, headers: CIMultiDict[str]) -> CIMultiDict[str]:
    # Credentials in the URL become a header like the others, so that a hop can leave them out.
    if (url.raw_user or url.raw_password) and "Authorization" not in headers:
        credentials = f"{url.user or ''}:{url.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")
    return headers


def _guard(url: URL, allowed: frozenset[AddressClass]) -> HopGuard:
    guard = HopGuard(url=str(url), allowed=allowed)
    host = url.raw_host or ""
    if _is_ip(host):
        guard.check(host)  # no connector needed to tell: refused before it starts
    return guard


async def _send(
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    *,
    headers: CIMultiDict[str],
    data: Any,
    json: Any,
    ssl: bool,
    guard: HopGuard | None,
) -> aiohttp.ClientResponse:
    """One request, no redirect followed; a hop's connections are checked by `guard`."""
    if guard is None:  # the check's own URL: nothing to check, nothing to set up
        return await session.request(
            method, url, headers=headers, data=data, json=json,
            allow_redirects=False, ssl=ssl, timeout=_NO_CLIENT_TIMEOUT,
        )  # fmt: skip
    with hop_guard(guard):
        try:
            return await session.request(
                method, url, headers=headers, data=data, json=json,
                allow_redirects=False, ssl=ssl, timeout=_NO_CLIENT_TIMEOUT,
            )  # fmt: skip
        except aiohttp.ClientConnectorError as exc:
            if guard.refused is not None:
                raise guard.refused from exc
            raise

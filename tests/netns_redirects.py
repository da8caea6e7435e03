"""Run inside a fresh user and network namespace (tests/test_redirect_namespace.py starts it
with `unshare -Urn`): redirects from a public address into internal ones, on every transport.

The namespace's loopback interface carries a "public" 8.8.8.8, a private 10.1.2.3 and the
link-local 169.254.169.254, plus 127.0.0.1; nothing in it reaches any real network. The shop
on 8.8.8.8 redirects to `internal.test` (resolved by the probes' injected resolvers to
10.1.2.3), to 169.254.169.254 and to 127.0.0.1; each of those counts the TCP connections it
accepts. For each transport and hop it prints (as JSON) the outcome, the error and how many
connections the hop's target accepted: by default, and with `allow_private_redirects: true`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from checks.flow import FlowCheckSpec, probe_flow
from checks.http import HttpCheckSpec, probe_http
from checks.lean_http import LeanTransport
from checks.page import PageCheckSpec, probe_page
from checks.private_ranges import guarded_socket
from checks.result import ProbeResult
from tests.name_resolvers import StaticResolver, lean_resolver

PUBLIC = "8.8.8.8"
INTERNAL = {"private": "10.1.2.3", "link-local": "169.254.169.254", "loopback": "127.0.0.1"}
HOPS = {
    "private": "http://internal.test:8081/admin",  # a name: the class is the address's
    "link-local": "http://169.254.169.254:8081/latest/meta-data",
    "loopback": "http://127.0.0.1:8081/admin",
}
NAMES = {"internal.test": INTERNAL["private"]}
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class Counted(asyncio.Protocol):
    """An internal service: counts each connection, answers 200 "admin token"."""

    accepted = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Counted.accepted += 1
        assert isinstance(transport, asyncio.Transport)
        transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nadmin token"
        )
        transport.close()


def shop() -> web.Application:
    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound(HOPS[request.match_info["kind"]])

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text=f'<img src="/to/{request.match_info["kind"]}">', content_type="text/html"
        )

    app = web.Application()
    app.add_routes([web.get("/to/{kind}", hop), web.get("/page/{kind}", page)])
    return app


async def probe(transport: str, kind: str, allow: bool) -> ProbeResult:
    fields: dict[str, Any] = {"allow_private_redirects": allow}
    url = f"http://{PUBLIC}:8080"
    if transport == "lean":
        lean = LeanTransport(resolver=lean_resolver(NAMES))
        try:
            spec = HttpCheckSpec.model_validate({"url": f"{url}/to/{kind}", **fields})
            return await probe_http(spec, transport=lean, now=lambda: NOW, retry_wait=0)
        finally:
            await lean.close()
    connector = aiohttp.TCPConnector(
        force_close=True, resolver=StaticResolver(NAMES), socket_factory=guarded_socket
    )
    async with aiohttp.ClientSession(connector=connector) as session:
        if transport == "aiohttp":
            spec = HttpCheckSpec.model_validate({"url": f"{url}/to/{kind}", **fields})
            return await probe_http(spec, session=session, now=lambda: NOW, retry_wait=0)
        if transport == "page":
            page = PageCheckSpec.model_validate(
                {"kind": "page", "url": f"{url}/page/{kind}", **fields}
            )
            return await probe_page(page, session=session, now=lambda: NOW, retry_wait=0)
        flow = FlowCheckSpec.model_validate(
            {"url": url, "steps": [{"name": "go", "url": f"/to/{kind}"}], **fields}
        )
        return await probe_flow(flow, session=session, now=lambda: NOW)


async def main() -> None:
    loop = asyncio.get_running_loop()
    internal = [await loop.create_server(Counted, address, 8081) for address in INTERNAL.values()]
    runner = web.AppRunner(shop())
    await runner.setup()
    await web.TCPSite(runner, PUBLIC, 8080).start()
    results = []
    try:
        for transport in ("lean", "aiohttp", "page", "flow"):
            for kind in HOPS:
                for allow in (False, True):
                    before = Counted.accepted
                    result = await asyncio.wait_for(probe(transport, kind, allow), 10)
                    results.append(
                        {
                            "transport": transport,
                            "hop": kind,
                            "allow": allow,
                            "outcome": result.outcome.value,
                            "error": result.evidence.error,
                            "connections": Counted.accepted - before,
                        }
                    )
    finally:
        await runner.cleanup()
        for server in internal:
            server.close()
    json.dump(results, sys.stdout)


def network() -> None:
    """Bring up the namespace's loopback with the addresses above."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for address in (PUBLIC, INTERNAL["private"], INTERNAL["link-local"]):
        subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)


if __name__ == "__main__":
    network()
    asyncio.run(main())

"""One probe of one configured check, by its kind: what the scheduler runs, what another
location's confirmation runs, and what "probe now" runs (`monitor probe`, the console).

`probe_now` is the stand-alone form: it opens what a probe needs (an HTTP session, the lean
transport, the store for a heartbeat's pings), probes once and closes them again. Nothing is
recorded: no history, no incident, no metric.
"""

from __future__ import annotations

import difflib
import ssl
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import aiohttp

from checks.browser_spec import BrowserCheckSpec
from checks.dns import DnsCheckSpec, probe_dns
from checks.domain import DomainCheckSpec, probe_domain
from checks.flow import FlowCheckSpec, probe_flow
from checks.heartbeat import HeartbeatCheckSpec, PingState, judge_heartbeat
from checks.http import HttpTransport, probe_http
from checks.page import PageCheckSpec, probe_page
from checks.rdap import RdapDirectory
from checks.result import ProbeResult
from checks.tcp import TcpCheckSpec, probe_tcp
from monitor.clock import Clock
from monitor.config.models import ConfiguredCheck, MonitorConfig, configured_checks
from monitor.screenshots import screenshot_folder

if TYPE_CHECKING:
    from monitor.browser_pool import BrowserPool
    from monitor.screenshots import ScreenshotFolder

PingStates = Callable[[Iterable[str]], Awaitable[dict[str, PingState]]]


class UnknownCheck(LookupError):
    """No check of the config has that key; `close` are the keys it may have meant."""

    def __init__(self, key: str, close: list[str], *, why: str | None = None) -> None:
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        if why is not None:
            super().__init__(f"cannot probe {key!r}: {why}")
        else:
            super().__init__(f"no check {key!r} in the config (write CLIENT/SITE/CHECK){hint}")
        self.key = key
        self.close = close


def find_check(config: MonitorConfig, key: str) -> ConfiguredCheck:
    """The configured check `client/site/check`; UnknownCheck naming close keys otherwise."""
    checks = {check.key: check for check in configured_checks(config)}
    found = checks.get(key.strip().strip("/"))
    if found is None:
        raise UnknownCheck(key, difflib.get_close_matches(key, list(checks), n=3, cutoff=0.5))
    return found


async def run_probe(
    check: ConfiguredCheck,
    *,
    session: aiohttp.ClientSession,
    http: HttpTransport,
    clock: Clock,
    ping_states: PingStates,
    watching_since: datetime | None,
    tls: ssl.SSLContext,
    rdap: RdapDirectory,
    browser: BrowserPool | None = None,
    screenshots: ScreenshotFolder | None = None,
    max_page_memory_mb: int = 512,
) -> ProbeResult:
    """Probe `check` once by its kind. A heartbeat sends nothing: its latest pings (from
    `ping_states`, which any process may have written) are judged at the clock's now."""
    spec = check.spec
    if isinstance(spec, BrowserCheckSpec):
        from checks.browser import probe_browser  # Playwright: only for a browser check

        if browser is None:
            raise RuntimeError(f"{check.key} is a browser check, but there is no browser")
        sink = screenshots.sink(check.key) if screenshots is not None else None
        max_heap = max_page_memory_mb * 1024 * 1024
        return await browser.run(
            lambda open_context: probe_browser(
                spec,
                open_context=open_context,
                now=clock.now,
                save_screenshot=sink,
                max_heap_bytes=max_heap,
            )
        )
    if isinstance(spec, HeartbeatCheckSpec):
        states = await ping_states([check.key])
        return judge_heartbeat(
            spec, now=clock.now(), watching_since=watching_since, state=states.get(check.key)
        )
    if isinstance(spec, FlowCheckSpec):
        return await probe_flow(spec, session=session, now=clock.now)
    if isinstance(spec, PageCheckSpec):
        return await probe_page(spec, session=session, now=clock.now, sleep=clock.sleep)
    if isinstance(spec, DnsCheckSpec):
        return await probe_dns(spec, now=clock.now)
    if isinstance(spec, TcpCheckSpec):
        return await probe_tcp(spec, now=clock.now, ssl_context=tls)
    if isinstance(spec, DomainCheckSpec):
        return await probe_domain(
            spec, session=session, directory=rdap, now=clock.now, sleep=clock.sleep
        )
    return await probe_http(spec, transport=http, now=clock.now, sleep=clock.sleep)


async def probe_now(config: MonitorConfig, key: str, *, clock: Clock) -> ProbeResult:
    """Probe check `key` ("client/site/check") once with the config's settings, as the
    running monitor would, without recording anything. Raises UnknownCheck."""
    from monitor.rdap_bootstrap import rdap_directory
    from monitor.runtime import new_http_transport, new_session
    from monitor.store import Store

    check = find_check(config, key)
    browser = None
    if check.spec.kind == "browser":
        from monitor.browser_pool import browser_pool

        browser = browser_pool(config, metrics=None)
    if check.spec.kind == "browser" and browser is None:
        raise UnknownCheck(key, [], why="it is a browser check and no Chromium is installed")
    session = new_session(max_connections=4)
    http = new_http_transport(source_address=config.cluster.source_address)
    store: Store | None = None

    async def ping_states(keys: Iterable[str]) -> dict[str, PingState]:
        nonlocal store
        if store is None:
            store = await Store.open(config.database.url)
        return await store.ping_states(keys)

    try:
        # watching_since None: a heartbeat that never pinged is judged missed.
        return await run_probe(
            check,
            session=session,
            http=http,
            clock=clock,
            ping_states=ping_states,
            watching_since=None,
            tls=ssl.create_default_context(),
            rdap=rdap_directory(config.rdap),
            browser=browser,
            screenshots=screenshot_folder(config, clock=clock) if browser else None,
            max_page_memory_mb=config.browser.max_page_memory_mb,
        )
    finally:
        if browser is not None:
            await browser.close()
        await session.close()
        await http.close()
        if store is not None:
            await store.close()

"""The `page` check: an HTML page and its same-origin assets, loaded as a browser's first
visit would, and timed as a whole.

`probe_page` loads the HTML exactly as `probe_http` does (same classification, same single
re-try of a broken connection), then fetches the page's same-origin images, stylesheets and
scripts (`checks.html_assets`) concurrently (only when the HTML's final URL is on the
check's own origin: a page that redirected elsewhere is somebody else's, and is not sent the
check's headers for its assets), at most `asset_concurrency` at a time, like a
browser's connections per host. How the page is judged, first match wins:

1. the HTML itself fails (http_5xx, timeout, ...)  -> that outcome; no asset is fetched
2. an asset answers >= 400, or fails to connect,
   or has not arrived within `timeout`               -> broken_asset, naming the assets
3. HTML plus assets took longer than `slow_after`    -> slow
4. the certificate expires within the warning window -> cert_expiring
5. otherwise                                         -> ok

The assets together get their own `timeout`, counted from the moment the HTML arrived, so a
probe takes at most the HTML's budget (see `checks.http`) plus `timeout`. Asset bodies are
read in chunks and thrown away: memory stays at a chunk per asset in flight, and reading stops
at `max_asset_bytes` per asset and `max_total_bytes` for the page (such an asset counts as
loaded; the full load time then covers what was read).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

import aiohttp
from pydantic import Field
from yarl import URL

from checks.classify import PROBE_ERRORS, classify_exception, failure_cause
from checks.html_assets import find_assets
from checks.http import HttpRequestSpec, fetch_http
from checks.redirects import open_following, same_origin
from checks.result import FailureCause, Outcome, ProbeResult
from checks.scrub import clean_line, request_secrets

DEFAULT_MAX_ASSET_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_TOTAL_BYTES = 20 * 1024 * 1024
_READ_CHUNK = 64 * 1024
_LISTED_FAILURES = 10  # the error names this many failed assets, then counts the rest
_MAX_ERROR_CHARS = 600

# The HTML arrived and is usable; its own slow or cert_expiring verdict is re-judged
# together with the assets.
_DOCUMENT_LOADED = frozenset({Outcome.OK, Outcome.SLOW, Outcome.CERT_EXPIRING})

_FAILURE_WORDS = {
    Outcome.TIMEOUT: "timeout",
    Outcome.TLS_ERROR: "TLS error",
    Outcome.TOO_LARGE: "too many redirects",
    Outcome.CONNECTION_ERROR: "connection failed",
    Outcome.REDIRECT_REFUSED: "redirect to an internal address refused",
}
# An asset our own machine could not fetch (out of descriptors, say): not the page's fault.
_LOCAL_FAULT = "monitor-side fault"


class PageCheckSpec(HttpRequestSpec):
    """An HTML page whose same-origin images, stylesheets and scripts must load too."""

    kind: Literal["page"]  # required: a check without `kind` is an http check
    max_assets: int = Field(
        default=50, ge=0, le=500, description="Fetch at most this many assets, in page order."
    )
    max_asset_bytes: int = Field(
        default=DEFAULT_MAX_ASSET_BYTES, gt=0, description="Stop reading one asset here."
    )
    asset_concurrency: int = Field(
        default=6, ge=1, le=64, description="Assets fetched at once (a browser uses 6 per host)."
    )
    max_total_bytes: int = Field(
        default=DEFAULT_MAX_TOTAL_BYTES,
        gt=0,
        description="Stop reading assets once the page's assets reached this many bytes.",
    )


async def probe_page(
    spec: PageCheckSpec,
    *,
    session: aiohttp.ClientSession,
    now: Callable[[], datetime],
    monotonic: Callable[[], float] = time.perf_counter,
    retry_wait: float = 0.2,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> ProbeResult:
    """Load `spec`'s page and its assets through `session`, and classify the whole load.

    Arguments as for `checks.http.probe_http`. `latency` is the full load (HTML + assets);
    the evidence is the HTML's, with timings `assets` (count fetched) and `full_load`.
    """
    fetched = await fetch_http(
        spec, session=session, now=now, monotonic=monotonic, retry_wait=retry_wait, sleep=sleep
    )
    document = fetched.result
    if document.outcome not in _DOCUMENT_LOADED:
        return document
    urls: list[str] = []
    # A page that ended up on another origin is somebody else's: its assets are not loaded
    # (nor sent the check's headers).
    if same_origin(URL(fetched.url), URL(spec.url)):
        # html.parser is pure Python: a thread keeps a big page from stalling other probes.
        urls = await asyncio.to_thread(
            find_assets, fetched.text(), page_url=fetched.url, limit=spec.max_assets
        )
    started = monotonic()
    problems = await _load_assets(spec, urls, session=session)
    full_load = (document.latency or 0.0) + (monotonic() - started)
    outcome, error = _judge(spec, document, urls=urls, problems=problems, full_load=full_load)
    evidence = document.evidence
    timings = {**evidence.timings, "assets": float(len(urls)), "full_load": full_load}
    local = outcome is Outcome.BROKEN_ASSET and _LOCAL_FAULT in problems.values()
    return replace(
        document,
        outcome=outcome,
        latency=full_load,
        # The assets' URLs come from the page: masked and cleaned like the rest.
        evidence=replace(
            evidence, error=None if error is None else clean_line(error), timings=timings
        ).masked(request_secrets(spec.url, spec.headers, spec.body)),
        cause=FailureCause.LOCAL_RESOURCE if local else None,
    )


def _judge(
    spec: PageCheckSpec,
    document: ProbeResult,
    *,
    urls: Sequence[str],
    problems: dict[str, str],
    full_load: float,
) -> tuple[Outcome, str | None]:
    if problems:
        return Outcome.BROKEN_ASSET, _broken_text(urls, problems)
    slow_after = spec.slow_after.total_seconds()
    if full_load > slow_after:
        return Outcome.SLOW, (
            f"full page load (HTML and {len(urls)} assets) took {full_load:.3f}s, "
            f"more than slow_after {slow_after:g}s"
        )
    if document.outcome is Outcome.CERT_EXPIRING:
        return Outcome.CERT_EXPIRING, document.evidence.error
    return Outcome.OK, None


def _broken_text(urls: Sequence[str], problems: dict[str, str]) -> str:
    """`2 of 7 assets failed: /static/mug.png (404), /app.js (timeout)`, bounded."""
    failed = [url for url in urls if url in problems]  # page order, not finishing order
    named = [f"{URL(url).path_qs} ({problems[url]})" for url in failed[:_LISTED_FAILURES]]
    text = f"{len(failed)} of {len(urls)} assets failed: " + ", ".join(named)
    if len(failed) > _LISTED_FAILURES:
        text += f" and {len(failed) - _LISTED_FAILURES} more"
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS - 1] + "…"
    return text


@dataclass(slots=True)
class _Budget:
    """Bytes the page's assets may still be read for (`max_total_bytes`), shared by all."""

    left: int


async def _load_assets(
    spec: PageCheckSpec, urls: Sequence[str], *, session: aiohttp.ClientSession
) -> dict[str, str]:
    """Fetch `urls`, at most `asset_concurrency` at once; the failed ones with the reason."""
    gate = asyncio.Semaphore(spec.asset_concurrency)
    budget = _Budget(left=spec.max_total_bytes)
    problems: dict[str, str] = {}
    finished: set[str] = set()
    in_flight: set[str] = set()

    async def load(url: str) -> None:
        async with gate:
            in_flight.add(url)
            problem = await _load_one(spec, url, session=session, budget=budget)
            in_flight.discard(url)
            finished.add(url)
            if problem is not None:
                problems[url] = problem

    try:
        async with asyncio.timeout(spec.timeout.total_seconds()), asyncio.TaskGroup() as group:
            for url in urls:
                group.create_task(load(url))
    except TimeoutError:
        for url in urls:
            if url in in_flight:
                problems[url] = "timeout"
            elif url not in finished:
                problems[url] = "not fetched within timeout"
    return problems


async def _load_one(
    spec: PageCheckSpec, url: str, *, session: aiohttp.ClientSession, budget: _Budget
) -> str | None:
    """Fetch one asset and read its body away; what went wrong, or None if it loaded."""
    try:
        async with open_following(
            session,
            "GET",
            URL(url),
            headers=spec.headers,
            max_redirects=spec.max_redirects,
            allow_private=spec.allow_private_redirects,
            ssl=spec.verify_tls,
        ) as response:
            if response.status >= 400:
                return str(response.status)
            await _read_away(response, cap=spec.max_asset_bytes, budget=budget)
    except PROBE_ERRORS as exc:
        if failure_cause(exc) is FailureCause.LOCAL_RESOURCE:
            return _LOCAL_FAULT
        return _FAILURE_WORDS.get(classify_exception(exc), "failed")
    return None


async def _read_away(response: aiohttp.ClientResponse, *, cap: int, budget: _Budget) -> None:
    """Read the body in chunks, keeping none of it; stop at `cap` or when `budget` runs out."""
    read = 0
    while chunk := await response.content.read(_READ_CHUNK):
        read += len(chunk)
        budget.left -= len(chunk)
        if read >= cap or budget.left <= 0:
            # Hang up rather than leave the rest of a huge asset on the connection.
            response.close()
            return

"""The `browser` check: a customer's journey in real Chromium, such as a JavaScript checkout.

The probe gets a fresh Playwright `BrowserContext` (no cookies or storage from any other run)
from whoever owns the browser process (`monitor.browser_pool`), opens one page in it and runs
the steps of `checks.browser_spec` in order. It knows no browser process, no files and no
incidents: the screenshot goes to a callback that returns where it was kept.

How a failing step is classified, first match wins:

1. the page's JavaScript heap grew past `max_heap_bytes` (page closed)   -> too_large
2. `goto` failed: status >= 500 / other >= 400                  -> http_5xx, unexpected_status
   into loopback, link-local or private addresses the check's
   own URL is not in (the journey's proxy refuses any
   connection there, redirect hops included; `refused`)       -> redirect_refused
   no connection                                              -> connection_error
3. a same-site or `third_party` request failed (no connection, a 5xx, or
   still unanswered when the step gave up, e.g. an iframe that
   holds the page's load event)                                        -> request_failed
   (a `goto` whose own document did not answer in time         -> timeout)
4. an uncaught exception or a console error on the page                 -> script_error
5. otherwise the step's own: a selector that never appeared             -> element_missing
   a text that is missing or forbidden, a URL that does not match       -> content_mismatch
   a URL or request waited for in vain                                  -> timeout / request_failed
   `expect: no_console_error` matched                                   -> script_error

A journey whose steps all pass is `ok` whatever the console says (the customer could do what
the steps do; the noise is in the evidence), or `slow` when it took longer than `slow_after`
or a page's Largest Contentful Paint came later than `lcp_slow_after`. As in flows, the first
failing step decides; later steps are skipped except `always` (cleanup) steps, which still run
(within the whole `timeout`), and the failing step's screenshot is taken before them.

Evidence: the failing step's name and page URL, `error` saying what happened (with the first
console error, for on-call), the screenshot's path, and `browser`: console errors, failed
requests, and per page TTFB, FCP, LCP (seconds) and CLS from the page's own Performance APIs
(a PerformanceObserver added before any page script runs). Timings: `total` (the journey),
`step:<name>` per step that ran, and `lcp` (the latest page's LCP).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from playwright.async_api import (
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    Request,
    Response,
)
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout
from yarl import URL

from checks.browser_proxy import JourneyProxy
from checks.browser_spec import BrowserCheckSpec, BrowserStep
from checks.redact import redact_text, redact_url
from checks.redirects import own_url_classes
from checks.result import Evidence, FailureCause, Outcome, ProbeResult
from checks.scrub import Secrets, clean_line
from checks.template import MissingValue, render

__all__ = [
    "BrowserCheckSpec",
    "BrowserStep",
    "ContextOpener",
    "ScreenshotSink",
    "probe_browser",
    "slow_figures",
]

log = logging.getLogger(__name__)

ContextOpener = Callable[..., Awaitable[BrowserContext]]
"""Opens a fresh browser context with Playwright's `new_context` options."""

ScreenshotSink = Callable[[bytes], Awaitable[str | None]]
"""Keeps a PNG and returns the path it was kept under (None: not kept)."""

# Evidence stays small: a few lines of each kind, each bounded.
_MAX_LINES = 10
_MAX_LINE_CHARS = 300
_MAX_ERROR_CHARS = 1000
# Each poll is a CDP round trip through the monitor's event loop: once a second is enough to
# stop a runaway page long before it hurts the machine.
HEAP_POLL_SECONDS = 1.0
CLOSE_TIMEOUT = 5.0
# Chromium logs every failed subresource as a console error too; those are requests, not
# scripts, and are counted as requests.
_NETWORK_CONSOLE = re.compile(r"^Failed to load resource", re.IGNORECASE)

# Added to every page before its own scripts: Web Vitals from the page's Performance APIs.
VITALS_SCRIPT = """
(() => {
  const v = {fcp: null, lcp: null, cls: 0};
  const watch = (type, fn) => {
    try {
      new PerformanceObserver((l) => l.getEntries().forEach(fn)).observe({type, buffered: true});
    } catch (e) {}
  };
  watch('paint', (e) => { if (e.name === 'first-contentful-paint') v.fcp = e.startTime; });
  watch('largest-contentful-paint', (e) => { v.lcp = e.renderTime || e.loadTime || e.startTime; });
  watch('layout-shift', (e) => { if (!e.hadRecentInput) v.cls += e.value; });
  Object.defineProperty(window, '__monitorVitals', {value: v, enumerable: false});
})();
"""
# Waits two frames (at most 200 ms) first: an element painted just now reports its LCP entry
# with the next frame.
_READ_VITALS = """async () => {
  await Promise.race([
    new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))),
    new Promise((done) => setTimeout(done, 200)),
  ]);
  const v = window.__monitorVitals || {};
  const nav = performance.getEntriesByType('navigation')[0];
  return {url: location.href, ttfb: nav ? nav.responseStart : null,
          fcp: v.fcp ?? null, lcp: v.lcp ?? null, cls: v.cls ?? null};
}"""


class _StepFailed(Exception):
    def __init__(self, outcome: Outcome, error: str) -> None:
        super().__init__(error)
        self.outcome = outcome
        self.error = error


@dataclass(slots=True)
class _StepReport:
    step: BrowserStep
    total: float | None = None  # None: did not run
    outcome: Outcome | None = None
    error: str | None = None
    skipped: str | None = None


async def probe_browser(
    spec: BrowserCheckSpec,
    *,
    open_context: ContextOpener,
    now: Callable[[], datetime],
    monotonic: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    save_screenshot: ScreenshotSink | None = None,
    max_heap_bytes: int | None = None,
) -> ProbeResult:
    """Run `spec`'s journey in a new page of a context from `open_context` and classify it
    (module docstring); the context is closed before the journey's proxy is. `spec.url` must
    be absolute.

    The context connects only through the journey's own proxy (`checks.browser_proxy`): no
    request of the page, nor any hop of a redirect, reaches an address of a class the check's
    own URL is not."""
    started_at = now()
    journey = _Journey(spec, monotonic=monotonic, sleep=sleep, max_heap_bytes=max_heap_bytes)
    watcher: asyncio.Task[None] | None = None
    context: BrowserContext | None = None
    allowed = await own_url_classes(URL(spec.url))
    try:
        async with JourneyProxy(allowed) as proxy:
            journey.proxy = proxy
            try:
                # A browser that hangs must not hang the check: its set-up is a step's worth.
                async with asyncio.timeout(spec.step_timeout.total_seconds()):
                    # Loopback too goes through the proxy (Playwright's default, said here).
                    context = await open_context(
                        proxy={"server": proxy.server, "bypass": "<-loopback>"}
                    )
                    await context.add_init_script(VITALS_SCRIPT)
                    page = await context.new_page()
                    journey.hook(page)
                    if max_heap_bytes is not None:
                        cdp = await context.new_cdp_session(page)
                        await cdp.send("Performance.enable")
                        watcher = asyncio.create_task(journey.watch_heap(page, cdp))
                await journey.run(page, save_screenshot)
            finally:
                if watcher is not None:
                    watcher.cancel()
                    await asyncio.gather(watcher, return_exceptions=True)
                # Closed while its proxy still answers: no page sees its connections cut.
                if context is not None:
                    await _close_quietly(context)
    except (PlaywrightError, TimeoutError) as exc:
        # Outside a step's own errors: the browser or its context went away or hung.
        why = _message(exc) if isinstance(exc, PlaywrightError) else "it did not answer"
        return ProbeResult(
            outcome=Outcome.CONNECTION_ERROR,
            started_at=started_at,
            latency=None,
            evidence=Evidence(url=redact_url(spec.url), error=f"the browser failed: {why}"),
            cause=FailureCause.LOCAL_RESOURCE,
        )
    browser = context.browser if context is not None else None
    journey.browser_lost = browser is not None and not browser.is_connected()
    return journey.result(started_at)


async def _close_quietly(context: BrowserContext) -> None:
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await context.close()
    except (PlaywrightError, TimeoutError):
        pass  # the browser went away, or hangs: its owner's health ping decides


def slow_figures(spec: BrowserCheckSpec, result: ProbeResult) -> tuple[float, float]:
    """(what was measured, its limit) behind a `slow` result of `spec`: the latest page's LCP
    when that is what was slow, else the whole journey. The monitor takes its own stalls off
    the first before it trusts the verdict."""
    lcp = result.evidence.timings.get("lcp")
    limit = spec.lcp_slow_after.total_seconds()
    if lcp is not None and lcp > limit:
        return lcp, limit
    return result.evidence.timings.get("total", 0.0), spec.slow_after.total_seconds()


class _Journey:
    def __init__(
        self,
        spec: BrowserCheckSpec,
        *,
        monotonic: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        max_heap_bytes: int | None,
    ) -> None:
        self._spec = spec
        self._clock = monotonic
        self._sleep = sleep
        self._max_heap = max_heap_bytes
        self._values: dict[str, str] = {}
        self._masked: list[str] = []
        self._reports: list[_StepReport] = []
        self._failure: _StepReport | None = None
        self._current = ""  # the step running now, for what the page reports meanwhile
        self.console_errors: list[str] = []
        self.failed_requests: list[str] = []
        self._pending: dict[Request, str] = {}  # watched requests not answered yet -> step
        self._finished: list[str] = []  # URLs of finished requests, for wait_for request
        self._pages: dict[str, dict[str, Any]] = {}  # url -> Web Vitals of that page
        self.heap_exceeded: float | None = None
        self.peak_heap = 0.0
        self.browser_lost = False
        self._screenshot: str | None = None
        self._sink: ScreenshotSink | None = None
        self._shots: list[str] = []  # paths of `screenshot` steps' PNGs
        self._url = spec.url
        self._start = 0.0
        self._end = 0.0
        self._hosts = {urlsplit(spec.url).hostname or ""}
        self._origins = set(spec.third_party)
        self.proxy: JourneyProxy | None = None  # where the journey's connections go

    # -- what the page reports -------------------------------------------------------------

    def hook(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)
        page.on("request", self._on_request)
        page.on("requestfinished", self._on_finished)
        page.on("requestfailed", self._on_failed)
        page.on("response", self._on_response)

    def _proxy_says(self, url: str) -> str | None:
        """What the journey's proxy noted of a connection to `url`'s host and port."""
        if self.proxy is None:
            return None
        target = URL(url)  # the scheme's port when the URL names none
        return self.proxy.failure_of(target.host or "", target.port or 0)

    def _note(self, into: list[str], text: str) -> None:
        if len(into) < _MAX_LINES:
            into.append(_bounded(clean_line(redact_text(text)), _MAX_LINE_CHARS))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not _NETWORK_CONSOLE.match(message.text):
            self._note(self.console_errors, f"console error: {message.text}")

    def _on_page_error(self, error: PlaywrightError) -> None:
        self._note(self.console_errors, f"uncaught {error.name or 'Error'}: {error.message}")

    def _watched(self, url: str) -> bool:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if any(host == own or host.endswith("." + own) for own in self._hosts):
            return True
        return f"{parts.scheme}://{parts.netloc}" in self._origins

    def _on_request(self, request: Request) -> None:
        if self._watched(request.url):
            self._pending[request] = self._current

    def _on_finished(self, request: Request) -> None:
        self._pending.pop(request, None)
        self._finished.append(request.url)

    def _on_failed(self, request: Request) -> None:
        self._pending.pop(request, None)
        why = request.failure or "failed"
        if "ERR_SOCKS" in why:  # the journey's proxy knows what happened
            why = self._proxy_says(request.url) or why
        # A navigation cancels what the page it leaves was loading: not a failure.
        if self._watched(request.url) and "ERR_ABORTED" not in why:
            self._note(self.failed_requests, f"{redact_url(request.url)}: {why}")

    def _on_response(self, response: Response) -> None:
        if response.status >= 500 and self._watched(response.url):
            self._note(self.failed_requests, f"{redact_url(response.url)}: HTTP {response.status}")

    async def watch_heap(self, page: Page, cdp: Any) -> None:
        """Close the page once its JavaScript heap passes the cap (the step then fails)."""
        assert self._max_heap is not None
        while not page.is_closed():
            try:
                answer = await cdp.send("Performance.getMetrics")
            except PlaywrightError:
                return  # the page or browser went away: the steps say so
            used = next(
                (m["value"] for m in answer["metrics"] if m["name"] == "JSHeapUsedSize"), 0.0
            )
            self.peak_heap = max(self.peak_heap, used)
            if used > self._max_heap:
                self.heap_exceeded = used
                await page.close()
                return
            await self._sleep(HEAP_POLL_SECONDS)

    # -- the steps -------------------------------------------------------------------------

    async def run(self, page: Page, save_screenshot: ScreenshotSink | None) -> None:
        self._sink = save_screenshot
        self._start = self._clock()
        for step in self._spec.steps:
            if self._failure is not None and not step.always:
                self._reports.append(_StepReport(step=step, skipped="skipped"))
                continue
            report = await self._run_step(page, step)
            self._reports.append(report)
            if report.outcome is not None and self._failure is None:
                self._failure = report
                self._url = page.url if not page.is_closed() else self._url
                await self._read_vitals(page, step)
                if save_screenshot is not None and not page.is_closed():
                    self._screenshot = await _screenshot(page, save_screenshot)
        if self._failure is None:
            await self._read_vitals(page, self._spec.steps[-1])
            self._url = page.url if not page.is_closed() else self._url
        self._end = self._clock()

    async def _run_step(self, page: Page, step: BrowserStep) -> _StepReport:
        report = _StepReport(step=step)
        left = self._start + self._spec.timeout.total_seconds() - self._clock()
        limit = min((step.timeout or self._spec.step_timeout).total_seconds(), left)
        if limit <= 0:
            if self._failure is not None:
                report.skipped = "skipped (the journey's timeout was spent)"
            else:
                report.outcome, report.total = Outcome.TIMEOUT, 0.0
                report.error = "not started: the journey's timeout was spent by the steps before"
            return report
        self._current = step.name
        start = self._clock()
        try:
            # A margin over Playwright's own limits, which fail first with a clearer error.
            async with asyncio.timeout(limit + 1.0):
                await self._act(page, step, limit_ms=limit * 1000)
        except MissingValue as exc:
            report.skipped = f"skipped ({{{{{exc.name}}}}} was not saved)"
            return report
        except _StepFailed as exc:
            report.outcome, report.error = exc.outcome, exc.error
        except TimeoutError:
            report.outcome, report.error = Outcome.TIMEOUT, f"no progress within {limit:g}s"
        except PlaywrightError as exc:
            report.outcome, report.error = Outcome.CONNECTION_ERROR, _message(exc)
        report.total = self._clock() - start
        if report.outcome is not None:
            report.outcome = self._cause(step, report.outcome)
            if report.outcome is Outcome.TOO_LARGE:
                report.error = (
                    f"the page's JavaScript heap grew to {self.heap_exceeded or 0:.0f} bytes, "
                    f"past the limit of {self._max_heap} bytes; the page was closed"
                )
        return report

    def _cause(self, step: BrowserStep, outcome: Outcome) -> Outcome:
        """What lies behind a step's failure (see the module docstring's order)."""
        if self.heap_exceeded is not None:
            return Outcome.TOO_LARGE
        if outcome is Outcome.SCRIPT_ERROR:
            return outcome
        # A page that answered but never finished loading waits for one of its parts (a
        # payment iframe that never answers): that part failed, not the page.
        if step.action == "goto" and outcome is not Outcome.TIMEOUT:
            return outcome
        pending = [request for request in self._pending if not _is_page_itself(request)]
        if self.failed_requests or pending:
            for request in pending[: _MAX_LINES - 1]:
                at = self._pending[request]
                self._note(self.failed_requests, f"{redact_url(request.url)}: no answer ({at})")
            self._pending.clear()
            return Outcome.REQUEST_FAILED
        if step.action != "goto" and self.console_errors:
            return Outcome.SCRIPT_ERROR
        return outcome

    def _locator(self, page: Page, step: BrowserStep, selector: str) -> Locator:
        if step.frame is not None:
            return page.frame_locator(step.frame).locator(selector).first
        return page.locator(selector).first

    async def _act(self, page: Page, step: BrowserStep, *, limit_ms: float) -> None:
        action = step.action
        if action == "goto":
            await self._goto(page, step, limit_ms=limit_ms)
        elif action in ("click", "fill", "select", "press"):
            await self._use(page, step, action, limit_ms=limit_ms)
        elif action == "wait_for":
            await self._wait_for(page, step, limit_ms=limit_ms)
        elif action == "expect":
            await self._expect(page, step, limit_ms=limit_ms)
        elif action == "save":
            await self._save(page, step, limit_ms=limit_ms)
        elif action == "screenshot":
            data = await page.screenshot(type="png", timeout=limit_ms)
            path = await self._sink(data) if self._sink is not None else None
            if path is not None:
                self._shots.append(path)

    async def _use(self, page: Page, step: BrowserStep, action: str, *, limit_ms: float) -> None:
        """click, fill, select or press: what a customer does with an element."""
        selector = getattr(step, action)
        target = self._locator(page, step, selector)
        value = render(step.value, self._values) if step.value is not None else ""
        if action == "fill":  # what a customer types may be a secret; options are not
            self._masked.append(value)
        try:
            if action == "click":
                await target.click(timeout=limit_ms)
            elif action == "fill":
                await target.fill(value, timeout=limit_ms)
            elif action == "select":
                await target.select_option(value, timeout=limit_ms)
            else:
                await target.press(step.key or "", timeout=limit_ms)
        except PlaywrightTimeout:
            raise _StepFailed(
                Outcome.ELEMENT_MISSING,
                f"{selector!r} did not appear (or could not be used) within {limit_ms / 1000:g}s",
            ) from None

    async def _goto(self, page: Page, step: BrowserStep, *, limit_ms: float) -> None:
        url = urljoin(self._spec.url, render(step.goto or "/", self._values))
        refusals = self.proxy.refusals if self.proxy is not None else 0
        try:
            response = await page.goto(url, timeout=limit_ms, wait_until="load")
        except PlaywrightTimeout:
            raise _StepFailed(
                Outcome.TIMEOUT,
                f"{redact_url(url)} did not finish loading within {limit_ms / 1000:g}s",
            ) from None
        except PlaywrightError as exc:
            proxy = self.proxy
            if proxy is not None and "ERR_SOCKS" in str(exc):  # the journey's proxy said no
                # Refused while this navigation ran: the page or one of its redirect hops.
                if proxy.refusals > refusals and proxy.latest_refusal is not None:
                    line = clean_line(proxy.latest_refusal)
                    raise _StepFailed(Outcome.REDIRECT_REFUSED, line) from None
                why = self._proxy_says(url)
                if why is not None:
                    raise _StepFailed(Outcome.CONNECTION_ERROR, clean_line(why)) from None
            raise _StepFailed(Outcome.CONNECTION_ERROR, _message(exc)) from None
        await self._read_vitals(page, step)
        if response is None:
            return
        if response.status >= 500:
            raise _StepFailed(Outcome.HTTP_5XX, f"{redact_url(url)} answered {response.status}")
        if response.status >= 400:
            raise _StepFailed(
                Outcome.UNEXPECTED_STATUS, f"{redact_url(url)} answered {response.status}"
            )

    async def _wait_for(self, page: Page, step: BrowserStep, *, limit_ms: float) -> None:
        wait = step.wait_for
        assert wait is not None
        seconds = f"{limit_ms / 1000:g}s"
        try:
            if wait.selector is not None:
                target = self._locator(page, step, render(wait.selector, self._values))
                try:
                    await target.wait_for(state="visible", timeout=limit_ms)
                except PlaywrightTimeout:
                    raise _StepFailed(
                        Outcome.ELEMENT_MISSING,
                        f"{wait.selector!r} did not appear within {seconds}",
                    ) from None
            elif wait.text is not None:
                text = render(wait.text, self._values)
                await page.get_by_text(text).first.wait_for(state="visible", timeout=limit_ms)
            elif wait.url is not None:
                url = re.compile(render(wait.url, self._values))
                await page.wait_for_url(url, timeout=limit_ms)
            elif wait.request is not None:
                pattern = re.compile(render(wait.request, self._values))
                if not any(pattern.search(url) for url in self._finished):
                    await page.wait_for_event(
                        "requestfinished",
                        predicate=lambda request: bool(pattern.search(request.url)),
                        timeout=limit_ms,
                    )
        except PlaywrightTimeout:
            outcome = {
                "text": Outcome.CONTENT_MISMATCH,
                "url": Outcome.TIMEOUT,
                "request": Outcome.REQUEST_FAILED,
            }
            kind = next(name for name in ("text", "url", "request") if getattr(wait, name))
            raise _StepFailed(
                outcome[kind], f"waited {seconds} for {kind} {getattr(wait, kind)!r} in vain"
            ) from None

    async def _expect(self, page: Page, step: BrowserStep, *, limit_ms: float) -> None:
        expect = step.expect
        assert expect is not None
        if expect.no_console_error is not None:
            pattern = re.compile(expect.no_console_error)
            matching = [line for line in self.console_errors if pattern.search(line)]
            if matching:
                raise _StepFailed(Outcome.SCRIPT_ERROR, f"the page reported {matching[0]}")
        if expect.visible is not None:
            target = self._locator(page, step, render(expect.visible, self._values))
            try:
                await target.wait_for(state="visible", timeout=limit_ms)
            except PlaywrightTimeout:
                raise _StepFailed(
                    Outcome.ELEMENT_MISSING, f"{expect.visible!r} is not visible"
                ) from None
        if expect.text is not None:
            text = render(expect.text, self._values)
            try:
                await page.get_by_text(text).first.wait_for(state="visible", timeout=limit_ms)
            except PlaywrightTimeout:
                raise _StepFailed(Outcome.CONTENT_MISMATCH, f"the page lacks {text!r}") from None
        if expect.text_absent is not None:
            text = render(expect.text_absent, self._values)
            if await page.get_by_text(text).count():
                raise _StepFailed(Outcome.CONTENT_MISMATCH, f"the page shows {text!r}")
        if expect.url is not None:
            pattern = re.compile(render(expect.url, self._values))
            if not pattern.search(page.url):
                raise _StepFailed(
                    Outcome.CONTENT_MISMATCH,
                    f"the page is {redact_url(page.url)}, not matching {expect.url!r}",
                )

    async def _save(self, page: Page, step: BrowserStep, *, limit_ms: float) -> None:
        for name, source in step.saves.items():
            target = self._locator(page, step, source.selector)
            value: str | None
            try:
                if source.attribute is None:
                    value = await target.inner_text(timeout=limit_ms)
                else:
                    value = await target.get_attribute(source.attribute, timeout=limit_ms)
            except PlaywrightTimeout:
                raise _StepFailed(
                    Outcome.ELEMENT_MISSING,
                    f"could not save {name}: {source.selector!r} is missing",
                ) from None
            if value is None:
                raise _StepFailed(
                    Outcome.CONTENT_MISMATCH,
                    f"could not save {name}: {source.selector!r} has no {source.attribute}",
                )
            self._values[name] = value.strip()
            self._masked.append(value.strip())

    async def _read_vitals(self, page: Page, step: BrowserStep) -> None:
        if page.is_closed():
            return
        try:
            raw = await page.evaluate(_READ_VITALS)
        except PlaywrightError:
            return  # a page mid-navigation or gone: the next read has it
        vitals: dict[str, Any] = {"url": redact_url(str(raw.get("url", ""))), "step": step.name}
        for name in ("ttfb", "fcp", "lcp"):
            value = raw.get(name)
            vitals[name] = round(value / 1000, 4) if isinstance(value, int | float) else None
        cls = raw.get("cls")
        vitals["cls"] = round(cls, 4) if isinstance(cls, int | float) else None
        self._pages[vitals["url"]] = vitals

    # -- the verdict -----------------------------------------------------------------------

    def result(self, started_at: datetime) -> ProbeResult:
        total = self._end - self._start
        refused = self.proxy.refused if self.proxy is not None else []
        timings = {f"step:{r.step.name}": r.total for r in self._reports if r.total is not None}
        timings["total"] = total
        pages = list(self._pages.values())[-_MAX_LINES:]
        lcps = [page["lcp"] for page in pages if page["lcp"] is not None]
        if lcps:
            timings["lcp"] = max(lcps)
        details: dict[str, Any] = {
            "console_errors": self.console_errors,
            "failed_requests": self.failed_requests,
            # Host names a page chose: cleaned like everything else it can make us say.
            "refused": [_bounded(clean_line(line), _MAX_LINE_CHARS) for line in refused],
            "pages": pages,
        }
        if self._shots:
            details["screenshots"] = self._shots
        if self.peak_heap:
            details["peak_heap_bytes"] = int(self.peak_heap)
        outcome, error, step, latency = self._verdict(total, pages)
        evidence = Evidence(
            url=redact_url(self._url),
            error=None if error is None else _bounded(clean_line(redact_text(error))),
            timings=timings,
            step=step,
            screenshot=self._screenshot,
            browser=details,
        )
        return ProbeResult(
            outcome=outcome,
            started_at=started_at,
            latency=latency,
            evidence=evidence.masked(Secrets(self._masked)),
            # A journey the browser's crash cut short says nothing about the site.
            cause=FailureCause.LOCAL_RESOURCE if self.browser_lost and outcome.is_failure else None,
        )

    def _verdict(
        self, total: float, pages: list[dict[str, Any]]
    ) -> tuple[Outcome, str | None, str | None, float | None]:
        failure = self._failure
        if failure is not None:
            assert failure.outcome is not None
            error = f"step {failure.step.name}: {failure.error}"
            if self.console_errors and failure.outcome is Outcome.SCRIPT_ERROR:
                error += f"; first: {self.console_errors[0]}"
            if self.failed_requests and failure.outcome is Outcome.REQUEST_FAILED:
                error += f"; failed: {self.failed_requests[0]}"
            error += self._afterwards(failure)
            return failure.outcome, error, failure.step.name, total
        lcp_limit = self._spec.lcp_slow_after.total_seconds()
        slow_page = next((p for p in pages if (p["lcp"] or 0.0) > lcp_limit), None)
        if slow_page is not None:
            error = (
                f"Largest Contentful Paint of {slow_page['url']} came after {slow_page['lcp']:.3f}s"
                f", later than lcp_slow_after {lcp_limit:g}s"
            )
            # No latency: the journey's wall time is not what was slow (see wording).
            return Outcome.SLOW, error, slow_page["step"], None
        slow_after = self._spec.slow_after.total_seconds()
        if total > slow_after:
            slowest = max(
                (r for r in self._reports if r.total is not None), key=lambda r: r.total or 0.0
            )
            error = (
                f"the journey took {total:.3f}s, more than slow_after {slow_after:g}s; "
                f"slowest step {slowest.step.name} took {slowest.total or 0.0:.3f}s"
            )
            return Outcome.SLOW, error, slowest.step.name, total
        return Outcome.OK, None, None, total

    def _afterwards(self, failure: _StepReport) -> str:
        after = self._reports[self._reports.index(failure) + 1 :]
        skipped = [report.step.name for report in after if report.skipped == "skipped"]
        notes = [f"; not run: {', '.join(skipped)}"] if skipped else []
        for report in after:
            if report.step.always:
                state = report.skipped or (f"failed: {report.error}" if report.outcome else "ok")
                notes.append(f"; cleanup {report.step.name} {state}")
        return "".join(notes)


def _is_page_itself(request: Request) -> bool:
    """The main document: when it is what hangs, the page itself timed out."""
    try:
        return request.is_navigation_request() and request.frame.parent_frame is None
    except PlaywrightError:
        return False  # a service worker's request has no frame


async def _screenshot(page: Page, sink: ScreenshotSink) -> str | None:
    try:
        data = await page.screenshot(type="png", timeout=5000)
    except PlaywrightError as exc:
        log.info("no screenshot of the failing step: %s", _message(exc))
        return None
    return await sink(data)


def _message(exc: PlaywrightError) -> str:
    # Playwright's messages carry a multi-line call log; its first line says what happened.
    return (exc.message or type(exc).__name__).strip().splitlines()[0]


def _bounded(text: str, limit: int = _MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

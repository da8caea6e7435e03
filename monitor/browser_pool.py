"""The one Chromium of a monitor process, shared by every `browser` check.

- Launched lazily, at the first journey, through Playwright with Debian's `chromium` (found on
  PATH or `browser.executable`); Playwright's own browser download is never needed.
- Each journey gets a fresh context (no cookies or storage from another run) and closes it.
- At most `max_pages` journeys run at once; the others wait for a page (`pages_waiting`).
- A journey that fails while the browser is gone (it crashed, was killed, or does not answer
  a health ping within `ping_timeout`) is not the site's fault: the browser is restarted and
  the journey run once more; if that fails the same way, the result is marked
  `local_resource`, which the monitor discards instead of counting against the site.
- Chromium runs at a lower CPU priority (nice +10) than the monitor: on a loaded machine the
  journeys wait, not the http checks' timings.
- No orphan Chromium when the monitor is SIGKILLed: Chromium is started through a tiny
  wrapper that asks the kernel for SIGKILL when its parent (Playwright's driver, which exits
  with our process) dies, then execs Chromium (PR_SET_PDEATHSIG, Linux). Chromium's own
  helpers (zygote, renderers) exit with their browser process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from checks.result import FailureCause, ProbeResult
from monitor.config.models import MonitorConfig, has_browser_checks
from monitor.metrics import Metrics
from monitor.proc_tree import descendants, rss_bytes

log = logging.getLogger(__name__)

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
INSTALL_HINT = "apt-get install chromium"
# Chromium flags for a monitor: no sandbox (containers seldom allow it), /tmp over a small
# /dev/shm, nothing that phones home or runs in the background.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--no-first-run",
    "--mute-audio",
)
PR_SET_PDEATHSIG = 1
CHROMIUM_NICE = 10  # added to Chromium's niceness: the monitor's loop goes first

_WRAPPER = """#!{python}
# Starts Chromium so that it dies with its parent (written by monitor.browser_pool).
import ctypes, os, signal, sys
parent = os.getppid()
ctypes.CDLL(None, use_errno=True).prctl({option}, signal.SIGKILL, 0, 0, 0)
if os.getppid() != parent:  # the parent died before prctl: nobody will wait for us
    sys.exit(1)
# Below the monitor's own priority: a busy browser must not delay the http checks' timings.
os.nice({nice})
with open({pid_file!r}, "w") as out:
    out.write(str(os.getpid()))
os.execv({chromium!r}, [{chromium!r}, *sys.argv[1:]])
"""


class BrowserUnavailable(RuntimeError):
    """No Chromium to run browser checks with (not installed, or it will not start)."""


def find_chromium(executable: str | None = None) -> str | None:
    """The Chromium to drive: `executable` (a path or a name on PATH), else the first of the
    usual names on PATH; None when there is none."""
    for name in (executable,) if executable else CHROMIUM_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def write_wrapper(folder: Path, chromium: str) -> Path:
    """An executable in `folder` that starts `chromium` with a parent-death signal."""
    wrapper = folder / "chromium-with-parent"
    wrapper.write_text(
        _WRAPPER.format(
            python=sys.executable,
            option=PR_SET_PDEATHSIG,
            nice=CHROMIUM_NICE,
            pid_file=str(folder / "chromium.pid"),
            chromium=chromium,
        )
    )
    wrapper.chmod(stat.S_IRWXU)
    return wrapper


Journey = Callable[[BrowserContext], Awaitable[ProbeResult]]


class BrowserPool:
    def __init__(
        self,
        *,
        executable: str,
        max_pages: int,
        metrics: Metrics | None = None,
        ping_timeout: float = 5.0,
        launch_timeout: float = 30.0,
    ) -> None:
        self._executable = executable
        self._pages = asyncio.Semaphore(max_pages)
        self._metrics = metrics
        self._ping_timeout = ping_timeout
        self._launch_timeout = launch_timeout
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._launching: asyncio.Lock = asyncio.Lock()
        self._folder: Path | None = None
        self._waiting = 0
        self._in_use = 0
        self.restarts = 0
        if metrics is not None:
            metrics.browser_pages_in_use.set_function(lambda: self._in_use)
            metrics.browser_pages_waiting.set_function(lambda: self._waiting)
            metrics.browser_rss.set_function(self.rss_bytes)

    @property
    def pid(self) -> int | None:
        """Chromium's process id (the browser process), once launched."""
        return None if self._browser is None else self._read_pid()

    def rss_bytes(self) -> int:
        """Resident memory of Chromium and its helper processes now (0 before launch)."""
        pid = self.pid
        return 0 if pid is None else rss_bytes(descendants(pid))

    async def run(self, journey: Journey) -> ProbeResult:
        """Run `journey` in a fresh context once a page is free (see the module docstring)."""
        self._waiting += 1
        try:
            await self._pages.acquire()
        finally:
            self._waiting -= 1
        self._in_use += 1
        try:
            result = await self._attempt(journey)
            if result.ok or await self._healthy():
                return result
            await self._restart("unresponsive" if self._alive() else "crashed")
            result = await self._attempt(journey)
            if result.ok or await self._healthy():
                return result
            await self._restart("unresponsive" if self._alive() else "crashed")
            return replace(result, cause=FailureCause.LOCAL_RESOURCE)
        finally:
            self._in_use -= 1
            self._pages.release()

    async def _attempt(self, journey: Journey) -> ProbeResult:
        browser = await self._ensure()
        try:
            async with asyncio.timeout(self._ping_timeout):
                context = await browser.new_context()
        except (PlaywrightError, TimeoutError):
            # Dead or hung: restarted, and the journey runs in the new browser.
            await self._restart("unresponsive" if browser.is_connected() else "crashed")
            browser = await self._ensure()
            context = await browser.new_context()
        try:
            return await journey(context)
        finally:
            try:
                async with asyncio.timeout(self._ping_timeout):
                    await context.close()
            except (PlaywrightError, TimeoutError):
                pass  # the browser went away with it, or hangs: the health ping decides

    def _alive(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    async def _healthy(self) -> bool:
        """Does the browser answer a ping within `ping_timeout`?"""
        browser = self._browser
        if browser is None or not browser.is_connected():
            return False
        try:
            async with asyncio.timeout(self._ping_timeout):
                session = await browser.new_browser_cdp_session()
                await session.send("Browser.getVersion")
                await session.detach()
        except (PlaywrightError, TimeoutError):
            return False
        return True

    async def _ensure(self) -> Browser:
        async with self._launching:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if self._browser is not None:
                await self._restart_locked("crashed")
            else:
                await self._launch()
            assert self._browser is not None
            return self._browser

    async def _restart(self, reason: str) -> None:
        async with self._launching:
            await self._restart_locked(reason)

    async def _restart_locked(self, reason: str) -> None:
        log.warning("restarting Chromium (%s)", reason)
        self.restarts += 1
        if self._metrics is not None:
            self._metrics.browser_restarts.labels(reason=reason).inc()
        await self._close_browser()
        await self._launch()

    async def _launch(self) -> None:
        if self._playwright is None:
            self._playwright = await async_playwright().start()
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="monitor-chromium-"))
        wrapper = write_wrapper(self._folder, self._executable)
        try:
            self._browser = await self._playwright.chromium.launch(
                executable_path=str(wrapper),
                headless=True,
                args=list(CHROMIUM_ARGS),
                timeout=self._launch_timeout * 1000,
                # The monitor decides when the browser ends, not a signal meant for it.
                handle_sigint=False,
                handle_sigterm=False,
                handle_sighup=False,
            )
        except PlaywrightError as exc:
            raise BrowserUnavailable(
                f"Chromium at {self._executable} did not start: {exc}"
            ) from exc
        log.info("Chromium %s started (pid %s)", self._browser.version, self.pid)

    async def _close_browser(self) -> None:
        browser, self._browser = self._browser, None
        if browser is None:
            return
        pid = self._read_pid()
        try:
            async with asyncio.timeout(self._ping_timeout):
                await browser.close()
            return
        except (PlaywrightError, TimeoutError):
            pass  # already gone, or hung: killed below
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _read_pid(self) -> int | None:
        if self._folder is None:
            return None
        try:
            return int((self._folder / "chromium.pid").read_text())
        except (OSError, ValueError):
            return None

    async def close(self) -> None:
        await self._close_browser()
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def browser_pool(config: MonitorConfig, *, metrics: Metrics | None) -> BrowserPool | None:
    """The process's Chromium for its browser checks (launched at the first journey); None
    when it has none, or no Chromium is installed (then one line says they are skipped)."""
    if not has_browser_checks(config):
        return None
    settings = config.browser
    executable = find_chromium(settings.executable)
    if executable is None:
        log.warning(
            "browser checks are skipped: no Chromium found (%s); install it with `%s`",
            settings.executable or " or ".join(CHROMIUM_NAMES[:2]) + " on PATH",
            INSTALL_HINT,
        )
        return None
    return BrowserPool(
        executable=executable,
        max_pages=settings.max_pages,
        metrics=metrics,
        ping_timeout=settings.ping_timeout.total_seconds(),
    )

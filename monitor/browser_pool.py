"""The one Chromium of a monitor process, shared by every `browser` check.

- Launched lazily, at the first journey, through Playwright with Debian's `chromium` (found on
  PATH or `browser.executable`); Playwright's own browser download is never needed.
- Each journey opens a fresh context (no cookies or storage from another run); the pool
  closes it when the journey ends.
- At most `max_pages` journeys run at once; the others wait for a page (`pages_waiting`).
- A journey that fails while the browser is gone (it crashed, was killed, or does not answer
  a health ping within `ping_timeout`) is not the site's fault: the browser is restarted and
  the journey run once more; if that fails the same way, the result is marked
  `local_resource`, which the monitor discards instead of counting against the site.
- Playwright runs on a thread of its own with its own event loop: its protocol traffic
  (every request, console line and frame of every page) never waits in, or delays, the loop
  that starts and times the http checks. Playwright's driver and Chromium run 10 steps of
  niceness below the monitor, and Chromium cannot climb back (it raises its UI threads to -8
  when allowed, as root it is): CAP_SYS_NICE is dropped from its bounding set.
  On a loaded machine the journeys wait, not the http checks.
- No orphan Chromium when the monitor is SIGKILLed: Chromium is started through a tiny
  wrapper that asks the kernel for SIGKILL when its parent (Playwright's driver, which exits
  with our process) dies, then execs Chromium (PR_SET_PDEATHSIG, Linux). Chromium's own
  helpers (zygote, renderers) exit with their browser process. What stays on disk (the
  profile) is in the pool's own folder, which the next pool removes once its owner is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from checks.browser import ContextOpener
from checks.result import FailureCause, ProbeResult
from monitor.config.models import MonitorConfig, has_browser_checks
from monitor.loop_lag import STALL_TIMING, LoopLagMonitor
from monitor.metrics import Metrics
from monitor.proc_tree import children, descendants, rss_bytes, started, threads

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
    # WebRTC's UDP would not go through the journey's proxy (checks.browser_proxy).
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
)
FOLDER_PREFIX = "monitor-chromium-"
OWNER_FILE = "owner"
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_SYS_NICE = 23
STALL_WORTH_NOTING = 0.05  # seconds; below this a stall is not worth a line in the evidence
CHROMIUM_NICE = 10  # added to the browser side's niceness: the monitor's loop goes first

_WRAPPER = """#!{python}
# Starts Chromium so that it dies with its parent (written by monitor.browser_pool).
import ctypes, os, resource, signal, sys
parent = os.getppid()
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl({option}, signal.SIGKILL, 0, 0, 0)
if os.getppid() != parent:  # the parent died before prctl: nobody will wait for us
    sys.exit(1)
# Below the monitor's own priority: a busy browser must not delay the http checks' timings.
# (Playwright's driver, whose child we are, is lowered already.)
os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), {nice}))
# Chromium raises its own UI threads to nice -8 when it may (as root it may). Without
# CAP_SYS_NICE (gone from the bounding set, so not given back by exec, nor kept as an
# ambient capability) and with RLIMIT_NICE at 0, it cannot climb back above the monitor.
libc.prctl({cap_ambient}, {cap_ambient_clear_all}, 0, 0, 0)
if libc.prctl({capbset_drop}, {cap_sys_nice}, 0, 0, 0) != 0 and os.geteuid() == 0:
    print("chromium-with-parent: CAP_SYS_NICE not dropped:", os.strerror(ctypes.get_errno()),
          file=sys.stderr)
resource.setrlimit(resource.RLIMIT_NICE, (0, 0))
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


def lowered_priority() -> int:
    """The niceness of the browser's side: CHROMIUM_NICE below the calling thread's own (on
    Linux, niceness is per thread)."""
    return min(19, os.getpriority(os.PRIO_PROCESS, 0) + CHROMIUM_NICE)


def lower_priority(pids: Iterable[int], nice: int) -> None:
    """Every thread of these processes at niceness `nice` (Linux keeps one per thread, and a
    thread started later inherits its starter's)."""
    for pid in pids:
        for task in threads(pid):
            with contextlib.suppress(OSError):  # ended meanwhile
                os.setpriority(os.PRIO_PROCESS, task, nice)


def write_wrapper(folder: Path, chromium: str, *, nice: int) -> Path:
    """An executable in `folder` that starts `chromium` with a parent-death signal, at
    niceness `nice` or lower in priority, never able to raise it."""
    wrapper = folder / "chromium-with-parent"
    wrapper.write_text(
        _WRAPPER.format(
            python=sys.executable,
            option=PR_SET_PDEATHSIG,
            nice=nice,
            capbset_drop=PR_CAPBSET_DROP,
            cap_ambient=PR_CAP_AMBIENT,
            cap_ambient_clear_all=PR_CAP_AMBIENT_CLEAR_ALL,
            cap_sys_nice=CAP_SYS_NICE,
            pid_file=str(folder / "chromium.pid"),
            chromium=chromium,
        )
    )
    wrapper.chmod(stat.S_IRWXU)
    return wrapper


def own_folder(root: Path | None = None) -> Path:
    """A new folder for a pool's wrapper, Chromium's pid and Chromium's profiles, marked with
    the process that owns it; first, the folders of monitors that died without removing
    theirs (SIGKILL) go."""
    root = Path(tempfile.gettempdir()) if root is None else root
    sweep_stale_folders(root)
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=root))
    (folder / OWNER_FILE).write_text(f"{os.getpid()} {started(os.getpid())}")
    return folder


def sweep_stale_folders(root: Path, *, grace: float = 3600.0) -> list[Path]:
    """Remove the pool folders under `root` whose owner is no longer running (its pid gone,
    or reused by a later process); a folder without an owner yet is another monitor's being
    made, unless older than `grace` seconds."""
    removed = []
    for folder in root.glob(FOLDER_PREFIX + "*"):
        try:
            pid, ticks = (folder / OWNER_FILE).read_text().split()
            if started(int(pid)) == int(ticks):
                continue
        except (OSError, ValueError):
            try:
                if time.time() - folder.stat().st_mtime < grace:
                    continue
            except OSError:
                continue  # removed meanwhile
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


@contextmanager
def _temporary_files_in(folder: Path) -> Iterator[None]:
    """Playwright's driver makes Chromium's profile in its TMPDIR, read when the driver starts:
    in the pool's own folder, one that a SIGKILL leaves behind is found and removed. (The
    environment is the process's: for the moment the driver starts, a subprocess that another
    thread starts gets this TMPDIR too, a folder of ours that exists, which is harmless.)"""
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = before


Journey = Callable[[ContextOpener], Awaitable[ProbeResult]]
"""A browser check's run: it opens its context (with its own options, e.g. a proxy) through
the opener it is given; the pool closes whatever context a journey left open when it ends."""


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
        self._max_pages = max_pages
        self._nice = lowered_priority()  # made here, on the monitor's own thread
        self._metrics = metrics
        self._ping_timeout = ping_timeout
        self._launch_timeout = launch_timeout
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._folder: Path | None = None
        self._waiting = 0
        self._in_use = 0
        self._loop: asyncio.AbstractEventLoop | None = None  # the browser's own (see run)
        self._journeys: set[asyncio.Task[ProbeResult]] = set()  # running on that loop
        # Made with that loop (see _thread_loop), used only on it.
        self._pages: asyncio.Semaphore
        self._launching: asyncio.Lock
        self._lag: LoopLagMonitor  # its stalls are taken off journeys' verdicts
        self._closing = False
        self._thread: threading.Thread | None = None
        self.restarts = 0
        if metrics is not None:
            metrics.browser_pages_in_use.set_function(lambda: self._in_use)
            metrics.browser_pages_waiting.set_function(lambda: self._waiting)
            metrics.browser_rss.set_function(self.rss_bytes)

    @property
    def pid(self) -> int | None:
        """Chromium's process id (the browser process), once launched."""
        return None if self._browser is None else self._read_pid()

    @property
    def folder(self) -> Path | None:
        """The pool's own folder (wrapper, pid file, Chromium's profiles), once launched."""
        return self._folder

    def rss_bytes(self) -> int:
        """Resident memory of Chromium and its helper processes now (0 before launch)."""
        pid = self.pid
        return 0 if pid is None else rss_bytes(descendants(pid))

    async def run(self, journey: Journey) -> ProbeResult:
        """Run `journey` in a fresh context once a page is free (see the module docstring).

        It runs on the browser's own thread and event loop: Playwright's protocol traffic
        (every request, console line and event of a page) then never waits in, or
        delays, the loop that times the http checks. Cancelling the caller cancels it."""
        loop = self._thread_loop()
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self._run_here(journey), loop)
        )

    def _thread_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                # At the monitor's own priority: a low-priority thread holding the GIL while
                # the machine is busy would stall the monitor's loop (measured: p99 lag of the
                # http checks 200 ms instead of 61-64 ms). Its driver and Chromium go low.
                target=loop.run_forever,
                name="monitor-browser",
                daemon=True,
            )
            thread.start()
            self._loop, self._thread = loop, thread
            # Bound to the loop they first wait on: a pool run again after close() gets new.
            self._pages = asyncio.Semaphore(self._max_pages)
            self._launching = asyncio.Lock()
            self._lag = LoopLagMonitor(monotonic=time.monotonic)
            asyncio.run_coroutine_threadsafe(self._lag.run(), loop)
        return self._loop

    async def _run_here(self, journey: Journey) -> ProbeResult:
        task = asyncio.current_task()
        assert task is not None
        if self._closing:
            raise BrowserUnavailable("the browser pool is closing")
        self._journeys.add(task)
        try:
            return await self._run_journey(journey)
        finally:
            self._journeys.discard(task)

    async def _run_journey(self, journey: Journey) -> ProbeResult:
        started = time.monotonic()
        result = await self._run_with_retry(journey)
        # A step that timed out, or a journey that looked slow, while this loop was stalled
        # says nothing of the site: the monitor takes this off before it trusts the verdict.
        stall = self._lag.max_lag_between(started, time.monotonic())
        if stall < STALL_WORTH_NOTING:
            return result
        timings = {**result.evidence.timings, STALL_TIMING: round(stall, 4)}
        return replace(result, evidence=replace(result.evidence, timings=timings))

    async def _run_with_retry(self, journey: Journey) -> ProbeResult:
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
        contexts: list[BrowserContext] = []

        async def open_context(**options: Any) -> BrowserContext:
            nonlocal browser
            try:
                async with asyncio.timeout(self._ping_timeout):
                    context = await browser.new_context(**options)
            except (PlaywrightError, TimeoutError):
                # Dead or hung: restarted, and the journey runs in the new browser.
                await self._restart("unresponsive" if browser.is_connected() else "crashed")
                browser = await self._ensure()
                context = await browser.new_context(**options)
            contexts.append(context)
            return context

        try:
            return await journey(open_context)
        finally:
            for context in contexts:
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
            if self._closing:
                raise BrowserUnavailable("the browser pool is closing")
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
        if self._folder is None:
            self._folder = own_folder()
        if self._playwright is None:
            before = set(children(os.getpid()))
            with _temporary_files_in(self._folder):
                self._playwright = await async_playwright().start()
            # Playwright's driver (node), which starts Chromium: below the monitor too.
            lower_priority(set(children(os.getpid())) - before, self._nice)
        wrapper = write_wrapper(self._folder, self._executable, nice=self._nice)
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
        folder = self._folder  # read once: a metrics scrape may run while close() clears it
        if folder is None:
            return None
        try:
            return int((folder / "chromium.pid").read_text())
        except (OSError, ValueError):
            return None

    async def close(self) -> None:
        """End the journeys still running (their callers see them cancelled), then the
        browser, Playwright, the pool's thread and its folder."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close_here(), loop))
        finally:
            loop.call_soon_threadsafe(loop.stop)
            await asyncio.to_thread(thread.join)
            loop.close()
            self._loop = self._thread = None

    async def _close_here(self) -> None:
        self._closing = True
        self._lag.stop()
        try:
            for task in list(self._journeys):
                task.cancel()  # not left waiting on a loop about to stop
            await asyncio.gather(*self._journeys, return_exceptions=True)
            await self._close_browser()
        finally:
            try:
                await self._stop_playwright()
            finally:
                self._closing = False  # a pool run again after close() starts afresh

    async def _stop_playwright(self) -> None:
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

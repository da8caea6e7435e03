"""Reload the configuration in place: on SIGHUP, `POST /api/reload`, or a change of the file.

The new file is read and validated whole by the same loader as at start (environment
variables it references are read now). An invalid file changes nothing: every problem is
logged with its line, `monitor_config_last_reload_successful` drops to 0, and the monitor
goes on with the configuration it has. A valid one is applied in one path, `Reloader.reload`:

1. sections that only take effect at start (`RESTART_SECTIONS`: the listeners, the database,
   the scheduler's caps, the cluster identity, the canaries) keep their running values, and
   whatever changed in them is reported as needing a restart;
2. the outbox's senders take the new configuration first (`subscribe(first=True)`: a new
   channel is known before anything routes to it); the monitor applies the rest
   (`Monitor.apply`: checks, incidents, clients, calendars, templates), then every
   subscriber (`subscribe`) gets the new configuration in order: the status pages, the API
   token, and any section added later;
3. `current` is the new configuration, and the metrics say when it was loaded.

A new section joins reload by reading `Reloader.current` when it acts, or by subscribing a
function that takes the new `MonitorConfig` (see README "Reloading the configuration").
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from monitor.clock import Clock
from monitor.config import ConfigError, MonitorConfig
from monitor.metrics import Metrics
from monitor.runtime import Applied, Monitor

log = logging.getLogger(__name__)

# Top-level sections read only at start: a change is reported ("needs a restart") and the
# running values are kept until the process restarts.
RESTART_SECTIONS = ("database", "server", "scheduler", "cluster", "canaries", "mass_failure")
# Fields, in sections that otherwise follow a reload, read only by parts built at start: the
# browser pool and its scheduler, the screenshots folder, the outbox worker's back-off.
RESTART_FIELDS = (
    "browser.executable",
    "browser.max_pages",
    "browser.ping_timeout",
    "browser.screenshots_dir",
    "browser.screenshots_max_files",
    "browser.screenshots_max_age",
    "notifications.retry_initial",
    "notifications.retry_max",
)

Subscriber = Callable[[MonitorConfig], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """The outcome of one reload: `errors` when the file was refused (nothing changed)."""

    ok: bool
    trigger: str
    errors: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)  # e.g. "server.port"
    applied: Applied | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Reloader:
    """Owns the running configuration and swaps it in one path; one reload at a time."""

    def __init__(
        self,
        *,
        current: MonitorConfig,
        load: Callable[[], MonitorConfig],
        monitor: Monitor,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self.current = current
        self._load = load
        self._monitor = monitor
        self._metrics = metrics
        self._clock = clock
        self._subscribers: list[Subscriber] = []
        self._first: list[Subscriber] = []  # before the monitor applies (see subscribe)
        self._lock = asyncio.Lock()
        self.loaded(current)

    def subscribe(self, subscriber: Subscriber, *, first: bool = False) -> None:
        """Call `subscriber(new_config)` on every successful reload, after the monitor's;
        with `first`, before it: for what must be ready when the monitor's new config acts
        (the outbox's senders, before the incidents route messages to a new channel)."""
        (self._first if first else self._subscribers).append(subscriber)

    def loaded(self, config: MonitorConfig) -> None:
        """Record a successful load in the metrics (at start and after each reload)."""
        stamp = self._clock.now().timestamp()
        self._metrics.config_reload_successful.set(1)
        self._metrics.config_reload_success_time.set(stamp)
        self._metrics.config_loaded.set(stamp)

    async def reload(self, *, trigger: str) -> ReloadResult:
        """Read the file again and apply it when valid; see the module docstring."""
        async with self._lock:
            try:
                # Off the event loop: a file of many thousand checks takes a while to read.
                new = await asyncio.to_thread(self._load)
            except ConfigError as exc:
                return self._refused(trigger, [str(problem) for problem in exc.problems])
            except ValidationError as exc:  # the `monitor run` flags re-applied to the file
                return self._refused(trigger, [error["msg"] for error in exc.errors()])
            restart = needs_restart(self.current, new)
            effective = new.model_copy(
                update={name: getattr(self.current, name) for name in RESTART_SECTIONS}
            )
            try:
                # Also off the loop: tens of thousands of checks take a second or more.
                plan = await asyncio.to_thread(self._monitor.plan, effective)
                await _call(self._first, effective)
                applied = await self._monitor.apply(effective, plan=plan)
                await _call(self._subscribers, effective)
            except Exception as exc:  # noqa: BLE001 - told, and the next reload tries again
                log.exception("config reload (%s) failed while applying it", trigger)
                self._metrics.config_reload_successful.set(0)
                return ReloadResult(
                    ok=False,
                    trigger=trigger,
                    errors=[f"applying the new config failed: {type(exc).__name__}: {exc}"],
                    needs_restart=restart,
                )
            self.current = effective
            self.loaded(effective)
        for name in restart:
            log.warning("config reload (%s): %s changed and needs a restart", trigger, name)
        log.info(
            "config reloaded (%s): %d checks added, %d changed, %d removed; "
            "incidents resolved as their checks were removed: %s; clocks recomputed: %s",
            trigger,
            len(applied.added),
            len(applied.changed),
            len(applied.removed),
            ", ".join(applied.resolved) or "none",
            ", ".join(applied.recomputed) or "none",
            extra={"event": "config_reloaded", "trigger": trigger, **asdict(applied)},
        )
        return ReloadResult(ok=True, trigger=trigger, needs_restart=restart, applied=applied)

    def _refused(self, trigger: str, errors: list[str]) -> ReloadResult:
        for error in errors:
            log.error(
                "config reload (%s) refused, still running on the previous config: %s",
                trigger,
                error,
                extra={"event": "config_reload_failed", "trigger": trigger},
            )
        self._metrics.config_reload_successful.set(0)
        return ReloadResult(ok=False, trigger=trigger, errors=errors)

    def watch(
        self, path: Path, *, every: float, stopping: asyncio.Event
    ) -> Coroutine[Any, Any, None]:
        """Reload whenever the file's content changes, looked at every `every` seconds: its
        modification time and size first (one stat), its hash only when they moved, so an
        editor that rewrites the same bytes (or `touch`) reloads nothing. The file as it is
        when this is called is the baseline (not when the coroutine first runs)."""
        return self._watch(path, _stamp(path), _digest(path), every=every, stopping=stopping)

    async def _watch(
        self,
        path: Path,
        stamp: tuple[int, int] | None,
        digest: str | None,
        *,
        every: float,
        stopping: asyncio.Event,
    ) -> None:
        while not stopping.is_set():
            await self._clock.sleep(every)
            now = _stamp(path)
            if now == stamp:
                continue
            stamp = now
            content = _digest(path)
            if content == digest or content is None:  # unchanged, or being replaced
                continue
            digest = content
            await self.reload(trigger="file changed")


async def _call(subscribers: list[Subscriber], config: MonitorConfig) -> None:
    for subscriber in subscribers:
        outcome = subscriber(config)
        if inspect.isawaitable(outcome):
            await outcome


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def needs_restart(old: MonitorConfig, new: MonitorConfig) -> list[str]:
    """The fields of `RESTART_SECTIONS` and `RESTART_FIELDS` that differ between `old` and
    `new`, as dotted paths (never their values: a database URL may hold a password)."""
    changed: list[str] = []
    for name in RESTART_SECTIONS:
        before = _plain(getattr(old, name))
        after = _plain(getattr(new, name))
        changed.extend(_differences(before, after, name))
    for path in RESTART_FIELDS:
        section, field_name = path.split(".")
        before = getattr(getattr(old, section), field_name)
        after = getattr(getattr(new, section), field_name)
        changed.extend(_differences(_plain(before), _plain(after), path))
    return changed


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(item) for item in value]
    dump = getattr(value, "model_dump", None)
    # Secrets compare by what they hold: a changed password is a change.
    return dump(mode="python") if dump is not None else value


def _differences(before: Any, after: Any, path: str) -> list[str]:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        found: list[str] = []
        for key in sorted({*before, *after}, key=str):
            found.extend(_differences(before.get(key), after.get(key), f"{path}.{key}"))
        return found
    return [] if before == after else [path]

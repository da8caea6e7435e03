"""The bounded folder of browser checks' screenshots: at most `max_files` PNGs, none older
than `max_age`. Incident evidence refers to a file by its path; an old incident whose file
was pruned simply has none to attach."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from incidents.model import TimelineEntry
from incidents.outgoing import Attachment, Audience, MessageKind, Outgoing, OutgoingEmail
from monitor.clock import Clock
from monitor.config.models import MonitorConfig

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# An on-call mail carries at most this much of a screenshot; a bigger one stays on disk.
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
# The on-call mails that report a failure (not the SLA reminders).
_ATTACHING = frozenset({MessageKind.PAGE, MessageKind.NOTIFY})
_UNSAFE = re.compile(r"[^a-z0-9_.-]+")
_STAMP = "%Y%m%dT%H%M%S.%fZ"  # sorts as it reads, to the microsecond


class ScreenshotFolder:
    def __init__(
        self,
        folder: Path,
        *,
        max_files: int,
        max_age: timedelta,
        now: Callable[[], datetime],
    ) -> None:
        self.folder = folder
        self._max_files = max_files
        self._max_age = max_age
        self._now = now

    def sink(self, label: str) -> Callable[[bytes], Awaitable[str | None]]:
        """A `checks.browser.ScreenshotSink` that files PNGs under `label` (a check key)."""

        async def save(data: bytes) -> str | None:
            return await asyncio.to_thread(self.save, data, label=label)

        return save

    def save(self, data: bytes, *, label: str) -> str | None:
        """Write `data` (a PNG) and prune the folder; the path written, None if not a PNG."""
        if not data.startswith(PNG_SIGNATURE):
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = self._now().strftime(_STAMP)
        slug = _UNSAFE.sub("-", label.lower()).strip("-")[:80] or "check"
        path = self.folder / f"{stamp}-{slug}-{secrets.token_hex(4)}.png"
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(path)
        self.prune()
        return str(path)

    def prune(self) -> None:
        """Delete PNGs past `max_age`, then the oldest beyond `max_files`. A file's age is
        read from its name, stamped by the injected clock (not the file system's)."""
        oldest = (self._now() - self._max_age).strftime(_STAMP)
        kept = []
        for path in self.folder.glob("*.png"):
            stamp = path.name.split("-", 1)[0]
            if stamp < oldest:
                path.unlink(missing_ok=True)
            else:
                kept.append(path.name)
        kept.sort()  # by stamp, then name
        for name in kept[: max(0, len(kept) - self._max_files)]:
            (self.folder / name).unlink(missing_ok=True)


def with_screenshot(out: Sequence[Outgoing], timeline: Sequence[TimelineEntry]) -> list[Outgoing]:
    """`out` with the failing page's screenshot (from a browser check's evidence in
    `timeline`) attached to the on-call mails that page or notify. Client mails never get
    it: what a page showed may include what a visitor typed."""
    data = None
    for entry in timeline:
        path = (entry.evidence or {}).get("screenshot")
        if isinstance(path, str) and (data := _png(Path(path))) is not None:
            name = f"screenshot-{entry.check.rsplit('/', 1)[-1] if entry.check else 'page'}.png"
            break
    if data is None:
        return list(out)
    attachment = Attachment(filename=name, content_type="image/png", data=data)
    return [
        replace(item, attachments=(*item.attachments, attachment))
        if isinstance(item, OutgoingEmail)
        and item.audience is Audience.ONCALL
        and item.kind in _ATTACHING
        else item
        for item in out
    ]


def _png(path: Path) -> bytes | None:
    try:
        if path.suffix != ".png" or path.stat().st_size > MAX_ATTACHMENT_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None  # pruned since: the mail goes without it
    return data if data.startswith(PNG_SIGNATURE) else None


def screenshot_folder(config: MonitorConfig, *, clock: Clock) -> ScreenshotFolder:
    settings = config.browser
    return ScreenshotFolder(
        Path(settings.screenshots_dir),
        max_files=settings.screenshots_max_files,
        max_age=settings.screenshots_max_age,
        now=clock.now,
    )

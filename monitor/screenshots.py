"""The bounded folder of browser checks' screenshots: at most `max_files` PNGs, none older
than `max_age`. Incident evidence refers to a file by its path; an old incident whose file
was pruned simply has none to attach."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
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

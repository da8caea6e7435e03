"""Heartbeat pings: `GET|POST /ping/<token>[/start|/fail|/<exit code>]` (healthchecks.io's
URLs), answered `200 OK` once the ping is stored.

Cheap by design, since anyone who reaches the port may call them: an unknown token is a 404
without touching the database (looked up by its SHA-256, then compared in constant time), a
request body is never read, and each check takes at most `PINGS_PER_MINUTE` pings a minute
(429 beyond). The ping is written to the shared store, so with several processes on
PostgreSQL any of them may take it; the process holding the check's site judges it
(monitor.runtime), at once when that is this one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import deque
from collections.abc import Callable, Mapping

from aiohttp import web

from checks.heartbeat import PingKind
from monitor.clock import Clock
from monitor.store import Store, StoreError

log = logging.getLogger(__name__)

PINGS_PER_MINUTE = 30
_WINDOW = 60.0
_TOKEN = r"{token:[A-Za-z0-9_-]{1,128}}"


class PingRoutes:
    """The /ping routes of one server; `tokens` maps each token to its check key."""

    def __init__(
        self,
        *,
        tokens: Mapping[str, str],
        store: Store,
        clock: Clock,
        on_ping: Callable[[str], None] = lambda key: None,
        count: Callable[[str], None] = lambda result: None,
        per_minute: int = PINGS_PER_MINUTE,
    ) -> None:
        """`on_ping(check key)` after each stored ping; `count(result)` for every request,
        result being the ping's kind or unknown, limited or error (a metric's label)."""
        self.use_tokens(tokens)
        self._store = store
        self._clock = clock
        self._on_ping = on_ping
        self._count = count
        self._per_minute = per_minute
        self._recent: dict[str, deque[float]] = {}

    def use_tokens(self, tokens: Mapping[str, str]) -> None:
        """Answer these tokens from now on (a config reload added or removed heartbeats)."""
        self._by_digest = {_digest(token): (token, key) for token, key in tokens.items()}

    def add_routes(self, app: web.Application) -> None:
        for path in (f"/ping/{_TOKEN}", f"/ping/{_TOKEN}/{{action:start|fail|[0-9]{{1,3}}}}"):
            app.router.add_get(path, self._ping)
            app.router.add_post(path, self._ping)

    async def _ping(self, request: web.Request) -> web.Response:
        key = self._check_of(request.match_info["token"])
        kind, exit_code = parse_action(request.match_info.get("action", ""))
        if key is None or kind is None:
            self._count("unknown")
            return _text(404, "not found")
        if not self._allow(key):
            self._count("limited")
            return _text(429, f"too many pings (at most {self._per_minute} a minute)")
        try:
            await self._store.record_ping(
                check_key=key, kind=kind, at=self._clock.now(), exit_code=exit_code
            )
        except StoreError as exc:
            self._count("error")
            log.warning("could not store a ping of %s: %s", key, exc)
            return _text(503, "could not store the ping; try again")
        self._count(str(kind))
        self._on_ping(key)
        return _text(200, "OK")

    def _check_of(self, token: str) -> str | None:
        # The dict is keyed by a digest, so its lookup time says nothing about the token.
        found = self._by_digest.get(_digest(token))
        if found is None or not hmac.compare_digest(found[0].encode(), token.encode()):
            return None
        return found[1]

    def _allow(self, key: str) -> bool:
        now = self._clock.monotonic()
        recent = self._recent.setdefault(key, deque())
        while recent and recent[0] <= now - _WINDOW:
            recent.popleft()
        if len(recent) >= self._per_minute:
            return False
        recent.append(now)
        return True


def parse_action(action: str) -> tuple[PingKind | None, int | None]:
    """ "" -> success, "start", "fail", "0" -> success, "1".."255" -> failure with that exit
    code; anything else (None, None)."""
    if action == "":
        return PingKind.SUCCESS, None
    if action == "start":
        return PingKind.START, None
    if action == "fail":
        return PingKind.FAIL, None
    if action.isdigit() and int(action) <= 255:
        code = int(action)
        return (PingKind.SUCCESS, None) if code == 0 else (PingKind.FAIL, code)
    return None, None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n")

"""Who may use the console: sign-in, sign-out, and the guard in front of every other page.

Sign-in checks the password against the operator's hash (argon2 or bcrypt) off the event
loop, counts failures per address and per name (`SignInLimiter`), and sets the signed session
cookie. The guard sends whoever has no valid session to sign in, and refuses a POST without
the session's CSRF token (403) before anything is read or done.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

from aiohttp import web

from monitor.clock import Clock
from monitor.config.models import ConsoleConfig, OperatorAccount
from monitor.passwords import verify_password
from monitor.web.console.forms import local_path, read_form, see_other
from monitor.web.console.sessions import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SIGN_IN_LIFETIME,
    Session,
    SessionCodec,
    SignInLimiter,
    same,
)

log = logging.getLogger(__name__)

# What a redirect may say on the sign-in page: fixed words, never text from the request.
SIGN_IN_NOTICES = {"signed-out": "Signed out."}
# Passwords checked at once at most: each argon2 check takes 64 MiB.
HASHING_AT_ONCE = 2

Handler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


class Render(Protocol):
    def __call__(
        self, template: str, session: Session | None, *, status: int = 200, **values: Any
    ) -> web.Response: ...  # pragma: no cover - a protocol


class Gate:
    def __init__(
        self,
        *,
        config: ConsoleConfig,
        accounts: Mapping[str, OperatorAccount],
        clock: Clock,
        render: Render,
    ) -> None:
        """`accounts`: the operators by their case-folded name."""
        secret = config.secret.get_secret_value() if config.secret else None
        if secret is None:
            secret = secrets.token_urlsafe(32)
            log.warning(
                "console.secret is not set: sessions are signed with a random key and end "
                "when the monitor restarts (set console.secret: ${MONITOR_CONSOLE_SECRET})"
            )
        self._codec = SessionCodec(secret=secret, lifetime=config.session_lifetime, clock=clock)
        self._limiter = SignInLimiter(
            attempts=config.sign_in_attempts, window=config.sign_in_window, clock=clock
        )
        self._accounts = accounts
        self._secure = (config.public_url or "").startswith("https://")
        self._render = render
        self._hashing = asyncio.Semaphore(HASHING_AT_ONCE)

    def use_accounts(self, accounts: Mapping[str, OperatorAccount]) -> None:
        """Sign in against these from now on (a config reload changed `operators`); the
        session of an operator no longer listed ends at their next request."""
        self._accounts = accounts

    def page(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """`handler` for a signed-in operator: others are sent to sign in; a POST must carry
        the session's CSRF token (403 otherwise, before anything is read or done)."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            session = self._codec.read(request.cookies.get(SESSION_COOKIE))
            if session is not None and session.operator.casefold() not in self._accounts:
                session = None  # removed from the config since signing in
            if session is None:
                if request.method == "GET" and not request.path.endswith("/live"):
                    raise web.HTTPSeeOther(f"/ui/sign-in?next={quote(request.path_qs)}")
                raise web.HTTPSeeOther("/ui/sign-in")
            if request.method == "POST":
                form = await read_form(request)
                if not same(session.csrf, str(form.get("csrf", ""))):
                    raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page")
            return await handler(request, session)

        return guarded

    async def sign_in_page(
        self, request: web.Request, *, error: str | None = None, status: int = 200
    ) -> web.Response:
        cookie, token = self._codec.sign_in_token()
        response = self._render(
            "sign_in.html.j2",
            None,
            status=status,
            token=token,
            error=error,
            notice=SIGN_IN_NOTICES.get(request.query.get("done", "")),
            next=local_path(request.query.get("next")),
        )
        self._set_cookie(response, SIGN_IN_COOKIE, cookie, max_age=SIGN_IN_LIFETIME.seconds)
        return response

    async def sign_in(self, request: web.Request) -> web.StreamResponse:
        form = await read_form(request)
        if not self._codec.sign_in_token_ok(
            request.cookies.get(SIGN_IN_COOKIE), str(form.get("csrf", ""))
        ):
            raise web.HTTPForbidden(text="the sign-in form expired or was not ours: reload it")
        name = str(form.get("name", "")).strip()
        password = str(form.get("password", ""))
        keys = (f"ip:{request.remote}", f"name:{name.casefold()}")
        account = self._accounts.get(name.casefold())
        stored = account.password_hash if account else None
        # argon2 takes a noticeable time and 64 MiB by design: off the event loop (probes
        # keep their timing), and two at a time (a flood of sign-ins cannot take the memory).
        # Each attempt counts as failed before its check and is taken back if right: a burst
        # sent at once gets no more checks than the limit, however many run side by side.
        right = False
        async with self._hashing:
            wait = self._limiter.retry_after(*keys)
            if wait <= 0:
                self._limiter.failed(*keys)
                right = await asyncio.to_thread(verify_password, password, stored)
        if wait > 0:
            response = await self.sign_in_page(
                request, error="Too many failed sign-ins: wait a few minutes.", status=429
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        if not right:
            # An unknown name is not logged: people type their password into it by mistake.
            who = account.name if account else "an unknown name"
            log.warning("console: failed sign-in for %s from %s", who, request.remote)
            return await self.sign_in_page(request, error="Wrong name or password.", status=401)
        assert account is not None  # verify_password is False without one
        self._limiter.succeeded(keys[1])
        self._limiter.take_back(keys[0])
        cookie, _ = self._codec.issue(account.name)
        log.info("console: %s signed in from %s", account.name, request.remote)
        response = see_other(local_path(str(form.get("next", ""))) or "/ui/queue")
        self._set_cookie(
            response, SESSION_COOKIE, cookie, max_age=int(self._codec.lifetime.total_seconds())
        )
        response.del_cookie(SIGN_IN_COOKIE, path="/ui")
        return response

    async def sign_out(self, request: web.Request, session: Session) -> web.StreamResponse:
        log.info("console: %s signed out", session.operator)
        response = see_other("/ui/sign-in?done=signed-out")
        response.del_cookie(SESSION_COOKIE, path="/ui")
        return response

    def _set_cookie(
        self, response: web.StreamResponse, name: str, value: str, *, max_age: int
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/ui",
            httponly=True,
            samesite="Strict",
            secure=self._secure,
        )

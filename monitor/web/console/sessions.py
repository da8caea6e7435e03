"""Who is signed in to the console: signed session cookies, CSRF tokens, sign-in throttling.

A session is a cookie signed with `console.secret` (itsdangerous) holding the operator's name,
its CSRF token and when it expires; nothing is kept on the server, so any process sharing the
secret accepts it. The expiry is inside the signed value and read against the injected clock,
so a cookie kept past its `Max-Age` is refused all the same.
"""

from __future__ import annotations

import hmac
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from monitor.clock import Clock

SESSION_COOKIE = "monitor_console"
# Before sign-in: the CSRF token of the sign-in form itself (a forged sign-in would put the
# victim in the attacker's session).
SIGN_IN_COOKIE = "monitor_console_signin"
SIGN_IN_LIFETIME = timedelta(minutes=30)
# Keys the limiter remembers at most: a flood of made-up names cannot grow it without end.
MAX_TRACKED = 10_000


@dataclass(frozen=True, slots=True)
class Session:
    operator: str
    csrf: str
    expires: float  # Unix time


class SessionCodec:
    def __init__(self, *, secret: str, lifetime: timedelta, clock: Clock) -> None:
        self._sessions = URLSafeSerializer(secret, salt="monitor-console-session")
        self._sign_in = URLSafeSerializer(secret, salt="monitor-console-sign-in")
        self.lifetime = lifetime
        self._clock = clock

    def issue(self, operator: str) -> tuple[str, Session]:
        """A new session (and CSRF token) for `operator`, and its cookie value."""
        expires = self._clock.now().timestamp() + self.lifetime.total_seconds()
        session = Session(operator=operator, csrf=secrets.token_urlsafe(32), expires=expires)
        cookie = self._sessions.dumps({"o": operator, "c": session.csrf, "e": expires})
        return cookie, session

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie carries; None when missing, forged or expired."""
        payload = _loads(self._sessions, cookie)
        if payload is None:
            return None
        operator, csrf, expires = payload.get("o"), payload.get("c"), payload.get("e")
        if not (isinstance(operator, str) and isinstance(csrf, str)):
            return None
        if not isinstance(expires, int | float) or expires <= self._clock.now().timestamp():
            return None
        return Session(operator=operator, csrf=csrf, expires=float(expires))

    def sign_in_token(self) -> tuple[str, str]:
        """(cookie value, form token) for the sign-in form: the form must echo the token."""
        token = secrets.token_urlsafe(32)
        expires = self._clock.now().timestamp() + SIGN_IN_LIFETIME.total_seconds()
        return self._sign_in.dumps({"t": token, "e": expires}), token

    def sign_in_token_ok(self, cookie: str | None, given: str) -> bool:
        payload = _loads(self._sign_in, cookie)
        if payload is None:
            return False
        token, expires = payload.get("t"), payload.get("e")
        if not isinstance(token, str) or not isinstance(expires, int | float):
            return False
        return expires > self._clock.now().timestamp() and same(token, given)


def same(expected: str, given: str) -> bool:
    """Constant-time comparison of two tokens."""
    return hmac.compare_digest(expected.encode(), given.encode())


def _loads(serializer: URLSafeSerializer, cookie: str | None) -> dict[str, Any] | None:
    if not cookie:
        return None
    try:
        payload = serializer.loads(cookie)
    except BadSignature:
        return None
    return payload if isinstance(payload, dict) else None


class SignInLimiter:
    """Failed sign-ins per key ("ip:..." and "name:..."); a key with `attempts` failures in
    the last `window` is refused until the oldest of them ages out."""

    def __init__(self, *, attempts: int, window: timedelta, clock: Clock) -> None:
        self._attempts = attempts
        self._window = window.total_seconds()
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, *keys: str) -> float:
        """Seconds until every key may try again; 0 when all may now."""
        now = self._clock.monotonic()
        wait = 0.0
        for key in keys:
            failures = self._recent(key, now)
            if len(failures) >= self._attempts:
                wait = max(wait, failures[0] + self._window - now)
        return wait

    def failed(self, *keys: str) -> None:
        now = self._clock.monotonic()
        for key in keys:
            if key not in self._failures and len(self._failures) >= MAX_TRACKED:
                self._forget_oldest()
            self._recent(key, now).append(now)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def take_back(self, key: str) -> None:
        """Forget the latest failure of `key` (an attempt counted before it turned out right)."""
        failures = self._failures.get(key)
        if failures:
            failures.pop()

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        return failures

    def _forget_oldest(self) -> None:
        oldest = min(
            self._failures, key=lambda k: self._failures[k][-1] if self._failures[k] else 0
        )
        del self._failures[oldest]

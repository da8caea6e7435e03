"""Small tools the tests share: a controllable loopback target and waiting with a deadline."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
from aiohttp import web

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent

# CI sets this: a test that would skip for want of a service (PostgreSQL, promtool) fails
# instead, so a green CI run never hides a skipped part of the suite.
REQUIRE_ALL = os.environ.get("MONITOR_REQUIRE_ALL_TESTS") == "1"


def skip_unless_required(reason: str) -> NoReturn:
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (MONITOR_REQUIRE_ALL_TESTS=1: skipping is not allowed here)")
    pytest.skip(reason)


async def eventually(
    predicate: Callable[[], T | Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.02
) -> T:
    """Poll until `predicate` returns something truthy; fail clearly at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@dataclass
class Behaviour:
    status: int = 200
    delay: float = 0.0
    body: str = "Welcome to the shop"
    reason: str | None = None  # the status line's reason phrase; None: the standard one


@dataclass
class Target:
    """A loopback web server whose pages answer as told: status, delay, body per path."""

    pages: dict[str, Behaviour] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def set(self, path: str, **changes: object) -> None:
        behaviour = self.pages.setdefault(path, Behaviour())
        for name, value in changes.items():
            setattr(behaviour, name, value)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        behaviour = self.pages.setdefault(request.path, Behaviour())
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)  # the target being slow, not the test waiting
        return web.Response(status=behaviour.status, reason=behaviour.reason, text=behaviour.body)


async def serve_target(aiohttp_server: Any, target: Target | None = None) -> tuple[Target, str]:
    """`target` (a fresh one when None) served on loopback by pytest-aiohttp's
    `aiohttp_server`, and its base URL without the trailing slash."""
    target = target or Target()
    server = await aiohttp_server(target.app())
    return target, str(server.make_url("")).rstrip("/")


async def start_monitor_cli(
    *args: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """`python -m monitor *args` in the project's folder (`env`: its whole environment,
    None: this one's), stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_monitor_cli(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """`python -m monitor *args` run to its end: exit code, stdout, stderr."""
    process = await start_monitor_cli(*args, env=env)
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def promtool_accepts(exposition: bytes | str) -> None:
    """`promtool check metrics` finds nothing wrong with a /metrics exposition."""
    promtool = shutil.which("promtool")
    if promtool is None:
        skip_unless_required("promtool not installed (Debian package prometheus)")
    process = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    data = exposition.encode() if isinstance(exposition, str) else exposition
    out, err = await asyncio.wait_for(process.communicate(data), 30)
    assert process.returncode == 0, (out + err).decode()


class ShiftedClock:
    """Wall time that starts at `start`, runs at real speed, and can be moved forward;
    monotonic time and sleeps are real, so probes and timeouts behave as in production."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._t0 = time.monotonic()
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._t0) + self.offset

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def head_revision() -> str:
    """The newest migration's revision, as `Store.open` leaves a database."""
    from alembic.script import ScriptDirectory

    from monitor.store.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def serious_axe_violations(page: Any) -> list[tuple[str, str, list[Any]]]:
    """axe-core's serious and critical findings on the Playwright `page` as it stands:
    (rule, impact, the first three elements)."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    return [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]

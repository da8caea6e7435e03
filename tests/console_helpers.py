"""A running monitor with operators who can sign in to the console (/ui), a real SMTP server
for the client's mails, and two sites to break: `shop` (Severity 1 when it fails) and `blog`
(Severity 2)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from incidents.model import Incident
from monitor.app import Running, running_monitor
from monitor.clock import Clock
from monitor.config import MonitorConfig, load_config_text
from monitor.passwords import hash_password
from tests.helpers import Target, eventually, serve_target
from tests.monitor_yaml import head_document
from tests.smtp_helpers import Inbox, smtpd

OPERATOR = "Alice Operator"
PASSWORD = "correct horse battery staple"
OTHER = "Bob Second"
OTHER_PASSWORD = "another long passphrase"
CLIENT_MAIL = "ops@acme.example"
ONCALL_MAIL = "oncall@agency.example"
# Hashed once: argon2 takes a noticeable moment by design.
HASHES = {OPERATOR: hash_password(PASSWORD), OTHER: hash_password(OTHER_PASSWORD)}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def console_config(
    tmp_path: Path,
    *,
    shop_url: str,
    blog_url: str,
    smtp_port: int,
    database_url: str | None = None,
    **console: Any,
) -> MonitorConfig:
    document = {
        **head_document(database=database_url or f"sqlite+aiosqlite:///{tmp_path}/monitor.db"),
        "agency": {"timezone": "Europe/Berlin"},
        "notifications": {
            "sender": "Agency Support <support@agency.example>",
            "outbox_dir": str(tmp_path / "outbox"),
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none"},
            "retry_initial": "100ms",
            "retry_max": "500ms",
            "poll_interval": "100ms",
        },
        "oncall": {"emails": [ONCALL_MAIL]},
        "operators": [
            {"name": name, "email": "ops@agency.example", "password_hash": hashed}
            for name, hashed in HASHES.items()
        ],
        "console": console,
        "clients": [
            {
                "id": "acme",
                "name": "Acme Ltd",
                "contacts": [CLIENT_MAIL],
                "business_hours": {"timezone": "America/New_York"},
                "plan": "enterprise",  # clocks around the clock: due times in minutes
                "sites": [
                    {
                        "id": "shop",
                        "name": "Acme Shop",
                        "url": shop_url,
                        "checks": [{"id": "home", "url": "/"}],
                    },
                    {
                        "id": "blog",
                        "name": "Acme Blog",
                        "url": blog_url,
                        "checks": [{"id": "home", "url": "/", "severity": 2}],
                    },
                ],
            }
        ],
    }
    return load_config_text(json.dumps(document))


@dataclass
class ConsoleScene:
    running: Running
    inbox: Inbox
    shop: Target
    blog: Target
    reloaded: list[MonitorConfig]  # what the next reload reads (empty: the same config)

    async def reload(self, config: MonitorConfig) -> None:
        """Reload the running monitor with `config`, as if the file had changed."""
        self.reloaded[:] = [config]
        assert (await self.running.reloader.reload(trigger="test")).ok

    @property
    def url(self) -> str:
        return f"{self.running.url}/ui"


@asynccontextmanager
async def console_scene(
    tmp_path: Path,
    aiohttp_server: Any,
    *,
    clock: Clock | None = None,
    database_url: str | None = None,
    **console: Any,
) -> AsyncIterator[ConsoleScene]:
    shop, shop_url = await serve_target(aiohttp_server)
    blog, blog_url = await serve_target(aiohttp_server)
    inbox = Inbox()
    async with smtpd(inbox) as smtp_port:
        config = console_config(
            tmp_path,
            shop_url=shop_url,
            blog_url=blog_url,
            smtp_port=smtp_port,
            database_url=database_url,
            **console,
        )
        reloaded: list[MonitorConfig] = []

        def load() -> MonitorConfig:
            return reloaded[0] if reloaded else config

        async with running_monitor(config, clock=clock, load=load) as running:
            yield ConsoleScene(
                running=running, inbox=inbox, shop=shop, blog=blog, reloaded=reloaded
            )


async def opened_incident(scene: ConsoleScene, site: str, *, timeout: float = 15) -> Incident:
    """The open incident of `site` ("acme/shop") once the monitor has opened it."""

    async def found() -> Incident | None:
        incidents = await scene.running.store.list_incidents(open_only=True)
        return next((i for i in incidents if i.site == site), None)

    return await eventually(found, timeout=timeout)


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


async def token_of(http: aiohttp.ClientSession, url: str) -> str:
    """The CSRF token of the page at `url`, as its forms carry it."""
    async with http.get(url) as page:
        return csrf_of(await page.text())


def http_client() -> aiohttp.ClientSession:
    """Keeps cookies for 127.0.0.1 (aiohttp's default jar refuses IP hosts) and never
    follows redirects, so tests see where the console sends them."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def sign_in(
    http: aiohttp.ClientSession, base: str, *, name: str = OPERATOR, password: str = PASSWORD
) -> aiohttp.ClientResponse:
    async with http.get(f"{base}/sign-in") as page:
        token = csrf_of(await page.text())
    async with http.post(
        f"{base}/sign-in",
        data={"csrf": token, "name": name, "password": password},
        allow_redirects=False,
    ) as response:
        await response.read()
        return response

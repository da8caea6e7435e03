"""A running monitor with a status page that has something to show: one site down with an
open incident, a public update and an internal note on it, one site up."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from incidents.model import Incident
from monitor.app import Running, running_monitor
from monitor.config import MonitorConfig, load_config_text
from tests.helpers import Target, eventually, serve_target
from tests.monitor_yaml import head_document

TOKEN = "operator-token"
STATUS_KEY = "s3cret-status-key"
PUBLIC_UPDATE = "We have found the cause and are restoring the shop."
INTERNAL_NOTE = "db01 disk full again, paging Sam"
OPERATOR = "Sam Operator"
SHOP = "Acme Shop"
BLOG = "Acme Blog"


def status_config(
    tmp_path: Path,
    *,
    shop_url: str,
    blog_url: str,
    public: bool = True,
    domain: str | None = None,
    database_url: str | None = None,
    components: str | None = None,
) -> MonitorConfig:
    page: dict[str, Any] = {"public": public, "title": "Acme service status"}
    shop_checks: list[dict[str, Any]] = [{"id": "home", "url": "/"}]
    if components is not None:
        page["components"] = components
        # A named part beside the home page (up): its own component, in its own state.
        shop_checks = [
            {"id": "home", "name": "Home page", "url": "/"},
            {"id": "cart", "name": "Shopping cart", "url": "/cart", "role": "part"},
        ]
    if not public:
        page["access_key"] = STATUS_KEY
    if domain:
        page["domain"] = domain
    document = {
        **head_document(database=database_url or f"sqlite+aiosqlite:///{tmp_path}/monitor.db"),
        "notifications": {
            "sender": "Agency Support <support@agency.example>",
            "outbox_dir": str(tmp_path / "outbox"),
        },
        "api": {"token": TOKEN},
        "clients": [
            {
                "id": "acme",
                "name": "Acme Ltd",
                "contacts": ["ops@acme.example"],
                "business_hours": {"timezone": "Europe/London"},
                "status_page": page,
                "sites": [
                    {
                        "id": "shop",
                        "name": SHOP,
                        "url": shop_url,
                        "checks": shop_checks,
                    },
                    {
                        "id": "blog",
                        "name": BLOG,
                        "url": blog_url,
                        "checks": [{"id": "home", "url": "/"}],
                    },
                ],
            }
        ],
    }
    return load_config_text(json.dumps(document))


@dataclass
class StatusScene:
    running: Running
    incident: Incident
    shop: Target

    @property
    def page_url(self) -> str:
        return f"{self.running.url}/status/acme"


async def api_post(running: Running, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{running.url}{path}", json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


@asynccontextmanager
async def status_scene(
    tmp_path: Path,
    aiohttp_server: Any,
    *,
    public: bool = True,
    domain: str | None = None,
    database_url: str | None = None,
    components: str | None = None,
) -> AsyncIterator[StatusScene]:
    shop = Target()
    shop.set("/", status=500)
    _, shop_url = await serve_target(aiohttp_server, shop)
    _, blog_url = await serve_target(aiohttp_server)
    config = status_config(
        tmp_path,
        shop_url=shop_url,
        blog_url=blog_url,
        public=public,
        domain=domain,
        database_url=database_url,
        components=components,
    )
    async with running_monitor(config) as running:

        async def opened() -> Incident | None:
            found = await running.store.list_incidents(open_only=True)
            return found[0] if found else None

        incident = await eventually(opened, timeout=10)
        assert incident.id is not None
        base = f"/api/incidents/{incident.id}/updates"
        status, body = await api_post(
            running, base, {"by": OPERATOR, "text": PUBLIC_UPDATE, "stage": "identified"}
        )
        assert status == 200, body
        status, body = await api_post(
            running, base, {"by": OPERATOR, "text": INTERNAL_NOTE, "public": False}
        )
        assert status == 200, body
        yield StatusScene(running=running, incident=incident, shop=shop)

"""Loopback receivers for chat channels (a JSON webhook, Mattermost, ntfy) and a config that
routes a shop's incidents to them through Apprise URLs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.helpers import free_port
from tests.monitor_yaml import acme_shop_yaml, head_yaml, notifications_yaml


@dataclass
class Receiver:
    """An aiohttp server on a fixed 127.0.0.1 port that records every POST; it can be down
    (nothing listening: connections refused) and come up later on the same port."""

    name: str  # the channel's name in the config
    scheme: str  # json, mmost, ntfy
    path: str  # the URL's path after host:port, e.g. "hook" or a Mattermost key
    status: int = 200
    port: int = field(default_factory=free_port)
    received: list[dict[str, Any]] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{self.path}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.text()
        self.received.append({"path": request.path, "body": json.loads(raw) if raw else None})
        return web.json_response({"ok": self.status < 300}, status=self.status)

    def texts(self) -> list[str]:
        """What each message said, whatever the service's field for it."""
        out = []
        for item in self.received:
            body = item["body"] or {}
            out.append(" ".join(str(body.get(k, "")) for k in ("title", "message", "text")))
        return out


def three_receivers() -> list[Receiver]:
    return [
        Receiver(name="hooks", scheme="json", path="hook"),
        Receiver(name="chat", scheme="mmost", path="k3y0fmattermost"),
        Receiver(name="phones", scheme="ntfy", path="oncall-topic"),
    ]


def channels_yaml(receivers: list[Receiver], *, max_attempts: int = 50) -> str:
    lines = ["channels:"]
    for receiver in receivers:
        lines.append(
            f'  {receiver.name}: {{url: "${{CHANNEL_{receiver.name.upper()}}}", timeout: 2s, '
            f"max_attempts: {max_attempts}}}"
        )
    return "\n".join(lines) + "\n"


def channel_environ(receivers: list[Receiver]) -> dict[str, str]:
    """The URLs as the environment holds them: the config only names them."""
    return {f"CHANNEL_{r.name.upper()}": r.url for r in receivers}


def shop_yaml(*, site_url: str, database: str, outbox: Path, extra: str = "") -> str:
    return (
        head_yaml(database=database, sla_tick="100ms")
        + notifications_yaml(outbox=outbox, retry_max="300ms")
        + "api: {token: reader}\n"
        + acme_shop_yaml(url=site_url, business_hours=False)
        + extra
    )

"""The operator commands of the CLI: they talk to the running monitor's HTTP API, so every
change goes through the process that owns the incidents (and its per-site ordering)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

import aiohttp

from incidents.severity import Severity
from incidents.sla import preview
from monitor.clients import client_contexts
from monitor.config.models import MonitorConfig
from monitor.incident_list import format_table
from monitor.serialize import iso

TOKEN_ENV = "MONITOR_API_TOKEN"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def api_url(config: MonitorConfig) -> str:
    host = config.server.host
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{config.server.port}"


async def call(
    base: str, method: str, path: str, *, token: str | None = None, body: Any = None
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
        session.request(method, f"{base}{path}", json=body, headers=headers) as response,
    ):
        text = await response.text()
        try:
            payload = json.loads(text)
        except ValueError:
            raise ApiError(response.status, text[:200] or "(empty answer)") from None
        if response.status >= 400:
            message = payload.get("error") if isinstance(payload, dict) else str(payload)
            raise ApiError(response.status, str(message))
        return payload


def token_from(given: str | None) -> str | None:
    return given or os.environ.get(TOKEN_ENV) or None


def queue_table(queue: list[dict[str, Any]]) -> str:
    if not queue:
        return "the queue is empty: every open incident has a response"
    rows: list[tuple[str, ...]] = [
        ("ID", "SEV", "OPENED (UTC)", "RESPONSE DUE (UTC)", "SITE", "TITLE")
    ]
    for item in queue:
        rows.append(
            (
                item["ref"],
                str(item["severity"]),
                item["opened_at"] or "",
                item["clocks"]["response_due_at"] or "-",
                item["site"],
                item["title"],
            )
        )
    return format_table(rows)


def maintenance_table(windows: list[dict[str, Any]]) -> str:
    """`monitor maintenance list`: windows in force or to come, one-off and recurring."""
    if not windows:
        return "no maintenance window is in force or to come"
    rows: list[tuple[str, ...]] = [("ID", "SITE", "STARTS (UTC)", "ENDS (UTC)", "BY", "REASON")]
    for item in windows:
        rows.append(
            (
                str(item["id"]) if item.get("id") is not None else "-",
                item["site"],
                item["starts_at"],
                item["ends_at"],
                item.get("created_by") or "",
                item.get("reason") or "",
            )
        )
    return format_table(rows)


def sla_answer(config: MonitorConfig, *, client: str, severity: int, at: str) -> str:
    """`monitor sla`: the clocks of an incident opened at `at`, as one JSON object."""
    contexts = client_contexts(config)
    if client not in contexts:
        raise ValueError(
            f"no client {client!r} in the configuration ({', '.join(sorted(contexts))})"
        )
    try:
        level = Severity(severity)
    except ValueError as exc:
        raise ValueError("--severity must be 1, 2, 3 or 4") from exc
    opened = datetime.fromisoformat(at.replace("Z", "+00:00"))
    if opened.utcoffset() is None:
        raise ValueError("--at needs a time zone, e.g. 2026-11-27T16:00:00Z or +01:00")
    return json.dumps(preview(opened_at=opened, severity=level, ctx=contexts[client].sla))


__all__ = [
    "ApiError",
    "api_url",
    "call",
    "iso",
    "maintenance_table",
    "queue_table",
    "sla_answer",
    "token_from",
]

"""The operator commands of the CLI: they talk to the running monitor's HTTP API, so every
change goes through the process that owns the incidents (and its per-site ordering)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from incidents.message_text import zone
from incidents.severity import Severity
from incidents.sla import preview
from monitor.clients import client_contexts
from monitor.config import ConfigError, load_sections
from monitor.config.models import MonitorConfig, OperatorSections, ServerConfig
from monitor.incident_list import format_table
from monitor.operator_text import Zones
from monitor.serialize import iso

TOKEN_ENV = "MONITOR_API_TOKEN"
URL_ENV = "MONITOR_URL"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        if status == 401:
            message += f"; give --token or set {TOKEN_ENV} to the monitor's api.token"
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass(frozen=True, slots=True)
class OperatorContext:
    """Where the monitor is, how to call it, and which zones to show times in."""

    url: str
    token: str | None
    zones: Zones

    @classmethod
    def from_args(
        cls,
        *,
        config: str | None,
        default_config: str,
        url: str | None,
        token: str | None,
        tz: str | None,
        environ: Mapping[str, str],
    ) -> OperatorContext:
        """`url`: --url, else $MONITOR_URL, else the config's server block. Only the config's
        server, agency and client time zones are read, so the environment variables of its
        secrets need not be set. --config given: it must be valid; the default file is read
        only where it exists, and only if it is needed for the URL must it be valid.
        ConfigError for a bad file, ValueError for a bad --tz."""
        url = url or environ.get(URL_ENV) or None
        sections = _sections(config or default_config, needed=url is None, given=bool(config))
        if url is None:
            url = api_url(sections.server)
        return cls(
            url=url.rstrip("/"),
            token=token or environ.get(TOKEN_ENV) or None,
            zones=Zones(
                operator=operator_zone(tz, environ=environ, agency=sections.agency.timezone),
                clients={
                    client.id: ZoneInfo(client.business_hours.timezone)
                    for client in sections.clients
                },
            ),
        )


def _sections(path: str, *, needed: bool, given: bool) -> OperatorSections:
    if given:
        return load_sections(path, OperatorSections)
    if not Path(path).is_file():
        return OperatorSections()
    try:
        return load_sections(path, OperatorSections)
    except ConfigError:
        if needed:
            raise
        return OperatorSections()  # the URL is known: a broken default file is not ours


def operator_zone(given: str | None, *, environ: Mapping[str, str], agency: str) -> ZoneInfo:
    """--tz, else $TZ where it names an IANA zone, else the agency's zone."""
    if given:
        return zone(given, owner="--tz")
    # TZ may be ":Europe/Berlin" or a POSIX rule such as "CET-1CEST"; only a zone name counts.
    name = environ.get("TZ", "").removeprefix(":")
    if name:
        try:
            return zone(name, owner="TZ")
        except ValueError:
            pass
    return zone(agency, owner="agency.timezone")


def api_url(server: ServerConfig) -> str:
    host = server.host
    if host in ("0.0.0.0", "::"):  # listening everywhere: loopback reaches it
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{server.port}"


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
    "OperatorContext",
    "api_url",
    "call",
    "iso",
    "maintenance_table",
    "operator_zone",
    "sla_answer",
]

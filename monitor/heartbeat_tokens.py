"""Which ping token belongs to which heartbeat check, and the URLs operators hand to jobs.

A check's token is its own `token` (from ${ENV}), else `checks.heartbeat.derived_token` of
its key under `heartbeat.secret`. Tokens are secrets: they are printed only by
`monitor heartbeat-urls`, for the operator who sets up the job.
"""

from __future__ import annotations

from dataclasses import dataclass

from checks.heartbeat import HeartbeatCheckSpec, derived_token
from monitor.config.models import MonitorConfig, configured_checks


@dataclass(frozen=True, slots=True)
class PingUrl:
    check_key: str
    url: str  # absolute under server.public_url, else the path alone (/ping/<token>)


def ping_tokens(config: MonitorConfig) -> dict[str, str]:
    """token -> check key, for every heartbeat check that has a token."""
    secret = config.heartbeat.secret
    tokens: dict[str, str] = {}
    for check in configured_checks(config):
        spec = check.spec
        if not isinstance(spec, HeartbeatCheckSpec):
            continue
        if spec.token is not None:
            tokens[spec.token.get_secret_value()] = check.key
        elif secret is not None:
            tokens[derived_token(secret.get_secret_value(), check.key)] = check.key
    return tokens


def ping_urls(config: MonitorConfig) -> list[PingUrl]:
    """Each heartbeat check's ping URL, in the order of the file."""
    base = config.server.public_url or ""
    by_key = {key: token for token, key in ping_tokens(config).items()}
    return [
        PingUrl(check_key=check.key, url=f"{base}/ping/{by_key[check.key]}")
        for check in configured_checks(config)
        if check.key in by_key
    ]

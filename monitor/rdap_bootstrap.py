"""The RDAP bootstrap the `domain` checks use: the refreshed file or the shipped one, with the
config's per-TLD servers over it; and `monitor rdap-bootstrap --update`, which refreshes it.

Probes never download the bootstrap: a monitor starts on what is on disk, and an operator (or
a cron job) refreshes it when IANA adds a registry, which is rare.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import aiohttp

from checks.rdap import MAX_BOOTSTRAP_BYTES, RdapDirectory, load_bootstrap, parse_bootstrap
from monitor.config.models import RdapConfig


def rdap_directory(config: RdapConfig) -> RdapDirectory:
    """The servers `domain` checks ask: the bootstrap on disk (or shipped), then overrides."""
    return RdapDirectory.with_overrides(load_bootstrap(Path(config.bootstrap_file)), config.servers)


async def update_bootstrap(
    config: RdapConfig, *, session: aiohttp.ClientSession, timeout: float = 30.0
) -> int:
    """Download `config.bootstrap_url` into `config.bootstrap_file` (replaced atomically, only
    once it parses); the number of suffixes it lists. Raises BootstrapError, aiohttp's errors
    or TimeoutError."""
    async with session.get(
        config.bootstrap_url, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as response:
        response.raise_for_status()
        body = await response.content.read(MAX_BOOTSTRAP_BYTES + 1)
    source = config.bootstrap_url
    try:
        servers = parse_bootstrap(json.loads(body[:MAX_BOOTSTRAP_BYTES]), source=source)
    except ValueError as exc:
        raise ValueError(f"{source}: not an RDAP bootstrap ({exc})") from None
    target = Path(config.bootstrap_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as out:
        out.write(body)
    os.replace(temporary, target)
    return len(servers)

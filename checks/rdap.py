"""RDAP (RFC 9083, 9224): which registry server answers for a domain, and what it says about
the domain's registration expiry.

Which server: IANA publishes a bootstrap file (`dns.json`) mapping top-level domains to their
registries' RDAP base URLs. A starting set ships in `checks/data/rdap-dns.json`, so a probe
never downloads anything; `monitor rdap-bootstrap --update` fetches IANA's current file into
`rdap.bootstrap_file`, and `rdap.servers: {tld: url}` overrides single entries (tests point
them at a loopback server).

Which domain: a site's host `www.shop.acme.co.uk` is registered as `acme.co.uk`; the Public
Suffix List (ICANN section, bundled in the `publicsuffixlist` package) tells where the
registrable part begins, without a download at run time.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from publicsuffixlist import PublicSuffixList

BOOTSTRAP_URL = "https://data.iana.org/rdap/dns.json"
SHIPPED_BOOTSTRAP = Path(__file__).resolve().parent / "data" / "rdap-dns.json"
MAX_BOOTSTRAP_BYTES = 2 * 1024 * 1024  # IANA's file is about 30 KB


class BootstrapError(ValueError):
    """A bootstrap file that is not RFC 9224's format; the message says where."""


def parse_bootstrap(data: Any, *, source: str) -> dict[str, str]:
    """A bootstrap document (parsed JSON) as {tld: base URL}, https preferred, each base URL
    ending in `/`. Raises BootstrapError naming `source` when the shape is wrong."""
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, list):
        raise BootstrapError(f"{source}: not an RDAP bootstrap file (no 'services' list)")
    servers: dict[str, str] = {}
    for index, service in enumerate(services):
        if (
            not isinstance(service, list)
            or len(service) != 2
            or not all(isinstance(part, list) for part in service)
        ):
            raise BootstrapError(f"{source}: services[{index}] is not [[tlds...], [urls...]]")
        tlds, urls = service
        https = [url for url in urls if isinstance(url, str) and url.startswith("https://")]
        chosen = https or [url for url in urls if isinstance(url, str)]
        if not chosen:
            continue
        base = chosen[0] if chosen[0].endswith("/") else chosen[0] + "/"
        for tld in tlds:
            if isinstance(tld, str) and tld:
                servers[tld.lower().strip(".")] = base
    if not servers:
        raise BootstrapError(f"{source}: lists no RDAP server")
    return servers


def load_bootstrap(path: Path | None = None) -> dict[str, str]:
    """The bootstrap at `path` when that file exists, else the one shipped in the package."""
    chosen = path if path is not None and path.is_file() else SHIPPED_BOOTSTRAP
    try:
        data = json.loads(chosen.read_bytes()[:MAX_BOOTSTRAP_BYTES])
    except (OSError, ValueError) as exc:
        raise BootstrapError(f"{chosen}: cannot be read as JSON ({exc})") from None
    return parse_bootstrap(data, source=str(chosen))


@dataclass(frozen=True, slots=True)
class RdapDirectory:
    """Which RDAP base URL answers for which top-level (or longer) suffix."""

    servers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def with_overrides(
        cls, bootstrap: Mapping[str, str], overrides: Mapping[str, str]
    ) -> RdapDirectory:
        merged = dict(bootstrap)
        for suffix, url in overrides.items():
            merged[suffix.lower().strip(".")] = url if url.endswith("/") else url + "/"
        return cls(servers=merged)

    def base_for(self, domain: str) -> str | None:
        """The base URL of the longest suffix of `domain` that has a server, if any."""
        labels = domain.lower().strip(".").split(".")
        for start in range(len(labels)):
            base = self.servers.get(".".join(labels[start:]))
            if base is not None:
                return base
        return None


def domain_url(base: str, domain: str) -> str:
    """RFC 9082's lookup path for `domain` (as an A-label) under `base`."""
    try:
        name = domain.encode("idna").decode("ascii")
    except UnicodeError:
        name = domain
    return f"{base.rstrip('/')}/domain/{name}"


def expiration(data: Any) -> datetime | None:
    """The `expiration` event of an RDAP domain answer, in UTC; None if it has none."""
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list):
        return None
    for event in events:
        if not isinstance(event, dict) or event.get("eventAction") != "expiration":
            continue
        text = event.get("eventDate")
        if not isinstance(text, str):
            continue
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            continue
        return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return None


@functools.cache
def _suffixes() -> PublicSuffixList:
    # The ICANN section only: a site on `acme.github.io` renews `github.io`'s registration,
    # not one of its own. Parsing the bundled list takes ~0.2 s: once per process.
    return PublicSuffixList(only_icann=True)


def registrable_domain(host: str) -> str | None:
    """`www.shop.acme.co.uk` -> `acme.co.uk`; None for an IP address, `localhost` or a
    bare public suffix."""
    name = host.lower().strip(".")
    if not name or name.replace(".", "").isdigit() or ":" in name:
        return None
    found: str | None = _suffixes().privatesuffix(name)
    return found

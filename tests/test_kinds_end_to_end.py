"""The dns, tcp and domain kinds inside a running monitor (SQLite in tmp_path): each opens its
incident at its default severity, and the domain's expiry reaches /metrics. Also how a site's
config fills in what these checks leave out."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from checks.result import Outcome
from incidents.outgoing import Audience, OutgoingEmail
from incidents.severity import Severity
from monitor.app import running_monitor
from monitor.config import configured_checks, load_config_text
from tests.dns_server import dns_server
from tests.helpers import eventually


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _rdap_server(expires: datetime) -> TestServer:
    async def domain(request: web.Request) -> web.Response:
        when = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
        return web.json_response(
            {
                "ldhName": request.match_info["name"],
                "events": [{"eventAction": "expiration", "eventDate": when}],
            }
        )

    app = web.Application()
    app.router.add_get("/domain/{name}", domain)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_each_kind_opens_its_incident_and_the_domain_expiry_is_exported(
    tmp_path: Path, database_url: str, scan_client_mails: list[OutgoingEmail]
) -> None:
    rdap = await _rdap_server(datetime.now(UTC) - timedelta(days=2))
    try:
        async with dns_server({("www.acme.example", "A"): ["198.51.100.7"]}) as dns:
            config = load_config_text(
                f"""
database:
  url: {database_url}
server:
  port: 0
notifications:
  outbox_dir: {tmp_path / "outbox"}
rdap:
  servers:
    example: {rdap.make_url("/")}
defaults:
  interval: 200ms
  timeout: 1s
  failures_to_open: 1
clients:
  - id: acme
    contacts: [it@acme.example]
    language: de
    sites:
      - id: names
        url: https://shop.acme.example/
        checks:
          - id: www
            kind: dns
            name: www.acme.example
            resolvers: ["{dns.address}"]
            expect: {{equals: [203.0.113.10]}}
      - id: mail
        url: https://mail.acme.example/
        checks:
          - id: smtp
            kind: tcp
            host: 127.0.0.1
            port: {_closed_port()}
      - id: registration
        url: https://www.acme.example/
        checks:
          - id: domain
            kind: domain
            interval: 200ms
"""
            )
            async with running_monitor(config) as running:
                incidents = await eventually(
                    lambda: _all_three(running.store.list_incidents(open_only=True)), timeout=20
                )
                client_mails = await eventually(
                    lambda: _client_mails(scan_client_mails, count=3), timeout=20
                )
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"{running.url}/metrics") as response,
                ):
                    exposition = (await response.read()).decode()
    finally:
        await rdap.close()
    by_site = {incident.site: incident for incident in incidents}
    assert by_site["acme/names"].severity is Severity.MAJOR  # not the site's own name
    assert by_site["acme/mail"].severity is Severity.CRITICAL
    assert by_site["acme/registration"].severity is Severity.CRITICAL
    titles = {site: incident.title for site, incident in by_site.items()}
    assert titles["acme/names"] == "shop.acme.example: www.acme.example has unexpected DNS records"
    # The site's only check is its availability: a closed port is the site down.
    assert titles["acme/mail"] == "mail.acme.example is down"
    assert (
        titles["acme/registration"] == "www.acme.example: Domain has an expired domain registration"
    )
    assert (
        'probe_domain_expiry_timestamp_seconds{client="acme",site="registration",check="domain"}'
        in exposition
    )
    assert 'outcome="dns_mismatch"' in exposition
    # The client reads plain German; no probe notation (dns://, tcp://) as a "page".
    texts = "\n".join(mail.text for mail in client_mails)
    assert "Die Registrierung des Domainnamens ist abgelaufen." in texts
    assert "Die Adresseinträge (DNS) der Website sind nicht die erwarteten." in texts
    assert "://" not in texts.replace("https://", "")


def _client_mails(built: list[OutgoingEmail], *, count: int) -> list[OutgoingEmail] | None:
    mails = [mail for mail in built if mail.audience is Audience.CLIENT]
    return mails if len(mails) >= count else None


async def _all_three(pending: object) -> list[object] | None:
    incidents = await pending  # type: ignore[misc]
    return incidents if len({i.site for i in incidents}) == 3 else None


def test_checks_take_their_target_from_the_site() -> None:
    config = load_config_text(
        """
defaults:
  interval: 30s
  slow_after: 5s
clients:
  - id: acme
    sites:
      - id: shop
        url: https://www.shop.acme.co.uk/
        checks:
          - {id: a, kind: dns}
          - {id: mx, kind: dns, name: acme.co.uk, record_type: MX, max_answer_time: 300ms}
          - {id: smtp, kind: tcp, port: 25}
          - {id: domain, kind: domain}
"""
    )
    checks = {check.check_id: check for check in configured_checks(config)}
    own, mx = checks["a"].spec, checks["mx"].spec
    assert (own.name, own.severity, own.slow_after) == (
        "www.shop.acme.co.uk",
        None,
        timedelta(seconds=5),
    )
    assert (mx.name, mx.severity, mx.slow_after) == ("acme.co.uk", 2, timedelta(milliseconds=300))
    assert checks["smtp"].spec.host == "www.shop.acme.co.uk"  # type: ignore[union-attr]
    assert checks["smtp"].host == "www.shop.acme.co.uk:25"
    domain = checks["domain"]
    assert domain.spec.domain == "acme.co.uk"  # type: ignore[union-attr]
    # Daily, whatever `defaults:` says: registries limit their RDAP servers' rate.
    assert domain.spec.interval == timedelta(days=1)
    assert checks["a"].spec.interval == timedelta(seconds=30)
    assert Outcome.DNS_ERROR.is_failure

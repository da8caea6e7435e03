"""The YAML pieces the end-to-end tests build a monitor's config from: the fast timings (checks
every 100ms, two failures open, two successes resolve), the notifications block with its short
retries, and the one client `acme` with its site `shop`. Each test adds the parts it is about
(escalation, channels, api, browser) between them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CONTACT = "ops@acme.example"
ONCALL = "oncall@agency.example"

HOME_CHECK = """          - id: home
            url: /
"""
CHECKOUT_CHECK = """          - id: checkout
            name: Checkout
            url: /checkout
"""
# A client to watch, for the tests of other parts of a config: every config needs one.
ONE_CLIENT = """\
clients:
  - id: acme
    sites:
      - id: shop
        url: https://shop.acme.example
        checks: [{id: home, url: /}]
"""


def head_yaml(
    *, database: str | Path, port: int = 0, interval: str = "100ms", sla_tick: str | None = None
) -> str:
    """database, server, scheduler (when `sla_tick` is given) and defaults."""
    scheduler = f"scheduler: {{sla_tick: {sla_tick}}}\n" if sla_tick is not None else ""
    return (
        f'database: {{url: "{database}"}}\n'
        f"server: {{port: {port}}}\n"
        f"{scheduler}"
        f"defaults: {{interval: {interval}, timeout: 2s, failures_to_open: 2, "
        "successes_to_resolve: 2}\n"
    )


def head_document(*, database: str, sla_tick: str = "100ms") -> dict[str, Any]:
    """`head_yaml` as a document, for the tests that build theirs as a dict."""
    return {
        "database": {"url": database},
        "server": {"port": 0},
        "scheduler": {"sla_tick": sla_tick},
        "defaults": {
            "interval": "100ms",
            "timeout": "2s",
            "failures_to_open": 2,
            "successes_to_resolve": 2,
        },
    }


def notifications_yaml(
    *,
    smtp_port: int | None = None,
    outbox: str | Path | None = None,
    retry_max: str = "500ms",
    oncall: str = ONCALL,
) -> str:
    """The mail side: the agency's sender, the loopback SMTP server and the outbox folder
    when given, retries within a second, and the on-call address."""
    smtp = (
        f"  smtp: {{host: 127.0.0.1, port: {smtp_port}, security: none, timeout: 2s}}\n"
        if smtp_port is not None
        else ""
    )
    outbox_dir = f"  outbox_dir: {outbox}\n" if outbox is not None else ""
    return (
        "notifications:\n"
        '  sender: "Agency Support <support@agency.example>"\n'
        f"{smtp}{outbox_dir}"
        "  retry_initial: 100ms\n"
        f"  retry_max: {retry_max}\n"
        "  poll_interval: 100ms\n"
        "oncall:\n"
        f"  emails: [{oncall}]\n"
    )


def acme_shop_yaml(
    *,
    url: str,
    checks: str = HOME_CHECK,
    contact: str | None = CONTACT,
    name: str | None = "Acme Ltd",
    site_name: str | None = "shop.acme.example",
    business_hours: bool = True,
) -> str:
    """`clients:` with acme and its site shop at `url`, running `checks` (YAML indented for
    the site's check list); None leaves a line out."""
    label = f"    name: {name}\n" if name is not None else ""
    hours = "    business_hours: {timezone: Europe/London}\n" if business_hours else ""
    contacts = f"    contacts: [{contact}]\n" if contact is not None else ""
    site_label = f"        name: {site_name}\n" if site_name is not None else ""
    return (
        "clients:\n"
        "  - id: acme\n"
        f"{label}"
        f"{contacts}"
        f"{hours}"
        "    sites:\n"
        "      - id: shop\n"
        f"{site_label}"
        f"        url: {url}\n"
        "        checks:\n"
        f"{checks}"
    )


def shop_monitor_yaml(
    *,
    database: str | Path,
    url: str,
    checks: str = HOME_CHECK,
    smtp_port: int | None = None,
    outbox: str | Path | None = None,
    port: int = 0,
) -> str:
    """The usual whole config: the head, the notifications and acme's shop, all as above."""
    return (
        head_yaml(database=database, port=port)
        + notifications_yaml(smtp_port=smtp_port, outbox=outbox)
        + acme_shop_yaml(url=url, checks=checks)
    )

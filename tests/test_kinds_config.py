"""Bad dns, tcp and domain checks in the YAML: each problem named with its file, line, path
and a fix, all at once; the JSON Schema rejects the same files and accepts the good ones."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from monitor.config import ConfigError, configured_checks, json_schema, load_config_text

SITE = """
clients:
  - id: acme
    sites:
      - id: shop
        url: {url}
        checks:
"""
CHECK = "clients[0].sites[0].checks"


def problems(checks: str, *, url: str = "https://shop.acme.example/", head: str = "") -> list:  # type: ignore[type-arg]
    text = head + SITE.format(url=url) + checks
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, filename="monitor.yaml", environ={})
    return [(p.file, p.line, p.path, p.message) for p in caught.value.problems]


def test_a_bad_dns_check_names_each_field_with_its_line() -> None:
    found = problems(
        """\
          - id: mx
            kind: dns
            record_type: SRV
            resolvers: [9.9.9.9, dns.quad9.net]
            expect: {matches: "v=spf1 ("}
"""
    )
    assert [(line, path) for _, line, path, _ in found] == [
        (10, f"{CHECK}[0].record_type"),
        (11, f"{CHECK}[0].resolvers"),
        (12, f"{CHECK}[0].expect.matches"),
    ]
    assert all(file == "monitor.yaml" for file, *_ in found)
    messages = [message for *_, message in found]
    assert "'A', 'AAAA', 'CNAME', 'MX', 'TXT', 'NS' or 'CAA'" in messages[0]
    assert (
        "[1] must be a resolver's IP address with an optional port, such as 9.9.9.9"
        in (messages[1])
    )
    assert "must be a regular expression" in messages[2]


def test_a_bad_tcp_check_names_each_field_with_its_line() -> None:
    found = problems(
        """\
          - id: smtp
            kind: tcp
            port: 70000
          - id: redis
            kind: tcp
            port: 6379
            expect: "+PONG"
          - id: imap
            kind: tcp
"""
    )
    assert [(line, path) for _, line, path, _ in found] == [
        (10, f"{CHECK}[0].port"),
        (14, f"{CHECK}[1].expect"),
        (15, f"{CHECK}[2].port"),
    ]
    assert "must be less than or equal to 65535 (got 70000)" in found[0][3]
    assert "must be a regular expression" in found[1][3]
    assert "missing required key 'port'" in found[2][3]


def test_a_bad_domain_check_names_its_windows_and_an_underivable_domain() -> None:
    windows = problems(
        """\
          - id: domain
            kind: domain
            warn_within: 7d
            urgent_within: 30d
"""
    )
    assert [(line, path) for _, line, path, _ in windows] == [(8, f"{CHECK}[0]")]
    assert "urgent_within must not be longer than warn_within" in windows[0][3]

    [(_, line, path, message)] = problems(
        "          - {id: domain, kind: domain}\n", url="http://127.0.0.1:8080/"
    )
    assert (line, path) == (5, "clients[0].sites[0]")
    assert message.endswith(
        "checks[0].domain: the site's host 127.0.0.1 has no registered domain to derive; "
        "write domain: acme.example"
    )


def test_a_dns_check_of_a_site_on_an_ip_address_needs_a_name() -> None:
    [(_, line, path, message)] = problems(
        "          - {id: a, kind: dns}\n", url="http://[2001:db8::5]:8080/"
    )
    assert (line, path) == (5, "clients[0].sites[0]")
    assert message.endswith(
        "checks[0].name: the site's host 2001:db8::5 is an address, not a name to look up; "
        "write name: shop.acme.example"
    )


def test_an_unknown_kind_lists_the_new_ones() -> None:
    [(_, line, path, message)] = problems("          - {id: ping, kind: icmp}\n")
    assert (line, path) == (8, f"{CHECK}[0]")
    assert "kind must be one of http, page, flow, dns, tcp, domain" in message


def test_bad_rdap_servers_are_named() -> None:
    [(_, line, path, message)] = problems(
        "          - {id: domain, kind: domain}\n",
        head="rdap:\n  servers:\n    de: rdap.denic.de\n",
    )
    assert (line, path) == (2, "rdap.servers")
    assert "de: must be an absolute http(s) URL" in message


GOOD = """
rdap:
  servers: {example: "http://127.0.0.1:8081/"}
clients:
  - id: acme
    sites:
      - id: shop
        url: https://shop.acme.example/
        checks:
          - {id: a, kind: dns, expect: {contains: [203.0.113.10]}, max_answer_time: 500ms}
          - {id: mx, kind: dns, name: acme.example, record_type: MX, resolvers: ["[::1]:5353"]}
          - {id: smtp, kind: tcp, host: mail.acme.example, port: 25, expect: "^220 "}
          - {id: imaps, kind: tcp, port: 993, tls: true, send: "a1 LOGOUT", expect: "BYE"}
          - {id: domain, kind: domain, warn_within: 45d}
"""


def test_the_schema_accepts_good_checks_and_rejects_bad_ones() -> None:
    schema = json_schema()
    load_config_text(GOOD, environ={})
    jsonschema.validate(yaml.safe_load(GOOD), schema)
    for bad in (
        GOOD.replace("record_type: MX", "record_type: SRV"),
        GOOD.replace("port: 25", "port: 70000"),
        GOOD.replace("warn_within: 45d", "warn_within: 45 days"),
        GOOD.replace("kind: tcp, host", "kind: tcp, hots"),
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(yaml.safe_load(bad), schema)


def test_the_shipped_configs_commented_examples_validate_once_uncommented() -> None:
    shipped = (Path(__file__).resolve().parent.parent / "config" / "monitor.yaml").read_text()
    block = shipped[shipped.index("# More check kinds") :].splitlines()
    example = re.compile(r"^( {10})# ((?:- id: |  \S).*)$")
    uncommented = [m.group(1) + m.group(2) for line in block if (m := example.match(line))]
    assert len(uncommented) >= 12
    config = load_config_text(
        shipped.replace("          # More check kinds", "\n".join(uncommented) + "\n          #"),
        environ={},
    )
    kinds = {check.id: check.kind for site in config.clients[-1].sites for check in site.checks}
    assert (kinds["mx"], kinds["smtp"], kinds["domain"]) == ("dns", "tcp", "domain")


def test_the_readme_example_loads_and_derives_its_targets() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Check kinds: dns, domain, tcp") :]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match is not None
    checks = {c.check_id: c for c in configured_checks(load_config_text(match[1], environ={}))}
    assert {key: check.host for key, check in checks.items()} == {
        "a-record": "www.acme.example",
        "mx": "acme.example",
        "spf": "acme.example",
        "smtp": "mail.acme.example:25",
        "redis": "10.0.0.12:6379",
        "imaps": "www.acme.example:993",
        "domain": "acme.example",
    }

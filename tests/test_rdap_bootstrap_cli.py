"""`monitor rdap-bootstrap`: lists the servers domain checks ask, and `--update` refreshes the
bootstrap from a (loopback) IANA stand-in, replacing the file only with a valid one."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.config import load_config
from monitor.rdap_bootstrap import rdap_directory
from tests.helpers import run_monitor_cli

AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]
BOOTSTRAP = {"version": "1.0", "services": [[["example", "test"], ["https://rdap.test/v1/"]]]}


async def test_update_writes_a_valid_bootstrap_and_keeps_the_old_one_otherwise(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    answers = {"body": json.dumps(BOOTSTRAP)}

    async def dns_json(request: web.Request) -> web.Response:
        return web.Response(text=answers["body"], content_type="application/json")

    app = web.Application()
    app.router.add_get("/rdap/dns.json", dns_json)
    server = await aiohttp_server(app)
    target = tmp_path / "rdap" / "dns.json"
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"""
rdap:
  bootstrap_url: {server.make_url("/rdap/dns.json")}
  bootstrap_file: {target}
  servers: {{acme: "https://rdap.acme.test/"}}
clients:
  - id: acme
    sites:
      - id: shop
        url: https://shop.acme.example/
        checks:
          - {{id: domain, kind: domain}}
"""
    )
    code, out, _ = await run_monitor_cli("rdap-bootstrap", "--config", str(config))
    assert code == 0
    assert "(shipped bootstrap, 1 from rdap.servers)" in out.splitlines()[0]
    assert "  com: https://rdap.verisign.com/com/v1/" in out

    code, out, err = await run_monitor_cli("rdap-bootstrap", "--config", str(config), "--update")
    assert code == 0, err
    assert out.strip() == f"{target}: 2 suffixes from {server.make_url('/rdap/dns.json')}"
    directory = rdap_directory(load_config(config).rdap)
    assert directory.servers == {
        "example": "https://rdap.test/v1/",
        "test": "https://rdap.test/v1/",
        "acme": "https://rdap.acme.test/",
    }

    answers["body"] = "<html>maintenance</html>"
    code, _, err = await run_monitor_cli("rdap-bootstrap", "--config", str(config), "--update")
    assert code == 1
    assert f"({target} unchanged)" in err
    assert json.loads(target.read_text()) == BOOTSTRAP

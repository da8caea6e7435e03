"""Status pages over HTTP against a running monitor: the HTML page, summary.json, the Atom feed
(read by feedparser), incident pages with post-mortems, private keys, client domains, and the
snapshot that is rebuilt on change rather than per request."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import feedparser
import pytest

from incidents.markdown_html import render
from monitor.config import ConfigError, load_config_text
from tests.status_helpers import (
    BLOG,
    INTERNAL_NOTE,
    OPERATOR,
    PUBLIC_UPDATE,
    SHOP,
    STATUS_KEY,
    TOKEN,
    api_post,
    status_scene,
)

# What must never reach a client: ids, outcome codes, check URLs, operator names, notes.
INTERNAL = ("acme/shop", "shop/home", "http_5xx", "127.0.0.1", OPERATOR, INTERNAL_NOTE, "db01")


async def get(url: str, **headers: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, response.content_type, await response.text()


def assert_nothing_internal(text: str) -> None:
    for secret in INTERNAL:
        assert secret not in text, f"{secret!r} leaked onto the status page"


async def test_page_shows_banner_sites_incident_and_public_update_only(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    async with status_scene(tmp_path, aiohttp_server) as scene:
        status, content_type, html = await get(scene.page_url)
        assert (status, content_type) == (200, "text/html")
        assert "Major outage" in html
        assert SHOP in html and BLOG in html
        assert f"{SHOP} is down" in html  # the title the client's mails use
        assert PUBLIC_UPDATE in html and "Identified" in html
        assert len(re.findall(r'<li class="bar bar-', html)) == 2 * 90
        # Today's bars and uptime come from the rollups: the shop is down, the blog is not.
        shop_html, blog_html = html.split(f">{BLOG}</h3>")
        today = re.findall(r'<li class="bar bar-(\w+)" title="([^"]*)"', shop_html)[-1]
        assert today[0] == "down" and today[1].endswith(", incidents: 1")
        # (The blog's probes reach the rollups as they are flushed: ok or not yet counted.)
        assert re.findall(r'<li class="bar bar-(\w+)"', blog_html)[-1] in ("ok", "none")
        shop_today = re.search(r"<dt>Uptime 24 hours</dt><dd>([^<]*)</dd>", shop_html)
        assert shop_today is not None and shop_today[1] not in ("100.00 %", "-")
        assert_nothing_internal(html)

        status, content_type, page = await get(f"{scene.page_url}/incidents/{scene.incident.id}")
        assert status == 200 and PUBLIC_UPDATE in page
        assert_nothing_internal(page)


async def test_summary_json_is_shaped_like_statuspage(
    tmp_path: Path, aiohttp_server: Any, database_url: str
) -> None:
    async with status_scene(tmp_path, aiohttp_server, database_url=database_url) as scene:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{scene.page_url}/summary.json") as response:
                assert response.status == 200
                summary = await response.json()
        assert set(summary) == {
            "page",
            "components",
            "incidents",
            "scheduled_maintenances",
            "status",
        }
        assert summary["status"] == {"indicator": "critical", "description": "Major outage"}
        assert [(c["name"], c["status"]) for c in summary["components"]] == [
            (SHOP, "major_outage"),
            (BLOG, "operational"),
        ]
        # The shop is down now: less than all of the last 24 hours (rolling) were up.
        shop_uptime = summary["components"][0]["uptime"]
        assert set(shop_uptime) == {"24h", "7d", "30d", "90d"}
        assert shop_uptime["24h"] is not None and shop_uptime["24h"] < 1.0
        (incident,) = summary["incidents"]
        assert incident["status"] == "identified"
        assert [u["body"] for u in incident["incident_updates"]] == [PUBLIC_UPDATE]
        assert_nothing_internal(str(summary))


async def test_named_checks_are_components_with_their_own_state(
    tmp_path: Path, aiohttp_server: Any, database_url: str
) -> None:
    async with status_scene(
        tmp_path, aiohttp_server, database_url=database_url, components="checks"
    ) as scene:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{scene.page_url}/summary.json") as response:
                summary = await response.json()
        # As Statuspage groups them: the site a group, its checks with its group_id.
        assert [
            (c["id"], c["name"], c["status"], c["group"], c["group_id"])
            for c in summary["components"]
        ] == [
            ("site-1", SHOP, "major_outage", True, None),
            ("site-1-check-1", "Home page", "major_outage", False, "site-1"),
            ("site-1-check-2", "Shopping cart", "operational", False, "site-1"),
            ("site-2", BLOG, "operational", True, None),
            ("site-2-check-1", "Home", "operational", False, "site-2"),
        ]
        assert summary["components"][0]["components"] == ["site-1-check-1", "site-1-check-2"]
        _, _, html = await get(scene.page_url)
        shop_html = html.split(f">{BLOG}</h3>")[0]
        found = re.findall(
            r'<span class="component-name">([^<]*)</span> '
            r'<span class="component-status status-(\w+)">([^<]*)</span>',
            shop_html,
        )
        assert found == [
            ("Home page", "major_outage", "Major outage"),
            ("Shopping cart", "operational", "Operational"),
        ]
        for text in (html, str(summary)):
            assert_nothing_internal(text)
            assert "/cart" not in text and "cart" not in text.replace("Shopping cart", "")
    # Without `components: checks`, a site is one component and not a group.
    (tmp_path / "plain").mkdir()
    async with status_scene(tmp_path / "plain", aiohttp_server) as scene:
        status, _, body = await get(f"{scene.page_url}/summary.json")
        plain = json.loads(body)["components"]
        assert [(c["id"], c["group"], c["group_id"]) for c in plain] == [
            ("site-1", False, None),
            ("site-2", False, None),
        ]
        assert 'class="components"' not in (await get(scene.page_url))[2]


async def test_atom_feed_parses_and_carries_public_updates(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    async with status_scene(tmp_path, aiohttp_server) as scene:
        status, content_type, body = await get(f"{scene.page_url}/feed.atom")
        assert (status, content_type) == (200, "application/atom+xml")
        feed = feedparser.parse(body)
        assert not feed.bozo, feed.get("bozo_exception")
        assert feed.version == "atom10"
        assert feed.feed.title == "Acme service status"
        assert [entry.summary for entry in feed.entries] == [PUBLIC_UPDATE]
        assert feed.entries[0].title == f"Identified: {SHOP} is down"
        assert_nothing_internal(body)


async def test_private_page_needs_its_key_and_hides_itself_without(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    async with status_scene(tmp_path, aiohttp_server, public=False) as scene:
        for suffix in ("", "?key=wrong", f"?key={STATUS_KEY}x", "?key="):
            status, _, _ = await get(f"{scene.page_url}{suffix}")
            assert status == 404, suffix
        status, _, _ = await get(f"{scene.page_url}/summary.json")
        assert status == 404
        # The operator token is not a status key.
        status, _, _ = await get(f"{scene.page_url}?key=operator-token")
        assert status == 404
        status, _, html = await get(f"{scene.page_url}?key={STATUS_KEY}")
        assert status == 200 and PUBLIC_UPDATE in html
        # Its links carry the key on, so a reader can open the incident page.
        assert f"/status/acme/incidents/{scene.incident.id}?key={STATUS_KEY}" in html
        status, _, _ = await get(f"{scene.page_url}/nope")
        assert status == 404


async def test_client_domain_serves_its_page_at_the_root(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    async with status_scene(tmp_path, aiohttp_server, domain="status.acme.example") as scene:
        status, _, html = await get(f"{scene.running.url}/", Host="status.acme.example")
        assert status == 200 and SHOP in html and PUBLIC_UPDATE in html
        status, _, _ = await get(f"{scene.running.url}/", Host="other.example")
        assert status == 404


async def test_snapshot_is_rebuilt_on_change_not_per_request(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    async with status_scene(tmp_path, aiohttp_server) as scene:
        pages = scene.running.status
        for _ in range(5):
            status, _, _ = await get(scene.page_url)
            assert status == 200
        builds = pages.builds
        for _ in range(20):
            await get(scene.page_url)
        assert pages.builds == builds  # nothing changed: the same snapshot served 20 times
        status, body = await api_post(
            scene.running,
            f"/api/incidents/{scene.incident.id}/updates",
            {"by": OPERATOR, "text": "A fix is out; we are watching.", "stage": "monitoring"},
        )
        assert status == 200, body
        status, _, html = await get(scene.page_url)
        assert "A fix is out; we are watching." in html and "Monitoring" in html
        assert pages.builds == builds + 1


async def test_update_stage_and_public_flag_are_validated(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    async with status_scene(tmp_path, aiohttp_server) as scene:
        path = f"/api/incidents/{scene.incident.id}/updates"
        status, body = await api_post(
            scene.running, path, {"by": OPERATOR, "text": "x", "stage": "resolved"}
        )
        assert status == 400 and "investigating, identified, monitoring" in body["error"]
        status, body = await api_post(
            scene.running, path, {"by": OPERATOR, "text": "x", "public": "no"}
        )
        assert status == 400 and "'public'" in body["error"]


async def test_postmortem_of_a_resolved_incident_is_rendered_safely(
    tmp_path: Path, aiohttp_server: Any, database_url: str
) -> None:
    async with status_scene(tmp_path, aiohttp_server, database_url=database_url) as scene:
        path = f"/api/incidents/{scene.incident.id}/postmortem"
        text = "## What happened\n\nThe **database** filled up.<script>alert(1)</script>"
        status, body = await api_post(scene.running, path, {"by": OPERATOR, "text": text})
        assert status == 409 and "still open" in body["error"]
        status, body = await api_post(
            scene.running,
            f"/api/incidents/{scene.incident.id}/resolve",
            {"by": OPERATOR, "force": True},
        )
        assert status == 200, body
        status, body = await api_post(scene.running, path, {"by": OPERATOR, "text": text})
        assert status == 200, body
        status, _, page = await get(f"{scene.page_url}/incidents/{scene.incident.id}")
        assert status == 200
        assert "<h4>What happened</h4>" in page and "<strong>database</strong>" in page
        assert "<script>" not in page
        status, _, html = await get(scene.page_url)
        assert "Past incidents" in html and "Resolved" in html


def test_markdown_is_sanitised() -> None:
    html = render(
        "[x](javascript:alert(1)) <img src=x onerror=alert(1)> *ok* [docs](https://a.example)"
    )
    assert 'href="javascript' not in html and "<img" not in html and "<em>ok</em>" in html
    assert '<a href="https://a.example" rel="nofollow noopener noreferrer">docs</a>' in html


async def _cli(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_cli_posts_staged_updates_internal_notes_and_postmortems(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    async with status_scene(tmp_path, aiohttp_server) as scene:
        where = ("--url", scene.running.url, "--token", TOKEN)
        number = str(scene.incident.id)
        code, out = await _cli(
            "update", number, "--by", "kim", "--text", "Fix deployed.", "--stage", "monitoring",
            *where,
        )  # fmt: skip
        assert code == 0, out
        code, out = await _cli(
            "update", number, "--by", "kim", "--text", "kim's private aside", "--internal", *where
        )
        assert code == 0, out
        status, _, html = await get(scene.page_url)
        assert "Fix deployed." in html and "Monitoring" in html
        assert "private aside" not in html
        code, out = await _cli("resolve", number, "--by", "kim", "--force", *where)
        assert code == 0, out
        (tmp_path / "pm.md").write_text("# Cause\n\nA *full* disk.\n")
        code, out = await _cli(
            "postmortem", number, "--by", "kim", "--file", str(tmp_path / "pm.md"), *where
        )
        assert code == 0, out
        status, _, page = await get(f"{scene.page_url}/incidents/{number}")
        assert "<h3>Cause</h3>" in page and "<em>full</em>" in page


@pytest.mark.parametrize(
    ("page", "field", "words"),
    [
        ("{public: false}", "status_page", "needs access_key"),
        ("{public: true, accent: red}", "status_page.accent", "such as #0b5394"),
        ("{public: true, logo_url: 'http://a.example/l.png'}", "status_page.logo_url", "https"),
        ("{public: true, domain: 'not a host'}", "status_page.domain", "host name"),
    ],
)
def test_status_page_config_errors_say_where_and_how(page: str, field: str, words: str) -> None:
    text = (
        "clients:\n  - id: acme\n    status_page: " + page + "\n"
        "    sites: [{id: shop, url: 'https://shop.example', checks: [{id: home}]}]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, filename="monitor.yaml", environ={})
    (problem,) = caught.value.problems
    assert problem.line == 3 and problem.path == f"clients[0].{field}", problem
    assert words in problem.message


async def test_scheduled_maintenance_is_listed(tmp_path: Path, aiohttp_server: Any) -> None:
    async with status_scene(tmp_path, aiohttp_server) as scene:
        now = scene.running.monitor.desk.now()
        window = {
            "site": "acme/blog",
            "starts_at": (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ends_at": (now + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reason": "Server upgrade",
            "by": OPERATOR,
        }
        status, body = await api_post(scene.running, "/api/maintenance", window)
        assert status == 201, body
        status, _, html = await get(scene.page_url)
        assert "Scheduled maintenance" in html and "Server upgrade" in html
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{scene.page_url}/summary.json") as response:
                summary = await response.json()
        (planned,) = summary["scheduled_maintenances"]
        assert planned["status"] == "scheduled" and planned["components"] == [{"name": BLOG}]
        assert_nothing_internal(html)


async def test_a_readers_query_never_reaches_the_shared_snapshot(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    async with status_scene(tmp_path, aiohttp_server) as scene:
        status, _, first = await get(f"{scene.page_url}?key=%22%3E%3Cscript%3Eevil")
        assert status == 200 and "evil" not in first
        status, _, later = await get(scene.page_url)
        assert status == 200 and "evil" not in later and "?key=" not in later

"""The operator console over HTTP: sign-in, cookies, CSRF, throttling, and each action going
through the incident desk under the signed-in operator's name. In a browser:
tests/test_console_browser.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from multidict import CIMultiDictProxy
from yarl import URL

from incidents.model import TimelineKind
from incidents.severity import Severity
from monitor.config import MonitorConfig
from monitor.passwords import hash_password
from monitor.store import OutboxStatus
from tests.console_helpers import (
    CLIENT_MAIL,
    OPERATOR,
    OTHER,
    OTHER_PASSWORD,
    PASSWORD,
    console_scene,
    http_client,
    opened_incident,
    sign_in,
    token_of,
)
from tests.helpers import ShiftedClock, eventually

pytestmark = pytest.mark.timeout(90)

PAGES = ("/ui/queue", "/ui/incidents/1", "/ui/sites", "/ui/maintenance", "/ui/outbox")


def _cookie(headers: CIMultiDictProxy[str], name: str) -> str:
    found = [value for value in headers.getall("Set-Cookie", []) if value.startswith(f"{name}=")]
    assert len(found) == 1, headers.getall("Set-Cookie", [])
    return found[0]


async def test_sign_in_sets_a_signed_http_only_strict_cookie_that_expires(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    async with console_scene(tmp_path, aiohttp_server) as scene, http_client() as http:
        response = await sign_in(http, scene.url)
        assert response.status == 303 and response.headers["Location"] == "/ui/queue"
        cookie = _cookie(response.headers, "monitor_console").lower()
        for flag in ("httponly", "samesite=strict", "path=/ui", "max-age=43200"):
            assert flag in cookie, cookie
        assert "secure" not in cookie.replace("samesite", "")  # plain http on loopback
        async with http.get(f"{scene.url}/queue", allow_redirects=False) as page:
            assert page.status == 200
            text = await page.text()
            assert f"Signed in as <strong>{OPERATOR}</strong>" in text
            assert "script-src 'self'" in page.headers["Content-Security-Policy"]
            assert page.headers["X-Frame-Options"] == "DENY"
            assert page.headers["Cache-Control"] == "no-store"
        # A cookie changed by hand is not a session.
        value = http.cookie_jar.filter_cookies(URL(f"{scene.url}/queue"))["monitor_console"].value
        for cookie, status in ((value, 200), (value[:-2] + "xx", 303)):
            http.cookie_jar.clear()
            http.cookie_jar.update_cookies({"monitor_console": cookie}, URL(scene.url))
            async with http.get(f"{scene.url}/queue", allow_redirects=False) as page:
                assert page.status == status


async def test_https_public_url_marks_the_cookie_secure(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    async with (
        console_scene(
            tmp_path, aiohttp_server, public_url="https://monitor.agency.example"
        ) as scene,
        http_client() as http,
    ):
        # Set over https only, so this client (plain http) cannot send it back: the flags of
        # the sign-in form's cookie, set by the same code as the session's, tell.
        async with http.get(f"{scene.url}/sign-in") as page:
            assert "; secure" in _cookie(page.headers, "monitor_console_signin").lower()
        # The console answers its public name and its own, not a name rebound to it.
        for host, status in (("monitor.agency.example", 200), ("rebound.example", 421)):
            async with http.get(f"{scene.url}/sign-in", headers={"Host": host}) as page:
                assert page.status == status, host


async def test_a_wrong_password_or_name_is_refused_alike(
    tmp_path: Path, aiohttp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with console_scene(tmp_path, aiohttp_server) as scene, http_client() as http:
        for name, password in ((OPERATOR, "wrong"), (PASSWORD, PASSWORD), (OPERATOR, "")):
            response = await sign_in(http, scene.url, name=name, password=password)
            assert response.status == 401
            assert "monitor_console=" not in " ".join(response.headers.getall("Set-Cookie", []))
        # A password typed into the name field by mistake never reaches the log.
        assert PASSWORD not in caplog.text
        assert f"failed sign-in for {OPERATOR}" in caplog.text
        async with http.get(f"{scene.url}/queue", allow_redirects=False) as page:
            assert page.status == 303


async def test_sign_in_attempts_are_limited_per_name(tmp_path: Path, aiohttp_server: Any) -> None:
    async with (
        console_scene(tmp_path, aiohttp_server, sign_in_attempts=3) as scene,
        http_client() as http,
    ):
        for _ in range(3):
            assert (await sign_in(http, scene.url, password="guess")).status == 401
        # Now even the right password is refused until the window has passed.
        refused = await sign_in(http, scene.url)
        assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
        # The other operator (same address) is limited by the address count too.
        assert (await sign_in(http, scene.url, name=OTHER, password="x")).status == 429


async def test_a_burst_of_guesses_sent_at_once_is_counted_as_it_goes(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    async with console_scene(tmp_path, aiohttp_server, sign_in_attempts=3) as scene:

        async def guess() -> int:
            async with http_client() as http:  # each its own sign-in form and cookie
                return (await sign_in(http, scene.url, password="burst")).status

        statuses = await asyncio.gather(*(guess() for _ in range(6)))
        # Only as many passwords are checked as the limit allows; the rest wait and are refused.
        assert sorted(statuses) == [401, 401, 401, 429, 429, 429]


async def test_a_signed_out_user_is_sent_to_sign_in_from_every_page(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    async with console_scene(tmp_path, aiohttp_server) as scene, http_client() as http:
        for path in (*PAGES, "/ui", "/ui/queue/live"):
            async with http.get(f"{scene.running.url}{path}") as page:
                assert page.status == 200, path
                assert str(page.url.path) == "/ui/sign-in", path
                assert "Sign in" in await page.text()
        # Signing in from there comes back to the page asked for.
        async with http.get(f"{scene.running.url}/ui/sites", allow_redirects=False) as page:
            assert page.headers["Location"] == "/ui/sign-in?next=/ui/sites"
        token = await token_of(http, f"{scene.url}/sign-in?next=/ui/sites")
        async with http.post(
            f"{scene.url}/sign-in",
            data={"csrf": token, "name": OPERATOR, "password": PASSWORD, "next": "/ui/sites"},
            allow_redirects=False,
        ) as response:
            assert response.headers["Location"] == "/ui/sites"
        # Signing out ends it.
        token = await token_of(http, f"{scene.url}/queue")
        async with http.post(f"{scene.url}/sign-out", data={"csrf": token}) as page:
            assert str(page.url.path) == "/ui/sign-in" and "Signed out." in await page.text()
        async with http.get(f"{scene.url}/queue", allow_redirects=False) as page:
            assert page.status == 303


async def test_sessions_expire(tmp_path: Path, aiohttp_server: Any) -> None:
    clock = ShiftedClock(datetime(2026, 12, 4, 10, tzinfo=UTC))
    async with (
        console_scene(tmp_path, aiohttp_server, clock=clock, session_lifetime="1h") as scene,
        http_client() as http,
    ):
        await sign_in(http, scene.url)
        async with http.get(f"{scene.url}/queue", allow_redirects=False) as page:
            assert page.status == 200
        clock.advance(timedelta(minutes=61))
        async with http.get(f"{scene.url}/queue", allow_redirects=False) as page:
            assert page.status == 303


async def test_a_reload_ends_the_sessions_of_removed_operators_and_changed_passwords(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    # An operator whose password was reset (a leaked one, a colleague who left) must not
    # stay signed in on a cookie issued under the old password until it expires.
    async with (
        console_scene(tmp_path, aiohttp_server) as scene,
        http_client() as alice,
        http_client() as bob,
        http_client() as fresh,
    ):
        await sign_in(alice, scene.url)
        await sign_in(bob, scene.url, name=OTHER, password=OTHER_PASSWORD)
        for http in (alice, bob):
            async with http.get(f"{scene.url}/queue", allow_redirects=False) as page:
                assert page.status == 200
        current = scene.running.reloader.current
        new_password = "a brand new pass phrase"
        kept = current.operators[0].model_copy(
            update={"password_hash": hash_password(new_password)}
        )
        await scene.reload(current.model_copy(update={"operators": [kept]}))
        for http in (alice, bob):
            async with http.get(f"{scene.url}/queue", allow_redirects=False) as page:
                assert page.status == 303
        assert (await sign_in(fresh, scene.url)).status == 401  # the old password
        response = await sign_in(fresh, scene.url, password=new_password)
        assert response.status == 303
        async with fresh.get(f"{scene.url}/queue", allow_redirects=False) as page:
            assert page.status == 200


async def test_a_session_signed_out_cannot_be_replayed(tmp_path: Path, aiohttp_server: Any) -> None:
    async with console_scene(tmp_path, aiohttp_server) as scene, http_client() as http:
        await sign_in(http, scene.url)
        value = http.cookie_jar.filter_cookies(URL(f"{scene.url}/queue"))["monitor_console"].value
        token = await token_of(http, f"{scene.url}/queue")
        async with http.post(f"{scene.url}/sign-out", data={"csrf": token}) as page:
            assert "Signed out." in await page.text()
        # A copy of the cookie (a shared computer, a proxy's log) is no session any more.
        http.cookie_jar.update_cookies({"monitor_console": value}, URL(scene.url))
        async with http.get(f"{scene.url}/queue", allow_redirects=False) as page:
            assert page.status == 303


async def test_probe_now_of_a_browser_check_without_chromium_says_so(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    # Browser checks are skipped without Chromium; "probe now" of one was a server error.
    async with console_scene(tmp_path, aiohttp_server) as scene, http_client() as http:
        current = scene.running.reloader.current
        journey = {"id": "journey", "kind": "browser", "steps": [{"name": "open", "goto": "/"}]}
        document = current.model_dump(mode="json", exclude_unset=True)
        document["browser"] = {"executable": str(tmp_path / "no-chromium")}
        document["clients"][0]["sites"][0]["checks"].append(journey)
        document["operators"] = [op.model_dump() for op in current.operators]
        await scene.reload(MonitorConfig.model_validate(document))
        await sign_in(http, scene.url)
        token = await token_of(http, f"{scene.url}/sites")
        async with http.post(
            f"{scene.url}/sites/probe", data={"csrf": token, "check": "acme/shop/journey"}
        ) as page:
            assert page.status == 200
            assert "no Chromium is installed" in await page.text()


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    async with console_scene(tmp_path, aiohttp_server) as scene, http_client() as http:
        scene.shop.set("/", status=500)
        incident = await opened_incident(scene, "acme/shop")
        ack = f"{scene.url}/incidents/{incident.id}/acknowledge"
        # Signed out: no action, off to sign in.
        async with http.post(ack, data={}, allow_redirects=False) as response:
            assert response.status == 303
        await sign_in(http, scene.url)
        for data in ({}, {"csrf": ""}, {"csrf": "forged"}):
            async with http.post(ack, data=data, allow_redirects=False) as response:
                assert response.status == 403, data
        # The sign-in form has its own token too.
        async with http.post(
            f"{scene.url}/sign-in", data={"name": OPERATOR, "password": PASSWORD}
        ) as response:
            assert response.status == 403
        stored = await scene.running.store.get_incident(incident.id or 0)
        assert stored is not None and stored.acknowledged_by is None


async def test_actions_are_recorded_under_the_signed_in_operator(
    tmp_path: Path, aiohttp_server: Any, database_url: str
) -> None:
    async with (
        console_scene(tmp_path, aiohttp_server, database_url=database_url) as scene,
        http_client() as http,
    ):
        scene.blog.set("/", status=500)
        incident = await opened_incident(scene, "acme/blog")
        assert incident.severity is Severity.MAJOR
        await sign_in(http, scene.url)
        page_url = f"{scene.url}/incidents/{incident.id}"
        token = await token_of(http, page_url)

        async def post(action: str, **data: str) -> tuple[int, str]:
            async with http.post(f"{page_url}/{action}", data={"csrf": token, **data}) as r:
                return r.status, await r.text()

        # A `by` in the form is ignored: the session says who acts.
        status, text = await post("acknowledge", by="Mallory")
        assert status == 200 and "Acknowledged." in text
        status, text = await post("preview", text="x" * 20_001)
        assert status == 400 and "longer than 20000 characters" in text
        status, text = await post("updates", text="x" * 20_001, audience="internal")
        assert status == 400
        status, text = await post("updates", text="Disk full, cleaning up", audience="internal")
        assert status == 200 and "Internal note saved." in text
        status, text = await post("severity", severity="1")
        assert status == 200 and "Severity changed." in text
        status, text = await post("severity", severity="1")
        assert status == 400 and "Severity 1" in text and "already" in text
        status, text = await post("severity", severity="2")
        assert status == 200
        # Below what the failing check confirms (Severity 2) the engine would raise it again.
        status, text = await post("severity", severity="3")
        assert status == 409 and "acme/blog/home still fails at a higher severity" in text
        # Resolving while the check still fails needs force, as through the API.
        status, text = await post("resolve", note="Fixed the disk")
        assert status == 409 and "still has failing checks" in text
        status, text = await post("resolve", note="Fixed the disk", force="yes")
        assert status == 200 and "Resolved." in text
        status, text = await post("postmortem", text="## What happened\nThe disk filled up.")
        assert status == 200 and "Post-mortem attached." in text

        timeline = await scene.running.store.timeline(incident.id or 0)
        by_kind = {entry.kind: entry.message for entry in timeline}
        assert by_kind[TimelineKind.ACKNOWLEDGED] == f"acknowledged by {OPERATOR}"
        assert by_kind[TimelineKind.INTERNAL_NOTE].startswith(f"internal note by {OPERATOR}")
        assert f"escalated by {OPERATOR} from Severity 2" in by_kind[TimelineKind.ESCALATED]
        assert by_kind[TimelineKind.DEESCALATED] == (
            f"de-escalated by {OPERATOR} from Severity 1 (Critical) to Severity 2 (Major)"
        )
        assert f"resolved by hand by {OPERATOR}" in by_kind[TimelineKind.RESOLVED]
        assert by_kind[TimelineKind.POSTMORTEM] == f"post-mortem by {OPERATOR}"
        assert "Mallory" not in " ".join(by_kind.values())
        # The escalation to Severity 1 paged on-call again and told the client.
        assert TimelineKind.ONCALL_PAGED in by_kind
        async with http.get(page_url) as page:
            text = await page.text()
        assert f"acknowledged by {OPERATOR}" in text and "Disk full, cleaning up" in text


async def test_the_client_mail_preview_is_what_the_client_receives(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    async with console_scene(tmp_path, aiohttp_server) as scene, http_client() as http:
        scene.shop.set("/", status=500)
        incident = await opened_incident(scene, "acme/shop")
        await eventually(lambda: scene.inbox.messages())  # the opening mails are out
        await sign_in(http, scene.url)
        page_url = f"{scene.url}/incidents/{incident.id}"
        token = await token_of(http, page_url)
        update = "We found a failed <disk> & are replacing it."
        async with http.post(
            f"{page_url}/preview",
            data={"csrf": token, "text": update, "audience": "public", "stage": "identified"},
        ) as page:
            preview = await page.text()
        # Escaped on the page; nothing is sent by a preview.
        assert "failed &lt;disk&gt; &amp; are" in preview
        assert "Send to the client" in preview
        before = len(scene.inbox.messages())
        timeline = await scene.running.store.timeline(incident.id or 0)
        assert TimelineKind.CLIENT_UPDATE not in {entry.kind for entry in timeline}
        async with http.post(
            f"{page_url}/updates",
            data={"csrf": token, "text": update, "audience": "public", "stage": "identified"},
        ) as page:
            assert "Update sent to the client." in await page.text()
        mails = await eventually(
            lambda: [m for m in scene.inbox.messages()[before:] if CLIENT_MAIL in str(m["To"])]
        )
        assert len(mails) == 1
        body = mails[0].get_body(preferencelist=("plain",))
        assert body is not None and update in body.get_content()
        assert f'<dd class="subject">{_escape(str(mails[0]["Subject"]))}</dd>' in preview


def _escape(text: str) -> str:
    return str(escape(text))


async def test_maintenance_outbox_and_probe_now(
    tmp_path: Path, aiohttp_server: Any, database_url: str
) -> None:
    async with (
        console_scene(tmp_path, aiohttp_server, database_url=database_url) as scene,
        http_client() as http,
    ):
        scene.inbox.refuse_rcpt[CLIENT_MAIL] = "550 no such user"
        scene.shop.set("/", status=500)
        incident = await opened_incident(scene, "acme/shop")
        await sign_in(http, scene.url)
        token = await token_of(http, f"{scene.url}/maintenance")
        async with http.post(
            f"{scene.url}/maintenance",
            data={
                "csrf": token,
                "site": "acme/blog",
                "starts_at": "2030-01-05T22:00",
                "ends_at": "2030-01-05T23:30",
                "reason": "Server <upgrade>",
            },
        ) as page:
            text = await page.text()
        assert "Maintenance window added." in text and "Server &lt;upgrade&gt;" in text
        [window] = await scene.running.store.list_maintenance(
            include_past=False, now=scene.running.monitor.desk.now()
        )
        assert window.created_by == OPERATOR
        # Entered in the operator's zone (the agency's: Berlin, UTC+1 in January).
        assert window.starts_at.isoformat().startswith("2030-01-05T21:00")
        async with http.post(
            f"{scene.url}/maintenance/{window.id}/cancel", data={"csrf": token}
        ) as page:
            assert "Maintenance window cancelled." in await page.text()
        assert not await scene.running.store.list_maintenance(
            include_past=False, now=scene.running.monitor.desk.now()
        )

        # The client's server refused the opening mail for good: failed, then retried.
        async def failed() -> list[Any]:
            rows = await scene.running.store.outbox_for_incident(incident.id or 0)
            return [r for r in rows if r.status is OutboxStatus.FAILED]

        [item] = await eventually(failed)
        async with http.get(f"{scene.url}/outbox") as page:
            text = await page.text()
        assert "550 no such user" in text and "failed" in text
        del scene.inbox.refuse_rcpt[CLIENT_MAIL]
        async with http.post(f"{scene.url}/outbox/{item.id}/retry", data={"csrf": token}) as r:
            assert "sent again now" in await r.text()

        async def sent() -> bool:
            rows = await scene.running.store.outbox_for_incident(incident.id or 0)
            return any(r.id == item.id and r.status is OutboxStatus.SENT for r in rows)

        await eventually(sent)
        assert any(CLIENT_MAIL in str(m["To"]) for m in scene.inbox.messages())

        async with http.get(f"{scene.url}/sites") as page:
            text = await page.text()
        assert '<svg class="spark"' in text and "Acme Shop" in text
        # The blog has been healthy all along: up, with its last result from the history.
        blog = text[text.index("acme/blog/home") :]
        assert "<td>up</td>" in blog and "<td>ok<br>" in blog
        async with http.post(
            f"{scene.url}/sites/probe", data={"csrf": token, "check": "acme/shop/home"}
        ) as page:
            text = await page.text()
        assert "Probed acme/shop/home now" in text and "http_5xx" in text

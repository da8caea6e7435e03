"""The proof of issue 11's first failure, end to end: a real monitor runs a flow that logs in
with a password and pays with a test card and an API key header (all from the environment),
gets a session cookie, and fails at the payment step with a page that echoes the form, the
key and the cookie, and sets the cookie again.

None of those secrets may appear in the API's answer (with the token), in the SQLite file's
bytes, in the log output or in any mail that aiosmtpd received; the failure itself must.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from checks.scrub import MASK
from monitor.app import Running, running_monitor
from monitor.config.loader import load_config_text
from tests.helpers import eventually
from tests.monitor_yaml import acme_shop_yaml, head_yaml, notifications_yaml
from tests.smtp_helpers import Inbox, parse, smtpd

TOKEN = "api-t0ken-for-the-test"
PASSWORD = "Sup3r-Secret-Pw!"
CARD = "4000 0566 5566 5556"
SESSION = "sess-7f3a9c2e1b"
CSRF = "csrf9d8e7f6a5b"
API_KEY = "key-0c1d2e3f4a"

CHECKS = """          - id: checkout
            kind: flow
            severity: 1
            steps:
              - name: login
                method: POST
                url: /login
                form:
                  user: probe@agency.example
                  password: {value: "${SHOP_PASSWORD}", secret: true}
                save: {csrf: {regex: "csrf=(\\\\w+)"}}
              - name: pay
                method: POST
                url: /pay
                headers: {X-Api-Key: "${SHOP_API_KEY}"}
                form:
                  csrf_token: "{{csrf}}"
                  card_number: {value: "${TEST_CARD}", secret: true}
                expect: {body_contains: [Order confirmed]}
"""


def config_yaml(*, db: Path, smtp_port: int, outbox: Path, url: str) -> str:
    return (
        head_yaml(database=f"sqlite+aiosqlite:///{db}")
        + notifications_yaml(smtp_port=smtp_port, outbox=outbox)
        + f"api: {{token: {TOKEN}}}\n"
        + acme_shop_yaml(url=url, checks=CHECKS, business_hours=False)
    )


@pytest.fixture
async def shop(aiohttp_server: Any) -> AsyncIterator[str]:
    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        response = web.Response(text=f"Welcome {form['user']}, csrf={CSRF}")
        response.set_cookie("session", SESSION)
        return response

    async def pay(request: web.Request) -> web.Response:
        form = await request.post()
        # The payment fails and the page echoes everything back, as the issue saw.
        response = web.Response(
            text="<h1>Payment failed</h1>"
            f"<form><input name=card_number value='{form['card_number']}'>"
            f"<input name=csrf_token value='{form['csrf_token']}'></form>"
            f"<!-- session {request.cookies.get('session')}, password {PASSWORD},"
            f" key {request.headers.get('X-Api-Key')} -->",
            content_type="text/html",
        )
        response.set_cookie("session", SESSION)
        return response

    app = web.Application()
    app.add_routes([web.post("/login", login), web.post("/pay", pay)])
    server: TestServer = await aiohttp_server(app)
    yield str(server.make_url("")).rstrip("/")


async def get_incident(running: Running, incident_id: int) -> str:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{running.url}/api/incidents/{incident_id}", headers=headers) as response,
    ):
        assert response.status == 200
        return await response.text()


async def test_no_secret_of_a_failing_flow_reaches_api_database_logs_or_mail(
    shop: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    inbox = Inbox()
    db = tmp_path / "monitor.db"
    async with smtpd(inbox) as smtp_port:
        config = load_config_text(
            config_yaml(db=db, smtp_port=smtp_port, outbox=tmp_path / "outbox", url=shop),
            environ={"SHOP_PASSWORD": PASSWORD, "TEST_CARD": CARD, "SHOP_API_KEY": API_KEY},
        )
        async with running_monitor(config) as running:
            [incident] = await eventually(lambda: running.store.list_incidents(open_only=True))
            assert incident.id is not None
            mailed_to = {"ops@acme.example", "oncall@agency.example"}
            await eventually(lambda: mailed_to <= {to for e in inbox.received for to in e.rcpt_tos})
            answer = await get_incident(running, incident.id)

    # The failure is there to see, with the echoed values masked.
    decoded = json.dumps(json.loads(answer), ensure_ascii=False)
    assert "Payment failed" in decoded
    assert f"value='{MASK}'" in decoded
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("monitor.db*"))
    assert b"Payment failed" in stored
    # Quoted-printable may fold a secret over two lines: the decoded parts count too.
    mails = [e.original_content or b"" for e in inbox.received]
    mail_texts = [
        part.get_content()
        for raw in mails
        for part in parse(raw).walk()
        if part.get_content_maintype() == "text"
    ]
    assert any("Payment failed" in text for text in mail_texts)  # the on-call page shows it
    places = {
        "api": (answer + decoded).encode(),
        "database": stored,
        "logs": caplog.text.encode(),
        "mails": b"".join(mails) + "".join(mail_texts).encode(),
    }
    secrets = [PASSWORD, CARD, CARD.replace(" ", "+"), SESSION, CSRF, API_KEY]
    for place, content in places.items():
        for secret in secrets:
            assert secret.encode() not in content, f"{secret!r} reached the {place}"

"""Delivery of notifications: MIME building, SMTP (aiosmtpd on loopback), .eml files, webhooks.

The SMTP servers are aiosmtpd's protocol served by our own event loop on port 0, so there are
no threads and no port races; TLS certificates come from trustme.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from incidents.messages import thread_root
from incidents.outgoing import (
    Audience,
    MessageKind,
    OutgoingChat,
    OutgoingEmail,
    OutgoingWebhook,
)
from monitor.delivery import (
    DeliveryError,
    FileMailer,
    Mailer,
    SmtpMailer,
    SmtpSecurity,
    SmtpSettings,
    WebhookSender,
    WebhookTarget,
    build_email,
    retry_delay,
)
from monitor.delivery.chat import ChatSender, ChatTarget
from tests.smtp_helpers import Inbox, parse, smtpd

SENDER = "Agency Support <support@agency.example>"
ROOT_ID = "<incident-42.20250314T150000Z.client@agency.example>"
LATER_ID = (
    "<incident-42.20250314T150000Z.client.update.9f2c1a7e5b3d4c6a8e0f1b2c3d4e5f60@agency.example>"
)
DATE = datetime(2025, 3, 14, 15, 30, tzinfo=UTC)
PASSWORD = "s3cret-Pa55word"
ConfigureServer = Callable[..., Any]


def outgoing(**changes: Any) -> OutgoingEmail:
    base = OutgoingEmail(
        kind=MessageKind.UPDATE,
        audience=Audience.CLIENT,
        incident_id=42,
        to=("ops@acme.example", "Jürgen Müller <juergen@acme.example>"),
        subject="[INC-42] Severity 1: Müller GmbH shop.acme.example is down",
        text="Hallo Herr Müller,\n\nthe shop answers 500 since 14:02.\n",
        html="<p>Hallo Herr Müller,</p><p>the shop answers <b>500</b> since 14:02.</p>",
        message_id=LATER_ID,
        in_reply_to=ROOT_ID,
        references=(ROOT_ID,),
    )
    return replace(base, **changes)


def assert_is_the_email(parsed: EmailMessage, sent: OutgoingEmail) -> None:
    assert parsed["Message-ID"] == sent.message_id
    assert parsed["In-Reply-To"] == sent.in_reply_to
    assert parsed["References"] == " ".join(sent.references)
    assert parsed["Subject"] == sent.subject
    assert parsed["To"] == ", ".join(sent.to)
    assert parsed["From"] == SENDER
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert text is not None and html is not None
    # Lines end in CRLF on the wire; Python's parser leaves them so in the decoded text.
    assert text.get_content().replace("\r\n", "\n") == sent.text
    assert html.get_content().replace("\r\n", "\n").rstrip("\n") == sent.html


# --- build_email ---------------------------------------------------------------------------


def test_build_email_parses_back_to_exactly_the_headers_given() -> None:
    sent = outgoing(
        references=(ROOT_ID, "<incident-42.20250314T150000Z.client.update.2@agency.example>")
    )
    data = build_email(sent, sender=SENDER, date=DATE).as_bytes()

    parsed = parse(data)
    assert_is_the_email(parsed, sent)
    assert parsed["Date"].datetime == DATE
    assert parsed["X-Auto-Response-Suppress"] == "All"
    # 7-bit on the wire: no SMTPUTF8 or 8BITMIME needed from the server.
    assert data.isascii()


def test_long_thread_ids_stay_readable_to_mail_programs() -> None:
    # The stock policy would fold an id longer than a line into =?utf-8?q?...?= words, which
    # no mail program matches against a Message-ID: the thread would break.
    long_id = f"<incident-42.20250314T150000Z.client.update.{'a' * 90}@agency.example>"
    sent = outgoing(message_id=long_id, in_reply_to=long_id, references=(ROOT_ID, long_id))
    data = build_email(sent, sender=SENDER, date=DATE).as_bytes()

    assert f"Message-ID: {long_id}\r\n".encode() in data
    assert f"In-Reply-To: {long_id}\r\n".encode() in data
    assert f"References: {ROOT_ID}\r\n {long_id}\r\n".encode() in data
    assert parse(data)["References"] == f"{ROOT_ID} {long_id}"


@pytest.mark.parametrize("bad", ["\r", "\n", "\r\n", "\u2028", "\x85", "\x00", "\x1b"])
@pytest.mark.parametrize("where", ["subject", "to", "message_id", "in_reply_to", "references"])
def test_build_email_refuses_line_breaks_and_controls_in_headers(bad: str, where: str) -> None:
    cases: dict[str, dict[str, Any]] = {
        "subject": {"subject": f"down{bad}Bcc: victim@example.com"},
        "to": {"to": (f"ops@acme.example{bad}Bcc: victim@example.com",)},
        "message_id": {"message_id": f"<a@b>{bad}X-Evil: 1"},
        "in_reply_to": {"in_reply_to": f"<a@b>{bad}X-Evil: 1"},
        "references": {"references": (ROOT_ID, f"<a@b>{bad}X-Evil: 1")},
    }
    injected = cases[where]
    # Ids also fail their own format check first, which is as good a refusal.
    match = "one line without control characters" if where in ("subject", "to") else None
    with pytest.raises(ValueError, match=match):
        build_email(outgoing(**injected), sender=SENDER, date=DATE)


def test_build_email_refuses_line_breaks_in_the_sender() -> None:
    with pytest.raises(ValueError, match="From header must be one line"):
        build_email(outgoing(), sender=f"{SENDER}\r\nBcc: victim@example.com", date=DATE)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"message_id": "incident-42@agency.example"}, "Message-ID must be a message id"),
        ({"in_reply_to": "<no at sign>"}, "In-Reply-To must be a message id"),
        ({"to": ()}, "no recipient"),
        ({"to": ('"a, b" <a@acme.example>, c@acme.example',)}, "To must hold 1 address"),
        ({"to": ("jürgen@acme.example",)}, "ASCII only"),
        ({"to": ("not-an-address",)}, "To must hold"),
    ],
)
def test_build_email_refuses_malformed_ids_and_addresses(
    changes: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        build_email(outgoing(**changes), sender=SENDER, date=DATE)


def test_build_email_needs_an_aware_date() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_email(outgoing(), sender=SENDER, date=datetime(2025, 3, 14, 15, 30))


def test_a_mailer_refuses_a_bad_sender_when_it_is_made(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="From must hold 1 address"):
        FileMailer(tmp_path, sender="Agency, Support <support@agency.example>")
    with pytest.raises(ValueError, match="From header must be one line"):
        SmtpMailer(smtp_settings(port=25, sender="a@agency.example\nBcc: x@y.example"))


# --- SMTP ----------------------------------------------------------------------------------


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@dataclass(frozen=True)
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls() -> Tls:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return Tls(server=server, client=client)


def smtp_settings(
    *,
    port: int,
    security: SmtpSecurity = "none",
    username: str | None = None,
    password: str | None = None,
    timeout: float = 5.0,
    sender: str = SENDER,
) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1",
        port=port,
        security=security,
        username=username,
        password=password,
        timeout=timeout,
        sender=sender,
    )


async def test_smtp_delivers_the_email_with_its_thread_headers() -> None:
    inbox = Inbox()
    sent = outgoing()
    async with smtpd(inbox) as port:
        mailer: Mailer = SmtpMailer(smtp_settings(port=port))
        await mailer.send(sent, date=DATE)

    assert inbox.received[0].mail_from == "support@agency.example"
    assert inbox.received[0].rcpt_tos == ["ops@acme.example", "juergen@acme.example"]
    assert_is_the_email(inbox.only_message(), sent)


class Authenticator:
    def __init__(self, *, echo_password: bool = False) -> None:
        self.echo_password = echo_password

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert session.ssl is not None, "AUTH must come after STARTTLS"
        assert isinstance(data, LoginPassword)
        if data.login == b"monitor" and data.password == PASSWORD.encode():
            return AuthResult(success=True)
        # A careless server's refusal quotes what it got; aiosmtpd's own says 535 only.
        said = f"535 bad password {data.password.decode()}" if self.echo_password else None
        return AuthResult(success=False, handled=False, message=said)


@asynccontextmanager
async def auth_smtpd(inbox: Inbox, tls: Tls, **authenticator: bool) -> AsyncIterator[int]:
    async with smtpd(
        inbox,
        tls_context=tls.server,
        require_starttls=True,
        auth_required=True,
        authenticator=Authenticator(**authenticator),
    ) as port:
        yield port


async def test_starttls_and_auth_with_the_right_password_delivers(tls: Tls) -> None:
    inbox = Inbox()
    async with auth_smtpd(inbox, tls) as port:
        settings = smtp_settings(
            port=port, security="starttls", username="monitor", password=PASSWORD
        )
        await SmtpMailer(settings, tls_context=tls.client).send(outgoing(), date=DATE)

    assert_is_the_email(inbox.only_message(), outgoing())
    assert PASSWORD not in repr(settings)


@pytest.mark.parametrize("echo_password", [False, True])
async def test_a_wrong_password_never_shows_in_the_error(tls: Tls, echo_password: bool) -> None:
    wrong = "wr0ng-" + PASSWORD
    inbox = Inbox()
    async with auth_smtpd(inbox, tls, echo_password=echo_password) as port:
        settings = smtp_settings(port=port, security="starttls", username="monitor", password=wrong)
        with pytest.raises(DeliveryError) as caught:
            await SmtpMailer(settings, tls_context=tls.client).send(outgoing(), date=DATE)

    error = caught.value
    printed = "".join(traceback.format_exception(error))
    assert wrong not in str(error) and wrong not in repr(error) and wrong not in printed
    assert "535" in str(error)
    if echo_password:  # the server's text did hold it
        assert "[redacted]" in str(error)
    # Credentials are configuration: every email would fail alike, so keep them for later.
    assert not error.permanent and error.code == 535
    assert inbox.received == []


async def test_implicit_tls_delivers(tls: Tls) -> None:
    inbox = Inbox()
    async with smtpd(inbox, ssl_context=tls.server) as port:
        mailer = SmtpMailer(smtp_settings(port=port, security="tls"), tls_context=tls.client)
        await mailer.send(outgoing(), date=DATE)

    assert_is_the_email(inbox.only_message(), outgoing())


async def test_an_untrusted_certificate_is_a_transient_failure(tls: Tls) -> None:
    untrusting = ssl.create_default_context()  # does not know the test CA
    async with smtpd(Inbox(), tls_context=tls.server) as port:
        mailer = SmtpMailer(smtp_settings(port=port, security="starttls"), tls_context=untrusting)
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED") as caught:
            await mailer.send(outgoing(), date=DATE)
    assert not caught.value.permanent


async def test_server_down_is_a_quick_transient_failure(refused_port: int) -> None:
    mailer = SmtpMailer(smtp_settings(port=refused_port, timeout=0.5))
    started = time.monotonic()
    with pytest.raises(DeliveryError, match=f"127.0.0.1:{refused_port}") as caught:
        await mailer.send(outgoing(), date=DATE)
    assert time.monotonic() - started < 2.0
    assert not caught.value.permanent


async def test_a_server_that_never_greets_times_out_as_transient() -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(DeliveryError) as caught:
            await SmtpMailer(smtp_settings(port=port, timeout=0.2)).send(outgoing(), date=DATE)
        assert not caught.value.permanent
        assert "Timeout" in str(caught.value)
    finally:
        release.set()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("refusal", "permanent", "code"),
    [
        ({"refuse_rcpt": {"ops@acme.example": "550 5.1.1 no such user"}}, True, 550),
        ({"refuse_rcpt": {"ops@acme.example": "450 4.2.1 mailbox busy"}}, False, 450),
        ({"data_reply": "554 5.7.1 rejected as spam"}, True, 554),
        ({"data_reply": "451 4.3.0 try again later"}, False, 451),
    ],
    ids=["rcpt-550", "rcpt-450", "data-554", "data-451"],
)
async def test_refusals_are_permanent_for_5xx_and_transient_for_4xx(
    refusal: dict[str, Any], permanent: bool, code: int
) -> None:
    inbox = Inbox(**refusal)
    async with smtpd(inbox) as port:
        with pytest.raises(DeliveryError) as caught:
            await SmtpMailer(smtp_settings(port=port)).send(
                outgoing(to=("ops@acme.example",)), date=DATE
            )
    assert caught.value.permanent is permanent
    assert caught.value.code == code
    assert str(code) in str(caught.value)
    assert inbox.received == []


async def test_some_recipients_refused_still_counts_as_delivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The others already have it: a retry would send it to them twice.
    inbox = Inbox(refuse_rcpt={"juergen@acme.example": "550 5.1.1 no such user"})
    async with smtpd(inbox) as port:
        await SmtpMailer(smtp_settings(port=port)).send(outgoing(), date=DATE)

    assert inbox.received[0].rcpt_tos == ["ops@acme.example"]
    assert "juergen@acme.example: 550" in caplog.text


async def test_an_email_that_cannot_be_built_is_a_permanent_failure(refused_port: int) -> None:
    mailer = SmtpMailer(smtp_settings(port=refused_port))
    with pytest.raises(DeliveryError, match="cannot be built") as caught:
        await mailer.send(outgoing(subject="down\r\nBcc: victim@example.com"), date=DATE)
    assert caught.value.permanent


# --- .eml files ----------------------------------------------------------------------------


async def test_file_mailer_writes_a_parseable_eml(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    await FileMailer(folder, sender=SENDER).send(outgoing(), date=DATE)

    [written] = list(folder.iterdir())
    assert written.name == "20250314T153000Z-" + LATER_ID.strip("<>") + ".eml"
    assert_is_the_email(parse(written.read_bytes()), outgoing())


async def test_file_mailer_sending_again_replaces_the_same_file(tmp_path: Path) -> None:
    mailer = FileMailer(tmp_path, sender=SENDER)
    await mailer.send(outgoing(text="first try\n"), date=DATE)
    # A retry after a crash, later: still one file, under its first name.
    await mailer.send(outgoing(text="second try\n"), date=DATE + timedelta(minutes=5))

    [written] = list(tmp_path.iterdir())  # also: no temporary file left behind
    assert written.name.startswith("20250314T153000Z-")
    body = parse(written.read_bytes()).get_body(("plain",))
    assert body is not None and body.get_content() == "second try\r\n"


async def test_file_mailer_keeps_a_reused_incident_number_apart(tmp_path: Path) -> None:
    # A new database numbers incidents from 1 again: the new INC-1's first mail must not
    # replace the old INC-1's file.
    mailer = FileMailer(tmp_path, sender=SENDER)
    roots = [
        thread_root(1, Audience.CLIENT, "agency.example", opened_at=opened)
        for opened in (DATE - timedelta(days=400), DATE)
    ]
    for root in roots:
        await mailer.send(outgoing(message_id=root, in_reply_to=None, references=()), date=DATE)

    found = {parse(path.read_bytes())["Message-ID"] for path in tmp_path.iterdir()}
    assert found == set(roots) and len(found) == 2


async def test_file_mailer_keeps_ids_that_look_alike_apart(tmp_path: Path) -> None:
    mailer = FileMailer(tmp_path, sender=SENDER)
    ids = [
        "<b@agency.example>",
        "<a-b@agency.example>",
        "<a/b@agency.example>",
        "<a_b@agency.example>",
    ]
    for message_id in ids:
        await mailer.send(outgoing(message_id=message_id), date=DATE)

    found = {parse(path.read_bytes())["Message-ID"] for path in tmp_path.iterdir()}
    assert found == set(ids)
    assert all(path.suffix == ".eml" and "/" not in path.name for path in tmp_path.iterdir())


async def test_file_mailer_cannot_write_is_transient(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "outbox"
    not_a_folder.write_text("a file where the folder should be")
    with pytest.raises(DeliveryError, match="cannot write") as caught:
        await FileMailer(not_a_folder, sender=SENDER).send(outgoing(), date=DATE)
    assert not caught.value.permanent


# --- webhooks ------------------------------------------------------------------------------

TOKEN = "Bearer hook-t0ken-123"
SECRET_PATH = "/hooks/T000/B000/XyZsecretpath"


@dataclass
class HookServer:
    """A webhook receiver: answers with `status` (and echoes the request's auth header in the
    body, as careless servers do), keeps every request it got."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[dict[str, Any], dict[str, str]]] = field(default_factory=list)
    release: asyncio.Event | None = None  # when set, answer only once it is set
    redirected_to: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((await request.json(), dict(request.headers)))
        if self.release is not None:
            await self.release.wait()
        if 300 <= self.status < 400:
            self.headers["Location"] = "/elsewhere"
        text = f"refused: {request.headers.get('Authorization')}"
        return web.Response(status=self.status, text=text, headers=self.headers)

    async def elsewhere(self, request: web.Request) -> web.Response:
        self.redirected_to += 1
        return web.Response(text="ok")


ServerFactory = Callable[..., Any]


@pytest.fixture
async def hook(aiohttp_server: ServerFactory) -> tuple[HookServer, TestServer]:
    receiver = HookServer()
    app = web.Application()
    app.router.add_post(SECRET_PATH, receiver.handle)
    app.router.add_route("*", "/elsewhere", receiver.elsewhere)
    server = await aiohttp_server(app)
    return receiver, server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


def page(target: str = "oncall") -> OutgoingWebhook:
    return OutgoingWebhook(
        kind=MessageKind.PAGE,
        incident_id=42,
        target=target,
        body={"incident": 42, "severity": 1, "title": "shop.acme.example is down"},
        idempotency_key="incident-42.page.1",
    )


def sender_for(
    session: aiohttp.ClientSession, server: TestServer, *, timeout: float = 5.0
) -> WebhookSender:
    target = WebhookTarget(
        url=str(server.make_url(SECRET_PATH)), headers={"Authorization": TOKEN}, timeout=timeout
    )
    return WebhookSender(session, {"oncall": target})


async def test_webhook_posts_json_with_idempotency_key_and_auth(
    hook: tuple[HookServer, TestServer], session: aiohttp.ClientSession
) -> None:
    receiver, server = hook
    await sender_for(session, server).send(page())

    [(body, headers)] = receiver.requests
    assert body == page().body
    assert headers["Idempotency-Key"] == "incident-42.page.1"
    assert headers["Authorization"] == TOKEN
    assert headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(500, False), (503, False), (429, False), (408, False), (400, True), (401, True), (404, True)],
)
async def test_webhook_answers_are_permanent_or_transient(
    hook: tuple[HookServer, TestServer],
    session: aiohttp.ClientSession,
    status: int,
    permanent: bool,
) -> None:
    receiver, server = hook
    receiver.status = status
    with pytest.raises(DeliveryError) as caught:
        await sender_for(session, server).send(page())

    error = caught.value
    assert error.permanent is permanent and error.code == status
    assert "webhook 'oncall'" in str(error) and str(status) in str(error)
    # The receiver echoed the token; the URL holds a secret path: neither may show.
    assert "hook-t0ken" not in str(error) and "XyZsecretpath" not in str(error)


async def test_webhook_passes_retry_after_on(
    hook: tuple[HookServer, TestServer], session: aiohttp.ClientSession
) -> None:
    receiver, server = hook
    receiver.status, receiver.headers = 503, {"Retry-After": "120"}
    with pytest.raises(DeliveryError) as caught:
        await sender_for(session, server).send(page())
    assert caught.value.retry_after == 120.0 and not caught.value.permanent


async def test_webhook_redirects_are_not_followed(
    hook: tuple[HookServer, TestServer], session: aiohttp.ClientSession
) -> None:
    receiver, server = hook
    receiver.status = 302
    with pytest.raises(DeliveryError) as caught:
        await sender_for(session, server).send(page())
    assert caught.value.permanent and caught.value.code == 302
    assert receiver.redirected_to == 0


async def test_webhook_timeout_is_transient(
    hook: tuple[HookServer, TestServer], session: aiohttp.ClientSession
) -> None:
    receiver, server = hook
    receiver.release = asyncio.Event()
    try:
        with pytest.raises(DeliveryError, match="no answer within 0.2s") as caught:
            await sender_for(session, server, timeout=0.2).send(page())
        assert not caught.value.permanent
        assert len(receiver.requests) == 1
    finally:
        receiver.release.set()


async def test_webhook_connection_refused_is_transient(
    session: aiohttp.ClientSession, refused_port: int
) -> None:
    target = WebhookTarget(url=f"http://127.0.0.1:{refused_port}{SECRET_PATH}", timeout=2.0)
    with pytest.raises(DeliveryError) as caught:
        await WebhookSender(session, {"oncall": target}).send(page())
    assert not caught.value.permanent
    assert "XyZsecretpath" not in str(caught.value)


async def test_webhook_unknown_target_or_bad_url_is_permanent(
    session: aiohttp.ClientSession,
) -> None:
    sender = WebhookSender(session, {"oncall": WebhookTarget(url="not a url/XyZsecretpath")})
    with pytest.raises(DeliveryError, match=r"no such webhook.*configured: oncall") as unknown:
        await sender.send(page("pager"))
    with pytest.raises(DeliveryError, match="configured URL is invalid") as invalid:
        await sender.send(page())
    assert unknown.value.permanent and invalid.value.permanent
    assert "XyZsecretpath" not in "".join(traceback.format_exception(invalid.value))


async def test_a_chat_to_a_channel_no_longer_configured_is_permanent() -> None:
    sender = ChatSender({"team": ChatTarget(url="json://127.0.0.1:9/hook")})
    chat = OutgoingChat(
        kind=MessageKind.PAGE,
        incident_id=42,
        channel="phones",
        title="[INC-42] PAGE",
        body="shop is down",
        idempotency_key="inc-42-page",
    )
    expected = r"channel 'phones': no such channel in the configuration \(configured: team\)"
    with pytest.raises(DeliveryError, match=expected) as unknown:
        await sender.send(chat)
    assert unknown.value.permanent


async def test_webhook_refuses_a_key_that_would_inject_a_header(
    hook: tuple[HookServer, TestServer], session: aiohttp.ClientSession
) -> None:
    receiver, server = hook
    evil = replace(page(), idempotency_key="k1\r\nX-Evil: 1")
    with pytest.raises(DeliveryError, match="idempotency key must be") as caught:
        await sender_for(session, server).send(evil)
    assert caught.value.permanent and receiver.requests == []


def test_webhook_target_repr_shows_no_secret() -> None:
    target = WebhookTarget(url=f"https://hooks.example{SECRET_PATH}", headers={"X-Key": "k3y"})
    assert "XyZsecretpath" not in repr(target) and "k3y" not in repr(target)


# --- backoff -------------------------------------------------------------------------------


def test_retry_delay_doubles_then_stops_at_the_cap() -> None:
    def highest(attempts: int) -> float:
        return retry_delay(attempts, base=5.0, cap=900.0, rand=lambda: 1.0)

    assert [highest(n) for n in range(1, 10)] == [5, 10, 20, 40, 80, 160, 320, 640, 900]
    assert highest(10_000) == 900.0


def test_retry_delay_jitter_stays_between_half_and_all_of_the_step() -> None:
    assert retry_delay(3, rand=lambda: 0.0) == 10.0  # half of 20
    for attempts in range(1, 40):
        ceiling = min(900.0, 5.0 * 2 ** (attempts - 1))
        assert ceiling / 2 <= retry_delay(attempts) <= ceiling


def test_retry_delay_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="attempts must be 1 or more"):
        retry_delay(0)
    with pytest.raises(ValueError, match="base <= cap"):
        retry_delay(1, base=10.0, cap=5.0)


@pytest.mark.parametrize("host", ["smtp.agency.example", "10.0.0.25", "2001:db8::25"])
def test_a_login_over_plain_text_to_another_host_is_refused(host: str) -> None:
    settings = replace(smtp_settings(port=25, username="monitor", password=PASSWORD), host=host)
    with pytest.raises(ValueError, match=f"SMTP login to {re.escape(host)} needs security"):
        SmtpMailer(settings)
    # The same login is fine encrypted, and so is plain text without a login.
    SmtpMailer(replace(settings, security="starttls"))
    SmtpMailer(replace(settings, security="tls"))
    SmtpMailer(replace(settings, username=None, password=None))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost", "LOCALHOST."])
def test_a_login_over_plain_text_to_a_relay_on_this_machine_is_allowed(host: str) -> None:
    SmtpMailer(replace(smtp_settings(port=25, username="monitor", password=PASSWORD), host=host))

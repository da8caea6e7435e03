"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, served by the test's own loop."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it accepts, refusing as it is told."""

    refuse_rcpt: dict[str, str] = field(default_factory=dict)  # address -> reply
    data_reply: str | None = None  # e.g. "554 spam"; None accepts
    received: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        self.received.append(envelope)
        return "250 Message accepted for delivery"

    def only_message(self) -> EmailMessage:
        assert len(self.received) == 1
        content = self.received[0].content
        assert isinstance(content, bytes)
        return parse(content)

    def messages(self) -> list[EmailMessage]:
        return [parse(e.content) for e in self.received if isinstance(e.content, bytes)]


def mails(inbox: Inbox, *, to: str, subject: str = "") -> list[EmailMessage]:
    """The mails received for an address containing `to` whose subject contains `subject`."""
    return [m for m in inbox.messages() if to in str(m["To"]) and subject in str(m["Subject"])]


@asynccontextmanager
async def smtpd(
    handler: Inbox, *, ssl_context: ssl.SSLContext | None = None, port: int = 0, **options: Any
) -> AsyncIterator[int]:
    """aiosmtpd on 127.0.0.1, served by the test's loop; yields the port."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="smtpd.test", **options),
        "127.0.0.1",
        port,
        ssl=ssl_context,
    )
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()

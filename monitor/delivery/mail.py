"""Emails out of the outbox: one MIME builder and two mailers behind one protocol.

`build_email` turns an `OutgoingEmail` (already composed by `incidents`) into the bytes on the
wire. `SmtpMailer` hands them to an SMTP server (aiosmtplib, one connection per message);
`FileMailer` writes them as `.eml` files into a folder instead, for setups without SMTP (the
demo, the default config). Both raise only `DeliveryError`.

Which SMTP failures are permanent (the outbox gives up) and which are transient (it retries):

    all recipients refused, every one with 5xx      permanent (550 no such user)
    DATA refused with 5xx, or 552 at MAIL FROM     permanent (554 rejected as spam, too big)
    some recipients refused, others accepted       delivered: the others have it, a retry
                                                   would send it to them twice; logged
    any 4xx                                         transient (greylisting, mailbox busy)
    AUTH refused (535), sender refused (550)       transient: configuration, see errors.py
    STARTTLS or SMTPUTF8 not offered               transient: configuration
    connection refused, reset, TLS failure, timeout transient
    message cannot be built (bad header value)     permanent
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import ssl
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, getaddresses
from pathlib import Path
from typing import Literal, Protocol

import aiosmtplib

from incidents.outgoing import Audience, OutgoingEmail
from monitor.config.models import is_loopback_host
from monitor.delivery.errors import DeliveryError, describe, translated_error

_log = logging.getLogger(__name__)

SmtpSecurity = Literal["starttls", "tls", "none"]

# Header values may hold none of these: CR and LF end a header (injection), the others are
# line breaks to str.splitlines (which the email package folds with) or invisible controls.
_FORBIDDEN_IN_HEADER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
# RFC 5322 msg-id, kept to printable ASCII without spaces or angle brackets inside.
_MESSAGE_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")
_MAX_MESSAGE_ID_CHARS = 250
_THREAD_HEADERS = frozenset({"message-id", "in-reply-to", "references"})


class _MailPolicy(EmailPolicy):
    """email.policy.SMTP, except that thread headers are folded between ids, never inside.

    The stock policy treats In-Reply-To and References as free text and, when an id is longer
    than the line, folds it into RFC 2047 encoded-words: mail programs then no longer see the
    ids and the thread falls apart. Our ids are validated ASCII, so one per line is safe.
    """

    def fold(self, name: str, value: str) -> str:
        if name.lower() in _THREAD_HEADERS:
            return f"{name}: " + f"{self.linesep} ".join(str(value).split()) + self.linesep
        folded: str = super().fold(name, value)  # typeshed says Any
        return folded

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() in _THREAD_HEADERS:
            return self.fold(name, value).encode("ascii")
        return super().fold_binary(name, value)


# utf8=False: non-ASCII header text goes out as encoded-words, bodies as quoted-printable, so
# the whole message is 7-bit and needs neither SMTPUTF8 nor 8BITMIME from the server.
MAIL_POLICY = _MailPolicy(linesep="\r\n")


def build_email(
    message: OutgoingEmail, *, sender: str, date: datetime, reply_to: str | None = None
) -> EmailMessage:
    """The MIME message for `message`: multipart/alternative (text, then HTML), UTF-8;
    multipart/mixed around it when the message has attachments.

    `sender` is the From header ("Agency Support <support@agency.example>"); `reply_to`, when
    given, the Reply-To of client mails (the agency's `reply_to`); `date` must be
    timezone-aware. Raises ValueError when a header value holds a line break or control
    character, a message id is malformed, an address is not ASCII, or there is no recipient:
    composition sanitises already, this is the second line of defence against header
    injection.
    """
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError(f"date must be timezone-aware (got {date.isoformat()})")
    if not message.to:
        raise ValueError(f"email {message.message_id!r} has no recipient")
    headers: list[tuple[str, str]] = [
        ("From", sender),
        ("To", ", ".join(message.to)),
        ("Subject", message.subject),
        ("Date", format_datetime(date)),
        ("Message-ID", _checked_id("Message-ID", message.message_id)),
    ]
    if message.in_reply_to is not None:
        headers.append(("In-Reply-To", _checked_id("In-Reply-To", message.in_reply_to)))
    if message.references:
        ids = [_checked_id("References", ref) for ref in message.references]
        headers.append(("References", " ".join(ids)))
    if reply_to is not None and message.audience is Audience.CLIENT:
        headers.append(("Reply-To", reply_to))
    # RFC 3834, and Microsoft's equivalent: no out-of-office replies to a robot.
    headers.append(("Auto-Submitted", "auto-generated"))
    headers.append(("X-Auto-Response-Suppress", "All"))

    mime = EmailMessage(policy=MAIL_POLICY)
    for name, value in headers:
        _check_header(name, value)
        mime[name] = value
    _check_addresses(mime, "From", expected=1)
    _check_addresses(mime, "To", expected=len(message.to))
    mime.set_content(message.text, charset="utf-8", cte="quoted-printable")
    mime.add_alternative(message.html, subtype="html", charset="utf-8", cte="quoted-printable")
    for attachment in message.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        _check_header("attachment filename", attachment.filename)
        mime.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return mime


def envelope(mime: EmailMessage) -> tuple[str, list[str]]:
    """The SMTP envelope (MAIL FROM, RCPT TO) of a message `build_email` made."""
    sender = getaddresses([str(mime["From"])])[0][1]
    recipients = [address for _, address in getaddresses([str(mime["To"])])]
    return sender, recipients


def check_sender(sender: str) -> None:
    """Raise ValueError unless `sender` can be the From header: one ASCII address, one line.

    The mailers check it when they are made, so a bad configuration fails at start-up rather
    than on every email.
    """
    _check_header("From", sender)
    mime = EmailMessage(policy=MAIL_POLICY)
    mime["From"] = sender
    _check_addresses(mime, "From", expected=1)


def _check_header(name: str, value: str) -> None:
    match = _FORBIDDEN_IN_HEADER.search(value)
    if match is not None:
        raise ValueError(
            f"{name} header must be one line without control characters (found "
            f"{match.group()!r} at {match.start()}); sanitise it before it reaches the outbox"
        )


def _checked_id(name: str, value: str) -> str:
    if len(value) > _MAX_MESSAGE_ID_CHARS or _MESSAGE_ID.fullmatch(value) is None:
        raise ValueError(
            f"{name} must be a message id such as "
            "<incident-42.20261123T100000Z.client@agency.example> of at most"
            f" {_MAX_MESSAGE_ID_CHARS} printable ASCII characters (got {value!r})"
        )
    return value


def _check_addresses(mime: EmailMessage, name: str, *, expected: int) -> None:
    # Parse back what the header holds: a comma or quote inside one configured address would
    # otherwise silently turn it into two recipients, or none.
    addresses = [address for _, address in getaddresses([str(mime[name])])]
    if len(addresses) != expected or not all(_is_ascii_address(a) for a in addresses):
        raise ValueError(
            f"{name} must hold {expected} address(es) such as support@agency.example, ASCII "
            f"only (use punycode for an international domain) (got {str(mime[name])!r})"
        )


def _is_ascii_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain) and address.isascii()


class Mailer(Protocol):
    """Delivers one composed email. The outbox worker calls it; `date` is the Date header."""

    async def send(self, message: OutgoingEmail, *, date: datetime) -> None:
        """Return once the message is delivered; raise DeliveryError otherwise."""
        ...


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    security: SmtpSecurity  # starttls (usually 587), tls (implicit, 465), none (loopback relay)
    username: str | None
    password: str | None = field(repr=False)  # never logged, never in an error text
    timeout: float  # seconds per SMTP step (connect, each command)
    sender: str  # the From header, e.g. "Agency Support <support@agency.example>"
    reply_to: str | None = None  # the Reply-To of client mails


class SmtpMailer:
    """Sends each email over its own SMTP connection (aiosmtplib)."""

    def __init__(self, settings: SmtpSettings, *, tls_context: ssl.SSLContext | None = None):
        """Raises ValueError for a bad sender, or for a login over plain text to another
        host (the config refuses that too; this guards settings built in code)."""
        check_sender(settings.sender)
        if (
            settings.security == "none"
            and settings.username
            and not is_loopback_host(settings.host)
        ):
            raise ValueError(
                f"SMTP login to {settings.host} needs security starttls or tls: with none "
                "the password would travel in plain text"
            )
        self._settings = settings
        self._tls_context = tls_context

    async def send(self, message: OutgoingEmail, *, date: datetime) -> None:
        try:
            mime = build_email(
                message, sender=self._settings.sender, date=date, reply_to=self._settings.reply_to
            )
        except ValueError as exc:
            raise DeliveryError(
                f"email {message.message_id!r} cannot be built: {exc}", permanent=True
            ) from exc
        sender, recipients = envelope(mime)
        s = self._settings
        try:
            errors, _ = await aiosmtplib.send(
                mime.as_bytes(),
                sender=sender,
                recipients=recipients,
                hostname=s.host,
                port=s.port,
                username=s.username,
                password=s.password,
                timeout=s.timeout,
                use_tls=s.security == "tls",
                start_tls=s.security == "starttls",
                tls_context=self._tls_context,
            )
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            error = self._translate(exc, message)
            # The cause is None when it had to go (it held the password): see translated_error.
            raise error from error.__cause__
        if errors:
            # Accepted for the others, who must not get it twice: done, but say who missed it.
            _log.warning(
                "email %s: %d of %d recipients refused: %s",
                message.message_id,
                len(errors),
                len(recipients),
                "; ".join(f"{rcpt}: {r.code} {r.message}" for rcpt, r in errors.items()),
            )

    def _translate(self, exc: Exception, message: OutgoingEmail) -> DeliveryError:
        s = self._settings
        permanent, code = _smtp_verdict(exc)
        where = f"email {message.message_id!r} via {s.host}:{s.port} ({s.security})"
        return translated_error(
            f"{where}: {_smtp_detail(exc)}",
            cause=exc,
            secrets=[s.password or ""],
            permanent=permanent,
            code=code,
        )


def _smtp_verdict(exc: Exception) -> tuple[bool, int | None]:
    """(permanent, reply code) for an error aiosmtplib raised; see the module docstring."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        return all(code >= 500 for code in codes), min(codes, default=None)
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return exc.code >= 500, exc.code
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return exc.code == 552, exc.code  # 552 at MAIL FROM: the SIZE we declared is too big
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return False, exc.code
    if isinstance(exc, OSError):
        # Before ValueError: a failed certificate check is both.
        return False, None
    # aiosmtplib raises ValueError for an address it cannot put in the envelope.
    return isinstance(exc, ValueError), None


def _smtp_detail(exc: Exception) -> str:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        return f"recipients refused: {refused}"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{type(exc).__name__}: {exc.code} {' '.join(exc.message.split())}"
    return describe(exc)


class FileMailer:
    """Writes each email as `<folder>/<timestamp>-<message id>.eml` instead of sending it.

    Atomic (a temporary file in the same folder, fsync, rename) and idempotent: a message id
    that was written before is written again under its first file name, so a retry after a
    crash never leaves two files for one email.
    """

    def __init__(self, folder: Path, *, sender: str, reply_to: str | None = None) -> None:
        check_sender(sender)
        self._folder = folder
        self._sender = sender
        self._reply_to = reply_to

    async def send(self, message: OutgoingEmail, *, date: datetime) -> None:
        try:
            data = build_email(
                message, sender=self._sender, date=date, reply_to=self._reply_to
            ).as_bytes()
        except ValueError as exc:
            raise DeliveryError(
                f"email {message.message_id!r} cannot be built: {exc}", permanent=True
            ) from exc
        try:
            # File I/O and fsync block; keep them off the event loop.
            await asyncio.to_thread(self._write, message.message_id, date, data)
        except OSError as exc:
            raise DeliveryError(
                f"email {message.message_id!r}: cannot write to {self._folder}: {describe(exc)}",
                permanent=False,
            ) from exc

    def path_for(self, message_id: str, date: datetime) -> Path:
        """Where the email with `message_id` is (or would be, if first written at `date`)."""
        name = f"{eml_stem(message_id)}.eml"
        # The time stamp holds no "-", so the part after the first one is the whole stem: a
        # suffix match alone would confuse <b@x> with <a-b@x>.
        existing = sorted(
            path for path in self._folder.glob(f"*-{name}") if path.name.partition("-")[2] == name
        )
        if existing:
            return existing[0]
        return self._folder / f"{date.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{name}"

    def _write(self, message_id: str, date: datetime, data: bytes) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        target = self.path_for(message_id, date)
        # A dot-name ending in .tmp: whoever lists *.eml never sees a half-written file.
        fd, temp_name = tempfile.mkstemp(dir=self._folder, prefix=".", suffix=".eml.tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        _fsync_directory(self._folder)


def eml_stem(message_id: str) -> str:
    """A file-name-safe, collision-free stem for a message id: `<a.b@c>` -> `a.b@c`."""
    bare = message_id.strip("<>")
    safe = re.sub(r"[^A-Za-z0-9._@+-]", "_", bare)[:120]
    if safe != bare:
        # Two ids that differ only where characters were replaced must not share a file.
        safe += "-" + hashlib.sha256(message_id.encode()).hexdigest()[:12]
    return safe


def _fsync_directory(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk too.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
